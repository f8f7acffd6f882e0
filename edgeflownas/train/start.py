"""How a training invocation takes a run directory: lock, what exists there, fresh / resume / inherit.

Rules (docs/reliability.md "Resume, restarts and run directories"):

- One writer per run directory: ``RunClaim`` takes ``locks.exclusive_lock`` on it
  for the whole invocation, so a second ``efnas train`` on it is refused at once,
  naming the holder.
- A refused start leaves nothing behind: the claim creates the run directory
  only to lock it, keeps the log in memory, and removes what it created unless
  the start is accepted (``RunClaim.accept``).
- A run directory holding results (``run_dir.RESULTS``) is never written over.
  ``--resume`` continues from a complete ``last`` (or, asked for, ``best``);
  without one it refuses, naming what is missing and the ways on.  ``--overwrite``
  moves the old run aside first.  With ``--resume`` and nothing there at all the
  run starts fresh: that is the first start of a requeued SLURM job.
- Paths are made absolute at every start (relative ones against the current
  directory) and recorded so; ``--resume`` with a relative ``output_root`` that
  leads nowhere is refused, as it would otherwise start a second run elsewhere,
  and a relative data path that leads nowhere means the recorded one.
- A resume must see the same samples: the same ids (sample-id hashes in the
  checkpoint) and the same content (``SampleSource.content_digest``: the shard
  manifest's sha256s, or a folder's file sizes and a fixed sample's bytes);
  the same data moved elsewhere is fine.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from tqdm import tqdm

from edgeflownas.config import ResolvedConfig, to_dataclasses
from edgeflownas.data.loader import content_mismatch
from edgeflownas.errors import CheckpointError, ConfigError, DataError
from edgeflownas.locks import exclusive_lock
from edgeflownas.train import checkpoint, run_dir as rd

PATH_KEYS = (("experiment", "output_root"), ("data", "train_dir"), ("data", "val_dir"), ("data", "shards_dir"))
RESUME_FROM = ("last", "best")


class _ConsoleHandler(logging.Handler):
    """Console lines on stderr through ``tqdm.write``: printed above any progress bar, never on the bar's line.

    Logs go to stderr and results to stdout, as in every efnas command (``efnas train > result.txt`` keeps the
    summary; the bar and the log stay on the terminal).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
            sys.stderr.flush()  # a SLURM log is a file: every line as it happens
        except Exception:  # logging's contract: a failed emit is reported by handleError, never raised
            self.handleError(record)


class _AppendHandler(logging.Handler):
    """Each line appended to a file opened for that line only (nothing stays open; the directory may move)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def emit(self, record: logging.LogRecord) -> None:
        self.write([self.format(record)])

    def write(self, lines: List[str]) -> None:
        """Append already formatted lines."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))


class RunLog:
    """The run's log: stdlib ``logging`` with one console handler and one for ``<run_dir>/train.log``.

    Called with a line (``log("...")``); a line starting with ``notice:`` is a
    WARNING, any other INFO unless ``level`` says otherwise.  ``train.log`` and
    a console that is not a terminal (a SLURM log) get ``date time LEVEL line``;
    a terminal gets ``time line``, printed above any progress bar.  Deferred:
    the file's lines are held in memory (already formatted, with the time they
    were logged) until the start is accepted (``commit``).
    """

    FILE_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    TERMINAL_FORMAT = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")

    def __init__(self, path: Optional[Path] = None, deferred: bool = False) -> None:
        self.path = path
        self.pending: Optional[List[str]] = [] if deferred else None
        # Not registered with logging.getLogger: each run has its own handlers and nothing leaks between runs.
        self.logger = logging.Logger("edgeflownas.train.run", logging.INFO)
        console = _ConsoleHandler()
        console.setFormatter(self.TERMINAL_FORMAT if _is_terminal(sys.stderr) else self.FILE_FORMAT)
        self.logger.addHandler(console)
        self._file: Optional[_AppendHandler] = None
        if path is not None:
            self._file = _AppendHandler(path)
            self._file.setFormatter(self.FILE_FORMAT)
            if self.pending is None:
                self.logger.addHandler(self._file)

    def __call__(self, line: str, level: Optional[int] = None) -> None:
        if level is None:
            level = logging.WARNING if line.startswith("notice:") else logging.INFO
        record = self.logger.makeRecord(self.logger.name, level, __file__, 0, line, None, None)
        self.logger.handle(record)
        if self.pending is not None and self._file is not None:
            self.pending.append(self._file.format(record))

    def commit(self) -> None:
        """Write the held lines to the file; later lines go straight there."""
        lines, self.pending = self.pending or [], None
        if self._file is not None:
            if lines:
                self._file.write(lines)
            if self._file not in self.logger.handlers:
                self.logger.addHandler(self._file)


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def absolute_paths(resolved: ResolvedConfig, base: Optional[Path] = None) -> ResolvedConfig:
    """``resolved`` with output_root and the data locations made absolute against ``base`` (default: cwd)."""
    base = Path(base or Path.cwd())
    values = copy.deepcopy(resolved.values)
    for section, key in PATH_KEYS:
        value = values.get(section, {}).get(key)
        if isinstance(value, str) and value:
            values[section][key] = str((base / Path(value).expanduser()).absolute())
    return dataclasses.replace(resolved, config=to_dataclasses(values), values=values)


