"""A FlyingChairs-like synthetic dataset in exact FC2 layout, with exact ground-truth flow.

A scene is a textured background plus several textured foreground shapes
(polygons and ellipses), each layer moving under its own random affine motion
(translation, rotation, scale).  ``img_0`` renders the layers as they are,
``img_1`` renders them after their motion, and ``flow_01`` at an ``img_0`` pixel
is the motion of the topmost layer covering it, so the flow is exact by
construction.  Every sample is a pure function of (seed, split, index, preset).

Presets (``efnas synth --preset``):

- ``chairs`` (default): FC2-like -- fine 3-octave texture (4-48 px cells), 4-8
  shapes moving up to 6% of the width with up to 12 deg rotation and 10% zoom,
  a background under its own small affine motion.
- ``learnable``: made for small CPU-sized studies (e.g. 64x96), where a
  supernet trained on ``chairs`` collapses to the mean flow on the val split
  (studies/learnability/README.md has the measured curves).  Smooth texture
  (8-24 px cells, more contrast), 1-3 large shapes, pure translations of up
  to 4% of the width for every layer (3.8 px at 96 wide).

This dataset exists for the README demo, the tests and the benchmarks.  It is
never substituted for missing or unreadable real data.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgeflownas.data.io import write_flo, write_image_rgb
from edgeflownas.errors import DataError

SPLITS = {"train": 0, "val": 1}
MIN_SIDE = 16
MAX_SIDE = 4096  # FC2 is 384x512; a typo like 60000 would otherwise allocate gigabytes per sample


@dataclass(frozen=True)
class Motion:
    """Range of one layer's random affine: translation (fraction of the width), rotation, zoom."""

    shift: float
    degrees: float
    zoom: float


@dataclass(frozen=True)
class SynthStyle:
    """What a preset's scenes look like and how they move."""

    octaves: Tuple[Tuple[int, float], ...]  # (noise cell size in pixels, weight)
    contrast: Tuple[float, float]            # uniform range of the texture contrast (grey levels)
    shapes: Tuple[int, int]                  # foreground shape count, inclusive range
    radius: Tuple[float, float]              # shape radius range, fraction of the shorter side
    background: Motion
    foreground: Motion


PRESETS: Dict[str, SynthStyle] = {
    # Coarse blobs down to fine grain, so every layer has texture to track (the original generator).
    "chairs": SynthStyle(octaves=((48, 1.0), (12, 0.7), (4, 0.45)), contrast=(25, 55), shapes=(4, 8),
                         radius=(0.1, 0.3), background=Motion(0.02, 3, 0.03), foreground=Motion(0.06, 12, 0.1)),
    # Measured in studies/learnability: what a CPU-sized supernet learns at 64x96 (pure translations).
    "learnable": SynthStyle(octaves=((24, 1.0), (8, 0.5)), contrast=(50, 80), shapes=(1, 3),
                            radius=(0.25, 0.45), background=Motion(0.04, 0, 0.0), foreground=Motion(0.04, 0, 0.0)),
}
DEFAULT_PRESET = "chairs"


