"""A trained run, opened once: every command that reads a run asks this object, never the files.

``TrainedRun.open(run_dir, which)`` reads one checkpoint (``supernet_best`` or
``supernet_last``) of a run directory and holds what every reader needs:

- ``state`` (the checkpoint's ``state.json``) and ``weights_sha256``, the
  digest of the weights, verified against the record ``state.json`` keeps of
  each model file (a checkpoint saved again while it is being read is read
  again once, then refused in one line);
- ``resolved``: the config the checkpoint was trained with, resolved from
  ``state.json`` only (``data_overrides`` may say where its data lives now;
  no other key can be changed);
- ``kind``: ``supernet`` or ``fixed_arch`` (a retrain, which holds one subnet);
- ``pool()``, ``cost(code)`` (the exact additive ``CostTable`` at the run's
  input size and width, counted once and kept in ``<run>/cost_table.json``,
  or only in memory when the run cannot be written;
  an export at another input size asks ``cost_table`` at that size),
  ``scoring()`` (the settings that decide a score), ``evaluator()`` and
  ``select(text)`` (an ``--arch`` value: a code, ``baseline``, ``best`` or
  ``rank:N`` of the run's search front).

So ``efnas eval``, search, the study, report and export score a subnet from
the same weights, batches and seed, and give it the same cost.  TensorFlow is
imported only when an evaluator opens or a cost table has to be counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from edgeflownas.atomic_io import read_json, write_json_atomic
from edgeflownas.config import ResolvedConfig, resolve_mapping
from edgeflownas.config_types import Config
from edgeflownas.errors import ArchCodeError, CheckpointError, ConfigError, NotWritableError
from edgeflownas.model.cost import CostTable, table_key
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, ArchCode, arch_name, parse_arch_code
from edgeflownas.nas.eval_pool import load_pool, pool_file_name
from edgeflownas.nas.front import load_front, pick
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.plan import TrainPlan, fixed_arch_of, plan_from_state

CHECKPOINTS = {"best": rd.BEST, "last": rd.LAST}
COST_TABLE_FILE = "cost_table.json"
SEARCH_DIR = "search"
SUPERNET, FIXED_ARCH = "supernet", "fixed_arch"
# The only config keys a reader may change: where the run's data lives now (the data itself is checked).
DATA_PREFIX = "data."


@dataclass(frozen=True)
class ScoringSettings:
    """What decides a subnet's score at one checkpoint: the weights, and the batches BN and EPE are taken on.

    ``recal_seed`` draws the recalibration batches (the run's ``experiment.seed``); ``val_batches`` is the
    number of the run's validation batches (a search may score on fewer, then re-scores its fronts).
    """

    checkpoint: str
    checkpoint_sha256: str
    recal_batches: int
    recal_seed: int
    eval_batch_size: int
    val_batches: int

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form (the key of a stored score)."""
        return asdict(self)

    def on(self, val_batches: int) -> "ScoringSettings":
        """The same settings on the first ``val_batches`` validation batches."""
        return replace(self, val_batches=int(val_batches))


def checkpoint_dir(run_dir: Path, which: str) -> Path:
    """``<run_dir>/supernet_best.ckpt`` or ``supernet_last.ckpt``; CheckpointError if absent."""
    if which not in CHECKPOINTS:
        raise CheckpointError(f"checkpoint {which!r} unknown: expected one of {', '.join(CHECKPOINTS)}")
    path = rd.require_run(run_dir) / CHECKPOINTS[which]
    if not checkpoint.has_checkpoint(path):
        raise CheckpointError(f"{path} is not a complete checkpoint (no state.json / model.index): "
                              "has the run finished an epoch? (efnas train writes it after each epoch)")
    return path


def recorded_weights_sha256(state: Mapping[str, Any]) -> Optional[str]:
    """``weights_sha256`` as the model files recorded in ``state.json`` give it (None for an older state)."""
    files = state.get(checkpoint.MODEL_FILES_KEY)
    if not isinstance(files, dict) or not files:
        return None
    lines = "".join(f"{name}:{info['sha256']}\n" for name, info in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _read_verified(ckpt_dir: Path) -> Tuple[Dict[str, Any], str]:
    """(state, weights sha256) of one consistent version of a checkpoint: read again once if it was saved anew
    in between, CheckpointError if the files do not match their record."""
    state = checkpoint.read_state(ckpt_dir)
    for attempt in range(2):
        found = checkpoint.weights_sha256(ckpt_dir)
        recorded = recorded_weights_sha256(state)
        if recorded is None or found == recorded:
            return state, found
        again = checkpoint.read_state(ckpt_dir)
        if again == state:
            checkpoint.check_model_files(ckpt_dir, state)  # names the damaged file and what to do
            raise CheckpointError(f"{ckpt_dir}: the model files' sha256 {found[:12]}... differs from the "
                                  f"{recorded[:12]}... recorded in {checkpoint.STATE_FILE} (damaged files): "
                                  "restore the checkpoint from a backup, or use the run's other checkpoint")
        state = again
    raise CheckpointError(f"{ckpt_dir} changed while it was being read (saved again twice): is the run still "
                          "training? read a finished run, or a copy of the checkpoint")


class TrainedRun:
    """One checkpoint of a run directory with its config, plan, pool, costs and scoring settings."""

    def __init__(self, run_dir: Path, which: str, ckpt_dir: Path, state: Dict[str, Any], weights_sha256: str,
                 resolved: ResolvedConfig, data_overrides: Mapping[str, Any]) -> None:
        self.run_dir, self.which, self.ckpt_dir = Path(run_dir), which, Path(ckpt_dir)
        self.state, self.weights_sha256, self.resolved = state, weights_sha256, resolved
        self.data_overrides = dict(data_overrides)
        self._plan: Optional[TrainPlan] = None
        self._table: Optional[CostTable] = None
        self._tables_at: Dict[Tuple[int, int], CostTable] = {}  # at other input sizes than the run's

    @classmethod
    def open(cls, run_dir: Path, which: str = "best",
             data_overrides: Optional[Mapping[str, Any]] = None) -> "TrainedRun":
        """Read checkpoint ``which`` of ``run_dir``; ``data_overrides`` ({"data.val_dir": ...}) locate moved data."""
        overrides = dict(data_overrides or {})
        foreign = sorted(key for key in overrides if not key.startswith(DATA_PREFIX))
        if foreign:
            options = getattr(data_overrides, "options", {})
            raise ConfigError(f"{', '.join(options.get(k, k) for k in foreign)}: a trained run is read with the "
                              "config it was trained with; only where its data lives (data.*) can be given")
        ckpt_dir = checkpoint_dir(Path(run_dir), which)
        state, sha = _read_verified(ckpt_dir)
        if not isinstance(state.get("config"), dict):
            raise CheckpointError(f"{ckpt_dir / checkpoint.STATE_FILE} has no 'config': written by an older efnas")
        resolved = resolve_mapping(state["config"], data_overrides or {}, origin=f"config stored in {ckpt_dir}")
        return cls(Path(run_dir), which, ckpt_dir, state, sha, resolved, overrides)

    # ------------------------------------------------------------------ what the run is
    @property
    def config(self) -> Config:
        """The resolved config the checkpoint was trained with (data located by ``data_overrides``)."""
        return self.resolved.config

    @property
    def plan(self) -> TrainPlan:
        """The plan the run was trained and evaluated with (CheckpointError if the state has none)."""
        if self._plan is None:
            self._plan = plan_from_state(self.state, self.ckpt_dir)
        return self._plan

    @property
    def kind(self) -> str:
        """``supernet`` or ``fixed_arch`` (a retrain: one subnet, its own BN statistics)."""
        return FIXED_ARCH if self.fixed_code is not None else SUPERNET

    @property
    def fixed_code(self) -> Optional[ArchCode]:
        """The one code a fixed-arch run trained, or None for a supernet."""
        return fixed_arch_of(self.config)

    @property
    def epoch(self) -> int:
        """The epoch after which the checkpoint was saved."""
        return int(self.state["epoch"])

    @property
    def global_step(self) -> int:
        """The optimizer step of the checkpoint."""
        return int(self.state["global_step"])

    @property
    def input_hw(self) -> Tuple[int, int]:
        """(height, width) the run trained and evaluates at."""
        return self.config.data.input_height, self.config.data.input_width

    def describe(self) -> str:
        """One line: what this run is (``kind``), which checkpoint, which weights."""
        what = (f"fixed-arch run of {arch_name(self.fixed_code)}" if self.fixed_code is not None
                else f"supernet run (pool of {self.plan.pool_size})")
        return (f"{self.run_dir}: {what}, supernet_{self.which}.ckpt epoch {self.epoch} global_step "
                f"{self.global_step}, weights sha256 {self.weights_sha256[:12]}")

    def check_unchanged(self) -> None:
        """CheckpointError if the checkpoint was saved again since ``open`` (after a restore, say)."""
        if checkpoint.read_state(self.ckpt_dir) != self.state:
            raise CheckpointError(f"{self.ckpt_dir} was saved again while it was being read: is the run still "
                                  "training? read a finished run, or a copy of the checkpoint")

    def data_dirs(self) -> List[Path]:
        """The data folders scoring reads (as recorded, or where ``data_overrides`` point)."""
        data = self.config.data
        return [Path(value).absolute() for value in (data.train_dir, data.val_dir, data.shards_dir) if value]

    # ------------------------------------------------------------------ subnets
    def pool(self) -> Tuple[ArchCode, ...]:
        """The evaluation pool the run recorded (a fixed-arch run's is its own code)."""
        return load_pool(self.run_dir / pool_file_name(self.plan.pool_size))[1]

    def logged_epe(self) -> Dict[str, float]:
        """{arch name: EPE} the trainer logged at this checkpoint's epoch (``logged_epe``)."""
        return logged_epe(self.state, self.epoch)

    def select(self, text: str, search_dir: Optional[Path] = None) -> ArchCode:
        """The code an ``--arch`` value names: a code or name, ``baseline``, or ``best`` / ``rank:N`` of the
        run's search front (``<run>/search`` by default); a fixed-arch run accepts only its own code."""
        entry = text.strip()
        if entry == "best" or entry.startswith("rank:"):
            where = Path(search_dir) if search_dir is not None else self.run_dir / SEARCH_DIR
            code = pick(load_front(where), entry)
            if code is None:
                raise ArchCodeError(f"--arch {text!r}: expected 'best' or 'rank:N' with N a positive integer")
        elif entry == "baseline":
            code = EDGEFLOWNET_BASELINE
        else:
            code = parse_arch_code(entry)
        self.check_code(code, text)
        return tuple(code)

    def check_code(self, code: ArchCode, asked: Optional[str] = None) -> None:
        """ArchCodeError if this run cannot score ``code`` (a fixed-arch run holds one subnet only)."""
        own = self.fixed_code
        if own is not None and tuple(code) != tuple(own):
            what = f"--arch {asked!r} ({arch_name(code)})" if asked else arch_name(code)
            raise ArchCodeError(f"{what}: {self.run_dir} is a fixed-arch run of {arch_name(own)} and holds no "
                                f"other subnet: give --arch {arch_name(own)} (or 'pool'), or use its supernet run")

    # ------------------------------------------------------------------ cost
    def cost_table(self, log: Callable[[str], None] = lambda line: None,
                   input_hw: Optional[Tuple[int, int]] = None) -> CostTable:
        """The exact cost table of the run's model at its input size, kept in ``<run>/cost_table.json``; at another
        ``input_hw`` (an export at another size) counted once in this process, not kept."""
        if input_hw is not None and tuple(input_hw) != self.input_hw:
            height, width = input_hw
            if (height, width) not in self._tables_at:
                log(f"cost table: counting params and MACs of the 3 uniform subnets at {height}x{width}")
                self._tables_at[(height, width)] = CostTable.build(height, width, self.config.model)
            return self._tables_at[(height, width)]
        if self._table is not None:
            return self._table
        height, width = self.input_hw
        key = table_key(height, width, self.config.model)
        path = self.run_dir / COST_TABLE_FILE
        if path.is_file():
            doc = read_json(path, CheckpointError, "it is counted again", "delete it: efnas counts the table again")
            if doc.get("key") == key:
                self._table = CostTable.from_dict(doc["table"])
                return self._table
        log(f"cost table: counting params and MACs of the 3 uniform subnets at {height}x{width} (once) -> {path}")
        self._table = CostTable.build(height, width, self.config.model)
        try:
            write_json_atomic(path, {"key": key, "table": self._table.to_dict()})
        except NotWritableError:  # a read-only run is still read: the table is kept in this process only
            log(f"cost table: {path} cannot be written (read-only run); kept in memory, counted again next time")
        return self._table

    def cost(self, code: ArchCode) -> Dict[str, int]:
        """{'params', 'macs'} of ``code`` as trained in this run (MACs per image pair; FLOPs = 2 x MACs)."""
        return self.cost_table().cost(tuple(code))

    # ------------------------------------------------------------------ scoring
    def scoring(self, val_batches: Optional[int] = None) -> ScoringSettings:
        """The run's scoring settings (on its first ``val_batches`` validation batches if given)."""
        full = self.plan.val_batches
        return ScoringSettings(self.which, self.weights_sha256, self.plan.recal_batches,
                               int(self.config.experiment.seed), self.plan.eval_batch_size,
                               min(val_batches or full, full))

    def evaluator(self, log: Callable[[str], None] = lambda line: None, debug_trace: bool = False,
                  native_epe: bool = False):
        """A ``CheckpointEvaluator`` on this checkpoint (a context manager; TensorFlow once entered)."""
        from edgeflownas.train.checkpoint_eval import CheckpointEvaluator

        return CheckpointEvaluator(self, log, debug_trace=debug_trace, native_epe=native_epe)


def logged_epe(state: Mapping[str, Any], epoch: int) -> Dict[str, float]:
    """{arch name: EPE} the trainer logged for its pool at ``epoch`` (empty if that epoch was not evaluated).

    Empty as well for a checkpoint saved inside an epoch (a stop request): its
    weights moved on after the logged evaluation.
    """
    if state.get("next_batch_index", 0):
        return {}
    row = next((r for r in state.get("history", []) if r.get("epoch") == epoch), {})
    return {key[len("epe_"):]: value for key, value in row.items()
            if key.startswith("epe_") and isinstance(value, (int, float))}
