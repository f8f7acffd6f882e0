"""The loader: folders and shards give identical samples; order = f(seed, epoch); exact resume; fork safety."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeflownas.config_types import DataConfig
from edgeflownas.config import resolve
from edgeflownas.data.loader import BatchLoader, FolderSource, ShardSource, open_source, worker_count
from edgeflownas.data.pack import pack
from edgeflownas.data.shards import hdf5_locking
from edgeflownas.errors import ConfigError, DataError


def data_config(synth_fc2, source="folders", shards_dir=None, height=48, width=64) -> DataConfig:
    return DataConfig(source=source, train_dir=str(synth_fc2 / "train"), val_dir=str(synth_fc2 / "val"),
                      shards_dir=None if shards_dir is None else str(shards_dir), input_height=height,
                      input_width=width, num_workers=2, prefetch_batches=2)


def assert_same_samples(left, right) -> None:
    assert left.sample_ids == right.sample_ids
    batch_left, batch_right = left.get_batch(range(len(left))), right.get_batch(range(len(right)))
    assert batch_left.ids == batch_right.ids
    for name in ("img0", "img1", "flow"):
        np.testing.assert_array_equal(getattr(batch_left, name), getattr(batch_right, name))


@pytest.mark.parametrize("split", ["train", "val"])
def test_shard_sample_equals_folder_sample_after_the_same_resize(synth_fc2, packed_fc2, split):
    folders = open_source(data_config(synth_fc2), split)
    packed = open_source(data_config(synth_fc2, "shards", packed_fc2), split)
    assert isinstance(folders, FolderSource) and isinstance(packed, ShardSource)
    assert_same_samples(folders, packed)
    img0, img1, flow = packed.get(3)
    assert img0.shape == (48, 64, 3) and img0.dtype == np.uint8 and flow.shape == (48, 64, 2)
    assert flow.dtype == np.float32
    packed.close()


def test_native_shards_are_resized_on_read_like_folders(synth_fc2, tmp_path):
    pack(synth_fc2, tmp_path / "native", resolution="native", shard_size=6, workers=1)
    native = ShardSource(tmp_path / "native", "val", 48, 64)
    assert native.stored_size == (96, 128)
    assert_same_samples(FolderSource(synth_fc2 / "val", "val", 48, 64), native)


def test_shards_of_another_training_size_are_refused(synth_fc2, packed_fc2):
    with pytest.raises(DataError, match=r"shards are stored at 48x64 but .* is 96x128; re-pack with "
                                        r"'efnas pack --height 96 --width 128'"):
        open_source(data_config(synth_fc2, "shards", packed_fc2, height=96, width=128), "train")


def test_shards_source_needs_shards_dir(synth_fc2):
    with pytest.raises(ConfigError, match="data.shards_dir must be set"):
        open_source(data_config(synth_fc2, "shards"), "train")


def test_empty_split_names_the_folder_and_pattern(synth_fc2, tmp_path):
    (tmp_path / "val").mkdir()
    config = DataConfig("folders", str(synth_fc2 / "train"), str(tmp_path / "val"), None, 48, 64, 0, 1)
    with pytest.raises(DataError, match=r"val split is empty: no usable sample matching NNNNNNN-img_0\.png.*"
                                        + str(tmp_path / "val")):
        open_source(config, "val")


def test_bad_sample_in_a_folder_is_an_error_naming_the_file(synth_fc2, tmp_path):
    shutil.copytree(synth_fc2 / "train", tmp_path / "train")
    (tmp_path / "train" / "0000002-img_1.png").write_bytes(b"")
    with pytest.raises(DataError, match="0000002-img_1.png: zero-byte"):
        FolderSource(tmp_path / "train", "train", 48, 64)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    loader, twin = BatchLoader(source, 3, seed=11), BatchLoader(source, 3, seed=11)
    np.testing.assert_array_equal(loader.epoch_order(4), twin.epoch_order(4))
    assert sorted(loader.epoch_order(4)) == list(range(10))
    assert not np.array_equal(loader.epoch_order(4), loader.epoch_order(5))
    assert not np.array_equal(loader.epoch_order(4), BatchLoader(source, 3, seed=12).epoch_order(4))
    np.testing.assert_array_equal(loader.epoch_order(2), np.random.default_rng((11, 2)).permutation(10))


def test_resume_at_a_batch_index_continues_exactly(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    with BatchLoader(source, 3, seed=5, num_workers=2, prefetch_batches=2) as loader:
        full = list(loader.batches(epoch=1))
        resumed = list(loader.batches(epoch=1, start_batch=2))
    assert loader.num_batches == 3 and len(full) == 3
    order = loader.epoch_order(1)
    assert [batch.ids for batch in full] == [tuple(source.sample_ids[i] for i in order[b * 3:b * 3 + 3])
                                             for b in range(3)]
    assert [batch.ids for batch in resumed] == [full[2].ids]
    np.testing.assert_array_equal(resumed[0].flow, full[2].flow)


@pytest.mark.parametrize("kind", ["folders", "shards"])
def test_background_workers_give_the_same_batches_as_inline_loading(synth_fc2, packed_fc2, kind):
    if kind == "folders":
        source = FolderSource(synth_fc2 / "train", "train", 48, 64)
    else:
        source = ShardSource(packed_fc2, "train", 48, 64)
    inline = list(BatchLoader(source, 2, seed=1, num_workers=0).batches(0))
    with BatchLoader(source, 2, seed=1, num_workers=2, prefetch_batches=3) as loader:
        threaded = list(loader.batches(0))
    assert [b.ids for b in inline] == [b.ids for b in threaded]
    for left, right in zip(inline, threaded):
        for name in ("img0", "img1", "flow"):
            np.testing.assert_array_equal(getattr(left, name), getattr(right, name))


def test_auto_workers_read_shards_inline_and_decode_folders_in_threads(synth_fc2, packed_fc2, monkeypatch):
    """Threads do not speed up memory-bound shard copies (bench_loader), so ``auto`` reads shards inline."""
    folders = open_source(data_config(synth_fc2), "train")
    packed = open_source(data_config(synth_fc2, "shards", packed_fc2), "train")
    assert worker_count("auto", packed) == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert worker_count("auto", folders) == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert worker_count("auto", folders) == 4
    assert worker_count(3, packed) == 3 and worker_count(0, folders) == 0  # a count is kept as given


def test_num_workers_defaults_to_auto_and_refuses_other_words(write_config):
    assert resolve(None).config.data.num_workers == "auto"
    assert resolve(None, {"data.num_workers": 3}).config.data.num_workers == 3
    with pytest.raises(ConfigError, match="num_workers"):
        resolve(None, {"data.num_workers": "many"})


def fresh_copy(source, batch):
    """The samples of ``batch`` read again into new arrays."""
    index = {sample_id: number for number, sample_id in enumerate(source.sample_ids)}
    return source.get_batch([index[sample_id] for sample_id in batch.ids])


def assert_same_batch(left, right) -> None:
    assert left.ids == right.ids
    for name in ("img0", "img1", "flow"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name))


def test_a_kept_batch_keeps_its_values_while_later_batches_reuse_the_buffers(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    loader = BatchLoader(source, 3, seed=2, num_workers=0)
    first_epoch = loader.batches(0)
    kept = next(first_epoch)
    second = next(first_epoch)
    expected_view = fresh_copy(source, second).flow[1:, ::2, :, 1]
    view = second.flow[1:, ::2][..., 1]  # a view of a view is all that is left of the second batch
    del second
    loaded = 2
    for epoch in range(1, 4):
        for batch in loader.batches(epoch):
            assert_same_batch(batch, fresh_copy(source, batch))
            loaded += 1
    assert loaded == 11 and loader.buffers.made <= 4  # buffers were reused ...
    assert_same_batch(kept, fresh_copy(source, kept))  # ... but not the ones still referred to
    np.testing.assert_array_equal(view, expected_view)


def test_worker_threads_reusing_buffers_give_each_batch_its_own_samples(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    with BatchLoader(source, 2, seed=3, num_workers=2, prefetch_batches=2) as loader:
        for epoch in range(3):
            for batch in loader.batches(epoch):
                assert_same_batch(batch, fresh_copy(source, batch))
                assert all(array.ctypes.data % 64 == 0 for array in (batch.img0, batch.img1, batch.flow))
                assert not any(array.flags.writeable for array in (batch.img0, batch.img1, batch.flow))
        assert 3 * loader.num_batches == 15 and loader.buffers.made <= 5


def test_drop_last_and_too_large_batches(packed_fc2):
    source = ShardSource(packed_fc2, "val", 48, 64)
    assert BatchLoader(source, 3, seed=0).num_batches == 1
    kept = list(BatchLoader(source, 3, seed=0, num_workers=0, drop_last=False).batches(0))
    assert [len(batch.ids) for batch in kept] == [3, 1]
    with pytest.raises(DataError, match="4 samples cannot fill one batch of 5"):
        BatchLoader(source, 5, seed=0)


HOLD_WRITE_LOCK = """
import sys, h5py
handle = h5py.File(sys.argv[1], "w", locking=True)
handle.create_dataset("x", data=[1])
handle.flush()
print("locked", flush=True)
sys.stdin.read()
"""

# HDF5 reads HDF5_USE_FILE_LOCKING once, when h5py is first imported (e.g. by TensorFlow).
OPEN_AFTER_H5PY_IMPORT = """
import os, sys
os.environ.pop("HDF5_USE_FILE_LOCKING", None)
import h5py
from edgeflownas.data.shards import open_shard
open_shard(sys.argv[1]).close()
print(os.environ["HDF5_USE_FILE_LOCKING"])
"""


def test_a_file_locked_by_another_process_still_opens(tmp_path):
    """As on cluster filesystems where locks fail: shards open with locking off unless the user chose."""
    locked = tmp_path / "locked.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(locked)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        opener = subprocess.run([sys.executable, "-c", OPEN_AFTER_H5PY_IMPORT, str(locked)],
                                capture_output=True, text=True)
    finally:
        holder.communicate("")
    assert opener.returncode == 0, opener.stderr
    assert opener.stdout.strip() == "FALSE"


def test_a_user_choice_of_file_locking_is_kept(monkeypatch):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "TRUE")
    assert hdf5_locking() == {} and os.environ["HDF5_USE_FILE_LOCKING"] == "TRUE"
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING")
    assert hdf5_locking() == {"locking": False} and os.environ["HDF5_USE_FILE_LOCKING"] == "FALSE"


def read_in_child(source, queue) -> None:
    queue.put((len(source._files), source.get(5)[2].sum(), len(source._files)))


def test_a_forked_worker_opens_its_own_files(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    expected = source.get(5)[2].sum()  # the parent has the shard open before the fork
    parent_views = source._files[1]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=read_in_child, args=(source, queue))
    with source._lock:  # even a lock held by a parent thread at fork time must not block the child
        child.start()
        files_at_start, flow_sum, files_after_read = queue.get(timeout=60)
    child.join()
    assert child.exitcode == 0 and flow_sum == expected
    assert (files_at_start, files_after_read) == (0, 1)
    assert source._files[1] is parent_views


def test_a_pickled_source_carries_no_open_file(packed_fc2):
    source = ShardSource(packed_fc2, "train", 48, 64)
    source.get(0)
    clone = pickle.loads(pickle.dumps(source))
    assert clone._files == {}
    np.testing.assert_array_equal(clone.get(0)[0], source.get(0)[0])
