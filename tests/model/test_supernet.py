"""The switchable supernet: shapes, variable schema, selected-path gradients, depth sharing, fixed-arch equality."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgeflownas.errors import ConfigError
from edgeflownas.model.supernet import BN_INFER, BN_RECAL, BN_TRAIN, Supernet
from edgeflownas.nas.arch_codec import DEPTH_BLOCKS, EDGEFLOWNET_BASELINE, KERNEL_BLOCKS, KERNEL_CHOICES

pytestmark = pytest.mark.slow

MIXED = (0, 1, 2, 0, 0, 1, 2, 1, 0)
CODES = [EDGEFLOWNET_BASELINE, MIXED, (2,) * 9]


class Built:
    """One graph holding a supernet, its loss gradients and a session."""

    def __init__(self, cfg, height: int, width: int, fixed_arch=None) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(1)
            self.net = Supernet(cfg.model, cfg.loss, height, width, fixed_arch=fixed_arch)
            grads = tf.gradients(self.net.loss, self.net.trainable_variables)
            self.grads = {v.name: g for v, g in zip(self.net.trainable_variables, grads)}
            self.saver = tf.compat.v1.train.Saver()
            self.init_op = tf.compat.v1.global_variables_initializer()
            self.session = tf.compat.v1.Session(graph=self.graph)
            self.session.run(self.init_op)

    def feed(self, batch, code=None, mode=BN_INFER):
        feed = {self.net.img0: batch[0], self.net.img1: batch[1], self.net.flow_gt: batch[2], self.net.bn_mode: mode}
        if code is not None:
            feed[self.net.arch_code] = list(code)
        return feed


def _with_option_init(cfg, option_init):
    import dataclasses

    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, option_init=option_init))


@pytest.fixture(scope="module")
def supernet(cfg, size):
    # Independent options: every on-path variable gets a gradient from step 0.  (With the default tied options
    # the 2nd/3rd ResBlocks start as the identity, gamma 0, so their convs get no gradient until gamma moves.)
    built = Built(_with_option_init(cfg, "independent"), size[0], size[1])
    yield built
    built.session.close()


def schema(net):
    return [(v.name, tuple(v.shape.as_list()), v.dtype.name) for v in net.variables]


def off_path_prefixes(code):
    """Variable-name prefixes of the layers ``code`` does not use."""
    prefixes = []
    for index, block in enumerate(DEPTH_BLOCKS):
        prefixes += [f"supernet/{block}/res{extra}/" for extra in range(code[index] + 1, 3)]
    for offset, block in enumerate(KERNEL_BLOCKS):
        chosen = KERNEL_CHOICES[code[len(DEPTH_BLOCKS) + offset]]
        prefixes += [f"supernet/{block}/k{k}/" for k in KERNEL_CHOICES if k != chosen]
    return prefixes


def test_output_shapes_at_test_size(supernet, make_batch, size):
    height, width, batch = size
    preds = supernet.session.run(list(supernet.net.preds), supernet.feed(make_batch(0), MIXED))
    assert [p.shape for p in preds] == [(batch, height // 4, width // 4, 4), (batch, height // 2, width // 2, 4),
                                        (batch, height, width, 4)]
    assert all(np.isfinite(p).all() for p in preds)


def test_spec_size_gives_exact_output_sizes(cfg):
    with tf.Graph().as_default():
        net = Supernet(cfg.model, cfg.loss, 180, 240)
        assert [p.shape.as_list() for p in net.preds] == [[None, 45, 60, 4], [None, 90, 120, 4], [None, 180, 240, 4]]
        assert net.flow.shape.as_list() == [None, 180, 240, 2]


def test_input_size_must_be_a_multiple_of_4(cfg):
    with tf.Graph().as_default(), pytest.raises(ConfigError, match="multiples of 4"):
        Supernet(cfg.model, cfg.loss, 30, 48)


def test_out_of_range_code_fed_at_run_time_is_refused(supernet, make_batch):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"arch_code value must be in \{0,1,2\}"):
        supernet.session.run(supernet.net.flow, supernet.feed(make_batch(0), (0, 0, 0, 0, 3, 0, 0, 0, 0)))


@pytest.mark.parametrize("code", CODES, ids=lambda c: "".join(map(str, c)))
def test_fixed_arch_builds_exactly_the_supernet_variables_on_its_path(cfg, supernet, size, code):
    with tf.Graph().as_default():
        fixed = Supernet(cfg.model, cfg.loss, size[0], size[1], fixed_arch=code)
    off = off_path_prefixes(code)
    assert schema(fixed) == [s for s in schema(supernet.net) if not any(s[0].startswith(p) for p in off)]
    assert len(schema(fixed)) == len({name for name, _, _ in schema(fixed)})


@pytest.mark.parametrize("code", CODES, ids=lambda c: "".join(map(str, c)))
def test_fixed_arch_trainable_params_are_the_cost_count(cfg, size, code):
    from edgeflownas.model.cost import subnet_cost

    with tf.Graph().as_default():
        fixed = Supernet(cfg.model, cfg.loss, size[0], size[1], fixed_arch=code)
        params = sum(v.shape.num_elements() for v in fixed.trainable_variables)
    cost = subnet_cost(code, size[0], size[1], cfg.model)
    assert params == cost.params
    assert cost.supernet_params > cost.params


def test_baseline_fixed_arch_has_its_own_parameter_count(cfg, size):
    with tf.Graph().as_default():
        fixed = Supernet(cfg.model, cfg.loss, size[0], size[1], fixed_arch=EDGEFLOWNET_BASELINE)
        assert sum(v.shape.num_elements() for v in fixed.trainable_variables) == 2_742_508


@pytest.mark.parametrize("code", [EDGEFLOWNET_BASELINE, MIXED, (2, 1, 0, 2, 1, 0, 2, 1, 0)],
                         ids=lambda c: "".join(map(str, c)))
def test_gradients_reach_exactly_the_selected_path(supernet, make_batch, code):
    names = list(supernet.grads)
    fetched = supernet.session.run([supernet.grads[n] for n in names], supernet.feed(make_batch(1), code, BN_TRAIN))
    off = off_path_prefixes(code)
    for name, grad in zip(names, fetched):
        if any(name.startswith(prefix) for prefix in off):
            assert not np.any(grad), f"{name} is off the path of {code} but got a gradient"
        else:
            assert np.any(grad), f"{name} is on the path of {code} but got no gradient"


def test_depth_options_share_the_first_resblocks(supernet, make_batch):
    """Depth d trains res0..res(d-1) of the stage: depth 1's blocks are inside depth 2's, inside depth 3's."""
    trained = []
    for depth_option in range(3):
        code = (depth_option,) * 4 + (0,) * 5
        names = [n for n in supernet.grads if n.startswith("supernet/EB1/")]
        grads = supernet.session.run([supernet.grads[n] for n in names], supernet.feed(make_batch(2), code, BN_TRAIN))
        trained.append({n.split("/")[2] for n, g in zip(names, grads) if np.any(g)})
    assert trained[0] == {"res0", "down"}
    assert trained[1] == {"res0", "res1", "down"}
    assert trained[2] == {"res0", "res1", "res2", "down"}


