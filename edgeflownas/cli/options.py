"""Config-override options shared by ``efnas train`` and ``efnas submit``, and the CLI's naming rule.

The table that maps each option to the dotted config key it overrides is
``edgeflownas.config.OVERRIDES`` (sweeps name keys the same way); the click
options are built from it, so every command spells and documents them
identically.  ``--set KEY=VALUE`` reaches every other key (dotted,
repeatable); its value is read as the same text in a YAML config file would be.  A named option and ``--set`` are both
the command line: naming the same key twice is refused, not silently ordered.

Naming rule: every option accepts ``--snake_case`` and ``--dashed-form``, with
the snake_case spelling first in ``--help``; ``Option`` hides the spellings
kept only so old command lines still work (``aliases=``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import click

# collect_overrides is imported from here by the commands that take the override options.
from edgeflownas.config import DATA_LOCATIONS, OVERRIDES, collect_overrides  # noqa: F401

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


def resume_from_option(func: Callable) -> Callable:
    """Decorate a training command with ``--resume_from last|best`` (the checkpoint ``--resume`` continues from)."""
    return click.option("--resume_from", "--resume-from", "resume_from", type=click.Choice(["last", "best"]),
                        default="last", show_default=True,
                        help="With --resume: the checkpoint to continue from. 'best' rewinds to supernet_best (e.g. "
                             "when supernet_last is missing or damaged); later epochs are trained again.")(func)


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
            kind = click.Choice(item.choices) if item.choices else item.type
            func = click.option(*names, item.option, type=kind, default=None, help=help_text)(func)
    return func
