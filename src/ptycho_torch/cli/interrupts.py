"""Ctrl-C and SIGTERM in the CLIs: one line on stderr and the shell's exit code, never a traceback.

Why not Python's own KeyboardInterrupt: Lightning catches it inside ``Trainer.fit``, prints
its own notice and calls ``sys.exit(1)``, so the caller could not tell an interrupted run from
a failed one. While a CLI runs, SIGINT and SIGTERM instead raise ``Interrupted`` (a
BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it); Lightning
re-raises it after its teardown, and ``ptycho_torch.cli.shared.run_cli`` turns it into one
``interrupted:`` line and exit code 128 + signal number (130 for SIGINT, 143 for SIGTERM).

Files a run writes stay whole: the bundle is written to a temporary name and renamed
(``ptycho_torch.bundle.save_bundle``), inference outputs are renamed into place inside
``deferred_interrupts()``, which holds both signals back for those few renames.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: The signals a CLI turns into ``Interrupted``, with the words its message uses.
SIGNALS = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):
    """The run was stopped by ``signum``; ``exit_code`` is the shell convention 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{SIGNALS.get(signum, f'signal {signum}')} received")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise ``Interrupted`` in this process.

    A signal the process inherited as ignored stays ignored (the Unix convention: a shell
    script's background job, for one, is meant not to die of the terminal's Ctrl-C). A
    forked DataLoader worker inherits the handler; there it raises KeyboardInterrupt, which
    torch's worker loop ends quietly on. Outside the main thread (where Python cannot set
    handlers) the block changes nothing. Previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    wanted = [signum for signum in SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends (for a few renames that belong together).

    A signal that arrives meanwhile is only noted, then raised again once the previous
    handlers are back. (A signal mask would not do: the kernel hands a process-wide signal to
    any thread that does not block it, e.g. one of torch's worker threads.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: pending.append(signum)) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        if pending:
            signal.raise_signal(pending[0])
