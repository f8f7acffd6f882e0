"""The 9-dim arch code: the forms users type, the error messages, names and readable structure."""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.errors import ArchCodeError, ConfigError
from edgeflownas.nas.arch_codec import (
    BLOCK_NAMES, EDGEFLOWNET_BASELINE, arch_name, depth_of, describe, format_code, kernel_of, parse_arch_code,
)

SPEC_CODE = (0, 1, 2, 0, 0, 1, 2, 1, 0)


@pytest.mark.parametrize(
    "text",
    ["0,1,2,0,0,1,2,1,0", " 0, 1, 2, 0, 0, 1, 2, 1, 0 ", "0 1 2 0 0 1 2 1 0", "[0,1,2,0,0,1,2,1,0]",
     "[0, 1, 2, 0, 0, 1, 2, 1, 0]", "a012001210"],
)
def test_text_forms_parse(text):
    assert parse_arch_code(text) == SPEC_CODE


@pytest.mark.parametrize("value", [list(SPEC_CODE), SPEC_CODE, np.array(SPEC_CODE), [np.int64(v) for v in SPEC_CODE]],
                         ids=["list", "tuple", "ndarray", "numpy_ints"])
def test_sequences_parse(value):
    assert parse_arch_code(value) == SPEC_CODE


def test_spec_code_decodes_to_depths_and_kernels():
    info = describe([0, 1, 2, 0, 0, 1, 2, 1, 0])
    assert [b["block"] for b in info["blocks"]] == list(BLOCK_NAMES)
    assert [b.get("depth") for b in info["blocks"][:4]] == [1, 2, 3, 1]
    assert [b.get("kernel") for b in info["blocks"][4:]] == [3, 5, 7, 5, 3]
    assert info["name"] == "a012001210" and info["arch_code"] == list(SPEC_CODE)
    assert depth_of(SPEC_CODE, "EB1") == 2 and kernel_of(SPEC_CODE, "H2") == 7


def test_name_round_trip_and_baseline():
    for code in (SPEC_CODE, EDGEFLOWNET_BASELINE, (2,) * 9):
        assert parse_arch_code(arch_name(code)) == code
        assert parse_arch_code(format_code(code)) == code
    assert arch_name(EDGEFLOWNET_BASELINE) == "a000021222"
    assert describe(EDGEFLOWNET_BASELINE)["is_edgeflownet_baseline"]


@pytest.mark.parametrize(
    "bad",
    ["0,1,2,0,0,1,2,1", [0, 1, 2, 0, 0, 1, 2, 1], "[0,1,2,0,0,1,2,1,0,0]", "a01200121", "", [], "[]"],
    ids=["8_text", "8_list", "10_json", "short_name", "empty_text", "empty_list", "empty_json"],
)
def test_wrong_length_says_length_9_required(bad):
    with pytest.raises(ArchCodeError, match="length=9 required"):
        parse_arch_code(bad)


@pytest.mark.parametrize("bad", ["0,1,2,0,0,1,2,1,3", [0, 1, 2, 0, 0, 1, 2, 1, -1], "[3,1,2,0,0,1,2,1,0]"],
                         ids=["3_text", "minus_1", "3_json"])
def test_out_of_range_value_says_value_must_be_in(bad):
    with pytest.raises(ArchCodeError, match=r"value must be in \{0,1,2\}"):
        parse_arch_code(bad)


@pytest.mark.parametrize(
    "bad",
    ["0,1,2,0,0,1,2,1,x", "0,1,2,0,0,1,2,1,1.0", [0, 1, 2, 0, 0, 1, 2, 1, 1.5], [0, 1, 2, 0, 0, 1, 2, 1, True],
     "[0,1,2,0,0,1,2,1,\"1\"]", "[0,1,2,0,0,1,2,1,0.0]", [0, 1, 2, 0, 0, 1, 2, 1, None]],
    ids=["letter", "float_text", "float", "bool", "json_string", "json_float", "none"],
)
def test_non_integers_are_rejected(bad):
    with pytest.raises(ArchCodeError, match="not an integer"):
        parse_arch_code(bad)


@pytest.mark.parametrize("bad", ["[0,1,2", "{\"a\": 1}", 7, None], ids=["broken_json", "json_object", "int", "none"])
def test_other_garbage_is_an_arch_code_error(bad):
    with pytest.raises(ArchCodeError) as info:
        parse_arch_code(bad)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_the_word_baseline_is_the_edgeflownet_code():
    assert parse_arch_code("baseline") == parse_arch_code(" Baseline ") == EDGEFLOWNET_BASELINE
