"""``efnas arch`` (filled in by the Model issue)."""

from __future__ import annotations

import click

from edgeflownas.cli import not_implemented


@click.group()
def arch() -> None:
    """Decode arch codes and report subnet cost."""


@arch.command()
@click.argument("code")
def describe(code: str) -> None:
    """Decode CODE and print its structure, parameters and FLOPs."""
    not_implemented("arch describe", "lands with the Model issue")
