"""A damaged, diverged, foreign or unwritable checkpoint ends in one line and a non-zero exit, never a traceback.

One tiny run is trained per module; every test works on its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeflownas import atomic_io
from edgeflownas.errors import CheckpointError, NoSpaceError
from edgeflownas.train import checkpoint as ck

DATA = "model.data-00000-of-00001"


@pytest.fixture(scope="module")
def trained_template(make_tiny_run, tmp_path_factory):
    """(output_root, raw config) of a tiny run trained one epoch of two (read-only: copy it)."""
    from edgeflownas.config import resolve_mapping
    from edgeflownas.train.api import run_training

    root = tmp_path_factory.mktemp("integrity") / "runs"
    raw = make_tiny_run(root)
    raw["train"]["num_epochs"] = 2
    result = run_training(resolve_mapping(raw, {"train.max_epochs": 1}))
    assert result.epochs_done == 1
    return root, raw


@pytest.fixture
def run(trained_template, tmp_path):
    """A private copy of the trained run: (run_dir, config path written for it)."""
    template_root, raw = trained_template
    root = tmp_path / "runs"
    shutil.copytree(template_root, root)
    raw = dict(raw, experiment=dict(raw["experiment"], output_root=str(root)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    return root / raw["experiment"]["name"], config


def _error_line(result) -> str:
    """The one-line error a failed command must end with (no traceback anywhere)."""
    assert result.exit_code != 0, result.output[-2000:]
    assert "Traceback" not in result.output
    last = result.output.rstrip().splitlines()[-1]
    assert last.startswith("Error: "), result.output[-2000:]
    return last


def _flip(path: Path, offset: int, bit: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= bit
    path.write_bytes(bytes(data))


def _flip_epoch_digit(path: Path) -> None:
    text = path.read_bytes()
    _flip(path, text.index(b'"epoch": ') + len(b'"epoch": '))


DAMAGE = {
    "flipped_byte_in_data": (lambda d: _flip(d / DATA, os.path.getsize(d / DATA) // 2), f"{DATA} is damaged"),
    "truncated_data": (lambda d: os.truncate(d / DATA, os.path.getsize(d / DATA) - 100), f"{DATA} is damaged"),
    "flipped_byte_in_index": (lambda d: _flip(d / "model.index", 10), "model.index is damaged"),
    "changed_digit_in_state": (lambda d: _flip_epoch_digit(d / "state.json"), "state.json is damaged"),
    "non_utf8_byte_in_state": (lambda d: _flip(d / "state.json", 5, 0x80), "state.json is damaged"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_last_is_refused_by_resume_and_eval(cli, run, damage):
    run_dir, config = run
    last = run_dir / "supernet_last.ckpt"
    assert ck.verify_checkpoint(last)["epoch"] == 1  # the copy itself is sound
    damage_fn, expected = DAMAGE[damage]
    damage_fn(last)
    line = _error_line(cli("train", "--config", config, "--resume"))
    assert expected in line and str(last) in line and "--resume_from best" in line, line
    line = _error_line(cli("eval", "--run", run_dir, "--arch", "baseline", "--ckpt", "last"))
    assert expected in line and str(last) in line, line


def _write_variables(prefix: str, values: dict) -> None:
    """A TF checkpoint at ``prefix`` holding exactly ``values`` (name -> array), written by a throwaway graph."""
    import tensorflow as tf

    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(value, name=f"v{i}") for i, (name, value) in enumerate(values.items())}
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False, write_state=False)


def _rewrite(target: Path, values: dict = None, state: dict = None) -> None:
    """Re-save checkpoint ``target`` with other variable values and/or state, digests recomputed (no checks)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(ck.model_prefix(target))
    current = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    new_state = state if state is not None else ck.read_state(target)
    ck.save_checkpoint(target, lambda prefix: _write_variables(prefix, dict(current, **(values or {}))),
                       new_state, verify_variables=False)


def _kernel_name(target: Path) -> str:
    import tensorflow as tf

    shapes = tf.train.load_checkpoint(ck.model_prefix(target)).get_variable_to_shape_map()
    return sorted(name for name, shape in shapes.items() if name.endswith("kernel") and len(shape) == 4)[0]


def test_non_finite_checkpoint_is_refused_by_resume_and_eval(cli, run):
    import tensorflow as tf

    run_dir, config = run
    last = run_dir / "supernet_last.ckpt"
    name = _kernel_name(last)
    kernel = tf.train.load_checkpoint(ck.model_prefix(last)).get_tensor(name).copy()
    kernel.flat[3] = np.nan
    _rewrite(last, {name: kernel})
    line = _error_line(cli("train", "--config", config, "--resume"))
    assert f"checkpoint {last} holds non-finite values in variable {name}" in line, line
    assert "diverged run" in line and "--resume_from best" in line, line
    line = _error_line(cli("eval", "--run", run_dir, "--arch", "baseline", "--ckpt", "last"))
    assert f"holds non-finite values in variable {name}" in line, line


