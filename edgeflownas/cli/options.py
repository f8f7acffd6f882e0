"""Config-override options shared by ``efnas train`` and ``efnas submit``.

One table maps each CLI option to the dotted config key it overrides, so both
commands spell and document the overrides identically.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple

import click

from edgeflownas.config import Overrides


class Override(NamedTuple):
    option: str
    key: str
    type: Any
    help: str
    flag: bool = False


OVERRIDES = (
    Override("experiment_name", "experiment.name", str, "Experiment name; run directory is <output_root>/<name>."),
    Override("output_root", "experiment.output_root", str, "Directory that holds the run directories."),
    Override("seed", "experiment.seed", int, "Global seed (sampler, data order, eval pool, init)."),
    Override("train_dir", "data.train_dir", str, "FC2 train/ folder."),
    Override("val_dir", "data.val_dir", str, "FC2 val/ folder (0 samples is fatal)."),
    Override("data_source", "data.source", click.Choice(["folders", "shards"]), "Read FC2 folders or packed shards."),
    Override("shards_dir", "data.shards_dir", str, "Packed HDF5 shards directory (with --data_source shards)."),
    Override("num_epochs", "train.num_epochs", int, "Planned epochs (the cosine schedule spans them)."),
    Override("batch_size", "train.batch_size", int, "Batch size shared by the 3 paths of a cycle."),
    Override("lr", "train.lr", float, "Peak Adam learning rate."),
    Override("supernet_mode", "train.supernet_mode", click.Choice(["strict_fairness", "fixed_arch"]), "strict_fairness (3 paths, one update) or fixed_arch."),
    Override("max_epochs", "train.max_epochs", int, "Stop this invocation after N epochs."),
    Override("max_steps", "train.max_steps", int, "Cap optimizer steps per epoch."),
    Override("gpu_device", "runtime.gpu_device", int, "GPU index; ignored with a notice when no GPU exists."),
    Override("fast_mode", "runtime.fast_mode", bool, "Local smoke run: few steps per epoch, few val batches.", flag=True),
    Override("debug_trace", "runtime.debug_trace", bool, "Log every cycle: forward/backward x3, optimizer_step x1, grad norms, lr.", flag=True),
    Override("resume", "checkpoint.resume", bool, "Resume this experiment from its last checkpoint (exact resume).", flag=True),
    Override("resume_experiment_name", "checkpoint.resume_experiment_name", str, "Start this new experiment from the weights of another experiment's last checkpoint."),
    Override("reset_early_stop_on_resume", "checkpoint.reset_early_stop_on_resume", bool, "Forget the early-stop counters and best metric when resuming, once (a requeue of the same run keeps counting).", flag=True),
)


# The options that say where a run's data is (for commands that reopen a finished run's data).
DATA_LOCATIONS = ("train_dir", "val_dir", "data_source", "shards_dir")


def override_options(func: Callable) -> Callable:
    """Decorate a click command with every config-override option."""
    return _with_options(func, OVERRIDES)


def data_location_options(func: Callable) -> Callable:
    """Decorate a click command with the data-location overrides only (--train_dir, --val_dir, ...)."""
    return _with_options(func, [item for item in OVERRIDES if item.option in DATA_LOCATIONS])


def _with_options(func: Callable, items) -> Callable:
    for item in reversed(list(items)):
        names = [f"--{item.option}"]
        dashed = f"--{item.option.replace('_', '-')}"
        if dashed != names[0]:
            names.append(dashed)
        help_text = f"{item.help} [config: {item.key}]"
        if item.flag:
            func = click.option(*names, item.option, is_flag=True, default=None, help=help_text)(func)
        else:
            func = click.option(*names, item.option, type=item.type, default=None, help=help_text)(func)
    return func


def collect_overrides(kwargs: Dict[str, Any]) -> Overrides:
    """Map the given click kwargs to {dotted key: value}, skipping absent options; each key remembers its option."""
    given = [item for item in OVERRIDES if kwargs.get(item.option) is not None]
    return Overrides({item.key: kwargs[item.option] for item in given}, {item.key: f"--{item.option}" for item in given})
