"""deploy.export: MINDIR and ONNX files that reload equal to the network, the Ascend-only AIR, the verification."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from src.checkpoint.format import CheckpointError
from src.deploy.export import ExportError, export_model


def test_export_mindir_reloads_equal(exported):
    r = exported["MINDIR"]
    assert Path(r["file"]).suffix == ".mindir" and r["input_shape"] == [2, 3, 33, 33]
    # The export is the fixed-size form; it matches the dynamic network to float rounding (~3e-6).
    assert r["max_abs_diff"] <= 1e-5 and r["argmax_agreement"] == 1.0
    assert json.loads(Path(r["file"] + ".json").read_text())["output"] == "logits"


@pytest.mark.parametrize("hw", [(33, 41), (473, 473)])
def test_export_onnx_matches_mindspore(trained, hw):
    cfg, ckpt, tmp = trained
    r = export_model(cfg.model, cfg.data.classes, str(ckpt), "ONNX", 1, hw[0], hw[1], str(tmp / f"o{hw[0]}"))
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
    import onnx

    model = onnx.load(r["file"])
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Resize", "GlobalAveragePool", "AveragePool"}  # pooling/resizes became matmuls


def test_air_needs_ascend(trained):
    cfg, ckpt, tmp = trained
    with pytest.raises(ExportError, match="AIR export needs the Ascend backend"):
        export_model(cfg.model, cfg.data.classes, str(ckpt), "AIR", 1, 33, 33, str(tmp / "a"), device_target="CPU")


def test_mindir_has_no_aicpu_pooling_ops(exported):
    from src.deploy.export import mindir_primitives

    ops = mindir_primitives(exported["MINDIR"]["file"])
    assert ops.get("Conv2D") == 25  # the parse found the real graph: the tiny network has 19 + 4 (PPM) + 2 (cls) convs
    assert not {"AdaptiveAvgPool2D", "MaxPool3DWithArgmax", "ResizeBilinearV2"} & set(ops), sorted(ops)
    assert exported["MINDIR"]["max_abs_diff"] < 1e-3


def test_export_verification_fails_on_non_finite_weights(trained, tmp_path):
    import mindspore as ms

    cfg, ckpt, _ = trained
    params = ms.load_checkpoint(str(ckpt))
    entries = [{"name": n, "data": p.data if hasattr(p, "data") else p} for n, p in params.items()]
    for e in entries:
        if e["name"] == "cls.4.weight":
            arr = e["data"].asnumpy().copy()
            arr[0, 0] = np.nan
            e["data"] = ms.Tensor(arr)
    ms.save_checkpoint(entries, str(tmp_path / "nan.ckpt"))
    with pytest.raises(CheckpointError, match="nan.ckpt: 1 parameters hold NaN or infinite values: cls.4.weight"):
        export_model(cfg.model, cfg.data.classes, str(tmp_path / "nan.ckpt"), "MINDIR", 1, 33, 33,
                     str(tmp_path / "m"), mean=cfg.data.mean, std=cfg.data.std)
    allowed = dataclasses.replace(cfg.model, allow_non_finite=True)  # loaded on request: verification still fails
    with pytest.raises(ExportError, match="non-finite outputs"):
        export_model(allowed, cfg.data.classes, str(tmp_path / "nan.ckpt"), "MINDIR", 1, 33, 33,
                     str(tmp_path / "m"), mean=cfg.data.mean, std=cfg.data.std)
    assert not (tmp_path / "m.mindir").exists() and not (tmp_path / "m.mindir.json").exists()
