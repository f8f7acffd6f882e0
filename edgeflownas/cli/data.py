"""``efnas data-check``, ``efnas synth`` and ``efnas pack`` (filled in by the Data issue)."""

from __future__ import annotations

import click

from edgeflownas.cli import not_implemented


@click.command("data-check")
def data_check() -> None:
    """Scan FC2 train/val folders and report every bad sample."""
    not_implemented("data-check", "lands with the Data issue")


@click.command()
def synth() -> None:
    """Write a FlyingChairs-like synthetic dataset in FC2 layout."""
    not_implemented("synth", "lands with the Data issue")


@click.command()
def pack() -> None:
    """Pack FC2 folders into sharded HDF5."""
    not_implemented("pack", "lands with the Data issue")