def test_fixed_arch_network_restores_a_supernet_checkpoint_and_matches_it(cfg, supernet, make_batch, size,
                                                                          tmp_path):
    code = MIXED
    session, net = supernet.session, supernet.net
    session.run(supernet.init_op)
    for seed in range(3):  # non-trivial moving statistics on the path
        session.run(net.preds, supernet.feed(make_batch(10 + seed), code, BN_TRAIN))
    with supernet.graph.as_default():
        path = supernet.saver.save(session, str(tmp_path / "supernet.ckpt"))
    fixed = Built(cfg, size[0], size[1], fixed_arch=code)
    with fixed.graph.as_default():
        fixed.saver.restore(fixed.session, path)
    batch = make_batch(20)
    for mode in (BN_INFER, BN_TRAIN):
        want = session.run([net.preds, net.loss], supernet.feed(batch, code, mode))
        got = fixed.session.run([fixed.net.preds, fixed.net.loss], fixed.feed(batch, None, mode))
        for a, b in zip(want[0], got[0]):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    fixed.session.close()


def test_fixed_arch_network_has_no_arch_code_input(cfg, size):
    with tf.Graph().as_default():
        net = Supernet(cfg.model, cfg.loss, size[0], size[1], fixed_arch=EDGEFLOWNET_BASELINE)
        assert net.arch_code is None
        assert not [op for op in tf.compat.v1.get_default_graph().get_operations() if op.type in ("Case", "If")]


