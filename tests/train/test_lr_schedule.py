"""The learning-rate schedule: cosine decay over the planned steps, times a linear warm-up (``train.lr_warmup_steps``).

Recomputed here in NumPy from the documented formula: lr(s) = cosine(s) * min(1, (s + 1) / W), with s the global
step being applied and cosine(s) = lr_min + (lr - lr_min) * (1 + cos(pi * min(s, N) / N)) / 2 over N planned steps.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from edgeflownas.config import resolve_mapping

TRACE_LR = re.compile(r"\[trace\] epoch=\d+ .* global_step=(\d+) .* lr=([\d.e+-]+)$", re.MULTILINE)


def _expected(lr, lr_min, planned, warmup, steps):
    """The documented schedule at global steps ``steps``, in float64."""
    s = np.asarray(steps, dtype=np.float64)
    cosine = lr_min + (lr - lr_min) * 0.5 * (1.0 + np.cos(np.pi * np.minimum(s, planned) / planned))
    return cosine * (np.minimum(1.0, (s + 1.0) / warmup) if warmup else 1.0)


def _train_config(**train):
    raw = {"experiment": {"name": "s"}, "data": {"train_dir": "t", "val_dir": "v"},
           "train": {"lr": 1e-3, "lr_min": 1e-4, **train}}
    return resolve_mapping(raw).config.train


def _schedule(train, planned, steps):
    """(lr at each step, number of graph ops the schedule added), from the graph's own function."""
    import tensorflow as tf

    from edgeflownas.train.graph import learning_rate

    with tf.Graph().as_default() as graph:
        step = tf.compat.v1.placeholder(tf.int64, [])
        before = len(graph.get_operations())
        lr = learning_rate(train, step, planned)
        added = len(graph.get_operations()) - before
        with tf.compat.v1.Session() as sess:
            return np.array([sess.run(lr, {step: s}) for s in steps]), added


def test_warm_up_ramps_the_cosine_linearly_and_zero_is_the_plain_cosine_without_an_op():
    import tensorflow as tf

    steps = list(range(25))
    ramped, with_ramp = _schedule(_train_config(lr_warmup_steps=8), 20, steps)
    np.testing.assert_allclose(ramped, _expected(1e-3, 1e-4, 20, 8, steps), rtol=1e-6)
    assert ramped[0] == pytest.approx(_expected(1e-3, 1e-4, 20, 0, [0])[0] / 8, rel=1e-6)  # first step: 1/W
    plain, without = _schedule(_train_config(), 20, steps)
    np.testing.assert_allclose(plain, _expected(1e-3, 1e-4, 20, 0, steps), rtol=1e-6)
    assert np.array_equal(ramped[7:], plain[7:])  # from step W-1 on: the cosine itself, bit for bit
    with tf.Graph().as_default():  # warm-up 0: exactly the graph's former tensor, nothing more
        step = tf.compat.v1.placeholder(tf.int64, [])
        cosine = tf.compat.v1.train.cosine_decay(1e-3, step, 20, alpha=1e-4 / 1e-3)
        with tf.compat.v1.Session() as sess:
            assert np.array_equal(plain, [sess.run(cosine, {step: s}) for s in steps])
        baseline = len(tf.compat.v1.get_default_graph().get_operations()) - 1
    assert without == baseline and with_ramp > without


@pytest.mark.slow
def test_a_run_stopped_mid_warm_up_resumes_on_the_schedule_and_to_the_same_numbers(make_tiny_run, tmp_path):
    """Fixed-arch tiny run, 2 epochs x 3 steps, warm-up 5: stopped after epoch 1 (global step 3, inside the
    warm-up) and resumed, it logs the documented lr at every step and ends where the uninterrupted run ends."""
    from edgeflownas.train.api import run_training

    raw = make_tiny_run(tmp_path / "runs")
    raw["train"].update(num_epochs=2, lr_min=1e-4, lr_warmup_steps=5, supernet_mode="fixed_arch")
    raw["runtime"]["debug_trace"] = True
    whole = run_training(resolve_mapping(raw, {"experiment.name": "whole"}))
    cut = run_training(resolve_mapping(raw, {"experiment.name": "cut", "train.max_epochs": 1}))
    assert cut.global_step == 3
    resumed = run_training(resolve_mapping(raw, {"experiment.name": "cut", "checkpoint.resume": True}))
    assert whole.global_step == resumed.global_step == 6

    traced = TRACE_LR.findall((resumed.run_dir / "train.log").read_text())
    assert [int(step) for step, _ in traced] == list(range(1, 7))  # both invocations, no step twice
    lrs = [float(lr) for _, lr in traced]
    np.testing.assert_allclose(lrs, _expected(1e-3, 1e-4, 6, 5, range(6)), rtol=1e-5)

    rows = {name: list(csv.DictReader(open(run.run_dir / "eval_epe_history.csv")))
            for name, run in (("whole", whole), ("cut", resumed))}
    assert rows["cut"] == rows["whole"]  # full float precision: losses, norms, EPE, lr
    np.testing.assert_allclose([float(r["lr"]) for r in rows["whole"]], _expected(1e-3, 1e-4, 6, 5, [2, 5]),
                               rtol=1e-6)
    import tensorflow as tf

    readers = [tf.train.load_checkpoint(str(run.run_dir / "supernet_last.ckpt" / "model")) for run in (whole, resumed)]
    names = readers[0].get_variable_to_shape_map()
    assert names.keys() == readers[1].get_variable_to_shape_map().keys()
    for name in names:
        np.testing.assert_array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name), err_msg=name)
    manifest = json.loads((resumed.run_dir / "train_manifest.json").read_text())
    assert manifest["lr_schedule"]["warmup_steps"] == 5 and manifest["lr_schedule"]["decay_steps"] == 6
