"""Console scripts exit with status 0 on success (sys.exit of a returned dict would give status 1)."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv", [
    ["at2seld-synthesize", "{tmp}/synth", "--n-train", "1", "--n-val", "0", "--n-test", "0", "--duration", "1"],
    ["at2seld-report", "--tiny", "--backbone", "none", "--json", "--seconds", "1"],
])
def test_console_script_success_is_exit_status_zero(argv, tmp_path):
    exe = BIN / argv[0]
    if not exe.exists():
        pytest.skip(f"{exe} not installed (pip install -e .)")
    proc = subprocess.run([str(exe), *(a.format(tmp=tmp_path) for a in argv[1:])], capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_wrappers_turn_results_into_status():
    from at2seld.commands import _status

    assert _status({"ER": 1.0}) == 0 and _status(None) == 0 and _status(2) == 2 and _status(True) == 0
