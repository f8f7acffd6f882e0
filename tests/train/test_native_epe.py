"""EPE at native resolution: the upsample-and-rescale math by hand, and where the native ground truth comes from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeflownas.data.io import read_flo
from edgeflownas.data.loader import FolderSource, ShardSource
from edgeflownas.data.pack import pack
from edgeflownas.train import native_epe
from edgeflownas.train.native_epe import NativeTruth, native_error_sum, upsample_flow


def constant(height, width, u, v):
    flow = np.empty((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def test_a_constant_flow_predicted_at_half_resolution_is_the_native_flow_scaled_by_two():
    predicted = constant(24, 32, 1.5, -0.5)
    assert np.allclose(upsample_flow(predicted, 48, 64), constant(48, 64, 3.0, -1.0))
    # Height and width scale separately: v by 48/24, u by 64/16.
    assert np.allclose(upsample_flow(constant(24, 16, 1.5, -0.5), 48, 64), constant(48, 64, 6.0, -1.0))
    # Against a native truth of (4, 3): every native pixel is off by (1, 4), i.e. sqrt(17) px.
    total, pixels = native_error_sum(predicted[None], [constant(48, 64, 4.0, 3.0)])
    assert pixels == 48 * 64 and total / pixels == pytest.approx(math.sqrt(17))
    # At the training resolution the truth is (2, 1.5), off by (0.5, 2.0): half the native EPE.
    assert total / pixels == pytest.approx(2 * math.hypot(0.5, 2.0))


def test_the_mean_is_over_all_native_pixels_of_samples_of_different_sizes():
    predicted = np.stack([constant(8, 8, 1.0, 0.0), constant(8, 8, 0.0, 0.0)])
    truths = [constant(16, 16, 0.0, 0.0), constant(8, 32, 0.0, 0.0)]  # errors 2 px and 0 px
    total, pixels = native_error_sum(predicted, truths)
    assert pixels == 256 + 256 and total == pytest.approx(2.0 * 256)


def test_folder_ground_truth_is_read_at_full_resolution(tiny_fc2):
    source = FolderSource(tiny_fc2 / "val", "val", 32, 48)
    truth = NativeTruth(source)
    assert truth.available and truth.reason is None
    ids = source.sample_ids[:2]
    flows = truth.flows(ids)
    assert [f.shape for f in flows] == [(48, 64, 2)] * 2 and truth.sizes == {(48, 64)}
    assert np.array_equal(flows[1], read_flo(source.samples[1].flow))
    assert truth.flows(ids[1:])[0] is flows[1], "read once, then served from memory"
    truth.close()


def test_the_cache_stops_at_its_budget(tiny_fc2, monkeypatch):
    monkeypatch.setattr(native_epe, "CACHE_BYTES", 48 * 64 * 2 * 4)  # one flow
    truth = NativeTruth(FolderSource(tiny_fc2 / "val", "val", 32, 48))
    first, second = truth.flows(truth._source.sample_ids[:2])
    assert truth.flows([truth._source.sample_ids[0]])[0] is first
    again = truth.flows([truth._source.sample_ids[1]])[0]
    assert again is not second and np.array_equal(again, second)


def test_shards_packed_at_the_training_size_have_no_native_truth(tiny_fc2, tmp_path):
    pack(tiny_fc2, tmp_path / "packed", height=32, width=48, shard_size=8, workers=1)
    truth = NativeTruth(ShardSource(tmp_path / "packed", "val", 32, 48))
    assert not truth.available
    assert "holds the validation flow at 32x48 (packed at the training size)" in truth.reason
    assert "--data_source folders" in truth.reason and "--resolution native" in truth.reason
    with pytest.raises(RuntimeError, match="not available"):
        truth.flows(["x"])


def test_native_shards_give_the_folder_ground_truth(tiny_fc2, tmp_path):
    pack(tiny_fc2, tmp_path / "native", resolution="native", shard_size=3, workers=1)
    shard_source = ShardSource(tmp_path / "native", "val", 32, 48)
    folders = FolderSource(tiny_fc2 / "val", "val", 32, 48)
    truth = NativeTruth(shard_source)
    assert truth.available
    for sample_id, flow in zip(folders.sample_ids, truth.flows(folders.sample_ids)):
        assert flow.shape == (48, 64, 2)
        assert np.array_equal(flow, read_flo(folders.samples[folders.sample_ids.index(sample_id)].flow))
    truth.close()
    shard_source.close()
