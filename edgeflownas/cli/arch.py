"""``efnas arch describe``: decode an arch code and report its parameters and MACs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

if TYPE_CHECKING:
    from edgeflownas.model.cost import SubnetCost


@click.group()
def arch() -> None:
    """Decode arch codes and report subnet cost."""


@arch.command()
@click.argument("code")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Count at a trained run's input size and model (its recorded config), from the run's exact "
                   "cost table (counted once, kept in <run>/cost_table.json): the figures eval, search and report "
                   "give.")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="With --run: the checkpoint whose recorded config to use.")
@click.option("--height", type=int, default=None, help="Input height (default: data.input_height of the config, 180).")
@click.option("--width", type=int, default=None, help="Input width (default: data.input_width of the config, 240).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Take the model section and input size from this YAML config (default: the shipped one).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def describe(code: str, run_dir: Optional[Path], which: str, height: Optional[int], width: Optional[int],
             config_path: Optional[Path], as_json: bool) -> None:
    """Decode CODE and print its structure, parameters and MACs (multiply-accumulates).

    CODE is '0,0,0,0,2,1,2,2,2', '[0,0,0,0,2,1,2,2,2]' or a compact name like
    'a000021222'.  With --run RUN, at the run's input size and model width,
    from the run's cost table (additive over blocks, equal to the graph's
    count).  Otherwise parameters and multiply-adds are counted on the built
    fixed-arch graph at the given input size (per image pair).  Cost is given
    in MACs everywhere in efnas; FLOPs = 2 x MACs.
    """
    from edgeflownas.config import resolve
    from edgeflownas.errors import ConfigError
    from edgeflownas.nas.arch_codec import describe as describe_code
    from edgeflownas.nas.arch_codec import parse_arch_code

    parsed = parse_arch_code(code)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if run_dir is not None:
        if height is not None or width is not None or config_path is not None:
            raise ConfigError("--run takes the input size and model from the run: drop --height/--width/--config")
        from edgeflownas.train.trained_run import TrainedRun

        cost = TrainedRun.open(run_dir, which).cost_table(lambda line: click.echo(line, err=True)).subnet_cost(parsed)
    else:
        resolved = resolve(config_path)
        height = height if height is not None else resolved.config.data.input_height
        width = width if width is not None else resolved.config.data.input_width
        from edgeflownas.model.cost import subnet_cost

        cost = subnet_cost(parsed, height, width, resolved.config.model)
    structure = describe_code(parsed)
    if as_json:
        click.echo(json.dumps({**structure, "cost": cost.as_dict()}, indent=2))
        return
    click.echo(format_description(structure, cost))


def format_description(structure: dict, cost: SubnetCost) -> str:
    """The human-readable table of ``efnas arch describe``."""
    code_text = ",".join(str(v) for v in structure["arch_code"])
    baseline = "  (EdgeFlowNet baseline)" if structure["is_edgeflownet_baseline"] else ""
    outputs = ", ".join("x".join(str(d) for d in shape) for shape in cost.output_shapes)
    lines = [
        f"arch {structure['name']}  [{code_text}]{baseline}",
        f"input {cost.height}x{cost.width} (img0+img1, 6 channels) -> outputs {outputs}",
        "",
        f"{'block':6s} {'choice':14s} {'params':>10s} {'MACs':>15s}  role",
        f"{'stem':6s} {'fixed':14s} {cost.block_params['stem']:>10,d} {cost.block_macs['stem']:>15,d}  "
        "Conv-BN-ReLU 7x7 s2, Conv-BN-ReLU 5x5 s2",
    ]
    for block in structure["blocks"]:
        name = block["block"]
        lines.append(f"{name:6s} {block['text']:14s} {cost.block_params[name]:>10,d} {cost.block_macs[name]:>15,d}  "
                     f"{block['role']}")
    lines += [
        f"{'total':6s} {'':14s} {cost.params:>10,d} {cost.macs:>15,d}",
        "",
        f"parameters: {cost.params:,d} (trainable; supernet with all options: {cost.supernet_params:,d})",
        f"MACs (multiply-accumulates of all convolutions, per image pair): {cost.macs:,d} = {cost.macs / 1e9:.3f} "
        f"GMACs (FLOPs = 2 x MACs = {2 * cost.macs / 1e9:.3f} GFLOPs)",
    ]
    return "\n".join(lines)