@dataclass(frozen=True)
class SynthSample:
    """img0/img1 uint8 [H,W,3] RGB, flow float32 [H,W,2], visible bool [H,W] (img0 pixel seen in img1)."""

    img0: np.ndarray
    img1: np.ndarray
    flow: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class _Layer:
    texture: np.ndarray           # uint8 [h, w, 3]
    mask: Optional[np.ndarray]    # uint8 [h, w], None for the background (covers everything)
    origin: Tuple[float, float]   # frame-0 (x, y) of texture pixel (0, 0)
    motion: np.ndarray            # 2x3 affine: frame-0 point -> frame-1 point


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, split, index)."""
    return np.random.default_rng([seed, SPLITS[split], index])


def style(preset: str) -> SynthStyle:
    """The style of a preset name; DataError naming the known presets otherwise."""
    if preset not in PRESETS:
        raise DataError(f"synth preset {preset!r} is unknown: expected one of {sorted(PRESETS)}")
    return PRESETS[preset]


def _texture(rng: np.random.Generator, height: int, width: int, look: SynthStyle) -> np.ndarray:
    """Multi-octave colour noise around a random base colour."""
    import cv2

    total = np.zeros((height, width, 3), np.float32)
    for cell, weight in look.octaves:
        coarse = rng.standard_normal((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        total += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(50, 205, size=3).astype(np.float32)
    contrast = rng.uniform(*look.contrast)
    return np.clip(base + contrast * total, 0, 255).astype(np.uint8)


def _affine(rng: np.random.Generator, center: np.ndarray, width: int, motion: Motion) -> np.ndarray:
    """Random rotation+scale about ``center`` followed by a translation, as a 2x3 matrix."""
    angle = np.deg2rad(rng.uniform(-motion.degrees, motion.degrees))
    scale = rng.uniform(1.0 - motion.zoom, 1.0 + motion.zoom)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = motion.shift * width
    translation = rng.uniform(-shift, shift, size=2)
    return np.hstack([linear, (center + translation - linear @ center)[:, None]])


def _shape_mask(rng: np.random.Generator, radius: float, margin: int) -> np.ndarray:
    """A random polygon or ellipse of about ``radius`` centred in a square uint8 mask."""
    import cv2

    side = int(np.ceil(2 * radius)) + 2 * margin
    mask = np.zeros((side, side), np.uint8)
    center = np.array([side / 2.0, side / 2.0])
    if rng.random() < 0.5:
        vertices = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        radii = radius * rng.uniform(0.5, 1.0, vertices)
        points = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    else:
        axes = (int(radius * rng.uniform(0.6, 1.0)), int(radius * rng.uniform(0.3, 1.0)))
        cv2.ellipse(mask, (int(center[0]), int(center[1])), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    return mask


def _scene(rng: np.random.Generator, height: int, width: int, look: SynthStyle) -> List[_Layer]:
    """Background first, then the preset's foreground shapes, each with its own affine motion."""
    size = min(height, width)
    image_center = np.array([width / 2.0, height / 2.0])
    background = _Layer(_texture(rng, height, width, look), None, (0.0, 0.0),
                        _affine(rng, image_center, width, look.background))
    layers = [background]
    margin = 2  # texture beyond the mask edge, so bilinear sampling at the edge never sees the border
    for _ in range(int(rng.integers(look.shapes[0], look.shapes[1] + 1))):
        radius = size * rng.uniform(*look.radius)
        mask = _shape_mask(rng, radius, margin)
        side = mask.shape[0]
        center = rng.uniform([0, 0], [width, height])
        motion = _affine(rng, center, width, look.foreground)
        layers.append(_Layer(_texture(rng, side, side, look), mask, tuple(center - side / 2.0), motion))
    return layers


