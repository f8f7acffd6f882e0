"""Strict fairness: every cycle uses every option once; the sequence is a pure function of (seed, cycle)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from edgeflownas.nas import fair_sampler as fs


@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1])
def test_each_cycle_uses_every_option_of_every_block_once(seed):
    for k in range(50):
        paths = fs.cycle_paths(seed, k)
        assert len(paths) == 3 and all(len(code) == 9 for code in paths)
        for block in range(9):
            assert sorted(code[block] for code in paths) == [0, 1, 2]


def test_counts_are_equal_after_any_number_of_complete_cycles():
    counts = fs.empty_counts()
    for k in range(37):
        fs.add_counts(counts, fs.cycle_paths(7, k))
        assert fs.fairness_gap(counts) == 0
        assert (counts == k + 1).all()


def test_partial_cycle_shows_a_gap():
    counts = fs.add_counts(fs.empty_counts(), fs.cycle_paths(7, 0)[:1])
    assert fs.fairness_gap(counts) == 1


def test_pure_function_of_seed_and_cycle_index():
    assert fs.cycle_paths(42, 123) == fs.cycle_paths(42, 123)
    assert [fs.cycle_paths(42, k) for k in range(100)] != [fs.cycle_paths(43, k) for k in range(100)]
    # Starting mid-sequence (a resume) gives the same cycles as running through.
    assert fs.option_counts(42, 10, start_cycle=5).tolist() == (np.full((9, 3), 10)).tolist()


def test_cycles_are_not_all_the_same():
    distinct = {fs.cycle_paths(42, k) for k in range(100)}
    assert len(distinct) > 90


def test_option_counts_rejects_short_codes():
    with pytest.raises(ValueError, match="length 8"):
        fs.add_counts(fs.empty_counts(), [(0,) * 8])


def _run_check(*args):
    return subprocess.run([sys.executable, "-m", "edgeflownas.nas.fair_sampler", *args],
                          capture_output=True, text=True, timeout=120)


def test_module_check_passes_and_two_runs_agree():
    first, second = _run_check("--cycles", "300", "--seed", "42", "--check"), _run_check("--cycles", "300", "--seed", "42", "--check")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "check: OK" in first.stdout and "fairness_gap=0" in first.stdout
    rows = [line.split() for line in first.stdout.splitlines() if re.match(r"(EB|DB|H)\d ", line)]
    assert len(rows) == 9 and all(row[1:4] == ["300", "300", "300"] for row in rows)
    digest = [line for line in first.stdout.splitlines() if line.startswith("first_100_cycles_sha256=")]
    assert digest and digest[0] in second.stdout.splitlines()


def test_check_fails_when_counts_are_wrong(monkeypatch):
    monkeypatch.setattr(fs, "cycle_paths", lambda seed, k: ((0,) * 9, (0,) * 9, (1,) * 9))
    assert fs.main(["--cycles", "3", "--check"]) == 1
