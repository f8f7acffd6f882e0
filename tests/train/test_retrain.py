"""``efnas retrain``: one subnet of a supernet run trained on its own (only its path's variables, own BN, own EPE).

On the tiny ``search_run`` supernet: the retrain's checkpoint holds exactly the
path's variables; ``--init supernet`` starts from the supernet's weights by
name; a stop request inside an epoch resumes to the same weights as an
uninterrupted retrain; the run exports; bad input is one line.
"""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from edgeflownas.cli import main
from edgeflownas.config import Overrides
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
from edgeflownas.train.interrupt import StopRequest
from edgeflownas.train.retrain import retrain_config

pytestmark = pytest.mark.slow


def _weights(ckpt_dir):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(ckpt_dir / "model"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _config(search_run, tmp_path, name, init="scratch", **extra):
    values = {"experiment.name": name, "experiment.output_root": str(tmp_path / "retrains"), "train.num_epochs": 2,
              "eval.every_n_epochs": 1}
    values.update(extra)
    return retrain_config(search_run, EDGEFLOWNET_BASELINE, init, "best", None, Overrides(values, {}))


class StopAfter(StopRequest):
    """A stop request that arrives after ``steps`` polls (the trainer polls after every optimizer step)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.left = steps

    @property
    def requested(self) -> bool:
        self.left -= 1
        if self.left < 0 and self.signum is None:
            self.signum = signal.SIGTERM
        return self.signum is not None


def test_retrain_holds_only_its_path_and_inherits_by_name(search_run, tmp_path):
    from edgeflownas.train.api import run_training

    result = run_training(_config(search_run, tmp_path, "inherit", "supernet", **{"train.lr": 1e-9,
                                                                                    "train.lr_min": 1e-9}))
    run_dir = result.run_dir
    retrained, supernet = _weights(run_dir / "supernet_last.ckpt"), _weights(search_run / "supernet_best.ckpt")
    kernels = [name for name in retrained if name.endswith("/kernel")]
    assert "supernet/H4/k7/kernel" in kernels and "supernet/H4/k3/kernel" not in retrained
    assert "supernet/EB0/res1/conv_a/kernel" not in retrained  # depth 1: only the first ResBlock
    for name in kernels:
        np.testing.assert_allclose(retrained[name], supernet[name], atol=1e-6, err_msg=name)
    history = [row for row in result.history if row.get("epoch")]
    assert len(history) == 2 and all(np.isfinite(row["epe_a000021222"]) for row in history)
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    config = manifest["resolved_config"]
    assert config["train"]["supernet_mode"] == "fixed_arch"
    assert config["model"]["fixed_arch_code"] == list(EDGEFLOWNET_BASELINE)
    assert config["checkpoint"]["init_from"] == str((search_run / "supernet_best.ckpt").resolve())


def test_stop_request_inside_an_epoch_resumes_to_the_same_weights(search_run, tmp_path):
    from edgeflownas.train.api import run_training

    whole = run_training(_config(search_run, tmp_path, "whole"))
    stopped = run_training(_config(search_run, tmp_path, "stopped"), stop=StopAfter(3))
    assert stopped.interrupted_by == "SIGTERM" and stopped.global_step == 3
    resumed = run_training(_config(search_run, tmp_path, "stopped", **{"checkpoint.resume": True}))
    assert resumed.global_step == whole.global_step
    first, second = _weights(whole.run_dir / "supernet_last.ckpt"), _weights(resumed.run_dir / "supernet_last.ckpt")
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_retrain_run_exports(search_run, tmp_path):
    result = CliRunner().invoke(main, ["retrain", "--run", str(search_run), "--arch", "baseline", "--experiment_name",
                                       "to_export", "--output_root", str(tmp_path / "r"), "--num_epochs", "1"])
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(main, ["export", "--run", str(tmp_path / "r" / "to_export"), "--out",
                                         str(tmp_path / "export"), "--format", "saved_model"])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((tmp_path / "export" / "export_manifest.json").read_text())
    assert manifest["arch_code"] == list(EDGEFLOWNET_BASELINE)


@pytest.mark.parametrize("args, message", [
    (["--arch", "baseline"], "needs --experiment_name"),
    (["--arch", "3,0,0,0,0,0,0,0,0", "--experiment_name", "x"], "value must be in {0,1,2}"),
    (["--arch", "best", "--experiment_name", "x"], "front.json does not exist"),
    (["--arch", "baseline", "--experiment_name", "x", "--supernet_mode", "strict_fairness"],
     "efnas retrain sets it itself"),
])
def test_bad_input_is_one_line(search_run, args, message):
    result = CliRunner().invoke(main, ["retrain", "--run", str(search_run), *args, "--dry_run"])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_dry_run_shows_the_forced_keys(search_run):
    result = CliRunner().invoke(main, ["retrain", "--run", str(search_run), "--arch", "baseline", "--experiment_name",
                                       "x", "--init", "supernet", "--dry_run"])
    assert result.exit_code == 0, result.output
    assert "fixed_arch" in result.output and "supernet_best.ckpt" in result.output


def test_a_supernet_can_start_from_a_retrained_subnet(search_run, tmp_path):
    """The warm-up recipe of configs/learnable_small.yaml: a supernet inherits a fixed-arch run's one path."""
    from edgeflownas.config import resolve_mapping
    from edgeflownas.train import checkpoint
    from edgeflownas.train.api import run_training

    warm = run_training(_config(search_run, tmp_path, "warm", **{"train.num_epochs": 1}))
    recorded = checkpoint.read_state(search_run / "supernet_best.ckpt")["config"]
    supernet = resolve_mapping(recorded, {"experiment.name": "from_warm", "experiment.output_root": str(tmp_path),
                                          "checkpoint.init_from": str(warm.run_dir / "supernet_last.ckpt"),
                                          "train.num_epochs": 1, "train.lr": 1e-9, "train.lr_min": 1e-9})
    result = run_training(supernet)
    assert "keep their initial values" in (result.run_dir / "train.log").read_text()
    started, warmed = _weights(result.run_dir / "supernet_last.ckpt"), _weights(warm.run_dir / "supernet_last.ckpt")
    assert "supernet/H4/k3/kernel" in started
    for name in (n for n in warmed if n.endswith("/kernel")):
        np.testing.assert_allclose(started[name], warmed[name], atol=1e-6, err_msg=name)


def test_a_retrain_run_has_a_report(search_run, tmp_path):
    from edgeflownas.report.build import build_report
    from edgeflownas.train.api import run_training

    result = run_training(_config(search_run, tmp_path, "reported", **{"train.num_epochs": 1}))
    report = build_report(result.run_dir, flow_samples=1)
    assert report.html.is_file() and [row["subnet"] for row in report.ranking] == ["a000021222"]


def test_a_retrain_of_another_code_evaluates_and_reports_its_own_subnet_only(search_run, tmp_path):
    from edgeflownas.nas.arch_codec import arch_name
    from edgeflownas.train import run_dir as rd
    from edgeflownas.train.api import run_training

    code = (0, 1, 2, 0, 0, 1, 2, 1, 0)
    values = {"experiment.name": "other", "experiment.output_root": str(tmp_path / "retrains"),
              "train.num_epochs": 1, "eval.every_n_epochs": 1}
    run = run_training(retrain_config(search_run, code, "scratch", "best", None, Overrides(values, {}))).run_dir
    runner = CliRunner()
    own = runner.invoke(main, ["eval", "--run", str(run), "--arch", "pool", "--ckpt", "last", "--json",
                               "--no_native_epe"])
    assert own.exit_code == 0, own.output + own.stderr
    doc = json.loads(own.stdout)
    (row,) = doc["subnets"]
    assert doc["kind"] == "fixed_arch" and row["name"] == arch_name(code)
    assert row["epe"] == pytest.approx(row["logged_epe"], rel=1e-6)
    for other in ("baseline", "0,0,0,0,0,0,0,0,0"):
        refused = runner.invoke(main, ["eval", "--run", str(run), "--arch", other, "--ckpt", "last"])
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        assert f"fixed-arch run of {arch_name(code)}" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    report = runner.invoke(main, ["report", "--run", str(run), "--ckpt", "last", "--out", str(tmp_path / "report"),
                                  "--flow_samples", "1"])
    assert report.exit_code == 0, report.output + report.stderr
    header, rows = rd.read_history(run / rd.HISTORY)
    assert rows[-1]["fairness_gap"] is None and rows[-1].get(rd.std_column(1)) is None
    assert rows[-1][rd.mean_column(1)] == row["logged_epe"]
    log = (run / "train.log").read_text()
    assert f"eval fixed arch {arch_name(code)} val EPE=" in log and "fairness_gap" not in log
    assert json.loads((run / rd.MANIFEST).read_text())["run_kind"] == "fixed_arch"
