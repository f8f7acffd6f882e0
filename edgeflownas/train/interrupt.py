"""Stop requests: a signal asks the trainer to save at the next step boundary, then return.

SLURM warns a job before its time limit (``--signal=USR2@...``; submitit's
default), and ``scancel`` or a preemption sends SIGTERM.  A handler that saved
on the spot would run between two ``sess.run`` calls of a fairness cycle, with
the gradient accumulators half filled.  So the handler only records the
signal; the trainer polls :class:`StopRequest` after every optimizer step,
writes ``supernet_last`` with its position inside the epoch (exact resume),
and returns.  The caller then exits (``efnas train``) or hands the recorded
signal to submitit's own handler, which requeues the job (``launcher.job``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType
from typing import Iterator, Optional, Sequence


class StopRequest:
    """Records the first stop signal; a second SIGINT (Ctrl-C twice) interrupts at once."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.frame: Optional[FrameType] = None

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum, self.frame = signum, frame
            again = "; Ctrl-C again aborts at once" if signum == signal.SIGINT else ""
            # On a terminal the progress bar owns the current line: erase it, so the notice gets a line of its
            # own and the bar is redrawn below it.
            erase = "\r\x1b[2K" if os.isatty(2) else ""
            notice = f"{erase}efnas: {self.name} received; stopping after the current optimizer step{again}\n"
            os.write(2, notice.encode())  # not print: printing in a handler can hit a reentrant buffered write

    @property
    def requested(self) -> bool:
        """True once a stop signal has arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name (e.g. 'SIGTERM'), or '' if none arrived."""
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def deferred_signals(signals: Sequence[int], request: StopRequest) -> Iterator[StopRequest]:
    """Route ``signals`` to ``request`` inside the block; the previous handlers come back after it."""
    previous = {signum: signal.signal(signum, request) for signum in signals}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Interrupted(KeyboardInterrupt):
    """A stop signal raised as an interrupt, for a command whose work is resumable as it stands (``efnas study``):
    it ends at once, and the CLI names the signal and exits 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_interrupt(signals: Sequence[int]) -> Iterator[None]:
    """Inside the block each of ``signals`` raises :class:`Interrupted` in the main thread."""
    def handler(signum: int, frame: Optional[FrameType]) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
