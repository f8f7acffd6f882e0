"""Load, override, validate and resolve run configs.

Pipeline: strict YAML (edgeflownas.config_yaml) -> alias keys renamed
(``slurm.timeout_min`` -> ``slurm.time_min``) -> CLI overrides merged in ->
JSON Schema validation that collects *all* errors (edgeflownas.config_check)
-> schema defaults filled in -> frozen dataclasses.  Precedence is CLI option > config file > schema default, and
every resolved value remembers where it came from (for ``--dry_run``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from edgeflownas import config_check
from edgeflownas.config_types import SECTION_TYPES, Config
from edgeflownas.errors import ConfigError

SCHEMA_FILE = "supernet_config.schema.json"
DEFAULT_CONFIG = "supernet_fc2_180x240.yaml"
SHIPPED_PACKAGE = "_shipped"
SOURCE_CLI = "cli"
SOURCE_CLI_SET = "cli --set"
SOURCE_FILE = "file"
SOURCE_DEFAULT = "default"


def repo_root() -> Path:
    """The directory above edgeflownas/: the source checkout in an editable install, site-packages otherwise."""
    return Path(__file__).resolve().parent.parent


def shipped_file(relative: str) -> Path:
    """A file of the repository's schemas/, configs/ or tools/data_check/, e.g. ``schemas/x.json``.

    setup.py maps those folders into the wheel under edgeflownas/_shipped/; an
    editable install has no such package and reads the checkout's folders.
    """
    packaged = importlib.resources.files("edgeflownas") / SHIPPED_PACKAGE
    base = Path(str(packaged)) if packaged.is_dir() else repo_root()
    path = base / relative
    if not path.is_file():
        raise ConfigError(
            f"{path}: shipped file {relative} not found in the efnas installation; reinstall efnas "
            "('pip install .' or 'pip install -e .' from a complete source checkout)"
        )
    return path


def schemas_dir() -> Path:
    """Directory of the JSON Schemas."""
    return shipped_file(f"schemas/{SCHEMA_FILE}").parent


def load_schema(name: str = SCHEMA_FILE) -> Dict[str, Any]:
    """Read one JSON Schema from schemas/."""
    return json.loads(shipped_file(f"schemas/{name}").read_text(encoding="utf-8"))


def default_config_path() -> Path:
    """The shipped config with every default the design fixes (docs/design.md)."""
    return shipped_file(f"configs/{DEFAULT_CONFIG}")


def load_yaml(path: Path, kind: str = "config file", option: str = "--config",
              expected: str = "a mapping of sections") -> Dict[str, Any]:
    """Parse a YAML config (or sweep) file into a mapping; strict, see edgeflownas.config_yaml."""
    from edgeflownas.config_yaml import read_yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{kind} {path} does not exist: pass an existing YAML file to {option}")
    if not path.is_file():
        raise ConfigError(f"{kind} path {path} is not a file: pass a YAML file to {option}")
    data = read_yaml(path, kind)
    if data is None:
        raise ConfigError(f"{kind} {path} is empty: expected {expected}")
    if not isinstance(data, dict):
        raise ConfigError(f"{kind} {path} must be {expected} at top level, found {type(data).__name__}")
    return data


def set_dotted(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted == 'a.b'``, creating sections."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def get_dotted(tree: Mapping[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path; KeyError if any part is absent."""
    node: Any = tree
    for key in dotted.split("."):
        node = node[key]
    return node


class Overrides(Dict[str, Any]):
    """CLI overrides {dotted key: value} that remember the option that set each key (``train.lr`` -> ``--lr``)."""

    def __init__(self, values: Mapping[str, Any], options: Mapping[str, str]) -> None:
        super().__init__(values)
        self.options = dict(options)

    def source(self, key: str) -> str:
        """How --dry_run labels the key's value: 'cli' (a named option) or 'cli --set'."""
        return SOURCE_CLI_SET if self.options.get(key, "").startswith("--set") else SOURCE_CLI


# The command line's named overrides (efnas train, submit, retrain; sweeps name keys the same way).  The CLI
# builds its click options from this table; --set KEY=VALUE reaches every other key.
class Override(NamedTuple):
    """A named command-line option that overrides one config key (``--lr`` -> ``train.lr``)."""

    option: str
    key: str
    type: type
    help: str
    flag: bool = False
    choices: Tuple[str, ...] = ()  # the allowed values, when the schema has an enum


