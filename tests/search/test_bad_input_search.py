"""Bad input to ``efnas search``: damaged or non-finite store lines, usage mistakes (exit 2), Ctrl-C (exit 130)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeflownas.cli import SIGINT_EXIT, main
from edgeflownas.errors import SearchError
from edgeflownas.search.store import ResultStore

SCORING = {"checkpoint": "best", "bn_recal_batches": 2, "eval_batch_size": 2, "val_batches": 1}


def record(code, epe):
    return {"checkpoint_sha256": "abc", "arch_code": list(code), "scoring": dict(SCORING), "epe": epe,
            "name": "a" + "".join(map(str, code))}


def test_binary_bytes_appended_to_the_store_name_the_file_and_line(tmp_path):
    store = ResultStore(tmp_path)
    store.add(record((0,) * 9, 1.0))
    with open(store.path, "ab") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary\n")
    with pytest.raises(SearchError, match=rf"{store.path} line 2 is damaged \(bytes that are not UTF-8 text\)"):
        ResultStore(tmp_path, writer="reader")


def test_binary_bytes_without_a_newline_are_a_torn_tail_the_writer_cuts(tmp_path):
    store = ResultStore(tmp_path)
    store.add(record((0,) * 9, 1.0))
    with open(store.path, "ab") as handle:
        handle.write(b"\xff\xfe{\"epe\": ")
    assert ResultStore(tmp_path, writer="reader").get("abc", (0,) * 9, SCORING)["epe"] == 1.0
    ResultStore(tmp_path)
    assert store.path.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "null", '"1.0"'])
def test_a_non_finite_epe_in_the_store_is_refused(tmp_path, text):
    path = tmp_path / "driver.jsonl"
    line = json.dumps(record((1,) * 9, 0.0)).replace('"epe": 0.0', f'"epe": {text}')
    path.write_text(json.dumps(record((0,) * 9, 1.0)) + "\n" + line + "\n")
    with pytest.raises(SearchError, match=rf"{path} line 2: EPE .* of a111111111 is not a finite number"):
        ResultStore(tmp_path, writer="reader")


def test_a_non_finite_score_is_never_stored(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(SearchError, match="not a finite number") as refused:
        store.add(record((0,) * 9, float("nan")))
    # Nothing was written, so the fix is not "remove that line".
    assert "nothing was stored" in str(refused.value) and "remove that line" not in str(refused.value)
    assert "efnas eval --run RUN --arch a000000000" in str(refused.value)
    assert not store.path.exists() or store.path.read_text() == ""


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "--budget 0"),
    (["--constraint", "flops<=1e9"], "unknown key 'flops'"),
    (["--constraint", "macs<1e9"], "expected KEY<=NUMBER"),
    (["--population", "1"], "--population 1"),
    (["--fix", "EB9=1"], "--fix 'EB9=1'"),
    (["--budget", "0", "--slurm"], "--budget 0"),
])
def test_usage_mistakes_exit_2_before_the_run_is_read(tmp_path, extra, message):
    result = CliRunner().invoke(main, ["search", "--run", str(tmp_path / "no_run"), *extra])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.output


SLOW_SEARCH = """
import signal, sys, time
# Ctrl-C as a terminal delivers it, whatever this pytest process's signal state (an ignored or blocked SIGINT
# is inherited by a child across exec)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
import edgeflownas.search.run as run
run.run_search = lambda *args, **kwargs: (print("searching", flush=True), time.sleep(60))
from edgeflownas.cli import main
sys.argv[0] = "efnas"
main()
"""


def test_ctrl_c_during_search_is_one_line_and_exit_130(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", SLOW_SEARCH, "search", "--run", str(tmp_path / "run"),
                                "--out", str(tmp_path / "search")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "searching"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == SIGINT_EXIT == 130, stderr
    assert len(lines) == 1 and lines[0].startswith("efnas search: interrupted by SIGINT"), stderr
    assert "search store" in lines[0] and "Aborted" not in stderr


def test_a_non_empty_folder_that_is_not_a_search_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "front.png").write_bytes(b"my own picture")
    result = CliRunner().invoke(main, ["search", "--run", str(tmp_path / "no_run"), "--out", str(out)])
    assert result.exit_code == 2 and "holds files but no store" in result.output, result.output
    assert (out / "front.png").read_bytes() == b"my own picture"
