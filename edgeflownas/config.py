"""Load, override, validate and resolve run configs.

Pipeline: YAML ``safe_load`` -> CLI overrides merged in -> JSON Schema
validation that collects *all* errors -> schema defaults filled in -> frozen
dataclasses.  Precedence is CLI option > config file > schema default, and
every resolved value remembers where it came from (for ``--dry_run``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from edgeflownas.config_types import SECTION_TYPES, Config
from edgeflownas.errors import ConfigError

SCHEMA_FILE = "supernet_config.schema.json"
SOURCE_CLI = "cli"
SOURCE_FILE = "file"
SOURCE_DEFAULT = "default"


def repo_root() -> Path:
    """Directory that holds edgeflownas/, schemas/ and configs/ (editable install)."""
    return Path(__file__).resolve().parent.parent


def schemas_dir() -> Path:
    """Directory of the JSON Schemas; an error if the checkout is incomplete."""
    path = repo_root() / "schemas"
    if not path.is_dir():
        raise ConfigError(
            f"schema directory {path} not found: install efnas from a source checkout "
            "with 'pip install -e .' so schemas/ sits beside edgeflownas/"
        )
    return path


def load_schema(name: str = SCHEMA_FILE) -> Dict[str, Any]:
    """Read one JSON Schema from schemas/."""
    path = schemas_dir() / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"schema file {path} is missing") from None


def default_config_path() -> Path:
    """The shipped config with every locked default of the spec."""
    return repo_root() / "configs" / "supernet_fc2_180x240.yaml"


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


def _error_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error) -> str:
    """One readable line for one jsonschema error, prefixed with its YAML path."""
    path = _error_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        prefix = "" if path == "<top level>" else path + "."
        return "; ".join(
            f"{prefix}{key}: unknown key (valid keys here: {', '.join(allowed)})" for key in extra
        )
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = "" if path == "<top level>" else path + "."
        return f"{prefix}{missing}: required key is missing"
    return f"{path}: {error.message}"


def _non_finite(node: Any, prefix: str = "") -> List[Tuple[str, str]]:
    """(path, line) for every NaN or infinite number anywhere in the tree.

    JSON Schema cannot refuse them: NaN compares neither below a minimum nor above
    a maximum, so ``--lr nan`` or ``lr: .nan`` would pass every bound.
    """
    if isinstance(node, float) and not math.isfinite(node):
        path = prefix or "<top level>"
        return [(path, f"{path}: {node} is not a finite number; give a finite value")]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found: List[Tuple[str, str]] = []
    for key, child in children:
        found += _non_finite(child, f"{prefix}.{key}" if prefix else str(key))
    return found


def _validation_problems(raw: Mapping[str, Any], schema: Optional[Dict[str, Any]] = None) -> List[Tuple[str, str]]:
    """(path, readable line) of every violation of ``raw``, in document order."""
    import jsonschema

    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [(_error_path(e), _describe(e)) for e in errors]
    flagged = {path for path, _ in problems}
    problems += [item for item in _non_finite(dict(raw)) if item[0] not in flagged]
    problems += _cross_field_errors(raw) if not problems else []
    return problems


def validation_errors(raw: Mapping[str, Any], schema: Optional[Dict[str, Any]] = None) -> List[str]:
    """All schema violations of ``raw`` as readable lines, in document order."""
    return [line for _, line in _validation_problems(raw, schema)]


def _cross_field_errors(raw: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """Rules JSON Schema cannot state locally."""
    lines = []
    data = raw.get("data", {})
    if data.get("source") == "shards" and not data.get("shards_dir"):
        lines.append(("data.shards_dir", "data.shards_dir: required when data.source is 'shards'"))
    return lines


def validate(raw: Mapping[str, Any], origin: str = "config", options: Optional[Mapping[str, str]] = None) -> None:
    """Raise one ConfigError that lists every violation of ``raw``; ``options`` maps CLI-set keys to their option.

    A value that came from the command line is blamed on its option (``--lr``),
    not on the config file it was merged into.
    """
    problems = _validation_problems(raw)
    if not problems:
        return
    options = options or {}
    blamed = [options.get(path) for path, _ in problems]
    if all(blamed):
        named = list(dict.fromkeys(blamed))
        where = f"option {named[0]} is" if len(named) == 1 else f"options {', '.join(named)} are"
        lines = [line for _, line in problems]
    else:
        where = f"{origin} is"
        lines = [f"{line} (given as {option})" if option else line for (_, line), option in zip(problems, blamed)]
    if len(lines) == 1:
        raise ConfigError(f"{where} invalid: {lines[0]}")
    joined = "\n  ".join(lines)
    raise ConfigError(f"{where} invalid ({len(lines)} errors):\n  {joined}")


def _fill_defaults(
    node: Dict[str, Any], schema: Mapping[str, Any], prefix: str, sources: Dict[str, str]
) -> None:
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if sub.get("type") == "object":
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
    sources: Dict[str, str] = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        set_dotted(values, dotted, value)
        sources[dotted] = SOURCE_CLI
    validate(values, origin, overrides.options if isinstance(overrides, Overrides) else None)
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


def format_resolved(resolved: ResolvedConfig) -> str:
    """Human table of every resolved value and its source, for --dry_run."""
    rows = flatten(resolved.values)
    width = max(len(k) for k, _ in rows)
    lines = [f"# resolved config from {resolved.path or '<mapping>'}  (precedence: cli > file > default)"]
    for key, value in rows:
        shown = json.dumps(value)
        lines.append(f"{key:<{width}}  {shown:<28}  [{resolved.sources.get(key, SOURCE_FILE)}]")
    lines.append(f"# config_hash {resolved.config_hash}")
    return "\n".join(lines)
