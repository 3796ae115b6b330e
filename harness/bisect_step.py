"""`python -m harness.bisect_step SPEC`: the script `git bisect run` calls for each step (harness/bisectrun.py).

Exit 0 unchanged, 1 changed, 125 cannot test; 130/143 after an interrupt and 255 after a harness
error, both of which stop the bisect (git aborts on an exit status of 128 or more).
"""

import signal
import sys
import traceback
from pathlib import Path

from harness.bisectrun import take_step


class _Terminated(KeyboardInterrupt):
    """SIGTERM, stopped like Ctrl-C (exit 143 instead of 130)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # git starts us with Ctrl-C ignored (it must wait)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(take_step(Path(sys.argv[1])))
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    except Exception:  # a harness bug must stop the bisect, never mark a commit
        traceback.print_exc()
        sys.exit(255)
