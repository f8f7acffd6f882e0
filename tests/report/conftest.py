"""Report fixtures: a hand-written run directory (no TensorFlow) and a tiny trained run (TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeflownas.nas.arch_codec import arch_name
from edgeflownas.nas.eval_pool import build_pool, pool_file_name, save_pool
from edgeflownas.nas.fair_sampler import option_counts
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.atomic_io import write_json_atomic

FAKE_EPOCHS = 8
FAKE_SEED = 7


def fake_history(pool, epochs: int, rng: np.random.Generator, eval_every: int = 1) -> list:
    """History rows like the trainer's: EPE drifting down with noise, blanks on epochs without evaluation."""
    base = rng.uniform(2.0, 4.0, size=len(pool))
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "global_step": 5 * epoch, "train_loss_epoch_avg": 9.0 / epoch + rng.uniform(0, 0.1),
               "train_grad_norm_before_clip_epoch_avg": 6.0 + rng.uniform(0, 1),
               "train_grad_norm_after_clip_epoch_avg": 4.5 + rng.uniform(0, 0.5),
               "lr": 1e-3 * (1 + np.cos(np.pi * epoch / epochs)) / 2, "fairness_gap": 0}
        if epoch % eval_every == 0:
            epe = base * (1.0 - 0.04 * epoch) + rng.normal(0, 0.05, size=len(pool))
            row[rd.mean_column(len(pool))] = float(epe.mean())
            row[rd.std_column(len(pool))] = float(epe.std())
            row.update({f"epe_{arch_name(code)}": float(v) for code, v in zip(pool, epe)})
        rows.append(row)
    return rows


def write_fake_run(run_dir: Path, epochs: int = FAKE_EPOCHS, eval_every: int = 1, seed: int = FAKE_SEED) -> Path:
    """A run directory with every artifact the trainer writes, with made-up but plausible numbers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pool = build_pool(seed, 12)
    save_pool(run_dir / pool_file_name(12), seed, pool)
    history = fake_history(pool, epochs, np.random.default_rng(seed), eval_every)
    rd.write_history(run_dir, pool, history)
    cycles = 5 * epochs
    rd.write_fairness(run_dir, option_counts(seed, cycles), cycles, seed)
    early = {"patience": 3, "min_delta": 0.002, "min_epochs_before_early_stop": 2}
    write_json_atomic(run_dir / rd.MANIFEST, {
        "experiment": "fake", "seed": seed, "config_hash": "0" * 64, "git_commit": None,
        "input_shape": [2, 32, 48, 3], "grad_clip": {"type": "global_norm", "max_norm": 5.0},
        "samples": {"train_samples": 10, "val_samples": 4}, "data": {"source": "folders"},
        "eval": {"pool_size": 12, "bn_recal_batches": 8}, "resolved_config": {"early_stop": early}})
    means = [row.get(rd.mean_column(12)) for row in history]
    best_epoch = int(np.nanargmin([np.nan if m is None else m for m in means])) + 1
    state = {"config_hash": "0" * 64, "global_step": 5 * epochs, "epoch": epochs, "next_batch_index": 0,
             "cycle_index": 5 * epochs, "history": history, "best_metric": means[best_epoch - 1],
             "best_epoch": best_epoch, "early_stop": {"best": means[best_epoch - 1], "best_epoch": best_epoch,
                                                       "bad_epochs": epochs - best_epoch, "stopped_epoch": None}}

    def fake_model(prefix: str) -> None:
        Path(prefix + ".index").write_bytes(b"not a real TF checkpoint")

    checkpoint.save_checkpoint(run_dir / rd.LAST, fake_model, state, verify_variables=False)
    return run_dir


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A complete hand-written run directory (numbers made up, files in the trainer's formats)."""
    return write_fake_run(tmp_path / "fake_run")


@pytest.fixture
def make_fake_run(tmp_path):
    """Factory: ``make_fake_run(name, epochs=..., eval_every=...)`` writes another hand-written run directory."""

    def make(name: str, **kwargs) -> Path:
        return write_fake_run(tmp_path / name, **kwargs)

    return make


# 32x48 input, 8-channel stem, batch 2, 2 steps/epoch, 3 epochs; the design's 8 BN-recalibration batches.
TRAINED_RUN = {
    "experiment.name": "report_tiny", "experiment.seed": 5,
    "data.input_height": 32, "data.input_width": 48, "data.num_workers": 1, "data.prefetch_batches": 2,
    "model.init_neurons": 8,
    "train.num_epochs": 3, "train.batch_size": 2, "train.steps_per_epoch": 2, "train.lr": 0.001,
    "train.log_every_steps": 1000,
    "eval.bn_recal_batches": 8,
    "early_stop.min_epochs_before_early_stop": 0,
    "runtime.deterministic": True, "runtime.graph_optimizations": False,
}


@pytest.fixture(scope="session")
def trained_run(tiny_fc2, tmp_path_factory) -> Path:
    """A real run directory: 3 tiny epochs of supernet training on the shared synthetic FC2 set (read-only)."""
    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.train.api import run_training

    overrides = dict(TRAINED_RUN, **{
        "experiment.output_root": str(tmp_path_factory.mktemp("report_runs")),
        "data.train_dir": str(tiny_fc2 / "train"), "data.val_dir": str(tiny_fc2 / "val")})
    result = run_training(resolve_mapping(load_yaml(default_config_path()), overrides))
    assert result.epochs_done == 3
    return result.run_dir
