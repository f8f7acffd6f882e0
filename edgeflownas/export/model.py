"""An exported model at any input size: resize the pair to the model's size, resize the flow back and rescale."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from edgeflownas.errors import ConfigError, DataError
from edgeflownas.export.manifest import FORMAT_FILES, read_manifest, verified_file

# The format ``efnas infer`` uses when none is named: the exact one first (TFLite first without TensorFlow).
PREFERENCE = ("saved_model", "tflite", "tflite_int8")
Runner = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def open_runner(export_dir: Path, fmt: str, threads: int = 1) -> Runner:
    """The runner of one format of an export directory."""
    path = Path(export_dir) / FORMAT_FILES[fmt]
    if not path.exists():
        raise ConfigError(f"{path} does not exist: the export has no {fmt} (export it with --format {fmt})")
    if fmt == "saved_model":
        from edgeflownas.export.graph import SavedModelRunner

        return SavedModelRunner(path)
    from edgeflownas.export.tflite import TFLiteRunner

    return TFLiteRunner(path, threads)


def default_preference() -> tuple:
    """``PREFERENCE``, with the SavedModel last where TensorFlow is not installed (an ``edge`` install)."""
    from edgeflownas.export.runtime import tensorflow_installed

    return PREFERENCE if tensorflow_installed() else PREFERENCE[1:] + PREFERENCE[:1]


class ExportedModel:
    """One format of an export directory, predicting flow for an image pair of any size."""

    def __init__(self, export_dir: Path, fmt: Optional[str] = None, threads: int = 1) -> None:
        self.manifest = read_manifest(export_dir)
        present = [name for name in default_preference() if name in self.manifest.get("formats", {})]
        if fmt is None and not present:
            raise ConfigError(f"{export_dir}: the export manifest lists no format")
        self.format = fmt or present[0]
        self.height, self.width = self.manifest["input_hw"]
        verified_file(export_dir, self.manifest, self.format)
        self.run = open_runner(export_dir, self.format, threads)

    def flow(self, img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
        """Flow [h,w,2] in pixels of the given uint8 RGB pair [h,w,3] (any size)."""
        return flow_at_input_size(self.run, img0, img1, self.height, self.width)


def flow_at_input_size(run: Runner, img0: np.ndarray, img1: np.ndarray, height: int, width: int) -> np.ndarray:
    """Run at the model's ``height`` x ``width``; flow resized back and scaled to the input's pixels."""
    import cv2

    if img0.shape != img1.shape:
        raise DataError(f"image pair of different sizes: {img0.shape[1]}x{img0.shape[0]} and "
                        f"{img1.shape[1]}x{img1.shape[0]} (width x height); both images must have the same size")
    in_h, in_w = img0.shape[:2]
    if (in_h, in_w) == (height, width):
        return run(img0, img1)[0]
    resized = [cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for image in (img0, img1)]
    flow = cv2.resize(run(*resized)[0], (in_w, in_h), interpolation=cv2.INTER_LINEAR)
    return flow * np.array([in_w / width, in_h / height], np.float32)