OVERRIDES = (
    Override("experiment_name", "experiment.name", str, "Experiment name; run directory is <output_root>/<name>."),
    Override("output_root", "experiment.output_root", str, "Directory that holds the run directories."),
    Override("seed", "experiment.seed", int, "Global seed (sampler, data order, eval pool, init)."),
    Override("train_dir", "data.train_dir", str, "FC2 train/ folder."),
    Override("val_dir", "data.val_dir", str, "FC2 val/ folder (0 samples is fatal)."),
    Override("data_source", "data.source", str, "Read FC2 folders or packed shards.",
             choices=("folders", "shards")),
    Override("shards_dir", "data.shards_dir", str, "Packed HDF5 shards directory (with --data_source shards)."),
    Override("num_epochs", "train.num_epochs", int, "Planned epochs (the cosine schedule spans them)."),
    Override("batch_size", "train.batch_size", int, "Batch size shared by the 3 paths of a cycle."),
    Override("lr", "train.lr", float, "Peak Adam learning rate."),
    Override("supernet_mode", "train.supernet_mode", str, "strict_fairness (3 paths, one update) or fixed_arch.",
             choices=("strict_fairness", "fixed_arch")),
    Override("max_epochs", "train.max_epochs", int, "Stop this invocation after N epochs."),
    Override("max_steps", "train.max_steps", int, "Cap optimizer steps per epoch."),
    Override("gpu_device", "runtime.gpu_device", int, "GPU index; ignored with a notice when no GPU exists."),
    Override("fast_mode", "runtime.fast_mode", bool, "Local smoke run: few steps per epoch, few val batches.",
             flag=True),
    Override("debug_trace", "runtime.debug_trace", bool,
             "Log every cycle (forward/backward x3, optimizer_step x1, grad norms, lr) and each evaluated subnet's "
             "BN statistics before/after recalibration.", flag=True),
    Override("resume", "checkpoint.resume", bool, "Resume this experiment from its last checkpoint (exact resume).",
             flag=True),
    Override("resume_experiment_name", "checkpoint.resume_experiment_name", str,
             "Start this new experiment from the weights of another experiment's last checkpoint."),
    Override("reset_early_stop_on_resume", "checkpoint.reset_early_stop_on_resume", bool,
             "Forget the early-stop counters and best metric when resuming, once (a requeue of the same run keeps "
             "counting).", flag=True),
)


_OPTION_KEYS = {item.option: item.key for item in OVERRIDES}

# The options that say where a run's data is (for commands that reopen a finished run's data).
DATA_LOCATIONS = ("train_dir", "val_dir", "data_source", "shards_dir")


def canonical_key(key: str, origin: str) -> str:
    """Map an option name (``lr``) to its dotted key (``train.lr``); dotted keys pass (the schema checks them)."""
    key = key.strip()
    if "." in key:
        return key
    if key in _OPTION_KEYS:
        return _OPTION_KEYS[key]
    guess = config_check.suggest_key(key, list(_OPTION_KEYS))
    hint = f"did you mean '{guess}' ({_OPTION_KEYS[guess]})?" if guess else "e.g. train.lr or seed"
    raise ConfigError(f"{origin}: '{key}' is neither a dotted config key nor an efnas train option name; {hint}")


def parse_set(spec: str) -> Tuple[str, Any]:
    """``KEY=VALUE`` of one ``--set`` -> (dotted key, value read by the config files' YAML rule)."""
    from edgeflownas.config_yaml import parse_value

    origin = f"--set {spec}"
    key, equals, text = spec.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"{origin}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
    return canonical_key(key, origin), parse_value(text, origin)


def collect_overrides(kwargs: Dict[str, Any]) -> Overrides:
    """Named options and ``--set`` values as {dotted key: value}, each remembering its option; a key twice is an error."""
    given = [item for item in OVERRIDES if kwargs.get(item.option) is not None]
    values = {item.key: kwargs[item.option] for item in given}
    options = {item.key: f"--{item.option}" for item in given}
    for spec in kwargs.get("set_values") or ():
        key, value = parse_set(spec)
        clash = [k for k in options if k == key or k.startswith(key + ".") or key.startswith(k + ".")]
        if clash:
            raise ConfigError(f"--set {spec}: {clash[0]} is also set by {options[clash[0]]}; the command line "
                              "may name each key once: drop one of them")
        values[key], options[key] = value, f"--set {spec}"
    return Overrides(values, options)


