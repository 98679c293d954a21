"""The label contract of data.labels (data.ignore_label, data.reduce_zero_label): another ignore value read by the
loader, its padding and the metrics, 1..N read as classes with 0 ignored, settings that contradict refused by
the config, and no module of src/ keeping an ignore value of its own."""
import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.config import DataConfig
from src.data.dataset import DataError, SegDataset, check_label_values, read_label, read_list
from src.data.labels import dataset_spec
from user_masks import photos as _photos

SRC = Path(__file__).resolve().parents[2] / "src"


def test_another_ignore_value_is_read_everywhere_the_loader_looks(tmp_path):
    label = np.array([[0, 1, 2, 250]], np.uint8)
    Image.fromarray(label).save(tmp_path / "l.png")
    spec = dataset_spec("custom", 3, ignore_label=250)
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png"), spec), label)
    check_label_values(label, spec, "l.png")  # 250 is the ignore value: fine
    with pytest.raises(DataError, match=r"values \[255\] outside \[0, 3\) and not data.ignore_label 250"):
        check_label_values(np.array([[0, 255]], np.uint8), spec, "l.png")
    assert spec.palette[250].tolist() == [255, 255, 255] and spec.palette[255].tolist() != [255, 255, 255]


def test_reduce_zero_label_reads_1_to_n_as_classes_and_0_as_ignored(tmp_path):
    Image.fromarray(np.array([[0, 1, 2, 3, 255]], np.uint8)).save(tmp_path / "l.png")
    spec = dataset_spec("custom", 3, reduce_zero_label=True)
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png"), spec), [[255, 0, 1, 2, 255]])
    with pytest.raises(DataError, match=r"values \[4\] outside 0 \(unlabeled\), 1..3"):
        check_label_values(np.array([[0, 4]], np.uint8), spec, "l.png")
    # with ignore 250, file value 251 would become 250 = ignore after the shift: refused, never silently ignored
    spec250 = dataset_spec("custom", 3, ignore_label=250, reduce_zero_label=True)
    with pytest.raises(DataError, match=r"\[251\]"):
        check_label_values(np.array([[1, 251]], np.uint8), spec250, "l.png")


def test_the_ignore_constant_is_only_the_configs_default():
    """No module keeps its own ignore value: every `ignore_label` parameter or field is required or defaults to the
    config's default, and no module-level name holds the number as 'IGNORE'."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults + \
                    node.args.kw_defaults
                pairs = zip(args, defaults)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for target, default in pairs:
                name = getattr(target, "arg", None) or getattr(target, "id", None)
                if name is None or not (name.lower() in ("ignore", "ignore_value", "ignore_index")
                                        or name.lower().endswith("ignore_label")):
                    continue
                if default is None or ast.unparse(default) == "DataConfig.ignore_label":
                    continue
                if path.name == "config.py" and name == "ignore_label":
                    continue  # the default itself
                if isinstance(default, ast.Constant) and isinstance(default.value, int):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {name} = {default.value}")
    assert not offenders, offenders
    assert DataConfig.ignore_label == 255


def test_training_and_eval_count_exactly_the_labelled_pixels_with_ignore_250(tmp_path):
    """A data set whose unlabeled value is 250: the loader serves it, the padding uses it, the metrics skip it."""
    from src.data.transforms import CenterCropTransform
    from src.evaluation.metrics import ConfusionMatrix

    label = np.full((10, 12), 250, np.uint8)
    label[2:6, 3:9] = 1
    label[6:, :] = 0
    _photos(tmp_path, [label, label])
    (tmp_path / "list.txt").write_text("photos/p0.jpg masks/p0.png\nphotos/p1.jpg masks/p1.png\n")
    spec = dataset_spec("custom", 2, ignore_label=250)
    transform = CenterCropTransform(16, 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 250)
    ds = SegDataset(read_list(tmp_path / "list.txt", tmp_path), spec, 2, transform)
    _, served = ds[0]
    assert set(np.unique(served).tolist()) == {0, 1, 250}
    labelled = int((label != 250).sum())
    assert int((served != 250).sum()) == labelled  # the padding added only ignored pixels
    cm = ConfusionMatrix(2, 250)
    cm.update(np.zeros_like(served), served)
    assert int(cm.matrix.sum()) == labelled
