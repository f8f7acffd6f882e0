"""Divergence is caught before it reaches the weights, and survived: stop (default) or skip, never a NaN checkpoint.

A non-finite loss is forced mid-run by feeding NaN ground-truth flow at one
global step (the forward pass and the BN statistics stay finite, only the loss
does not); ``--lr 1e30`` diverges on any data by itself.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgeflownas.config import resolve_mapping
from edgeflownas.data.loader import open_source
from edgeflownas.errors import DivergenceError
from edgeflownas.model.layers import BN_TRAIN
from edgeflownas.nas.fair_sampler import cycle_paths
from edgeflownas.train import trainer as trainer_module
from edgeflownas.train.api import run_training
from edgeflownas.train.graph import TrainGraph
from edgeflownas.train.plan import make_plan
from edgeflownas.train.runtime import session_config

pytestmark = pytest.mark.slow

LAST, BEST = "supernet_last.ckpt", "supernet_best.ckpt"


def nonfinite_variables(checkpoint_dir) -> list:
    """Names of the variables of a checkpoint directory that hold NaN or Inf (read back from disk)."""
    reader = tf.train.load_checkpoint(str(checkpoint_dir / "model"))
    names = reader.get_variable_to_shape_map()
    return [n for n in names if reader.get_tensor(n).dtype.kind == "f" and not np.isfinite(reader.get_tensor(n)).all()]


def state(checkpoint_dir) -> dict:
    return json.loads((checkpoint_dir / "state.json").read_text())


@pytest.fixture
def run(tiny_run):
    """TINY_RUN with the smallest evaluation (3-subnet pool, no flow pictures): these tests are about training."""
    tiny_run["eval"].update(pool_size=3, flow_pictures=0)
    return tiny_run


@pytest.fixture
def poison(monkeypatch):
    """poison({steps}): the batches of these global steps carry NaN flow, so every path's loss is NaN."""

    def install(steps):
        step = trainer_module.Trainer.step

        def poisoned(self, batch, next_batch, epoch, batch_index, stats):
            # A new batch object: the staging does not take it for the (clean) one the last cycle prefetched.
            if self.state.global_step in steps:
                batch = dataclasses.replace(batch, flow=np.full_like(batch.flow, np.nan))
            return step(self, batch, next_batch, epoch, batch_index, stats)

        monkeypatch.setattr(trainer_module.Trainer, "step", poisoned)

    return install


def test_a_refused_cycle_changes_no_variable_but_advances_global_step(run):
    """The in-graph guard: NaN loss -> no weight, Adam slot or BN statistic moves; global_step counts the step."""
    cfg = resolve_mapping(run).config
    source = open_source(cfg.data, "train")
    batch = source.get_batch(np.arange(2))
    graph_tf = tf.Graph()
    with graph_tf.as_default():
        tf.compat.v1.set_random_seed(0)  # another test may have enabled op determinism in this process
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (cfg.data.input_height, cfg.data.input_width),
                           make_plan(cfg, len(source), 4))
        saved = tf.compat.v1.global_variables()
    with tf.compat.v1.Session(graph=graph_tf, config=session_config(cfg.runtime)) as sess:
        sess.run(graph.init_op)

        def cycle(flow):
            for index, code in enumerate(cycle_paths(5, 0)):
                write = graph.store_op if index == 0 else graph.accumulate_op
                sess.run(write, graph.feed(dataclasses.replace(batch, flow=flow), code, BN_TRAIN))
            return sess.run([graph.applied, graph.step_after_apply])

        assert cycle(batch.flow) == [True, 1]
        before = sess.run(saved)
        assert cycle(np.full_like(batch.flow, np.nan)) == [False, 2]
        after = sess.run(saved)
        changed = [v.op.name for v, a, b in zip(saved, before, after) if not np.array_equal(a, b)]
        assert changed == ["train/global_step"]
        assert cycle(batch.flow) == [True, 3]
    source.close()


