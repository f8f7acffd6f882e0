"""Crash-safe file writes: write a temp file beside the target, fsync, ``os.replace``.

A reader never sees a half-written artifact: either the old file or the new
one.  Directories get the same treatment (build ``<name>.tmp-<pid>``, then
swap it in), which is how checkpoints stay intact when a save is killed.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Type

from edgeflownas.errors import EfnasError, NoSpaceError, NotWritableError

# A full disk and an exhausted quota look the same to the user: nothing more can be written there.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# The system refuses the write itself: a read-only mount, or no permission on the folder or file.
NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
STAGING_MARK = ".tmp-"  # staging directories are .<name>.tmp-<pid>


def is_no_space(error: BaseException) -> bool:
    """True if ``error`` says the disk (or quota) is full: an OSError's errno, or the strerror text
    that TensorFlow's C++ file writers put in their own error types."""
    if isinstance(error, NoSpaceError):
        return True
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno in NO_SPACE_ERRNOS
    return any(os.strerror(code) in str(error) for code in NO_SPACE_ERRNOS)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (the rename itself) to disk."""
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as error:
        if tmp.exists():
            tmp.unlink()
        if is_no_space(error):
            raise NoSpaceError(f"no space left on {path.parent} (writing {path.name}, {len(data)} bytes): "
                               f"{path} was left as it was; free space or quota there and run again") from None
        if isinstance(error, OSError) and error.errno in NOT_WRITABLE_ERRNOS:
            raise NotWritableError(f"cannot write {path}: {error.strerror} (read-only file system or no "
                                   f"permission); {path} was left as it was: write somewhere else") from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: Any) -> None:
    """Replace ``path`` with pretty JSON of ``payload`` atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with a CSV (header + one line per row mapping) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text_atomic(path, buffer.getvalue())


def make_dirs(path: Path) -> Optional[Path]:
    """Create ``path`` and its parents; the top folder this call created (to remove on failure), None if ``path``
    existed.  Other OSErrors (no space, read-only, a file in the way) propagate for the caller to name."""
    top = Path(path).absolute()
    while not top.parent.exists():
        top = top.parent
    try:
        Path(path).mkdir(parents=True)
    except FileExistsError:
        return None
    return top


def staging_dir(target: Path) -> Path:
    """A fresh, empty staging directory beside ``target`` to build its next version in."""
    target = Path(target)
    staging = target.with_name(f".{target.name}{STAGING_MARK}{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


@contextlib.contextmanager
def scratch_beside(target: Path) -> Iterator[Path]:
    """A fresh staging directory beside ``target`` for work files, removed when the block ends (however it ends).

    Never in the system temp directory: a killed process leaves it beside its output, and the next one removes it.
    """
    remove_stale_staging(target)
    scratch = staging_dir(target)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_staging(target: Path) -> None:
    """Drop the staging directories beside ``target`` whose process is gone (a killed build of it)."""
    target = Path(target)
    for stale in target.parent.glob(f".{target.name}{STAGING_MARK}*"):
        pid = stale.name.rsplit(STAGING_MARK, 1)[1]
        if stale.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def replace_dir_atomic(staging: Path, target: Path) -> None:
    """Swap a fully written ``staging`` directory in as ``target``.

    POSIX cannot rename a directory over a non-empty one, so the old target is
    first renamed aside and deleted only after the new one is in place; a crash
    between the two renames leaves ``<target>.old`` which ``recover_dir`` restores.
    """
    staging, target = Path(staging), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(target: Path) -> None:
    """Undo a swap interrupted between its two renames and drop stale staging dirs."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(old, target)
    elif old.exists():
        shutil.rmtree(old)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale)


def read_json(path: Path, error: Type[EfnasError], missing: str, damaged: str) -> Dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file if it is missing (``missing``: what to do) or is not
    a readable JSON object (``damaged``: what to do)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path} does not exist: {missing}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path} is damaged, not valid JSON ({exc}): {damaged}") from None
    if not isinstance(doc, dict):
        raise error(f"{path} is damaged, a {type(doc).__name__} where a JSON object belongs: {damaged}")
    return doc
