"""Which TFLite interpreter runs a model: LiteRT (``ai-edge-litert``, the ``edge`` extra) before TensorFlow's.

LiteRT is the lightweight runtime TensorFlow Lite became: a ~20 MB wheel that
loads in a tenth of a second, where ``import tensorflow`` takes seconds.  This
module never imports TensorFlow unless LiteRT is missing and a TFLite model
must still run (the full install without the ``edge`` extra).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any, Tuple

LITERT = "ai_edge_litert"


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (looked up without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def runtime_name() -> str:
    """The runtime TFLite models run with here: 'litert' or 'tensorflow' (ModuleNotFoundError if neither)."""
    if importlib.util.find_spec(LITERT) is not None:
        return "litert"
    if tensorflow_installed():
        return "tensorflow"
    raise ModuleNotFoundError(f"No module named '{LITERT}'", name=LITERT)


def runtime_version() -> Tuple[str, str]:
    """(runtime name, its version) of the interpreter ``load_interpreter`` uses."""
    from importlib import metadata

    name = runtime_name()
    for dist in (("ai-edge-litert",) if name == "litert" else ("tensorflow", "tensorflow-cpu")):
        try:
            return name, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return name, "unknown"


def load_interpreter(path: Path, threads: int = 1) -> Any:
    """A TFLite interpreter of ``path`` with ``threads`` CPU threads, from LiteRT if installed, else TensorFlow."""
    if runtime_name() == "litert":
        from ai_edge_litert.interpreter import Interpreter
    else:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that it moved to LiteRT, once per model
        warnings.simplefilter("ignore")
        return Interpreter(model_path=str(path), num_threads=threads)
