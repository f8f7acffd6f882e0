"""Data fixtures: tiny valid FC2 splits written with the strict writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeflownas.data.io import write_flo, write_image_rgb

TINY = (24, 32)  # (height, width) of fixture samples


def write_fc2_sample(directory: Path, index: int, size=TINY, seed: int = 0) -> Path:
    """Write one random NNNNNNN-{img_0,img_1,flow_01} triplet; return the img_0 path."""
    rng = np.random.default_rng([seed, index])
    height, width = size
    stem = directory / f"{index:07d}"
    write_image_rgb(Path(f"{stem}-img_0.png"), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    write_image_rgb(Path(f"{stem}-img_1.png"), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    write_flo(Path(f"{stem}-flow_01.flo"), rng.normal(0, 3, (height, width, 2)).astype(np.float32))
    return Path(f"{stem}-img_0.png")


@pytest.fixture
def fc2_root(tmp_path):
    """An FC2-like root with train/ (5 samples) and val/ (3 samples) of tiny valid triplets.

    Ids restart at 0000000 in each split, as in FC2; the content differs (another seed).
    """
    root = tmp_path / "FlyingChairs2"
    for seed, (split, count) in enumerate((("train", 5), ("val", 3))):
        (root / split).mkdir(parents=True)
        for index in range(count):
            write_fc2_sample(root / split, index, seed=seed)
    return root


@pytest.fixture
def write_sample():
    """The triplet writer above, for tests that build their own split folders."""
    return write_fc2_sample


@pytest.fixture(scope="session")
def synth_fc2(tmp_path_factory) -> Path:
    """A small synthetic FC2 root from 'efnas synth': train/ 10 and val/ 4 samples at 96x128 (read-only)."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth") / "FC2"
    write_dataset(root, train=10, val=4, seed=7, height=96, width=128)
    return root


@pytest.fixture(scope="session")
def packed_fc2(synth_fc2, tmp_path_factory) -> Path:
    """``synth_fc2`` packed at 48x64 in shards of 4 samples (read-only; copy it before damaging it)."""
    from edgeflownas.data.pack import pack

    out = tmp_path_factory.mktemp("packed") / "shards"
    pack(synth_fc2, out, height=48, width=64, shard_size=4, workers=1)
    return out
