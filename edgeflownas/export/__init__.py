"""A chosen subnet as a deployable model: BN-folded inference graph, SavedModel, TFLite float/int8, inference."""
