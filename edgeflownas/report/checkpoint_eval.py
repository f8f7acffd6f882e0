"""The checkpoint evaluator's former address: it lives in ``edgeflownas.train.checkpoint_eval`` now.

Kept so code written against this path (the launcher's search array) works;
new code imports from ``train.checkpoint_eval``.
"""

from edgeflownas.train.checkpoint_eval import (  # noqa: F401  (re-exported)
    CHECKPOINTS, OUTLIER_THRESHOLDS, CheckpointEvaluator, SubnetMetrics, check_same_data, checkpoint_dir,
)
from edgeflownas.train.plan import plan_from_state  # noqa: F401  (re-exported)