def schema_aliases(schema: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """{dotted alias: dotted key} from the schema's ``x-aliases`` (``slurm.timeout_min`` -> ``slurm.time_min``)."""
    schema = schema or load_schema()
    found = {}
    for section, sub in schema.get("properties", {}).items():
        for key, leaf in sub.get("properties", {}).items():
            found.update({f"{section}.{alias}": f"{section}.{key}" for alias in leaf.get("x-aliases", ())})
    return found


def _both_given(alias: str, key: str, where: str) -> ConfigError:
    return ConfigError(f"{where}: {alias} and {key} are both given; {alias.rsplit('.', 1)[-1]} is the submitit/Hydra "
                       f"spelling of {key.rsplit('.', 1)[-1]}: keep one")


def _rename_aliases(values: Dict[str, Any], overrides: Mapping[str, Any], origin: str) -> Overrides:
    """Rename alias keys in the file layer (in place, order kept) and the CLI layer; both spellings in one is an error."""
    options = dict(getattr(overrides, "options", {}))
    renamed = dict(overrides)
    for alias, key in schema_aliases().items():
        section, alias_leaf = alias.split(".")
        node = values.get(section)
        if isinstance(node, dict) and alias_leaf in node:
            if key.split(".")[1] in node:
                raise _both_given(alias, key, origin)
            values[section] = {key.split(".")[1] if k == alias_leaf else k: v for k, v in node.items()}
        if alias in renamed:
            if key in renamed:
                raise _both_given(alias, key, f"{options.get(alias, alias)} and {options.get(key, key)}")
            renamed[key] = renamed.pop(alias)
            if alias in options:
                options[key] = options.pop(alias)
    return Overrides(renamed, options)


def _fill_defaults(
    node: Dict[str, Any], schema: Mapping[str, Any], prefix: str, sources: Dict[str, str]
) -> None:
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "properties" in sub:  # a section; a free mapping such as slurm.additional_parameters is one value
            node.setdefault(key, {})
            _fill_defaults(node[key], sub, dotted + ".", sources)
        elif key not in node:
            if "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
                sources[dotted] = SOURCE_DEFAULT
        else:
            sources.setdefault(dotted, SOURCE_FILE)


def fill_defaults(values: Dict[str, Any], schema: Mapping[str, Any]) -> Dict[str, Any]:
    """``values`` with every missing key of ``schema`` set to its default (sections created); in place."""
    _fill_defaults(values, schema, "", {})
    return values


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated config plus where each value came from."""

    config: Config
    values: Dict[str, Any]
    sources: Dict[str, str]
    path: Optional[str]

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every resolved value."""
        return config_hash(self.values)


# Keys added after runs were recorded, with the value that computes what a run computed before the key existed.
# A recorded config without one of them had that value (resume checks); at that value the key is left out of a
# trial's fingerprint, so the earlier records still count as finished.
LATER_KEYS: Dict[str, Any] = {"model.residual_init": "random", "train.lr_warmup_steps": 0}


def config_hash(values: Mapping[str, Any]) -> str:
    """Stable hash of a resolved config mapping."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def to_dataclasses(values: Mapping[str, Any]) -> Config:
    """Turn a validated, default-filled mapping into frozen dataclasses."""
    sections = {}
    for name, cls in SECTION_TYPES.items():
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in values[name].items()}
        sections[name] = cls(**fields)
    return Config(**sections)


def resolve_mapping(
    raw: Mapping[str, Any],
    overrides: Optional[Mapping[str, Any]] = None,
    origin: str = "config",
) -> ResolvedConfig:
    """Merge overrides into a raw mapping, validate, fill defaults, build dataclasses."""
    values = copy.deepcopy(dict(raw))
    given = _rename_aliases(values, overrides or {}, origin)
    sources: Dict[str, str] = {}
    for dotted, value in given.items():
        set_dotted(values, dotted, value)
        sources[dotted] = given.source(dotted)
    config_check.validate(values, load_schema(), origin, given.options)
    _fill_defaults(values, load_schema(), "", sources)
    return ResolvedConfig(to_dataclasses(values), values, sources, None)


def resolve(path: Optional[Path], overrides: Optional[Mapping[str, Any]] = None) -> ResolvedConfig:
    """Load a YAML file (or the shipped default) and resolve it with CLI overrides."""
    path = Path(path) if path is not None else default_config_path()
    raw = load_yaml(path)
    resolved = resolve_mapping(raw, overrides, origin=f"config file {path}")
    return ResolvedConfig(resolved.config, resolved.values, resolved.sources, str(path))


def flatten(values: Mapping[str, Any], prefix: str = "") -> List[Tuple[str, Any]]:
    """(dotted key, leaf value) pairs in document order."""
    rows: List[Tuple[str, Any]] = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, dotted + "."))
        else:
            rows.append((dotted, value))
    return rows


def _source_of(key: str, sources: Mapping[str, str]) -> str:
    """Source of a key, or of the nearest section above it that was set whole (``--set train={...}``)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in sources:
            return sources[".".join(parts[:end])]
    return SOURCE_FILE


def format_resolved(resolved: ResolvedConfig) -> str:
    """Human table of every resolved value and its source, for --dry_run."""
    rows = flatten(resolved.values)
    width = max(len(k) for k, _ in rows)
    lines = [f"# resolved config from {resolved.path or '<mapping>'}  "
             "(precedence: cli (named option or --set) > file > default)"]
    for key, value in rows:
        shown = json.dumps(value)
        lines.append(f"{key:<{width}}  {shown:<28}  [{_source_of(key, resolved.sources)}]")
    lines.append(f"# config_hash {resolved.config_hash}")
    return "\n".join(lines)
