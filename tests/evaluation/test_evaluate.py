"""src.evaluation.evaluate: evaluation during training (fast center crops padded to one batch shape), where the
results go, the batch an exported model dictates, and the result lines printed at the end."""
import json

import numpy as np
import mindspore as ms
from mindspore import nn

from src.evaluation.evaluate import batch_from_model, result_lines, results_dir_of
from src.evaluation.metrics import scores_from_matrix
from src.evaluation.protocol import Protocol


class _Recorder(nn.Cell):
    """Logits that predict class 1 everywhere; remembers every batch shape it was called with."""

    def __init__(self, classes):
        super().__init__()
        self.classes = classes
        self.shapes = []

    def construct(self, x):
        self.shapes.append(tuple(x.shape))
        logits = np.zeros((x.shape[0], self.classes, x.shape[2], x.shape[3]), np.float32)
        logits[:, 1] = 1.0
        return ms.Tensor(logits)


def test_fast_eval_pads_the_last_batch_to_one_shape(tmp_path):
    from helpers import make_shapes, tiny_config
    from src.evaluation.evaluate import evaluate_network as evaluate_net

    root = make_shapes(tmp_path / "d", num=10, size=48, seed=1)
    cfg = tiny_config(root, tmp_path / "run", eval_={"batch_size": 4})
    val = [line for line in (root / "val.txt").read_text().splitlines() if line.strip()]
    assert len(val) % 4  # a short last batch exists
    net = _Recorder(6)
    matrix, count = evaluate_net(net, cfg, "fast", 0, 1)
    assert count == len(val)
    assert {s[0] for s in net.shapes} == {4}
    assert matrix.sum(axis=0)[1] == matrix.sum()  # every counted pixel came from a real image, predicted 1


def test_results_go_to_the_flag_then_eval_save_dir_then_beside_the_run(tmp_path):
    from helpers import tiny_config

    plain = tiny_config(tmp_path, tmp_path / "run")
    assert results_dir_of(plain, "onnx") == tmp_path / "run" / "eval_onnx"
    configured = tiny_config(tmp_path, tmp_path / "run", eval_={"save_dir": str(tmp_path / "ev")})
    assert results_dir_of(configured, "ms") == tmp_path / "ev"
    assert results_dir_of(configured, "ms", str(tmp_path / "flag")) == tmp_path / "flag"


def test_an_exported_model_sets_the_batch_from_its_sidecar(tmp_path):
    protocol = Protocol(classes=3, batch_size=4)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert batch_from_model(protocol, "onnx", str(model)) == protocol  # no sidecar: eval.batch_size stays
    (tmp_path / "m.onnx.json").write_text(json.dumps({"input_shape": [3, 3, 33, 33]}))
    fixed = batch_from_model(protocol, "onnx", str(model))
    assert fixed.batch_size == 3 and fixed.classes == 3 and protocol.batch_size == 4
    assert batch_from_model(protocol, "ms", str(model)) is protocol  # a network in memory takes any batch


def test_result_lines_end_with_the_summary_line_users_grep_for():
    # sky: I 3, target 4, pred 3 -> IoU 3/4, acc 3/4; road: I 2, target 2, pred 3 -> IoU 2/3, acc 1; car: absent
    scores = scores_from_matrix(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
    lines = result_lines(scores, ["sky", "road", "car"], "Eval")
    assert [line.split()[0] for line in lines[1:4]] == ["sky", "road", "car"]
    assert "over the 2 classes present" in lines[-2] and "0.7083" in lines[-2]  # (3/4 + 2/3) / 2
    assert lines[-1] == "Eval:mIoU/mAcc/allAcc 0.4722/0.5833/0.8333."  # (3/4 + 2/3 + 0) / 3, (3/4 + 1 + 0) / 3, 5/6


def test_a_cityscapes_list_of_train_id_masks_is_refused_before_any_image_is_scored(tmp_path):
    """*_labelTrainIds.png files listed with data.dataset cityscapes would be mapped a second time (trainId 7,
    traffic sign, read as road): refused from the list's names before the first image, naming the line."""
    import pytest
    from PIL import Image

    from src.config import Config
    from src.data.dataset import DataError, read_raw_label
    from src.data.labels import dataset_spec
    from src.evaluation.evaluate import val_shard

    lines = []
    for i, kind in enumerate(["labelIds", "labelIds", "labelTrainIds"]):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"c{i}_leftImg8bit.png")
        Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / f"c{i}_gtFine_{kind}.png")
        lines.append(f"c{i}_leftImg8bit.png c{i}_gtFine_{kind}.png")
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    cfg = Config()
    cfg.data.dataset, cfg.data.classes, cfg.data.data_root, cfg.data.val_list = "cityscapes", 19, str(tmp_path), \
        "val.txt"
    with pytest.raises(DataError, match=r"val.txt:3: label .*c2_gtFine_labelTrainIds.png is a Cityscapes "
                                        r"\*_labelTrainIds.png file"):
        val_shard(cfg)
    with pytest.raises(DataError, match="already mapped to the 19 trainIds"):
        read_raw_label(str(tmp_path / "c2_gtFine_labelTrainIds.png"), dataset_spec("cityscapes"))
    (tmp_path / "val.txt").write_text("\n".join(lines[:2]) + "\n")
    assert len(val_shard(cfg)[0]) == 2
