"""Running the job inside an Apptainer image.

The job's python becomes ``apptainer exec --nv --bind <paths> IMAGE python3``.
submitit pickles the job with cloudpickle, so the image's Python (major.minor)
and submitit version must equal the submitting side's: ``probe_image`` runs the
image's interpreter once and refuses the submission on a mismatch.

Requeue happens on the host side.  ``scontrol`` talks to slurmctld through the
site's SLURM libraries, config and munge socket, none of which an image built
from a TensorFlow base has, and binding them in is site-specific.  So inside
the container ``launcher.job_entry`` replaces submitit's ``scontrol
requeue`` call by a flag file; the sbatch script (on the host) checks the flag
after the step ends and runs ``scontrol requeue`` itself.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from edgeflownas.errors import SubmitError

APPTAINER = "apptainer"
IMAGE_PYTHON = "python3"
REQUEUE_FLAG_ENV = "EFNAS_REQUEUE_FLAG"
BUILD_HINT = "build it with 'apptainer build --fakeroot efnas.sif containers/Apptainer.def'"
_PROBE = (
    "import json, platform, submitit, edgeflownas, launcher.job; "
    "print(json.dumps({'python': platform.python_version(), 'submitit': submitit.__version__, "
    "'efnas': edgeflownas.__version__}))"
)


@dataclass(frozen=True)
class Container:
    """An image checked against the submitting side, with the host paths it needs bound."""

    image: Path
    binds: tuple
    versions: Dict[str, str]

    def python(self) -> str:
        """The job's python command (submitit's ``python`` string), every part shell-quoted."""
        parts = [APPTAINER, "exec", "--nv"]
        if self.binds:
            parts += ["--bind", ",".join(self.binds)]
        return " ".join(shlex.quote(p) for p in parts + [str(self.image), IMAGE_PYTHON])

    def setup_lines(self, log_dir: Path) -> List[str]:
        """sbatch lines before the step: where the in-container job asks for a requeue."""
        return [f'export {REQUEUE_FLAG_ENV}={shlex.quote(str(log_dir))}/.requeue_"$SLURM_JOB_ID"']

    def teardown_lines(self) -> List[str]:
        """sbatch lines after the step: the host-side requeue if the job asked for one, else the step's status."""
        return [
            "efnas_step_status=$?",
            f'if [ -e "${REQUEUE_FLAG_ENV}" ]; then',
            f'  rm -f "${REQUEUE_FLAG_ENV}"',
            '  scontrol requeue "$SLURM_JOB_ID"',
            "fi",
            'exit "$efnas_step_status"',
        ]


def bind_paths(paths: Iterable[Path]) -> tuple:
    """Distinct absolute paths to bind, leaving out any path inside another one."""
    unique = sorted({str(Path(p).absolute()) for p in paths})
    kept: List[str] = []
    for path in unique:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return tuple(kept)


def require_image(image: Path) -> None:
    """SubmitError unless the image file exists."""
    if not image.is_file():
        raise SubmitError(f"container image {image} does not exist: {BUILD_HINT}, or fix --container / slurm.container_image")


def probe_image(image: Path) -> Dict[str, str]:
    """Python, submitit and efnas versions inside the image (runs the image's python once)."""
    require_image(image)
    apptainer = shutil.which(APPTAINER)
    if apptainer is None:
        raise SubmitError(f"'{APPTAINER}' not found on PATH: it is needed to run {image} (load the apptainer module)")
    command = [apptainer, "exec", str(image), IMAGE_PYTHON, "-c", _PROBE]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise SubmitError(f"probing {image} took over 600 s: {' '.join(command[:4])} ...") from None
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        detail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SubmitError(f"cannot run efnas inside {image} ({IMAGE_PYTHON} exited {out.returncode}: {detail}); {BUILD_HINT}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise SubmitError(f"unexpected answer from {IMAGE_PYTHON} inside {image}: {lines[-1][:200]}") from None


def check_versions(image: Path, inside: Dict[str, str]) -> None:
    """Refuse when the image's Python major.minor or submitit version differs from this side's."""
    import submitit

    here = {"python": platform.python_version(), "submitit": submitit.__version__}
    problems = []
    if inside.get("python", "").split(".")[:2] != here["python"].split(".")[:2]:
        problems.append(f"Python {inside.get('python')} in the image vs {here['python']} here")
    if inside.get("submitit") != here["submitit"]:
        problems.append(f"submitit {inside.get('submitit')} in the image vs {here['submitit']} here")
    if problems:
        raise SubmitError(
            f"container image {image} does not match the submitting environment ({'; '.join(problems)}): "
            "submitit's pickles only load under the same Python and submitit; submit from a venv with the "
            "image's versions or rebuild the image"
        )


def prepare(image: Path, binds: Sequence[Path]) -> Container:
    """Check an image (exists, runs, versions match) and attach its bind paths."""
    inside = probe_image(image)
    check_versions(image, inside)
    return Container(image=image, binds=bind_paths(binds), versions=inside)
