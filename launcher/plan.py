"""What one ``efnas submit`` will run: validated trial configs and their run directories.

Everything is resolved and validated here, before anything touches SLURM: the
base config (file + CLI overrides) and, for a sweep, every trial config.  An
invalid value anywhere means nothing is submitted.  Paths are made absolute,
because the job runs elsewhere (another working directory, a container).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.config import LATER_KEYS, ResolvedConfig, config_hash, resolve, resolve_mapping
from edgeflownas.config_types import SlurmConfig
from edgeflownas.errors import ConfigError, SubmitError
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.train.retrain import retrain_config
from launcher.job import read_result
from launcher.sweep import Trial, expand_grid, parse_sweep_specs

# Values that never change what a run computes: excluded from the trial fingerprint.
_NOT_TRAINING = ("slurm",)
_PATH_KEYS = (("experiment", "output_root"), ("data", "train_dir"), ("data", "val_dir"), ("data", "shards_dir"),
              ("slurm", "log_dir"), ("slurm", "container_image"))
# Where things are, not what they hold: left out of the fingerprint, so that a finished run still counts as
# finished in another checkout or after the data moved; the data is compared by content instead
# (``finished_result``).
_WHERE_KEYS = (("experiment", "output_root"), ("data", "train_dir"), ("data", "val_dir"), ("data", "shards_dir"))
# What a run shows or how fast it reads, not what it computes (the loader's batches do not depend on its workers).
_DISPLAY_KEYS = (("eval", "flow_pictures"), ("train", "log_every_steps"), ("data", "num_workers"),
                 ("data", "prefetch_batches"))


@dataclass(frozen=True)
class TrialPlan:
    """One training run: its name in the sweep (None for a single run), run directory and config."""

    name: Optional[str]
    run_dir: Path
    resolved: ResolvedConfig
    overrides: Tuple[Tuple[str, Any], ...] = ()  # the sweep values of this trial (dotted key, value)

    @property
    def label(self) -> str:
        """How messages name this run."""
        return self.name or self.resolved.config.experiment.name


@dataclass(frozen=True)
class SubmissionPlan:
    """Every trial of one submission plus the settings they share."""

    experiment: str
    experiment_dir: Path
    log_dir: Path
    slurm: SlurmConfig
    container: Optional[Path]
    trials: List[TrialPlan]
    is_sweep: bool
    cli_overrides: Tuple[Tuple[str, Any, str], ...] = ()  # (dotted key, value, option that set it), every trial


def training_fingerprint(values: Mapping[str, Any]) -> str:
    """Hash of the values that decide a run's result.

    Left out: SLURM settings, the resume flag, what only changes what a run
    shows or how fast it reads (``_DISPLAY_KEYS``) and where the run and its
    data live (``_WHERE_KEYS``): the same training in another checkout, or on
    data that moved, has the same fingerprint.  ``finished_result`` checks the data's
    content separately.
    """
    return config_hash(_training_values(values, _WHERE_KEYS + _DISPLAY_KEYS))


def _training_values(values: Mapping[str, Any], left_out: Sequence[Tuple[str, str]] = ()) -> Dict[str, Any]:
    """``values`` without the SLURM settings, the resume flag and the ``left_out`` (section, key) pairs."""
    kept = {k: copy.deepcopy(v) for k, v in values.items() if k not in _NOT_TRAINING}
    kept.get("checkpoint", {}).pop("resume", None)
    for section, key in left_out:
        kept.get(section, {}).pop(key, None)
    for dotted, earlier in LATER_KEYS.items():
        section, key = dotted.split(".")
        if kept.get(section, {}).get(key, earlier) == earlier:
            kept.get(section, {}).pop(key, None)
    return kept


def finished_result(trial: TrialPlan) -> Optional[Dict[str, Any]]:
    """The finished-run record of ``trial`` when it was trained with exactly its config and data, else None.

    Same config: the record's fingerprint.  Same data: the sample ids and
    content digests the run's manifest recorded equal those of the data the
    trial names now (wherever it lies).  Data that cannot be opened here is not
    held against the record.
    """
    result = read_result(trial.run_dir)
    if not result:
        return None
    manifest = _read_manifest(trial.run_dir)
    fingerprint = training_fingerprint(trial.resolved.values)
    if result.get("fingerprint") != fingerprint and not _legacy_fingerprint_matches(manifest, result, fingerprint):
        return None
    from edgeflownas.data.loader import content_mismatch

    recorded = manifest.get("data")
    if isinstance(recorded, dict):
        now = _data_digests(trial.resolved.config.data)
        for key, value in now.items():
            if key in recorded and (recorded[key] != value if key.endswith("ids_sha256")
                                    else content_mismatch(recorded[key], value)):
                return None
    return result


def _legacy_fingerprint_matches(manifest: Mapping[str, Any], result: Mapping[str, Any], fingerprint: str) -> bool:
    """A record from an efnas whose fingerprint still held the paths: judged by the config its manifest recorded.

    It counts when its fingerprint is that older hash (SLURM settings and the
    resume flag left out, nothing else) of the recorded config, and the recorded
    config has ``fingerprint`` today.
    """
    values = manifest.get("resolved_config")
    if not isinstance(values, dict):
        return False
    return (result.get("fingerprint") == config_hash(_training_values(values))
            and training_fingerprint(values) == fingerprint)


def _read_manifest(run_dir: Path) -> Dict[str, Any]:
    """A run's ``train_manifest.json`` ({} when absent or unreadable: then nothing of it is compared)."""
    from edgeflownas.train.run_dir import MANIFEST

    try:
        doc = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


_DIGESTS: Dict[Tuple[Any, ...], Dict[str, str]] = {}


