"""Supernet switching overhead: one path through the supernet vs the same arch built fixed.

    .venv/bin/python benchmarks/bench_supernet.py [--arch 0,0,0,0,2,1,2,2,2] [--height 180 --width 240]
        [--batch 8] [--steps 10] [--warmup 2]

Both variants build the same ``Supernet`` class: ``Supernet(...)`` fed with ``--arch``
(tf.switch_case / tf.cond on the arch_code placeholder) and ``Supernet(...,
fixed_arch=--arch)`` (plain graph, no switching), each with an Adam train step on
the loss in BN_TRAIN mode, random uint8 images and flow (same seed).

Time: ONE subprocess builds both graphs and alternates their train steps
(``--warmup`` untimed, then ``--steps`` timed steps each), so load from other
processes hits both alike.  Reported per variant: minimum and median wall time
and median process CPU time (all TensorFlow threads) of one
``sess.run(train_op)`` (forward + backward + Adam update).  The verdict uses
the minimum wall time: on a shared machine load from other processes only
ever adds time, so the fastest step is the least disturbed one.

Memory: one fresh subprocess per variant builds only that variant and runs
``--warmup + 2`` steps.  Reported: peak RSS (``resource.getrusage(RUSAGE_SELF).
ru_maxrss``: whole process = Python + TensorFlow runtime + graph + weights +
Adam slots + activations) and the part the steps added (peak RSS minus RSS just
before the first step).  TensorFlow keeps no allocator statistics for CPU
devices (``tf.config.experimental.get_memory_info`` is GPU-only), hence RSS.

Target: supernet step time <= 1.10x fixed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.10


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("/proc/self/status has no VmRSS line (Linux only)")


def _build(variant: str, args: argparse.Namespace):
    """A session, train op and feed dict for one variant, in its own graph."""
    import numpy as np
    import tensorflow as tf

    from edgeflownas.config import resolve
    from edgeflownas.model.supernet import BN_TRAIN, Supernet
    from edgeflownas.nas.arch_codec import parse_arch_code

    code = parse_arch_code(args.arch)
    cfg = resolve(None).config
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        net = Supernet(cfg.model, cfg.loss, args.height, args.width, fixed_arch=code if variant == "fixed" else None)
        train_op = tf.compat.v1.train.AdamOptimizer(1e-4).minimize(net.loss, var_list=net.trainable_variables)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    shape = (args.batch, args.height, args.width)
    feed = {
        net.img0: rng.integers(0, 256, shape + (3,), dtype=np.uint8),
        net.img1: rng.integers(0, 256, shape + (3,), dtype=np.uint8),
        net.flow_gt: rng.normal(0.0, 5.0, shape + (2,)).astype(np.float32),
        net.bn_mode: BN_TRAIN,
    }
    if variant == "supernet":
        feed[net.arch_code] = list(code)
    return session, train_op, feed


def time_both(args: argparse.Namespace) -> Dict:
    """Alternate train steps of both variants in this process; median wall and CPU ms per variant."""
    built = {variant: _build(variant, args) for variant in VARIANTS}
    for session, train_op, feed in built.values():
        for _ in range(args.warmup):
            session.run(train_op, feed)
    wall: Dict[str, List[float]] = {v: [] for v in VARIANTS}
    cpu: Dict[str, List[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.steps):
        for variant, (session, train_op, feed) in built.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            session.run(train_op, feed)
            wall[variant].append(time.perf_counter() - start_wall)
            cpu[variant].append(time.process_time() - start_cpu)
    return {v: {"wall_ms": 1000 * statistics.median(wall[v]), "wall_min_ms": 1000 * min(wall[v]),
                "cpu_ms": 1000 * statistics.median(cpu[v])} for v in VARIANTS}


def memory_of(variant: str, args: argparse.Namespace) -> Dict:
    """Peak RSS of a process that builds one variant and runs a few train steps."""
    session, train_op, feed = _build(variant, args)
    before = _current_rss_mb()
    for _ in range(args.warmup + 2):
        session.run(train_op, feed)
    peak = _peak_rss_mb()
    return {"peak_rss_mb": peak, "step_rss_mb": peak - before}


def _worker(task: str, args: argparse.Namespace) -> Dict:
    command = [sys.executable, __file__, "--worker", task, "--arch", args.arch, "--height", str(args.height),
               "--width", str(args.width), "--batch", str(args.batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark worker '{task}' failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


VARIANTS = ("fixed", "supernet")


def main(argv: List[str] = None) -> int:
    """Measure time (one process, alternating) and memory (one process per variant); print ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="0,0,0,0,2,1,2,2,2")
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", choices=["time", "memory-fixed", "memory-supernet"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "time":
        print(json.dumps(time_both(args)))
        return 0
    if args.worker:
        print(json.dumps(memory_of(args.worker.split("-")[1], args)))
        return 0

    times = _worker("time", args)
    memory = {variant: _worker(f"memory-{variant}", args) for variant in VARIANTS}
    print(f"arch {args.arch}  input {args.height}x{args.width}  batch {args.batch}  "
          f"train step = forward + backward + Adam, BN_TRAIN; {args.steps} timed steps per variant "
          f"(+{args.warmup} warmup), alternating in one process")
    for variant in VARIANTS:
        t, m = times[variant], memory[variant]
        print(f"{variant:9s} step wall min {t['wall_min_ms']:7.1f} ms  median {t['wall_ms']:7.1f} ms  "
              f"cpu median {t['cpu_ms']:7.1f} ms  |  peak RSS {m['peak_rss_mb']:6.0f} MB  "
              f"(added by steps {m['step_rss_mb']:5.0f} MB)")
    ratios = {key: times["supernet"][key] / times["fixed"][key] for key in ("wall_min_ms", "wall_ms", "cpu_ms")}
    verdict = "meets" if ratios["wall_min_ms"] <= TARGET_RATIO else "MISSES"
    print(f"ratio supernet/fixed step time: wall min {ratios['wall_min_ms']:.3f}x ({verdict} target <= "
          f"{TARGET_RATIO:.2f}x), wall median {ratios['wall_ms']:.3f}x, cpu median {ratios['cpu_ms']:.3f}x")
    print(f"ratio supernet/fixed peak RSS: {memory['supernet']['peak_rss_mb'] / memory['fixed']['peak_rss_mb']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