def bn_named(net, scope):
    return next(bn for bn in net.bns if bn.scope == scope)


def test_moving_stats_change_only_in_train_mode_and_only_on_the_path(supernet, make_batch):
    session, net = supernet.session, supernet.net
    session.run(supernet.init_op)
    names = [v.name for v in net.bn_moving_variables]
    before = session.run(net.bn_moving_variables)
    for mode in (BN_INFER, BN_RECAL):
        session.run(net.preds, supernet.feed(make_batch(3), MIXED, mode))
    for name, old, new in zip(names, before, session.run(net.bn_moving_variables)):
        np.testing.assert_array_equal(new, old, err_msg=name)
    session.run(net.preds, supernet.feed(make_batch(3), MIXED, BN_TRAIN))
    off = off_path_prefixes(MIXED)
    for name, old, new in zip(names, before, session.run(net.bn_moving_variables)):
        if any(name.startswith(prefix) for prefix in off):
            np.testing.assert_array_equal(new, old, err_msg=name)
        else:
            assert np.any(new != old), f"{name} is on the path but its moving statistic did not move"


def test_recal_averages_batch_stats_of_the_path_layers(supernet, make_batch):
    session, net = supernet.session, supernet.net
    session.run(supernet.init_op)
    session.run(net.preds, supernet.feed(make_batch(4), MIXED, BN_TRAIN))
    session.run(net.bn_reset_recal_op)
    batches = [make_batch(30 + i) for i in range(3)]
    for batch in batches:
        session.run(net.preds, supernet.feed(batch, MIXED, BN_RECAL))
    counts = dict(zip([v.name for v in net.bn_recal_variables if "recal_count" in v.name],
                      session.run([v for v in net.bn_recal_variables if "recal_count" in v.name])))
    off = off_path_prefixes(MIXED)
    for name, count in counts.items():
        assert count == (0.0 if any(name.startswith(p) for p in off) else 3.0), name
    off_layer = bn_named(net, "supernet/EB0/res2/bn_a")
    off_before = session.run(off_layer.moving_variables)
    session.run(net.bn_apply_recal_op)
    with supernet.graph.as_default():
        images = tf.concat([tf.cast(net.img0, tf.float32), tf.cast(net.img1, tf.float32)], axis=-1)
        stem_mean, stem_var = tf.nn.moments(net.stem0(images), axes=[0, 1, 2])
    stats = [session.run([stem_mean, stem_var], supernet.feed(batch)) for batch in batches]
    np.testing.assert_allclose(session.run(net.stem0_bn.moving_mean), np.mean([m for m, _ in stats], axis=0),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(session.run(net.stem0_bn.moving_variance), np.mean([v for _, v in stats], axis=0),
                               rtol=1e-4)
    for old, new in zip(off_before, session.run(off_layer.moving_variables)):
        np.testing.assert_array_equal(new, old)


def test_folded_inference_network_matches_the_fixed_arch_network_in_bn_infer(cfg, make_batch, size):
    fixed = Built(cfg, size[0], size[1], fixed_arch=MIXED)
    for seed in range(3):  # moving statistics away from their 0/1 initial values
        fixed.session.run(fixed.net.preds, fixed.feed(make_batch(40 + seed), None, BN_TRAIN))
    names = [v.name.split(":")[0] for v in fixed.net.variables]
    values = dict(zip(names, fixed.session.run(fixed.net.variables)))
    batch = make_batch(50)
    want = fixed.session.run(fixed.net.preds[2], fixed.feed(batch, None, BN_INFER))
    fixed.session.close()
    with tf.Graph().as_default() as graph:
        folded = Supernet(cfg.model, cfg.loss, size[0], size[1], fixed_arch=MIXED, inference_values=values)
        kinds = {op.type for op in graph.get_operations()}
        assert not kinds & {"VarHandleOp", "Mean", "SelectV2", "FusedBatchNormV3"}, kinds
        with tf.compat.v1.Session(graph=graph) as session:
            got = session.run(folded.preds[2], {folded.img0: batch[0], folded.img1: batch[1]})
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)