def recorded_data_paths(resolved: ResolvedConfig, configured: ResolvedConfig, state: Dict[str, Any],
                        log: Callable[[str], None]) -> ResolvedConfig:
    """On resume, a relative data path that leads nowhere from here means the absolute one recorded at the start.

    ``configured`` holds the paths as given, ``resolved`` the same made absolute
    against the current directory.  The sample ids are still checked afterwards.
    """
    recorded = state.get("config", {}).get("data", {})
    values = copy.deepcopy(resolved.values)
    for key in ("train_dir", "val_dir", "shards_dir"):
        given, now, then = configured.values["data"].get(key), values["data"].get(key), recorded.get(key)
        if (isinstance(given, str) and given and not Path(given).expanduser().is_absolute() and not Path(now).exists()
                and isinstance(then, str) and Path(then).is_absolute() and Path(then).exists()):
            log(f"notice: data.{key} '{given}' does not exist from {Path.cwd()}; using {then}, where the run "
                "recorded it")
            values["data"][key] = then
    return dataclasses.replace(resolved, config=to_dataclasses(values), values=values)


def check_relative_resume(configured_root: str, run_dir: Path) -> None:
    """CheckpointError for ``--resume`` through a relative output_root that finds no run directory."""
    if Path(configured_root).expanduser().is_absolute() or run_dir.exists():
        return
    raise CheckpointError(
        f"--resume: there is no run directory at {run_dir} (experiment.output_root '{configured_root}' is relative "
        f"to the current directory {Path.cwd()}): run from the directory the experiment was started in, or pass "
        "--output_root with the absolute path (its train_manifest.json records it); to start a new run, drop "
        "--resume or use an absolute output_root")


