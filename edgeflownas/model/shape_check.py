"""Forward random arch codes through one supernet and check the three output shapes.

    python -m edgeflownas.model.shape_check --h 180 --w 240 --batch 2 [--codes 20] [--seed 0]

Builds the supernet once (model section of the shipped config, or ``--config``),
then runs one inference forward pass per arch code: ``--codes`` codes drawn from
``np.random.default_rng(seed)``, with random uint8 images.  Prints the three
prediction shapes per code; exits 0 only if every code ran and produced
[B,H/4,W/4,4], [B,H/2,W/2,4], [B,H,W,4] with finite values.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.config import resolve
from edgeflownas.errors import EfnasError
from edgeflownas.model.bn_modes import BN_INFER
from edgeflownas.nas.arch_codec import NUM_BLOCKS, NUM_OPTIONS, ArchCode, arch_name, format_code
from edgeflownas.quiet import absorb_first_run_notices

Shape = Tuple[int, ...]


def random_codes(count: int, seed: int) -> List[ArchCode]:
    """``count`` arch codes drawn uniformly from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(0, NUM_OPTIONS, NUM_BLOCKS)) for _ in range(count)]


def expected_shapes(batch: int, height: int, width: int) -> List[Shape]:
    """The prediction shapes docs/design.md §3 fixes for an input of ``height`` x ``width``."""
    return [(batch, height // 4, width // 4, 4), (batch, height // 2, width // 2, 4), (batch, height, width, 4)]


def check_shapes(height: int, width: int, batch: int, codes: Sequence[ArchCode],
                 config_path: Optional[Path] = None, seed: int = 0) -> List[Tuple[ArchCode, List[Shape], bool]]:
    """Run every code through one supernet; per code its output shapes and whether they are as expected."""
    # TensorFlow only when the check runs, so --help stays quick.
    import tensorflow as tf

    from edgeflownas.model.supernet import Supernet

    cfg = resolve(config_path).config
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8) for _ in range(2)]
    expected = expected_shapes(batch, height, width)
    results = []
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(seed)
        net = Supernet(cfg.model, cfg.loss, height, width)
        absorb_first_run_notices()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for code in codes:
                feed = {net.img0: images[0], net.img1: images[1], net.arch_code: list(code), net.bn_mode: BN_INFER}
                preds = session.run(list(net.preds), feed)
                shapes = [tuple(p.shape) for p in preds]
                ok = shapes == expected and all(np.isfinite(p).all() for p in preds)
                results.append((code, shapes, ok))
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; exit status 0 only if every code passes."""
    parser = argparse.ArgumentParser(description="Forward random arch codes through the supernet; check output shapes.")
    parser.add_argument("--h", type=int, default=180, help="input height (multiple of 4)")
    parser.add_argument("--w", type=int, default=240, help="input width (multiple of 4)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--codes", type=int, default=20, help="number of random arch codes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arch codes and images")
    parser.add_argument("--config", type=Path, default=None, help="YAML config whose model section is used")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    codes = random_codes(args.codes, args.seed)
    try:
        results = check_shapes(args.h, args.w, args.batch, codes, args.config, args.seed)
    except EfnasError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    expected = expected_shapes(args.batch, args.h, args.w)
    print(f"supernet {args.h}x{args.w} batch {args.batch}: expected {expected}")
    for code, shapes, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {arch_name(code)} [{format_code(code)}] -> {shapes}")
    failed = sum(1 for _, _, ok in results if not ok)
    print(f"{len(results) - failed}/{len(results)} arch codes passed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