@pytest.mark.parametrize("option_init, same", [("tied", True), ("tied_kernels", False), ("independent", False)])
def test_tied_options_start_as_one_function(cfg, make_batch, size, option_init, same):
    """model.option_init=tied: at initialisation every subnet computes the same flow (k5/k7 = zero-padded k3, the
    extra ResBlocks the identity); the other modes do not."""
    built = Built(_with_option_init(cfg, option_init), size[0], size[1])
    batch = make_batch(4)
    outputs = [built.session.run(built.net.flow, built.feed(batch, code, BN_TRAIN))
               for code in [(0,) * 9, (2,) * 9, MIXED, EDGEFLOWNET_BASELINE]]
    spread = max(float(np.max(np.abs(o - outputs[0]))) for o in outputs[1:])
    scale = float(np.max(np.abs(outputs[0])))
    assert scale > 0
    assert (spread <= 1e-5 * max(scale, 1.0)) == same, (option_init, spread, scale)
    values = {v.name: built.session.run(v) for v in built.net.variables}
    if option_init != "independent":
        for block in KERNEL_BLOCKS:
            k3 = values[f"supernet/{block}/k3/kernel:0"]
            for size_, pad in ((5, 1), (7, 2)):
                padded = np.pad(k3, [(pad, pad), (pad, pad), (0, 0), (0, 0)])
                assert np.array_equal(values[f"supernet/{block}/k{size_}/kernel:0"], padded), (block, size_)
    gammas = [values[f"supernet/{block}/res{extra}/bn_b/gamma:0"] for block in DEPTH_BLOCKS for extra in (1, 2)]
    assert all((g == 0).all() for g in gammas) == (option_init == "tied")
    assert all((values[f"supernet/{block}/res0/bn_b/gamma:0"] == 1).all() for block in DEPTH_BLOCKS)
    built.session.close()


@pytest.mark.parametrize("fixed_arch", [None, MIXED])
def test_residual_init_identity_starts_every_resblock_as_the_identity(cfg, make_batch, size, fixed_arch):
    """model.residual_init=identity: every ResBlock's last BN gamma is 0, in the supernet and in a fixed arch, so
    a fixed arch computes what the same arch at depth 1 everywhere computes (its first-ResBlock weights copied)."""
    import dataclasses

    identity = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, residual_init="identity"))
    built = Built(identity, size[0], size[1], fixed_arch=fixed_arch)
    values = {v.name: built.session.run(v) for v in built.net.variables}
    gammas = {name: value for name, value in values.items() if "/bn_b/gamma" in name}
    assert len(gammas) == (4 * 3 if fixed_arch is None else sum(1 + MIXED[i] for i in range(4)))
    assert all((g == 0).all() for g in gammas.values())
    if fixed_arch is not None:
        shallow = Built(identity, size[0], size[1], fixed_arch=(0, 0, 0, 0) + MIXED[4:])
        with shallow.graph.as_default():  # the shared variables (same names) take the deep network's values
            shallow.session.run([v.assign(values[v.name]) for v in shallow.net.variables])
        batch = make_batch(2)
        deep_flow = built.session.run(built.net.flow, built.feed(batch, None, BN_INFER))
        shallow_flow = shallow.session.run(shallow.net.flow, shallow.feed(batch, None, BN_INFER))
        np.testing.assert_allclose(deep_flow, shallow_flow, rtol=0, atol=1e-5 * max(1.0, np.abs(deep_flow).max()))
        shallow.session.close()
    built.session.close()


def test_residual_init_is_refused_when_unknown(cfg, size):
    import dataclasses

    bad = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, residual_init="zero"))
    with tf.Graph().as_default(), pytest.raises(ConfigError, match="model.residual_init is 'zero'"):
        Supernet(bad.model, bad.loss, size[0], size[1])


def test_option_init_does_not_change_a_fixed_arch_network(cfg, size):
    """A fixed arch (stand-alone retrain) has one option per block: it starts the same whatever option_init says."""
    values = []
    for option_init in ("independent", "tied"):
        built = Built(_with_option_init(cfg, option_init), size[0], size[1], fixed_arch=MIXED)
        values.append({v.name: built.session.run(v) for v in built.net.variables})
        built.session.close()
    assert values[0].keys() == values[1].keys()
    assert all(np.array_equal(values[0][name], values[1][name]) for name in values[0])
