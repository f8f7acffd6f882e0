"""The front is taken over everything a search scored with the run's scoring: its candidates, the pool, the
baseline; a candidate a pool subnet dominates is not on it (no TensorFlow)."""

from __future__ import annotations

from edgeflownas.model.cost import CostTable
from edgeflownas.nas import front as fr
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, arch_name
from edgeflownas.search.run import scored_entries
from edgeflownas.search.space import parse_constraint

# Option o of block b costs (b + 1) * o MMACs and o params over a 1-MMAC stem: additive, as the real table.
TABLE = CostTable(8, 8, (0, 10**6), tuple(tuple((o, (b + 1) * o * 10**6) for o in range(3)) for b in range(9)))
CANDIDATE = (0, 2, 0, 0, 0, 0, 0, 0, 1)  # 1 + 4 + 9 = 14 MMACs
POOL_SUBNET = (1, 0, 0, 0, 0, 0, 0, 1, 0)  # 1 + 1 + 8 = 10 MMACs: cheaper, and scored better below


def test_a_candidate_a_pool_subnet_dominates_is_not_on_the_front():
    scores = {CANDIDATE: 1.1446, (0,) * 9: 2.0}
    marked = {POOL_SUBNET: 1.1405, EDGEFLOWNET_BASELINE: 1.5}
    entries = scored_entries(scores, marked, TABLE, [])
    names = [e["name"] for e in fr.fronts(entries)["macs"]]
    assert arch_name(POOL_SUBNET) in names and arch_name(CANDIDATE) not in names
    assert [e.get("marked") for e in entries] == [None, None, "pool", "baseline"]
    bound = [parse_constraint("macs<=12e6")]
    assert [e["name"] for e in scored_entries(scores, marked, TABLE, bound)] == [
        arch_name(CANDIDATE), arch_name((0,) * 9), arch_name(POOL_SUBNET)]  # the baseline breaks the bound


def test_a_pool_subnet_the_strategy_also_scored_is_listed_once():
    entries = scored_entries({POOL_SUBNET: 1.2}, {POOL_SUBNET: 1.2, EDGEFLOWNET_BASELINE: 1.5}, TABLE, [])
    assert [e["name"] for e in entries] == [arch_name(POOL_SUBNET), arch_name(EDGEFLOWNET_BASELINE)]
