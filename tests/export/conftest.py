"""Export fixtures: a real retrain (fixed-arch) run of the tiny supernet."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def retrain_run(search_run, tmp_path_factory) -> Path:
    """A one-epoch ``efnas retrain`` of a mixed subnet of the tiny supernet (read-only)."""
    from edgeflownas.config import Overrides
    from edgeflownas.train.api import run_training
    from edgeflownas.train.retrain import retrain_config

    overrides = Overrides({"experiment.name": "retrained", "train.num_epochs": 1,
                           "experiment.output_root": str(tmp_path_factory.mktemp("retrain_runs"))}, {})
    return run_training(retrain_config(search_run, (1, 0, 2, 1, 0, 2, 1, 0, 2), "supernet", "best", None,
                                       overrides)).run_dir
