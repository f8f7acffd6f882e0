"""`efnas train` on a terminal and off one: log lines never share a line with the progress bar; quiet start-up."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from edgeflownas.cli import main; main()"]
TINY = ["--set", "data.input_height=32", "--set", "data.input_width=48", "--set", "model.init_neurons=8",
        "--set", "train.num_epochs=1", "--set", "train.batch_size=2", "--set", "train.steps_per_epoch=4",
        "--set", "train.log_every_steps=1", "--set", "eval.bn_recal_batches=2", "--set", "data.num_workers=1"]


def train_command(tiny_fc2, root, name):
    return CLI + ["train", "--train_dir", tiny_fc2 / "train", "--val_dir", tiny_fc2 / "val", "--output_root", root,
                  "--experiment_name", name, *TINY]


def run_on_terminal(command, timeout=600) -> str:
    """Run ``command`` with stdout and stderr on a pseudo-terminal (tqdm draws its bar); everything it printed."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, on which tqdm draws nothing: give it a real window size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.Popen([str(c) for c in command], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_log_lines_sit_above_the_bar(tiny_fc2, tmp_path):
    out = run_on_terminal(train_command(tiny_fc2, tmp_path, "tty"))
    segments = [s for s in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)) if s.strip()]
    bars = [s for s in segments if re.search(r"\| *\d+/\d+ \[", s)]
    assert any(s.startswith("epoch 1:") for s in bars), "the epoch bar was drawn on the terminal"
    assert any("loss=" in s and "lr=" in s and "run ETA" in s for s in bars), bars[-3:]
    for segment in segments:
        glued = "|" in segment and re.search(r"\d\d:\d\d:\d\d (epoch|eval|start)", segment)
        assert not glued, segment
    lines = [s for s in segments if re.match(r"\d\d:\d\d:\d\d ", s)]
    assert any(re.match(r"\d\d:\d\d:\d\d epoch 1 step 4/4 global_step=4 .* s/step .* samples/s ETA ", s)
               for s in lines), lines
    assert any(re.match(r"\d\d:\d\d:\d\d eval subnet=a\d{9} bn_recal_batches=2 epe=\d", s) for s in lines)
    assert "bn_before" not in out
    assert "cpu_feature_guard" not in out and "oneDNN custom operations" not in out


def test_off_a_terminal_lines_are_timestamped_and_the_log_file_has_levels(tiny_fc2, tmp_path):
    done = subprocess.run([str(c) for c in train_command(tiny_fc2, tmp_path, "pipe") + ["--debug_trace"]],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # Logs on stderr, the result on stdout (as every efnas command).
    log_lines = [line for line in done.stderr.splitlines() if not line.startswith(("WARNING: All log messages",
                                                                                 "I0000 "))]
    assert log_lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) ", line) for line in log_lines)
    assert not re.search(r"\| *\d+/\d+ \[", done.stderr)  # no bar off a terminal
    assert done.stdout.startswith("run directory:") and not re.search(r"\d\d:\d\d:\d\d (INFO|WARNING)", done.stdout)
    # --debug_trace: the per-cycle trace replaces the step line, and each subnet's line gains the BN summaries.
    assert sum("[trace] epoch=1" in line for line in log_lines) == 4
    assert not any(" s/step " in line for line in log_lines)
    assert sum("bn_before[" in line and "bn_after[" in line and "epe=" in line for line in log_lines) == 12
    written = (tmp_path / "pipe" / "train.log").read_text().splitlines()
    assert [line[20:] for line in written] == [line[20:] for line in log_lines]


def test_the_stop_notice_gets_a_line_of_its_own_under_a_bar(tmp_path):
    script = tmp_path / "notice.py"
    script.write_text(
        "import signal, sys, time\n"
        "from tqdm import tqdm\n"
        "from edgeflownas.train.interrupt import StopRequest\n"
        "bar = tqdm(total=3, desc='epoch 1', unit='step', file=sys.stderr, leave=False, dynamic_ncols=True)\n"
        "bar.update(1); bar.refresh()\n"
        "StopRequest()(signal.SIGINT, None)\n"
        "bar.update(1); bar.refresh(); bar.close()\n")
    out = run_on_terminal([sys.executable, script])
    segments = [s for s in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)) if s.strip()]
    (notice,) = [s for s in segments if "SIGINT received" in s]
    assert notice.startswith("efnas: SIGINT received; stopping after the current optimizer step"), segments
    assert any(s.startswith("epoch 1:") for s in segments)  # the bar was there, on a line of its own