class RunClaim:
    """The run directory, locked for this invocation; removed again if the start is refused."""

    def __init__(self, run_dir: Path, what: str, log: RunLog) -> None:
        self.run_dir, self.what, self.log = Path(run_dir), what, log
        self.accepted = False
        self._created: Optional[Path] = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "RunClaim":
        self._created = _topmost_missing(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._stack.enter_context(exclusive_lock(self.run_dir, self.what, self.log))
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.accepted:
            self._remove_created()
        self._stack.close()

    def accept(self, move_aside: bool = False) -> None:
        """The start goes ahead: optionally move an old run aside first, then write the held log lines."""
        if move_aside:
            old = rd.move_aside(self.run_dir)
            self.run_dir.mkdir(parents=True)
            stack = contextlib.ExitStack()
            stack.enter_context(exclusive_lock(self.run_dir, self.what, self.log))
            self._stack.close()
            self._stack = stack
            self.log(f"--overwrite: the previous run was moved, untouched, to {old}")
        self.accepted = True
        self.log.commit()

    def _remove_created(self) -> None:
        if self._created is not None:
            shutil.rmtree(self._created, ignore_errors=True)


def _topmost_missing(path: Path) -> Optional[Path]:
    """The outermost directory that ``path.mkdir(parents=True)`` would create (None if ``path`` exists)."""
    missing = None
    for candidate in [path, *path.parents]:
        if candidate.exists():
            break
        missing = candidate
    return missing


@dataclass(frozen=True)
class Start:
    """How this invocation starts: mode, the checkpoint to read, and whether an old run is moved aside."""

    mode: str  # fresh | resume | inherit
    source: Optional[Path] = None
    move_aside: bool = False


def decide_start(resolved: ResolvedConfig, run_dir: Path, log: Callable[[str], None], overwrite: bool = False,
                 resume_from: str = "last") -> Start:
    """The start mode read from the run directory; CheckpointError whenever results would be lost."""
    cfg = resolved.config
    resume = cfg.checkpoint.resume
    if resume_from not in RESUME_FROM:
        raise ConfigError(f"--resume_from {resume_from!r}: expected one of {', '.join(RESUME_FROM)}")
    if overwrite and resume:
        raise ConfigError("--overwrite starts afresh and --resume continues: pass only one of them")
    if resume_from != "last" and not resume:
        raise ConfigError(f"--resume_from {resume_from} only applies with --resume: add --resume")
    results = rd.results_in(run_dir)
    problem = rd.last_problem(run_dir)
    if overwrite and results:
        return dataclasses.replace(fresh_or_inherit(resolved, log), move_aside=True)
    if resume and resume_from == "best":
        best = run_dir / rd.BEST
        if not checkpoint.has_checkpoint(best):
            raise CheckpointError(f"--resume_from best: {best} holds no complete checkpoint (state.json and "
                                  "model.index): resume from last, or start a new --experiment_name")
        log(f"notice: --resume_from best: continuing from {best}; epochs after it are trained again and "
            "their rows in the history are replaced")
        return Start("resume", best)
    if problem is None:
        if not resume:
            raise CheckpointError(
                f"{run_dir / rd.LAST} already exists: pass --resume to continue this experiment, choose another "
                "--experiment_name, or pass --overwrite to move this run aside and start afresh "
                "(nothing was overwritten)")
        return Start("resume", run_dir / rd.LAST)
    if results:
        raise CheckpointError(refusal(run_dir, problem, results, resume))
    if resume:
        log(f"notice: --resume given but {run_dir} holds no checkpoint or results yet; starting a new run")
    return fresh_or_inherit(resolved, log)


def refusal(run_dir: Path, problem: str, results: List[str], resume: bool) -> str:
    """The message for a run directory with results but no resumable ``last``: what is missing, the ways on."""
    ways = []
    if checkpoint.has_checkpoint(run_dir / rd.BEST):
        try:
            epoch = checkpoint.read_state(run_dir / rd.BEST).get("epoch")
        except CheckpointError:
            epoch = None  # an unreadable best is no way on: not offered
        if epoch is not None:
            ways.append(f"--resume --resume_from best to continue from {rd.BEST} (epoch {epoch})")
    ways += ["--experiment_name NEW to start a separate run",
             f"--overwrite to move this run aside to {run_dir.name}.old-<timestamp> and start afresh"]
    verb = "resumed" if resume else "started afresh"
    return (f"{run_dir} holds results ({', '.join(results)}) but {problem}: it cannot be {verb} without losing "
            f"them, and nothing was changed. Use " + "; or ".join(ways))


def fresh_or_inherit(resolved: ResolvedConfig, log: Callable[[str], None]) -> Start:
    """'inherit' from ``checkpoint.init_from`` or ``checkpoint.resume_experiment_name``'s last checkpoint, else 'fresh'."""
    source = _inherit_source(resolved.config)
    if source is None:
        return Start("fresh")
    _note_model_differences(source, resolved.config, log)
    return Start("inherit", source)


def _inherit_source(cfg) -> Optional[Path]:
    """The checkpoint a new run starts from (``checkpoint.init_from`` or ``resume_experiment_name``), or None."""
    source_name = cfg.checkpoint.resume_experiment_name
    if cfg.checkpoint.init_from:
        if source_name:
            raise ConfigError("checkpoint.init_from and checkpoint.resume_experiment_name both name weights to start "
                              "from: keep one")
        source = Path(cfg.checkpoint.init_from)
        if not checkpoint.has_checkpoint(source):
            raise CheckpointError(f"checkpoint.init_from={source}: not a complete checkpoint directory (state.json "
                                  "and model.index)")
        return source
    if not source_name:
        return None
    if source_name == cfg.experiment.name:
        raise ConfigError("checkpoint.resume_experiment_name names this same experiment: use --resume instead")
    source = Path(cfg.experiment.output_root) / source_name / rd.LAST
    if not checkpoint.has_checkpoint(source):
        raise CheckpointError(f"checkpoint.resume_experiment_name={source_name}: no checkpoint at {source}: train "
                              f"that experiment first (--experiment_name {source_name}, same --output_root), or "
                              "start without it (--set checkpoint.resume_experiment_name=null)")
    return source


# Model keys that change what the same variables compute (shapes alike, so the restore itself succeeds),
# with the value a checkpoint older than the key was trained with.
FUNCTION_KEYS = {"upsample": "resize_conv", "input_normalization": None}


def _note_model_differences(source: Path, cfg, log: Callable[[str], None]) -> None:
    """A notice per FUNCTION_KEYS value the inherited checkpoint was trained with that this run changes."""
    trained = checkpoint.read_state(source).get("config", {}).get("model", {})
    for key, before in FUNCTION_KEYS.items():
        value = trained.get(key, before)
        if value is not None and value != getattr(cfg.model, key):
            log(f"notice: {source} was trained with model.{key}={value}, this run uses "
                f"{getattr(cfg.model, key)}: the inherited weights start out computing another function "
                f"(--set model.{key}={value} keeps it)")


def check_same_data(state: Dict[str, Any], data_info: Dict[str, Any], where: Path,
                    log: Callable[[str], None]) -> None:
    """DataError if the samples found now are not those the checkpoint was trained on (moved is fine)."""
    recorded = state.get("data")
    if not isinstance(recorded, dict):
        log(f"notice: {where} records no sample-id hashes (written by an older efnas): the data cannot be "
            "checked against it")
        return
    for split in ("train", "val"):
        key = f"{split}_sample_ids_sha256"
        if key in recorded and recorded[key] != data_info[key]:
            raise DataError(
                f"cannot resume {where}: the {split} split is not the one it was trained on (checkpoint: "
                f"{recorded.get(f'{split}_samples')} samples from {recorded.get(f'{split}_dir')}, sample ids "
                f"{recorded[key][:12]}...; now: {data_info[f'{split}_samples']} samples from "
                f"{data_info.get(f'{split}_dir')}, {data_info[key][:12]}...). Point --{split}_dir back at the "
                "original data, or start a new experiment from these weights: --experiment_name NEW "
                f"--resume_experiment_name {state.get('experiment', 'OLD')}")
        key = f"{split}_content_sha256"
        if content_mismatch(recorded.get(key), data_info[key]):
            then = recorded.get(f"{split}_dir") if recorded.get("source") == "folders" else recorded.get("shards_dir")
            now = data_info.get(f"{split}_dir") if data_info.get("source") == "folders" else data_info.get("shards_dir")
            raise DataError(
                f"cannot resume {where}: the {split} split has the sample ids it was trained on but other content "
                f"(checkpoint: {then}, {key} {recorded[key][:22]}...; now: {now}, {data_info[key][:22]}...): "
                "another data set with the same FC2 names (another 'efnas synth' seed, a re-rendered set)? Point "
                f"--{split}_dir back at the original data, or start a new experiment from these weights: "
                f"--experiment_name NEW --resume_experiment_name {state.get('experiment', 'OLD')}")
    for key in ("train_dir", "val_dir", "shards_dir"):
        if recorded.get(key) and data_info.get(key) and recorded[key] != data_info[key]:
            log(f"notice: data.{key} moved from {recorded[key]} to {data_info[key]} (same sample ids and content)")
