"""efnas latency on the tiny run: probe models are what they claim, the table's format and arithmetic, the
measuring half runs without TensorFlow, and bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BLOCKS = ("EB0", "EB1", "DB0", "DB1", "H0", "H1", "H2", "H3", "H4")


@pytest.fixture(scope="module")
def measured(search_run, tmp_path_factory):
    """The tiny run's probes (kept) and its table at 1 thread, few runs."""
    from click.testing import CliRunner

    from edgeflownas.cli import main

    work = tmp_path_factory.mktemp("latency")
    args = ["latency", "--run", search_run, "--probes_out", work / "probes", "--out", work / "table.json",
            "--threads", "1", "--runs", "3", "--warmup", "1"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return work, json.loads((work / "table.json").read_text()), result.output


def _conv_kernels(path):
    """Shapes of the 4-d weight tensors of a TFLite file (tf.lite.Interpreter, independent of efnas)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    return sorted(tuple(d["shape"]) for d in interpreter.get_tensor_details() if len(d["shape"]) == 4
                  and d["shape"][0] > 1 and "flow" not in d["name"]), interpreter


@pytest.mark.slow
def test_probes_are_the_subnets_they_name(measured):
    import tensorflow as tf

    work, _, _ = measured
    probes = json.loads((work / "probes" / "probes.json").read_text())
    by_role = {p["role"]: p for p in probes["probes"]}
    assert probes["input_hw"] == [32, 48] and probes["model"]["init_neurons"] == 8
    assert len(probes["probes"]) == 1 + 9 * 2 + 6 and by_role["reference"]["arch_code"] == [0] * 9
    reference, _ = _conv_kernels(work / "probes" / by_role["reference"]["files"]["float"])
    deeper, _ = _conv_kernels(work / "probes" / by_role["EB0=2"]["files"]["float"])
    assert len(deeper) == len(reference) + 4  # two more ResBlocks of two convs each
    wider, _ = _conv_kernels(work / "probes" / by_role["H4=2"]["files"]["float"])
    sevens = [sum(tuple(s[1:3]) == (7, 7) for s in kernels) for kernels in (reference, wider)]
    assert len(wider) == len(reference) and sevens[1] == sevens[0] + 1  # H4's 3x3 conv became a 7x7 one
    interpreter = tf.lite.Interpreter(model_path=str(work / "probes" / by_role["reference"]["files"]["int8"]))
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.uint8}
    assert np.float32 not in {d["dtype"] for d in interpreter.get_tensor_details()}


@pytest.mark.slow
def test_table_format_and_its_arithmetic(measured):
    from edgeflownas.latency.table import read_table

    work, doc, output = measured
    assert doc["kind"] == "efnas-latency-table" and doc["input_hw"] == [32, 48]
    assert doc["device"]["runtime"] in ("litert", "tensorflow") and doc["device"]["runtime_version"]
    assert doc["device"]["cpus"] == os.cpu_count() and len(doc["measurement"]["load_average_start"]) == 3
    assert doc["measurement"]["runs"] == 3 and doc["measurement"]["warmup_runs"] == 1
    assert "untimed" in doc["measurement"]["order"] and "6 check subnets" in doc["measurement"]["retimed"]
    assert "model_error_pct + session_shift_pct" in doc["stated_error_basis"]
    assert sorted(doc["latency"]) == ["float", "int8"] and all(list(e) == ["1"] for e in doc["latency"].values())
    probes = {p["name"]: p for p in json.loads((work / "probes" / "probes.json").read_text())["probes"]}
    for precision, per_threads in doc["latency"].items():
        entry = per_threads["1"]
        # the reference is timed in 4 interpreters, its runs pooled
        assert doc["measurement"]["reference_copies"] == 4 and entry["reference"]["runs"] == 3 * 4
        assert entry["reference_ms"] == entry["reference"]["median_ms"] > 0
        for block in BLOCKS:
            options = entry["blocks"][block]
            assert options[0]["delta_ms"] == 0.0
            for option in options:
                assert option["probe_p10_ms"] <= option["probe_median_ms"] <= option["probe_p90_ms"]
                assert option["delta_ms"] == pytest.approx(option["probe_median_ms"] - entry["reference_ms"])
        for row in entry["check"]:
            assert probes[f"a{''.join(map(str, row['arch_code']))}"]["role"] == "check"
            expected = entry["reference_ms"] + sum(entry["blocks"][b][o]["delta_ms"]
                                                   for b, o in zip(BLOCKS, row["arch_code"]))
            assert row["predicted_ms"] == pytest.approx(expected)
            assert row["error_pct"] == pytest.approx(100 * (expected - row["measured_ms"]) / row["measured_ms"])
            assert row["retimed_error_pct"] == pytest.approx(100 * (expected - row["retimed_ms"]) / row["retimed_ms"])
        _check_stated_error(entry)
        from scipy.stats import kendalltau

        names = sorted(probes)
        expected_tau = kendalltau([probes[n]["macs"] for n in names], [_probe_median(entry, probes[n]) for n in names])
        assert entry["tau_macs_latency"] == pytest.approx(expected_tau.statistic)
        table = read_table(work / "table.json")
        code = (2, 1, 0, 2, 1, 0, 2, 1, 0)
        assert table.predict_ms(code, precision) == pytest.approx(
            entry["reference_ms"] + sum(entry["blocks"][b][o]["delta_ms"] for b, o in zip(BLOCKS, code)))
    assert "stated error" in output


def _check_stated_error(entry):
    """The stated error recomputed with numpy from the table's own check rows and re-timed reference."""
    rows = entry["check"]
    first = np.array([r["measured_ms"] for r in rows] + [entry["reference_ms"]])
    second = np.array([r["retimed_ms"] for r in rows] + [entry["retimed_reference"]["measured_ms"]])
    predicted = np.array([r["predicted_ms"] for r in rows])
    model = np.abs(predicted - first[:-1]) / first[:-1] * 100
    shift = np.abs(first - second) / second * 100
    codes = [r["arch_code"] for r in rows] + [[0] * 9]
    terms = entry["stated_error_terms"]
    assert terms["model_error_pct"] == pytest.approx(model.max()) and terms["model_error_at"] == codes[model.argmax()]
    assert terms["session_shift_pct"] == pytest.approx(shift.max()) and terms["session_shift_at"] == codes[shift.argmax()]
    assert entry["retimed_reference"]["error_pct"] == pytest.approx(100 * (first[-1] - second[-1]) / second[-1])
    assert entry["stated_error_pct"] == np.ceil(model.max() + shift.max())


def _probe_median(entry, probe):
    """A probe's measured median as the table records it (reference, a block option's probe, or a check)."""
    if probe["role"] == "reference":
        return entry["reference_ms"]
    if probe["role"] == "check":
        return next(r["measured_ms"] for r in entry["check"] if r["arch_code"] == probe["arch_code"])
    block, option = probe["role"].split("=")
    return entry["blocks"][block][int(option)]["probe_median_ms"]


@pytest.mark.slow
def test_measuring_probes_needs_no_tensorflow(measured, tmp_path):
    work, _, _ = measured
    script = ("import sys; from edgeflownas.cli import main\n"
              "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
              "finally:\n    print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')\n")
    done = subprocess.run([sys.executable, "-c", script, "latency", "--probes", str(work / "probes"), "--out",
                           str(tmp_path / "t.json"), "--precision", "int8", "--threads", "1", "--runs", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("TF-FREE"), done.stdout
    assert list(json.loads((tmp_path / "t.json").read_text())["latency"]) == ["int8"]


@pytest.mark.slow
def test_edge_install_measures_copied_probes(measured, edge_venv, tmp_path):
    work, _, _ = measured
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(edge_venv / "bin" / "efnas"), "latency", "--probes", str(work / "probes"), "--out",
                           str(tmp_path / "device.json"), "--precision", "float", "--threads", "1", "--runs", "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "device.json").read_text())
    assert doc["device"]["runtime"] == "litert" and doc["input_hw"] == [32, 48]


@pytest.mark.slow
def test_damaged_probe_is_one_line(measured, cli, tmp_path):
    import shutil

    work, _, _ = measured
    copy = tmp_path / "probes"
    shutil.copytree(work / "probes", copy)
    victim = sorted(copy.glob("*_float.tflite"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    result = cli("latency", "--probes", copy, "--out", tmp_path / "t.json", "--threads", "1")
    assert result.exit_code == 2 and victim.name in result.output and "sha256" in result.output
    assert not (tmp_path / "t.json").exists()


@pytest.fixture
def recorded_conversions(monkeypatch, system_tmp):
    """Each probe conversion's work folder and what the system temp directory held meanwhile; ``fail_at`` makes
    that conversion fail."""
    from edgeflownas.latency import probes

    seen = {"scratch": [], "system_tmp": [], "fail_at": None}
    convert = probes.write_tflite

    def recording(path, precision, model_cfg, code, values, height, width, scratch, seed=0):
        seen["scratch"].append(scratch)
        seen["system_tmp"].append(sorted(p.name for p in system_tmp.iterdir()))
        if len(seen["scratch"]) == seen["fail_at"]:
            raise RuntimeError("the converter failed (a test)")
        convert(path, precision, model_cfg, code, values, height, width, scratch, seed)

    monkeypatch.setattr(probes, "write_tflite", recording)
    return seen


@pytest.mark.slow
def test_table_from_a_run_builds_its_probes_beside_the_table_and_leaves_nothing(search_run, cli, tmp_path,
                                                                               system_tmp, recorded_conversions):
    table = tmp_path / "tables" / "t.json"
    result = cli("latency", "--run", search_run, "--out", table, "--threads", "1", "--runs", "1", "--warmup", "0",
                 "--precision", "float")
    assert result.exit_code == 0, result.output
    work = table.parent / f".t.json.probes.tmp-{os.getpid()}"
    assert recorded_conversions["scratch"] and all(work in scratch.parents
                                                   for scratch in recorded_conversions["scratch"])
    assert recorded_conversions["system_tmp"] == [[]] * len(recorded_conversions["scratch"])
    assert [p.name for p in table.parent.iterdir()] == ["t.json"]
    assert list(system_tmp.iterdir()) == []


@pytest.mark.slow
def test_a_failed_probe_build_leaves_nothing(search_run, cli, tmp_path, system_tmp, recorded_conversions):
    recorded_conversions["fail_at"] = 3
    for extra in ([], ["--probes_out", tmp_path / "probes"]):
        with pytest.raises(RuntimeError, match="the converter failed"):
            cli("latency", "--run", search_run, "--out", tmp_path / "t.json", "--threads", "1", "--precision",
                "float", *extra)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["system_tmp"]
        assert recorded_conversions["system_tmp"] == [[]] * 3 and list(system_tmp.iterdir()) == []
        recorded_conversions["scratch"], recorded_conversions["system_tmp"] = [], []


def test_check_subnets_span_the_space():
    from edgeflownas.latency.table import CHECK_DISTANCES, check_codes, probe_codes

    probes = probe_codes()
    checks = [code for role, code in probes if role == "check"]
    assert checks == check_codes() and len(checks) == len(CHECK_DISTANCES) + 1 == 6
    assert [sum(option != 0 for option in code) for code in checks] == [2, 2, 3, 5, 7, 9]
    assert checks[-1] == (2,) * 9  # the largest subnet: every block at its last option
    assert len(set(checks)) == len(checks) and not set(checks) & {code for role, code in probes if role != "check"}
    assert all(len(code) == 9 and set(code) <= {0, 1, 2} for code in checks)
    assert check_codes(seed=1) != checks and check_codes() == checks  # seeded, reproducible


def test_timed_runs_are_warm_whatever_shares_the_session(monkeypatch):
    """A fake clock: a model's run costs 1 s right after another model's run (its caches were evicted), 1 ms
    right after its own; the timed runs must all be the warm ones, interleaved, each model's count as asked."""
    from edgeflownas.latency import measure

    clock, order = [0.0], []

    class Model:
        def __init__(self, name):
            self.name = name

        def invoke(self):
            clock[0] += 1e-3 if order and order[-1] == self.name else 1.0
            order.append(self.name)

    loaded = []
    monkeypatch.setattr(measure, "_ready_interpreter", lambda path, threads, seed: loaded.append(path) or Model(path))
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock[0])
    timed = measure.time_models({name: name for name in "abc"}, 1, runs=12, warmup=2, copies={"b": 2})
    assert loaded == list("abbc") and {name: t["runs"] for name, t in timed.items()} == {"a": 12, "b": 24, "c": 12}
    assert all(t["mean_ms"] == pytest.approx(1.0) and t["std_ms"] == pytest.approx(0.0) for t in timed.values())
    per_round = [min(measure.ROUND_RUNS, 12 - done) for done in range(0, 12, measure.ROUND_RUNS)]
    assert sum(per_round) == 12 and len(per_round) > 1
    assert order == list("abbc") * 2 + [name for runs in per_round for name in "abbc" for _ in range(1 + runs)]


def test_bad_options_are_one_line(cli, tmp_path):
    probes = tmp_path / "probes"
    probes.mkdir()
    for args, fragment in (((), "either --run"), (("--probes", probes, "--run", tmp_path), "either --run"),
                           (("--probes", probes, "--out", tmp_path / "t.json", "--threads", "0"), "--threads"),
                           (("--probes", probes, "--out", tmp_path / "t.json", "--precision", "fp16"), "fp16"),
                           (("--probes", probes, "--out", tmp_path / "t.json"), "probes.json")):
        result = cli("latency", *args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and fragment in lines[0], result.output


def test_table_of_another_size_or_model_is_refused(tmp_path):
    from edgeflownas.config import resolve
    from edgeflownas.errors import ConfigError
    from edgeflownas.latency.table import LatencyTable, model_settings

    model = resolve(None, {"model.init_neurons": 8}).config.model
    table = LatencyTable({"input_hw": [32, 48], "model": model_settings(model)}, tmp_path / "t.json")
    table.check_matches(32, 48, model, "run R")
    with pytest.raises(ConfigError, match="measured at 32x48, run R runs at 64x96"):
        table.check_matches(64, 96, model, "run R")
    with pytest.raises(ConfigError, match="init_neurons 8 vs 16"):
        table.check_matches(32, 48, resolve(None, {"model.init_neurons": 16}).config.model, "run R")


def test_a_table_of_an_older_version_says_so_and_how_to_measure_again(tmp_path):
    import json

    from edgeflownas.errors import ConfigError
    from edgeflownas.latency.table import TABLE_KIND, VERSION, read_table

    path = tmp_path / "old.json"
    path.write_text(json.dumps({"kind": TABLE_KIND, "version": VERSION - 1}))
    with pytest.raises(ConfigError) as refused:
        read_table(path)
    message = str(refused.value)
    assert f"written by an older efnas latency (table version {VERSION - 1}" in message
    assert "efnas latency --run RUN --out NEW" in message and "not a latency table" not in message
    path.write_text(json.dumps({"kind": TABLE_KIND, "version": "two"}))
    with pytest.raises(ConfigError, match="'version' is 'two'.*not a latency table written by efnas latency"):
        read_table(path)


# 27 codes: only the three flow heads' kernels are free.
FIXED = ("EB0=0", "EB1=0", "DB0=0", "DB1=0", "H1=1", "H3=1")


def _pareto(points):
    """Indices of the points no other point dominates (both coordinates minimised), by brute force."""
    return sorted(i for i, (a, b) in enumerate(points)
                  if not any(c <= a and d <= b and (c, d) != (a, b) for c, d in points))


@pytest.mark.slow
def test_search_on_latency_under_a_latency_bound(measured, search_run, tmp_path, cli):
    from edgeflownas.search.run import SearchRequest, run_search
    from edgeflownas.search.strategies import StrategySettings

    work, doc, _ = measured
    entry = doc["latency"]["float"]["1"]

    def predicted(code):
        return entry["reference_ms"] + sum(entry["blocks"][b][o]["delta_ms"] for b, o in zip(BLOCKS, code))

    space = [(0, 0, 0, 0, h0, 1, h2, 1, h4) for h0 in range(3) for h2 in range(3) for h4 in range(3)]
    bound = float(np.median([predicted(code) for code in space]))
    request = SearchRequest(search_run, tmp_path / "search", StrategySettings("exhaustive", population=9,
                                                                            objective="latency"),
                            constraints=(f"latency<={bound}ms",), fixed=FIXED, latency_table=work / "table.json")
    front = run_search(request)
    scored = [json.loads(line) for line in (tmp_path / "search" / "all.jsonl").read_text().splitlines()]
    feasible = [code for code in space if predicted(code) <= bound]
    assert front["objective"] == "latency" and front["searched"] == len(feasible) == front["feasible"]
    assert front["constraints"] == [f"latency<={bound:g}ms"]
    for e in scored:
        assert e["latency_ms"] == pytest.approx(predicted(e["arch_code"]), rel=1e-9) and e["latency_ms"] <= bound
    points = [(e["latency_ms"], e["epe"]) for e in scored]
    assert sorted(e["name"] for e in front["front_latency"]) == sorted(scored[i]["name"] for i in _pareto(points))
    assert front["ranked"] == [e["name"] for e in sorted(front["front_latency"], key=lambda e: e["epe"])]
    assert front["latency"]["stated_error_pct"] == entry["stated_error_pct"] and front["latency"]["threads"] == 1
    assert (tmp_path / "search" / "front.png").stat().st_size > 10_000
    from edgeflownas.nas.front import pick

    assert list(pick(front, "best")) == front["front_latency"][[e["name"] for e in front["front_latency"]].index(
        front["ranked"][0])]["arch_code"]
    shown = cli("eval", "--run", search_run, "--arch", "baseline", "--latency_table", work / "table.json",
                "--no_native_epe")
    assert shown.exit_code == 0, shown.output
    assert "ms (table)" in shown.output and f"{predicted((0, 0, 0, 0, 2, 1, 2, 2, 2)):.3f}" in shown.output


@pytest.mark.slow
def test_latency_objective_or_bound_without_a_table_is_one_line(search_run, tmp_path, cli):
    for extra, fragment in ((("--objective", "latency"), "--objective latency needs --latency_table"),
                            (("--constraint", "latency<=15ms"), "latency<=15ms needs a latency table"),
                            (("--constraint", "macs<=2ms"), "'ms' is the unit of latency only")):
        result = cli("search", "--run", search_run, "--out", tmp_path / extra[1].replace("<=", "_"), *extra)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and fragment in lines[0], result.output
        assert not (tmp_path / extra[1].replace("<=", "_") / "front.json").exists()
