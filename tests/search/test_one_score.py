"""One checkpoint, one score per subnet: the trainer's log, `efnas eval`, search and the study agree exactly.

The recalibration batches are drawn with the run's own seed whatever a command's options say, so a search's
strategy seed (``--strategy_seed``, or the old ``--seed``) changes which codes it proposes, never their scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeflownas.cli import main
from edgeflownas.nas import front as fr
from edgeflownas.nas.arch_codec import arch_name
from edgeflownas.report.eval_run import evaluate_run
from edgeflownas.search.run import SearchRequest, run_search
from edgeflownas.search.strategies import StrategySettings
from edgeflownas.train.trained_run import TrainedRun

pytestmark = pytest.mark.slow

# 27 codes: only H0, H2, H4 free.
FIXED = ("EB0=0", "EB1=0", "DB0=0", "DB1=0", "H1=1", "H3=1")


def _study_scores(run_dir: Path, codes, directory: Path):
    """The study's supernet scores of ``codes`` on a copy of ``run_dir`` (the study writes the run's search store)."""
    from launcher.study import Study, score_subnets

    values = {"study": {"output_root": str(directory.parent), "name": directory.name},
              "supernet": {"checkpoint": "best"}, "scoring": {"recal_batches": None}}
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / "run"
    shutil.copytree(run_dir, copy)
    return score_subnets(Study(directory / "study.yaml", values), copy, codes, lambda line: None)


def test_the_trainer_eval_search_and_study_give_the_pool_the_same_numbers(search_run, tmp_path):
    run = TrainedRun.open(search_run, "best")
    pool = run.pool()
    logged = run.logged_epe()
    evaluated = {row["name"]: row["epe"] for row in
                 evaluate_run(search_run, ["pool"], "best", native_epe=False, with_cost=False).rows}
    searched = run_search(SearchRequest(search_run, tmp_path / "search", StrategySettings("random", 2, seed=11,
                                                                                         population=2), fixed=FIXED))
    marked = {e["name"]: e["epe"] for e in searched["marks"]["pool"]}
    studied = {name: entry["epe"] for name, entry in _study_scores(search_run, pool, tmp_path / "study")["subnets"].items()}
    names = [arch_name(code) for code in pool]
    assert len(names) == 12 and set(logged) >= set(names)
    for name in names:
        assert logged[name] == evaluated[name] == marked[name] == studied[name], name


def test_two_strategy_seeds_score_every_common_code_alike_and_as_eval(search_run, tmp_path):
    runner = CliRunner()
    base = ["search", "--run", str(search_run), "--strategy", "random", "--budget", "6", "--population", "6",
            "--json"] + [part for fix in FIXED for part in ("--fix", fix)]
    first = runner.invoke(main, base + ["--seed", "0", "--out", str(tmp_path / "a")])
    second = runner.invoke(main, base + ["--strategy_seed", "7", "--out", str(tmp_path / "b")])
    again = runner.invoke(main, base + ["--seed", "7", "--out", str(tmp_path / "a")])  # into seed 0's store
    for result in (first, second, again):
        assert result.exit_code == 0, result.output + result.stderr
    scores = [{e["name"]: e["epe"] for e in fr.load_scored(tmp_path / out)} for out in ("a", "b")]
    common = set(scores[0]) & set(scores[1])
    assert len(common) >= 13  # the pool and the baseline at least
    assert all(scores[0][name] == scores[1][name] for name in common)
    assert json.loads(again.stdout)["strategy"]["seed"] == 7
    with TrainedRun.open(search_run, "best").evaluator() as evaluator:
        for name in sorted(common)[:3]:
            code = tuple(next(e for e in fr.load_scored(tmp_path / "a") if e["name"] == name)["arch_code"])
            assert evaluator.evaluate(code).epe == scores[0][name]
