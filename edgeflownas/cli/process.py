"""The ``efnas`` process's start and end: TensorFlow without Keras' eager import, and an exit without teardown.

Two fixed costs of every command that imports TensorFlow, neither of which
touches a number:

* ``import tensorflow`` ends by importing ``keras.src.optimizers`` (all of
  Keras 3, and matplotlib with it) only so that Keras' optimizers register
  for loading SavedModels that contain them: about 0.8 CPU s of the 3 s
  import.  efnas builds ``tf.compat.v1`` graphs and never uses Keras.
  ``skip_keras_preload`` makes that one import find nothing while TensorFlow
  imports (TensorFlow ignores the ImportError, as it does when Keras is not
  installed) and lifts the block as soon as TensorFlow is imported, so a
  later ``import keras`` (or ``tf.keras``) loads Keras as usual.
* The interpreter's teardown frees every Python object of the command's
  TensorFlow graphs one by one: about 1 CPU s after a tiny training.
  ``exit_now`` does what a normal exit does that matters (joins the threads
  that are still running, runs the ``atexit`` functions, which close the
  logging handlers and any worker pool, flushes stdout and stderr) and then
  ends the process with ``os._exit``.  Only the ``efnas`` program itself
  exits that way (``main`` called without arguments): a caller that passes
  arguments (tests, ``CliRunner``) gets ``SystemExit`` as before.
* Python's full garbage collections scan every live object -- TensorFlow's
  modules and the graphs' hundreds of thousands of Python objects -- about
  7 times while a tiny training builds its graph (~0.6 CPU s).
  ``fewer_full_collections`` makes them 10 times rarer for the ``efnas``
  program; the young generations are collected as before, so cyclic garbage
  is still freed.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import Optional, Sequence

# The module TensorFlow's __init__ imports eagerly "so that optimizers register in the SavedModel registry".
KERAS_PRELOAD = "keras.src.optimizers"


class _LiftAfterTensorFlow:
    """A finder that finds nothing; on the first import after TensorFlow's it lifts the Keras block and leaves."""

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target=None):
        """None (the next finder decides); lifts the block once TensorFlow is imported."""
        module = sys.modules.get("tensorflow")
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            lift_keras_block()
        return None


def skip_keras_preload() -> bool:
    """Block TensorFlow's eager Keras import until TensorFlow is imported; False when too late or not needed."""
    if "tensorflow" in sys.modules or KERAS_PRELOAD in sys.modules:
        return False
    # A None entry makes import_module(KERAS_PRELOAD) raise ModuleNotFoundError at once, before any parent package
    # is imported; importlib.util.find_spec("keras"), which TensorFlow also calls, is unaffected.
    sys.modules[KERAS_PRELOAD] = None
    sys.meta_path.insert(0, _LiftAfterTensorFlow())
    return True


def lift_keras_block() -> None:
    """Undo ``skip_keras_preload`` (idempotent): Keras imports normally from here on."""
    if KERAS_PRELOAD in sys.modules and sys.modules[KERAS_PRELOAD] is None:
        del sys.modules[KERAS_PRELOAD]
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _LiftAfterTensorFlow)]


def fewer_full_collections(factor: int = 10) -> None:
    """Full (oldest-generation) garbage collections ``factor`` times rarer; the younger generations unchanged."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old * factor)


def exit_status(code) -> int:
    """The status ``sys.exit(code)`` gives the shell (None: 0; a message: printed to stderr, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def exit_now(code) -> None:
    """End the process with ``code`` as ``sys.exit`` would, without the interpreter's teardown of every object."""
    status = exit_status(code)
    # As the interpreter's shutdown: threading's exit hooks first (they wake idle concurrent.futures workers so that
    # a pool left open can end), then every non-daemon thread joined.
    threading._shutdown()
    atexit._run_exitfuncs()  # what the interpreter runs before its teardown (logging, multiprocessing, finalizers)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            # As the interpreter does when its final flush fails (a closed pipe): exit 120 instead of 0.
            status = status or 120
    os._exit(status)
