"""Where a command may write a file or folder the user names.

Every option that names an output is checked here before any work starts, so
a mistake costs one line, never minutes of computing or somebody's data:

- an output file's suffix must be one the command writes (``.csv``/``.json``,
  ``.flo``, ``.png``); a folder, a device, a pipe or a path under a file is refused;
- an existing file is replaced only with ``--overwrite`` (or when it is the
  command's own earlier output, recognised by its content, such as a data-check
  report);
- even with ``--overwrite``, a file inside an efnas artifact folder (a run
  directory, a checkpoint, a search, study or export directory) or a dataset
  (an FC2 split folder or the root holding one, a shard set) is never replaced,
  nor is a file the command reads (its own inputs), nor one of its other outputs;
- an output folder is never a dataset or inside one, never an input, and
  never an artifact folder of another kind (a search never writes into a run
  directory itself, only into a folder of its own);
- the folder the output goes to must be writable (a read-only mount is one
  line at the start, not a traceback at the end).

The writes themselves are atomic (``edgeflownas.atomic_io``): a temp sibling
renamed into place, so an interrupted or failed write leaves the old file or
nothing, never half of one.  docs/reliability.md lists these rules for users.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple

import click

from edgeflownas.errors import ConfigError

# An FC2 sample file: NNNNNNN-img_0.png, NNNNNNN-img_1.png or NNNNNNN-flow_01.flo.
FC2_SAMPLE = re.compile(r"^\d{7}-(img_0\.png|img_1\.png|flow_01\.flo)$")
FC2_SPLITS = ("train", "val", "test")

# What each output option writes, by suffix (the first is the one suggested in messages).
JSON_REPORT = (".json",)
FLOW_FILE = (".flo",)
PNG_PICTURE = (".png",)


class OutputPath(click.Path):
    """A click path type that marks an option as naming an output (the registry tests find them by it).

    ``kind`` is "file" or "folder"; ``suffixes`` are the file suffixes the command writes (empty for a folder,
    or for an option that is a file for one input and a folder for another: ``efnas infer --out``).
    """

    def __init__(self, kind: str, suffixes: Sequence[str] = ()) -> None:
        super().__init__(path_type=Path)  # a folder given for a file is refused by the guard, in one line
        self.kind, self.suffixes = kind, tuple(suffixes)


def _has_fc2_samples(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(FC2_SAMPLE.match(entry.name) for entry in entries)
    except OSError:  # missing or unreadable: no command can write into it either, so it needs no protection here
        return False


def protected_kind(folder: Path) -> Optional[str]:
    """What ``folder`` is if no command may replace a file in it ("run directory", "FC2 data folder", ...), or None."""
    from edgeflownas.data.shards import MANIFEST_NAME
    from edgeflownas.export.manifest import MANIFEST_FILE as EXPORT_MANIFEST
    from edgeflownas.report.study import STUDY_JSON
    from edgeflownas.search.run import STORE_DIR
    from edgeflownas.train.checkpoint import STATE_FILE
    from edgeflownas.train.run_dir import MANIFEST as RUN_MANIFEST
    from edgeflownas.train.run_dir import RESULTS

    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / RUN_MANIFEST).is_file() or any((folder / name).exists() for name in RESULTS):
        return "run directory"
    if (folder / STATE_FILE).is_file():
        return "checkpoint"
    if (folder / STUDY_JSON).is_file():
        return "study directory"
    if (folder / STORE_DIR).is_dir():
        return "search directory"
    if (folder / EXPORT_MANIFEST).is_file():
        return "export directory"
    if _is_shard_set(folder / MANIFEST_NAME):
        return "shard set"
    if _has_fc2_samples(folder):
        return "FC2 data folder"
    if any(_has_fc2_samples(folder / split) for split in FC2_SPLITS):
        return "dataset root"
    return None


def _is_shard_set(manifest: Path) -> bool:
    from edgeflownas.data.shards import FORMAT

    try:
        # The format name near the top is enough to recognise a pack's manifest (read_manifest checks the rest).
        return manifest.is_file() and FORMAT in manifest.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:  # unreadable: as above
        return False


DATASETS = ("FC2 data folder", "dataset root", "shard set")


def enclosing_protected(path: Path) -> Optional[Tuple[Path, str]]:
    """The nearest folder holding ``path`` (itself excluded) that is protected, with its kind, or None.

    Links are followed: a path that reaches a run's file through a linked folder is that run's file."""
    for folder in Path(os.path.realpath(path)).parents:
        kind = protected_kind(folder)
        if kind is not None:
            return folder, kind
    return None


def _article(kind: str) -> str:
    return "an" if kind.startswith(("FC2", "export")) else "a"


def _same_or_inside(path: Path, other: Path) -> bool:
    path, other = Path(os.path.realpath(path)), Path(os.path.realpath(other))
    return path == other or other in path.parents


def _writable_folder(path: Path, option: str) -> None:
    """ConfigError unless the nearest existing folder above ``path`` is a folder this process may write in."""
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder: pass a path inside a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {path}: cannot write in {parent} (read-only file system or no "
                                  "permission): choose a folder you can write to")
            return


def check_output_file(path: Path, option: str, suffixes: Sequence[str], overwrite: bool = False,
                      inputs: Iterable[Path] = (), others: Iterable[Path] = (),
                      own: Optional[Callable[[Path], bool]] = None) -> Path:
    """Refuse (ConfigError, exit 2) an output file the rules in this module forbid; returns ``path``.

    ``inputs`` are the files and folders the command reads, ``others`` its other outputs, ``own`` recognises
    an earlier output of the same command (replaced without ``--overwrite``).
    """
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        example = f", e.g. {path.with_suffix(suffixes[0]).name}" if path.name else ""
        raise ConfigError(f"{option} {path}: the format is read from the suffix, expected {' or '.join(suffixes)} "
                          f"(what this option writes){example}")
    for other in others:
        if other is not None and _same_or_inside(path, Path(other)):
            raise ConfigError(f"{option} {path} is also another output of this command: give each output its own "
                              "file name")
    for given in inputs:
        if given is not None and _same_or_inside(path, Path(given)):
            where = "is" if Path(given).is_file() else "is inside"
            raise ConfigError(f"{option} {path} {where} {given}, which this command reads: write the output "
                              "elsewhere")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder: give a file path inside it")
    _writable_folder(path, option)
    if path.exists() or path.is_symlink():
        mode = os.stat(path).st_mode if path.exists() else 0
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{option} {path} is not a regular file (a device, pipe or broken link): give the "
                              "path of a file to write")
        protected = enclosing_protected(path)
        if protected is not None:
            folder, kind = protected
            raise ConfigError(f"{option} {path} exists inside the {kind} {folder}, whose files no command "
                              "replaces (not even with --overwrite): write the output elsewhere")
        if not overwrite and not (own is not None and own(path)):
            raise ConfigError(f"{option} {path} exists: give a new file name, or add --overwrite to replace it")
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path} exists and is read-only: choose another file name")
    return path


def check_output_folder(path: Path, option: str, inputs: Iterable[Path] = (),
                        own: Optional[str] = None, rewrites: Optional[str] = None) -> Path:
    """Refuse (ConfigError, exit 2) an output folder that is a dataset, an input or another kind of artifact.

    ``own`` is the kind of folder the command itself writes ("search directory", ...): continuing or redoing
    one is the command's business (its own refusal of a non-empty folder, or its resume rules).  A command
    that rewrites fixed file names in its folder names its main file as ``rewrites`` ("report.html"): a
    non-empty folder without it is someone else's and refused.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder: give a new folder")
    for given in inputs:
        if given is not None and (_same_or_inside(path, Path(given)) or _same_or_inside(Path(given), path)):
            raise ConfigError(f"{option} {path} holds or is inside {given}, which this command reads: choose a "
                              "new folder outside it")
    kind = protected_kind(path) if path.exists() else None
    if kind is not None and kind != own:
        raise ConfigError(f"{option} {path} is {_article(kind)} {kind}: choose a new folder (a command never "
                          f"writes into {_article(kind)} {kind} it did not make)")
    if rewrites is not None and path.is_dir() and any(path.iterdir()) and not (path / rewrites).exists():
        raise ConfigError(f"{option} {path} holds files but no {rewrites}: it is not an earlier output of this "
                          "command, whose files would be replaced; choose a new or empty folder")
    protected = enclosing_protected(path)
    if protected is not None and protected[1] in DATASETS:
        raise ConfigError(f"{option} {path} is inside the {protected[1]} {protected[0]}: write outside the data")
    _writable_folder(path / "x", option)
    return path
