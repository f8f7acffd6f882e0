"""Damaged run artifacts read by ``efnas status`` and ``efnas report``: one line naming the file, never a traceback."""

from __future__ import annotations

import pytest

from edgeflownas.errors import CheckpointError
from edgeflownas.report.run_data import load_run
from edgeflownas.train import run_dir as rd


def damage_history(run_dir):
    """Put a byte that is not UTF-8 into the middle of eval_epe_history.csv."""
    path = run_dir / rd.HISTORY
    data = path.read_bytes()
    cut = data.index(b"\n") + 3
    path.write_bytes(data[:cut] + b"\xff" + data[cut:])
    return path, cut


def test_history_with_a_non_utf8_byte_is_one_error_naming_the_file_and_byte(fake_run):
    path, cut = damage_history(fake_run)
    with pytest.raises(CheckpointError, match=rf"{path} is damaged: byte {cut} .*not UTF-8"):
        rd.read_history(path)
    with pytest.raises(CheckpointError, match=rf"{path} is damaged"):
        load_run(fake_run)


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["report", "--flow_samples", "0", "--no_cost"]])
def test_status_and_report_on_a_non_utf8_history_print_one_line(cli, fake_run, args):
    path, _ = damage_history(fake_run)
    result = cli(*args, fake_run)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {path} is damaged"), lines[0]


def test_history_line_with_more_cells_than_the_header_names_the_line(tmp_path):
    path = tmp_path / rd.HISTORY
    path.write_text("epoch,mean_epe_12\n1,2.0\n2,1.5,9\n3,1.0\n")
    with pytest.raises(CheckpointError, match=rf"{path} is damaged: line 3 has 3 cells, the header 2"):
        rd.read_history(path)
