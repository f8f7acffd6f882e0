"""``efnas submit`` (filled in by the HPC issue)."""

from __future__ import annotations

import click

from edgeflownas.cli import not_implemented


@click.command()
def submit() -> None:
    """Submit supernet training to SLURM through submitit."""
    not_implemented("submit", "lands with the HPC issue")
