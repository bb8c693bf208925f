"""The extension's pure logic (site matching, chunk reassembly, the agent client), run by node's test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_node_logic_suite():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: scripts/test installs it")
    result = subprocess.run([node, "--test", str(ROOT / "tests" / "js")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout
