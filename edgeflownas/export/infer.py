"""``efnas infer``: flow of an image pair (or a folder of FC2-named pairs) with an exported model.

Outputs are a Middlebury ``.flo`` (``data/io.flo_bytes``; OpenCV's
``readOpticalFlow`` reads it too) and optionally a colour-wheel PNG with the
wheel as legend and the flow length that is fully saturated written on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from edgeflownas.atomic_io import write_bytes_atomic
from edgeflownas.data.io import flo_bytes, png_bytes, read_image_rgb
from edgeflownas.errors import DataError
from edgeflownas.export.model import ExportedModel
from edgeflownas.flow_viz import flow_magnitude_max, flow_to_rgb, wheel_legend

FC2_IMG0 = re.compile(r"^(\d{7})-img_0\.png$")
LEGEND_SIZE = 81


def flow_picture(flow: np.ndarray) -> np.ndarray:
    """Colour-wheel picture of ``flow`` with the wheel legend and its saturation length (px) on the right."""
    import cv2

    height, width = flow.shape[:2]
    max_flow = max(flow_magnitude_max(flow), 1e-6)
    panel_w = LEGEND_SIZE + 16
    picture = np.full((max(height, LEGEND_SIZE + 30), width + panel_w, 3), 255, np.uint8)
    picture[:height, :width] = flow_to_rgb(flow, max_flow)
    picture[4:4 + LEGEND_SIZE, width + 8:width + 8 + LEGEND_SIZE] = wheel_legend(LEGEND_SIZE)
    cv2.putText(picture, f"r={max_flow:.1f}px", (width + 4, LEGEND_SIZE + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                (0, 0, 0), 1, cv2.LINE_AA)
    return picture


def read_pair(img0_path: Path, img1_path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Both images (uint8 RGB); DataError naming them if their sizes differ."""
    img0, img1 = read_image_rgb(img0_path), read_image_rgb(img1_path)
    if img0.shape != img1.shape:
        raise DataError(f"{img0_path} is {img0.shape[1]}x{img0.shape[0]} but {img1_path} is "
                        f"{img1.shape[1]}x{img1.shape[0]}: the two images of a pair must have the same size")
    return img0, img1


def infer_pair(model: ExportedModel, img0_path: Path, img1_path: Path, flo_path: Path,
               png_path: Optional[Path] = None) -> np.ndarray:
    """Predict the flow of one pair, write it as ``.flo`` (and the PNG), each atomically; return it."""
    flow = model.flow(*read_pair(img0_path, img1_path))
    flo = flo_bytes(flo_path, flow)
    png = png_bytes(png_path, flow_picture(flow)) if png_path is not None else None
    write_bytes_atomic(flo_path, flo)
    if png is not None:
        write_bytes_atomic(png_path, png)
    return flow


def fc2_pairs(folder: Path) -> List[Tuple[str, Path, Path]]:
    """(sample id, img_0, img_1) of every ``NNNNNNN-img_0.png`` in ``folder``; DataError if any img_1 is missing."""
    folder = Path(folder)
    pairs, missing = [], []
    for path in sorted(folder.iterdir()):
        match = FC2_IMG0.match(path.name)
        if match:
            partner = folder / f"{match.group(1)}-img_1.png"
            (pairs if partner.is_file() else missing).append((match.group(1), path, partner))
    if missing:
        raise DataError(f"{folder}: {len(missing)} pair(s) lack their -img_1.png (first: {missing[0][2].name}); "
                        "every NNNNNNN-img_0.png needs its NNNNNNN-img_1.png")
    if not pairs:
        raise DataError(f"{folder} holds no FC2-named pair (NNNNNNN-img_0.png and NNNNNNN-img_1.png)")
    return pairs


def infer_folder(model: ExportedModel, folder: Path, out_dir: Path, png: bool,
                 progress: Callable = lambda items, **kwargs: items) -> int:
    """Flow of every FC2 pair of ``folder`` into ``out_dir`` as ``NNNNNNN-flow_01.flo`` (and ``.png``)."""
    pairs = fc2_pairs(folder)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for sample, img0, img1 in progress(pairs, desc="infer", unit="pair"):
        stem = Path(out_dir) / f"{sample}-flow_01"
        infer_pair(model, img0, img1, stem.with_suffix(".flo"), stem.with_suffix(".png") if png else None)
    return len(pairs)
