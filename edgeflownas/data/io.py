"""Read and write one FC2 sample: PNG images (RGB) and Middlebury ``.flo`` flow.

Every reader is strict: a file that is missing, empty, truncated or not what
its name says raises ``DataError`` naming the file and what was found.  There
is no fallback data.  OpenCV is imported lazily so ``efnas --help`` stays fast.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Tuple

import numpy as np

from edgeflownas.errors import DataError

FLO_MAGIC = 202021.25
FLO_HEADER_BYTES = 12
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Signature (8) + IHDR chunk length (4) + type (4) + width (4) + height (4).
PNG_HEADER_BYTES = 24
# Sanity bound on .flo dimensions: a corrupt header must not make us allocate terabytes.
MAX_FLO_SIDE = 1 << 15
# Sanity bound on PNG sides, checked from the header before decoding (FC2 is 384x512): a
# 30000x30000 image would take minutes and gigabytes to decode only to be refused anyway.
MAX_IMAGE_SIDE = 8192
# What a file that is not a PNG most likely is, by its first bytes (named in the error).
OTHER_SIGNATURES = ((b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"), (b"BM", "a BMP image"),
                    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"RIFF", "a RIFF/WebP file"),
                    (b"\x1f\x8b", "a gzip file"), (b"PK\x03\x04", "a zip file"))

Sample = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _read_bytes(path: Path, count: int = -1) -> bytes:
    """Read up to ``count`` bytes (all if -1), turning OS errors into DataError."""
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _file_size(path: Path) -> int:
    """Size of a file in bytes, or DataError if it cannot be stat'ed."""
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_flo_header(path: Path) -> Tuple[int, int]:
    """Validate a .flo file's magic, dimensions and size; return (height, width)."""
    path = Path(path)
    size = _file_size(path)
    header = _read_bytes(path, FLO_HEADER_BYTES)
    if len(header) < FLO_HEADER_BYTES:
        raise DataError(
            f"{path}: truncated .flo, file is {size} bytes but the header alone needs {FLO_HEADER_BYTES}"
        )
    magic, width, height = struct.unpack("<fii", header)
    if magic != FLO_MAGIC:
        raise DataError(
            f"{path}: bad .flo magic, expected {FLO_MAGIC} (little-endian float32 bytes "
            f"{struct.pack('<f', FLO_MAGIC).hex()}), found {magic!r} (bytes {header[:4].hex()})"
        )
    if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE):
        raise DataError(
            f"{path}: bad .flo header, width={width} height={height} (each must be in 1..{MAX_FLO_SIDE})"
        )
    expected = FLO_HEADER_BYTES + 8 * width * height
    if size != expected:
        kind = "truncated .flo" if size < expected else ".flo has trailing bytes"
        raise DataError(
            f"{path}: {kind}, header says width={width} height={height} so the file must be "
            f"12 + 8*{width}*{height} = {expected} bytes, found {size} bytes"
        )
    return height, width


def read_flo(path: Path) -> np.ndarray:
    """Read a Middlebury .flo file as float32 [H, W, 2] (u, v); strict little-endian."""
    path = Path(path)
    height, width = read_flo_header(path)
    data = _read_bytes(path)
    expected = FLO_HEADER_BYTES + 8 * width * height
    if len(data) != expected:
        raise DataError(f"{path}: file changed while reading, expected {expected} bytes, read {len(data)}")
    flow = np.frombuffer(data, dtype="<f4", offset=FLO_HEADER_BYTES)
    return flow.reshape(height, width, 2).astype(np.float32)


def flo_bytes(path: Path, flow: np.ndarray) -> bytes:
    """Float [H, W, 2] flow as the bytes of a little-endian Middlebury .flo file (``path`` names it in errors)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise DataError(f"{path}: flow to write must have shape [H, W, 2], got {flow.shape}")
    height, width = flow.shape[:2]
    return struct.pack("<fii", FLO_MAGIC, width, height) + np.ascontiguousarray(flow, dtype="<f4").tobytes()


def write_flo(path: Path, flow: np.ndarray) -> None:
    """Write float [H, W, 2] flow as a little-endian Middlebury .flo file."""
    data = flo_bytes(path, flow)
    with open(path, "wb") as handle:
        handle.write(data)


def _what_it_is(head: bytes) -> str:
    """A guess at what a file is from its first bytes (for 'not a PNG' messages)."""
    for signature, kind in OTHER_SIGNATURES:
        if head.startswith(signature):
            return kind
    return "not a known image format"


def png_size_from_header(path: Path, header: bytes) -> Tuple[int, int]:
    """(height, width) from a PNG's first 24 bytes; DataError if not a PNG or larger than MAX_IMAGE_SIDE."""
    if not header:
        raise DataError(f"{path}: zero-byte file, expected a PNG image")
    if header[:8] != PNG_SIGNATURE:
        raise DataError(f"{path}: not a PNG image, first bytes are {header[:8].hex()} ({_what_it_is(header)}; "
                        f"a PNG starts with {PNG_SIGNATURE.hex()}); convert it to PNG or replace the sample")
    if len(header) < PNG_HEADER_BYTES or header[12:16] != b"IHDR":
        raise DataError(f"{path}: truncated or corrupt PNG, IHDR chunk missing after the signature")
    width, height = struct.unpack(">II", header[16:24])
    if width == 0 or height == 0:
        raise DataError(f"{path}: corrupt PNG header, width={width} height={height}")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise DataError(f"{path}: PNG header says {height}x{width} (HxW), larger than {MAX_IMAGE_SIDE} per side "
                        f"(FC2 images are 384x512); not decoded: replace the file with an FC2-sized image")
    return height, width


