"""``export_manifest.json``: what an export directory holds and where it came from (written and read here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import ConfigError, ExportError

MANIFEST_FILE = "export_manifest.json"
# format -> file or directory inside the export directory
FORMAT_FILES = {"saved_model": "saved_model", "tflite": "model_float.tflite", "tflite_int8": "model_int8.tflite"}
FORMATS = tuple(FORMAT_FILES)


def parse_formats(text: str) -> tuple:
    """The formats of ``--format`` ('saved_model,tflite,tflite_int8'), in that order, validated."""
    asked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in asked if name not in FORMAT_FILES]
    if unknown or not asked:
        raise ConfigError(f"--format {text!r}: unknown format {', '.join(unknown) or '(none given)'}; "
                          f"expected a comma list of {', '.join(FORMATS)}")
    return tuple(name for name in FORMATS if name in asked)


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
    for file in files:
        if Path(path).is_dir():
            digest.update(str(file.relative_to(path)).encode("utf-8"))
        digest.update(file.read_bytes())
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def write_manifest(out_dir: Path, doc: Dict[str, Any]) -> Path:
    """Write ``out_dir/export_manifest.json`` atomically."""
    path = Path(out_dir) / MANIFEST_FILE
    write_json_atomic(path, doc)
    return path


def read_manifest(export_dir: Path) -> Dict[str, Any]:
    """The manifest of an export directory; ConfigError naming it if missing or damaged."""
    path = Path(export_dir) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: --model must be a directory written by "
                          "'efnas export --out DIR'") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}): export the model again") from None


def verified_file(export_dir: Path, manifest: Dict[str, Any], fmt: str) -> Path:
    """The file (or folder) of ``fmt`` in an export directory after checking it against the manifest's sha256.

    ConfigError if the manifest does not list ``fmt``; ExportError naming the file if it is missing or its
    contents differ from what the export wrote (damaged, truncated or replaced), before anything loads it.
    """
    entry = manifest.get("formats", {}).get(fmt)
    manifest_path = Path(export_dir) / MANIFEST_FILE
    if not isinstance(entry, dict):
        raise ConfigError(f"{manifest_path} lists no {fmt} (it has {', '.join(manifest.get('formats', {})) or 'none'}):"
                          f" export it with --format {fmt}, or pick one of those with --format")
    path = Path(export_dir) / FORMAT_FILES[fmt]
    if not path.exists():
        raise ExportError(f"{path} does not exist although {manifest_path} lists it: export the model again")
    if sha256_of(path) != entry.get("sha256"):
        raise ExportError(f"{path} is damaged or was replaced: its sha256 differs from the one recorded in "
                          f"{manifest_path}; export the model again")
    return path
