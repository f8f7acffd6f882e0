"""The EdgeFlowNet supernet: layers, network, loss and per-subnet cost (TensorFlow is imported by the submodules)."""
