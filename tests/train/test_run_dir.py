"""Run-directory artifacts: layout, history CSV columns, fairness counts, manifest fields."""

from __future__ import annotations

import csv
import json

from edgeflownas.config import resolve_mapping
from edgeflownas.nas.eval_pool import build_pool
from edgeflownas.nas.fair_sampler import option_counts
from edgeflownas.train import run_dir as rd

MANIFEST_FIELDS = ("seed", "config_hash", "git_commit", "input_shape", "optimizer", "lr_schedule", "wd",
                   "grad_clip", "samples", "data", "versions", "slurm", "hostname", "resolved_config")


def test_run_dir_is_output_root_slash_name():
    resolved = resolve_mapping({"experiment": {"name": "exp1", "output_root": "/x/y"},
                                "data": {"train_dir": "a", "val_dir": "b"}})
    assert str(rd.run_dir_for(resolved.config.experiment)) == "/x/y/exp1"


def test_history_csv_has_epoch_averages_pool_summary_and_one_column_per_subnet(tmp_path):
    pool = build_pool(42)
    header = rd.history_header(pool)
    assert header[:12] == ["epoch", "global_step", "train_loss_epoch_avg", "train_grad_norm_before_clip_epoch_avg",
                           "train_grad_norm_after_clip_epoch_avg", "lr", "mean_epe_12", "std_epe_12", "zero_flow_epe",
                           "fairness_gap", "skipped_steps", "new_best"]
    assert len(header) == 12 + 12 and all(h.startswith("epe_a") for h in header[12:])
    row = {key: 1 for key in header}
    rd.write_history(tmp_path, pool, [row, dict(row, epoch=2)])
    with open(tmp_path / rd.HISTORY) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_fairness_counts_file(tmp_path):
    counts = option_counts(42, 5)
    rd.write_fairness(tmp_path, counts, 5, 42)
    doc = json.loads((tmp_path / rd.FAIRNESS).read_text())
    assert doc["fairness_gap"] == 0 and doc["complete_cycles"] == 5 and doc["paths_trained"] == 15
    assert doc["option_counts"]["H4"] == [5, 5, 5]


def test_manifest_has_every_required_field(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    resolved = resolve_mapping({"experiment": {"name": "exp1"}, "data": {"train_dir": "a", "val_dir": "b"}})
    plan = {"batch_size": 2, "planned_steps": 10, "steps_per_epoch": 5, "paths_per_step": 3,
            "eval": {"pool_size": 12}}
    data = {"source": "folders", "train_samples": 10, "val_samples": 4, "sample_list_sha256": "abc"}
    manifest = rd.build_manifest(resolved, plan, data, [rd.start_record(0, "fresh")])
    for field in MANIFEST_FIELDS:
        assert field in manifest, field
    assert manifest["input_shape"] == [2, 180, 240, 3]
    assert (manifest["input_normalization"], manifest["loss_uncertainty_form"]) == ("none", "safe")
    assert manifest["option_init"] == "tied"  # the default: every option of a block starts as one function
    assert manifest["residual_init"] == "random"  # the default: ResBlocks drawn as usual
    assert manifest["lr_schedule"]["warmup_steps"] == 0  # the default: no warm-up
    warmed = resolve_mapping({"experiment": {"name": "exp1"}, "data": {"train_dir": "a", "val_dir": "b"},
                              "train": {"lr_warmup_steps": 7}})
    assert rd.build_manifest(warmed, plan, data, [])["lr_schedule"]["warmup_steps"] == 7
    assert manifest["slurm"] == {"SLURM_JOB_ID": "1234"}
    assert set(manifest["versions"]) >= {"python", "tensorflow", "numpy", "h5py", "efnas"}
    rd.write_manifest(tmp_path, manifest)
    assert json.loads((tmp_path / rd.MANIFEST).read_text())["config_hash"] == resolved.config_hash
