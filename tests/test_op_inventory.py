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
from src.tools.op_inventory import (ALLOWLIST, OpInventoryError, ascend_graphs, check_graphs, docstring_platforms,
                                    graph_primitives, load_allowlist, unlisted)

ROOT = Path(__file__).resolve().parents[1]
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
    for op in ("Conv2D", "Conv2DBackpropFilter", "BatchNormGrad", "SGD", "MatMulExt", "MaxPool"):
        assert train.get(op, 0) > 0, op  # the backward and the update really are in the training graph
    assert "SGD" not in export and export["Conv2D"] == 25  # 19 backbone + 4 PPM + 2 cls convs (tiny network)
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
