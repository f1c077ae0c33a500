"""Console-script entry points: each runs a command's `main` and returns an exit status.

The `main` functions return their results (handy from Python and in tests), but a console script passes the return
value to `sys.exit`, which turns anything that is not an int into exit status 1 (and prints it). These wrappers
return 0 on success; errors still raise (status 1 with a traceback) or exit through argparse (status 2).
"""

from __future__ import annotations

from collections.abc import Sequence


def _status(result) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def synthesize(argv: Sequence[str] | None = None) -> int:
    from .data.synth.cli import main

    return _status(main(argv))


def train(argv: Sequence[str] | None = None) -> int:
    from .training import main

    return _status(main(argv))


def report(argv: Sequence[str] | None = None) -> int:
    from .modeling_at2seld import report_main

    return _status(report_main(argv))


def nas(argv: Sequence[str] | None = None) -> int:
    from .nas.cli import main

    return _status(main(argv))


def study(argv: Sequence[str] | None = None) -> int:
    from .study.cli import main

    return _status(main(argv))
