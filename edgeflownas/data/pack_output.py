"""The ``--out`` directory of ``efnas pack``: created, locked, cleaned up after a failure.

``claimed_output`` creates the directory (remembering which ancestors it made)
and holds its lock (``edgeflownas.locks``: a second pack is refused at once,
naming the first).  When the pack fails it removes its own temp files and a
lock file it created; when no shard was completed it also removes the
directories it made, or the manifest it added to a directory that existed.
OS errors while writing (full disk, quota, read-only) become one DataError
line saying so: ``no space left on <out>``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgeflownas.atomic_io import make_dirs
from edgeflownas.data.shards import MANIFEST_NAME
from edgeflownas.errors import DataError
from edgeflownas.locks import exclusive_lock, lock_path


def require_space(out: Path, file: str, needed: int) -> None:
    """DataError 'no space left' before a shard is started that cannot fit (its raw arrays alone)."""
    free = shutil.disk_usage(out).free
    if free < needed:
        raise DataError(f"no space left on {out}: {file} needs at least {needed / 1e6:.1f} MB, "
                        f"{free / 1e6:.1f} MB are free; free space (or use another --out) and re-run the same "
                        "'efnas pack' to finish")


def write_error(out: Path, error: OSError, file: Optional[str] = None) -> DataError:
    """The one-line DataError for an OS error while writing ``out`` (full disk, quota, read-only, ...)."""
    file = file or (Path(error.filename).name if error.filename else MANIFEST_NAME)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on" if error.errno == errno.ENOSPC else "disk quota exceeded on"
        return DataError(f"{what} {out}: {file} could not be written; completed shards "
                         "stay listed in the manifest, the partial one was removed; free space (or use another "
                         "--out) and re-run the same 'efnas pack' to finish")
    return DataError(f"{out}: writing {file} failed ({error.strerror or error}); completed shards stay listed "
                     "in the manifest, the partial one was removed")


def make_output_dir(out: Path) -> Optional[Path]:
    """Create ``out`` (and parents); the top directory this call created, None if ``out`` already existed."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: --out exists and is not a directory; pass a new or empty directory")
    try:
        return make_dirs(out)
    except OSError as error:
        raise write_error(out, error) from None


@contextlib.contextmanager
def claimed_output(out: Path, what: str, notice: Optional[Callable[[str], None]],
                   completed: Callable[[], bool]) -> Iterator[None]:
    """Create and lock ``out`` for the block; on failure remove what the block added (see the module doc)."""
    created = make_output_dir(out)
    had_lock_file = lock_path(out).exists()
    had_manifest = (out / MANIFEST_NAME).exists()
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(out, what, notice))
        except FileNotFoundError:  # a concurrent pack that failed removed the directory it had made
            raise DataError(f"{out}: removed by another 'efnas pack' while this one started; run it again") from None
        try:
            yield
        except BaseException:
            _remove_traces(out, created, had_manifest, had_lock_file, completed())
            raise


def _remove_traces(out: Path, created: Optional[Path], had_manifest: bool, had_lock_file: bool,
                   completed: bool) -> None:
    """After a failed pack: drop its temp files and lock file; if it completed no shard, everything it added."""
    if created is not None and not completed:
        shutil.rmtree(created, ignore_errors=True)
        return
    if not out.is_dir():
        return
    leftovers = list(out.glob(f".*.tmp-{os.getpid()}"))
    if not completed and not had_manifest:
        leftovers.append(out / MANIFEST_NAME)
    if not had_lock_file:
        leftovers.append(lock_path(out))
    for path in leftovers:
        path.unlink(missing_ok=True)
