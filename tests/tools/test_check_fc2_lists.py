"""Legacy list audit (tools/data_check/check_fc2_lists.py): list entries against the files on disk."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "data_check" / "check_fc2_lists.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("check_fc2_lists_under_test", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def legacy(tmp_path):
    """A stale list in miniature: 10 entries under /Datasets/FlyingChairs2/train, test ones absent on disk."""
    lists, base = tmp_path / "lists", tmp_path / "root"
    train_dir = base / "Datasets" / "FlyingChairs2" / "train"
    lists.mkdir()
    train_dir.mkdir(parents=True)
    entries = [f"/Datasets/FlyingChairs2/train/{i:07d}-img_0.png" for i in range(10)]
    (lists / "FC2_dirnames.txt").write_text("\n".join(entries) + "\n")
    (lists / "FC2_train.txt").write_text("0\n1\n2\n3\n4\n5\n")
    (lists / "FC2_test.txt").write_text("6\n7\n8\n")
    for i in range(6):
        for part in ("img_0.png", "img_1.png", "flow_01.flo"):
            (train_dir / f"{i:07d}-{part}").write_bytes(b"")
    return lists, base


def test_audit_counts_and_attributes_missing_entries_to_their_split(tool, legacy):
    report = tool.audit_lists(*legacy)
    dirnames = report["FC2_dirnames.txt"]
    assert (dirnames["total_entries"], dirnames["img0_exists"], dirnames["missing_img0"]) == (10, 6, 4)
    train, val, test = (report["splits"][s] for s in ("train", "val", "test"))
    assert (train["total_entries"], train["img0_exists"], train["missing_img0"]) == (6, 6, 0)
    assert val == {"file": "FC2_val.txt", "present": False}
    assert (test["total_entries"], test["img0_exists"], test["missing_img0"]) == (3, 0, 3)
    assert report["missing_img0_by_split"] == {"train": 0, "val": 0, "test": 3, "unreferenced": 1}
    assert list(test["folders"]) == [str(legacy[1] / "Datasets" / "FlyingChairs2" / "train")]
    assert not tool.audit_ok(report)


def test_out_of_range_and_malformed_indices(tool, legacy):
    lists, base = legacy
    (lists / "FC2_val.txt").write_text("3\n99\n")
    report = tool.audit_lists(lists, base)
    assert report["splits"]["val"]["out_of_range"] == 1
    (lists / "FC2_val.txt").write_text("3\nseven\n")
    with pytest.raises(tool.ListFileError, match="FC2_val.txt: line 2 holds 'seven', expected an integer index"):
        tool.audit_lists(lists, base)


def test_runs_stand_alone_without_efnas(legacy):
    lists, base = legacy
    code = ("import runpy, sys\n"
            "sys.modules['edgeflownas'] = None  # any efnas import would now fail\n"
            f"sys.argv = ['check_fc2_lists.py', {str(lists)!r}, '--base_path', {str(base)!r}]\n"
            f"runpy.run_path({str(TOOL)!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:4] == ["FC2_dirnames.txt", "10", "6", "4"] for line in lines), done.stdout
    assert any(line.split()[:4] == ["FC2_test.txt", "3", "0", "3"] for line in lines), done.stdout
    assert "by split: train=0, val=0, test=3, unreferenced=1" in done.stdout


def test_missing_dirnames_exits_2(tmp_path):
    done = subprocess.run([sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "FC2_dirnames.txt: missing" in done.stderr


def test_reachable_through_efnas_data_check(cli, legacy, tmp_path):
    lists, base = legacy
    result = cli("data-check", "--lists", lists, "--lists_base", base, "--report", tmp_path / "r.json")
    assert result.exit_code == 1
    assert "test=3" in result.output and "legacy lists in" in result.output
    (lists / "FC2_test.txt").write_text("")
    (lists / "FC2_dirnames.txt").write_text("\n".join(f"/Datasets/FlyingChairs2/train/{i:07d}-img_0.png" for i in range(6)))
    assert cli("data-check", "--lists", lists, "--lists_base", base, "--report", tmp_path / "r.json").exit_code == 0
