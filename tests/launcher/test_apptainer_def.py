"""containers/Apptainer.def, checked statically (apptainer itself cannot be installed here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import submitit
from packaging.requirements import Requirement
from packaging.version import Version

import edgeflownas

REPO = Path(__file__).resolve().parents[2]
DEF_FILE = REPO / "containers" / "Apptainer.def"
REQUIRED_SECTIONS = ("arguments", "labels", "help", "files", "post", "environment", "runscript", "test")


def parse_def(text: str):
    """(header {key: value}, sections {name: body}) of an Apptainer definition file."""
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        match = re.match(r"^%(\w+)\s*$", line)
        if match:
            current = match.group(1)
            assert current not in sections, f"section %{current} appears twice"
            sections[current] = []
        elif current is None:
            if line.strip() and not line.startswith("#"):
                key, sep, value = line.partition(":")
                assert sep, f"header line is not 'Key: value': {line!r}"
                header[key.strip()] = value.strip()
        else:
            sections[current].append(line)
    return header, {name: "\n".join(body).strip() for name, body in sections.items()}


@pytest.fixture(scope="module")
def definition():
    return parse_def(DEF_FILE.read_text())


@pytest.fixture(scope="module")
def pins():
    """{package: specifier} of pyproject's requirement strings (tomllib needs Python 3.11)."""
    text = (REPO / "pyproject.toml").read_text()
    quoted = re.findall(r'"((?:tensorflow\[and-cuda\]|submitit)[<>=!~][^"]*)"', text)
    return {r.name: r.specifier for r in map(Requirement, quoted)}


def test_file_parses_and_has_every_section(definition):
    header, sections = definition
    assert header["Bootstrap"] == "docker"
    for name in REQUIRED_SECTIONS:
        assert sections.get(name), f"%{name} missing or empty"


def test_base_is_the_official_tensorflow_gpu_image_at_the_pinned_version(definition, pins):
    header, sections = definition
    match = re.fullmatch(r"tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu", header["From"])
    assert match, header["From"]
    version = match.group(1)
    assert Version(version) in pins["tensorflow"], f"{version} outside pyproject's {pins['tensorflow']}"
    assert f"efnas.tensorflow {version}" in sections["labels"]
    assert f"startswith('{version.rsplit('.', 1)[0]}.')" in sections["post"]


def test_submitit_default_matches_the_pin_and_this_environment(definition, pins):
    _, sections = definition
    default = re.search(r"^SUBMITIT_VERSION=(\S+)$", sections["arguments"], re.M).group(1)
    assert Version(default) in pins["submitit"]
    assert default == submitit.__version__, "the default image would be refused by efnas submit here"
    assert 'submitit=={{ SUBMITIT_VERSION }}' in sections["post"]


def test_efnas_is_installed_from_the_copied_sources(definition):
    _, sections = definition
    copied = [line.split()[0] for line in sections["files"].splitlines() if line.strip()]
    for source in copied:
        assert (REPO / source).exists(), f"%files copies {source}, which is not in the repository"
    assert {"edgeflownas", "launcher", "schemas", "configs", "tools/data_check", "pyproject.toml", "setup.py"} <= set(copied)
    assert "pip install --no-cache-dir -e /opt/efnas" in sections["post"]
    assert f"efnas.version {edgeflownas.__version__}" in sections["labels"]


def test_runscript_is_efnas_and_test_runs_help_and_the_shape_check(definition):
    _, sections = definition
    assert sections["runscript"] == 'exec efnas "$@"'
    assert "efnas --help" in sections["test"]
    module = re.search(r"python3 -m (edgeflownas\.\S*shape_check) --h 180 --w 240 --batch 2", sections["test"])
    assert module, sections["test"]
    assert (REPO / (module.group(1).replace(".", "/") + ".py")).is_file(), f"%test runs {module.group(1)}, which is missing"


def test_help_documents_the_fakeroot_build(definition):
    _, sections = definition
    assert "apptainer build --fakeroot efnas.sif containers/Apptainer.def" in sections["help"]
