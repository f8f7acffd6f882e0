"""Does a strict-fairness supernet leave the mean-flow plateau from scratch?  Seeds x settings, one process.

Trains, for each setting and seed, the efnas training graph (``TrainGraph``: the same
accumulate-average-clip-Adam cycle as ``efnas train``) from scratch on ``efnas synth
--preset learnable`` data, and prints per checkpoint step:

* ``train_ratio``: mean train loss of the last ``--every`` cycles / the loss of zero
  flow over the whole train split (plain multiscale L1: ~1.0 = the mean-flow plateau);
* ``val_ratio``: val EPE / zero-flow EPE of the val pairs, mean over three subnets
  (baseline, all-smallest, all-largest), each after BN recalibration on 4 train batches;
* trunk diagnostics on one fixed batch: the global norm of each path's gradient on the
  stem convs, and the mean pairwise cosine between the three paths' gradients on the
  variables every path uses (stem, first ResBlocks, down/up convs, head BNs).

A run "left the plateau" when its final val_ratio is <= ``ESCAPED`` (0.9).  Ends with
one JSON line (every row).  Settings are config overrides on top of
``configs/learnable_small.yaml`` (``SETTINGS``).  Measured figures:
studies/learnability/README.md.

    efnas synth --preset learnable --height 48 --width 64 --train_samples 1000 --val_samples 200 \\
        --seed 0 --out data/synth_learnable_48x64
    nice -n 10 python benchmarks/probe_fairness.py --data data/synth_learnable_48x64 \\
        --setting independent --setting tied --seeds 0 1 2 --steps 800
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "learnable_small.yaml"
ESCAPED = 0.9
BASELINE = (0, 0, 0, 0, 2, 1, 2, 2, 2)
PROBE_CODES = (BASELINE, (0,) * 9, (2,) * 9)
COMMON = {"checkpoint.resume_experiment_name": None, "loss.uncertainty_form": "none", "train.lr": 1e-3,
          "train.lr_min": 1e-3, "train.weight_decay": 0.0, "train.grad_clip_norm": 100.0, "train.batch_size": 16,
          "model.init_neurons": 8}
SETTINGS: Dict[str, Dict[str, Any]] = {
    "fixed_baseline": {"train.supernet_mode": "fixed_arch"},
    "independent": {"model.option_init": "independent"},
    "tied_kernels": {"model.option_init": "tied_kernels"},
    "tied": {"model.option_init": "tied"},
    "tied_coarse_first": {"model.option_init": "tied", "loss.scale_weights": [0.5, 0.25, 0.125]},
    "independent_coarse_first": {"model.option_init": "independent", "loss.scale_weights": [0.5, 0.25, 0.125]},
    "tied_equal_scales": {"model.option_init": "tied", "loss.scale_weights": [1.0, 1.0, 1.0]},
    "independent_lr3e-4": {"model.option_init": "independent", "train.lr": 3e-4, "train.lr_min": 3e-4},
    # The fixed-baseline contrasts of the first probe (PROBE_KNOBS: what is not a config option).
    "fixed_flow_div20": {"train.supernet_mode": "fixed_arch"},
    "fixed_head_x0.01_lr_warmup100": {"train.supernet_mode": "fixed_arch", "train.lr_warmup_steps": 100},
}
# Probe-only knobs: flow_scale divides every flow (train and val; the val and train ratios are scale-free, so
# they compare directly), head_scale multiplies the initial kernels of the three flow heads (H0, H2, H4).
PROBE_KNOBS: Dict[str, Dict[str, float]] = {
    "fixed_flow_div20": {"flow_scale": 1 / 20},
    "fixed_head_x0.01_lr_warmup100": {"head_scale": 0.01},
}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an efnas synth data set (train/ and val/)")
    parser.add_argument("--setting", action="append", choices=sorted(SETTINGS), default=[])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps (fairness cycles) per run")
    parser.add_argument("--every", type=int, default=100, help="steps between measurements")
    parser.add_argument("--out", type=Path, help="append every row as one JSON line here too")
    parser.add_argument("--table", type=Path, help="train nothing: print the markdown table of the rows in this file")
    return parser.parse_args(argv)


def table(rows: List[Dict[str, Any]], steps=(200, 400, 600, 800)) -> str:
    """Markdown: per setting and seed, val_ratio at ``steps`` and the mean trunk diagnostics; escapes per setting."""
    runs: Dict[tuple, Dict[int, Dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault((row["setting"], row["seed"]), {})[row["step"]] = row
    lines = ["| setting | seed | " + " | ".join(f"val ratio @{s}" for s in steps)
             + " | path cosine (mean) | stem grad norm (mean) | left the plateau |",
             "|---|---|" + "---|" * len(steps) + "---|---|---|"]
    escaped: Dict[str, List[bool]] = {}
    for (setting, seed), by_step in sorted(runs.items()):
        last = by_step[max(by_step)]
        cosines = [r["path_cosine"] for r in by_step.values() if r["path_cosine"] is not None]
        cells = [f"{by_step[s]['val_ratio']:.3f}" if s in by_step else "" for s in steps]
        left = last["val_ratio"] <= ESCAPED
        escaped.setdefault(setting, []).append(left)
        lines.append(f"| {setting} | {seed} | " + " | ".join(cells)
                     + f" | {np.mean(cosines):.2f} | {np.mean([r['stem_grad_norm'] for r in by_step.values()]):.2f}"
                     if cosines else f"| {setting} | {seed} | " + " | ".join(cells)
                     + f" | - | {np.mean([r['stem_grad_norm'] for r in by_step.values()]):.2f}")
        lines[-1] += f" | {'yes' if left else 'no'} (step {max(by_step)}) |"
    lines.append("")
    lines += [f"{setting}: left the plateau in {sum(v)}/{len(v)} seeds" for setting, v in sorted(escaped.items())]
    return "\n".join(lines)


def _load_all(source) -> List[np.ndarray]:
    batch = source.get_batch(np.arange(len(source)))
    return [batch.img0, batch.img1, batch.flow]


def _zero_flow_l1(flow: np.ndarray, weights) -> float:
    """Plain multiscale L1 loss of an all-zero prediction (mean |flow| per component, area-resized per scale)."""
    import tensorflow as tf

    with tf.Graph().as_default():
        from edgeflownas.model.loss import multiscale_loss

        gt = tf.constant(flow)
        h, w = flow.shape[1:3]
        preds = tuple(tf.zeros([flow.shape[0], h // s, w // s, 4]) for s in (4, 2, 1))
        loss = multiscale_loss(preds, gt, weights, "none").total
        with tf.compat.v1.Session() as sess:
            return float(sess.run(loss))


def run_one(setting: str, seed: int, args, data) -> List[Dict[str, Any]]:
    """Train one setting from scratch; the measurement rows."""
    import tensorflow as tf

    from edgeflownas.config import load_yaml, resolve_mapping
    from edgeflownas.data.flow_stats import zero_flow_epe
    from edgeflownas.data.loader import Batch
    from edgeflownas.model.bn_modes import BN_RECAL
    from edgeflownas.nas.fair_sampler import cycle_paths
    from edgeflownas.train.evaluate import PoolEvaluator
    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    knobs = PROBE_KNOBS.get(setting, {})
    train, val = data
    if "flow_scale" in knobs:
        train = [train[0], train[1], (train[2] * knobs["flow_scale"]).astype(np.float32)]
        val = [val[0], val[1], (val[2] * knobs["flow_scale"]).astype(np.float32)]
    h, w = train[0].shape[1:3]
    overrides = {**COMMON, **SETTINGS[setting], "experiment.seed": seed, "data.input_height": h,
                 "data.input_width": w, "data.train_dir": str(args.data / "train"),
                 "data.val_dir": str(args.data / "val"), "train.num_epochs": 1, "train.steps_per_epoch": args.steps,
                 "train.max_steps": None}
    cfg = resolve_mapping(load_yaml(CONFIG), overrides).config
    plan = make_plan(cfg, 10 ** 6, len(val[0]))
    fixed = cfg.train.supernet_mode == "fixed_arch"
    rng = np.random.default_rng([seed, 7])
    batch_size = cfg.train.batch_size
    make = lambda idx, arrays: Batch(*(a[idx] for a in arrays), tuple(str(i) for i in idx))  # noqa: E731
    recal = [make(rng.choice(len(train[0]), batch_size, replace=False), train) for _ in range(4)]
    val_batches = [make(np.arange(s, min(s + 50, len(val[0]))), val) for s in range(0, len(val[0]), 50)]
    probe_batch = make(rng.choice(len(train[0]), batch_size, replace=False), train)
    zero_val = zero_flow_epe(b.flow for b in val_batches)
    zero_train = _zero_flow_l1(train[2], cfg.loss.scale_weights)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        tg = TrainGraph(cfg.model, cfg.loss, cfg.train, (h, w), plan,
                        fixed_arch=tuple(cfg.model.fixed_arch_code) if fixed else None, stage_batch=False)
        net = tg.net
        shared = [v for v in net.trainable_variables
                  if not any(f"/{b}/" in v.name for b in ("H0", "H1", "H2", "H3", "H4"))
                  or "/bn/" in v.name]
        shared = [v for v in shared if "/res1/" not in v.name and "/res2/" not in v.name]
        stem = [v for v in shared if "/stem/conv" in v.name]
        grads = tf.gradients(net.loss, shared)
        evaluator = PoolEvaluator(tg, recal, val_batches, log=lambda _line: None)
        sess = tf.compat.v1.Session(graph=graph, config=tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
        sess.run(tg.init_op)
        if "head_scale" in knobs:
            heads = [v for v in net.trainable_variables if any(f"/{b}/" in v.name for b in ("H0", "H2", "H4"))
                     and v.name.endswith("kernel:0")]
            sess.run([v.assign(v * knobs["head_scale"]) for v in heads])
        rows, losses = [], []
        order = np.random.default_rng([seed, 11])
        started = time.time()
        for step in range(1, args.steps + 1):
            idx = order.choice(len(train[0]), batch_size, replace=False)
            batch = make(idx, train)
            paths = [BASELINE] if fixed else list(cycle_paths(seed, step - 1))
            result = tg.run_cycle(sess, batch, paths)
            losses.append(float(np.mean(result.losses)))
            if step % args.every and step != args.steps:
                continue
            codes = [BASELINE] if fixed else list(PROBE_CODES)
            epes = evaluator.evaluate(sess, codes).epe
            diag_codes = [BASELINE] if fixed else list(cycle_paths(seed + 1000, step))
            path_grads = []
            for code in diag_codes:
                saved = tg.bn_snapshot(sess)
                values = sess.run(grads, tg.feed(probe_batch, code, BN_RECAL))
                tg.bn_restore(sess, saved)
                path_grads.append(values)
            flat = [np.concatenate([g.ravel() for g in values]) for values in path_grads]
            cosines = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
                       for a, b in itertools.combinations(flat, 2)]
            stem_norm = [float(np.sqrt(sum(float(np.sum(values[shared.index(v)] ** 2)) for v in stem)))
                         for values in path_grads]
            row = {"setting": setting, "seed": seed, "step": step,
                   "train_ratio": float(np.mean(losses[-args.every:]) / zero_train),
                   "val_ratio": float(np.mean(epes) / zero_val), "val_ratio_baseline": float(epes[0] / zero_val),
                   "path_cosine": float(np.mean(cosines)) if cosines else None,
                   "stem_grad_norm": float(np.mean(stem_norm)), "seconds": round(time.time() - started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
        sess.close()
    return rows


def main(argv=None) -> int:
    """Run every setting x seed; print rows and one JSON summary line."""
    args = _parse(argv)
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return 0
    from edgeflownas.data.loader import FolderSource
    from edgeflownas.errors import EfnasError

    if not args.setting or args.data is None:
        sys.exit("probe_fairness: give --data and at least one --setting (or --table ROWS)")
    info = json.loads((args.data / "synth.json").read_text())
    h, w = info["height"], info["width"]
    data = tuple(_load_all(FolderSource(args.data / split, split, h, w)) for split in ("train", "val"))
    summary = []
    for setting in args.setting:
        for seed in args.seeds:
            try:
                rows = run_one(setting, seed, args, data)
            except EfnasError as error:  # e.g. a setting's train.lr_warmup_steps longer than --steps
                sys.exit(f"probe_fairness: {setting}: {error}")
            final = rows[-1]
            summary.append({"setting": setting, "seed": seed, "steps": final["step"],
                            "val_ratio": round(final["val_ratio"], 3), "train_ratio": round(final["train_ratio"], 3),
                            "escaped": final["val_ratio"] <= ESCAPED, "minutes": round(final["seconds"] / 60, 1)})
            print(f"# {setting} seed {seed}: val_ratio {final['val_ratio']:.3f} "
                  f"train_ratio {final['train_ratio']:.3f} ({final['seconds'] / 60:.1f} min)", flush=True)
    print(json.dumps({"probe_fairness": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