def test_nonfinite_loss_mid_run_stops_keeps_the_last_finite_state_and_resume_continues(run, poison,
                                                                                        monkeypatch):
    poison({4})  # epoch 2 (3 steps per epoch), its second batch
    run["train"]["num_epochs"] = 3
    run_dir = Path(run["experiment"]["output_root"]) / "tiny"
    with pytest.raises(DivergenceError) as caught:
        run_training(resolve_mapping(run))
    message = str(caught.value)
    assert "\n" not in message
    assert "epoch 2, batch 2/3, global_step 4" in message
    assert all(f"path {','.join(map(str, code))} loss=nan" in message for code in cycle_paths(5, 4))
    assert f"last good checkpoint: {run_dir / LAST} (epoch 1, global_step 3)" in message
    for kind in (LAST, BEST):
        assert (state(run_dir / kind)["epoch"], state(run_dir / kind)["global_step"]) == (1, 3)
        assert nonfinite_variables(run_dir / kind) == []

    monkeypatch.undo()
    run["checkpoint"] = {"resume": True}
    result = run_training(resolve_mapping(run))
    assert (result.epochs_done, result.global_step) == (3, 9)
    assert nonfinite_variables(run_dir / LAST) == []


def test_skip_policy_counts_skipped_steps_and_stops_past_the_limit(run, poison):
    poison({1, 5})
    run["train"].update(nonfinite="skip", max_skipped_steps=1)
    run_dir = Path(run["experiment"]["output_root"]) / "tiny"
    with pytest.raises(DivergenceError, match=r"2 skipped steps exceed train.max_skipped_steps=1 \(last at "
                                              r"epoch 2, batch 3/3, global_step 5"):
        run_training(resolve_mapping(run))
    last = state(run_dir / LAST)
    assert (last["epoch"], last["global_step"], last["skipped_steps"]) == (1, 3, 1)
    with open(run_dir / "eval_epe_history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["skipped_steps"] for row in rows] == ["1"]
    assert "skipped step 1 of at most 1: epoch 1, batch 2/3, global_step 1" in (run_dir / "train.log").read_text()
    assert nonfinite_variables(run_dir / LAST) == []


def test_lr_1e30_ends_in_one_line_and_exit_1_without_a_checkpoint(run, write_config, cli):
    """EdgeFlowNet's own failure mode, forced: the CLI says what diverged where, and nothing non-finite is saved."""
    run["train"]["lr"] = 1e30
    result = cli("train", "--config", write_config(run))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    # stderr holds the training log and then the one error line
    errors = [line for line in result.stderr.strip().splitlines() if " INFO " not in line]
    assert len(errors) == 1 and errors[0].startswith("Error: training diverged at epoch 1, batch ")
    assert "no checkpoint was written yet" in errors[0]
    run_dir = Path(run["experiment"]["output_root"]) / "tiny"
    assert not (run_dir / LAST).exists() and not (run_dir / BEST).exists()


@pytest.mark.parametrize("form", ["safe", "edgeflownet"])
def test_high_learning_rate_stays_finite_with_the_safe_loss_only(run, form):
    """lr 0.1 on synth data: the safe form trains every step; EdgeFlowNet's form overflows at the second step."""
    run["train"].update(lr=0.1, num_epochs=2)
    run["loss"] = {"uncertainty_form": form}
    run_dir = Path(run["experiment"]["output_root"]) / "tiny"
    if form == "edgeflownet":
        with pytest.raises(DivergenceError, match="epoch 1, batch 2/3, global_step 1: path .* loss=inf"):
            run_training(resolve_mapping(run))
        return
    result = run_training(resolve_mapping(run))
    assert result.global_step == 6 and state(run_dir / LAST)["skipped_steps"] == 0
    assert all(np.isfinite(row["train_loss_epoch_avg"]) for row in result.history)
    assert nonfinite_variables(run_dir / LAST) == []
