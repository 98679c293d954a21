"""The Ascend graphs hold only allowlisted primitives, and the allowlist's citations match MindSpore's docs."""
import logging
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
import yaml

from helpers import TINY, TINY_DEPTH
from src import cli
from src.config import ModelConfig
from src.model.pspnet import build_pspnet
from src.tools.op_inventory import (ALLOWLIST, OpInventoryError, aicpu_only, ascend_graphs, check_aicore,
                                    check_graphs, docstring_platforms, graph_primitives, load_aicpu_accepted,
                                    load_allowlist, unlisted, wheel_registrations)

pytestmark = pytest.mark.slow  # compiles the Ascend training graphs on CPU

ROOT = Path(__file__).resolve().parents[2]
HW = (33, 41)


@pytest.fixture(scope="module")
def graphs():
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield ascend_graphs(ModelConfig(layers=TINY_DEPTH, width_divisor=TINY), 5, HW)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def test_every_cited_statement_is_the_installed_docstring():
    allowlist = load_allowlist()
    cited = {op: e for op, e in allowlist.items() if "api" in e}
    assert len(cited) > 30
    for op, entry in cited.items():
        assert docstring_platforms(entry["api"]) == entry["ascend"], f"{op}: {entry['api']}"
        assert "Ascend" in entry["ascend"].split(), op


def test_training_step_and_export_hold_only_allowlisted_primitives(graphs):
    allowlist = load_allowlist()
    check_graphs(graphs, allowlist)  # raises, naming them, if a primitive is not listed
    train, export = graphs["train"], graphs["export"]
    for op in ("Conv2D", "Conv2DBackpropFilter", "BatchNormGrad", "ApplyMomentum", "MatMulExt", "MaxPool"):
        assert train.get(op, 0) > 0, op  # the backward and the update really are in the training graph
    assert "ApplyMomentum" not in export and export["Conv2D"] == 25  # 19 backbone + 4 PPM + 2 cls convs (tiny network)
    aicpu_only = yaml.safe_load(ALLOWLIST.read_text())["aicpu_only"]
    for name, counts in graphs.items():
        assert not set(aicpu_only) & set(counts), name


def test_the_dynamic_form_would_fail_the_gate(tmp_path):
    """What the fixed form avoids is real: the dynamic network holds AdaptiveAvgPool2D, and the gate names it."""
    net = build_pspnet(ModelConfig(graph_form="dynamic", layers=TINY_DEPTH, width_divisor=TINY), 5, for_training=False)
    net.set_train(False)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        counts = graph_primitives(net, (ms.Tensor(np.zeros((1, 3, *HW), np.float32)),), tmp_path / "dyn.mindir")
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert counts.get("AdaptiveAvgPool2D", 0) == 4  # one per bin
    with pytest.raises(OpInventoryError, match=r"export graph: AdaptiveAvgPool2D, ResizeBilinearV2"):
        check_graphs({"export": counts}, load_allowlist())


@pytest.mark.parametrize("entry,needle", [
    ({"Foo": {"api": "mindspore.ops.Conv2D", "grad_of": "Conv2D"}}, "exactly one of"),
    ({"FooGrad": {"grad_of": "Foo"}}, "gradient of Foo, which is not listed"),
    ({"Foo": {"api": "mindspore.ops.Conv2D"}}, "not its 'ascend' statement"),
])
def test_a_malformed_allowlist_is_refused(tmp_path, entry, needle):
    path = tmp_path / "allow.yaml"
    path.write_text(yaml.safe_dump({"ops": entry}))
    with pytest.raises(OpInventoryError, match=needle):
        load_allowlist(path)


