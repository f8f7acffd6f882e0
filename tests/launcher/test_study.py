"""``efnas study``: rank statistics against hand-made cases, the subnets fixed before anything trains, the whole
study on a tiny preset (artifacts, report), resume after kill -9 at two points, the SLURM path on the real one-node
cluster, bad study configs.  The study's own statistics: tests/study/."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import pytest
import yaml
from click.testing import CliRunner

from edgeflownas.cli import main
from edgeflownas.errors import StudyError
from edgeflownas.report.ranking import average_ranks, bootstrap_interval, kendall_tau, spearman_rho

ROOT = Path(__file__).resolve().parents[2]
EFNAS = [sys.executable, "-c", "import sys; from edgeflownas.cli import main; sys.argv[0] = 'efnas'; main()"]

# A tiny supernet config: 32x48, 8-channel stem, 2 steps per epoch (as tests/conftest.py's SEARCH_RUN).
TINY_SUPERNET = {
    "experiment": {"name": "unused", "seed": 5},
    "data": {"input_height": 32, "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
    "model": {"init_neurons": 8},
    "train": {"num_epochs": 2, "batch_size": 2, "steps_per_epoch": 2, "lr": 0.001, "log_every_steps": 1000},
    "eval": {"bn_recal_batches": 2, "flow_pictures": 0},
    "early_stop": {"min_epochs_before_early_stop": 0},
    "runtime": {"deterministic": True, "graph_optimizations": False},
}
# K = 4: the baseline and three codes (no stratified subnets); two seeds -> 8 retrains of 2 steps each.
CODES = ["0,0,0,0,0,0,0,0,0", "2,2,2,2,2,2,2,2,2", "a012012012"]


def tiny_study(tmp_path: Path, fc2: Path, name: str = "tiny", **sections) -> Path:
    """Write the tiny supernet config and a study config around it; returns the study config's path."""
    supernet = json.loads(json.dumps(TINY_SUPERNET))
    supernet["data"].update(train_dir=str(fc2 / "train"), val_dir=str(fc2 / "val"))
    supernet_path = tmp_path / f"{name}_supernet.yaml"
    supernet_path.write_text(yaml.safe_dump(supernet))
    study = {"study": {"name": name, "output_root": str(tmp_path / "studies")},
             "supernet": {"config": str(supernet_path), "warmup_epochs": 1, "seeds": [5]},
             "subnets": {"macs_bins": 0, "baseline": True, "codes": CODES, "min_k": 3},
             "retrain": {"seeds": [1, 2], "set": {"train.num_epochs": 1}},
             "scoring": {"recal_batches": 2},
             "analysis": {"bootstrap": 200}}
    for key, value in sections.items():
        study.setdefault(key, {}).update(value) if isinstance(value, dict) else study.__setitem__(key, value)
    if "run" in sections.get("supernet", {}) and "seeds" not in sections["supernet"]:
        study["supernet"].pop("seeds")  # seeds go with a supernet the study trains
    path = tmp_path / f"{name}_study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


# ----------------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("x, y, expected", [
    ([1, 2, 2, 3], [1, 3, 2, 4], 0.9486832980505138),    # ranks x (1, 2.5, 2.5, 4): 4.5 / sqrt(4.5 * 5)
    ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
    ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], 0.8),               # 1 - 6 * 4 / (5 * 24)
])
def test_spearman_hand_computed_with_ties(x, y, expected):
    assert spearman_rho(x, y) == pytest.approx(expected)


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))


def test_bootstrap_interval():
    x = [1, 2, 3, 4, 5, 6, 7, 8]
    assert bootstrap_interval([x, x], kendall_tau, 300) == (1.0, 1.0)  # every resample agrees perfectly
    noisy = [2, 1, 4, 3, 6, 5, 8, 7]
    low, high = bootstrap_interval([x, noisy], kendall_tau, 500, seed=3)
    assert low <= kendall_tau(x, noisy) <= high and low < high <= 1.0
    assert bootstrap_interval([x, noisy], kendall_tau, 500, seed=3) == (low, high)  # seeded: reproducible


