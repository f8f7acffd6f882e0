"""Evaluate any subnet of a trained supernet checkpoint exactly as the trainer evaluates its pool.

Everything that decides the number is taken from the run, not re-chosen:
the config and the evaluation plan come from the checkpoint's ``state.json``;
the BN-recalibration batches and validation batches come from the trainer's
own ``eval_data.eval_batches`` (same seed, same sorted validation split); the EPE comes
from the trainer's ``PoolEvaluator.evaluate_subnet`` (reset, recalibrate on the
fixed training batches as a true average, measure in BN_INFER), run on the
``graph.EvalGraph`` the trainer's ``TrainGraph`` extends, restored from the
checkpoint.  ``efnas eval``, search, the study, report and export all evaluate through this class, made by
``TrainedRun.evaluator()``;
importing it does not import TensorFlow (entering it does).  So a pool subnet evaluated here reproduces the EPE
logged for it at that checkpoint.

Outlier rates need per-pixel errors, which the trainer's scalar EPE does not
expose; the runs that measure the EPE also fetch the predicted flow (one
signature, ``EvalGraph.eval_fetches``), from which the per-pixel errors come
(and their mean is checked against the trainer's EPE).  With ``native_epe`` the same pass also gives
the EPE at the data's native resolution (``native_epe.py``: prediction upsampled
and rescaled, ground truth read at full resolution), the number papers compare;
the training-resolution EPE stays the selection metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.data.loader import content_mismatch, open_source
from edgeflownas.data.shards import ids_digest
from edgeflownas.errors import CheckpointError, DataError
from edgeflownas.flow_viz import endpoint_error
from edgeflownas.model.bn_modes import BN_INFER
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.eval_data import eval_batches, picture_indices
from edgeflownas.train.evaluate import PoolEvaluator
from edgeflownas.train.native_epe import METHOD as NATIVE_METHOD, NativeTruth, native_error_sum, size_text

OUTLIER_THRESHOLDS = (1.0, 3.0, 5.0)
GLOBAL_STEP_KEY = "train/global_step"
# Relative agreement required between the trainer's EPE and the per-pixel pass (float32 summation order).
_EPE_AGREEMENT = 1e-4


@dataclass(frozen=True)
class SubnetMetrics:
    """Validation metrics of one subnet at one checkpoint (EPE and outliers in training-resolution px).

    ``epe_native``: EPE at the ground truth's native resolution ``native_resolution`` (None when not asked
    for or not available; ``CheckpointEvaluator.native_status`` says which).
    """

    name: str
    arch_code: Tuple[int, ...]
    epe: float
    outlier_1px: float
    outlier_3px: float
    outlier_5px: float
    pixels: int
    epe_native: Optional[float] = None
    native_resolution: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready copy."""
        return dict(asdict(self), arch_code=list(self.arch_code))


def check_same_data(manifest: Dict[str, Any], train_source, val_source, run_dir: Path) -> None:
    """DataError if the data found now is not the data the run was evaluated on (sample ids and content)."""

    recorded = manifest.get("data", {})
    for split, source in (("train", train_source), ("val", val_source)):
        key = f"{split}_sample_ids_sha256"
        now = ids_digest(source.sample_ids)
        if key in recorded and recorded[key] != now:
            raise DataError(f"the {split} split found now ({len(source)} samples) differs from the one recorded in "
                            f"{run_dir / rd.MANIFEST} ({recorded.get(f'{split}_samples')} samples, {key} "
                            f"{recorded[key][:12]}... != {now[:12]}...): the EPE would not be comparable")
        key = f"{split}_content_sha256"
        if key in recorded:
            now = source.content_digest()
            if content_mismatch(recorded[key], now):
                raise DataError(f"the {split} split found now has the sample ids recorded in {run_dir / rd.MANIFEST} "
                                f"but other content ({key} {recorded[key][:22]}... != {now[:22]}...): another data "
                                "set with the same FC2 names? the EPE would not be comparable: point at the run's data")


class PixelSums:
    """Per-pixel sums over a subnet's validation batches: end-point errors, outliers, native-resolution errors."""

    def __init__(self, native: Optional[NativeTruth]) -> None:
        self.native = native  # None: no EPE at native resolution
        self.total, self.pixels = 0.0, 0
        self.outliers = np.zeros(len(OUTLIER_THRESHOLDS), np.int64)
        self.native_total, self.native_pixels = 0.0, 0

    def add(self, batch, flow: np.ndarray) -> None:
        """Add one validation batch and its predicted flow."""
        error = endpoint_error(flow, batch.flow)
        self.total += float(error.sum())
        self.pixels += error.size
        self.outliers += np.array([(error > t).sum() for t in OUTLIER_THRESHOLDS], np.int64)
        if self.native is not None:
            batch_total, batch_pixels = native_error_sum(flow, self.native.flows(batch.ids))
            self.native_total, self.native_pixels = self.native_total + batch_total, self.native_pixels + batch_pixels


