"""EPE at the data's native resolution, the number optical-flow papers report (TensorFlow-free).

The network predicts flow at the training resolution h x w (``data.input_height``
x ``input_width``), and the training-resolution EPE is in those pixels (the
selection metric).  FC2's ground truth is 384x512: each predicted flow is
upsampled bilinearly to the ground truth's size H x W (``cv2.INTER_LINEAR``, as
``data.io.resize_sample`` resizes), u is scaled by W/w and v by H/h, and the
end-point error against the full-resolution ground truth is averaged over all
native pixels.

The ground truth comes from where the validation source keeps it at full
resolution: the ``.flo`` files of an FC2 folder, or shards packed with
``--resolution native``.  Shards packed at the training size no longer hold it:
then the native EPE is reported as not available, with the reason, and nothing
is substituted.  Flows read are kept in memory up to ``CACHE_BYTES`` (one
``NativeTruth`` serves every subnet an evaluator measures); the rest are read
again for each subnet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from edgeflownas.data.io import read_flo, require_finite_flow
from edgeflownas.data.loader import FolderSource, SampleSource, ShardSource
from edgeflownas.flow_viz import endpoint_error

# 256 MB of float32 ground truth: ~170 FC2 flows at 384x512.
CACHE_BYTES = 256 << 20
METHOD = "prediction upsampled bilinearly and rescaled, ground truth read at full resolution"


def upsample_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flow [h,w,2] resized bilinearly to [height,width,2], u scaled by width/w and v by height/h."""
    import cv2

    old_height, old_width = flow.shape[:2]
    if (old_height, old_width) == (height, width):
        return np.asarray(flow, np.float32)
    resized = cv2.resize(np.asarray(flow, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= width / old_width
    resized[..., 1] *= height / old_height
    return resized


def native_error_sum(predicted: np.ndarray, truths: Sequence[np.ndarray]) -> Tuple[float, int]:
    """(sum of native-resolution end-point errors, native pixels) of predictions [B,h,w,2] against ``truths``."""
    total, pixels = 0.0, 0
    for flow, truth in zip(predicted, truths):
        # float32 per pixel (faster than float64 at 384x512), summed in float64.
        error = endpoint_error(upsample_flow(flow, *truth.shape[:2]), truth, np.float32)
        total += float(error.sum(dtype=np.float64))
        pixels += error.size
    return total, pixels


def size_text(sizes: Set[Tuple[int, int]]) -> str:
    """'384x512' (or '384x512, 436x1024' if the samples differ)."""
    return ", ".join(f"{h}x{w}" for h, w in sorted(sizes))


class NativeTruth:
    """Full-resolution ground-truth flow of a validation source, by sample id (``reason`` says why not)."""

    def __init__(self, source: SampleSource) -> None:
        self.reason: Optional[str] = None
        self.sizes: Set[Tuple[int, int]] = set()
        self._cache: Dict[str, np.ndarray] = {}
        self._cached_bytes = 0
        self._shards: Optional[ShardSource] = None
        self._index = {sample_id: index for index, sample_id in enumerate(source.sample_ids)}
        self._source = source
        if isinstance(source, ShardSource):
            from edgeflownas.data import shards

            mode = shards.read_manifest(source.directory)["resolution"]["mode"]
            if mode != "native":
                height, width = source.stored_size
                self.reason = (f"{source.directory} holds the validation flow at {height}x{width} (packed at the "
                               "training size), not the native ground truth: evaluate from the FC2 folders "
                               "(--data_source folders --train_dir ... --val_dir ...) or pack with "
                               "--resolution native")
            else:
                # A second view of the same shards at their stored (native) size; every read still checks hashes.
                self._shards = ShardSource(source.directory, source.split, *source.stored_size, verify_sha256=False)
        elif not isinstance(source, FolderSource):
            self.reason = f"a {type(source).__name__} keeps no native-resolution ground truth"

    @property
    def available(self) -> bool:
        """True when the native ground truth can be read."""
        return self.reason is None

    @property
    def where(self) -> Path:
        """The folder or shard directory the ground truth is read from."""
        return Path(self._source.directory)

    def flows(self, sample_ids: Sequence[str]) -> List[np.ndarray]:
        """Float32 [H,W,2] native ground truth of each sample, in order."""
        if self.reason is not None:
            raise RuntimeError(f"native ground truth is not available: {self.reason}")
        return [self._flow(sample_id) for sample_id in sample_ids]

    def _flow(self, sample_id: str) -> np.ndarray:
        cached = self._cache.get(sample_id)
        if cached is not None:
            return cached
        index = self._index[sample_id]
        if self._shards is not None:
            flow = self._shards.get(index)[2]
        else:
            path = self._source.samples[index].flow
            flow = read_flo(path)
            require_finite_flow(path, flow)
        self.sizes.add(flow.shape[:2])
        if self._cached_bytes + flow.nbytes <= CACHE_BYTES:
            self._cache[sample_id] = flow
            self._cached_bytes += flow.nbytes
        return flow

    def close(self) -> None:
        """Close the native view of the shards and drop the cache."""
        if self._shards is not None:
            self._shards.close()
            self._shards = None
        self._cache.clear()
        self._cached_bytes = 0
