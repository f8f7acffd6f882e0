"""Validate a raw config mapping: every violation at once, one readable line each.

Unknown keys get a did-you-mean (``batchsize`` -> ``batch_size``, or
``lr`` at top level -> ``train.lr``) and the valid keys of a section are listed
once, not per key.  A value that came from the command line is blamed on the
option that set it; rules JSON Schema cannot state locally are checked here too.
"""

from __future__ import annotations

import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.errors import ConfigError

# sbatch flags efnas sets itself; slurm.additional_parameters may not set them behind its back.
RESERVED_SBATCH = {
    "job_name": "efnas (efnas-<experiment>)", "time": "slurm.time_min", "nodes": "slurm.nodes",
    "cpus_per_task": "slurm.cpus_per_task", "mem": "slurm.mem_gb", "gpus_per_node": "slurm.gpus_per_node",
    "partition": "slurm.partition", "account": "slurm.account", "qos": "slurm.qos",
    "signal": "slurm.signal_delay_s (the requeue signal)", "array": "efnas (one job array per sweep)",
    "output": "slurm.log_dir", "error": "slurm.log_dir", "open_mode": "efnas (logs appended across requeues)",
}


def _error_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _leaf_keys(schema: Mapping[str, Any], prefix: str = "") -> List[str]:
    """Every dotted key the schema defines (``train.lr``, ``slurm.time_min``, ...)."""
    keys = []
    for key, sub in schema.get("properties", {}).items():
        keys += _leaf_keys(sub, f"{prefix}{key}.") if "properties" in sub else [prefix + key]
    return keys


def suggest_key(key: str, allowed: Sequence[str], elsewhere: Sequence[str] = ()) -> Optional[str]:
    """The valid key ``key`` was probably meant to be: a close spelling here, else the same name in another section."""
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    if close:
        return close[0]
    by_leaf = {dotted.rsplit(".", 1)[-1]: dotted for dotted in elsewhere}
    close = difflib.get_close_matches(key, list(by_leaf), n=1, cutoff=0.8)
    return by_leaf[close[0]] if close else None


def _unknown_keys(error, schema: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """One line per unknown key: a did-you-mean, or (once per section) the section's valid keys."""
    path = _error_path(error)
    allowed = sorted(error.schema.get("properties", {}))
    prefix = "" if path == "<top level>" else path + "."
    elsewhere = [key for key in _leaf_keys(schema) if not key.startswith(prefix)] if prefix else _leaf_keys(schema)
    problems, listed = [], False
    for key in sorted(set(error.instance) - set(allowed)):
        guess = suggest_key(str(key), allowed, elsewhere)
        if guess is not None:
            hint = f"did you mean '{guess}'?"
        elif not listed:
            hint, listed = f"valid keys {'in ' + path if prefix else 'at top level'}: {', '.join(allowed)}", True
        else:
            hint = "valid keys listed above"
        problems.append((f"{prefix}{key}", f"{prefix}{key}: unknown key; {hint}"))
    return problems


def _describe(error, schema: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(path, readable line) for one jsonschema error, the line prefixed with its YAML path."""
    path = _error_path(error)
    if error.validator == "additionalProperties":
        return _unknown_keys(error, schema)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = "" if path == "<top level>" else path + "."
        return [(path, f"{prefix}{missing}: required key is missing")]
    return [(path, f"{path}: {error.message}")]


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


def _validation_problems(raw: Mapping[str, Any], schema: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(path, readable line) of every violation of ``raw``, in document order."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [problem for error in errors for problem in _describe(error, schema)]
    flagged = {path for path, _ in problems}
    problems += [item for item in _non_finite(dict(raw)) if item[0] not in flagged]
    problems += [item for item in _one_gpu(raw) if item[0] not in flagged]
    problems += _cross_field_errors(raw) if not problems else []
    return problems


def _one_gpu(raw: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """A job trains on one GPU: more per node would be reserved and sit idle."""
    slurm = raw.get("slurm")
    gpus = slurm.get("gpus_per_node") if isinstance(slurm, Mapping) else None
    if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 1:
        return [("slurm.gpus_per_node",
                 f"slurm.gpus_per_node: {gpus} GPUs would sit idle: a job trains on one GPU (the 3 paths of a "
                 "fairness cycle run one after another); use 1, and run trials side by side with --sweep "
                 "(one job array)")]
    return []


def validation_errors(raw: Mapping[str, Any], schema: Mapping[str, Any]) -> List[str]:
    """All schema violations of ``raw`` as readable lines, in document order."""
    return [line for _, line in _validation_problems(raw, schema)]


def _cross_field_errors(raw: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """Rules JSON Schema cannot state locally."""
    lines = []
    data = raw.get("data", {})
    if data.get("source") == "shards" and not data.get("shards_dir"):
        lines.append(("data.shards_dir", "data.shards_dir: required when data.source is 'shards'"))
    extra = raw.get("slurm", {}).get("additional_parameters", {})
    for key in extra:
        owner = RESERVED_SBATCH.get(key.replace("-", "_"))
        if owner is not None:
            path = f"slurm.additional_parameters.{key}"
            lines.append((path, f"{path}: sbatch --{key.replace('_', '-')} is set by {owner}; "
                                "set it there instead of in additional_parameters"))
    return lines


def validate(raw: Mapping[str, Any], schema: Mapping[str, Any], origin: str = "config",
             options: Optional[Mapping[str, str]] = None) -> None:
    """Raise one ConfigError listing every violation of ``raw`` against ``schema``; ``options``: CLI key -> option.

    A value that came from the command line is blamed on its option (``--lr``),
    not on the config file it was merged into.
    """
    problems = _validation_problems(raw, schema)
    if not problems:
        return
    blamed = [_blame(path, options or {}) for path, _ in problems]
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


def _blame(path: str, options: Mapping[str, str]) -> Optional[str]:
    """The option that set ``path``, a section above it (``--set train={...}``) or a key below it (``--set a.b=1``)."""
    if path in options:
        return options[path]
    related = [option for key, option in options.items() if path.startswith(key + ".") or key.startswith(path + ".")]
    return related[0] if len(related) == 1 else None