class CheckpointEvaluator:
    """A session on one checkpoint of a run, with the trainer's fixed evaluation batches (context manager).

    Made by ``TrainedRun.evaluator()`` (``run``: the ``TrainedRun``, not imported here: it imports this module),
    which gives the checkpoint, its config, plan and scoring settings.
    """

    def __init__(self, run: Any, log: Callable[[str], None] = lambda line: None, debug_trace: bool = False,
                 native_epe: bool = False) -> None:
        """``debug_trace`` adds the BN before/after summaries to each subnet's log line; ``native_epe`` adds the
        EPE at native resolution."""
        self.run = run
        self.run_dir, self.ckpt_dir, self.which = run.run_dir, run.ckpt_dir, run.which
        self.state, self.resolved, self.plan = run.state, run.resolved, run.plan
        self.scoring = run.scoring()
        self.debug_trace = debug_trace
        self.log = log
        data = self.resolved.config.data
        self._session = None
        self._calibrated: Optional[ArchCode] = None
        self.native: Optional[NativeTruth] = None
        self.train_source, self.val_source = open_source(data, "train"), open_source(data, "val")
        manifest_path = self.run_dir / rd.MANIFEST
        try:
            if manifest_path.is_file():
                check_same_data(json.loads(manifest_path.read_text(encoding="utf-8")), self.train_source,
                                self.val_source, self.run_dir)
            if native_epe:
                self.native = NativeTruth(self.val_source)
        except BaseException:
            self.close()
            raise

    @property
    def epoch(self) -> int:
        """The epoch after which the checkpoint was saved (the run's)."""
        return self.run.epoch

    @property
    def global_step(self) -> int:
        """The optimizer step of the checkpoint (the run's)."""
        return self.run.global_step

    @property
    def training_resolution(self) -> str:
        """'HxW' of the training resolution, the pixels of ``epe`` (the selection metric)."""
        data = self.resolved.config.data
        return f"{data.input_height}x{data.input_width}"

    @property
    def native_status(self) -> Dict[str, Any]:
        """What ``epe_native`` is: {"available", "resolution", "label"} or {"available": False, "reason"}."""
        if self.native is None:
            return {"available": False, "reason": "not computed (native_epe off)"}
        if not self.native.available:
            return {"available": False, "reason": self.native.reason}
        resolution = size_text(self.native.sizes) if self.native.sizes else None
        return {"available": True, "resolution": resolution,
                "label": f"EPE at native resolution ({resolution or 'not measured yet'} px, {NATIVE_METHOD} "
                         f"from {self.native.where})"}

    def __enter__(self) -> "CheckpointEvaluator":
        try:
            self._open_session()
        except BaseException:
            self.close()
            raise
        return self

    def _open_session(self) -> None:
        # TensorFlow only once a session opens: checkpoint choice and the data check stay cheap (--dry_run paths).
        import tensorflow as tf

        from edgeflownas.train.graph import EvalGraph
        from edgeflownas.train.plan import fixed_arch_of
        from edgeflownas.train.runtime import open_session

        seed = self.scoring.recal_seed
        # Damaged files and non-finite weights end here in one line, before any data is loaded.
        checkpoint.verify_checkpoint(self.ckpt_dir)
        if self.resolved.config.runtime.deterministic:
            # The same numerics as the trainer's evaluation (it enables this for deterministic runs).
            tf.config.experimental.enable_op_determinism()
        recal, val = eval_batches(self.train_source, self.val_source, self.plan, seed)
        self.val_batches = val
        prefix = checkpoint.model_prefix(self.ckpt_dir)
        step = int(tf.train.load_checkpoint(prefix).get_tensor(GLOBAL_STEP_KEY))
        if step != self.global_step:
            raise CheckpointError(f"{self.ckpt_dir}: variables hold global_step {step}, state.json says "
                                  f"{self.global_step}; the checkpoint is inconsistent")
        tf_graph = tf.Graph()
        with tf_graph.as_default():
            tf.compat.v1.set_random_seed(seed)
            cfg = self.resolved.config
            # A fixed-arch run (a retrain) holds only its own path; its plan has no recalibration batches.
            self.graph = EvalGraph(cfg.model, cfg.loss, (cfg.data.input_height, cfg.data.input_width),
                                   fixed_arch_of(cfg))
            self._session = open_session(tf_graph, self.resolved.config.runtime)
            # The restore below writes every network variable: initialise only the others (if any), not the
            # network's random initial values it would overwrite.
            restored = {v.name for v in self.graph.net.variables}
            others = [v for v in tf.compat.v1.global_variables() if v.name not in restored]
            if others:
                self._session.run(tf.compat.v1.variables_initializer(others))
            with checkpoint.restoring(tf_graph, self.ckpt_dir):
                self.graph.saver.restore(self._session, prefix)
        tf_graph.finalize()
        self.run.check_unchanged()  # what was restored is the version the run's digest names
        self.training_stats = self.graph.bn_snapshot(self._session)
        self.evaluator = PoolEvaluator(self.graph, recal, val, self.log, debug_trace=self.debug_trace)
        self.log(f"checkpoint {self.ckpt_dir} epoch={self.epoch} global_step={step} "
                 f"bn_recal_batches={len(recal)} val_batches={len(val)} x batch {self.plan.eval_batch_size}")

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and the data sources."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.native is not None:
            self.native.close()
        self.train_source.close()
        self.val_source.close()

    def _flows(self, code: ArchCode, batches: Sequence) -> List[np.ndarray]:
        return [self._session.run(self.graph.eval_fetches, self.graph.feed(batch, code, BN_INFER))[1]
                for batch in batches]

    def evaluate(self, code: ArchCode) -> SubnetMetrics:
        """Recalibrate BN for ``code`` and measure EPE and 1/3/5 px outlier rates on the validation batches
        (and the EPE at native resolution when the evaluator was opened with ``native_epe`` and it is available)."""
        if self._session is None:
            raise RuntimeError("CheckpointEvaluator.evaluate used outside its 'with' block")
        self.run.check_code(code)
        native = self.native if self.native is not None and self.native.available else None
        sums = PixelSums(native)
        # The per-pixel errors come from the runs that measured the EPE: no second pass over the batches.
        epe = self.evaluator.evaluate_subnet(self._session, code, self.training_stats, sums.add)
        self._calibrated = tuple(code)
        total, pixels, outliers = sums.total, sums.pixels, sums.outliers
        native_total, native_pixels = sums.native_total, sums.native_pixels
        if abs(total / pixels - epe) > _EPE_AGREEMENT * max(1.0, epe):
            raise RuntimeError(f"subnet {arch_name(code)}: per-pixel EPE {total / pixels:.6f} disagrees with the "
                               f"trainer's evaluation {epe:.6f} on the same batches")
        rates = outliers / pixels
        epe_native = native_total / native_pixels if native_pixels else None
        return SubnetMetrics(arch_name(code), tuple(code), float(epe), float(rates[0]), float(rates[1]),
                             float(rates[2]), int(pixels), epe_native,
                             size_text(native.sizes) if native is not None else None)

    def variable_values(self) -> Dict[str, np.ndarray]:
        """{variable name without ':0': value} of the network now (BN as last recalibrated; used by export)."""
        if self._session is None:
            raise RuntimeError("CheckpointEvaluator.variable_values used outside its 'with' block")
        variables = self.graph.net.variables
        return {v.name.split(":")[0]: value for v, value in zip(variables, self._session.run(variables))}

    def epe(self, code: ArchCode, val_batches: Optional[int] = None, recal_batches: Optional[int] = None) -> float:
        """The trainer's EPE of ``code`` on the first ``val_batches`` validation batches (all if None), with BN
        recalibrated on the first ``recal_batches`` of the run's recalibration batches (all if None; 0 = the
        checkpoint's training BN statistics as they are)."""
        if self._session is None:
            raise RuntimeError("CheckpointEvaluator.epe used outside its 'with' block")
        self.run.check_code(code)
        evaluator = self.evaluator
        recal, val = evaluator.recal_batches, evaluator.val_batches
        if recal_batches is not None and recal_batches > len(recal):
            raise CheckpointError(f"{self.ckpt_dir}: {recal_batches} BN recalibration batches asked, the run "
                                  f"evaluates with {len(recal)} (eval.bn_recal_batches)")
        if (val_batches is not None and val_batches < len(val)) or (recal_batches is not None
                                                                     and recal_batches < len(recal)):
            evaluator = PoolEvaluator(self.graph, recal[:recal_batches], val[:val_batches], self.log,
                                      debug_trace=self.debug_trace)
        self._calibrated = tuple(code)
        return evaluator.evaluate_subnet(self._session, code, self.training_stats)

    def predict(self, code: ArchCode, indices: Sequence[int]):
        """(validation Batch, predicted flow [B,H,W,2]) for ``indices``, with BN as recalibrated for ``code``."""
        if tuple(code) != self._calibrated:
            self.evaluate(code)
        batch = self.val_source.get_batch(np.asarray(indices))
        return batch, self._flows(code, [batch])[0]

    def sample_indices(self, count: int) -> List[int]:
        """``count`` fixed validation indices spread evenly over the evaluated validation samples."""
        if self.plan.val_samples_used < 1:
            raise DataError("no validation samples were evaluated in this run")
        return picture_indices(self.plan.val_samples_used, count)
