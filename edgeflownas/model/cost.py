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

``CostTable`` is the cost model every command uses: costs are additive over
blocks (each block's weights and convolutions depend on its own option
only), so three graph builds, the codes 000000000, 111111111 and 222222222,
give the exact params and MACs of all 19,683 codes at one input size;
``tests/model/test_cost.py`` keeps the sum equal to ``subnet_cost``'s count.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from edgeflownas.config_types import LossConfig, ModelConfig
from edgeflownas.nas.arch_codec import BLOCK_NAMES, NUM_BLOCKS, NUM_OPTIONS, ArchCode, parse_arch_code

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


@dataclass(frozen=True)
class CostTable:
    """Exact params and MACs (per image pair) of every code at one input size, as per-block sums."""

    height: int
    width: int
    stem: Tuple[int, int]
    blocks: Tuple[Tuple[Tuple[int, int], ...], ...]  # [block][option] -> (params, macs)
    output_shapes: Tuple[Tuple[int, int, int], ...] = ()  # the same for every code (options keep shapes)
    supernet_params: int = 0

    def cost(self, code: Sequence[int]) -> Dict[str, int]:
        """{'params': ..., 'macs': ...} of ``code``."""
        params = self.stem[0] + sum(self.blocks[b][o][0] for b, o in enumerate(code))
        macs = self.stem[1] + sum(self.blocks[b][o][1] for b, o in enumerate(code))
        return {"params": int(params), "macs": int(macs)}

    def subnet_cost(self, code: Sequence[int]) -> SubnetCost:
        """``code``'s SubnetCost from the table (per-block figures; no per-convolution list)."""
        arch = parse_arch_code(code)
        block_params = {"stem": int(self.stem[0])}
        block_macs = {"stem": int(self.stem[1])}
        for block, option in enumerate(arch):
            block_params[BLOCK_NAMES[block]] = int(self.blocks[block][option][0])
            block_macs[BLOCK_NAMES[block]] = int(self.blocks[block][option][1])
        total = self.cost(arch)
        return SubnetCost(arch, self.height, self.width, total["params"], total["macs"], block_params, block_macs,
                          output_shapes=[tuple(s) for s in self.output_shapes], supernet_params=self.supernet_params)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form."""
        return {"height": self.height, "width": self.width, "stem": list(self.stem),
                "blocks": [[list(cost) for cost in options] for options in self.blocks],
                "output_shapes": [list(s) for s in self.output_shapes], "supernet_params": self.supernet_params}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "CostTable":
        """The table ``to_dict`` wrote."""
        return cls(int(doc["height"]), int(doc["width"]), tuple(doc["stem"]),
                   tuple(tuple(tuple(cost) for cost in options) for options in doc["blocks"]),
                   tuple(tuple(s) for s in doc.get("output_shapes", ())), int(doc.get("supernet_params", 0)))

    @classmethod
    def build(cls, height: int, width: int, model_cfg: ModelConfig) -> "CostTable":
        """Count the three uniform codes with ``subnet_cost`` (imports TensorFlow)."""
        uniform = [subnet_cost((option,) * NUM_BLOCKS, height, width, model_cfg) for option in range(NUM_OPTIONS)]
        stem = (uniform[0].block_params["stem"], uniform[0].block_macs["stem"])
        blocks = tuple(tuple((uniform[o].block_params[name], uniform[o].block_macs[name]) for o in range(NUM_OPTIONS))
                       for name in BLOCK_NAMES)
        return cls(height, width, stem, blocks, tuple(tuple(s) for s in uniform[0].output_shapes),
                   uniform[0].supernet_params)


def table_key(height: int, width: int, model_cfg: ModelConfig) -> Dict[str, Any]:
    """What a cost table depends on: the input size and the model section (its fixed arch code aside)."""
    model = dict(dataclasses.asdict(model_cfg))
    model.pop("fixed_arch_code", None)
    return json.loads(json.dumps({"height": int(height), "width": int(width), "model": model}))