def _footprint(layer: _Layer, motion: np.ndarray, height: int, width: int) -> Tuple[int, int, int, int]:
    """Frame rectangle (x0, y0, x1, y1) that can show a foreground layer: its moved texture square, clipped."""
    side_y, side_x = layer.mask.shape
    corners = np.array([[0, 0], [side_x, 0], [0, side_y], [side_x, side_y]], np.float64) + layer.origin
    moved = corners @ motion[:, :2].T + motion[:, 2]
    x0, y0 = np.maximum(np.floor(moved.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(moved.max(axis=0)).astype(int) + 2, (width, height))
    return x0, y0, x1, y1


def _render(layers: List[_Layer], height: int, width: int, moved: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Composite the layers (after their motion when ``moved``); return image and top-layer index map."""
    import cv2

    image = np.zeros((height, width, 3), np.uint8)
    top = np.zeros((height, width), np.int32)
    linear, nearest = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    for index, layer in enumerate(layers):
        motion = layer.motion if moved else np.array([[1.0, 0, 0], [0, 1.0, 0]])
        # Frame pixel p shows texture point motion^-1(p) - origin: build that map for warpAffine.
        to_texture = cv2.invertAffineTransform(motion)
        to_texture[:, 2] -= layer.origin
        if layer.mask is None:
            image[:] = cv2.warpAffine(layer.texture, to_texture, (width, height), flags=linear,
                                      borderMode=cv2.BORDER_REFLECT_101)
            continue
        # Warp only the rectangle the shape can reach: pixel (x, y) of it is frame pixel (x0 + x, y0 + y).
        x0, y0, x1, y1 = _footprint(layer, motion, height, width)
        if x1 <= x0 or y1 <= y0:
            continue
        to_texture[:, 2] += to_texture[:, :2] @ (x0, y0)
        size = (x1 - x0, y1 - y0)
        covered = cv2.warpAffine(layer.mask, to_texture, size, flags=nearest, borderValue=0) > 0
        texture = cv2.warpAffine(layer.texture, to_texture, size, flags=linear)
        image[y0:y1, x0:x1][covered] = texture[covered]
        top[y0:y1, x0:x1][covered] = index
    return image, top


def _visible(top0: np.ndarray, top1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """img0 pixels whose target lies inside img1 with all 4 bilinear neighbours on the same layer."""
    height, width = top0.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    visible = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    x0 = np.clip(np.floor(tx), 0, width - 1).astype(np.intp)
    y0 = np.clip(np.floor(ty), 0, height - 1).astype(np.intp)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        visible &= top1[np.minimum(y0 + dy, height - 1), np.minimum(x0 + dx, width - 1)] == top0
    return visible


def _check_size(height: int, width: int) -> None:
    if height < MIN_SIDE or width < MIN_SIDE:
        raise DataError(f"synthetic samples need height and width >= {MIN_SIDE}, got {height}x{width}")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise DataError(f"synthetic samples need height and width <= {MAX_SIDE}, got {height}x{width}")


def make_sample(rng: np.random.Generator, height: int = 384, width: int = 512,
                preset: str = DEFAULT_PRESET) -> SynthSample:
    """Render one FlyingChairs-like pair of ``preset`` with exact flow_01 and its visibility mask."""
    _check_size(height, width)
    layers = _scene(rng, height, width, style(preset))
    img0, top0 = _render(layers, height, width, moved=False)
    img1, top1 = _render(layers, height, width, moved=True)
    # Per pixel, the affine of the layer on top in img0: flow = motion(p) - p.
    motion = np.stack([layer.motion for layer in layers]).astype(np.float32)[top0]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flow = np.empty((height, width, 2), np.float32)
    flow[..., 0] = motion[..., 0, 0] * xs + motion[..., 0, 1] * ys + motion[..., 0, 2] - xs
    flow[..., 1] = motion[..., 1, 0] * xs + motion[..., 1, 1] * ys + motion[..., 1, 2] - ys
    return SynthSample(img0, img1, flow, _visible(top0, top1, flow))


def _write_one(task: Tuple[Path, str, int, int, int, int, str]) -> None:
    """Render sample ``index`` of ``split`` and write its FC2 triplet (runs in a worker)."""
    directory, split, seed, index, height, width, preset = task
    sample = make_sample(sample_rng(seed, split, index), height, width, preset)
    stem = directory / f"{index:07d}"
    write_image_rgb(Path(f"{stem}-img_0.png"), sample.img0)
    write_image_rgb(Path(f"{stem}-img_1.png"), sample.img1)
    write_flo(Path(f"{stem}-flow_01.flo"), sample.flow)


def write_dataset(out: Path, train: int, val: int, seed: int, height: int = 384, width: int = 512,
                  workers: int = 1, progress: bool = False, preset: str = DEFAULT_PRESET) -> Dict[str, int]:
    """Write out/train and out/val in FC2 naming plus out/synth.json; refuses non-empty split folders."""
    from tqdm import tqdm

    out = Path(out)
    counts = {"train": train, "val": val}
    if min(counts.values()) < 0 or seed < 0:
        raise DataError(f"synth needs non-negative --train, --val and --seed, got {train}, {val}, {seed}")
    _check_size(height, width)
    style(preset)
    for split in counts:
        directory = out / split
        if directory.exists() and any(directory.iterdir()):
            raise DataError(f"{directory}: already holds files; pass an empty or new --out directory")
    tasks = []
    for split, count in counts.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        tasks += [(out / split, split, seed, index, height, width, preset) for index in range(count)]
    bar = dict(total=len(tasks), unit="sample", disable=not progress, leave=False)
    if workers <= 1 or len(tasks) < 2:
        for task in tqdm(tasks, **bar):
            _write_one(task)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(tqdm(pool.map(_write_one, tasks, chunksize=4), **bar))
    info = {"generator": "efnas synth", "preset": preset, "seed": seed, "height": height, "width": width, **counts,
            "note": "synthetic FlyingChairs-like data; flow_01 is exact by construction"}
    (out / "synth.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return counts
