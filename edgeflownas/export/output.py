"""The ``--out`` folder of ``efnas export``: checked up front, locked, built beside it, renamed into place.

``check_out_dir`` refuses an ``--out`` that is a file or holds anything but a
lock file.  ``building(out)`` creates ``out`` (a path under a file or on a
read-only file system is one line here, before anything is loaded), takes its OS lock
(``edgeflownas.locks``, as train and pack: a second export into the same
folder is refused at once, naming the first) and yields a staging folder
``.<out>.tmp-<pid>`` beside it (never in the system temp directory, so a killed
export leaves nothing in /tmp).  When the block ends, the staging folder's
files are flushed and it is renamed over the (then empty) ``out`` in one step,
lock file included; when the block fails, the staging folder and whatever this
export created are removed, and a full disk becomes one line
"no space left on <out>".
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgeflownas.atomic_io import fsync_dir, is_no_space, make_dirs, remove_stale_staging, staging_dir
from edgeflownas.errors import ConfigError, ExportError, LockedError, NoSpaceError
from edgeflownas.locks import LOCK_NAME, exclusive_lock, lock_path

def check_out_dir(out_dir: Path) -> None:
    """ConfigError unless ``out_dir`` can become a new export folder (missing, or empty apart from a lock file).

    A path under a file or on a read-only file system is refused when ``building`` creates the folder, before
    anything is loaded (the CLI's ``outputs.check_output_folder`` says so even earlier).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder: give a new folder (an export never "
                          "overwrites files)")
    if out_dir.exists() and any(entry.name != LOCK_NAME for entry in out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir} exists and is not an empty directory: choose a new folder "
                          "(an export never overwrites files)")


def _make_out_dir(out_dir: Path) -> Optional[Path]:
    """Create ``out_dir`` (and parents); the top folder this call created, None if it existed."""
    try:
        return make_dirs(out_dir)
    except OSError as error:
        if is_no_space(error):
            raise NoSpaceError(f"no space left on {out_dir}: the folder could not be created; free space "
                               "(or use another --out) and run it again") from None
        raise ConfigError(f"--out {out_dir} cannot be created ({error.strerror or error}); give a folder you "
                          "can write to") from None


def _make_staging(out_dir: Path) -> Path:
    """The staging folder beside ``out_dir``; ConfigError if its parent does not take new folders."""
    try:
        return staging_dir(out_dir)
    except OSError as error:
        if is_no_space(error):
            raise
        raise ConfigError(f"--out {out_dir}: cannot create a folder beside it in {out_dir.parent} "
                          f"({error.strerror or error}); the export is built there first: choose a folder whose "
                          "parent you can write to") from None


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk (before the rename makes them visible)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            descriptor = os.open(str(path), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        else:
            fsync_dir(path)
    fsync_dir(folder)


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the complete ``staging`` over ``out_dir``, which holds only this process's lock file.

    The lock file moves first (the lock stays on its inode, so it is held throughout); ``out_dir`` is then
    an empty folder, which rename(2) replaces in one step.
    """
    _fsync_tree(staging)
    os.replace(lock_path(out_dir), lock_path(staging))
    try:
        os.replace(staging, out_dir)
    except OSError as error:
        os.replace(lock_path(staging), lock_path(out_dir))
        raise ExportError(f"--out {out_dir} was written to by another process during the export "
                          f"({error.strerror or error}); the export was removed: choose a new folder") from None
    fsync_dir(out_dir.parent)


@contextlib.contextmanager
def building(out_dir: Path, what: str, notice: Optional[Callable[[str], None]] = None) -> Iterator[Path]:
    """Lock ``out_dir`` and yield a staging folder beside it that becomes ``out_dir`` when the block succeeds."""
    out_dir = Path(os.path.abspath(out_dir))  # '--out .' has a name and a parent to build beside
    check_out_dir(out_dir)
    created = _make_out_dir(out_dir)
    had_lock_file = lock_path(out_dir).exists()
    try:
        with exclusive_lock(out_dir, what, notice):
            staging = None
            try:
                check_out_dir(out_dir)  # again under the lock: nothing was written there meanwhile
                remove_stale_staging(out_dir)
                staging = staging_dir(out_dir)
                yield staging
                _move_into_place(staging, out_dir)
            except BaseException:
                _undo(out_dir, staging, created, had_lock_file)  # still under the lock
                raise
    except LockedError:
        raise  # the folder is the holder's
    except BaseException as error:
        _undo(out_dir, None, created, had_lock_file)  # a failure to take the lock (or to write its file)
        if is_no_space(error):
            raise NoSpaceError(f"no space left on {out_dir}: the export was not finished and nothing of it "
                               "was left; free space (or use another --out) and run it again") from None
        raise


def _undo(out_dir: Path, staging: Optional[Path], created: Optional[Path], had_lock_file: bool) -> None:
    """After a failed export: remove its staging folder, the lock file it added and the (empty) folders it made.

    Only what this export made goes: a folder that holds anything else is left alone.
    """
    if staging is not None and staging.exists():
        shutil.rmtree(staging)
    if not out_dir.is_dir() or any(p.name != LOCK_NAME for p in out_dir.iterdir()):
        return
    if created is not None or not had_lock_file:
        lock_path(out_dir).unlink(missing_ok=True)
    if created is None:
        return
    folder = out_dir.absolute()
    while folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        if folder == created:
            break
        folder = folder.parent
