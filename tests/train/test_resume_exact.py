"""Exact resume on CPU with deterministic ops, against one uninterrupted 5-epoch reference run:

- 3 epochs, SIGKILL (no chance to save), resume to 5;
- SIGTERM inside epoch 2 (saved at the next step boundary, exit 143), resume to 5.

Both end bit-identical to the reference.  Also checks the CLI wiring and the
--debug_trace contract on the same processes: per cycle ``forward/backward
x3`` and ``optimizer_step x1``, clipped norm <= 5, cosine lr, continuous
global steps across the interruption.
"""

from __future__ import annotations

import csv
import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

TRACE = re.compile(r"\[trace\] epoch=(\d+) batch=(\d+) cycle=(\d+) global_step=(\d+) forward/backward x(\d+) .* "
                   r"optimizer_step x(\d+) global_grad_norm_before=([\d.e+-]+|nan|inf) "
                   r"global_grad_norm_after=([\d.e+-]+|nan) lr=([\d.e+-]+)")
LOSSES = re.compile(r"\[trace\] epoch=(\d+) .* losses=([\d.e+,-]+) optimizer_step")
CLI = [sys.executable, "-c", "from edgeflownas.cli import main; main()", "train"]


def _start(config, *args):
    return subprocess.Popen(CLI + ["--config", str(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _state(run_dir):
    path = run_dir / "supernet_last.ckpt" / "state.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _kill_after_epoch(proc, run_dir, epoch, timeout=600):
    """SIGKILL ``proc`` as soon as its last checkpoint records ``epoch`` (a real kill, not a clean exit)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = _state(run_dir)
        if state is not None and state["epoch"] >= epoch:
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=60)
            return out, state["epoch"]
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the run never reached the checkpoint to kill after")


def _weights(checkpoint_dir):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint_dir / "model"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _traces(out):
    return [m.groups() for m in TRACE.finditer(out)]


class Reference:
    """The uninterrupted run, started once per module and awaited by the tests that compare with it."""

    def __init__(self, config, root) -> None:
        self.root = root
        self.proc = _start(config, "--experiment_name", "ref")
        self.out = None

    def run_dir(self):
        if self.out is None:
            self.out = _finish(self.proc)
        return self.root / "ref"


@pytest.fixture(scope="module")
def setup(make_tiny_run, tmp_path_factory):
    """(config path, runs root, Reference) shared by the tests of this module."""
    base = tmp_path_factory.mktemp("resume")
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(make_tiny_run(base / "runs")))
    reference = Reference(config, base / "runs")
    yield config, base / "runs", reference
    if reference.proc.poll() is None:
        reference.proc.kill()


def _assert_equals_reference(run_dir, reference_dir):
    """Same per-epoch metrics (CSV holds full float precision) and bit-identical final variables."""
    ref_rows = list(csv.DictReader(open(reference_dir / "eval_epe_history.csv")))
    cut_rows = list(csv.DictReader(open(run_dir / "eval_epe_history.csv")))
    assert [r["epoch"] for r in cut_rows] == ["1", "2", "3", "4", "5"]
    assert cut_rows == ref_rows
    # Same final weights, BN statistics, Adam slots and step: bit for bit.
    ref_w, cut_w = _weights(reference_dir / "supernet_last.ckpt"), _weights(run_dir / "supernet_last.ckpt")
    assert set(ref_w) == set(cut_w)
    different = [name for name in ref_w if not np.array_equal(ref_w[name], cut_w[name])]
    assert not different, f"{len(different)} variables differ, e.g. {different[:5]}"
    assert int(cut_w["train/global_step"]) == 15


def test_killed_and_resumed_run_equals_uninterrupted_run(setup):
    config, root, reference = setup
    killed = _start(config, "--experiment_name", "cut", "--debug_trace")
    out_killed, killed_at = _kill_after_epoch(killed, root / "cut", 3)
    assert killed.returncode == -signal.SIGKILL
    out_resumed = _finish(_start(config, "--experiment_name", "cut", "--resume", "--debug_trace"))
    _assert_equals_reference(root / "cut", reference.run_dir())

    # Global steps continue exactly after the killed run's last checkpoint (no repeat, no gap).
    done_before_kill = killed_at * 3
    killed_steps = [int(t[3]) for t in _traces(out_killed)]
    resumed_steps = [int(t[3]) for t in _traces(out_resumed)]
    assert killed_steps[:done_before_kill] == list(range(1, done_before_kill + 1))
    assert resumed_steps == list(range(done_before_kill + 1, 16))
    assert f"resume from {root / 'cut' / 'supernet_last.ckpt'} at epoch {killed_at}" in out_resumed

    # Debug trace contract, on every cycle of both processes.
    lrs = []
    for epoch, batch, cycle, step, paths, opt, before, after, lr in _traces(out_killed)[:done_before_kill] + _traces(out_resumed):
        assert (int(paths), int(opt)) == (3, 1) and int(cycle) == int(step) - 1
        assert float(after) <= 5.0 and float(after) <= float(before) + 1e-4
        lrs.append(float(lr))
    planned = 15
    expected = [0.5 * 0.001 * (1 + math.cos(math.pi * s / planned)) for s in range(planned)]
    assert np.allclose(lrs, expected, rtol=1e-5, atol=1e-9)

    # The CSV's per-epoch figures are epoch averages of the traced per-cycle values, not the last cycle's.
    cycles = _traces(out_killed)[:done_before_kill] + _traces(out_resumed)
    losses = LOSSES.findall(out_killed)[:done_before_kill] + LOSSES.findall(out_resumed)
    rows = list(csv.DictReader(open(root / "cut" / "eval_epe_history.csv")))
    for row in rows:
        epoch = row["epoch"]
        cycle_losses = [np.mean([float(v) for v in values.split(",")]) for e, values in losses if e == epoch]
        norms = [float(t[6]) for t in cycles if t[0] == epoch]
        assert len(cycle_losses) == len(norms) == 3
        assert float(row["train_loss_epoch_avg"]) == pytest.approx(np.mean(cycle_losses), abs=2e-5)
        assert float(row["train_grad_norm_before_clip_epoch_avg"]) == pytest.approx(np.mean(norms), abs=2e-6)
    assert len({row["train_loss_epoch_avg"] for row in rows}) == len(rows)

    fairness = json.loads((root / "cut" / "fairness_counts.json").read_text())
    assert fairness["fairness_gap"] == 0 and fairness["complete_cycles"] == 15
    assert all(counts == [15, 15, 15] for counts in fairness["option_counts"].values())
    manifest = json.loads((root / "cut" / "train_manifest.json").read_text())
    assert [s["mode"] for s in manifest["starts"]] == ["fresh", "resume"]


def test_sigterm_inside_an_epoch_saves_there_and_resume_equals_uninterrupted_run(setup):
    config, root, reference = setup
    proc = _start(config, "--experiment_name", "term", "--debug_trace")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "[trace] epoch=2 batch=0 " in line:  # after the log line's time stamp
            proc.send_signal(signal.SIGTERM)
            break
    out_stopped = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out_stopped[-3000:]

    state = _state(root / "term")
    position = state["next_batch_index"]
    assert state["epoch"] == 1 and 0 < position < 3, state
    assert state["global_step"] == 3 + position and state["partial_epoch"]["steps"] == position
    assert "stop requested (SIGTERM): saved" in out_stopped
    assert "interrupted by SIGTERM" in out_stopped and "continue with --resume" in out_stopped
    fairness = json.loads((root / "term" / "fairness_counts.json").read_text())
    assert fairness["complete_cycles"] == 3 + position and fairness["fairness_gap"] == 0

    out_resumed = _finish(_start(config, "--experiment_name", "term", "--resume", "--debug_trace"))
    stopped_steps = [int(t[3]) for t in _traces(out_stopped)]
    resumed = _traces(out_resumed)
    assert stopped_steps == list(range(1, 4 + position))
    assert [(int(t[0]), int(t[1])) for t in resumed[:1]] == [(2, position)]
    assert [int(t[3]) for t in resumed] == list(range(4 + position, 16))
    _assert_equals_reference(root / "term", reference.run_dir())
