"""The ``efnas`` command group.

Subcommands live in their own modules and are imported only when invoked, so
``efnas --help`` and every ``--dry_run`` stay fast and never import
TensorFlow.  Domain errors become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Optional

import click

from edgeflownas import __version__
from edgeflownas.errors import EfnasError

# name -> ("module:attribute", one-line help shown by `efnas --help`)
COMMANDS: Dict[str, tuple] = {
    "data-check": ("edgeflownas.cli.data:data_check", "Scan FC2 train/val folders (or shards, or legacy lists) and report every bad sample."),
    "synth": ("edgeflownas.cli.data:synth", "Write a FlyingChairs-like synthetic dataset in exact FC2 layout (tests, demo, benchmarks)."),
    "pack": ("edgeflownas.cli.data:pack", "Pack FC2 folders into sharded HDF5 with a manifest and checksums."),
    "train": ("edgeflownas.cli.train:train", "Train the strict-fairness supernet (tf.compat.v1 graph)."),
    "demo": ("edgeflownas.cli.demo:demo", "Whole job on a small synthetic FC2 set: synth -> data-check -> pack -> train --fast_mode (a few CPU minutes)."),
    "submit": ("launcher.cli:submit", "Submit training to SLURM via submitit inside Apptainer."),
    "status": ("launcher.cli:status", "Show an experiment's SLURM jobs: state, requeues, epoch, best mean_epe_12, run dir."),
    "config": ("edgeflownas.cli.config:config", "Validate or show a config against the JSON Schema."),
    "arch": ("edgeflownas.cli.arch:arch", "Decode an arch code and report its parameters and FLOPs."),
    "eval": ("edgeflownas.cli.eval:eval_command", "Evaluate subnets of a trained supernet: EPE, 1/3/5 px outliers, params, FLOPs."),
    "report": ("edgeflownas.cli.report:report", "Write PNG figures and a self-contained HTML report for a run directory."),
}


class EfnasCommandError(click.ClickException):
    """Carries an EfnasError's message and exit code through click."""

    def __init__(self, error: EfnasError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EfnasError as error:
            raise EfnasCommandError(error) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="efnas")
def main() -> None:
    """efnas: train an EdgeFlowNet one-shot NAS supernet for optical flow on
    FlyingChairs2, locally or on SLURM.

    Typical flow: data-check -> pack -> train (or submit).  Every config is
    validated against schemas/supernet_config.schema.json before anything runs.
    """


def not_implemented(command: str, issue: str) -> None:
    """Refuse to run a command that is declared but not built yet."""
    from edgeflownas.errors import NotImplementedCommandError

    raise NotImplementedCommandError(f"'efnas {command}' is not implemented yet ({issue}); nothing was done")
