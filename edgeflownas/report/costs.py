"""Parameters and MACs of subnets as trained in a run (the model's ``subnet_cost`` at the run's input size).

MACs are the multiply-accumulates of all convolutions per image pair (the
``macs`` of ``edgeflownas.model.cost``, the same figure ``efnas arch describe``
prints).  Each code builds one fixed-arch graph (~1-2 s on CPU), so results
are cached per code, and nothing is read before the first call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Mapping

from edgeflownas.config import resolve_mapping
from edgeflownas.config_types import Config
from edgeflownas.errors import CheckpointError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.report.run_data import read_json
from edgeflownas.train import run_dir as rd


def run_cost_function(run_dir: Path) -> Callable[[ArchCode], Mapping[str, int]]:
    """Cached code -> {"params", "macs"} (``model.cost.subnet_cost``) at the run's recorded model and input size."""
    manifest_path = Path(run_dir) / rd.MANIFEST
    cache: Dict[ArchCode, Dict[str, int]] = {}
    configs = []

    def cost(code: ArchCode) -> Mapping[str, int]:
        from edgeflownas.model.cost import subnet_cost as model_cost  # TensorFlow, only once a cost is asked for

        if not configs:
            configs.append(run_config(manifest_path))
        config = configs[0]
        key = tuple(code)
        if key not in cache:
            counted = model_cost(key, config.data.input_height, config.data.input_width, config.model)
            cache[key] = {"params": counted.params, "macs": counted.macs}
        return cache[key]

    return cost


def run_config(manifest_path: Path) -> Config:
    """The resolved config recorded in a run's train_manifest.json."""
    manifest = read_json(manifest_path)
    if "resolved_config" not in manifest:
        raise CheckpointError(f"{manifest_path} has no 'resolved_config': cannot tell the model and input size")
    return resolve_mapping(manifest["resolved_config"], origin=f"resolved_config in {manifest_path}").config
