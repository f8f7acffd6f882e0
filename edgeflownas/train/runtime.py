"""TensorFlow runtime settings shared by every session on a supernet graph (training and evaluation)."""

from __future__ import annotations

import os
from typing import Callable, Optional

import tensorflow as tf

from edgeflownas.config_types import RuntimeConfig
from edgeflownas.errors import ConfigError
from edgeflownas.quiet import absorb_first_run_notices

XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"
# Grappler runs at every new sess.run signature (fetches + feeds) over the whole supernet graph; a training's first
# cycle alone has 3 (stage, the path runs, the apply).  These passes cost CPU time there without changing a bit of the results: on a CPU there is no
# layout to transpose, the memory optimizer's swaps and the dependency/loop rewrites find nothing worth doing, and
# the arithmetic rewrites leave these graphs' numbers as they are.  Without them, and with the remaining passes run
# once instead of twice, 8 first runs of a tiny training (init, a cycle's 4 signatures, the other slot's and the
# last step's path, an evaluation; before the path runs shared one signature) took 9.5 CPU s instead of 13.6
# (docs/performance.md).
# tests/train/test_grappler_passes.py checks losses, norms, every variable and an evaluation pass stay bit-identical
# to TensorFlow's default set.  Constant folding and the remapper stay: without either the results change in the
# last bits (exact resume of runs trained before).
# What sizes TensorFlow's CPU thread pools when a process first makes them (efnas study's threads_per_training).
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
GRAPPLER_PASSES_OFF = ("layout_optimizer", "dependency_optimization", "loop_optimization", "arithmetic_optimization")


def configure_runtime(runtime: RuntimeConfig, log: Callable[[str], None]) -> Optional[str]:
    """Op determinism, XLA and GPU choice; returns the device to build on (None = TensorFlow's choice)."""
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    if runtime.xla:
        enable_cpu_xla()
        log("runtime.xla: XLA JIT auto-clustering of the training graph (compiles for a while at the first step)")
    threads = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if os.environ.get(name)]
    if threads:  # results depend on the thread count in the last float digits
        log(f"cpu threads: {', '.join(threads)}")
    gpus = tf.config.list_physical_devices("GPU")
    if runtime.gpu_device is None:
        log(f"device: {'GPU:0' if gpus else 'CPU'} ({len(gpus)} GPU(s) visible)")
        return None
    if not gpus:
        log(f"notice: --gpu_device {runtime.gpu_device} requested but TensorFlow sees no GPU; running on CPU")
        return None
    if runtime.gpu_device >= len(gpus):
        raise ConfigError(f"runtime.gpu_device={runtime.gpu_device} but only {len(gpus)} GPU(s) are visible "
                          f"(valid: 0..{len(gpus) - 1})")
    tf.config.set_visible_devices([gpus[runtime.gpu_device]], "GPU")
    log(f"device: GPU {runtime.gpu_device} ({gpus[runtime.gpu_device].name})")
    return "/GPU:0"


def enable_cpu_xla() -> None:
    """Let XLA auto-clustering compile CPU ops too (TensorFlow clusters only GPU ops without this flag)."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if XLA_CPU_FLAG not in flags.split():
        os.environ["TF_XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()


def session_config(runtime: RuntimeConfig) -> tf.compat.v1.ConfigProto:
    """Soft placement (CPU fallback for ops without a GPU kernel), GPU memory on demand, Grappler on/off, XLA."""
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    rewrite = config.graph_options.rewrite_options
    if not runtime.graph_optimizations:
        rewrite.disable_meta_optimizer = True
    else:
        rewrite.meta_optimizer_iterations = rewrite.ONE
        for name in GRAPPLER_PASSES_OFF:
            setattr(rewrite, name, rewrite.OFF)
        rewrite.memory_optimization = rewrite.NO_MEM_OPT
    if runtime.xla:
        config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
    return config


def open_session(graph: tf.Graph, runtime: RuntimeConfig) -> tf.compat.v1.Session:
    """A session on ``graph`` with ``session_config(runtime)``, TensorFlow's one-time notices taken first
    (``quiet.absorb_first_run_notices``, with the same settings: a GPU is set up as this session would set it up)."""
    config = session_config(runtime)
    absorb_first_run_notices(config)
    return tf.compat.v1.Session(graph=graph, config=config)
