"""The three run-time modes of the supernet's batch norm (``model.layers`` module doc), without TensorFlow.

Fed as the int32 ``bn_mode`` scalar: evaluation code that only chooses a mode
(``train.evaluate``) needs no TensorFlow import for it.
"""

BN_TRAIN = 0
BN_INFER = 1
BN_RECAL = 2