def test_cli_exits_2_naming_what_is_missing(tmp_path, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    data = yaml.safe_load(ALLOWLIST.read_text())
    del data["ops"]["MaxPool"], data["ops"]["MaxPoolGrad"]
    reduced = tmp_path / "reduced.yaml"
    reduced.write_text(yaml.safe_dump(data))
    out = tmp_path / "ops.md"
    try:
        code = cli.main(["--config", str(ROOT / "config" / "demo_synthetic.yaml"), "--size", *map(str, HW),
                         "--allowlist", str(reduced), "--out", str(out), "--opts", "model.width_divisor", str(TINY), "model.layers", str(TINY_DEPTH)],
                        command="op-inventory")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "train graph: MaxPool, MaxPoolGrad; export graph: MaxPool" in errors[0]
    assert "| MaxPool | 1 | 1 | NOT LISTED |" in out.read_text()
    assert unlisted({"g": {"MaxPool": 1, "Conv2D": 1}}, data["ops"]) == {"g": ["MaxPool"]}


@pytest.fixture(scope="module")
def registrations():
    return wheel_registrations()


def test_the_wheel_tells_ai_cpu_from_ai_core(registrations):
    """The reading of the wheel finds what is known: Dropout2D, AdaptiveAvgPool2D and BiasAdd have only AI CPU
    kernels; GatherD (AI CPU too) also has an ACLNN kernel, and Conv2D no AI CPU one."""
    assert aicpu_only(["Dropout2D", "AdaptiveAvgPool2D", "BiasAdd", "BiasAddGrad", "GatherD", "GatherDGradV2",
                       "Conv2D", "Add", "Mul", "Dropout"], registrations) == \
        ["AdaptiveAvgPool2D", "BiasAdd", "BiasAddGrad", "Dropout2D"]
    assert {"GatherD", "Mul", "Add"} <= registrations["aicpu"] and {"GatherD", "Mul", "Add"} <= registrations["aclnn"]


def test_no_ai_cpu_only_primitive_in_the_graphs(graphs, registrations):
    accepted = load_aicpu_accepted()
    check_aicore(graphs, registrations, accepted)  # raises, naming them, if one is found
    assert "Dropout2D" not in graphs["train"] and "Dropout" in graphs["train"]
    assert "BiasAdd" not in graphs["train"] and "BiasAddGrad" not in graphs["train"]
    assert set(aicpu_only(graphs["train"], registrations)) <= set(accepted)
    with pytest.raises(OpInventoryError, match=r"train graph: Gather, Reshape, Squeeze;"):
        check_aicore(graphs, registrations, {})


def test_every_accepted_ai_cpu_primitive_is_named_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for op in load_aicpu_accepted():
        assert f"`{op}`" in readme, op


def test_channel_dropout_draws_dropout2d_s_distribution():
    """ChannelDropout (AI Core ops) against nn.Dropout2d (AI CPU only): per (sample, channel) 0 or 1/(1-p), the
    same drop rate within binomial noise; the identity in eval mode."""
    from mindspore import nn

    from src.model.pspnet import ChannelDropout

    x = ms.Tensor(np.random.default_rng(0).standard_normal((16, 512, 3, 3)).astype(np.float32))
    rates = {}
    for name, cell in (("ours", ChannelDropout(0.3)), ("dropout2d", nn.Dropout2d(p=0.3))):
        cell.set_train(True)
        y = cell(x).asnumpy()
        ratio = y / x.asnumpy()
        kept = np.isclose(ratio, 1 / 0.7, rtol=1e-5)
        dropped = y == 0
        assert np.all(kept | dropped), name
        assert np.all(dropped.all(axis=(2, 3)) | kept.all(axis=(2, 3))), name  # whole maps, never single pixels
        rates[name] = dropped[:, :, 0, 0].mean()
        cell.set_train(False)
        np.testing.assert_array_equal(cell(x).asnumpy(), x.asnumpy())
    sigma = np.sqrt(0.3 * 0.7 / (16 * 512))
    assert abs(rates["ours"] - 0.3) < 5 * sigma and abs(rates["dropout2d"] - 0.3) < 5 * sigma
    assert abs(rates["ours"] - rates["dropout2d"]) < 7 * sigma


def test_add_bias_conv_equals_the_bias_add_conv():
    from mindspore import nn

    from src.model.resnet import AddBiasConv2d

    ref = nn.Conv2d(8, 5, 1, has_bias=True, bias_init="normal")
    ours = AddBiasConv2d(8, 5, 1, has_bias=True)
    ours.weight.set_data(ref.weight.data)
    ours.bias.set_data(ref.bias.data)
    assert [p.name for p in ours.get_parameters()] == [p.name for p in ref.get_parameters()]
    x = ms.Tensor(np.random.default_rng(1).standard_normal((2, 8, 7, 9)).astype(np.float32))
    np.testing.assert_allclose(ours(x).asnumpy(), ref(x).asnumpy(), rtol=1e-6, atol=1e-6)


def test_amp_and_dynamic_loss_scale_graph_is_allowlisted_and_ai_core(registrations):
    """The step as train.amp_level O2 + train.loss_scale dynamic builds it (Cast, IsFinite, ReduceAll, Switch...)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        g = ascend_graphs(ModelConfig(layers=TINY_DEPTH, width_divisor=TINY), 5, HW, amp_level="O2",
                          loss_scale="dynamic")
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    for op in ("Cast", "IsFinite", "ReduceAll", "Switch"):
        assert op in g["train"], op
    check_graphs(g, load_allowlist())
    check_aicore(g, registrations, load_aicpu_accepted())
    assert "SyncBatchNormGrad" in load_allowlist()
