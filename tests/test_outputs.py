"""Every option that names an output, found in the command registry: it never replaces a run's or a dataset's
files or the command's own inputs, even with --overwrite (edgeflownas.outputs).

The options are found by their type (``OutputPath``), so a new output option is covered the day it appears;
``ARGV`` says how to reach each one, and a test fails when an output option has no entry there, or when an
option whose name says "output" is not an ``OutputPath``.
"""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import Dict, List, Tuple

import click
import pytest

from edgeflownas import atomic_io
from edgeflownas.cli import main
from edgeflownas.errors import ConfigError, NotWritableError
from edgeflownas.outputs import OutputPath, check_output_file, check_output_folder, protected_kind

# (command, option's parameter name) -> the command line that reaches that option's check; OUT is the target.
# RUN is a run directory, TRAIN/VAL an FC2 dataset's split folders, IMG0/IMG1 images, MODEL an export folder.
ARGV: Dict[Tuple[str, str], List[str]] = {
    ("eval", "out"): ["eval", "--run", "RUN", "--arch", "baseline", "--out", "OUT", "--overwrite"],
    ("data-check", "report"): ["data-check", "--train_dir", "TRAIN", "--val_dir", "VAL", "--out", "OUT",
                               "--overwrite"],
    ("infer", "out"): ["infer", "IMG0", "IMG1", "--model", "MODEL", "--out", "OUT", "--overwrite"],
    ("infer", "png"): ["infer", "IMG0", "IMG1", "--model", "MODEL", "--out", "NEW.flo", "--png", "OUT",
                       "--overwrite"],
    ("search", "out_dir"): ["search", "--run", "RUN", "--out", "OUT"],
    ("report", "out_dir"): ["report", "--run", "RUN", "--out", "OUT"],
    ("export", "out_dir"): ["export", "--run", "RUN", "--arch", "baseline", "--out", "OUT"],
    ("pack", "out"): ["pack", "--src", "DATA", "--out", "OUT"],
    ("synth", "out"): ["synth", "--out", "OUT", "--train_samples", "1", "--val_samples", "1"],
    ("demo", "out"): ["demo", "--out", "OUT"],
    ("latency", "out"): ["latency", "--probes", "MODEL", "--out", "OUT"],
    ("latency", "probes_out"): ["latency", "--run", "RUN", "--probes_out", "OUT", "--build_only"],
}
# Options whose name mentions an output but which are not a path the user names for this command's result.
NOT_OUTPUTS = {
    ("demo", "with_report"): "a switch",
    ("train", "output_root"): "the root of run directories, guarded by the run directory's own rules",
    ("retrain", "output_root"): "as train",
    ("submit", "output_root"): "as train",
    ("status", "output_root"): "read, not written",
}


def registry_options():
    """(command path, click parameter) of every parameter of every command in the registry."""
    ctx = click.Context(main)
    found = []

    def walk(command, names):
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), names + [name])
        else:
            found.extend((" ".join(names), param) for param in command.params)

    walk(main, [])
    return found


def output_options() -> List[Tuple[str, str, OutputPath]]:
    return [(name, param.name, param.type) for name, param in registry_options() if isinstance(param.type, OutputPath)]


def test_every_output_option_is_an_output_path_and_is_covered():
    outputs = {(name, option) for name, option, _ in output_options()}
    assert outputs == set(ARGV), "add the new output option to ARGV (and guard it with edgeflownas.outputs)"
    named_like_output = {(name, param.name) for name, param in registry_options()
                         if any(word in param.name for word in ("out", "png", "report"))}
    assert named_like_output - outputs == set(NOT_OUTPUTS), "an option named like an output is not an OutputPath"