@pytest.mark.slow
def test_subnets_are_fixed_in_subnets_json_before_anything_trains(tiny_fc2, tmp_path):
    """The stratified choice is written first, is a function of the config alone, and cannot change later."""
    from launcher.study import chosen_codes, load_study
    from edgeflownas.study.selection import total_depth

    config = tiny_study(tmp_path, tiny_fc2, subnets={"macs_bins": 1, "baseline": False, "codes": [], "min_k": 9})
    study = load_study(config)
    codes = chosen_codes(study)
    assert sorted(total_depth(code) for code in codes) == list(range(4, 13))
    saved = json.loads((study.directory / "subnets.json").read_text())
    assert [tuple(s["code"]) for s in saved["subnets"]] == codes and saved["k"] == 9
    assert not (study.directory / "runs").exists()                    # nothing trained, nothing scored
    assert chosen_codes(load_study(config)) == codes                  # deterministic: the same choice again
    other = tiny_study(tmp_path, tiny_fc2, subnets={"macs_bins": 1, "seed": 3, "baseline": False, "codes": [],
                                                    "min_k": 9})
    with pytest.raises(StudyError, match="another choice of subnets"):
        chosen_codes(load_study(other))


def test_latency_is_measured_again_when_timed_another_way(tiny_fc2, tmp_path, monkeypatch):
    """subnet_latency.json is kept only while its settings and its way of timing (runs, warm-up, order) match."""
    from edgeflownas.latency import measure
    from launcher.study import LATENCY_JSON, load_study, measure_latency

    calls = []

    def fake_time(model, height, width, codes, scratch, threads, runs, warmup, log):
        calls.append(len(codes))
        return {"a" + "".join(map(str, code)): {"median_ms": 1.0} for code in codes}

    monkeypatch.setattr("edgeflownas.latency.api.time_subnets", fake_time)
    study = load_study(tiny_study(tmp_path, tiny_fc2, analysis={"latency_threads": 1}))
    study.directory.mkdir(parents=True)
    codes = [(0,) * 9, (2,) * 9]
    lines: List[str] = []
    measure_latency(study, codes, lines.append)
    measure_latency(study, codes, lines.append)
    assert calls == [2] and "subnets already measured" in lines[-1]
    path = study.directory / LATENCY_JSON
    doc = json.loads(path.read_text())
    assert doc["measurement"]["order"] == measure.ORDER
    doc["measurement"]["order"] = "interleaved rounds"  # how an older efnas timed: one run per model per round
    path.write_text(json.dumps(doc))
    measure_latency(study, codes, lines.append)
    assert calls == [2, 2] and any("timed another way; measuring again" in line for line in lines)
    assert json.loads(path.read_text())["measurement"]["order"] == measure.ORDER


