"""What int8 conversion does to one subnet of a run: tensors, kernel bytes, file size and EPE, float vs int8.

Exports ``--arch`` of ``--run`` (a fixed-arch run: its own arch) as TFLite
float and full-integer int8 into a new folder under ``--out_root`` with
``efnas export``'s own code (int8 calibrated on the run's training pairs and
checked full-integer), then reads both files back with ``tf.lite.Interpreter``
and prints per file: input/output types, tensors by type, kernel types and
bytes, file size, val EPE; and the int8 EPE change the manifest records.  No
timing target: the figures describe the conversion.  The last line is one
JSON object of the measured figures.

    python benchmarks/bench_export_int8.py --run RUN [--arch baseline] [--out_root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--arch", default=None, help="subnet of a supernet run (omit for a fixed-arch run)")
    parser.add_argument("--out_root", type=Path, default=None, help="folder to export into (default: beside --run)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from edgeflownas.export.api import export_run
    from edgeflownas.export.tflite import tensor_summary

    root = args.out_root or args.run.parent
    out = Path(tempfile.mkdtemp(prefix=".bench_export_int8_", dir=root)) / "export"
    start = time.perf_counter()
    doc = export_run(args.run, args.arch, out, ("tflite", "tflite_int8"))
    seconds = time.perf_counter() - start
    figures = {"run": str(args.run), "kind": doc["source_kind"], "arch": doc["arch_name"],
               "input_hw": doc["input_hw"], "export_seconds": round(seconds, 1), "load_1min": os.getloadavg()[0]}
    for fmt in ("tflite", "tflite_int8"):
        entry = doc["formats"][fmt]
        summary = tensor_summary((out / entry["file"]).read_bytes())
        figures[fmt] = {"size_bytes": entry["size_bytes"], "epe": round(entry["epe"], 6), **summary}
        print(f"{fmt:<12} {entry['size_bytes']:>10,d} B  inputs {','.join(summary['input_types'])}  outputs "
              f"{','.join(summary['output_types'])}  tensors {summary['tensors']}  kernels {summary['kernels']} "
              f"({summary['kernel_bytes']} B)  float ops {sum(summary['float_ops'].values())}  "
              f"val EPE {entry['epe']:.4f}")
    int8 = doc["formats"]["tflite_int8"]
    figures["int8_epe_increase"] = round(doc["int8_epe_increase"], 6)
    figures["calibration"] = int8["calibration"]
    print(f"int8 EPE change over float ({int8['float_epe_of']}): {doc['int8_epe_increase']:+.4f} px; calibrated on "
          f"{int8['calibration']['pairs']} of {int8['calibration']['of']} training pairs; export took {seconds:.1f} s "
          f"(load average {figures['load_1min']:.1f}); files in {out}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
