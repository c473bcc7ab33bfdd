"""Sections that the floors above add to the server page, without the registry knowing them.

The registry owns the server page, but health (and later others) have more to show about a server. Rather than the
registry's template naming their templates (an upward dependency), each app registers a section in its
`AppConfig.ready()`: a template rendered with the page's context, and the static scripts it needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerPageSection:
    key: str
    template: str
    scripts: tuple[str, ...] = ()  # static paths, loaded once each after the page's own scripts


_sections: dict[str, ServerPageSection] = {}


def register_server_section(section: ServerPageSection) -> None:
    """Add (or replace, by key: `ready()` may run twice in tests) a section of the server page."""
    _sections[section.key] = section


def server_sections() -> list[ServerPageSection]:
    return list(_sections.values())


def server_section_scripts() -> list[str]:
    """Every registered section's scripts, each once, in registration order."""
    seen: dict[str, None] = {}
    for section in _sections.values():
        for script in section.scripts:
            seen.setdefault(script, None)
    return list(seen)
