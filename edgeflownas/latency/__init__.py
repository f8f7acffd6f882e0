"""Latency of subnets on a device: probe models, their measurement, and the additive latency table."""
