"""Benchmark of a retrain step: the fixed-arch network with only its path vs the whole supernet fed that code.

Before ``efnas retrain`` existed, ``train.supernet_mode: fixed_arch`` trained one code inside the whole
supernet graph: every option's variables existed and Adam, weight decay and clipping ran over all
6,584,964 of them.  Now a fixed-arch network holds only its path (2,742,508 for the baseline).  Both are
built here with today's ``TrainGraph`` (``fixed_arch=code`` vs ``fixed_arch=None`` fed the same code), at
the same size and batch, and one optimizer step (forward/backward + clipped Adam apply) is timed.

    .venv/bin/python benchmarks/bench_retrain.py [--height 180 --width 240 --batch 8 --repeats 5]

Prints the medians and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arch", default="baseline")
    return parser.parse_args(argv)


def _time_steps(fixed, code, cfg, plan, batch, repeats):
    import numpy as np
    import tensorflow as tf

    from edgeflownas.model.bn_modes import BN_TRAIN
    from edgeflownas.train.graph import TrainGraph

    graph_tf = tf.Graph()
    with graph_tf.as_default():
        tf.compat.v1.set_random_seed(0)
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (cfg.data.input_height, cfg.data.input_width), plan,
                           code if fixed else None)
        trainable = int(sum(np.prod(v.shape.as_list()) for v in graph.net.trainable_variables))
    with tf.compat.v1.Session(graph=graph_tf) as sess:
        sess.run(graph.init_op)
        times = []
        for index in range(repeats + 1):
            started = time.perf_counter()
            sess.run(graph.store_op, graph.feed(batch, code, BN_TRAIN))
            sess.run(graph.apply_op)
            if index:  # the first step builds kernels and caches
                times.append(time.perf_counter() - started)
    return statistics.median(times), trainable


def main(argv=None) -> int:
    """Time both graphs and print the ratio."""
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.data.loader import Batch
    from edgeflownas.nas.arch_codec import parse_arch_code
    from edgeflownas.train.plan import TrainPlan

    code = parse_arch_code(args.arch)
    cfg = resolve_mapping(load_yaml(default_config_path()), {
        "data.input_height": args.height, "data.input_width": args.width, "train.batch_size": args.batch,
        "train.supernet_mode": "fixed_arch", "model.fixed_arch_code": list(code)}).config
    plan = TrainPlan(batch_size=args.batch, steps_per_epoch=100, num_epochs=1, planned_steps=100, paths_per_step=1,
                     eval_batch_size=args.batch, val_batches=1, val_samples_used=args.batch, recal_batches=0,
                     pool_size=1, eval_every=1, notices=())
    rng = np.random.default_rng(0)
    shape = (args.batch, args.height, args.width)
    batch = Batch(ids=[str(i) for i in range(args.batch)],
                  img0=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                  img1=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                  flow=rng.normal(0, 2, shape + (2,)).astype(np.float32))
    path_s, path_vars = _time_steps(True, code, cfg, plan, batch, args.repeats)
    whole_s, whole_vars = _time_steps(False, code, cfg, plan, batch, args.repeats)
    print(f"{args.height}x{args.width} batch {args.batch}, arch {args.arch}, median of {args.repeats} steps")
    print(f"  path only (retrain):         {path_s * 1e3:8.1f} ms/step, {path_vars:,} trainable variables")
    print(f"  whole supernet fed the code: {whole_s * 1e3:8.1f} ms/step, {whole_vars:,} trainable variables")
    print(f"  retrain step / old fixed_arch step = {path_s / whole_s:.3f}")
    print(json.dumps({"retrain_step_s": round(path_s, 4), "supernet_fixed_step_s": round(whole_s, 4),
                      "retrain_vs_supernet_fixed_step": round(path_s / whole_s, 4),
                      "trainable_path": path_vars, "trainable_supernet": whole_vars}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
