"""Benchmark of the fairness cycle: prints measured figures and ratios against their targets.

(a) fairness-cycle time / sum of the single-path step times of the same 3 subnets   (target <= 1.10)
(b) cycle time reading the real shard loader / with the same batches already in memory (target <= 1.05)
(c) peak memory of a cycle / peak memory of the largest single-path step             (target <= 1.25)
(d) runs and bytes fed per cycle, in batches (target 1: the batch is copied to the device once), and
    the cycle time, for the trainer's cycle (the next batch prefetched in the first path run), a cycle
    staging its own batch in a run of its own, and feeding the batch to each of the 3 paths' runs
    (efnas before staging), at a small resolution where compute is small and the feed shows most
(e) per upsampling order (model.upsample): the EdgeFlowNet baseline subnet's GMACs per pair (at the
    bench resolution and at 352x480), its training samples/s (fixed-arch steps, batch --batch) and
    samples/s x GMACs per pair (forward GMACs trained per second: throughput per unit of work)
(f) with --xla only: cycle time with XLA JIT auto-clustering vs without, at the small resolution, and
    the largest relative loss difference (runtime.xla is adopted only at >= 1.15x; it compiles ~1 min)

A single-path step is what a plain one-subnet trainer does: forward/backward of
that subnet (gradients into the accumulators) + one clipped Adam apply.  A cycle
is 3 forward/backward + 1 apply (``TrainGraph.run_cycle``).  Peak memory is the
TensorFlow CPU allocator's peak (BFC allocator with statistics,
TF_CPU_ALLOCATOR_USE_BFC=true), reset before each measured run.  Data: a
synthetic FC2 set (384x512) packed to the training resolution in a temp
directory, read through BatchLoader.  Timings are medians of interleaved runs,
so load drift on the machine hits both sides of a ratio alike.  Ends with one
JSON line of the ratios and their targets.

    .venv/bin/python benchmarks/bench_train.py [--height 180 --width 240 --batch 8 --repeats 5] [--xla]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Ratio targets: "at most" except fed_batches_per_cycle (exactly one batch's bytes, plus arch codes and BN modes).
TARGETS = {"cycle_vs_3_paths": 1.10, "loader_vs_memory": 1.05, "memory_cycle_vs_path": 1.25,
           "fed_batches_per_cycle": 1.0}
XLA_TARGET = 1.15
UPSAMPLE_ORDERS = ("resize_conv", "conv_resize")
FEED_SIDES = ("prefetched", "staged", "fed")
PAPER_SIZE = (352, 480)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each measurement")
    parser.add_argument("--loader_cycles", type=int, default=8, help="cycles timed in (b), each way")
    parser.add_argument("--workers", type=int, default=2, help="loader threads (data.num_workers)")
    parser.add_argument("--small_height", type=int, default=64, help="resolution of (d) and (f)")
    parser.add_argument("--small_width", type=int, default=96)
    parser.add_argument("--small_neurons", type=int, default=8, help="model.init_neurons of (d) and (f)")
    parser.add_argument("--xla", action="store_true", help="also measure (f), XLA JIT (about 2 extra minutes)")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def _packed_set(workdir: Path, samples: int, height: int, width: int) -> Path:
    from edgeflownas.data.pack import pack
    from edgeflownas.data.synth import write_dataset

    write_dataset(workdir / "fc2", train=samples, val=2, seed=0, workers=os.cpu_count() or 1)
    pack(workdir / "fc2", workdir / "shards", height=height, width=width, shard_size=16,
         workers=os.cpu_count() or 1)
    return workdir / "shards"


def timed(function, *fargs) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    function(*fargs)
    return time.perf_counter() - start


def _session(cfg, seed, stage_batch=True, fixed_arch=None, runtime=None):
    """(TrainGraph, Session) of ``cfg`` at its data resolution, initialised."""
    import tensorflow as tf

    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan
    from edgeflownas.train.runtime import session_config

    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (cfg.data.input_height, cfg.data.input_width),
                           make_plan(cfg, 1000, 2), fixed_arch, stage_batch)
    sess = tf.compat.v1.Session(graph=tf_graph, config=session_config(runtime or cfg.runtime))
    sess.run(graph.init_op)
    return graph, sess


def _random_batches(count, batch, height, width, seed):
    import numpy as np

    from edgeflownas.data.loader import Batch

    rng = np.random.default_rng(seed)
    shape = (batch, height, width)
    return [Batch(rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                  rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                  rng.normal(0.0, 3.0, shape + (2,)).astype(np.float32), tuple(map(str, range(batch))))
            for _ in range(count)]


def cycle_figures(args, cfg, source):
    """(a), (b), (c) on the staged graph the trainer runs."""
    import tensorflow as tf

    from edgeflownas.data.loader import BatchLoader
    from edgeflownas.nas.fair_sampler import cycle_paths

    graph, sess = _session(cfg, args.seed)
    batch = source.get_batch(range(args.batch))
    paths = cycle_paths(args.seed, 0)

    def single(code, data=batch):
        graph.run_cycle(sess, data, [code])

    def cycle(data=batch):
        graph.run_cycle(sess, data, paths)

    for _ in range(2):  # warm-up: executors, grappler, allocator
        cycle()
        for code in paths:
            single(code)
    cycle_times, single_times = [], {code: [] for code in paths}
    for _ in range(args.repeats):
        cycle_times.append(timed(cycle))
        for code in paths:
            single_times[code].append(timed(single, code))
    t_cycle = statistics.median(cycle_times)
    t_singles = {code: statistics.median(times) for code, times in single_times.items()}

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

    def peak(function, *fargs):
        tf.config.experimental.reset_memory_stats("CPU:0")
        base = tf.config.experimental.get_memory_info("CPU:0")["current"]
        function(*fargs)
        return tf.config.experimental.get_memory_info("CPU:0")["peak"] - base

    peak_cycle = max(peak(cycle) for _ in range(2))
    peak_singles = {code: max(peak(single, code) for _ in range(2)) for code in paths}
    sess.close()
    return {"paths": paths, "t_cycle": t_cycle, "t_singles": t_singles, "t_loader": statistics.median(loader_times),
            "t_memory": statistics.median(memory_times), "peak_cycle": peak_cycle, "peak_singles": peak_singles}


def feed_figures(args, small_cfg):
    """(d): runs, bytes fed and times per cycle at the small resolution: prefetched / staged alone / fed to every path."""
    from edgeflownas.nas.fair_sampler import cycle_paths
    from edgeflownas.train.graph import FeedCounter

    h, w = small_cfg.data.input_height, small_cfg.data.input_width
    batches = _random_batches(4, args.batch, h, w, args.seed)
    sides = {}
    for name in FEED_SIDES:
        graph, sess = _session(small_cfg, args.seed, stage_batch=name != "fed")
        sides[name] = (graph, sess, FeedCounter(sess))
    paths = cycle_paths(args.seed, 0)

    def cycle(name, index):
        graph, _, counter = sides[name]
        upcoming = batches[(index + 1) % len(batches)] if name == "prefetched" else None
        graph.run_cycle(counter, batches[index % len(batches)], paths, upcoming)

    for index in range(2):  # warm-up
        for name in sides:
            cycle(name, index)
    counted = {name: (counter.runs, counter.fed_bytes) for name, (_, _, counter) in sides.items()}
    # Wall and CPU seconds of this process (the latter hardly moved by other jobs on a loaded machine);
    # the sides rotate which goes first.
    cycles = 6 * args.repeats
    wall, cpu = {name: [] for name in sides}, {name: [] for name in sides}
    for index in range(2, 2 + cycles):
        for name in FEED_SIDES[index % 3:] + FEED_SIDES[:index % 3]:
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            cycle(name, index)
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    per_cycle = {name: ((counter.runs - counted[name][0]) / cycles, (counter.fed_bytes - counted[name][1]) / cycles)
                 for name, (_, _, counter) in sides.items()}
    graph, sess, _ = sides["staged"]
    staging, batch = graph.net.staging, batches[0]
    stage_run = statistics.median(timed(staging.stage, sess, 0, batch) for _ in range(9))
    for _, sess, _ in sides.values():
        sess.close()
    return {"batch_bytes": batch.img0.nbytes + batch.img1.nbytes + batch.flow.nbytes, "cycles": cycles,
            "runs": {name: runs for name, (runs, _) in per_cycle.items()},
            "fed_bytes": {name: fed for name, (_, fed) in per_cycle.items()},
            "wall": {name: statistics.median(values) for name, values in wall.items()},
            "cpu": {name: statistics.median(values) for name, values in cpu.items()}, "stage_run": stage_run}


def upsample_figures(args, cfg):
    """(e): baseline GMACs per pair and training samples/s for each upsampling order."""
    import dataclasses

    from edgeflownas.model.cost import subnet_cost
    from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE

    h, w = cfg.data.input_height, cfg.data.input_width
    batches = _random_batches(3, args.batch, h, w, args.seed)
    figures, runs = {}, {}
    for order in UPSAMPLE_ORDERS:
        model = dataclasses.replace(cfg.model, upsample=order)
        figures[order] = {"gmacs": subnet_cost(EDGEFLOWNET_BASELINE, h, w, model).macs / 1e9,
                          "gmacs_paper": subnet_cost(EDGEFLOWNET_BASELINE, *PAPER_SIZE, model).macs / 1e9,
                          "times": []}
        graph, sess = _session(dataclasses.replace(cfg, model=model), args.seed, fixed_arch=EDGEFLOWNET_BASELINE)
        for batch in batches[:2]:  # warm-up
            graph.run_cycle(sess, batch, [EDGEFLOWNET_BASELINE])
        runs[order] = (graph, sess)
    for repeat in range(args.repeats):  # interleaved
        for order, (graph, sess) in runs.items():
            batch = batches[repeat % len(batches)]
            figures[order]["times"].append(timed(graph.run_cycle, sess, batch, [EDGEFLOWNET_BASELINE]))
    for order, (_, sess) in runs.items():
        sess.close()
        figures[order]["samples_per_s"] = args.batch / statistics.median(figures[order].pop("times"))
        # Throughput per unit of work, comparable across orders and resolutions: forward GMACs trained per second.
        figures[order]["gmacs_per_s"] = figures[order]["samples_per_s"] * figures[order]["gmacs"]
    return figures


def xla_figures(args, small_cfg):
    """(f): cycle time with XLA JIT vs without at the small resolution, and the largest relative loss gap."""
    import dataclasses

    import numpy as np

    from edgeflownas.nas.fair_sampler import cycle_paths

    h, w = small_cfg.data.input_height, small_cfg.data.input_width
    batches = _random_batches(4, args.batch, h, w, args.seed)
    runtimes = {"plain": small_cfg.runtime, "xla": dataclasses.replace(small_cfg.runtime, xla=True)}
    sessions = {name: _session(small_cfg, args.seed, runtime=runtime) for name, runtime in runtimes.items()}
    losses = {name: [] for name in sessions}
    times = {name: [] for name in sessions}
    started = time.perf_counter()
    for cycle in range(2 + 4 * args.repeats):
        paths = cycle_paths(args.seed, cycle)
        for name, (graph, sess) in sessions.items():
            start = time.perf_counter()
            losses[name] += graph.run_cycle(sess, batches[cycle % len(batches)], paths).losses
            if cycle >= 2:  # the first cycles compile
                times[name].append(time.perf_counter() - start)
    for _, sess in sessions.values():
        sess.close()
    plain, xla = np.array(losses["plain"]), np.array(losses["xla"])
    return {"plain": statistics.median(times["plain"]), "xla": statistics.median(times["xla"]),
            "max_rel_loss_diff": float(np.max(np.abs(xla - plain) / np.abs(plain))),
            "first_loss_rel_diff": float(abs(xla[0] - plain[0]) / abs(plain[0])),
            "wall": time.perf_counter() - started}


def main(argv=None) -> int:
    """Run the measurements, print them and one JSON line of ratios."""
    args = _parse(argv)
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # allocator statistics on CPU (c)
    if args.xla:  # TensorFlow reads its XLA flags once, at the first session: set before any (runtime.py's flag)
        os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} --tf_xla_cpu_global_jit".strip()
    import tensorflow as tf

    from edgeflownas.config import resolve
    from edgeflownas.data.loader import open_source
    from edgeflownas.nas.arch_codec import arch_name

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    samples = args.batch * (args.loader_cycles + 2)
    tf.config.experimental.enable_op_determinism()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        shards = _packed_set(Path(tmp), samples, args.height, args.width)
        overrides = {"data.source": "shards", "data.shards_dir": str(shards), "data.train_dir": "-",
                     "data.val_dir": "-", "data.input_height": args.height, "data.input_width": args.width,
                     "data.num_workers": args.workers, "train.batch_size": args.batch}
        cfg = resolve(None, overrides).config
        source = open_source(cfg.data, "train")
        main_figures = cycle_figures(args, cfg, source)
    small_cfg = resolve(None, {"data.input_height": args.small_height, "data.input_width": args.small_width,
                               "model.init_neurons": args.small_neurons, "train.batch_size": args.batch}).config
    feed = feed_figures(args, small_cfg)
    upsample = upsample_figures(args, cfg)
    xla = xla_figures(args, small_cfg) if args.xla else None

    f, mib = main_figures, 1024.0 ** 2
    ratios = {"cycle_vs_3_paths": f["t_cycle"] / sum(f["t_singles"].values()),
              "loader_vs_memory": f["t_loader"] / f["t_memory"],
              "memory_cycle_vs_path": f["peak_cycle"] / max(f["peak_singles"].values()),
              "fed_batches_per_cycle": feed["fed_bytes"]["prefetched"] / feed["batch_bytes"],
              "fed_batches_per_cycle_before": feed["fed_bytes"]["fed"] / feed["batch_bytes"],
              "runs_per_cycle": feed["runs"]["prefetched"],
              "prefetched_vs_fed_cycle": feed["wall"]["prefetched"] / feed["wall"]["fed"],
              "prefetched_vs_fed_cycle_cpu": feed["cpu"]["prefetched"] / feed["cpu"]["fed"],
              "prefetched_vs_staged_cycle": feed["wall"]["prefetched"] / feed["wall"]["staged"],
              "stage_run_vs_cycle": feed["stage_run"] / feed["wall"]["prefetched"],
              "conv_resize_vs_resize_conv_gmacs": upsample["conv_resize"]["gmacs"] / upsample["resize_conv"]["gmacs"],
              "conv_resize_vs_resize_conv_samples_per_s": (upsample["conv_resize"]["samples_per_s"]
                                                           / upsample["resize_conv"]["samples_per_s"]),
              **{f"{order}_samples_per_s_x_gmacs": upsample[order]["gmacs_per_s"] for order in UPSAMPLE_ORDERS}}
    if xla is not None:
        ratios["xla_vs_plain_cycle"] = xla["plain"] / xla["xla"]
        ratios["xla_max_rel_loss_diff"] = xla["max_rel_loss_diff"]

    print(f"bench_train: {args.height}x{args.width}, batch {args.batch}, init_neurons {cfg.model.init_neurons}, "
          f"TF {tf.__version__}, {os.cpu_count()} CPUs, device CPU, repeats {args.repeats}; load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end; {time.perf_counter() - started:.0f} s")
    print(f"paths of the cycle: {', '.join(arch_name(c) for c in f['paths'])}")
    for code, t in f["t_singles"].items():
        print(f"  single-path step {arch_name(code)}: {t * 1000:.1f} ms (median), "
              f"peak {f['peak_singles'][code] / mib:.1f} MiB")
    print(f"  fairness cycle (3 fwd/bwd + 1 apply, batch already staged): {f['t_cycle'] * 1000:.1f} ms (median), "
          f"peak {f['peak_cycle'] / mib:.1f} MiB")
    print(f"(a) cycle / sum of 3 single-path steps = {ratios['cycle_vs_3_paths']:.3f}   (target <= 1.10)")
    print(f"(b) cycle with shard loader / in-memory = {f['t_loader'] * 1000:.1f} / {f['t_memory'] * 1000:.1f} ms "
          f"= {ratios['loader_vs_memory']:.3f}   (target <= 1.05; medians, {args.workers} loader threads, "
          f"{args.loader_cycles} cycles)")
    print(f"(c) peak memory cycle / largest single-path step = {ratios['memory_cycle_vs_path']:.3f}   "
          "(target <= 1.25)")
    print(f"(d) at {args.small_height}x{args.small_width}, init_neurons {args.small_neurons}, batch {args.batch} "
          f"({feed['batch_bytes'] / 1e6:.3f} MB a batch):")
    for name, label in (("prefetched", "prefetched (the trainer: the next batch copied in the 1st path run)"),
                        ("staged", "staged alone (a run of its own copies the batch)"),
                        ("fed", "fed to every path's run (efnas before staging)")):
        print(f"    {label}: {feed['runs'][name]:.2f} runs and {feed['fed_bytes'][name] / feed['batch_bytes']:.4f} "
              f"batches fed per cycle; wall {feed['wall'][name] * 1000:.1f} ms, CPU {feed['cpu'][name] * 1000:.1f} ms")
    print(f"    fed_batches_per_cycle {ratios['fed_batches_per_cycle']:.4f} (target 1), runs_per_cycle "
          f"{ratios['runs_per_cycle']:.2f}; prefetched / fed cycle: wall {ratios['prefetched_vs_fed_cycle']:.3f}, "
          f"CPU {ratios['prefetched_vs_fed_cycle_cpu']:.3f}; prefetched / staged alone: wall "
          f"{ratios['prefetched_vs_staged_cycle']:.3f} (medians of {feed['cycles']} cycles each)")
    print(f"    the stage run alone (one copy of the batch): {feed['stage_run'] * 1000:.2f} ms = "
          f"{ratios['stage_run_vs_cycle']:.4f} of a cycle; feeding every path pays it 3 times, "
          "the prefetch hides it behind the first path on a GPU")
    print(f"(e) EdgeFlowNet baseline subnet {arch_name((0, 0, 0, 0, 2, 1, 2, 2, 2))}, init_neurons "
          f"{cfg.model.init_neurons}, per upsampling order (model.upsample):")
    for order, figures in upsample.items():
        print(f"    {order:<12} {figures['gmacs']:.3f} GMACs/pair at {args.height}x{args.width}, "
              f"{figures['gmacs_paper']:.2f} at {PAPER_SIZE[0]}x{PAPER_SIZE[1]}; "
              f"train {figures['samples_per_s']:.1f} samples/s (batch {args.batch}, median of {args.repeats}), "
              f"x GMACs/pair = {figures['gmacs_per_s']:.2f} forward GMACs/s")
    print(f"    conv_resize / resize_conv: GMACs {ratios['conv_resize_vs_resize_conv_gmacs']:.3f}, samples/s "
          f"{ratios['conv_resize_vs_resize_conv_samples_per_s']:.3f}")
    if xla is not None:
        print(f"(f) XLA JIT at {args.small_height}x{args.small_width}: cycle {xla['xla'] * 1000:.1f} ms vs "
              f"{xla['plain'] * 1000:.1f} ms plain = {ratios['xla_vs_plain_cycle']:.3f}x (adopted at >= "
              f"{XLA_TARGET}x); losses differ by up to {xla['max_rel_loss_diff']:.2e} relative over "
              f"{2 + 4 * args.repeats} cycles ({xla['first_loss_rel_diff']:.2e} at the first path); "
              f"{xla['wall']:.0f} s with compilation")
    targets = dict(TARGETS, **({"xla_vs_plain_cycle": XLA_TARGET} if xla is not None else {}))
    print(json.dumps({**{key: float(f"{value:.5g}") for key, value in ratios.items()}, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
