"""Fixtures for the model tests: the shipped model/loss config and seeded random batches."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Small enough for CPU CI; 1/8 and 1/16 of 32 are 4 and 2, so every stage is exercised.
HEIGHT, WIDTH, BATCH = 32, 48, 2


@pytest.fixture(scope="session")
def cfg():
    """The resolved shipped config (model and loss sections are what the network needs)."""
    from edgeflownas.config import resolve

    return resolve(None).config


@pytest.fixture(scope="session")
def make_batch():
    """Return ``make(seed) -> (img0, img1, flow)`` at the test size, from ``np.random.default_rng(seed)``."""

    def make(seed: int, batch: int = BATCH, height: int = HEIGHT, width: int = WIDTH):
        rng = np.random.default_rng(seed)
        img0 = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        img1 = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        flow = rng.normal(0.0, 3.0, (batch, height, width, 2)).astype(np.float32)
        return img0, img1, flow

    return make


@pytest.fixture(scope="session")
def size():
    """(height, width, batch) every model test uses."""
    return HEIGHT, WIDTH, BATCH
