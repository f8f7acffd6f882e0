"""Benchmark of ``efnas infer`` cold start on the ``edge`` install (LiteRT, no TensorFlow): one pair, one process.

1. Installs efnas with only the ``edge`` extra into a fresh venv (or uses --venv), from a copy of this tree.
2. Writes a float TFLite model of EdgeFlowNet's baseline subnet at the default config's input size and
   width (random weights: start-up and run time do not depend on them) as an export directory, and one
   image pair of that size.
3. Times whole ``efnas infer --model DIR IMG0 IMG1 --out F.flo`` processes (wall time from spawn to exit):
   the first one after the install, then --repeats more; the figure is their median.  For comparison the
   same command of this environment (TensorFlow installed) with --format tflite, and a bare Python start.

Target: <= 2 s per cold ``efnas infer`` of one pair on the edge install.  ``uptime`` is printed with the
figures (the machine may be shared).  The last line is one JSON object.

    .venv/bin/python benchmarks/bench_edge_infer.py [--venv EDGE_VENV] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = ("pyproject.toml", "setup.py", "README.md", "edgeflownas", "launcher", "schemas", "configs",
          "tools/data_check")
TARGET_S = 2.0


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=None, help="an existing venv with efnas[edge] installed")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def _edge_venv(work: Path) -> Path:
    source = work / "source"
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{source}[edge]"],
                   check=True)
    return work / "venv"


def _model_and_pair(work: Path):
    import numpy as np

    from edgeflownas.config import resolve
    from edgeflownas.data.io import write_image_rgb
    from edgeflownas.export.manifest import sha256_of, write_manifest
    from edgeflownas.latency.probes import random_values, write_tflite
    from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE

    config = resolve(None).config
    height, width = config.data.input_height, config.data.input_width
    model = work / "model"
    model.mkdir()
    write_tflite(model / "model_float.tflite", "float", config.model, EDGEFLOWNET_BASELINE,
                 random_values(config.model, height, width), height, width, work)
    write_manifest(model, {"arch_code": list(EDGEFLOWNET_BASELINE), "input_hw": [height, width],
                           "formats": {"tflite": {"file": "model_float.tflite",
                                                  "sha256": sha256_of(model / "model_float.tflite")}}})
    rng = np.random.default_rng(0)
    pair = [work / "img_0.png", work / "img_1.png"]
    for path in pair:
        write_image_rgb(path, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return model, pair, (height, width)


def _wall(command, env) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main(argv=None) -> dict:
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="bench_edge_infer_") as scratch:
        work = Path(scratch)
        venv = args.venv or _edge_venv(work)
        model, pair, size = _model_and_pair(work)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        edge = [str(venv / "bin" / "efnas"), "infer", "--model", str(model), *map(str, pair)]
        print(f"edge venv {venv}, model {size[0]}x{size[1]} float TFLite; {_uptime()}", flush=True)
        first = _wall(edge + ["--out", str(work / "first.flo")], env)
        edge_runs = [_wall(edge + ["--out", str(work / f"e{i}.flo")], env) for i in range(args.repeats)]
        full = [str(Path(sys.executable).parent / "efnas"), "infer", "--model", str(model), "--format", "tflite",
                *map(str, pair)]
        full_runs = [_wall(full + ["--out", str(work / f"f{i}.flo")], dict(os.environ)) for i in range(args.repeats)]
        bare = [_wall([str(venv / "bin" / "python"), "-c", "pass"], env) for _ in range(args.repeats)]
        print(f"edge install: first {first:.2f} s, then {', '.join(f'{t:.2f}' for t in edge_runs)} s", flush=True)
        print(f"this environment (TensorFlow installed), --format tflite: {', '.join(f'{t:.2f}' for t in full_runs)} s")
        print(f"bare python start: {', '.join(f'{t:.3f}' for t in bare)} s; {_uptime()}", flush=True)
    summary = {"input_hw": list(size), "cold_start_first_s": round(first, 3),
               "cold_start_median_s": round(statistics.median(edge_runs), 3),
               "full_install_median_s": round(statistics.median(full_runs), 3),
               "python_start_median_s": round(statistics.median(bare), 3),
               "load_average": [round(v, 2) for v in os.getloadavg()], "targets": {"cold_start_max_s": TARGET_S}}
    print(json.dumps(summary))
    return summary


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
