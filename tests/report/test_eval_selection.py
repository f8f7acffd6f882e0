"""`efnas eval --arch` selections: keywords, code forms, separators, duplicates, errors."""

from __future__ import annotations

import pytest

from edgeflownas.errors import ArchCodeError
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
from edgeflownas.report.eval_run import EvalReport, format_report, resolve_selection, split_selection
from edgeflownas.train.trained_run import logged_epe

POOL = [(0, 1, 2, 0, 1, 2, 0, 1, 2), (2, 1, 0, 2, 1, 0, 2, 1, 0), (1, 2, 0, 1, 2, 0, 1, 2, 0)]


def never_read_pool():
    raise AssertionError("the pool was read although not selected")


def test_code_forms_and_semicolons():
    assert split_selection(["0,1,2,0,0,1,2,1,0; [1,1,1,1,1,1,1,1,1]", "a000021222"]) == [
        "0,1,2,0,0,1,2,1,0", "[1,1,1,1,1,1,1,1,1]", "a000021222"]
    assert resolve_selection(["0,1,2,0,0,1,2,1,0;a111111111"], never_read_pool) == [
        (0, 1, 2, 0, 0, 1, 2, 1, 0), (1,) * 9]


def test_compact_names_and_keywords_may_be_comma_separated():
    assert split_selection(["a000021222,a012001210,baseline"]) == ["a000021222", "a012001210", "baseline"]


def test_keywords_and_duplicates():
    codes = resolve_selection(["baseline;pool", "0,0,0,0,2,1,2,2,2", "pool"], lambda: POOL)
    assert codes == [EDGEFLOWNET_BASELINE] + POOL


@pytest.mark.parametrize("text, message", [
    ("0,1,2", "length=9 required"),
    ("0,1,2,0,0,1,2,1,3", r"value must be in \{0,1,2\}"),
    ("best", "not an integer"),
    (" ; ", "--arch is empty"),
])
def test_bad_selections_raise_arch_code_errors(text, message):
    with pytest.raises(ArchCodeError, match=message):
        resolve_selection([text], never_read_pool)


def test_logged_epe_reads_the_checkpoint_history_row():
    state = {"history": [{"epoch": 1, "epe_a000021222": 3.5, "mean_epe_12": 3.0},
                         {"epoch": 2, "epe_a000021222": None}]}
    assert logged_epe(state, 1) == {"a000021222": 3.5}
    assert logged_epe(state, 2) == {}
    assert logged_epe(state, 3) == {}


def test_table_has_one_row_per_subnet():
    rows = [{"name": "a000021222", "arch_code": [0, 0, 0, 0, 2, 1, 2, 2, 2], "epe": 1.23456, "outlier_1px": 0.5,
             "outlier_3px": 0.125, "outlier_5px": 0.0, "pixels": 100, "logged_epe": None, "params": 1234,
             "macs": 2 * 10**9}]
    text = format_report(EvalReport("run", "best", 3, 30, 8, 6, rows))
    lines = text.splitlines()
    assert len(lines) == 3 and "epoch 3" in lines[0] and "bn_recal_batches=8" in lines[0]
    assert lines[2].split() == ["a000021222", "0,0,0,0,2,1,2,2,2", "1.2346", "50.00%", "12.50%", "0.00%", "-",
                                "1,234", "2.000"]
