"""``efnas config``: validate or show a config without running anything.

It knows both kinds of config: a run config (schemas/supernet_config.schema.json)
and a study config (schemas/study_config.schema.json, read by ``launcher.study``).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def config() -> None:
    """Validate or inspect run configs against the JSON Schema."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files) -> None:
    """Validate one or more YAML config FILES, run or study configs; every error is listed with its key."""
    from edgeflownas.config import load_yaml, resolve

    for path in files:
        if is_study_config(load_yaml(path)):
            from launcher.study import load_study

            load_study(path)
            click.echo(f"{path}: valid (study config)")
        else:
            resolve(path)
            click.echo(f"{path}: valid")


def is_study_config(raw) -> bool:
    """Whether a config file's top level is a study's (``study:``/``supernet:`` sections) rather than a run's."""
    return isinstance(raw, dict) and bool({"study", "supernet"} & set(raw))


@config.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
def show(file) -> None:
    """Print FILE (default: the shipped config) fully resolved, with value sources."""
    from edgeflownas.config import format_resolved, resolve

    click.echo(format_resolved(resolve(file)))


@config.command()
def schema() -> None:
    """Print the path of the JSON Schema every config is validated against."""
    from edgeflownas.config import SCHEMA_FILE, schemas_dir

    click.echo(str(schemas_dir() / SCHEMA_FILE))
