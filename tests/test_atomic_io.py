"""Atomic artifact writes: readers see the old or the new file, never a torn one."""

from __future__ import annotations

import json
import os

import pytest

from edgeflownas import atomic_io


def test_json_and_csv_writes_replace_the_file_and_leave_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_io.write_json_atomic(path, {"x": 1})
    atomic_io.write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    csv_path = tmp_path / "h.csv"
    atomic_io.write_csv_atomic(csv_path, ["a", "b"], [{"a": 1, "b": 2}])
    assert csv_path.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "h.csv", "sub"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    atomic_io.write_json_atomic(path, {"x": 1})

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_io.write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 1}


def test_directory_swap_and_recovery_after_a_crash_between_renames(tmp_path):
    target = tmp_path / "ckpt"
    for version in ("v1", "v2"):
        staging = atomic_io.staging_dir(target)
        (staging / "data").write_text(version)
        atomic_io.replace_dir_atomic(staging, target)
    assert (target / "data").read_text() == "v2"
    # Simulate a crash after target was moved aside but before the new one arrived.
    os.replace(target, tmp_path / "ckpt.old")
    (atomic_io.staging_dir(target) / "data").write_text("half")
    atomic_io.recover_dir(target)
    assert (target / "data").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_read_json_names_a_missing_or_damaged_file_and_what_to_do(tmp_path):
    import pytest

    from edgeflownas.atomic_io import read_json
    from edgeflownas.errors import CheckpointError

    path = tmp_path / "doc.json"
    with pytest.raises(CheckpointError, match=f"{path} does not exist: make it"):
        read_json(path, CheckpointError, "make it", "repair it")
    for text in ("{\"a\": ", "[1, 2]", "\udcff"):
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(CheckpointError, match=f"{path} is damaged, .*: repair it"):
            read_json(path, CheckpointError, "make it", "repair it")
    path.write_text('{"a": 1}', encoding="utf-8")
    assert read_json(path, CheckpointError, "make it", "repair it") == {"a": 1}
