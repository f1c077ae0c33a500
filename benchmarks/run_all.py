"""Run every benchmark script in this folder (bench_*.py) one after the other and print their output."""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    failures = 0
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        failures += subprocess.call([sys.executable, str(script)]) != 0
    sys.exit(1 if failures else 0)