def _data_digests(data: Any) -> Dict[str, str]:
    """Sample-id and content digests of both splits of ``data`` (cached per location; {} if unreadable)."""
    where = (data.source, data.train_dir, data.val_dir, data.shards_dir, data.input_height, data.input_width)
    if where not in _DIGESTS:
        from edgeflownas.data.loader import open_source
        from edgeflownas.data.shards import ids_digest

        digests: Dict[str, str] = {}
        try:
            for split in ("train", "val"):
                source = open_source(data, split)
                digests[f"{split}_sample_ids_sha256"] = ids_digest(source.sample_ids)
                digests[f"{split}_content_sha256"] = source.content_digest()
        except Exception:  # noqa: BLE001 - unreadable data here: nothing to compare (see finished_result)
            digests = {}
        _DIGESTS[where] = digests
    return _DIGESTS[where]


def _absolute(values: Dict[str, Any], base: Path) -> Dict[str, Any]:
    values = copy.deepcopy(values)
    for section, key in _PATH_KEYS:
        value = values.get(section, {}).get(key)
        if isinstance(value, str):
            values[section][key] = str((base / Path(value).expanduser()).absolute())
    return values


def missing_data_dirs(trial: TrialPlan) -> List[Tuple[str, str]]:
    """(key, path) of each data folder the trial reads that is not a directory on this machine."""
    data = trial.resolved.config.data
    wanted = [("data.shards_dir", data.shards_dir)] if data.source == "shards" else [
        ("data.train_dir", data.train_dir), ("data.val_dir", data.val_dir)]
    return [(key, value) for key, value in wanted if not value or not Path(value).is_dir()]


def _check_data_dirs(trial: TrialPlan) -> None:
    for key, value in missing_data_dirs(trial)[:1]:
            raise SubmitError(
                f"{key} = {value} (run '{trial.label}') is not a directory on this machine: the job would fail "
                "at startup; fix the path (it must be visible from the compute nodes too)"
            )


@dataclass(frozen=True)
class RetrainRequest:
    """``efnas submit --retrain RUN --arch ...``: subnets of a supernet run, each trained on its own."""

    run_dir: Path
    codes: Tuple[ArchCode, ...]
    init: str = "scratch"
    which: str = "best"


def _grid(sweep_specs: Sequence[str], retrain: Optional[RetrainRequest]) -> List[Trial]:
    """The trials: sweep grid points, times the retrained codes (each code's trial named by its arch name)."""
    grid = expand_grid(parse_sweep_specs(sweep_specs)) if sweep_specs else [None]
    codes = retrain.codes if retrain is not None else [None]
    trials = []
    for code in codes:
        for point in grid:
            names = ([arch_name(code)] if code is not None else []) + ([point.name] if point is not None else [])
            overrides = ((("model.fixed_arch_code", list(code)),) if code is not None else ()) + (
                point.overrides if point is not None else ())
            trials.append(Trial("_".join(names), overrides))
    return trials


def build_plan(config_path: Optional[Path], overrides: Mapping[str, Any], sweep_specs: Sequence[str],
               container: Optional[str], cwd: Optional[Path] = None,
               retrain: Optional[RetrainRequest] = None, check_data: bool = True) -> SubmissionPlan:
    """Resolve and validate the base config and every trial; nothing is submitted here.

    ``check_data=False`` skips the check that the data folders exist here (a dry run prepared away from the data).

    With ``retrain`` the base is the supernet run's config turned into a retrain (``train.retrain``) and every
    code becomes a trial (``<experiment>/<arch name>``), crossed with the sweep if there is one.
    """
    cwd = Path(cwd or Path.cwd())
    if retrain is None:
        base = resolve(config_path, overrides)
        origin = f"config file {base.path}"
    else:
        if not retrain.codes:
            raise ConfigError("--retrain needs at least one --arch")
        base = retrain_config(retrain.run_dir, retrain.codes[0], retrain.init, retrain.which, config_path, overrides)
        origin = f"retrain of {retrain.run_dir}"
    values = _absolute(base.values, cwd)
    experiment = values["experiment"]["name"]
    experiment_dir = Path(values["experiment"]["output_root"]) / experiment
    is_sweep = bool(sweep_specs) or retrain is not None
    if not is_sweep:
        resolved = dataclasses.replace(resolve_mapping(values, origin=origin), path=base.path)
        trials = [TrialPlan(None, experiment_dir, resolved)]
    else:
        trials, errors = [], []
        for trial in _grid(sweep_specs, retrain):
            try:
                resolved = resolve_mapping(values, trial.as_dict(), origin=f"sweep trial '{trial.name}'")
            except ConfigError as error:
                errors.append(str(error))
                continue
            trials.append(TrialPlan(trial.name, experiment_dir / trial.name,
                                    dataclasses.replace(resolved, path=base.path), trial.overrides))
        if errors:
            raise ConfigError(f"{origin}: {len(errors)} sweep trial(s) invalid, nothing submitted:\n" + "\n".join(errors))
    for trial in trials if check_data else ():
        _check_data_dirs(trial)
    slurm = trials[0].resolved.config.slurm
    image = container or slurm.container_image
    log_dir = Path(slurm.log_dir) if slurm.log_dir else experiment_dir / "slurm"
    return SubmissionPlan(
        experiment=experiment, experiment_dir=experiment_dir, log_dir=log_dir, slurm=slurm,
        container=(cwd / image).absolute() if image else None, trials=trials, is_sweep=is_sweep,
        cli_overrides=tuple((key, value, getattr(overrides, "options", {}).get(key, "cli"))
                            for key, value in overrides.items()),
    )
