"""Converter chatter stays off the console; a failing step still shows what it printed."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import pytest

from edgeflownas.quiet import quiet


def test_native_python_and_warning_output_of_the_block_is_dropped(capfd):
    with quiet():
        os.write(2, b"W0000 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.\n")
        os.write(1, b"fully_quantize: 0, inference_type: 6\n")
        print("python stderr line", file=sys.stderr)
        logging.getLogger("tensorflow").warning("build_tensor_info is deprecated")
        warnings.warn("tf.lite.Interpreter is deprecated", UserWarning)
    print("after", file=sys.stderr)
    out, err = capfd.readouterr()
    assert out == "" and err == "after\n"


def test_a_failing_block_shows_what_it_printed(capfd):
    with pytest.raises(RuntimeError):
        with quiet():
            os.write(2, b"converter: op FOO is not supported\n")
            raise RuntimeError("conversion failed")
    print("after", file=sys.stderr)
    _, err = capfd.readouterr()
    assert err == "converter: op FOO is not supported\nafter\n"



def test_with_no_room_for_its_temporary_file_the_block_runs_unsilenced(capfd, monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    ran = []
    with quiet():
        os.write(2, b"notice\n")
        ran.append(True)
    _, err = capfd.readouterr()
    assert ran == [True] and err == "notice\n"

@pytest.mark.slow
def test_an_export_prints_no_converter_or_deprecation_lines(search_run, tmp_path, capfd):
    from edgeflownas.export.api import export_run

    export_run(search_run, "baseline", tmp_path / "model", ("saved_model", "tflite", "tflite_int8"))
    out, err = capfd.readouterr()
    for noise in ("build_tensor_info", "is deprecated", "Ignored output_format", "drop_control_dependency",
                  "fully_quantize", "XNNPACK", "Interpreter"):
        assert noise not in out + err, noise
