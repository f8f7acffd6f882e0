"""Parameter count and MACs (multiply-accumulates; FLOPs = 2 x MACs) of a subnet, read off its built graph.

``subnet_cost`` builds the fixed-arch network of a code in a fresh graph and walks
the ops its full-resolution prediction depends on (data edges only):

- params: elements of every *trainable* variable read on that path (conv kernels
  and biases, BN gamma/beta; BN moving statistics and recalibration sums are
  state, not parameters);
- MACs: for every Conv2D on the path, output height x width x output channels x
  kernel height x kernel width x input channels, per image pair, from the static
  shapes of the graph.  Elementwise work (BN, ReLU, bilinear resize, additions,
  loss) is not counted; it is a small fraction of the convolutions.

Each number is attributed to the block whose variable scope holds the weights
(``stem``, ``EB0`` .. ``H4``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from edgeflownas.config_types import LossConfig, ModelConfig
from edgeflownas.nas.arch_codec import BLOCK_NAMES, ArchCode, parse_arch_code

COST_BLOCKS = ("stem",) + BLOCK_NAMES
_ANY_LOSS = LossConfig(scale_weights=(0.125, 0.25, 0.5))


@dataclass(frozen=True)
class ConvCost:
    """One convolution of a subnet: its kernel variable, shape, output size and multiply-adds."""

    name: str
    block: str
    kernel_shape: Tuple[int, int, int, int]
    stride: int
    output_hw: Tuple[int, int]
    macs: int


@dataclass(frozen=True)
class SubnetCost:
    """Cost of one subnet at one input size (params and MACs per image pair)."""

    arch_code: ArchCode
    height: int
    width: int
    params: int
    macs: int
    block_params: Dict[str, int]
    block_macs: Dict[str, int]
    convs: List[ConvCost] = field(default_factory=list)
    output_shapes: List[Tuple[int, int, int]] = field(default_factory=list)
    supernet_params: int = 0

    def as_dict(self) -> Dict:
        """JSON-ready form."""
        return {
            "arch_code": list(self.arch_code),
            "input_hw": [self.height, self.width],
            "params": self.params,
            "macs": self.macs,
            "supernet_params": self.supernet_params,
            "output_shapes": [list(s) for s in self.output_shapes],
            "blocks": {b: {"params": self.block_params[b], "macs": self.block_macs[b]} for b in COST_BLOCKS},
            "convs": [
                {"name": c.name, "block": c.block, "kernel_shape": list(c.kernel_shape), "stride": c.stride,
                 "output_hw": list(c.output_hw), "macs": c.macs}
                for c in self.convs
            ],
        }


def block_of(variable_name: str) -> str:
    """Block (``stem``, ``EB0`` .. ``H4``) a variable belongs to, from its scope ``supernet/<block>/...``."""
    return variable_name.split("/")[1]


def subnet_cost(code: Sequence[int], height: int, width: int, model_cfg: ModelConfig) -> SubnetCost:
    """Build the fixed-arch network of ``code`` at ``height`` x ``width`` and count its params and MACs."""
    import tensorflow as tf

    from edgeflownas.model.supernet import Supernet

    arch = parse_arch_code(code)
    with tf.Graph().as_default():
        # Weights are never computed here, but initializers need a seed once op determinism is on
        # (e.g. efnas demo runs train, then report, in one process).
        tf.compat.v1.set_random_seed(0)
        net = Supernet(model_cfg, _ANY_LOSS, height, width, fixed_arch=arch)
        ops = _ops_feeding(net.preds[-1].op)
        by_handle = {v.handle.op.name: v for v in net.variables}
        used = {}
        for op in ops:
            if op.type == "ReadVariableOp" and op.inputs[0].op.name in by_handle:
                variable = by_handle[op.inputs[0].op.name]
                used[variable.name] = variable
        params = {name: v.shape.num_elements() for name, v in used.items() if v.trainable}
        convs = [_conv_cost(op, by_handle) for op in ops if op.type == "Conv2D"]
        convs.sort(key=lambda c: (COST_BLOCKS.index(c.block), c.name))
        output_shapes = [tuple(p.shape.as_list()[1:]) for p in net.preds]
    block_params = {b: 0 for b in COST_BLOCKS}
    block_macs = {b: 0 for b in COST_BLOCKS}
    for name, count in params.items():
        block_params[block_of(name)] += count
    for conv in convs:
        block_macs[conv.block] += conv.macs
    return SubnetCost(
        arch_code=arch, height=height, width=width, params=sum(params.values()), macs=sum(block_macs.values()),
        block_params=block_params, block_macs=block_macs, convs=convs, output_shapes=output_shapes,
        supernet_params=supernet_params(model_cfg),
    )


@functools.lru_cache(maxsize=8)
def supernet_params(model_cfg: ModelConfig) -> int:
    """Trainable parameters of the whole supernet (every option); a fixed-arch build holds only its path's."""
    import tensorflow as tf

    from edgeflownas.model.supernet import Supernet

    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        net = Supernet(model_cfg, _ANY_LOSS, 32, 32)
        return sum(v.shape.num_elements() for v in net.trainable_variables)


def _ops_feeding(output_op) -> List:
    """Every op ``output_op`` depends on through data edges (control dependencies excluded)."""
    seen = {output_op.name: output_op}
    stack = [output_op]
    while stack:
        op = stack.pop()
        for tensor in op.inputs:
            if tensor.op.name not in seen:
                seen[tensor.op.name] = tensor.op
                stack.append(tensor.op)
    return list(seen.values())


def _conv_cost(op, by_handle: Dict) -> ConvCost:
    read = op.inputs[1].op
    variable = by_handle[_handle_name(read)]
    kh, kw, cin, cout = variable.shape.as_list()
    _, out_h, out_w, _ = op.outputs[0].shape.as_list()
    stride = op.get_attr("strides")[1]
    return ConvCost(
        name=variable.name.split(":")[0], block=block_of(variable.name), kernel_shape=(kh, kw, cin, cout),
        stride=stride, output_hw=(out_h, out_w), macs=out_h * out_w * cout * kh * kw * cin,
    )


def _handle_name(read_op) -> str:
    if read_op.type != "ReadVariableOp":
        raise ValueError(f"Conv2D filter comes from a {read_op.type} op, expected a ReadVariableOp")
    return read_op.inputs[0].op.name
