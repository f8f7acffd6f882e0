"""A tiny trained supernet run for the search tests (2 epochs at 32x48, 8-channel stem)."""

from __future__ import annotations

from pathlib import Path

import pytest

SEARCH_RUN = {
    "experiment.name": "search_tiny", "experiment.seed": 5,
    "data.input_height": 32, "data.input_width": 48, "data.num_workers": 1, "data.prefetch_batches": 2,
    "model.init_neurons": 8,
    "train.num_epochs": 2, "train.batch_size": 2, "train.steps_per_epoch": 2, "train.lr": 0.001,
    "train.log_every_steps": 1000, "eval.bn_recal_batches": 2,
    "early_stop.min_epochs_before_early_stop": 0,
    "runtime.deterministic": True, "runtime.graph_optimizations": False,
}


@pytest.fixture(scope="session")
def search_run(tiny_fc2, tmp_path_factory) -> Path:
    """A real supernet run directory to search (read-only)."""
    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.train.api import run_training

    overrides = dict(SEARCH_RUN, **{
        "experiment.output_root": str(tmp_path_factory.mktemp("search_runs")),
        "data.train_dir": str(tiny_fc2 / "train"), "data.val_dir": str(tiny_fc2 / "val")})
    return run_training(resolve_mapping(load_yaml(default_config_path()), overrides)).run_dir
