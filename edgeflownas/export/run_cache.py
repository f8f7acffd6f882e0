"""The exports ``efnas infer --run`` keeps in ``RUN/exports/<subnet>-<key>``, reused while they are intact.

``<key>`` is a digest of the subnet's code and the run's scoring settings
(checkpoint, its weights' sha256, the BN-recalibration batches and seed), the
things the exported weights depend on: a checkpoint saved anew gets a new
folder.  A folder is reused when its manifest names this checkpoint's weights
and this subnet and its SavedModel matches the sha256 the manifest records;
otherwise it is exported again in its place.  The export itself is
``export_run``'s (built beside the folder, renamed into place when complete),
so nothing goes to the system temp directory and a killed call leaves only a
staging folder that the next call removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

from edgeflownas.atomic_io import is_no_space, make_dirs
from edgeflownas.errors import ConfigError, EfnasError, ExportError, NoSpaceError
from edgeflownas.export.manifest import MANIFEST_FILE, read_manifest, verified_file
from edgeflownas.locks import LOCK_NAME
from edgeflownas.nas.arch_codec import ArchCode, arch_name

EXPORTS_DIR = "exports"
FORMAT = "saved_model"


def cache_folder(run, code: ArchCode) -> Path:
    """``RUN/exports/<subnet>-<key>`` of a ``TrainedRun`` and a code (the key: code and scoring settings)."""
    settings = {"arch_code": list(code), "format": FORMAT, "scoring": run.scoring().to_dict()}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return run.run_dir / EXPORTS_DIR / f"{arch_name(code)}-{key}"


def exported_model(run_dir: Path, selector: Optional[str],
                   log: Callable[[str], None] = lambda line: None) -> Path:
    """The SavedModel export of subnet ``selector`` of ``run_dir``'s best checkpoint: reused if intact, else made."""
    from edgeflownas.export.api import export_run
    from edgeflownas.export.source import chosen_code
    from edgeflownas.train.trained_run import TrainedRun

    run = TrainedRun.open(Path(run_dir))
    code = chosen_code(run, selector)
    folder = cache_folder(run, code)
    if (folder / MANIFEST_FILE).exists():
        problem = _problem(folder, run.weights_sha256, code)
        if problem is None:
            log(f"using the export {folder} made earlier (manifest and sha256 match the checkpoint)")
            return folder
        log(f"{folder} {problem}: exporting it again")
        shutil.rmtree(folder)
    elif folder.exists() and (not folder.is_dir() or any(p.name != LOCK_NAME for p in folder.iterdir())):
        raise ConfigError(f"{folder} holds no {MANIFEST_FILE}: it is not an export of efnas; move it away "
                          f"(efnas infer --run keeps its exports in {folder.parent})")
    created = _make_exports_dir(folder.parent, run_dir)
    try:
        export_run(run_dir, arch_name(code), folder, (FORMAT,), log=log)
    except BaseException as error:
        if created is not None and not any(folder.parent.iterdir()):
            folder.parent.rmdir()
        if isinstance(error, NoSpaceError):
            raise NoSpaceError(f"no space left on {folder.parent}: efnas infer --run keeps its export there and "
                               "nothing of it was left; free space and run it again") from None
        raise
    again = _problem(folder, run.weights_sha256, code)
    if again is not None:  # the checkpoint was read anew by the export
        shutil.rmtree(folder, ignore_errors=True)
        raise ExportError(f"{folder} {again} right after the export: was the run saved again meanwhile (still "
                          "training)? the export was removed; run the command again")
    return folder


def _problem(folder: Path, weights_sha256: str, code: ArchCode) -> Optional[str]:
    """Why the export in ``folder`` cannot be reused, None if it can."""
    try:
        manifest = read_manifest(folder)
        if not isinstance(manifest, dict):
            return f"is damaged ({folder / MANIFEST_FILE} holds no JSON object)"
        if manifest.get("checkpoint_sha256") != weights_sha256 or manifest.get("arch_code") != list(code):
            return "was exported from other weights or another subnet"
        verified_file(folder, manifest, FORMAT)
    except EfnasError as error:
        return f"is damaged ({error})"
    return None


def _make_exports_dir(exports: Path, run_dir: Path) -> Optional[Path]:
    """Create ``RUN/exports`` if needed (the folder this call created, or None); ConfigError if it takes no files."""
    try:
        created = make_dirs(exports)
    except OSError as error:
        if is_no_space(error):
            raise NoSpaceError(f"no space left on {exports}: efnas infer --run keeps its export there; free space "
                               "and run it again") from None
        created, problem = None, error.strerror or str(error)
    else:
        problem = None if os.access(exports, os.W_OK | os.X_OK) else "no permission or a read-only file system"
    if problem is not None:
        raise ConfigError(f"{exports} cannot be written ({problem}): efnas infer --run keeps its export there; "
                          f"make one with efnas export --run {run_dir} --arch ARCH --out DIR and give --model DIR")
    return created
