"""model.pyramid zoo: the MindSpore model zoo's PSPNet (research/cv/PSPNet), computed as the zoo computes it.

The zoo's network is written below from its cells' structure (src/model/resnet.py and pspnet.py there), not from
this project's code: its backbone (deep stem with a 'same'-padded max pool, PSP-dilated layers), its pyramid (a mean
over the whole 60x60 map, a second stage with no pooling at all, means of 20x20 blocks, a 10x10 average pool, each
resized back with align_corners and concatenated after the map), its heads and its final resize. It is given random
weights, saved under the zoo's own names, and the project's export of that checkpoint must give its logits.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from helpers import TINY, TINY_DEPTH
from src.checkpoint.files import arrays_to_entries, read_pyramid_evidence, save_checkpoint_atomic
from src.config import ConfigError, ModelConfig

CLASSES = 6  # the synthetic shapes set's
WINDOW = 473  # the zoo's crop: a 60x60 map at output stride 8
BLOCKS = {TINY_DEPTH: (1, 1, 1, 1), 50: (3, 4, 6, 3)}


# --- the model zoo's PSPNet, from its structure ----------------------------------------------------------------

def _bn(channels):
    return nn.BatchNorm2d(channels)  # the zoo's BatchNorm_layer: MindSpore's defaults (eps 1e-5)


class ZooBottleneck(nn.Cell):
    """Its Bottleneck: PSP 1 / 2 put dilation 2 / 4 (padding alike, stride 1) on conv2; else the stride sits there."""

    def __init__(self, inplanes, planes, stride=1, down_sample_layer=None, psp=0):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, has_bias=False)
        self.bn1 = _bn(planes)
        dilation = {0: 1, 1: 2, 2: 4}[psp]
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride if psp == 0 else 1, pad_mode="pad",
                               padding=dilation, dilation=dilation, has_bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, has_bias=False)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU()
        self.down_sample_layer = down_sample_layer

    def construct(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.down_sample_layer is None else self.down_sample_layer(x)
        return self.relu(out + residual)


def _zoo_layer(inplanes, planes, blocks, stride, psp):
    """Its _make_layer: a 1x1 projection where the shape changes (stride 1 in the PSP layers)."""
    down = None
    if stride != 1 or inplanes != planes * 4:
        down = nn.SequentialCell([nn.Conv2d(inplanes, planes * 4, 1, stride=stride if psp == 0 else 1,
                                            has_bias=False), _bn(planes * 4)])
    cells = [ZooBottleneck(inplanes, planes, stride, down, psp)]
    cells += [ZooBottleneck(planes * 4, planes, psp=psp) for _ in range(1, blocks)]
    return nn.SequentialCell(cells)


class ZooBackbone(nn.Cell):
    """Its ResNet wrapper: layer1 the deep stem (conv-bn-relu x3, max pool 3/2 'same'), layer2-5 ResNet's layer1-4."""

    def __init__(self, blocks, d):
        super().__init__()
        c64, c128 = 64 // d, 128 // d
        relu = nn.ReLU()
        self.layer1 = nn.SequentialCell([
            nn.Conv2d(3, c64, 3, stride=2, pad_mode="pad", padding=1, has_bias=False), _bn(c64), relu,
            nn.Conv2d(c64, c64, 3, pad_mode="pad", padding=1, has_bias=False), _bn(c64), relu,
            nn.Conv2d(c64, c128, 3, pad_mode="pad", padding=1, has_bias=False), _bn(c128), relu,
            nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")])
        self.layer2 = _zoo_layer(c128, 64 // d, blocks[0], 1, 0)
        self.layer3 = _zoo_layer(256 // d, 128 // d, blocks[1], 2, 0)
        self.layer4 = _zoo_layer(512 // d, 256 // d, blocks[2], 2, 1)
        self.layer5 = _zoo_layer(1024 // d, 512 // d, blocks[3], 2, 2)

    def construct(self, x):
        x = self.layer3(self.layer2(self.layer1(x)))
        x_aux = self.layer4(x)
        return x_aux, self.layer5(x_aux)


class ZooPool1(nn.Cell):
    def construct(self, x):
        return ops.ReduceMean(keep_dims=True)(x, (-2, -1))


class ZooPool3(nn.Cell):
    def construct(self, x):
        n, c, _, _ = x.shape
        return ops.ReduceMean()(ops.Reshape()(x, (n, c, 3, 20, 3, 20)), (3, 5))


class ZooPSPModule(nn.Cell):
    """Its _PSPModule: four stages of in/4 channels; stage2 has no pooling; all resized to 60x60, align_corners."""

    def __init__(self, channels):
        super().__init__()
        out = channels // 4

        def tail():
            return [nn.Conv2d(channels, out, 1, has_bias=False), _bn(out), nn.ReLU()]

        self.stage1 = nn.SequentialCell([ZooPool1()] + tail())
        self.stage2 = nn.SequentialCell(tail())
        self.stage3 = nn.SequentialCell([ZooPool3()] + tail())
        self.stage4 = nn.SequentialCell([nn.AvgPool2d(kernel_size=10, stride=10)] + tail())
        self.resize = ops.ResizeBilinearV2(align_corners=True)
        self.size = ms.Tensor(np.array([60, 60], np.int32))

    def construct(self, x):
        outs = [x] + [self.resize(stage(x), self.size) for stage in (self.stage1, self.stage2, self.stage3,
                                                                      self.stage4)]
        return ops.concat(outs, 1)


def _zoo_head(in_ch, mid, classes):
    return nn.SequentialCell([nn.Conv2d(in_ch, mid, 3, pad_mode="pad", padding=1, has_bias=False), _bn(mid),
                              nn.ReLU(), nn.Dropout(p=0.1), nn.Conv2d(mid, classes, 1, has_bias=True)])


class ZooPSPNet(nn.Cell):
    """Its PSPNet as training saves it (with auxiliary_branch); the eval forward returns the main logits."""

    def __init__(self, layers, d, classes):
        super().__init__()
        self.backbone = ZooBackbone(BLOCKS[layers], d)
        self.ppm = ZooPSPModule(2048 // d)
        self.cls = _zoo_head(4096 // d, 512 // d, classes)
        self.auxiliary_branch = _zoo_head(1024 // d, 256 // d, classes)

    def construct(self, x):
        _, feat = self.backbone(x)
        out = self.cls(self.ppm(feat))
        return ops.ResizeBilinearV2(align_corners=True)(out, ms.Tensor(np.array(x.shape[2:], np.int32)))


def _randomize(net, seed=0):
    """Random weights with live BatchNorm statistics (a test of the pyramid must see every stage's numbers)."""
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        shape = p.shape
        if p.name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif p.name.endswith(("gamma", "moving_mean", "beta")):
            value = rng.normal(1.0 if p.name.endswith("gamma") else 0.0, 0.2, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, math.sqrt(2.0 / (shape[1] * shape[2] * shape[3])), shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        p.set_data(ms.Tensor(value.astype(np.float32)))
    net.set_train(False)
    return net


# --- the tests -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The zoo's tiny PSPNet with random weights, its checkpoint under the zoo's names, its logits on one input."""
    tmp = tmp_path_factory.mktemp("zoo")
    net = _randomize(ZooPSPNet(TINY_DEPTH, TINY, CLASSES))
    weights = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert "ppm.stage2.0.weight" in weights and "backbone.layer1.0.weight" in weights
    ckpt = save_checkpoint_atomic(arrays_to_entries(weights), tmp / "PSPNet-50_133.ckpt")
    x = np.random.default_rng(1).standard_normal((1, 3, WINDOW, WINDOW)).astype(np.float32)
    return {"tmp": tmp, "ckpt": str(ckpt), "x": x, "logits": net(ms.Tensor(x)).asnumpy(), "weights": weights}


MODEL = ModelConfig(layers=TINY_DEPTH, width_divisor=TINY, dropout=0.0)


def _agree(got, want):
    """Max |difference| / max |logit|, and whether every pixel's class is the same."""
    return float(np.abs(got - want).max() / np.abs(want).max()), bool((got.argmax(1) == want.argmax(1)).all())


def test_the_zoos_checkpoint_runs_as_the_zoo_computes_it_in_eval_and_predict(zoo, caplog):
    """The ms backend (eval.py, predict) resolves model.pyramid auto to zoo for a zoo PSPNet and gives its logits;
    the same checkpoint loaded into the semseg form on purpose loads every tensor, says the stage-2 branch computes
    something else, and does (the difference this issue measured)."""
    from src.runtime.backends import make_predict

    caplog.set_level(logging.INFO)
    predict = make_predict("ms", zoo["ckpt"], MODEL, CLASSES, 1, (WINDOW, WINDOW))
    rel, same = _agree(predict(zoo["x"]), zoo["logits"])
    assert rel < 1e-4 and same, rel
    assert "model.pyramid auto -> zoo" in caplog.text and "model zoo PSPNet checkpoint" in caplog.text
    assert "scores with these weights differ" not in caplog.text  # the old warning is gone

    caplog.clear()
    semseg = make_predict("ms", zoo["ckpt"], dataclasses.replace(MODEL, pyramid="semseg"), CLASSES, 1,
                          (WINDOW, WINDOW))
    rel, _ = _agree(semseg(zoo["x"]), zoo["logits"])
    assert rel > 1e-3, rel
    assert "stage-2 branch" in caplog.text and "every tensor loads" in caplog.text


@pytest.mark.parametrize("fmt", ["ONNX", "MINDIR"])
def test_the_export_of_a_zoo_checkpoint_gives_the_zoos_logits(zoo, fmt):
    """export.py's path on the zoo's checkpoint (model.pyramid auto): the exported file computes the zoo's logits,
    and its sidecar says the form."""
    from src.deploy.export import export_model
    from src.runtime.backends import make_predict, read_sidecar

    path = zoo["tmp"] / f"zoo_{fmt.lower()}"
    result = export_model(MODEL, CLASSES, zoo["ckpt"], fmt, 1, WINDOW, WINDOW, str(path), verify=False)
    assert result["pyramid"] == "zoo" and read_sidecar(result["file"])["pyramid"] == "zoo"
    predict = make_predict(fmt.lower(), result["file"], None, CLASSES, 1, (WINDOW, WINDOW))
    rel, same = _agree(predict(zoo["x"]), zoo["logits"])
    assert rel < 1e-4 and same, rel


def test_the_stem_pool_pads_same_as_the_zoos_on_odd_and_even_sides():
    """The zoo form's stem pool against MindSpore's own pad_mode 'same' (odd sides pad both ends, even the end)."""
    from src.model.resnet import StemMaxPool

    zoo_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
    rng = np.random.default_rng(2)
    for hw in ((9, 9), (8, 10), (11, 6)):
        x = ms.Tensor(np.maximum(rng.standard_normal((1, 2) + hw), 0).astype(np.float32))  # after a ReLU
        assert np.array_equal(StemMaxPool(same=True)(x).asnumpy(), zoo_pool(x).asnumpy()), hw
    x = ms.Tensor(np.maximum(rng.standard_normal((1, 2, 8, 8)), 0).astype(np.float32))
    assert not np.array_equal(StemMaxPool()(x).asnumpy(), zoo_pool(x).asnumpy())  # semseg's pads 1 on both ends


def test_another_size_is_one_line_naming_the_keys(zoo):
    """The zoo's pyramid needs its 60x60 map: a 33x33 window, or a 473 window at output stride 16, is refused before
    any network is built, in one line naming every key that sets the size."""
    from src.runtime.backends import make_predict

    for model, hw in ((MODEL, (33, 33)), (dataclasses.replace(MODEL, output_stride=16), (WINDOW, WINDOW))):
        with pytest.raises(ConfigError) as info:
            make_predict("ms", zoo["ckpt"], model, CLASSES, 1, hw)
        message = str(info.value)
        assert "\n" not in message and all(k in message for k in ("eval.test_h/test_w", "train.crop_h/crop_w",
                                                                  "model.output_stride", "60x60"))
    with pytest.raises(ConfigError, match="model.bins"):
        make_predict("ms", zoo["ckpt"], dataclasses.replace(MODEL, bins=[1, 2, 3]), CLASSES, 1, (WINDOW, WINDOW))


def test_auto_is_zoo_only_for_the_zoos_pspnet_and_what_was_trained_in_its_form(zoo, tmp_path, caplog):
    """auto: a zoo PSPNet -> zoo; the zoo's backbone (resnet_deepbase names), this project's checkpoints and a fresh
    network -> semseg; a training checkpoint records its form, so one fine-tuned in the zoo form stays zoo. A training
    run's config.yaml records the resolved form."""
    from src.config import config_yaml
    from src.model.pspnet import PSPNet, resolve_pyramid_of_file
    from src.train.run_state import TrainState, save_train_checkpoint
    from src.train.setup import training_pyramid
    from helpers import tiny_config

    caplog.set_level(logging.INFO)
    assert read_pyramid_evidence(zoo["ckpt"]) == ("pspnet", None)
    assert resolve_pyramid_of_file(MODEL, zoo["ckpt"]).pyramid == "zoo"
    stem = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    backbone = {}
    for name, value in zoo["weights"].items():  # the zoo's ResNet cell names (resnet_deepbase.ckpt)
        parts = name.split(".")
        if parts[0] == "backbone" and parts[1] == "layer1":
            backbone[f"{stem[parts[2]]}.{parts[3]}"] = value
        elif parts[0] == "backbone":
            backbone[".".join([f"layer{int(parts[1][5:]) - 1}"] + parts[2:])] = value
    deepbase = save_checkpoint_atomic(arrays_to_entries(backbone), tmp_path / "resnet_deepbase.ckpt")
    assert read_pyramid_evidence(deepbase) == ("backbone", None)
    assert resolve_pyramid_of_file(MODEL, str(deepbase)).pyramid == "semseg"
    assert resolve_pyramid_of_file(MODEL, "").pyramid == "semseg"

    for form in ("semseg", "zoo"):
        net = PSPNet(classes=CLASSES, layers=TINY_DEPTH, width_divisor=TINY, pyramid=form)
        path = tmp_path / f"{form}.ckpt"
        save_train_checkpoint(path, net, _NoOptimizer(), TrainState())
        assert read_pyramid_evidence(path) == ("", form)
        assert resolve_pyramid_of_file(MODEL, str(path)).pyramid == form

    cfg = tiny_config(tmp_path, tmp_path / "run", train={"crop_h": WINDOW, "crop_w": WINDOW},
                      model={"pretrained": zoo["ckpt"]}, eval_={"test_h": WINDOW, "test_w": WINDOW})
    assert "pyramid: zoo" in config_yaml(training_pyramid(cfg))
    small = tiny_config(tmp_path, tmp_path / "run", model={"pretrained": zoo["ckpt"]})
    with pytest.raises(ConfigError, match="train.crop_h/crop_w"):
        training_pyramid(small)
    assert "pyramid: semseg" in config_yaml(training_pyramid(tiny_config(tmp_path, tmp_path / "run")))
    resumed = {"pyramid_form": np.frombuffer(b"zoo", np.uint8).copy()}
    with pytest.raises(ConfigError, match="run being resumed"):
        training_pyramid(dataclasses.replace(small, model=dataclasses.replace(small.model, pyramid="semseg")),
                         resumed, "epoch_1.ckpt")


class _NoOptimizer:
    """An optimizer with no state to save (all save_train_checkpoint asks of one is its parameters)."""

    @staticmethod
    def get_parameters():
        return iter(())


def test_the_310_flow_runs_the_zoo_export_and_records_its_form(zoo, tmp_path):
    """flow310 with the Python runner on an ONNX export of the zoo's checkpoint: the chunks' meta.json and the
    results say the form; meta.json and sidecar validators refuse a form they do not know, and an older sidecar
    without the field reads as semseg."""
    import json

    from helpers import make_shapes, save_config, tiny_config
    from src import cli
    from src.data.dataset import DataError
    from src.deploy.export import export_model
    from src.deploy.offline import check_meta
    from src.runtime.backends import BackendError, read_sidecar, sidecar_pyramid

    onnx = export_model(MODEL, CLASSES, zoo["ckpt"], "ONNX", 1, WINDOW, WINDOW, str(tmp_path / "zoo"),
                        verify=False)["file"]
    root = make_shapes(tmp_path / "data", num=2, size=48)
    cfg = tiny_config(root, tmp_path / "run", eval_={"test_h": WINDOW, "test_w": WINDOW, "batch_size": 1,
                                                    "flip": False})
    code = cli.main(["--config", str(save_config(cfg, tmp_path / "c.yaml")), "--model", onnx, "--work",
                     str(tmp_path / "work"), "--runner", "python"], command="flow310")
    assert code == 0
    assert json.loads((tmp_path / "work" / "results.json").read_text())["pyramid"] == "zoo"

    meta = {"protocol": {}, "input_shape": [1, 3, WINDOW, WINDOW], "images": [], "pyramid": "pooled"}
    with pytest.raises(DataError, match="pyramid must be semseg or zoo"):
        check_meta(meta, tmp_path / "meta.json")
    sidecar = json.loads((tmp_path / "zoo.onnx.json").read_text())
    (tmp_path / "zoo.onnx.json").write_text(json.dumps({**sidecar, "pyramid": ["zoo"]}))
    with pytest.raises(BackendError, match="its pyramid is"):
        read_sidecar(onnx)
    del sidecar["pyramid"]
    (tmp_path / "zoo.onnx.json").write_text(json.dumps(sidecar))
    assert sidecar_pyramid(read_sidecar(onnx)) == "semseg" and sidecar_pyramid(None) is None


@pytest.mark.slow
def test_fine_tuning_from_the_zoos_checkpoint_trains_and_records_its_form(zoo, tmp_path):
    """A training run from the zoo's PSPNet (model.pretrained, model.pyramid auto) runs the zoo form: its
    config.yaml and its checkpoints say so, so that its checkpoint evaluates in that form under auto."""
    from src.model.pspnet import resolve_pyramid_of_file

    from helpers import ANY_CLASS_MAY_BE_ABSENT, make_shapes, tiny_config
    from src.train.loop import Trainer

    root = make_shapes(tmp_path / "data", num=4, size=48)
    cfg = tiny_config(root, tmp_path / "run", train={"crop_h": WINDOW, "crop_w": WINDOW, "epochs": 1, "max_steps": 1,
                                                     "batch_size": 1},
                      data=ANY_CLASS_MAY_BE_ABSENT,
                      model={"pretrained": zoo["ckpt"]}, eval_={"test_h": WINDOW, "test_w": WINDOW})
    trainer = Trainer(cfg)
    assert trainer.net.pyramid == "zoo" and "pyramid: zoo" in (tmp_path / "run" / "config.yaml").read_text()
    trainer.run()
    saved = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))[-1]
    assert read_pyramid_evidence(saved) == ("", "zoo") and resolve_pyramid_of_file(MODEL, str(saved)).pyramid == "zoo"
