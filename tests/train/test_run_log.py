"""RunLog (stdlib logging: console + train.log, deferred until the start is accepted) and the training progress."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from tqdm import tqdm

from edgeflownas.progress import duration
from edgeflownas.train.progress import TrainProgress
from edgeflownas.train.start import RunLog
from edgeflownas.train.state import EpochStats

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) (.*)$")


def test_deferred_lines_reach_train_log_only_once_the_start_is_accepted(tmp_path, capsys):
    path = tmp_path / "train.log"
    log = RunLog(path, deferred=True)
    log("efnas train: experiment=x")
    log("notice: data moved")
    assert not path.exists()
    log.commit()
    log("plan: batch_size=2")
    lines = path.read_text().splitlines()
    assert [STAMPED.match(line).groups() for line in lines] == [
        ("INFO", "efnas train: experiment=x"), ("WARNING", "notice: data moved"), ("INFO", "plan: batch_size=2")]
    # Off a terminal (pytest's capture, a SLURM log) the console lines carry the same stamp.
    console = capsys.readouterr().err.splitlines()  # logs go to stderr
    assert [STAMPED.match(line).group(2) for line in console] == [
        "efnas train: experiment=x", "notice: data moved", "plan: batch_size=2"]


def test_a_refused_start_writes_nothing_and_a_plain_log_writes_at_once(tmp_path):
    refused = RunLog(tmp_path / "refused.log", deferred=True)
    refused("train_samples=0")
    assert not (tmp_path / "refused.log").exists()
    direct = RunLog(tmp_path / "direct.log")
    direct("line one")
    assert STAMPED.match((tmp_path / "direct.log").read_text().strip()).group(2) == "line one"


def test_log_lines_are_written_above_the_bar_not_glued_to_it(tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    log = RunLog(tmp_path / "train.log")
    bar = tqdm(total=3, desc="epoch 1", unit="step", file=stream, leave=False)
    bar.update(1)
    bar.refresh()
    log("epoch 1 step 1/3 global_step=1")
    bar.close()
    for chunk in re.split(r"[\r\n]", stream.getvalue()):
        assert not ("step/s" in chunk and "global_step" in chunk), chunk
    assert any(chunk.endswith("epoch 1 step 1/3 global_step=1") for chunk in stream.getvalue().split("\n"))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_step_lines_carry_speed_and_whole_run_eta_and_the_bar_shows_loss_and_lr():
    plan = SimpleNamespace(steps_per_epoch=4, planned_steps=8, batch_size=2)
    lines, clock = [], Clock()
    progress = TrainProgress(plan, lines.append, log_every=2, clock=clock)
    stream = io.StringIO()
    bar = tqdm(total=4, file=stream, disable=False, mininterval=0)
    progress.begin(0)
    stats = EpochStats()
    for step in range(1, 5):
        clock.now += 0.5
        stats.add(loss=2.0, before=1.0, after=1.0, lr=1e-3)
        progress.advance(bar, 1, stats, step)
    assert "loss=2.0000" in bar.postfix and "lr=1.00e-03" in bar.postfix and "run ETA 0:00:02" in bar.postfix
    assert len(lines) == 2
    assert lines[0] == ("epoch 1 step 2/4 global_step=2 loss_avg=2.00000 lr=1.000e-03 0.500 s/step "
                        "4.0 samples/s ETA 0:00:03")
    assert lines[1].endswith("0.500 s/step 4.0 samples/s ETA 0:00:02")
    # A refused cycle does not advance the applied steps: no second line for the same position.
    progress.advance(bar, 1, stats, 5)
    assert len(lines) == 2


def test_no_step_lines_under_debug_trace_and_durations():
    plan = SimpleNamespace(steps_per_epoch=2, planned_steps=2, batch_size=1)
    lines = []
    progress = TrainProgress(plan, lines.append, log_every=1, step_lines=False)
    stats = EpochStats()
    stats.add(1.0, 1.0, 1.0, 1e-4)
    progress.advance(tqdm(total=2, disable=True), 1, stats, 1)
    assert lines == []
    assert duration(59.6) == "0:01:00" and duration(3 * 86400 + 3661) == "3 days, 1:01:01"


def test_step_scalars_follow_the_interval_even_without_step_lines():
    plan = SimpleNamespace(steps_per_epoch=4, planned_steps=4, batch_size=2)
    written, clock = [], Clock()
    progress = TrainProgress(plan, lambda line: None, log_every=2, step_lines=False,
                             scalars=lambda step, figures: written.append((step, figures)), clock=clock)
    progress.begin(0)
    stats = EpochStats()
    for step in range(1, 5):
        clock.now += 0.25
        stats.add(3.0, 1.0, 1.0, 1e-3)
        progress.advance(tqdm(total=4, disable=True), 1, stats, step)
    assert [step for step, _ in written] == [2, 4]
    assert written[0][1] == {"loss_avg": 3.0, "lr": 1e-3, "s_per_step": 0.25, "samples_per_s": 8.0}
