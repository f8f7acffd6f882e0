"""data-check as a library (data/check.run_data_check): the CLI only prints what it returns."""

from __future__ import annotations

import json

import pytest

from edgeflownas.data.check import CheckRequest, run_data_check
from edgeflownas.errors import ConfigError


def test_clean_splits_pass_and_the_report_is_written(fc2_root, tmp_path):
    request = CheckRequest({"train": fc2_root / "train", "val": fc2_root / "val"})
    result = run_data_check(request, tmp_path / "out" / "report.json")
    assert result.ok and result.problems == []
    assert "train_samples: 5" in result.sections[0] and "val_samples: 3" in result.sections[0]
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written == result.report and written["ok"] is True


def test_a_bad_sample_fails_with_its_reason_and_is_still_reported(fc2_root, tmp_path):
    (fc2_root / "val" / "0000001-flow_01.flo").write_bytes(b"junk")
    result = run_data_check(CheckRequest({"train": fc2_root / "train", "val": fc2_root / "val"}),
                            tmp_path / "report.json")
    assert not result.ok and "1 bad samples (train: 0, val: 1) exceed --max_bad 0" in result.problems[0]
    assert json.loads((tmp_path / "report.json").read_text())["failures"] == result.problems


def test_one_split_or_nothing_to_check_is_refused_before_any_scan(fc2_root, tmp_path):
    with pytest.raises(ConfigError, match="--val_dir is missing"):
        run_data_check(CheckRequest({"train": fc2_root / "train"}), tmp_path / "report.json")
    with pytest.raises(ConfigError, match="data-check needs --config FILE"):
        run_data_check(CheckRequest(), tmp_path / "report.json")
    assert not (tmp_path / "report.json").exists()
