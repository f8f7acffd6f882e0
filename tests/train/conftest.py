"""Training fixtures: a tiny run config on the shared synthetic FC2 set."""

from __future__ import annotations

import copy

import pytest

# 32x48 input, 8-channel stem, batch 2, 3 steps/epoch, pool evaluated on one small val batch.
TINY_RUN = {
    "experiment": {"name": "tiny", "seed": 5},
    "data": {"input_height": 32, "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
    "model": {"init_neurons": 8},
    "train": {"num_epochs": 5, "batch_size": 2, "steps_per_epoch": 3, "lr": 0.001, "log_every_steps": 1000},
    "eval": {"bn_recal_batches": 2, "batch_size": 2, "val_batches": 1},
    "early_stop": {"min_epochs_before_early_stop": 0},
    "runtime": {"deterministic": True, "graph_optimizations": False},
}


@pytest.fixture(scope="session")
def make_tiny_run(tiny_fc2):
    """Factory: a fresh copy of TINY_RUN on the shared synthetic set, runs written under ``output_root``."""

    def make(output_root) -> dict:
        raw = copy.deepcopy(TINY_RUN)
        raw["experiment"]["output_root"] = str(output_root)
        raw["data"]["train_dir"] = str(tiny_fc2 / "train")
        raw["data"]["val_dir"] = str(tiny_fc2 / "val")
        return raw

    return make


@pytest.fixture
def tiny_run(make_tiny_run, tmp_path):
    """TINY_RUN with output under this test's tmp_path/runs."""
    return make_tiny_run(tmp_path / "runs")


@pytest.fixture(scope="session")
def random_batches():
    """``make(count, batch, height, width, seed)``: loader ``Batch``es of random images and flow (seeded)."""
    import numpy as np

    from edgeflownas.data.loader import Batch

    def make(count: int, batch: int, height: int, width: int, seed: int):
        rng = np.random.default_rng(seed)
        shape = (batch, height, width)
        return [Batch(img0=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                      img1=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                      flow=rng.normal(0.0, 3.0, shape + (2,)).astype(np.float32),
                      ids=tuple(f"s{index}" for index in range(batch))) for _ in range(count)]

    return make
