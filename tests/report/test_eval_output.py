"""`efnas eval`: row order (--sort), the written file (--out .csv/.json), a bad suffix, progress on stderr."""

from __future__ import annotations

import csv
import json

import pytest

from edgeflownas.errors import ConfigError
from edgeflownas.report.eval_run import EvalReport, SubnetProgress, evaluate_run, format_report, write_report


def row(name, code, epe, params, macs, logged=None):
    return {"name": name, "arch_code": code, "epe": epe, "outlier_1px": 0.5, "outlier_3px": 0.25,
            "outlier_5px": 0.125, "pixels": 96, "logged_epe": logged, "params": params, "macs": macs}


# Selection order: EPE, params and MACs each give another order.
ROWS = [row("a222222222", [2] * 9, 3.0, 300, 10), row("a000000000", [0] * 9, 1.0, 200, 30),
        row("a111111111", [1] * 9, 2.0, 100, 20)]


def report(rows=ROWS) -> EvalReport:
    return EvalReport("runs/x", "best", 3, 30, 8, 6, [dict(r) for r in rows])


@pytest.mark.parametrize("key, names", [
    ("epe", ["a000000000", "a111111111", "a222222222"]),
    ("params", ["a111111111", "a000000000", "a222222222"]),
    ("macs", ["a222222222", "a111111111", "a000000000"]),
    ("pool", ["a222222222", "a000000000", "a111111111"]),
])
def test_sort_orders_the_rows_and_the_table(key, names):
    ordered = report().sorted(key)
    assert [r["name"] for r in ordered.rows] == names and ordered.sorted_by == key
    lines = format_report(ordered).splitlines()
    assert f"sorted by {key}" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == names


def test_sort_by_cost_without_cost_and_unknown_keys_are_refused():
    without_cost = [{k: v for k, v in r.items() if k not in ("params", "macs")} for r in ROWS]
    with pytest.raises(ConfigError, match="--sort macs: no macs for a222222222"):
        report(without_cost).sorted("macs")
    with pytest.raises(ConfigError, match="--sort speed: expected one of epe, macs, params, pool"):
        report().sorted("speed")


def test_out_json_is_the_json_document(tmp_path):
    ordered = report().sorted("epe")
    path = write_report(ordered, tmp_path / "results.json")
    doc = json.loads(path.read_text())
    assert doc == ordered.to_dict()
    assert doc["sorted_by"] == "epe" and [s["name"] for s in doc["subnets"]][0] == "a000000000"


def test_out_csv_has_one_row_per_subnet_in_the_sorted_order(tmp_path):
    path = write_report(report().sorted("params"), tmp_path / "results.CSV")
    rows = list(csv.DictReader(path.open()))
    assert [r["name"] for r in rows] == ["a111111111", "a000000000", "a222222222"]
    first = rows[0]
    assert first["arch_code"] == "1,1,1,1,1,1,1,1,1" and float(first["epe"]) == 2.0
    assert int(first["params"]) == 100 and int(first["macs"]) == 20 and first["logged_epe"] == ""
    assert (first["checkpoint"], first["epoch"], first["global_step"], first["run_dir"]) == ("best", "3", "30",
                                                                                                "runs/x")
    assert not list(tmp_path.glob(".*tmp*")), "written atomically: no temp file left"


@pytest.mark.parametrize("name", ["results.txt", "results", "results.csv.gz"])
def test_a_bad_suffix_is_refused_before_anything_runs(cli, tmp_path, name):
    result = cli("eval", "--run", tmp_path / "no_run", "--arch", "baseline", "--out", tmp_path / name)
    assert result.exit_code != 0 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("Error: --out ") and "expected .csv or .json" in line
    with pytest.raises(ConfigError, match="expected .csv or .json"):
        write_report(report(), tmp_path / name)
    assert not (tmp_path / name).exists()


def test_progress_suffix_counts_the_subnets():
    lines = []
    clock = iter([100.0, 112.0, 130.0]).__next__  # the first subnet starts at 100 s, ends at 112, the second at 130
    progress = SubnetProgress(2, lines.append, clock)
    progress("checkpoint opened")
    progress.next()
    progress("eval subnet=a epe=1")
    progress.next()
    progress("eval subnet=b epe=2")
    assert lines == ["checkpoint opened", "eval subnet=a epe=1 [1/2 subnets, elapsed 0:00:12, ETA 0:00:12]",
                     "eval subnet=b epe=2 [2/2 subnets, elapsed 0:00:30, ETA 0:00:00]"]


@pytest.mark.slow
def test_eval_of_a_run_writes_the_sorted_rows_and_logs_progress(search_run, tmp_path):
    lines = []
    result = evaluate_run(search_run, ["pool"], "best", log=lines.append, sort="epe")
    epes = [r["epe"] for r in result.rows]
    assert len(epes) == 12 and epes == sorted(epes)
    progress = [line for line in lines if line.startswith("eval subnet=")]
    assert len(progress) == 12 and "[12/12 subnets, elapsed " in progress[-1]
    assert progress[-1].endswith(", ETA 0:00:00]")
    assert not any("bn_before" in line for line in lines)
    traced = []
    evaluate_run(search_run, ["baseline"], "best", log=traced.append, debug_trace=True)
    assert any("bn_before[" in line and "bn_after[" in line for line in traced)
    written = json.loads(write_report(result, tmp_path / "r.json").read_text())
    assert [s["epe"] for s in written["subnets"]] == epes
