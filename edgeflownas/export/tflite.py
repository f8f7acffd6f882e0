"""TFLite conversion (float, full-integer int8) of an exported SavedModel, its check, a runner and its latency.

Conversion and the check need TensorFlow; the runner does not (``export.runtime`` picks LiteRT when installed).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from edgeflownas.errors import ExportError
from edgeflownas.export.graph import INPUTS, OUTPUTS, SIGNATURE
from edgeflownas.quiet import quiet

LATENCY_RUNS = 20
LATENCY_WARMUP = 3
# The full-integer file's input and output types: the converter is asked for them and the file is checked for them.
INT8_INPUT_TYPE = "uint8"
INT8_OUTPUT_TYPE = "int8"
# Ops whose input 1 is the weight kernel.
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")
FLOAT_TYPES = ("float16", "float32", "float64", "bfloat16")


def convert_float(saved_model: Path) -> bytes:
    """A float32 TFLite flatbuffer of the SavedModel."""
    import tensorflow as tf

    with quiet():
        return tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()


def convert_int8(float_input_saved_model: Path, pairs: Iterable[Tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Full-integer TFLite (int8 ops, uint8 image inputs, int8 outputs: the Edge TPU compiler's form).

    ``pairs`` (uint8 [H,W,3] image pairs from the training data) calibrate the activation ranges.
    """
    import tensorflow as tf

    pairs = list(pairs)
    if not pairs:
        raise ExportError("no image pair to calibrate the int8 model with: the representative set is empty")

    def representative():
        for img0, img1 in pairs:
            yield {"img0": img0[None].astype(np.float32), "img1": img1[None].astype(np.float32)}

    converter = tf.lite.TFLiteConverter.from_saved_model(str(float_input_saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.as_dtype(INT8_INPUT_TYPE)
    converter.inference_output_type = tf.as_dtype(INT8_OUTPUT_TYPE)
    with quiet():
        return converter.convert()


def tensor_summary(model: bytes) -> Dict[str, Any]:
    """What ``tf.lite.Interpreter`` reads in a TFLite flatbuffer: I/O types, tensors and kernels by type, float ops.

    ``kernel_bytes`` are the weight kernels' bytes (input 1 of every convolution / fully connected op).
    """
    import tensorflow as tf

    with quiet():  # the interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=model)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}

    def type_of(index: int) -> str:
        return np.dtype(tensors[index]["dtype"]).name

    kernels: Counter = Counter()
    kernel_bytes: Counter = Counter()
    float_ops: Counter = Counter()
    for op in interpreter._get_ops_details():  # the interpreter's only listing of each op's tensors
        used = [index for index in list(op["inputs"]) + list(op["outputs"]) if index >= 0]
        if any(type_of(index) in FLOAT_TYPES for index in used):
            float_ops[op["op_name"]] += 1
        if op["op_name"] in KERNEL_OPS:
            kernel = tensors[op["inputs"][1]]
            kernels[type_of(kernel["index"])] += 1
            kernel_bytes[type_of(kernel["index"])] += int(np.prod(kernel["shape"])) * np.dtype(kernel["dtype"]).itemsize
    return {
        "input_types": [np.dtype(d["dtype"]).name for d in interpreter.get_input_details()],
        "output_types": [np.dtype(d["dtype"]).name for d in interpreter.get_output_details()],
        "tensors": dict(sorted(Counter(type_of(index) for index in tensors).items())),
        "kernels": dict(sorted(kernels.items())), "kernel_bytes": dict(sorted(kernel_bytes.items())),
        "float_ops": dict(sorted(float_ops.items())),
    }


def full_integer_problems(summary: Dict[str, Any]) -> List[str]:
    """Why a ``tensor_summary`` is not the full-integer model ``convert_int8`` asks for (empty if it is)."""
    problems = []
    for side, expected in (("input", INT8_INPUT_TYPE), ("output", INT8_OUTPUT_TYPE)):
        found = summary[f"{side}_types"]
        if not found or set(found) != {expected}:
            problems.append(f"{side} types {', '.join(found) or 'none'} instead of {expected}")
    if set(summary["kernels"]) != {"int8"}:
        problems.append(f"kernels {_counts(summary['kernels']) or 'none'} instead of int8 only")
    floats = {name: count for name, count in summary["tensors"].items() if name in FLOAT_TYPES}
    if floats or summary["float_ops"]:
        problems.append(f"float tensors {_counts(floats) or 'none'} in ops {_counts(summary['float_ops']) or 'none'}")
    return problems


def check_full_integer(model: bytes, name: str) -> Dict[str, Any]:
    """The ``tensor_summary`` of an int8 file; ExportError naming ``name`` if it is not full-integer."""
    summary = tensor_summary(model)
    problems = full_integer_problems(summary)
    if problems:
        raise ExportError(f"{name}: the TFLite converter did not make a full-integer model ({'; '.join(problems)}); "
                          "it was not written")
    return summary


def _counts(counts: Dict[str, int]) -> str:
    """'int8 19, float32 2' of a {type: count} mapping."""
    return ", ".join(f"{name} {count}" for name, count in counts.items())


class TFLiteRunner:
    """A TFLite model's serving signature on one uint8 image pair (quantised I/O handled from its details)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        from edgeflownas.export.runtime import load_interpreter

        self.threads = threads
        self._invoked = False
        with quiet():  # the interpreter's notices (TensorFlow's deprecation line; the XNNPACK delegate's)
            self._interpreter = load_interpreter(path, threads)
            self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        self._inputs = self._runner.get_input_details()
        self._outputs = self._runner.get_output_details()

    def _feed(self, name: str, image: np.ndarray) -> np.ndarray:
        detail = self._inputs[name]
        scale, zero = detail["quantization"]
        if scale:
            image = np.round(image.astype(np.float32) / scale + zero)
        return image[None].astype(detail["dtype"])

    def _fetch(self, name: str, value: np.ndarray) -> np.ndarray:
        scale, zero = self._outputs[name]["quantization"]
        value = value.astype(np.float32)
        return (value - zero) * scale if scale else value

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(flow [H,W,2], uncertainty [H,W,2]) of one uint8 [H,W,3] pair at the model's size."""
        feeds = {name: self._feed(name, image) for name, image in zip(INPUTS, (img0, img1))}
        with quiet() if not self._invoked else contextlib.nullcontext():  # the first run creates the delegate
            out = self._runner(**feeds)
        self._invoked = True
        flow, uncertainty = (self._fetch(name, out[name])[0] for name in OUTPUTS)
        return flow, uncertainty

    def latency_ms(self, img0: np.ndarray, img1: np.ndarray, runs: int = LATENCY_RUNS,
                   warmup: int = LATENCY_WARMUP) -> float:
        """Median wall time of one inference in milliseconds over ``runs`` runs after ``warmup`` runs."""
        feeds = {name: self._feed(name, image) for name, image in zip(INPUTS, (img0, img1))}
        with quiet() if not self._invoked else contextlib.nullcontext():
            for _ in range(warmup):
                self._runner(**feeds)
        self._invoked = True
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self._runner(**feeds)
            times.append((time.perf_counter() - start) * 1000.0)
        return statistics.median(times)
