"""Config-override options shared by ``efnas train`` and ``efnas submit``, and the CLI's naming rule.

One table maps each CLI option to the dotted config key it overrides, so both
commands spell and document the overrides identically.  ``--set KEY=VALUE``
reaches every other key (dotted, repeatable); its value is read as the same
text in a YAML config file would be.  A named option and ``--set`` are both
the command line: naming the same key twice is refused, not silently ordered.

Naming rule: every option accepts ``--snake_case`` and ``--dashed-form``, with
the snake_case spelling first in ``--help``; ``Option`` hides the spellings
kept only so old command lines still work (``aliases=``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import click

from edgeflownas.config import Overrides
from edgeflownas.config_check import suggest_key
from edgeflownas.errors import ConfigError


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


_OPTION_KEYS = {item.option: item.key for item in OVERRIDES}

# The options that say where a run's data is (for commands that reopen a finished run's data).
DATA_LOCATIONS = ("train_dir", "val_dir", "data_source", "shards_dir")


SET_HELP = ("Set any config key, repeatable: --set train.lr=1e-4 --set slurm.additional_parameters.constraint=a100. "
            "KEY is dotted (or a named option's name); VALUE is read as in the YAML file (1e-4 is a number, "
            "[0.1,0.2] a list, null clears). Counts as the command line; naming a key twice is an error.")


class Option(click.Option):
    """A click option whose ``--help`` row leaves out the hidden ``aliases``; each spelling counted once.

    Use it with ``cls=Option`` for switches (``switch_spellings``) and for an old
    name kept working after a rename (``aliases=("--shards",)``).
    """

    def __init__(self, param_decls: Sequence[str], aliases: Sequence[str] = (), **attrs: Any) -> None:
        super().__init__(list(param_decls) + list(aliases), **attrs)
        self.aliases = tuple(aliases)
        # A switch without an underscore ('--cost/--no_cost', '--cost/--no-cost') declares its on switch twice.
        self.opts = list(dict.fromkeys(self.opts))
        self.secondary_opts = list(dict.fromkeys(self.secondary_opts))

    def get_help_record(self, ctx: click.Context) -> Optional[Tuple[str, str]]:
        """The help row without the aliases."""
        opts, secondary = self.opts, self.secondary_opts
        self.opts = [o for o in opts if o not in self.aliases]
        self.secondary_opts = [o for o in secondary if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = opts, secondary


def spellings(name: str) -> List[str]:
    """``--snake_case`` then ``--dashed-form`` of an option name (one entry if it has no underscore)."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    return names


def switch_spellings(name: str) -> List[str]:
    """Declarations of an on/off switch: ``--name/--no_name`` and ``--dashed-name/--no-dashed-name`` (cls=Option)."""
    dashed = name.replace("_", "-")
    return [f"--{name}/--no_{name}", f"--{dashed}/--no-{dashed}"]


def override_options(func: Callable) -> Callable:
    """Decorate a click command with every config-override option and the generic ``--set KEY=VALUE``."""
    func = click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help=SET_HELP)(func)
    return _with_options(func, OVERRIDES)


def data_location_options(func: Callable) -> Callable:
    """Decorate a click command with the data-location overrides only (--train_dir, --val_dir, ...)."""
    return _with_options(func, [item for item in OVERRIDES if item.option in DATA_LOCATIONS])


def _with_options(func: Callable, items) -> Callable:
    for item in reversed(list(items)):
        names = spellings(item.option)
        help_text = f"{item.help} [config: {item.key}]"
        if item.flag:
            func = click.option(*names, item.option, is_flag=True, default=None, help=help_text)(func)
        else:
            func = click.option(*names, item.option, type=item.type, default=None, help=help_text)(func)
    return func


def canonical_key(key: str, origin: str) -> str:
    """Map an option name (``lr``) to its dotted key (``train.lr``); dotted keys pass (the schema checks them)."""
    key = key.strip()
    if "." in key:
        return key
    if key in _OPTION_KEYS:
        return _OPTION_KEYS[key]
    guess = suggest_key(key, list(_OPTION_KEYS))
    hint = f"did you mean '{guess}' ({_OPTION_KEYS[guess]})?" if guess else "e.g. train.lr or seed"
    raise ConfigError(f"{origin}: '{key}' is neither a dotted config key nor an efnas train option name; {hint}")


def parse_set(spec: str) -> Tuple[str, Any]:
    """``KEY=VALUE`` of one ``--set`` -> (dotted key, value read by the config files' YAML rule)."""
    from edgeflownas.config_yaml import parse_value

    origin = f"--set {spec}"
    key, equals, text = spec.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"{origin}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
    return canonical_key(key, origin), parse_value(text, origin)


def collect_overrides(kwargs: Dict[str, Any]) -> Overrides:
    """Named options and ``--set`` values as {dotted key: value}, each remembering its option; a key twice is an error."""
    given = [item for item in OVERRIDES if kwargs.get(item.option) is not None]
    values = {item.key: kwargs[item.option] for item in given}
    options = {item.key: f"--{item.option}" for item in given}
    for spec in kwargs.get("set_values") or ():
        key, value = parse_set(spec)
        clash = [k for k in options if k == key or k.startswith(key + ".") or key.startswith(k + ".")]
        if clash:
            raise ConfigError(f"--set {spec}: {clash[0]} is also set by {options[clash[0]]}; the command line "
                              "may name each key once: drop one of them")
        values[key], options[key] = value, f"--set {spec}"
    return Overrides(values, options)
