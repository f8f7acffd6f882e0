"""Strict YAML reading for config and sweep files.

``yaml.safe_load`` alone accepts three things a config file must not hold:
bytes that are not UTF-8 text, duplicate keys (PyYAML silently keeps the last
one, so an edit near the top of a file can be undone by a forgotten line at the
bottom) and alias bombs (a few lines of nested ``&a [*a, *a, ...]`` that expand
to billions of values; PyYAML builds them as shared objects in microseconds, but
every later walk -- schema validation, copying, hashing -- hangs and eats
memory).  This module composes the document into YAML nodes, checks it, and
only then builds Python objects.  Anchors and aliases stay usable for sharing
a value or two.

One number rule for config files, sweep files and ``--set`` values: PyYAML
follows YAML 1.1, which reads ``1e-4`` (no dot) as a string; the loader here
also reads a float written with an exponent and no dot as a number, as YAML 1.2
and Python do.  ``parse_value`` reads one command-line value with the same
loader, and ``dump_yaml`` writes configs that read back to the same values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from edgeflownas.errors import ConfigError

MAX_FILE_BYTES = 1 << 20      # a full config is ~4 KB; a sweep file a few KB
MAX_EXPANDED_NODES = 100_000  # values after aliases are expanded; a config has a few hundred
MAX_DEPTH = 32                # configs nest 3 levels
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# Floats YAML 1.1 leaves as strings: an exponent with no dot (1e-4, 1E5, -2e3); .5e-3 and 1.0e-4 it already reads.
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (PyYAML's own SafeLoader stays untouched)."""


class StrictDumper(yaml.SafeDumper):
    """SafeDumper that quotes strings StrictLoader would read as numbers (a name '1e5' stays a string)."""


for _cls in (StrictLoader, StrictDumper):
    _cls.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+0123456789"))


class _Refusal(Exception):
    """A reason to refuse the document, with the line it was found at (1-based, or None)."""

    def __init__(self, message: str, line: Optional[int] = None) -> None:
        super().__init__(message)
        self.line = line


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _key_label(path: List[str], key: str) -> str:
    return ".".join(path + [key])


class _TreeCheck:
    """Walks the composed node graph once (memoised), as the schema walk later would walk its expansion."""

    def __init__(self) -> None:
        self.sizes: Dict[int, int] = {}
        self.open: set = set()

    def size(self, node: yaml.Node, path: List[str]) -> int:
        """Values ``node`` expands to; refuses cycles, depth, duplicate keys and oversized expansions."""
        ident = id(node)
        if ident in self.sizes:
            return self.sizes[ident]
        if ident in self.open:
            raise _Refusal(f"'{'.'.join(path) or '<top level>'}' refers to itself through an alias", _line(node))
        if len(path) > MAX_DEPTH:
            raise _Refusal(f"'{'.'.join(path[:3])}...' is nested more than {MAX_DEPTH} levels deep", _line(node))
        self.open.add(ident)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(self.size(child, path + [str(i)]) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            total += self._mapping_size(node, path)
        self.open.discard(ident)
        if total > MAX_EXPANDED_NODES:
            raise _Refusal(
                f"'{'.'.join(path) or '<top level>'}' expands to more than {MAX_EXPANDED_NODES} values through "
                "YAML aliases (*name): write the values out instead of nesting aliases", _line(node))
        self.sizes[ident] = total
        return total

    def _mapping_size(self, node: yaml.MappingNode, path: List[str]) -> int:
        seen: Dict[Any, int] = {}
        total = 0
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise _Refusal(
                        f"key '{_key_label(path, key_node.value)}' is given twice (lines {seen[key]} and "
                        f"{_line(key_node)}); YAML would silently keep the last one: delete one of them",
                        _line(key_node))
                seen[key] = _line(key_node)
                child_path = path + [key_node.value]
            else:
                total += self.size(key_node, path + ["<key>"])
                child_path = path + ["<merge>" if key_node.tag == _MERGE_TAG else "<key>"]
            total += self.size(value_node, child_path)
        return total


def _read_text(path: Path, kind: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{kind} {path} is {size} bytes, more than the {MAX_FILE_BYTES} a {kind} may hold: "
                              "pass the YAML file itself, not a data or binary file")
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {kind} {path}: {error.strerror}; check its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{kind} {path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}): "
            "is it a binary file? pass a YAML file"
        ) from None


def _compose_and_build(text: str) -> Any:
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _TreeCheck().size(node, [])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path, kind: str = "config file") -> Any:
    """Parse one YAML document from ``path`` after refusing binary, oversized, duplicate-key or alias-bomb input."""
    path = Path(path)
    text = _read_text(path, kind)
    try:
        return _compose_and_build(text)
    except _Refusal as refusal:
        where = f" at line {refusal.line}" if refusal.line else ""
        raise ConfigError(f"{kind} {path}{where}: {refusal}") from None
    except RecursionError:
        raise ConfigError(f"{kind} {path} is nested too deeply to be a config: pass a YAML mapping of sections") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{kind} {path} is not valid YAML{where}: {problem}") from None


def parse_value(text: str, origin: str) -> Any:
    """One value written on the command line (``--set key=VALUE``), read as the same value in a config file would be."""
    try:
        return _compose_and_build(text) if text.strip() else None
    except _Refusal as refusal:
        raise ConfigError(f"{origin}: {refusal}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: the value is not valid YAML ({problem}); quote a string value, "
                          "e.g. key='a: b'") from None


def dump_yaml(data: Any) -> str:
    """YAML text that ``read_yaml`` turns back into exactly ``data`` (block style, key order kept)."""
    return yaml.dump(data, Dumper=StrictDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
