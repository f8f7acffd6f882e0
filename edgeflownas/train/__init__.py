"""Supernet training: fairness-cycle trainer, evaluation, early stop, checkpoints, run directory."""
