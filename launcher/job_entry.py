"""Job entry point: submitit's job runner with a sturdier requeue.

The sbatch script runs ``python -m launcher.job_entry <folder>``, which is
``python -m submitit.core._submit <folder>`` with one change, the requeue call:

- On the host, ``scontrol requeue`` starts with SIGTERM ignored.  A preempted
  step gets SIGTERM as well as USR2, and the two can arrive in either order.
  If SIGTERM lands while the handler is requeueing, it kills a plain
  ``scontrol`` child, and the job dies instead of being requeued.  (Seen on
  the test cluster with ``job._interrupt()``.)
- Inside Apptainer (``$EFNAS_REQUEUE_FLAG`` set by the sbatch script), the
  job only writes that flag file.  The image has no SLURM client, so the
  sbatch script runs ``scontrol requeue`` on the host after the step exits
  (see launcher/container.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from launcher import submitit_private
from launcher.container import REQUEUE_FLAG_ENV


def requeue(env, countdown: int) -> None:
    """Replacement of submitit's SLURM requeue (see the module docstring), installed by ``main``."""
    flag = os.environ.get(REQUEUE_FLAG_ENV)
    if flag:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        Path(flag).write_text(f"job {env.job_id} asked for a requeue at {stamp} ({countdown} timeouts left)\n")
        submitit_private.submitit_logger().info(
            f"Requeue of job {env.job_id} requested from the host side ({countdown} remaining timeouts)")
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the scontrol child across exec
    try:
        subprocess.run(["scontrol", "requeue", env.job_id], check=True, timeout=60)
    finally:
        signal.signal(signal.SIGTERM, previous)
    submitit_private.submitit_logger().info(f"Requeued job {env.job_id} ({countdown} remaining timeouts)")


def main() -> None:
    """Install the requeue above, then run submitit's job runner."""
    submitit_private.install_requeue(requeue)
    submitit_private.run_submitit_main()


if __name__ == "__main__":
    main()
