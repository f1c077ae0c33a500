"""Write the synthetic FOA SELD data set (STARSS23 layout); the same as the `at2seld-synthesize` command.

    python hub_scripts/synthesize.py OUT_DIR [--n-train 32 --n-val 8 --n-test 8 --seed 0 --duration 30 --profile a]
"""

import sys

from at2seld.data.synth.cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
