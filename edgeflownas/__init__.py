"""efnas: EdgeFlowNet-based one-shot NAS supernet training for optical flow."""

__version__ = "0.1.0"
