"""Sweep grids: ``key=v1,v2`` options or a YAML file -> named trials.

A sweep is a grid over dotted config keys (or the CLI option names of
``efnas train``, e.g. ``lr`` for ``train.lr``).  Every combination is one
trial with its own run directory ``<output_root>/<experiment>/<trial>``; the
trial name is built from the values, so re-running the same sweep maps every
trial to the same directory.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from edgeflownas.config import canonical_key
from edgeflownas.errors import ConfigError

TRIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Trial:
    """One point of a sweep grid: its directory name and its config overrides."""

    name: str
    overrides: Tuple[Tuple[str, Any], ...]

    def as_dict(self) -> Dict[str, Any]:
        """The overrides as {dotted key: value}."""
        return dict(self.overrides)


def parse_scalar(text: str, origin: str = "--sweep") -> Any:
    """A sweep value from the command line, read as the same value in a config file would be (1e-4 is a float)."""
    from edgeflownas.config_yaml import parse_value

    return parse_value(text.strip(), origin)


def _add_axis(grid: Dict[str, List[Any]], key: str, values: Sequence[Any], origin: str) -> None:
    dotted = canonical_key(key, origin)
    if dotted.startswith("slurm.") or dotted == "experiment.name":
        raise ConfigError(
            f"{origin}: '{dotted}' cannot be swept (one job array shares its SLURM settings and experiment)"
        )
    if dotted in grid:
        raise ConfigError(f"{origin}: key '{dotted}' is given twice")
    if not values:
        raise ConfigError(f"{origin}: key '{dotted}' has no values")
    grid[dotted] = list(values)


def parse_sweep_specs(specs: Sequence[str]) -> Dict[str, List[Any]]:
    """Grid from ``--sweep`` arguments: each is ``key=v1,v2,...`` or the path of a YAML file."""
    grid: Dict[str, List[Any]] = {}
    for spec in specs:
        if "=" in spec:
            key, _, raw = spec.partition("=")
            origin = f"--sweep {spec}"
            _add_axis(grid, key, [parse_scalar(v, origin) for v in raw.split(",") if v.strip()], origin)
        elif not Path(spec).is_file():
            raise ConfigError(
                f"--sweep {spec}: expected KEY=V1,V2,... (e.g. --sweep {spec.strip() or 'lr'}=1e-4,3e-4) or the path "
                f"of a YAML sweep file, but there is no '=' and '{spec}' is not a file"
            )
        else:
            for key, values in load_sweep_file(Path(spec)).items():
                _add_axis(grid, key, values, f"sweep file {spec}")
    return grid


def load_sweep_file(path: Path) -> Dict[str, List[Any]]:
    """A YAML mapping {key: [values]} (a scalar means one value); numbers follow the config files' rule."""
    from edgeflownas.config import load_yaml

    raw = load_yaml(path, kind="sweep file", option="--sweep", expected="a mapping {key: [values]}")
    grid = {}
    for key, values in raw.items():
        values = values if isinstance(values, list) else [values]
        grid[str(key)] = values
    return grid


def _value_label(value: Any) -> str:
    return _UNSAFE.sub("_", str(value).lower() if isinstance(value, bool) else str(value)).strip("_") or "none"


def trial_name(assignment: Sequence[Tuple[str, Any]]) -> str:
    """Directory name of a trial, e.g. ``seed=1_lr=0.0001`` (last key component = value)."""
    return "_".join(f"{key.rsplit('.', 1)[-1]}={_value_label(value)}" for key, value in assignment)


def expand_grid(grid: Dict[str, List[Any]]) -> List[Trial]:
    """Every combination of the grid as a Trial, in a stable order; names are unique and path-safe."""
    keys = list(grid)
    trials = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        assignment = tuple(zip(keys, combo))
        trials.append(Trial(trial_name(assignment), assignment))
    seen: Dict[str, Trial] = {}
    for trial in trials:
        if not TRIAL_NAME.match(trial.name):
            raise ConfigError(f"sweep trial name '{trial.name}' is too long or not path-safe: use fewer/shorter values")
        if trial.name in seen:
            raise ConfigError(
                f"sweep values {seen[trial.name].as_dict()} and {trial.as_dict()} map to the same trial "
                f"directory '{trial.name}': make the values distinct"
            )
        seen[trial.name] = trial
    return trials
