"""The ``efnas`` command group.

Subcommands live in their own modules and are imported only when invoked, so
``efnas --help`` and every ``--dry_run`` stay fast and never import
TensorFlow.  Domain errors, a missing optional dependency (TensorFlow) and
output that cannot be written become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
from typing import Dict, List, Optional

import click

from edgeflownas import __version__
from edgeflownas.cli.process import exit_now, fewer_full_collections, skip_keras_preload
from edgeflownas.errors import EfnasError

# name -> ("module:attribute", one-line help shown by `efnas --help`)
COMMANDS: Dict[str, tuple] = {
    "data-check": ("edgeflownas.cli.data:data_check", "Scan FC2 train/val folders (or shards, or legacy lists) and report every bad sample."),
    "synth": ("edgeflownas.cli.data:synth", "Write a FlyingChairs-like synthetic dataset in exact FC2 layout (tests, demo, benchmarks)."),
    "pack": ("edgeflownas.cli.data:pack", "Pack FC2 folders into sharded HDF5 with a manifest and checksums."),
    "train": ("edgeflownas.cli.train:train", "Train the strict-fairness supernet (tf.compat.v1 graph)."),
    "demo": ("edgeflownas.cli.demo:demo", "The whole main job on a learnable synthetic FC2 set: synth -> data-check -> pack -> warm-up -> supernet -> report -> TFLite (~3 CPU minutes)."),
    "submit": ("edgeflownas.cli.submit:submit", "Submit training to SLURM via submitit inside Apptainer."),
    "status": ("edgeflownas.cli.status:status", "Show the runs of an experiment or a run dir (SLURM or local): state, epoch, best mean_epe_12, logs."),
    "config": ("edgeflownas.cli.config:config", "Validate or show a run or study config against its JSON Schema."),
    "arch": ("edgeflownas.cli.arch:arch", "Decode an arch code and report its parameters and MACs (FLOPs = 2 x MACs)."),
    "eval": ("edgeflownas.cli.eval:eval_command", "Evaluate subnets of a trained supernet: EPE, 1/3/5 px outliers, params, MACs."),
    "retrain": ("edgeflownas.cli.retrain:retrain", "Train one chosen subnet of a supernet run on its own (from scratch or the supernet's weights)."),
    "search": ("edgeflownas.cli.search:search", "Search a trained supernet for the Pareto front of EPE vs MACs/params (evolution, random, exhaustive)."),
    "study": ("edgeflownas.cli.study:study", "Ranking study: does the supernet rank subnets better than counting blocks? Stratified subnets, noise ceiling, trivial predictors, partial tau, verdict (local or SLURM)."),
    "export": ("edgeflownas.cli.export:export", "Export one subnet of a run (BN folded) as SavedModel, TFLite float and int8, each scored."),
    "latency": ("edgeflownas.cli.latency:latency", "Latency table of a run's block options on this device (TFLite float/int8, 1 and N threads), for a search on latency."),
    "infer": ("edgeflownas.cli.infer:infer", "Optical flow of image pairs (or a folder of FC2 pairs) with an exported model: .flo and PNG."),
    "report": ("edgeflownas.cli.report:report", "Write PNG figures and a self-contained HTML report for a run directory."),
}


# Top-level modules a command may import that an install can lack -> how to install them.
_INSTALL_TF = "install TensorFlow with pip install -e '.[cpu]' (GPU node: '.[gpu]'), or run bash scripts/setup.sh"
_INSTALL_LITERT = "install the LiteRT runtime with pip install -e '.[edge]' (or TensorFlow with '.[cpu]')"
_INSTALL_CORE = "reinstall efnas's dependencies with pip install -e '.[cpu]' (or bash scripts/setup.sh)"
INSTALL_HINTS: Dict[str, str] = {
    "tensorflow": _INSTALL_TF, "tensorflow_cpu": _INSTALL_TF, "keras": _INSTALL_TF, "tensorboard": _INSTALL_TF,
    "ai_edge_litert": _INSTALL_LITERT,
    "h5py": _INSTALL_CORE, "cv2": _INSTALL_CORE, "matplotlib": _INSTALL_CORE, "submitit": _INSTALL_CORE,
    "jsonschema": _INSTALL_CORE, "yaml": _INSTALL_CORE, "tqdm": _INSTALL_CORE, "numpy": _INSTALL_CORE,
}


# Exit status of a command stopped by Ctrl-C (SIGINT), as a shell reports a process killed by it (128 + 2);
# ``efnas train`` exits the same way after saving its position.
SIGINT_EXIT = 130
# What an interrupted command keeps, for its one line (commands not listed write nothing until they finish,
# and then atomically).
INTERRUPTED_KEEPS: Dict[str, str] = {
    "search": "every candidate scored so far is in the search store; the same command continues from there",
    "pack": "complete shards are kept; the same command finishes the pack",
    "synth": "--out holds a partial dataset: delete it and run the same command again",
    # A first Ctrl-C makes train/retrain save and exit 130 themselves; this is the second, which stops at once.
    "train": "stopped at once; the checkpoints keep their last complete save: continue with --resume",
    "retrain": "stopped at once; the checkpoints keep their last complete save: continue with --resume",
    "study": "finished trainings and scores are kept, and a training cut short resumes from its last save: "
             "run the same command again",
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
        except click.UsageError as error:
            error.message += override_hint(error)
            raise
        except KeyboardInterrupt as error:
            name = ctx.invoked_subcommand or "efnas"
            keeps = INTERRUPTED_KEEPS.get(name, "nothing half-written is left; run the same command again")
            signum = getattr(error, "signum", signal.SIGINT)  # edgeflownas.train.interrupt.Interrupted: another one
            how = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name
            click.echo(f"efnas {name}: interrupted by {how}: {keeps}", err=True)
            raise click.exceptions.Exit(SIGINT_EXIT if signum == signal.SIGINT else 128 + signum) from None
        except EfnasError as error:
            raise EfnasCommandError(error) from None
        except ModuleNotFoundError as error:
            hint = INSTALL_HINTS.get((error.name or "").split(".")[0])
            if hint is None:
                raise
            raise EfnasCommandError(EfnasError(
                f"this command needs the Python module '{error.name}', which is not installed for "
                f"{sys.executable}: {hint}"
            )) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        """Run the CLI; output that cannot be written (stdout on a full device) is one line on stderr, exit 1.

        TensorFlow is imported without Keras' eager import (``process.py``); the ``efnas`` program itself
        (called without ``args``, in standalone mode) runs full garbage collections less often and ends
        without the interpreter's teardown.
        """
        program = args is None and standalone_mode
        skip_keras_preload()
        if program:
            fewer_full_collections()
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        except SystemExit as done:
            if program:
                exit_now(done.code)
            raise
        except OSError as error:
            # click already turns a broken pipe (efnas ... | head) into a quiet exit 1; any other failed
            # write to stdout (ENOSPC on /dev/full, EIO) would otherwise end in a traceback.
            if not standalone_mode or not _raised_writing_stdout(error):
                raise
            _silence_stdout()
            click.echo(f"efnas: cannot write to standard output: {error.strerror or error} "
                       "(is the file or device it is redirected to full?); redirect it elsewhere", err=True)
            sys.exit(1)


_EXTRA_ARGUMENTS = re.compile(r"unexpected extra arguments? \((.*)\)")
_DOTTED_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.]*=")


def override_hint(error: click.UsageError) -> str:
    """For a Hydra-style ``key=value`` given as an argument: how efnas spells it (``--set``), else ''."""
    found = _EXTRA_ARGUMENTS.search(error.message)
    if not found:
        return ""
    assignments = [word for word in found.group(1).split() if _DOTTED_ASSIGNMENT.match(word)]
    if not assignments:
        return ""
    command = error.ctx.command if error.ctx is not None else None
    if command is not None and any(param.name == "set_values" for param in command.params):
        return "; config overrides are options here: " + " ".join(f"--set {word}" for word in assignments)
    return (f"; {error.ctx.command_path if error.ctx else 'this command'} takes no config overrides "
            "(efnas train, retrain and submit take --set KEY=VALUE)")


def _raised_writing_stdout(error: OSError) -> bool:
    """Whether ``error`` came from click.echo writing to standard output (every efnas output goes through it)."""
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code is click.utils.echo.__code__ and not frame.f_locals.get("err"):
            return True
        trace = trace.tb_next
    return False


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null so the interpreter's final flush cannot fail (and trace) again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # CliRunner's in-memory stream has no descriptor to fail
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="efnas")
def main() -> None:
    """efnas: train an EdgeFlowNet one-shot NAS supernet for optical flow on
    FlyingChairs2, locally or on SLURM.

    Typical flow: data-check -> pack -> train (or submit).  Every config is
    validated against schemas/supernet_config.schema.json before anything runs.
    """

