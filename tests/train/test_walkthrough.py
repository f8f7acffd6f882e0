"""The README's walk-through, command by command, on the demo's run at tiny sizes; the demo prints the same chain."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeflownas.data.io import read_flo

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_commands():
    """The efnas command lines of the README's walk-through block (continuations joined, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Walk-through"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(" ".join(line.split()))
    return lines


def test_the_readme_walkthrough_runs_on_the_demos_run(cli, tiny_run, tmp_path, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_run))
    tiny = {"demo": ["--config", config, "--train_samples", 12, "--val_samples", 4, "--warmup_epochs", 1,
                     "--num_epochs", 1, "--batch_size", 2],
            "retrain": ["--num_epochs", 1], "report": ["--flow_samples", 1]}
    commands = walkthrough_commands()
    assert [line.split()[:2] for line in commands] == [
        ["efnas", "demo"], ["efnas", "eval"], ["efnas", "search"], ["efnas", "retrain"], ["efnas", "export"],
        ["efnas", "infer"], ["efnas", "infer"], ["efnas", "report"], ["tensorboard", "--logdir"]]
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for line in commands[:-1]:
        args = shlex.split(line)[1:]
        result = cli(*args, *tiny.get(args[0], []))
        assert result.exit_code == 0, f"{line}\n{result.output[-3000:]}"
        outputs.setdefault(args[0], []).append(result.output)

    demo = Path("demo")
    # The demo's closing lines are the walk-through's commands with its own folder.
    printed = outputs["demo"][0].split("next (the README's walk-through on this run):\n", 1)[1]
    printed = [" ".join(line.split()) for line in printed.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert printed == [line for line in commands if not line.startswith(("efnas demo", "efnas report"))]

    # Each step left what the next one reads, and what it printed is what it wrote.
    pool = json.loads((demo / "runs" / "demo" / "eval_pool_12.json").read_text())["subnets"]
    assert all(subnet["name"] in outputs["eval"][0] for subnet in pool) and "EPE" in outputs["eval"][0]
    front = json.loads((demo / "runs" / "demo" / "search" / "front.json").read_text())
    assert front["ranked"]
    best = json.loads((demo / "runs" / "best" / "train_manifest.json").read_text())["resolved_config"]
    assert best["train"]["supernet_mode"] == "fixed_arch"
    chosen = next(e for e in front["front_macs"] if e["name"] == front["ranked"][0])
    assert best["model"]["fixed_arch_code"] == list(chosen["arch_code"])
    manifest = json.loads((demo / "model" / "export_manifest.json").read_text())
    assert set(manifest["formats"]) == {"saved_model", "tflite", "tflite_int8"}
    flow = read_flo(demo / "flow.flo")
    assert flow.shape == (32, 48, 2) and np.isfinite(flow).all() and (demo / "flow.png").is_file()
    assert len(list((demo / "flows").glob("*.flo"))) == 4
    assert (demo / "runs" / "demo" / "report" / "report.html").is_file()
    # TensorBoard: flow pictures in the demo's run, and one tag set for the supernet and the retrain.
    import tensorflow as tf

    tags = {}
    for path in (demo / "runs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                name = value.tag.rsplit("/", 1)[0] if value.HasField("image") else value.tag
                tags.setdefault(path.relative_to(demo / "runs").parts[0], set()).add(name)
    assert {"flow/best", "flow/baseline", "hp_metric", "eval/mean_epe"} <= tags["demo"]
    # a supernet's own figures: the pool's spread, fairness and the baseline's flow (a fixed-arch run has none)
    supernet_only = ("eval_subnet/", "flow/baseline", "eval/std_epe", "train/fairness_gap")
    shared = {tag for tag in tags["demo"] if not tag.startswith(supernet_only)}
    assert shared == {tag for tag in tags["best"] if not tag.startswith("eval_subnet/")}
