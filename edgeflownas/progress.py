"""The one progress line of a k-of-n task: ``k/n <what>, elapsed H:MM:SS, ETA H:MM:SS`` (TensorFlow-free).

The ETA is the time per item finished here times the items left.  Items found
finished already (a resumed study's trainings, a search's stored scores) count
towards k but not towards that rate.  The study's trainings and scores, eval's
subnets, the search's candidates and the latency probes and models report
through ``Progress``; training's bar and step line print their run ETA with
``duration``.
"""

from __future__ import annotations

import time
from typing import Callable, Optional


def duration(seconds: float) -> str:
    """``H:MM:SS`` (``D days, H:MM:SS`` beyond a day)."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days} days, {text}" if days else text


class Progress:
    """``done`` of ``total`` items, timed from construction; ``line()`` is the progress text."""

    def __init__(self, total: int, done: int = 0, what: str = "done",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.what, self.clock = total, done, what, clock
        self.done_here = 0  # finished in this process, since construction: the items the rate is measured on
        self.started = clock()

    def advance(self, count: int = 1, found: int = 0) -> None:
        """``count`` more items finished here, and ``found`` more found finished already."""
        self.done += count + found
        self.done_here += count

    def eta(self, elapsed: float) -> Optional[float]:
        """Seconds left at the time per item finished here so far (None before the first)."""
        if self.done_here <= 0:
            return None
        return elapsed / self.done_here * max(0, self.total - self.done)

    def line(self) -> str:
        """``3/8 done, elapsed 0:12:04, ETA 0:20:07`` (no ETA before an item finished here)."""
        elapsed = self.clock() - self.started
        eta = self.eta(elapsed)
        text = f"{self.done}/{self.total} {self.what}, elapsed {duration(elapsed)}"
        return text if eta is None else f"{text}, ETA {duration(eta)}"
