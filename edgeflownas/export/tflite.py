"""TFLite conversion (float, full-integer int8) of an exported SavedModel, a runner and its latency.

Conversion needs TensorFlow; the runner does not (``export.runtime`` picks LiteRT when installed).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Iterable, Tuple

import numpy as np

from edgeflownas.export.graph import INPUTS, OUTPUTS, SIGNATURE

LATENCY_RUNS = 20
LATENCY_WARMUP = 3


def convert_float(saved_model: Path) -> bytes:
    """A float32 TFLite flatbuffer of the SavedModel."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()


def convert_int8(float_input_saved_model: Path, pairs: Iterable[Tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Full-integer TFLite (int8 ops, uint8 image inputs, int8 outputs: the Edge TPU compiler's form).

    ``pairs`` (uint8 [H,W,3] image pairs from the training data) calibrate the activation ranges.
    """
    import tensorflow as tf

    pairs = list(pairs)

    def representative():
        for img0, img1 in pairs:
            yield {"img0": img0[None].astype(np.float32), "img1": img1[None].astype(np.float32)}

    converter = tf.lite.TFLiteConverter.from_saved_model(str(float_input_saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    return converter.convert()


class TFLiteRunner:
    """A TFLite model's serving signature on one uint8 image pair (quantised I/O handled from its details)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        from edgeflownas.export.runtime import load_interpreter

        self.threads = threads
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
        out = self._runner(**{name: self._feed(name, image) for name, image in zip(INPUTS, (img0, img1))})
        flow, uncertainty = (self._fetch(name, out[name])[0] for name in OUTPUTS)
        return flow, uncertainty

    def latency_ms(self, img0: np.ndarray, img1: np.ndarray, runs: int = LATENCY_RUNS,
                   warmup: int = LATENCY_WARMUP) -> float:
        """Median wall time of one inference in milliseconds over ``runs`` runs after ``warmup`` runs."""
        feeds = {name: self._feed(name, image) for name, image in zip(INPUTS, (img0, img1))}
        for _ in range(warmup):
            self._runner(**feeds)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self._runner(**feeds)
            times.append((time.perf_counter() - start) * 1000.0)
        return statistics.median(times)
