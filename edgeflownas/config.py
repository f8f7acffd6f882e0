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
from typing import Any, Dict, List, Mapping, Optional, Tuple

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
    """The shipped config with every locked default of the spec."""
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