def read_png_size(path: Path) -> Tuple[int, int]:
    """Read (height, width) from a PNG's IHDR chunk without decoding the image."""
    path = Path(path)
    return png_size_from_header(path, _read_bytes(path, PNG_HEADER_BYTES))


def read_image_rgb(path: Path) -> np.ndarray:
    """Decode a PNG file to uint8 [H, W, 3] in RGB order; its header is checked before decoding."""
    import cv2

    path = Path(path)
    read_png_size(path)  # before reading the body: a huge image's file can be gigabytes too
    data = _read_bytes(path)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(
            f"{path}: not a decodable image ({len(data)} bytes, first bytes {data[:8].hex()}); "
            "the file is corrupt or not an image"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def png_bytes(path: Path, image: np.ndarray) -> bytes:
    """Uint8 [H, W, 3] RGB as the bytes of a PNG file (``path`` names it in errors)."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{path}: image to write must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the image as PNG")
    return encoded.tobytes()


def write_image_rgb(path: Path, image: np.ndarray) -> None:
    """Write uint8 [H, W, 3] RGB as PNG (OpenCV expects BGR, so channels are swapped)."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{path}: image to write must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise DataError(f"{path}: OpenCV could not write the image (check the directory and extension)")


def require_finite_flow(path: Path, flow: np.ndarray) -> None:
    """DataError naming ``path`` when its flow holds NaN or inf (it would poison the loss much later)."""
    bad_values = int(flow.size - np.count_nonzero(np.isfinite(flow)))
    if bad_values:
        raise DataError(f"{path}: flow holds {bad_values} non-finite values (NaN or inf); "
                        "replace or remove this sample ('efnas data-check --deep' lists every such file)")


def read_sample(img0_path: Path, img1_path: Path, flow_path: Path) -> Sample:
    """Read one sample; check that its flow is finite and both images and the flow have the same size."""
    img0 = read_image_rgb(img0_path)
    img1 = read_image_rgb(img1_path)
    flow = read_flo(flow_path)
    require_finite_flow(flow_path, flow)
    if img1.shape != img0.shape:
        raise DataError(
            f"{img1_path}: image size {img1.shape[0]}x{img1.shape[1]} differs from "
            f"{img0_path} ({img0.shape[0]}x{img0.shape[1]})"
        )
    if flow.shape[:2] != img0.shape[:2]:
        raise DataError(
            f"{flow_path}: flow size {flow.shape[0]}x{flow.shape[1]} differs from "
            f"image {img0_path} ({img0.shape[0]}x{img0.shape[1]})"
        )
    return img0, img1, flow


def resize_sample(img0: np.ndarray, img1: np.ndarray, flow: np.ndarray, height: int, width: int) -> Sample:
    """Resize a sample to height x width (bilinear); flow u *= W_new/W_old, v *= H_new/H_old."""
    import cv2

    old_height, old_width = img0.shape[:2]
    if img1.shape[:2] != (old_height, old_width) or flow.shape[:2] != (old_height, old_width):
        raise DataError(
            f"cannot resize a sample whose parts differ in size: img0 {img0.shape}, img1 {img1.shape}, "
            f"flow {flow.shape}"
        )
    if (old_height, old_width) == (height, width):
        return img0, img1, flow
    size = (width, height)  # OpenCV takes (width, height)
    img0 = cv2.resize(img0, size, interpolation=cv2.INTER_LINEAR)
    img1 = cv2.resize(img1, size, interpolation=cv2.INTER_LINEAR)
    flow = cv2.resize(np.asarray(flow, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= width / old_width
    flow[..., 1] *= height / old_height
    return img0, img1, flow
