"""Per-subnet params and multiply-adds from the graph, checked against hand counts; `efnas arch describe` wiring."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from edgeflownas.model.cost import COST_BLOCKS, subnet_cost
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE

pytestmark = pytest.mark.slow

C0, C1, C2, C3 = 32, 64, 128, 256  # init_neurons 32, expansion 2
FLOW = 4


def res_block_params(c: int) -> int:
    return 2 * (3 * 3 * c * c) + 2 * (2 * c)  # two bias-free 3x3 convs + two BN (gamma, beta)


def hand_params(depths, kernels) -> int:
    """Trainable parameters of a subnet, counted by hand from the table of docs/design.md §3."""
    stem = 7 * 7 * 6 * C0 + 5 * 5 * C0 * C1 + 2 * (C0 + C1)
    stages = (depths[0] * res_block_params(C1) + 9 * C1 * C2 + C2
              + depths[1] * res_block_params(C2) + 9 * C2 * C3 + C3
              + depths[2] * res_block_params(C3) + 9 * C3 * C2 + C2
              + depths[3] * res_block_params(C2) + 9 * C2 * C1 + C1)
    k0, k1, k2, k3, k4 = kernels
    heads = (k0 * k0 * C1 * FLOW + FLOW + k1 * k1 * C1 * 32 + 2 * 32 + k2 * k2 * 32 * FLOW + FLOW
             + k3 * k3 * 32 * 16 + 2 * 16 + k4 * k4 * 16 * FLOW + FLOW)
    return stem + stages + heads


def conv_macs(h: int, w: int, k: int, cin: int, cout: int) -> int:
    return h * w * k * k * cin * cout


def hand_macs(depths, kernels, height: int, width: int, upsample: str = "resize_conv") -> int:
    """Multiply-adds of a subnet's convolutions, counted by hand from the table of docs/design.md §3.

    ``conv_resize`` runs the 4 upsampling convs (DB0/up, DB1/up, H1, H3) at their input's resolution.
    """
    full, half = (height, width), (height // 2, width // 2)
    quarter, eighth, sixteenth = (height // 4, width // 4), (height // 8, width // 8), (height // 16, width // 16)

    def res_blocks(size, c, depth):
        return depth * 2 * conv_macs(*size, 3, c, c)

    # Where each upsampling conv runs: after the resize (its output size) or before it (its input size).
    up = {"db0": eighth, "db1": quarter, "h1": half, "h3": full}
    if upsample == "conv_resize":
        up = {"db0": sixteenth, "db1": eighth, "h1": quarter, "h3": half}
    stem = conv_macs(*half, 7, 6, C0) + conv_macs(*quarter, 5, C0, C1)
    stages = (res_blocks(quarter, C1, depths[0]) + conv_macs(*eighth, 3, C1, C2)         # EB0 + stride-2 conv
              + res_blocks(eighth, C2, depths[1]) + conv_macs(*sixteenth, 3, C2, C3)    # EB1 + stride-2 conv
              + res_blocks(sixteenth, C3, depths[2]) + conv_macs(*up["db0"], 3, C3, C2)  # DB0 + upsample conv
              + res_blocks(eighth, C2, depths[3]) + conv_macs(*up["db1"], 3, C2, C1))   # DB1 + upsample conv
    k0, k1, k2, k3, k4 = kernels
    heads = (conv_macs(*quarter, k0, C1, FLOW) + conv_macs(*up["h1"], k1, C1, 32) + conv_macs(*half, k2, 32, FLOW)
             + conv_macs(*up["h3"], k3, 32, 16) + conv_macs(*full, k4, 16, FLOW))
    return stem + stages + heads


@pytest.fixture(scope="module")
def baseline_cost(cfg):
    return subnet_cost(EDGEFLOWNET_BASELINE, 32, 48, cfg.model)


def test_stem_params_and_macs_match_a_hand_count(baseline_cost):
    assert baseline_cost.block_params["stem"] == 7 * 7 * 6 * 32 + 5 * 5 * 32 * 64 + 2 * (32 + 64)
    # conv0: 7x7x6 -> 32 at 16x24 (stride 2 of 32x48); conv1: 5x5x32 -> 64 at 8x12
    assert baseline_cost.block_macs["stem"] == 16 * 24 * 32 * (7 * 7 * 6) + 8 * 12 * 64 * (5 * 5 * 32)


@pytest.mark.parametrize(
    "code, depths, kernels",
    [(EDGEFLOWNET_BASELINE, (1, 1, 1, 1), (7, 5, 7, 7, 7)), ((2, 1, 0, 2, 0, 1, 2, 1, 0), (3, 2, 1, 3), (3, 5, 7, 5, 3))],
    ids=["baseline", "mixed"],
)
def test_total_params_and_macs_match_the_hand_count(cfg, baseline_cost, code, depths, kernels):
    cost = baseline_cost if code == EDGEFLOWNET_BASELINE else subnet_cost(code, 32, 48, cfg.model)
    assert cost.params == hand_params(depths, kernels)
    assert cost.macs == hand_macs(depths, kernels, 32, 48)
    assert sum(cost.block_params.values()) == cost.params
    assert set(cost.block_macs) == set(COST_BLOCKS) and sum(cost.block_macs.values()) == cost.macs
    assert cost.output_shapes == [(8, 12, 4), (16, 24, 4), (32, 48, 4)]
    assert cost.supernet_params > cost.params


@pytest.mark.parametrize(
    "code, depths, kernels",
    [(EDGEFLOWNET_BASELINE, (1, 1, 1, 1), (7, 5, 7, 7, 7)), ((2, 1, 0, 2, 0, 1, 2, 1, 0), (3, 2, 1, 3), (3, 5, 7, 5, 3))],
    ids=["baseline", "mixed"],
)
def test_conv_resize_macs_match_the_hand_count(cfg, baseline_cost, code, depths, kernels):
    model = dataclasses.replace(cfg.model, upsample="conv_resize")
    cost = subnet_cost(code, 32, 48, model)
    assert cost.params == hand_params(depths, kernels)  # same variables in both orders
    assert cost.macs == hand_macs(depths, kernels, 32, 48, "conv_resize")
    assert cost.macs < hand_macs(depths, kernels, 32, 48)
    assert cost.output_shapes == [(8, 12, 4), (16, 24, 4), (32, 48, 4)]
    upsampling = {conv.block: conv.output_hw for conv in cost.convs
                  if conv.name.endswith("/up/kernel") or conv.block in ("H1", "H3")}
    # each at its input's resolution, resized after: 1/16, 1/8, 1/4, 1/2 of 32x48
    assert upsampling == {"DB0": (2, 3), "DB1": (4, 6), "H1": (8, 12), "H3": (16, 24)}


def test_arch_describe_prints_structure_params_and_flops(cli, baseline_cost):
    result = cli("arch", "describe", "0,0,0,0,2,1,2,2,2", "--height", "32", "--width", "48")
    assert result.exit_code == 0, result.output
    assert "a000021222" in result.output and "EdgeFlowNet baseline" in result.output
    assert f"{baseline_cost.params:,d}" in result.output and f"{baseline_cost.macs:,d}" in result.output
    assert "kernel 5x5" in result.output and "depth 1" in result.output


def test_arch_describe_json(cli, baseline_cost):
    result = cli("arch", "describe", "[0,0,0,0,2,1,2,2,2]", "--height", "32", "--width", "48", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "a000021222"
    assert data["cost"]["params"] == baseline_cost.params and data["cost"]["macs"] == baseline_cost.macs


@pytest.mark.parametrize(
    "args, message",
    [(["0,1,2"], "length=9 required"), (["0,1,2,0,0,1,2,1,3"], "value must be in {0,1,2}"),
     (["a000021222", "--height", "30"], "multiples of 4")],
    ids=["length", "value", "size"],
)
def test_arch_describe_user_errors_exit_2_in_one_line(cli, args, message):
    result = cli("arch", "describe", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_arch_help_does_not_import_tensorflow():
    code = ("import sys\nfrom edgeflownas.cli import main\n"
            "try:\n    main(['arch', 'describe', '--help'])\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
            "print('TF', 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "EXIT 0" in out and "TF False" in out, out


def test_the_cost_table_is_the_graph_count_of_any_code():
    import numpy as np

    from edgeflownas.config import resolve
    from edgeflownas.model.cost import CostTable

    model = dataclasses.replace(resolve(None).config.model, init_neurons=8)
    table = CostTable.build(32, 48, model)
    round_trip = CostTable.from_dict(json.loads(json.dumps(table.to_dict())))
    rng = np.random.default_rng(3)
    for code in [EDGEFLOWNET_BASELINE] + [tuple(int(v) for v in rng.integers(0, 3, 9)) for _ in range(3)]:
        counted = subnet_cost(code, 32, 48, model)
        from_table = round_trip.subnet_cost(code)
        assert round_trip.cost(code) == {"params": counted.params, "macs": counted.macs}
        assert (from_table.block_params, from_table.block_macs) == (counted.block_params, counted.block_macs)
        assert from_table.output_shapes == counted.output_shapes
        assert from_table.supernet_params == counted.supernet_params
