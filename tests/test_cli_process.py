"""The efnas process's start and end (``cli/process.py``): TensorFlow without Keras, an exit without teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter (stdout and stderr captured)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_tensorflow_imports_without_keras_and_keras_still_imports_afterwards():
    out = _python("""
        import sys
        from edgeflownas.cli.process import KERAS_PRELOAD, skip_keras_preload
        assert skip_keras_preload()
        import tensorflow as tf
        print("after tf", "keras" in sys.modules, "matplotlib" in sys.modules)
        import keras  # the first import after TensorFlow's lifts the block
        print("block", KERAS_PRELOAD in sys.modules and sys.modules[KERAS_PRELOAD] is None,
              any(type(f).__name__ == "_LiftAfterTensorFlow" for f in sys.meta_path))
        print("optimizer", tf.keras.optimizers.Adam.__module__)
        print("again", skip_keras_preload())
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "after tf False False"
    assert lines[1] == "block False False"
    assert lines[2].startswith("optimizer keras.")
    assert lines[3] == "again False"  # TensorFlow is imported: nothing to skip


@pytest.mark.parametrize("code, status, stderr", [("3", 3, ""), ("None", 0, ""), ("'bad thing'", 1, "bad thing\n"),
                                                  ("256 + 7", 7, "")])
def test_exit_now_finishes_what_a_normal_exit_finishes(code, status, stderr):
    out = _python(f"""
        import atexit, sys, threading, time
        from edgeflownas.cli.process import exit_now

        def late():
            time.sleep(0.3)
            sys.stdout.write("thread done;")

        atexit.register(lambda: sys.stdout.write("atexit ran;"))
        threading.Thread(target=late).start()
        sys.stdout.write("buffered;")  # no newline, a pipe: still in the buffer
        exit_now({code})
    """)
    assert (out.returncode, out.stdout, out.stderr) == (status, "buffered;thread done;atexit ran;", stderr)


def test_exit_now_ends_with_a_thread_pool_left_open():
    """An idle concurrent.futures pool nobody shut down: a normal exit wakes its workers through threading's exit
    hooks; so must exit_now, or it would wait for them forever."""
    out = _python("""
        import sys
        from concurrent.futures import ThreadPoolExecutor
        from edgeflownas.cli.process import exit_now

        pool = ThreadPoolExecutor(2)
        sys.stdout.write(str(pool.submit(lambda: 6 * 7).result()))
        exit_now(0)
    """, timeout=60)
    assert (out.returncode, out.stdout) == (0, "42"), out.stderr


def test_the_efnas_program_exits_with_its_status_and_all_its_output(tmp_path):
    ok = _python("from edgeflownas.cli import main; main()", "arch", "describe", "baseline")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().splitlines()[-1]  # the whole table, flushed
    bad = _python("from edgeflownas.cli import main; main()", "config", "validate", str(tmp_path / "missing.yaml"))
    assert bad.returncode != 0 and "missing.yaml" in bad.stderr and "Traceback" not in bad.stderr


def test_a_caller_passing_arguments_gets_system_exit():
    out = _python("""
        from edgeflownas.cli import main
        try:
            main(["--version"])
        except SystemExit as done:
            print("caught", done.code)
        print("still here")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["caught 0", "still here"]


def test_the_efnas_program_runs_full_collections_ten_times_rarer_and_a_caller_keeps_its_own():
    code = """
        import gc, sys
        from edgeflownas.cli import main
        before = gc.get_threshold()
        if sys.argv[1] == "caller":
            try:
                main(["--version"])
            except SystemExit:
                pass
            print(gc.get_threshold() == before)
        else:
            import atexit
            atexit.register(lambda: print(gc.get_threshold() == before[:2] + (before[2] * 10,)))
            sys.argv[1:] = ["--version"]
            main()
    """
    for who in ("caller", "program"):
        out = _python(code, who)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "True", (who, out.stdout)
