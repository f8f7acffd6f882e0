"""``efnas config``: validate or show a config without running anything."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def config() -> None:
    """Validate or inspect run configs against the JSON Schema."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files) -> None:
    """Validate one or more YAML config FILES; every error is listed with its key."""
    from edgeflownas.config import resolve

    for path in files:
        resolve(path)
        click.echo(f"{path}: valid")


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
