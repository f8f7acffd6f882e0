"""The config of ``efnas retrain``: a supernet run's recorded config, turned into one fixed subnet's own training.

TensorFlow-free.  The retrain trains in ``train.supernet_mode: fixed_arch``
with ``model.fixed_arch_code`` set to the chosen code; ``checkpoint.init_from``
names the supernet checkpoint whose weights it starts from (``--init
supernet``) or is null (``--init scratch``).  Everything else - data, input
size, loss, schedule, evaluation batches, seed - is the supernet run's, unless
the command line or ``--config`` says otherwise, so a set of retrains of one
supernet differs only in the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from edgeflownas.config import Overrides, ResolvedConfig, load_yaml, resolve_mapping
from edgeflownas.errors import CheckpointError, ConfigError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.train import checkpoint, run_dir as rd

INITS = ("scratch", "supernet")
# Keys the retrain sets itself; the command line may not set them too.
FORCED_KEYS = ("train.supernet_mode", "model.fixed_arch_code", "checkpoint.init_from",
               "checkpoint.resume_experiment_name")


def supernet_checkpoint(run_dir: Path, which: str) -> Path:
    """``<run>/supernet_best.ckpt`` or ``supernet_last.ckpt`` of a supernet run; CheckpointError if absent."""
    ckpt = rd.require_run(run_dir) / (rd.BEST if which == "best" else rd.LAST)
    if not checkpoint.has_checkpoint(ckpt):
        raise CheckpointError(f"{ckpt} is not a complete checkpoint: --run must be a supernet run that has finished "
                              "at least one epoch")
    return ckpt


def retrain_config(run_dir: Path, code: ArchCode, init: str, which: str, config_path: Optional[Path],
                   overrides: Optional[Mapping[str, Any]] = None) -> ResolvedConfig:
    """The resolved config that trains ``code`` on its own, from supernet run ``run_dir``."""
    if init not in INITS:
        raise ConfigError(f"--init {init!r}: expected one of {', '.join(INITS)}")
    overrides = overrides if isinstance(overrides, Overrides) else Overrides(dict(overrides or {}), {})
    clash = [key for key in FORCED_KEYS if key in overrides]
    if clash:
        raise ConfigError(f"{', '.join(clash)}: efnas retrain sets {'it' if len(clash) == 1 else 'them'} itself "
                          "(--arch, --init): drop the option")
    if not overrides.get("experiment.name"):
        raise ConfigError("efnas retrain needs --experiment_name NAME: the retrain's own run directory is "
                          "<output_root>/NAME")
    ckpt = supernet_checkpoint(run_dir, which)
    state = checkpoint.read_state(ckpt)
    recorded = state.get("config") or {}
    if recorded.get("train", {}).get("supernet_mode") == "fixed_arch":
        raise ConfigError(f"{run_dir} is itself a fixed-arch run: --run must name a supernet run")
    raw = load_yaml(Path(config_path)) if config_path is not None else recorded
    forced: Dict[str, Any] = {"train.supernet_mode": "fixed_arch", "model.fixed_arch_code": list(code),
                              "checkpoint.init_from": str(ckpt.resolve()) if init == "supernet" else None,
                              "checkpoint.resume_experiment_name": None}
    given = Overrides(dict(overrides, **forced),
                      dict(getattr(overrides, "options", {}), **{key: "--arch/--init" for key in forced}))
    origin = f"config file {config_path}" if config_path is not None else f"config recorded in {ckpt}"
    resolved = resolve_mapping(raw, given, origin=origin)
    return ResolvedConfig(resolved.config, resolved.values, resolved.sources,
                          str(config_path) if config_path is not None else None)

