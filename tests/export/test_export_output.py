"""``efnas export --out`` under concurrency, a full disk, a bad folder; ``efnas infer`` on damaged model files.

Each bad case ends in one line, before anything is loaded where it can be
seen up front, and leaves nothing half-written.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = pytest.mark.slow


def error_line(result, *fragments):
    """The one non-empty output line that holds every fragment; the command failed without a traceback."""
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if all(f in line for f in fragments)]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if the export reads the run (a refusal must come before any loading or converting)."""
    from edgeflownas.export import api

    def refuse(*args, **kwargs):
        raise AssertionError("the run was loaded before --out / --height / --width were checked")

    monkeypatch.setattr(api, "load_source", refuse)


# --- concurrency and temporaries ------------------------------------------------------------------------------

def test_a_second_export_into_the_same_out_is_refused_and_temporaries_stay_beside_it(cli, search_run, monkeypatch,
                                                                                     tmp_path):
    """While an export builds: a second one into its --out stops in one line naming the first; the files being
    built are in a sibling of --out, none in the system temp directory."""
    import tempfile

    from edgeflownas.export import api

    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    out = tmp_path / "exports" / "ec"
    seen = {}
    real_entry = api._format_entry

    def during_the_export(*args, **kwargs):
        if not seen:
            seen["started"] = True  # once: without a lock the second export would come here again
            seen["second"] = cli("export", "--run", search_run, "--arch", "baseline", "--out", out, "--format",
                                 "tflite")
            seen["system_tmp"] = sorted(p.name for p in system_tmp.iterdir())
            seen["beside"] = sorted(p.name for p in out.parent.iterdir())
            seen["out"] = sorted(p.name for p in out.iterdir())
        return real_entry(*args, **kwargs)

    monkeypatch.setattr(api, "_format_entry", during_the_export)
    first = cli("export", "--run", search_run, "--arch", "baseline", "--out", out, "--format", "tflite")
    assert first.exit_code == 0, first.output
    line = error_line(seen["second"], f"{out} is in use by pid {os.getpid()}")
    assert f"efnas export of {search_run}" in line
    assert seen["system_tmp"] == []
    assert seen["beside"] == [f".ec.tmp-{os.getpid()}", "ec"] and seen["out"] == [".efnas.lock"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ec"]  # the staging folder became ec
    assert sorted(p.name for p in out.iterdir()) == [".efnas.lock", "export_manifest.json", "model_float.tflite"]


def test_export_held_by_another_process_is_one_line_and_touches_nothing(cli, search_run, no_loading, tmp_path):
    from edgeflownas.locks import exclusive_lock

    out = tmp_path / "held"
    out.mkdir()
    with exclusive_lock(out, "a test holding the lock"):
        line = error_line(cli("export", "--run", search_run, "--arch", "baseline", "--out", out), "in use by pid")
    assert f"pid {os.getpid()}" in line and "a test holding the lock" in line
    assert [p.name for p in out.iterdir()] == [".efnas.lock"]  # the holder's own file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held"]


def test_a_killed_export_leaves_no_temporaries_in_the_system_temp_dir_and_can_be_rerun(search_run, tmp_path):
    """kill -9 while the export builds: its staging folder is beside --out (none in TMPDIR); a re-run succeeds
    and removes it."""
    import sys
    import time

    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    out = tmp_path / "ec"
    env = dict(os.environ, TMPDIR=str(system_tmp))
    command = [sys.executable, "-c", "import sys; from edgeflownas.cli import main; sys.argv[0] = 'efnas'; main()",
               "export", "--run", str(search_run), "--arch", "baseline",
               "--out", str(out), "--format", "saved_model,tflite"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / f".ec.tmp-{process.pid}"
    deadline = time.monotonic() + 600
    while not (staging / "saved_model").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert staging.exists(), "the export had not started building when it was killed"
    assert list(system_tmp.iterdir()) == []
    rerun = subprocess.run(command[:-2] + ["--format", "tflite"], env=env, capture_output=True, text=True,
                           timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "taking over a lock left by pid" in rerun.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ec", "system_tmp"]
    assert list(system_tmp.iterdir()) == []


def test_a_killed_infer_from_a_run_leaves_nothing_in_the_system_temp_dir_and_the_next_call_finishes(
        search_run, tiny_fc2, tmp_path):
    """kill -9 while 'efnas infer --run' exports: its staging folder is in RUN/exports (none in TMPDIR); the next
    call removes it and keeps the export there."""
    import sys
    import time

    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    pair = [str(tiny_fc2 / "val" / f"0000001-img_{i}.png") for i in range(2)]
    env = dict(os.environ, TMPDIR=str(system_tmp))
    command = [sys.executable, "-c", "import sys; from edgeflownas.cli import main; sys.argv[0] = 'efnas'; main()",
               "infer", "--run", str(run), "--arch", "baseline", *pair, "--out", str(tmp_path / "a.flo")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = f".a000021222-*.tmp-{process.pid}"
    deadline = time.monotonic() + 600
    while not list((run / "exports").glob(f"{staging}/saved_model")) and not list(system_tmp.iterdir()) \
            and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert list(system_tmp.iterdir()) == []
    assert list((run / "exports").glob(staging)), "the export had not started building when it was killed"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    [cached] = (run / "exports").iterdir()
    assert cached.name.startswith("a000021222-") and (cached / "export_manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flo", "run", "system_tmp"]
    assert list(system_tmp.iterdir()) == []


# --- full disk ------------------------------------------------------------------------------------------------

def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(cli, search_run, tmpfs):
    disk = tmpfs("small", "256k")
    out = disk / "exports" / "ec"
    line = error_line(cli("export", "--run", search_run, "--arch", "baseline", "--out", out, "--format",
                          "saved_model,tflite"), "no space left on")
    assert line.endswith("run it again") and f"no space left on {out}" in line
    assert list(disk.iterdir()) == []


def test_export_whose_file_write_fails_with_enospc_is_one_line_and_leaves_nothing(cli, search_run, monkeypatch,
                                                                                  tmp_path):
    """The same without a mount: fsync (where delayed allocation reports a full disk) fails with ENOSPC."""
    from edgeflownas import atomic_io

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_io.os, "fsync", full)
    out = tmp_path / "exports" / "ec"
    line = error_line(cli("export", "--run", search_run, "--arch", "baseline", "--out", out, "--format", "tflite"),
                      f"no space left on {out}")
    assert "nothing of it was left" in line
    assert list(tmp_path.iterdir()) == []


# --- bad --out, bad size: refused before loading ----------------------------------------------------------------

def test_out_on_a_read_only_file_system_is_refused_before_loading(cli, search_run, tmpfs, no_loading):
    disk = tmpfs("read_only", "64k", read_only=True)
    result = cli("export", "--run", search_run, "--arch", "baseline", "--out", disk / "ec")
    assert result.exit_code == 2
    assert f"--out {disk / 'ec'}" in error_line(result, "read-only file system")


def test_out_under_a_file_is_refused_before_loading(cli, search_run, no_loading, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    line = error_line(cli("export", "--run", search_run, "--arch", "baseline", "--out",
                          tmp_path / "notes.txt" / "ec"), "is a file")
    assert str(tmp_path / "notes.txt") in line
    error_line(cli("export", "--run", search_run, "--arch", "baseline", "--out", tmp_path / "notes.txt"), "is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("option, value", [("--height", 100000), ("--width", 4100), ("--height", 8),
                                           ("--width", 30)])
def test_model_size_beyond_what_training_accepts_is_refused_up_front(cli, search_run, no_loading, tmp_path,
                                                                     option, value):
    result = cli("export", "--run", search_run, "--arch", "baseline", "--out", tmp_path / "x", option, value)
    assert result.exit_code == 2
    line = error_line(result, f"{option} {value}")
    assert "multiple of 4 from 16 to 4096" in line
    assert not (tmp_path / "x").exists()


def test_model_size_limits_are_the_schema_ones():
    from edgeflownas.config import load_schema
    from edgeflownas.errors import ConfigError
    from edgeflownas.export.api import check_model_size

    limits = load_schema()["properties"]["data"]["properties"]["input_height"]
    check_model_size(limits["maximum"], 16)
    check_model_size(None, None)
    with pytest.raises(ConfigError, match="--width 4100"):
        check_model_size(None, limits["maximum"] + 4)


# --- infer on damaged model files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_export(search_run, tmp_path_factory):
    from edgeflownas.export.api import export_run

    out = tmp_path_factory.mktemp("small_export") / "model"
    export_run(search_run, "baseline", out, ("saved_model", "tflite"))
    return out


@pytest.mark.parametrize("fmt, damaged", [("tflite", "model_float.tflite"),
                                          ("saved_model", "saved_model/saved_model.pb")])
def test_infer_with_a_garbage_model_file_names_it_in_one_line(cli, small_export, tiny_fc2, tmp_path, fmt, damaged):
    model = tmp_path / "model"
    shutil.copytree(small_export, model)
    (model / damaged).write_bytes(b"\xff\xfe garbage, not a model \x00" * 10)
    pair = [tiny_fc2 / "val" / f"0000000-img_{i}.png" for i in range(2)]
    result = cli("infer", "--model", model, "--format", fmt, *pair, "--out", tmp_path / "flow.flo")
    assert result.exit_code == 1
    line = error_line(result, "sha256")
    assert str(model / damaged.split("/")[0]) in line and "export the model again" in line
    assert not (tmp_path / "flow.flo").exists()
    intact = cli("infer", "--model", small_export, "--format", fmt, *pair, "--out", tmp_path / "flow.flo")
    assert intact.exit_code == 0, intact.output


def test_the_library_refuses_a_bad_out_before_yielding_the_staging_folder(tmpfs, tmp_path):
    """export_run's own check (without the CLI's): the folder is created first, so a bad --out is one line."""
    from edgeflownas.errors import ConfigError
    from edgeflownas.export.output import building

    (tmp_path / "notes.txt").write_text("mine")
    read_only = tmpfs("read_only", "64k", read_only=True)
    for out, why in ((tmp_path / "notes.txt" / "ec", "Not a directory"), (read_only / "ec", "Read-only file system")):
        with pytest.raises(ConfigError, match=f"--out {out} cannot be created \\({why}\\)"):
            with building(out, "a test"):
                raise AssertionError("the staging folder was handed out")
    assert (tmp_path / "notes.txt").read_text() == "mine" and list(read_only.iterdir()) == []