def test_a_non_finite_variable_is_never_saved(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    state = {"config_hash": "h", "global_step": 3, "epoch": 1, "next_batch_index": 0, "cycle_index": 3}
    weights = np.ones((2, 3), np.float32)
    ck.save_checkpoint(target, lambda p: _write_variables(p, {"net/w": weights, "step": np.int64(3)}), state)
    weights[1, 2] = np.inf
    with pytest.raises(CheckpointError, match=r"refusing to save .*supernet_last.ckpt at global_step 4: variable net/w "
                                              r"holds 1 non-finite values of 6 .* keeps its previous version"):
        ck.save_checkpoint(target, lambda p: _write_variables(p, {"net/w": weights, "step": np.int64(4)}),
                           dict(state, global_step=4))
    assert ck.verify_checkpoint(target)["global_step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet_last.ckpt"]


def _inherit_config(tmp_path, raw, **model):
    new = dict(raw, experiment=dict(raw["experiment"], name="wider"), model=dict(raw["model"], **model),
               checkpoint={"resume_experiment_name": raw["experiment"]["name"]})
    path = tmp_path / "wider.yaml"
    path.write_text(yaml.safe_dump(new))
    return path


def test_inheriting_another_width_is_refused_before_restore(cli, run, tmp_path):
    run_dir, config = run
    raw = yaml.safe_load(config.read_text())
    result = cli("train", "--config", _inherit_config(tmp_path, raw, init_neurons=16))
    line = _error_line(result)
    assert "holds weights of another architecture (model.init_neurons: checkpoint 8 != now 16)" in line, line
    assert "device:" not in result.output  # refused before the graph was built


def test_inheriting_a_damaged_checkpoint_is_refused(cli, run, tmp_path):
    run_dir, config = run
    last = run_dir / "supernet_last.ckpt"
    _flip(last / DATA, 100)
    raw = yaml.safe_load(config.read_text())
    result = cli("train", "--config", _inherit_config(tmp_path, raw))
    line = _error_line(result)
    assert f"checkpoint file {last / DATA} is damaged" in line, line
    assert "start without checkpoint.resume_experiment_name" in line, line
    assert not (run_dir.parent / "wider").exists()


def test_old_checkpoint_of_another_width_is_refused_at_restore(cli, run, tmp_path):
    run_dir, config = run
    last = run_dir / "supernet_last.ckpt"
    old_state = {key: value for key, value in ck.read_state(last).items() if key != "config"}
    _rewrite(last, state=old_state)
    raw = yaml.safe_load(config.read_text())
    line = _error_line(cli("train", "--config", _inherit_config(tmp_path, raw, init_neurons=16)))
    assert f"{last} holds weights of another architecture: variable" in line and "in this model" in line, line


@pytest.fixture
def small_disk(tmpfs):
    """A 24 MB tmpfs (the shared ``tmpfs`` fixture: skipped where mounting is not permitted)."""
    return tmpfs("disk", "24m")


def test_atomic_write_on_a_full_disk_names_the_path_and_leaves_no_temp(small_disk, fill_disk):
    path = small_disk / "history.csv"
    atomic_io.write_text_atomic(path, "old\n")
    fill_disk(small_disk, 64 * 1024)
    with pytest.raises(NoSpaceError, match=f"no space left on {small_disk} .*{path} was left as it was"):
        atomic_io.write_bytes_atomic(path, b"x" * (1 << 20))
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "history.csv"]


def test_training_onto_a_full_disk_keeps_the_previous_last(cli, run, small_disk, fill_disk, tmp_path):
    run_dir, config = run
    shutil.copytree(run_dir.parent, small_disk / "runs")
    raw = yaml.safe_load(config.read_text())
    raw["experiment"]["output_root"] = str(small_disk / "runs")
    config.write_text(yaml.safe_dump(raw))
    run_dir = small_disk / "runs" / raw["experiment"]["name"]
    size = sum(p.stat().st_size for p in (run_dir / "supernet_last.ckpt").iterdir())
    fill_disk(small_disk, size // 2)
    line = _error_line(cli("train", "--config", config, "--resume"))
    assert f"no space left on {run_dir}: could not save supernet_" in line, line
    assert "keeps its previous version" in line and "--resume" in line, line
    for name in ("supernet_last.ckpt", "supernet_best.ckpt"):
        assert ck.verify_checkpoint(run_dir / name)["epoch"] == 1
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]


def _format_1(target: Path) -> None:
    """Turn ``target`` into a checkpoint as efnas wrote them before digests (state format 1)."""
    state = json.loads((target / "state.json").read_text())
    for key in ("model_files", "state_sha256"):
        del state[key]
    (target / "state.json").write_text(json.dumps(dict(state, format=1)))


def test_format_1_checkpoint_is_read_and_its_damage_caught_by_tensorflows_checksums(tmp_path):
    target = tmp_path / "supernet_last.ckpt"
    state = {"config_hash": "h", "global_step": 3, "epoch": 1, "next_batch_index": 0, "cycle_index": 3}
    ck.save_checkpoint(target, lambda p: _write_variables(p, {"net/w": np.ones((64, 64), np.float32)}), state)
    _format_1(target)
    assert ck.verify_checkpoint(target)["format"] == 1
    _flip(target / DATA, os.path.getsize(target / DATA) // 2)
    with pytest.raises(CheckpointError, match=f"checkpoint file {target / DATA} is damaged: TensorFlow cannot read it "
                                              r"\(.*Checksum does not match"):
        ck.verify_checkpoint(target)


def test_restore_of_a_variable_the_checkpoint_lacks_is_one_line(tmp_path):
    import tensorflow as tf

    target = tmp_path / "supernet_last.ckpt"
    state = {"config_hash": "h", "global_step": 3, "epoch": 1, "next_batch_index": 0, "cycle_index": 3}
    ck.save_checkpoint(target, lambda p: _write_variables(p, {"a": np.ones(3, np.float32)}), state)
    with tf.Graph().as_default() as graph:
        variables = [tf.compat.v1.Variable(np.zeros(3, np.float32), name=name) for name in ("a", "b")]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            with pytest.raises(CheckpointError, match=f"cannot restore {target}: Key b not found in checkpoint"):
                with ck.restoring(graph, target):
                    saver.restore(sess, ck.model_prefix(target))
