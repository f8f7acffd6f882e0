"""The callable submitit pickles and runs on the compute node.

``TrainingJob`` is a ``submitit.helpers.Checkpointable``.  On SLURM's USR2
warning (time limit near, or preemption) the job saves and is requeued:

1. While training runs, USR2 goes to a ``StopRequest`` instead of submitit's
   handler: the signal lands between two ``sess.run`` calls of a fairness
   cycle, where no consistent state exists.  The trainer honours the request
   after the current optimizer step, saving ``supernet_last`` at that exact
   position inside the epoch (weights, Adam slots, step, data position,
   partial epoch sums), and returns.
2. The job then hands the recorded signal to submitit's handler, which calls
   ``checkpoint()`` (a fresh instance bound to the same run directory),
   pickles it, requeues the job (or refuses after ``max_num_timeout``
   timeouts) and exits.  The requeued job resumes from the run directory.

So a requeue loses no completed step: the job answers the signal within one
optimizer step (or the evaluation in progress), which ``slurm.signal_delay_s``
must leave time for.  A job killed without warning loses at most the epoch in
progress.  Nothing training-related lives
in the pickle: the instance carries only the resolved config values and the
run directory.  Resume is decided from the run directory's artifacts by the
trainer (``checkpoint.resume`` is always on: a complete ``supernet_last`` is
resumed, none means a fresh start), never from the SLURM restart count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

import submitit

from edgeflownas.train.interrupt import StopRequest, deferred_signals
from launcher import submitit_private

RESULT_FILE = "launch_result.json"


def read_result(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The finished-run record of a run directory, or None if the run has not finished."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class TrainingJob(submitit.helpers.Checkpointable):
    """Run (or resume) one training in a fixed run directory; picklable and requeue-safe."""

    def __init__(self, values: Dict[str, Any], run_dir: str, config_path: Optional[str], fingerprint: str) -> None:
        self.values = values
        self.run_dir = run_dir
        self.config_path = config_path
        self.fingerprint = fingerprint

    def __call__(self) -> Dict[str, Any]:
        """Under submitit: the stop signal (SIGUSR2 unless configured) saves at the next optimizer step, then
        submitit's own handler requeues the job (or ends it)."""
        usr_sig = submitit_private.usr_signal()
        with deferred_signals([usr_sig], StopRequest()) as stop:
            summary = self.run(stop)
        if "interrupted_by" in summary:
            handler = signal.getsignal(usr_sig)  # submitit's again, now that the block has ended
            if callable(handler):
                print("efnas job: handing over to submitit's requeue", flush=True)
                handler(stop.signum, stop.frame)  # checkpoint() + requeue + exit, or UncompletedJobError
        return summary

    def run(self, stop: StopRequest) -> Dict[str, Any]:
        """Train until done or until ``stop`` is requested (saved at the next optimizer step, resumable from
        there); the caller routes the stop signals to ``stop``.  Returns launch_result.json's content (written
        when the training finished) or ``{"interrupted_by": ..., "result": ...}``."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet start-up, as efnas train (before TensorFlow loads)
        from edgeflownas.atomic_io import write_json_atomic
        from edgeflownas.config import resolve_mapping
        from edgeflownas.train.api import run_training

        run_dir = Path(self.run_dir)
        # resume=True: the trainer resumes when supernet_last exists in run_dir and starts fresh otherwise
        resolved = resolve_mapping(self.values, {"checkpoint.resume": True}, origin=f"submitted config of {run_dir}")
        resolved = dataclasses.replace(resolved, path=self.config_path)
        print(f"efnas job: run_dir={run_dir} slurm_job={os.environ.get('SLURM_JOB_ID')} "
              f"restart_count={os.environ.get('SLURM_RESTART_COUNT', '0')}", flush=True)
        result = run_training(resolved, run_dir, stop=stop)
        if result.interrupted_by:
            print(f"efnas job: stopped at global_step {result.global_step} on {stop.name}; saved: the same run "
                  "resumes from here", flush=True)
            return {"interrupted_by": result.interrupted_by, "result": _as_dict(result)}
        summary = {
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": self.fingerprint,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "result": _as_dict(result),
        }
        write_json_atomic(run_dir / RESULT_FILE, summary)
        return summary

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """A fresh instance bound to the same run directory; it resumes from the position saved on the signal."""
        return submitit.helpers.DelayedSubmission(
            TrainingJob(self.values, self.run_dir, self.config_path, self.fingerprint))


def _as_dict(result: Any) -> Dict[str, Any]:
    """TrainResult (a dataclass or NamedTuple) as a JSON-ready mapping, without the per-epoch history."""
    if dataclasses.is_dataclass(result):
        data = dataclasses.asdict(result)
    elif hasattr(result, "_asdict"):
        data = dict(result._asdict())
    else:
        data = dict(vars(result))
    return {key: str(value) if isinstance(value, Path) else value for key, value in data.items() if key != "history"}