def snapshot(root: Path) -> Dict[str, str]:
    """Every file under ``root`` and the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def world(tmp_path):
    """A run directory, an FC2 dataset, two images and an export folder (fakes: every check happens first)."""
    run = tmp_path / "runs" / "base"
    (run / "supernet_last.ckpt").mkdir(parents=True)
    (run / "train_manifest.json").write_text('{"seed": 1}\n')
    (run / "supernet_last.ckpt" / "state.json").write_text('{"epoch": 2}\n')
    (run / "eval_epe_history.csv").write_text("epoch,mean_epe_12\n1,3.0\n")
    data = tmp_path / "FC2"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        for name in ("0000000-img_0.png", "0000000-img_1.png", "0000000-flow_01.flo"):
            (data / split / name).write_bytes(b"sample " + name.encode())
    images = tmp_path / "pair"
    images.mkdir()
    (images / "a.png").write_bytes(b"png a")
    (images / "b.png").write_bytes(b"png b")
    model = tmp_path / "model"
    model.mkdir()
    (model / "export_manifest.json").write_text("{}\n")
    places = {"RUN": run, "DATA": data, "TRAIN": data / "train", "VAL": data / "val", "IMG0": images / "a.png",
              "IMG1": images / "b.png", "MODEL": model, "NEW.flo": tmp_path / "new.flo"}
    return tmp_path, places


def targets(kind: str, suffixes, places) -> Dict[str, Path]:
    """Existing places an output must never take: inside a run directory, inside the data, an input."""
    suffix = suffixes[0] if suffixes else ".json"
    if kind == "folder":
        return {"run directory": places["RUN"], "dataset": places["TRAIN"], "dataset root": places["DATA"]}
    inside_run = places["RUN"] / f"extra{suffix}"
    inside_data = places["TRAIN"] / f"0000001{suffix}"
    input_image = places["IMG1"] if suffix == ".png" else places["MODEL"] / f"model{suffix}"
    for path in (inside_run, inside_data, input_image):
        if not path.exists():
            path.write_bytes(b"precious " + path.name.encode())
    return {"run directory": inside_run, "dataset": inside_data, "input": input_image}


@pytest.mark.parametrize("command, option", sorted(ARGV))
def test_an_output_never_replaces_a_run_a_dataset_or_an_input(cli, world, command, option):
    root, places = world
    kind = dict(((n, o), t) for n, o, t in output_options())[(command, option)]
    for label, target in targets("folder" if kind.kind == "folder" else "file", kind.suffixes, places).items():
        before = snapshot(root)
        argv = [str(target) if arg == "OUT" else str(places.get(arg, arg)) for arg in ARGV[(command, option)]]
        result = cli(*argv)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, (label, argv, result.output)
        assert len(lines) == 1 and lines[0].startswith("Error: "), (label, result.output)
        assert str(target.name) in lines[0], (label, lines[0])
        assert snapshot(root) == before, f"{command} {option} -> {label} changed files"


def test_an_existing_file_needs_overwrite_and_a_device_is_refused(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("mine\n")
    with pytest.raises(ConfigError, match="exists: give a new file name, or add --overwrite"):
        check_output_file(target, "--out", (".csv",))
    assert check_output_file(target, "--out", (".csv",), overwrite=True) == target
    device = tmp_path / "full.csv"
    device.symlink_to("/dev/full")
    with pytest.raises(ConfigError, match="not a regular file"):
        check_output_file(device, "--out", (".csv",), overwrite=True)


def test_own_earlier_output_is_replaced_without_overwrite(tmp_path):
    target = tmp_path / "report.json"
    target.write_text('{"format": "mine"}')
    assert check_output_file(target, "--out", (".json",), own=lambda p: "mine" in p.read_text()) == target


def test_two_outputs_of_one_command_are_never_the_same_file(tmp_path):
    with pytest.raises(ConfigError, match="also another output"):
        check_output_file(tmp_path / "o" / "same.png", "--png", (".png",), others=[tmp_path / "o" / "same.png"])


def test_a_folder_under_a_file_and_a_read_only_folder_are_refused_before_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_file(tmp_path / "file" / "out.flo", "--out", (".flo",))
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "out", "--out")


def test_a_read_only_folder_is_refused_up_front_and_at_write_time(read_only_folder):
    with pytest.raises(ConfigError, match=f"cannot write in {read_only_folder}"):
        check_output_file(read_only_folder / "flow.flo", "--out", (".flo",))
    with pytest.raises(NotWritableError, match=f"cannot write {read_only_folder / 'flow.flo'}"):
        atomic_io.write_bytes_atomic(read_only_folder / "flow.flo", b"x")


def test_protected_kinds_are_recognised(world):
    _, places = world
    assert protected_kind(places["RUN"]) == "run directory"
    assert protected_kind(places["RUN"] / "supernet_last.ckpt") == "checkpoint"
    assert protected_kind(places["TRAIN"]) == "FC2 data folder"
    assert protected_kind(places["DATA"]) == "dataset root"
    assert protected_kind(places["MODEL"]) == "export directory"
    assert protected_kind(places["IMG0"].parent) is None
    assert errno.EROFS in atomic_io.NOT_WRITABLE_ERRNOS


def test_a_folder_of_fixed_names_is_rewritten_only_when_it_is_the_commands_own(tmp_path, cli):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "training_curves.png").write_bytes(b"someone's picture")
    with pytest.raises(ConfigError, match="holds files but no report.html"):
        check_output_folder(theirs, "--out", rewrites="report.html")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "report.html").write_text("<html>")
    assert check_output_folder(tmp_path / "earlier", "--out", rewrites="report.html") == tmp_path / "earlier"
    result = cli("report", "--run", tmp_path / "no_run", "--out", theirs)
    assert result.exit_code == 2 and "holds files but no report.html" in result.output, result.output
    assert (theirs / "training_curves.png").read_bytes() == b"someone's picture"


def test_data_check_replaces_its_own_report_but_not_another_file(cli, tmp_path):
    from edgeflownas.data.synth import write_dataset

    write_dataset(tmp_path / "fc2", train=2, val=1, seed=0, height=32, width=48)
    args = ["data-check", "--train_dir", tmp_path / "fc2" / "train", "--val_dir", tmp_path / "fc2" / "val"]
    assert cli(*args, "--out", tmp_path / "r.json").exit_code == 0
    assert cli(*args, "--out", tmp_path / "r.json").exit_code == 0  # its own earlier report
    (tmp_path / "notes.json").write_text('{"mine": true}')
    refused = cli(*args, "--out", tmp_path / "notes.json")
    assert refused.exit_code == 2 and "exists: give a new file name, or add --overwrite" in refused.output
    assert (tmp_path / "notes.json").read_text() == '{"mine": true}'
    assert cli(*args, "--out", tmp_path / "notes.json", "--overwrite").exit_code == 0
    assert '"format": "efnas-data-check/1"' in (tmp_path / "notes.json").read_text()
