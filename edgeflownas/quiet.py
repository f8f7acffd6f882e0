"""Keep TensorFlow's and TFLite's chatter off the console, unless the step it came from fails.

A process's first graph run, building a SavedModel, converting to TFLite and
opening an interpreter print lines no user can act on: Python deprecation
warnings (``build_tensor_info``, ``tf.lite.Interpreter``) and native C++ log
lines (``MLIR V1 optimization pass is not enabled``, ``Ignored output_format``,
``fully_quantize: 0, ...``, ``Created TensorFlow Lite XNNPACK delegate``) that
``TF_CPP_MIN_LOG_LEVEL`` does not reach.  ``quiet()`` sends file descriptors
1 and 2 to a temporary file for the block and drops it; if the block raises,
what it printed is written to stderr first, so a failure keeps its evidence.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from typing import Any, Iterator, Optional


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence native and Python output of the block (shown on stderr if the block raises); with no room for
    the temporary file (a full or read-only temp dir) the block runs unsilenced rather than not at all."""
    try:
        sink_file = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    python = io.StringIO()  # Python-level writes (sys.stdout/sys.stderr may not be the descriptors)
    with sink_file as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(python), contextlib.redirect_stderr(python):
                warnings.simplefilter("ignore")
                tf_logger.setLevel(logging.ERROR)
                yield
        except BaseException:
            _restore(saved)
            sink.seek(0)
            os.write(2, sink.read())
            sys.stderr.write(python.getvalue())
            raise
        finally:
            tf_logger.setLevel(level)
            _restore(saved)


def _restore(saved) -> None:
    """Point fds 1 and 2 back where they were (idempotent: the saved copies are closed once)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError):  # a closed stream (interpreter shutdown) has nothing to flush
            stream.flush()
    for fd, copy in list(saved.items()):
        os.dup2(copy, fd)
        os.close(copy)
        del saved[fd]


_FIRST_RUN_DONE = False


def absorb_first_run_notices(config: Optional[Any] = None) -> None:
    """Run a one-op graph quietly, once per process, before its first real session (``config``: that session's
    ``ConfigProto``, so a GPU is set up as it would set it up; None = TensorFlow's default, as its session has).

    The first graph a process runs makes TensorFlow print two lines that ``TF_CPP_MIN_LOG_LEVEL`` does not
    reach ("All log messages before absl::InitializeLog() ...", "MLIR V1 optimization pass is not enabled"),
    once per process: at the top of every command's console and every training log.  This run takes them.
    """
    global _FIRST_RUN_DONE
    if _FIRST_RUN_DONE:
        return
    _FIRST_RUN_DONE = True
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        two = tf.constant(1.0) + 1.0
    with quiet(), tf.compat.v1.Session(graph=graph, config=config) as session:
        session.run(two)
