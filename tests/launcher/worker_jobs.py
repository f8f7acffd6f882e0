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


class ThreadsJob:
    """Runs one TensorFlow session and records where it ran and how many threads its process then had (TensorFlow
    makes its intra-op and inter-op pools at the first session, sized by TF_NUM_INTRAOP/INTEROP_THREADS)."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def run(self, stop) -> dict:
        import json
        import os

        import tensorflow as tf

        graph = tf.Graph()
        with graph.as_default():
            product = tf.matmul(tf.ones([32, 32]), tf.ones([32, 32]))
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(product)
        folder = Path(self.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ran.json").write_text(json.dumps({
            "pid": os.getpid(), "threads": len(os.listdir("/proc/self/task")),
            "env": [os.environ.get("TF_NUM_INTRAOP_THREADS"), os.environ.get("TF_NUM_INTEROP_THREADS")]}))
        return {}
