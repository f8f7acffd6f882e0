"""Stand-ins for TrainingJob in the local-worker tests of ``efnas study`` (importable by spawned workers: the test
puts this folder on sys.path, which a spawned process inherits)."""

from __future__ import annotations

import time
from pathlib import Path


class StepJob:
    """'Trains' one step every 20 ms until ``steps`` or a stop request; on a stop it 'saves' (writes ``saved``)."""

    def __init__(self, run_dir: str, steps: int) -> None:
        self.run_dir = run_dir
        self.steps = steps

    def run(self, stop) -> dict:
        folder = Path(self.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "started").write_text("1")
        for step in range(self.steps):
            time.sleep(0.02)
            if stop.requested:
                (folder / "saved").write_text(str(step + 1))
                return {"interrupted_by": stop.name}
        (folder / "finished").write_text("1")
        return {}
