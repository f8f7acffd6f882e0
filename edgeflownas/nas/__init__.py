"""Search space: arch codes, the strict-fairness sampler and the evaluation pool."""
