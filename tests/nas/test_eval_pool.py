"""The stratified evaluation pool: 4 fairness cycles, every option exactly 4 times, fixed by the seed."""

from __future__ import annotations

import json

import pytest

from edgeflownas.errors import CheckpointError
from edgeflownas.nas import eval_pool as ep


@pytest.mark.parametrize("seed", [0, 42, 12345])
def test_pool_of_12_is_stratified_and_distinct(seed):
    pool = ep.build_pool(seed, 12)
    assert len(pool) == 12 and len(set(pool)) == 12
    assert ep.check_pool(pool) == []
    assert (ep.pool_option_counts(pool) == 4).all()
    for g in range(4):
        group = pool[3 * g:3 * g + 3]
        for block in range(9):
            assert sorted(code[block] for code in group) == [0, 1, 2]


def test_pool_is_a_pure_function_of_the_seed():
    assert ep.build_pool(42) == ep.build_pool(42)
    assert ep.build_pool(42) != ep.build_pool(43)


def test_other_pool_sizes_keep_the_rule():
    pool = ep.build_pool(1, 6)
    assert (ep.pool_option_counts(pool) == 2).all()
    with pytest.raises(ValueError, match="multiple of 3"):
        ep.build_pool(1, 10)


def test_saved_pool_carries_seed_and_reads_back(tmp_path):
    path = tmp_path / ep.pool_file_name(12)
    pool = ep.build_pool(42)
    ep.save_pool(path, 42, pool)
    doc = json.loads(path.read_text())
    assert path.name == "eval_pool_12.json"
    assert doc["seed"] == 42 and doc["pool_size"] == 12
    assert doc["option_counts"]["EB0"] == [4, 4, 4]
    assert [s["group"] for s in doc["subnets"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert len({s["name"] for s in doc["subnets"]}) == 12
    assert ep.load_pool(path) == (42, pool)


def test_missing_or_broken_pool_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        ep.load_pool(tmp_path / "eval_pool_12.json")
    broken = tmp_path / "broken.json"
    pool = list(ep.build_pool(42))
    pool[0] = pool[1]
    broken.write_text(json.dumps({"seed": 42, "subnets": [{"arch_code": list(c)} for c in pool]}))
    with pytest.raises(CheckpointError, match="invalid"):
        ep.load_pool(broken)
