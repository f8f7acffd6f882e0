"""Benchmark of the fairness cycle: prints measured ratios against their targets.

(a) fairness-cycle time / sum of the single-path step times of the same 3 subnets   (target <= 1.10)
(b) cycle time reading the real shard loader / with the same batches already in memory (target <= 1.05)
(c) peak memory of a cycle / peak memory of the largest single-path step             (target <= 1.25)

A single-path step is what a plain one-subnet trainer does: forward/backward of
that subnet (gradients into the accumulators) + one clipped Adam apply.  A cycle
is 3 forward/backward + 1 apply.  Peak memory is the TensorFlow CPU allocator's
peak (BFC allocator with statistics, TF_CPU_ALLOCATOR_USE_BFC=true), reset
before each measured run.  Data: a synthetic FC2 set (384x512) packed to the
training resolution in a temp directory, read through BatchLoader.

    .venv/bin/python benchmarks/bench_train.py [--height 180 --width 240 --batch 8 --repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each measurement")
    parser.add_argument("--loader_cycles", type=int, default=8, help="cycles timed in (b), each way")
    parser.add_argument("--workers", type=int, default=2, help="loader threads (data.num_workers)")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def _packed_set(workdir: Path, samples: int, height: int, width: int) -> Path:
    from edgeflownas.data.pack import pack
    from edgeflownas.data.synth import write_dataset

    write_dataset(workdir / "fc2", train=samples, val=2, seed=0, workers=os.cpu_count() or 1)
    pack(workdir / "fc2", workdir / "shards", height=height, width=width, shard_size=16,
         workers=os.cpu_count() or 1)
    return workdir / "shards"


def main(argv=None) -> int:
    """Run the three measurements and print them."""
    args = _parse(argv)
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # allocator statistics on CPU (c)
    import tensorflow as tf

    from edgeflownas.config import resolve
    from edgeflownas.data.loader import BatchLoader, open_source
    from edgeflownas.model.layers import BN_TRAIN
    from edgeflownas.nas.arch_codec import arch_name
    from edgeflownas.nas.fair_sampler import cycle_paths
    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    samples = args.batch * (args.loader_cycles + 2)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        shards = _packed_set(Path(tmp), samples, args.height, args.width)
        overrides = {"data.source": "shards", "data.shards_dir": str(shards), "data.train_dir": "-",
                     "data.val_dir": "-", "data.input_height": args.height, "data.input_width": args.width,
                     "data.num_workers": args.workers, "train.batch_size": args.batch}
        cfg = resolve(None, overrides).config
        source = open_source(cfg.data, "train")
        plan = make_plan(cfg, len(source), 2)
        tf.config.experimental.enable_op_determinism()
        graph_tf = tf.Graph()
        with graph_tf.as_default():
            tf.compat.v1.set_random_seed(args.seed)
            graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (cfg.data.input_height, cfg.data.input_width), plan)
        sess = tf.compat.v1.Session(graph=graph_tf)
        sess.run(graph.init_op)
        batch = source.get_batch(range(args.batch))
        paths = cycle_paths(args.seed, 0)

        def single(code, data=batch):
            sess.run(graph.store_op, graph.feed(data, code, BN_TRAIN))
            sess.run(graph.apply_op)

        def cycle(data=batch):
            for index, code in enumerate(paths):
                op = graph.store_op if index == 0 else graph.accumulate_op
                sess.run(op, graph.feed(data, code, BN_TRAIN))
            sess.run(graph.apply_op)

        def timed(function, *fargs):
            start = time.perf_counter()
            function(*fargs)
            return time.perf_counter() - start

        for _ in range(2):  # warm-up: executors, grappler, allocator
            cycle()
            for code in paths:
                single(code)

        # (a) cycle vs 3 single-path steps, interleaved so drift hits both alike.
        cycle_times, single_times = [], {code: [] for code in paths}
        for _ in range(args.repeats):
            cycle_times.append(timed(cycle))
            for code in paths:
                single_times[code].append(timed(single, code))
        t_cycle = statistics.median(cycle_times)
        t_singles = {code: statistics.median(times) for code, times in single_times.items()}
        ratio_a = t_cycle / sum(t_singles.values())

        # (b) cycles fed by the shard loader (waiting for each batch included) vs the very same
        # batches read into memory beforehand, interleaved one by one so load drift on the machine
        # hits both alike.
        loader = BatchLoader(source, args.batch, args.seed, args.workers, cfg.data.prefetch_batches)
        in_memory = list(BatchLoader(source, args.batch, args.seed, num_workers=0).batches(0))
        batches = loader.batches(0)
        next(batches)  # start the prefetch threads
        loader_times, memory_times = [], []
        for index in range(1, args.loader_cycles + 1):
            loader_times.append(timed(lambda: cycle(next(batches))))
            memory_times.append(timed(cycle, in_memory[index]))
        batches.close()
        loader.close()
        t_loader, t_memory = statistics.median(loader_times), statistics.median(memory_times)
        ratio_b = t_loader / t_memory

        # (c) allocator peak of one cycle vs each single-path step.
        def peak(function, *fargs):
            tf.config.experimental.reset_memory_stats("CPU:0")
            base = tf.config.experimental.get_memory_info("CPU:0")["current"]
            function(*fargs)
            return tf.config.experimental.get_memory_info("CPU:0")["peak"] - base

        peak_cycle = max(peak(cycle) for _ in range(2))
        peak_singles = {code: max(peak(single, code) for _ in range(2)) for code in paths}
        ratio_c = peak_cycle / max(peak_singles.values())
        sess.close()

    mib = 1024.0 ** 2
    print(f"bench_train: {args.height}x{args.width}, batch {args.batch}, init_neurons {cfg.model.init_neurons}, "
          f"TF {tf.__version__}, {os.cpu_count()} CPUs, device CPU, repeats {args.repeats}")
    print(f"paths of the cycle: {', '.join(arch_name(c) for c in paths)}")
    for code, t in t_singles.items():
        print(f"  single-path step {arch_name(code)}: {t * 1000:.1f} ms (median), peak {peak_singles[code] / mib:.1f} MiB")
    print(f"  fairness cycle (3 fwd/bwd + 1 apply): {t_cycle * 1000:.1f} ms (median), peak {peak_cycle / mib:.1f} MiB")
    print(f"(a) cycle / sum of 3 single-path steps = {ratio_a:.3f}   (target <= 1.10)")
    print(f"(b) cycle with shard loader / in-memory = {t_loader * 1000:.1f} / {t_memory * 1000:.1f} ms "
          f"= {ratio_b:.3f}   (target <= 1.05; medians, {args.workers} loader threads, {args.loader_cycles} cycles)")
    print(f"(c) peak memory cycle / largest single-path step = {ratio_c:.3f}   (target <= 1.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
