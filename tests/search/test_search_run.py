"""``efnas search`` on a tiny trained run: scores equal eval's, store reuse, kill -9 resume, outputs, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeflownas.cli import main
from edgeflownas.nas.arch_codec import parse_arch_code
from edgeflownas.nas import front as fr
from edgeflownas.search.run import SearchRequest, run_search
from edgeflownas.search.strategies import StrategySettings

pytestmark = pytest.mark.slow

# 27 codes: only H0, H2, H4 (the three flow heads' kernels) are free.
FIXED = ("EB0=0", "EB1=0", "DB0=0", "DB1=0", "H1=1", "H3=1")


def search(run_dir, out, **settings):
    request = SearchRequest(run_dir, out, StrategySettings(**settings), fixed=FIXED)
    return run_search(request)


def test_exhaustive_front_matches_eval_scores_and_is_reused(search_run, tmp_path):
    from edgeflownas.train.trained_run import TrainedRun

    doc = search(search_run, tmp_path, strategy="exhaustive", population=9)
    scored = [json.loads(line) for line in (tmp_path / fr.ALL_FILE).read_text().splitlines()]
    assert doc["searched"] == 27 == doc["feasible"] and doc["scored"] == len(scored) >= 27
    assert {e["name"] for e in doc["front_macs"]} == {e["name"] for e in fr.fronts(scored)["macs"]}
    with TrainedRun.open(search_run, "best").evaluator() as evaluator:
        for e in scored[:3] + doc["front_macs"][:1]:
            assert evaluator.evaluate(tuple(e["arch_code"])).epe == pytest.approx(e["epe"], rel=1e-6)
    assert len(doc["marks"]["pool"]) == 12 and doc["marks"]["baseline"][0]["name"] == "a000021222"
    assert (tmp_path / fr.FIGURE_FILE).stat().st_size > 10_000
    store_lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "store").glob("*.jsonl"))
    again = search(search_run, tmp_path, strategy="exhaustive", population=9)
    assert again["front_macs"] == doc["front_macs"] and again["seconds_per_candidate"] is None
    assert sum(len(p.read_text().splitlines()) for p in (tmp_path / "store").glob("*.jsonl")) == store_lines
    assert fr.pick(doc, "best") == tuple(doc["front_macs"][[e["name"] for e in doc["front_macs"]].index(
        doc["ranked"][0])]["arch_code"])


def test_kill_9_mid_search_resumes_to_the_uninterrupted_result(search_run, tmp_path):
    args = ["--run", str(search_run), "--budget", "20", "--population", "5", "--parents", "3", "--seed", "3",
            "--json"] + [part for fix in FIXED[:3] for part in ("--fix", fix)]
    whole = CliRunner().invoke(main, ["search", *args, "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output + whole.stderr
    out = tmp_path / "killed"
    child = subprocess.Popen([str(Path(sys.executable).parent / "efnas"), "search", *args, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store = out / "store" / "driver.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None:
        if store.is_file() and len(store.read_bytes().splitlines()) >= 7:
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    assert not (out / fr.FRONT_FILE).exists()
    resumed = CliRunner().invoke(main, ["search", *args, "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    first, second = json.loads(whole.stdout), json.loads(resumed.stdout)
    for key in ("front_macs", "front_params", "ranked", "scored"):
        assert first[key] == second[key]
    assert (tmp_path / "whole" / fr.ALL_FILE).read_text() == (out / fr.ALL_FILE).read_text()


def test_subset_scoring_rescores_the_front_on_all_val_batches(search_run, tmp_path):
    doc = search(search_run, tmp_path, strategy="random", budget=6, population=6)
    assert doc["scoring"]["val_batches"] == doc["front_scoring"]["val_batches"]
    subset = run_search(SearchRequest(search_run, tmp_path / "subset", StrategySettings("random", 6, population=6),
                                      fixed=FIXED, val_batches=1))
    assert subset["scoring"]["val_batches"] == 1 < subset["front_scoring"]["val_batches"]
    assert all("epe_search" in e for e in subset["front_macs"])


@pytest.mark.parametrize("extra, message", [
    (["--constraint", "flops<=1e9"], "unknown key 'flops'"),
    (["--constraint", "macs<=10"], "no code of the 19683-code space meets macs<=10"),
    (["--budget", "0"], "--budget 0"),
    (["--fix", "EB9=1"], "--fix 'EB9=1'"),
])
def test_bad_input_is_one_line(search_run, tmp_path, extra, message):
    result = CliRunner().invoke(main, ["search", "--run", str(search_run), "--out",
                                                       str(tmp_path), *extra])
    assert result.exit_code != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_run_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "empty_run").mkdir()
    result = CliRunner().invoke(main, ["search", "--run", str(tmp_path / "empty_run")])
    assert result.exit_code != 0 and "supernet_best" in result.stderr and "Traceback" not in result.stderr


def test_pick_reads_best_and_rank():
    doc = {"ranked": ["a000000001", "a000000000"],
           "front_macs": [{"name": "a000000000", "arch_code": [0] * 9}, {"name": "a000000001", "arch_code": [0] * 8 + [1]}]}
    assert fr.pick(doc, "best") == parse_arch_code("a000000001")
    assert fr.pick(doc, "rank:2") == (0,) * 9
    assert fr.pick(doc, "0,0,0,0,0,0,0,0,0") is None
    with pytest.raises(Exception, match="rank:1 .. rank:2"):
        fr.pick(doc, "rank:3")
