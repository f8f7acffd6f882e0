"""From a trained supernet to a Pareto front of architectures: space, constraints, store, strategies, front."""
