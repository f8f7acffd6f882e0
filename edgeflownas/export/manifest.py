"""``export_manifest.json``: what an export directory holds and where it came from (written and read here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import ConfigError

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