@pytest.mark.parametrize("steps", [[1500, 5], [1500, 1500, 1500]], ids=["one_worker_idle", "one_queued"])
def test_stopping_the_local_workers_saves_the_running_trainings_and_starts_no_other(tmp_path, monkeypatch, steps):
    """With an idle worker next to a busy one, or a training queued behind two busy ones: a running training takes
    the stop at its next step and saves, a queued one never starts, no worker is killed, and it is quick."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import active_children, get_context

    from launcher.study import _child_start, _stop_workers, _train_in_child

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # worker_jobs, for the spawned workers too
    from worker_jobs import StepJob

    runs = [tmp_path / f"run{i}" for i in range(len(steps))]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=_child_start) as pool:
        futures = [pool.submit(_train_in_child, StepJob(str(run), n), str(tmp_path / f"run{i}.log"))
                   for i, (run, n) in enumerate(zip(runs, steps))]
        busy = [run for run, n in zip(runs, steps) if n > 100][:2]
        idle = [run for run, n in zip(runs, steps) if n <= 100]
        deadline = time.time() + 120
        while time.time() < deadline and not (all((run / "started").exists() for run in busy) and
                                              all((run / "finished").exists() for run in idle)):
            time.sleep(0.02)
        workers = active_children()
        start = time.monotonic()
        _stop_workers(pool, grace_s=30)
        took = time.monotonic() - start
    assert len(workers) == 2
    assert took < 10, took  # not the grace period: nothing had to be killed
    assert all(worker.exitcode == 0 for worker in workers), [worker.exitcode for worker in workers]
    for run in busy:
        assert (run / "saved").exists() and not (run / "finished").exists()
        assert futures[runs.index(run)].result() == str(run)
    for run in idle:
        assert (run / "finished").exists() and futures[runs.index(run)].result() == str(run)
    if len(steps) == 3:
        assert not runs[2].exists()  # queued behind the busy workers: never started
        assert futures[2].cancelled() or futures[2].result() is None


def test_threads_per_training_sizes_every_local_trainings_tensorflow_also_with_one_worker(tmp_path, monkeypatch):
    """study.threads_per_training: each training runs in a worker whose TensorFlow has that many intra-op and
    inter-op threads (counted: 2 more OS threads per extra thread), also with one worker; null trains in-process."""
    from types import SimpleNamespace

    import launcher.study as study_module

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # worker_jobs, for the spawned workers too
    from worker_jobs import ThreadsJob

    monkeypatch.setattr("launcher.submit.training_job", lambda trial: ThreadsJob(str(trial.run_dir)))
    monkeypatch.setattr(study_module, "_check_finished", lambda trial, label: None)

    def run(workers, threads, names):
        study = SimpleNamespace(directory=tmp_path, section=lambda name: {"local_workers": workers,
                                                                          "threads_per_training": threads})
        todo = [SimpleNamespace(name=name, run_dir=tmp_path / name) for name in names]
        lines = []
        study_module._run_locally(study, SimpleNamespace(trials=todo), todo, "retrains", lines.append,
                                  lambda trial: "")
        return [json.loads((tmp_path / name / "ran.json").read_text()) for name in names], lines

    one, lines = run(1, 1, ["one"])
    assert one[0]["pid"] != os.getpid() and one[0]["env"] == ["1", "1"]
    assert "on 1 local worker process(es) of 1 TensorFlow thread(s)" in lines[0]
    three, _ = run(2, 3, ["a", "b"])
    assert all(ran["env"] == ["3", "3"] for ran in three) and len({ran["pid"] for ran in three}) in (1, 2)
    assert {ran["threads"] - one[0]["threads"] for ran in three} == {4}  # (3 - 1) intra-op + (3 - 1) inter-op
    here, lines = run(1, None, ["here"])
    assert here[0]["pid"] == os.getpid() and lines[0].startswith("retrains: training here")


# ----------------------------------------------------------------------------------------------- the whole study
EXPECTED_KEYS = {"tau", "tau_ci95", "best_trivial_tau", "trivial", "partial_tau_given_depth",
                 "partial_tau_given_depth_ci95", "partial_tau_given_macs", "partial_tau_given_macs_ci95",
                 "noise_ceiling_tau", "noise_ceiling_tau_ci95", "supernet_seed_tau", "stuck_runs", "k", "verdict",
                 "verdict_reason", "targets", "subnets", "zero_flow_epe", "reference", "hamming_tau",
                 "architecture_effect"}


def _run(args, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.run([*EFNAS, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, **kwargs)


@pytest.fixture(scope="module")
def finished_study(tiny_fc2, tmp_path_factory):
    """One uninterrupted tiny study (subprocess, as a user runs it): (study dir, console output)."""
    tmp = tmp_path_factory.mktemp("study_ref")
    config = tiny_study(tmp, tiny_fc2, name="ref")
    result = _run(["study", "--config", str(config)], timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp / "studies" / "ref", result.stdout


@pytest.mark.slow
def test_study_writes_every_artifact(finished_study):
    study_dir, output = finished_study
    doc = json.loads((study_dir / "study.json").read_text())
    assert EXPECTED_KEYS <= set(doc)
    assert doc["k"] == 4 and len(doc["subnets"]) == 4
    for subnet in doc["subnets"]:
        assert {"code", "macs", "params", "depth", "supernet_epe", "standalone"} <= set(subnet)
        assert set(subnet["standalone"]) == {"1", "2"} and set(subnet["supernet_epe"]) == {"5"}
        for seed in ("1", "2"):
            figure = subnet["standalone"][seed]
            assert math.isfinite(figure["epe"]) and not Path(figure["run_dir"]).is_absolute()
            run = study_dir / figure["run_dir"]
            manifest = json.loads((run / "train_manifest.json").read_text())["resolved_config"]
            assert manifest["experiment"]["seed"] == int(seed)
            assert manifest["train"]["supernet_mode"] == "fixed_arch"
            assert manifest["model"]["fixed_arch_code"] == subnet["code"]
            assert manifest["checkpoint"]["init_from"] is None  # from scratch
    # the numbers in study.json are the statistics of its own per-subnet records
    reference = [sum(s["standalone"][k]["epe"] for k in ("1", "2")) / 2 for s in doc["subnets"]]  # median of 2
    assert doc["tau"] == pytest.approx(kendall_tau([s["supernet_epe"]["5"] for s in doc["subnets"]], reference),
                                       abs=1e-6)
    assert doc["noise_ceiling_tau"] == pytest.approx(kendall_tau(
        *[[s["standalone"][k]["epe"] for s in doc["subnets"]] for k in ("1", "2")]), abs=1e-6)
    assert doc["verdict"] in ("cannot tell", "beats trivial", "does not beat trivial")
    assert doc["supernet_seed_tau"] is None  # one supernet seed here
    assert not any(str(tmp) in json.dumps(doc) for tmp in (study_dir.parent, ROOT))  # no absolute paths
    # the supernet scores are in the supernet run's search store, where efnas search --run finds them
    stored = [json.loads(line) for path in (study_dir / "runs/supernet_seed5/search/store").glob("*.jsonl")
              for line in path.read_text().splitlines()]
    assert sorted(r["scoring"]["recal_batches"] for r in stored) == [0] * 4 + [2] * 4
    assert {r["name"]: r["epe"] for r in stored if r["scoring"]["recal_batches"] == 2} == \
        {s["name"]: s["supernet_epe"]["5"] for s in doc["subnets"]}
    assert not list(study_dir.glob("supernet_scores*"))
    # the supernet inherited the warm-up (baseline alone)
    supernet_manifest = json.loads((study_dir / "runs/supernet_seed5/train_manifest.json").read_text())
    assert supernet_manifest["resolved_config"]["checkpoint"]["resume_experiment_name"] == "warmup_seed5"
    assert (study_dir / "study.png").stat().st_size > 10_000
    # each subnet's latency was measured once (TFLite float, 1 thread) and tau(MACs, latency) is its statistic
    from scipy.stats import kendalltau

    latency = json.loads((study_dir / "subnet_latency.json").read_text())
    measured = [latency["subnets"][s["name"]]["median_ms"] for s in doc["subnets"]]
    assert [s["latency_ms"] for s in doc["subnets"]] == measured and all(m > 0 for m in measured)
    assert latency["settings"]["threads"] == 1 and latency["measurement"]["runs"] == 50
    assert doc["latency"]["tau_macs_latency"] == pytest.approx(
        kendalltau([s["macs"] for s in doc["subnets"]], measured).statistic, abs=1e-6)
    assert "latency_ms" in doc["trivial"] and "tau(MACs, measured latency)" in output
    assert not (study_dir / ".latency-models").exists()
    assert "tau(supernet, reference)" in output and "noise ceiling" in output and "verdict:" in output
    assert "retrains: 8/8 done" in output
    # each retrain's progress line prints the figure study.json takes from it (one number, one value)
    printed = dict(re.findall(r"retrains: \d+/8 done, .*\((\S+): reference EPE (\d+\.\d+), the mean of its last",
                              output))
    recorded = {f"{s['name']}_seed={seed}": f"{figure['epe']:.4f}" for s in doc["subnets"]
                for seed, figure in s["standalone"].items()}
    assert printed == recorded
    # efnas report: the study's own page, and a section in the supernet run's report
    page = CliRunner().invoke(main, ["report", str(study_dir)])
    assert page.exit_code == 0, page.output
    html = (study_dir / "report" / "report.html").read_text()
    assert "Ranking study" in html and "stand-alone seed 2" in html
    run_page = CliRunner().invoke(main, ["report", str(study_dir / "runs/supernet_seed5"), "--flow_samples", "0",
                                         "--no_cost"])
    assert run_page.exit_code == 0, run_page.output
    assert "Ranking study (ref)" in (study_dir / "runs/supernet_seed5/report/report.html").read_text()
    # a second invocation finds everything finished and only redoes the analysis
    again = _run(["study", "--config", str(study_dir.parent.parent / "ref_study.yaml")], timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished" in again.stdout and ": training " not in again.stdout
    assert "subnets already measured" in again.stdout
    assert json.loads((study_dir / "study.json").read_text())["tau"] == doc["tau"]


def _kill_when(process: subprocess.Popen, marker: Path, timeout: float = 600) -> None:
    _signal_when(process, marker, signal.SIGKILL, timeout)


def _signal_when(process: subprocess.Popen, marker: Path, signum: int, timeout: float = 600) -> List[int]:
    """Send ``signum`` to ``process`` alone once ``marker`` exists and wait for it; returns its children's pids
    at that moment."""
    deadline = time.time() + timeout
    while time.time() < deadline and not marker.exists():
        assert process.poll() is None, "the study ended before the kill point"
        time.sleep(0.05)
    assert marker.exists(), f"{marker} never appeared"
    children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
                if _parent_pid(stat) == process.pid]
    process.send_signal(signum)
    process.wait(120)
    return children


def _parent_pid(stat: Path) -> Optional[int]:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])  # the field after the state
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_study_resumes_after_kill_9_at_two_points(finished_study, tiny_fc2, tmp_path):
    """Killed while the supernet trains and again while the retrains run: the third start finishes, reuses
    what was done, and gives the uninterrupted study's numbers (exact resume of every training)."""
    config = tiny_study(tmp_path, tiny_fc2, name="ref")  # same name and settings, another output root
    study_dir = tmp_path / "studies" / "ref"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    command = [*EFNAS, "study", "--config", str(config)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    _kill_when(first, study_dir / "runs/supernet_seed5/supernet_last.ckpt/state.json")  # epoch 1 of 2 saved
    assert (study_dir / "subnets.json").is_file() and not (study_dir / "runs/supernet_seed5/search").exists()
    # the second start trains two retrains at once and is stopped by SIGTERM (scancel) once the first has finished
    second = subprocess.Popen([*command, "--set", "study.local_workers=2"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    first_retrain = study_dir / "runs/retrains/a000021222_seed=1/launch_result.json"
    workers = _signal_when(second, first_retrain, signal.SIGTERM)
    assert workers, "no worker processes were running"
    stderr = second.stderr.read()
    assert second.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("efnas study: interrupted by SIGTERM: finished trainings "
                                                       "and scores are kept"), stderr[-2000:]
    assert "Traceback" not in stderr
    deadline = time.time() + 30  # the workers end with the study, not after their trainings
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    for run in (study_dir / "runs/retrains").iterdir():  # a retrain the stop cut short saved on it
        if not (run / "launch_result.json").exists():
            log = (study_dir / "logs" / f"{run.name}.log").read_text()
            assert "saved: the same run resumes from here" in log, log[-2000:]
    finished_before = first_retrain.stat().st_mtime_ns
    # a start that trains in its own process (one worker) stops the same way once it trains a retrain again
    started = {run.name for run in (study_dir / "runs/retrains").iterdir()}
    alone = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.time() + 600
    while time.time() < deadline and not ({run.name for run in (study_dir / "runs/retrains").iterdir()} - started):
        assert alone.poll() is None, alone.communicate()[1][-2000:]
        time.sleep(0.05)
    alone.send_signal(signal.SIGTERM)
    out, err = alone.communicate(timeout=120)
    assert alone.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("efnas study: interrupted by SIGTERM: "), err[-2000:]
    assert "Traceback" not in err
    third = _run(["study", "--config", str(config)], timeout=900)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "warm-up seed 5: 1 run(s) already finished" in third.stdout
    assert "supernet seed 5: 1 run(s) already finished" in third.stdout
    assert first_retrain.stat().st_mtime_ns == finished_before  # a finished retrain is not trained again
    resumed = json.loads((study_dir / "study.json").read_text())
    reference = json.loads((finished_study[0] / "study.json").read_text())
    for key in ("tau", "spearman", "noise_ceiling_tau", "partial_tau_given_depth"):
        assert resumed[key] == reference[key], key
    for name in ("macs", "params", "depth"):  # latency, measured anew here, is the one figure that may differ
        assert resumed["trivial"][name] == reference["trivial"][name], name
    for a, b in zip(resumed["subnets"], reference["subnets"]):
        assert (a["name"], a["supernet_epe"]) == (b["name"], b["supernet_epe"])
        assert {k: r["epe"] for k, r in a["standalone"].items()} == {k: r["epe"] for k, r in b["standalone"].items()}


# ----------------------------------------------------------------------------------------------- SLURM
@pytest.mark.slurm
@pytest.mark.slow
def test_study_retrains_as_one_job_array_on_the_real_cluster(slurm_cluster, search_run, tmp_path, monkeypatch):
    from launcher.records import read_records

    run = tmp_path / "supernet"  # a copy: the study writes its scores into the run's search store
    shutil.copytree(search_run, run)
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "study": {"name": "onslurm", "output_root": str(tmp_path)},
        "supernet": {"run": str(run)},
        "subnets": {"macs_bins": 0, "baseline": True, "codes": CODES[:2], "min_k": 3},
        "retrain": {"seeds": [1, 2], "set": {"train.num_epochs": 1}},
        "scoring": {"recal_batches": 2},
        "analysis": {"bootstrap": 100},
        "slurm": {"partition": slurm_cluster["partition"], "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                  "time_min": 10}}))
    monkeypatch.setattr("launcher.study.POLL_SECONDS", 2.0)
    result = CliRunner().invoke(main, ["study", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "submitted job array" in result.output and "retrains: 6/6 done" in result.output
    records = read_records(tmp_path / "onslurm" / "runs" / "retrains")
    assert len(records) == 6 and len({r["job_id"].split("_")[0] for r in records}) == 1  # one array
    doc = json.loads((tmp_path / "onslurm" / "study.json").read_text())
    assert doc["k"] == 3 and all(len(s["standalone"]) == 2 for s in doc["subnets"])
    again = CliRunner().invoke(main, ["study", "--config", str(config)])
    assert again.exit_code == 0 and "retrains: 6 run(s) already finished" in again.output


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("change, expected", [
    ({"study": {"nmae": "x"}}, "nmae"),
    ({"supernet": {"run": "/nonexistent/run"}}, "exactly one of supernet.run"),
    ({"supernet": {"config": None}}, "exactly one of supernet.run"),
    ({"retrain": {"seeds": [1]}}, "retrain.seeds"),
    ({"subnets": {"codes": ["0,1,2"]}}, "subnets.codes"),
    ({"subnets": {"min_k": 40}}, "subnets.min_k is 40"),
    ({"supernet": {"run": "/some/run", "config": None, "warmup_epochs": 0, "seeds": [5]}},
     "supernet.seeds applies only"),
    ({"retrain": {"epe": "best"}}, "epe"),
    ({"subnets": {"macs_bins": 1, "min_k": 100}}, "at most 13 distinct subnets chosen, subnets.min_k is 100"),
    ({"supernet": {"config": None, "run": "/", "warmup_epochs": 0}},
     "supernet.run / has no train_manifest.json"),
    ({"supernet": {"config": None, "run": "/nonexistent/run", "warmup_epochs": 0}},
     "/nonexistent/run does not exist"),
    ({"analysis": {"ci": 1.5}}, "analysis.ci"),
    ({"supernet": {"set": {"train.lrr": 1}}}, "lrr"),
    ({"supernet": {"config": "/nonexistent.yaml"}}, "is not a file"),
    ({"scoring": {"recal_batches": 0}}, "scoring.recal_batches"),
])
def test_bad_study_config_is_one_line(tiny_fc2, tmp_path, change, expected):
    config = tiny_study(tmp_path, tiny_fc2, **change)
    result = CliRunner().invoke(main, ["study", "--config", str(config), "--dry_run"])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "studies").exists()  # nothing written


@pytest.mark.parametrize("change", [{"subnets": {"macs_bins": 1, "min_k": 100}},
                                    {"supernet": {"config": None, "run": "/", "warmup_epochs": 0}}])
def test_a_start_that_cannot_succeed_is_refused_before_the_study_directory_is_made(tiny_fc2, tmp_path, change):
    config = tiny_study(tmp_path, tiny_fc2, **change)
    result = CliRunner().invoke(main, ["study", "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "studies").exists()


def test_a_study_directory_inside_a_run_or_dataset_is_refused(tiny_fc2, tmp_path):
    config = tiny_study(tmp_path, tiny_fc2, study={"output_root": str(tiny_fc2), "name": "train"})
    result = CliRunner().invoke(main, ["study", "--config", str(config), "--dry_run"])
    assert result.exit_code == 2 and "is an FC2 data folder" in result.output, result.output


def test_missing_config_and_bad_set(tmp_path, tiny_fc2):
    missing = CliRunner().invoke(main, ["study", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    config = tiny_study(tmp_path, tiny_fc2)
    bad = CliRunner().invoke(main, ["study", "--config", str(config), "--set", "study.local_workers=0", "--dry_run"])
    assert bad.exit_code == 2 and "--set study.local_workers=0" in bad.output


def test_dry_run_validates_presets_without_training(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the presets name their supernet configs relative to the repository
    presets = sorted((ROOT / "configs").glob("study_*.yaml"))
    assert {"study_small.yaml", "study_fc2.yaml"} <= {preset.name for preset in presets}
    for preset in presets:
        result = CliRunner().invoke(main, ["study", "--config", str(preset), "--set",
                                           f"study.output_root={tmp_path}", "--dry_run"])
        assert result.exit_code == 0, result.output
        assert "supernet seed 42:" in result.output and "subnets: stratified" in result.output
        width = (yaml.safe_load(preset.read_text())["supernet"].get("set") or {}).get("model.init_neurons")
        assert width is None or f"x64, width {width}, option_init" in result.output, result.output
    fc2 = CliRunner().invoke(main, ["study", "--config", str(ROOT / "configs/study_fc2.yaml"), "--set",
                                    f"study.output_root={tmp_path}", "--dry_run"])
    assert "#SBATCH --gpus-per-node=1" in fc2.output and "mode: SLURM" in fc2.output
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
