"""One writer per directory: an OS lock file that names its holder.

``exclusive_lock(directory, what)`` takes ``fcntl.flock`` on
``<directory>/.efnas.lock`` without waiting.  The kernel drops the lock when
the holding process exits in any way (crash, kill -9, node reboot for local
disks), so a lock file left behind is never mistaken for a live holder: the
next process simply takes it (and says whose it was).  The file holds JSON
naming the holder (pid, host, start time, what) so a refused second process
can say who is in the way.  A filesystem without flock support (some Lustre
mounts) gives a notice instead of a false refusal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgeflownas.errors import LockedError

LOCK_NAME = ".efnas.lock"


def lock_path(directory: Path) -> Path:
    """The lock file of ``directory``."""
    return Path(directory) / LOCK_NAME


def describe_holder(path: Path) -> str:
    """'pid P on host H since T (what)' from a lock file, or a plain note if it cannot be read."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on host {info['host']} since {info['started']} ({info['what']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process whose lock record is unreadable"


@contextlib.contextmanager
def exclusive_lock(directory: Path, what: str, notice: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold ``directory``'s lock for the block; LockedError at once if another process holds it."""
    path = lock_path(directory)
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{directory} is in use by {describe_holder(path)}: wait for it to finish, "
                              "stop it, or write somewhere else") from None
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            if notice is not None:
                notice(f"notice: {path.parent} does not support file locks ({error.strerror}); "
                       "nothing stops a second process from writing here")
        else:
            if path.stat().st_size and notice is not None:
                notice(f"notice: taking over a lock left by {describe_holder(path)}, which is no longer running")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "what": what}))
        handle.flush()
        yield
        handle.seek(0)
        handle.truncate()
        handle.flush()
    finally:
        handle.close()
