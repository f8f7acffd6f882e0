"""`python -m edgeflownas.model.shape_check`: seeded codes, printed shapes, exit status."""

from __future__ import annotations

import pytest

from edgeflownas.model.shape_check import expected_shapes, main, random_codes

pytestmark = pytest.mark.slow


def test_codes_are_seeded_and_valid():
    assert random_codes(20, 0) == random_codes(20, 0)
    assert random_codes(20, 0) != random_codes(20, 1)
    assert all(len(c) == 9 and set(c) <= {0, 1, 2} for c in random_codes(20, 0))


def test_small_run_passes_and_prints_three_shapes_per_code(capsys):
    assert main(["--h", "32", "--w", "48", "--batch", "2", "--codes", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("(2, 8, 12, 4), (2, 16, 24, 4), (2, 32, 48, 4)") == 4  # header + 3 codes
    assert "3/3 arch codes passed" in out


def test_bad_size_exits_2():
    assert main(["--h", "30", "--w", "48", "--codes", "1"]) == 2


def test_expected_shapes_at_spec_size():
    assert expected_shapes(2, 180, 240) == [(2, 45, 60, 4), (2, 90, 120, 4), (2, 180, 240, 4)]
