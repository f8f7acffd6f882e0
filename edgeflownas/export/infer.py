"""``efnas infer``: flow of an image pair, or of every pair of a folder, with an exported model.

A folder holds FC2-named pairs (``NNNNNNN-img_0.png`` / ``-img_1.png``: one
flow per pair, ``NNNNNNN-flow_01.flo``) or plain frames (any other PNG names,
in natural order: one flow per consecutive pair, named after the first frame).
Outputs are a Middlebury ``.flo`` (``data/io.flo_bytes``; OpenCV's
``readOpticalFlow`` reads it too) and optionally a colour-wheel PNG with the
wheel as legend and the flow length that is fully saturated written on it.
When a ground-truth ``.flo`` sits beside a pair's first image (FC2:
``NNNNNNN-flow_01.flo``; frames: ``<first frame's stem>.flo``), the pair is
scored: EPE and the share of pixels whose end-point error exceeds 1, 3, 5 px,
in the input's pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.atomic_io import write_bytes_atomic
from edgeflownas.data.io import flo_bytes, png_bytes, read_flo, read_image_rgb
from edgeflownas.errors import DataError
from edgeflownas.export.model import ExportedModel
from edgeflownas.flow_viz import endpoint_error, flow_magnitude_max, flow_to_rgb, wheel_legend

FC2_IMG0 = re.compile(r"^(\d{7})-img_0\.png$")
FC2_NAME = re.compile(r"^\d{7}-(img_[01]\.png|flow_\d\d\.flo)$")
LEGEND_SIZE = 81
OUTLIER_PX = (1, 3, 5)


@dataclass(frozen=True)
class PairScore:
    """End-point error of one predicted flow against its ground truth (input pixels)."""

    epe_sum: float
    pixels: int
    outliers: Tuple[int, ...]  # pixels whose error exceeds each of OUTLIER_PX

    @property
    def epe(self) -> float:
        """Mean end-point error (px)."""
        return self.epe_sum / self.pixels


def score(flow: np.ndarray, truth: np.ndarray, truth_path: Path) -> PairScore:
    """``flow`` against ``truth``; DataError naming the ground-truth file if their sizes differ."""
    if truth.shape != flow.shape:
        raise DataError(f"{truth_path} holds {truth.shape[0]}x{truth.shape[1]} (HxW) flow but the pair's images are "
                        f"{flow.shape[0]}x{flow.shape[1]}: a ground-truth .flo must match its images' size")
    error = endpoint_error(flow, truth)
    return PairScore(float(error.sum()), int(error.size), tuple(int((error > px).sum()) for px in OUTLIER_PX))


def total(scores: Sequence[PairScore]) -> Optional[PairScore]:
    """Every pixel of ``scores`` together (the EPE of a folder weighs pairs by their pixels), or None."""
    if not scores:
        return None
    return PairScore(sum(s.epe_sum for s in scores), sum(s.pixels for s in scores),
                     tuple(sum(s.outliers[i] for s in scores) for i in range(len(OUTLIER_PX))))


def score_text(score_: PairScore) -> str:
    """``EPE 1.234 px, >1px 12.3%, >3px 4.5%, >5px 1.2%``."""
    rates = ", ".join(f">{px}px {100.0 * n / score_.pixels:.1f}%" for px, n in zip(OUTLIER_PX, score_.outliers))
    return f"EPE {score_.epe:.3f} px, {rates}"


def ground_truth_path(img0_path: Path) -> Path:
    """Where a pair's ground truth would sit: ``NNNNNNN-flow_01.flo`` beside an FC2 ``-img_0.png``, else the
    first image's stem with ``.flo``."""
    img0_path = Path(img0_path)
    match = FC2_IMG0.match(img0_path.name)
    return img0_path.with_name(f"{match.group(1)}-flow_01.flo" if match else f"{img0_path.stem}.flo")


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
        raise DataError(f"{img0_path} is {img0.shape[0]}x{img0.shape[1]} (HxW) but {img1_path} is "
                        f"{img1.shape[0]}x{img1.shape[1]}: the two images of a pair must have the same size")
    return img0, img1


def infer_pair(model: ExportedModel, img0_path: Path, img1_path: Path, flo_path: Path,
               png_path: Optional[Path] = None) -> Tuple[np.ndarray, Optional[PairScore]]:
    """Predict the flow of one pair, write it as ``.flo`` (and the PNG), each atomically; return it and its
    score against a ground truth beside ``img0_path`` (None without one)."""
    flow = model.flow(*read_pair(img0_path, img1_path))
    flo = flo_bytes(flo_path, flow)
    png = png_bytes(png_path, flow_picture(flow)) if png_path is not None else None
    write_bytes_atomic(flo_path, flo)
    if png is not None:
        write_bytes_atomic(png_path, png)
    truth = ground_truth_path(img0_path)
    return flow, (score(flow, read_flo(truth), truth) if truth.is_file() else None)


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
    return pairs


def natural_key(name: str) -> List:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def frame_pairs(folder: Path) -> List[Tuple[str, Path, Path]]:
    """(first frame's stem, frame i, frame i+1) of the plain PNG frames of ``folder`` in natural order."""
    frames = sorted((path for path in Path(folder).iterdir() if path.suffix.lower() == ".png" and path.is_file()
                     and not FC2_NAME.match(path.name)), key=lambda path: natural_key(path.name))
    return [(first.stem, first, second) for first, second in zip(frames, frames[1:])]


def folder_pairs(folder: Path) -> List[Tuple[str, Path, Path]]:
    """The pairs of ``folder``: its FC2-named pairs if it has any, else its consecutive frames; DataError if
    neither (fewer than two PNG frames)."""
    pairs = fc2_pairs(folder)
    if pairs:
        return pairs
    pairs = frame_pairs(folder)
    if not pairs:
        raise DataError(f"{folder} holds no pair: give FC2-named pairs (NNNNNNN-img_0.png, NNNNNNN-img_1.png) or at "
                        "least two PNG frames (consecutive frames make the pairs, in natural name order)")
    return pairs


@dataclass(frozen=True)
class FolderResult:
    """What ``infer_folder`` wrote: how many flows, their naming, and the scores of pairs with ground truth."""

    pairs: int
    kind: str  # 'FC2 pairs' or 'consecutive frames'
    scores: List[PairScore]


def infer_folder(model: ExportedModel, folder: Path, out_dir: Path, png: bool,
                 progress: Callable = lambda items, **kwargs: items) -> FolderResult:
    """Flow of every pair of ``folder`` into ``out_dir``: ``NNNNNNN-flow_01.flo`` for FC2 pairs,
    ``<first frame's stem>.flo`` for consecutive frames (and ``.png``)."""
    fc2 = bool(fc2_pairs(folder))
    pairs = folder_pairs(folder)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    scores = []
    for name, img0, img1 in progress(pairs, desc="infer", unit="pair"):
        stem = Path(out_dir) / (f"{name}-flow_01" if fc2 else name)
        _, found = infer_pair(model, img0, img1, stem.with_suffix(".flo"), stem.with_suffix(".png") if png else None)
        if found is not None:
            scores.append(found)
    return FolderResult(len(pairs), "FC2 pairs" if fc2 else "consecutive frames", scores)
