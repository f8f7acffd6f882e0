"""Job entry point inside Apptainer: submitit's runner with a host-side requeue.

Run as ``python -m launcher.container_entry <folder>`` (what the sbatch script
calls in container mode).  Identical to ``python -m submitit.core._submit``
except that the requeue request is written to ``$EFNAS_REQUEUE_FLAG`` instead
of running ``scontrol`` inside the image; the sbatch script requeues from the
host once the step has exited (see launcher/container.py).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from launcher.container import REQUEUE_FLAG_ENV


def request_host_requeue(env, countdown: int) -> None:
    """Replacement of SlurmJobEnvironment._requeue: leave the flag the host-side script acts on."""
    from submitit.core.logger import get_logger

    flag = os.environ.get(REQUEUE_FLAG_ENV)
    if not flag:
        raise RuntimeError(f"{REQUEUE_FLAG_ENV} is not set: this entry point must run from an efnas sbatch script")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    Path(flag).write_text(f"job {env.job_id} asked for a requeue at {stamp} ({countdown} timeouts left)\n")
    get_logger().info(f"Requeue of job {env.job_id} requested from the host side ({countdown} remaining timeouts)")


def main() -> None:
    """Patch the requeue call, then run submitit's job runner."""
    from submitit.core.submission import submitit_main
    from submitit.slurm.slurm import SlurmJobEnvironment

    SlurmJobEnvironment._requeue = request_host_requeue
    submitit_main()


if __name__ == "__main__":
    main()
