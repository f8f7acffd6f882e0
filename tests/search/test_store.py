"""The search store: dedup by key, torn last lines, several writers, damaged files."""

from __future__ import annotations

import pytest

from edgeflownas.errors import SearchError
from edgeflownas.search.store import ResultStore

SCORING = {"recal_batches": 2, "val_batches": 1, "batch_size": 2}


def record(code, epe, sha="abc", scoring=SCORING):
    return {"checkpoint_sha256": sha, "arch_code": list(code), "scoring": dict(scoring), "epe": epe}


def test_a_result_is_stored_once_per_key_and_read_back(tmp_path):
    store = ResultStore(tmp_path)
    store.add(record((0,) * 9, 1.5))
    store.add(record((0,) * 9, 9.9))
    store.add(record((0,) * 9, 2.5, sha="other"))
    store.add(record((0,) * 9, 3.5, scoring=dict(SCORING, val_batches=4)))
    again = ResultStore(tmp_path)
    assert again.get("abc", (0,) * 9, SCORING)["epe"] == 1.5
    assert again.get("other", (0,) * 9, SCORING)["epe"] == 2.5
    assert again.get("abc", (1,) * 9, SCORING) is None
    assert [r["epe"] for r in again.matching("abc", SCORING)] == [1.5]
    assert len(store.path.read_text().splitlines()) == 3


def test_torn_last_line_is_ignored_then_cut_by_its_writer(tmp_path):
    store = ResultStore(tmp_path)
    store.add(record((0,) * 9, 1.0))
    with open(store.path, "a") as handle:
        handle.write('{"checkpoint_sha256": "abc", "arch_co')
    reader = ResultStore(tmp_path, writer="reader")
    assert len(reader.results) == 1
    writer = ResultStore(tmp_path)
    writer.add(record((1,) * 9, 2.0))
    assert [line[:1] for line in writer.path.read_text().splitlines()] == ["{", "{"]
    assert ResultStore(tmp_path).get("abc", (1,) * 9, SCORING)["epe"] == 2.0


def test_writers_have_their_own_files_and_readers_merge_them(tmp_path):
    ResultStore(tmp_path, writer="task-0").add(record((0,) * 9, 1.0))
    ResultStore(tmp_path, writer="task-1").add(record((2,) * 9, 2.0))
    merged = ResultStore(tmp_path)
    assert merged.get("abc", (0,) * 9, SCORING) and merged.get("abc", (2,) * 9, SCORING)


def test_a_damaged_line_in_the_middle_names_file_and_line(tmp_path):
    store = ResultStore(tmp_path)
    store.add(record((0,) * 9, 1.0))
    with open(store.path, "a") as handle:
        handle.write("not json\n")
    store.add(record((1,) * 9, 1.0))
    with pytest.raises(SearchError, match=r"driver\.jsonl line 2 is damaged"):
        ResultStore(tmp_path, writer="other")


def test_read_also_folders_are_merged_but_never_written(tmp_path):
    ResultStore(tmp_path / "run_store", writer="driver").add(record((0,) * 9, 1.0))
    before = (tmp_path / "run_store" / "driver.jsonl").read_bytes()
    store = ResultStore(tmp_path / "own", writer="study", read_also=[tmp_path / "run_store"])
    assert store.get("abc", (0,) * 9, SCORING)["epe"] == 1.0
    store.add(record((0,) * 9, 7.0))  # already known through the other folder: not added again
    store.add(record((1,) * 9, 2.0))
    assert (tmp_path / "run_store" / "driver.jsonl").read_bytes() == before
    assert [line.count("arch_code") for line in store.path.read_text().splitlines()] == [1]
    assert ResultStore(tmp_path / "own", writer="x").get("abc", (0,) * 9, SCORING) is None
