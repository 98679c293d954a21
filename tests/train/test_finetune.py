"""Fine-tuning across class sets (model.pretrained_head strict / match / fresh), as a user would: a 3-class
checkpoint written by this project's own training save path, loaded into networks of other class sets."""
import json
import logging

import numpy as np
import pytest
import mindspore as ms

from helpers import TINY, TINY_DEPTH, make_two_classes, tiny_config
from src.checkpoint.files import (CLASS_NAMES_ENTRY, arrays_to_entries, is_training_state, load_checkpoint_strict,
                                  save_checkpoint_atomic, saved_class_names)
from src.checkpoint.format import CheckpointError, read_checkpoint
from src.checkpoint.format import zoo_spelling
from src.data.labels import VOC_CLASSES
from src.model.pspnet import PSPNet
from src.outputs.folder import OutputFolder
from src.train.finetune import named_classes
from src.train.finetune import load_pretrained
from src.train.loop import Trainer
from src.train.lr import build_optimizer
from src.train.run_state import RunCheckpoints, TrainState, load_train_state, save_train_checkpoint

NAMES = ["background", "cat", "dog"]
SEED = 11
HEADS = ("cls.4.weight", "cls.4.bias", "aux.4.weight", "aux.4.bias")


def tiny_net(classes: int, seed: int = SEED) -> PSPNet:
    """The tests' tiny PSPNet, its initial weights fixed by ``seed`` (as training seeds its network)."""
    ms.set_seed(seed)
    return PSPNet(classes=classes, layers=TINY_DEPTH, width_divisor=TINY, dropout=0.0)


def weights_of(net) -> dict:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A trained-looking 3-class checkpoint saved by a run's own checkpoint folder, recording its class names:
    (path, its weights)."""
    root = tmp_path_factory.mktemp("source_run")
    net = tiny_net(3)
    rng = np.random.default_rng(0)
    for p in net.get_parameters():  # every value distinct from any initialisation
        p.set_data(ms.Tensor(rng.standard_normal(p.shape).astype(np.float32)))
    cfg = tiny_config(root, root, train={"epochs": 1}, data={"classes": 3, "class_names": NAMES})
    folder = OutputFolder(root, "train.save_dir", "train", lock=False).__enter__()
    ckpts = RunCheckpoints(root, cfg.train, folder, named_classes(cfg.data))
    path = ckpts.save_epoch(net, build_optimizer(net, 0.01, 10), TrainState(epoch=1, step=2), {}, total_steps=2)
    return str(path), weights_of(net)


def _save(tmp_path, entries: dict, name: str = "user.ckpt") -> str:
    return str(save_checkpoint_atomic(arrays_to_entries(entries), tmp_path / name))


def _match(path, names, **kwargs):
    net = tiny_net(len(names))
    load_pretrained(net, path, head="match", class_names=names, **kwargs)
    return weights_of(net)


def test_a_training_checkpoint_records_its_class_names_and_still_loads_for_eval(source, tmp_path):
    path, weights = source
    entries = read_checkpoint(path)
    assert is_training_state(CLASS_NAMES_ENTRY) and entries[CLASS_NAMES_ENTRY].dtype == np.uint8
    assert saved_class_names(entries, path) == NAMES
    net = tiny_net(3, seed=1)  # the eval / export loaders take the file as they did
    assert sorted(load_checkpoint_strict(net, path)) == sorted(weights)
    assert all(np.array_equal(v, weights[n]) for n, v in weights_of(net).items())
    # a custom set without names has nothing worth matching by: no entry
    cfg = tiny_config(tmp_path, tmp_path, data={"dataset": "custom", "classes": 3})
    assert named_classes(cfg.data) is None
    saved = save_train_checkpoint(tmp_path / "custom.ckpt", net, build_optimizer(net, 0.01, 10), TrainState(),
                                  class_names=named_classes(cfg.data))
    assert CLASS_NAMES_ENTRY not in read_checkpoint(saved)


def test_match_keeps_the_shared_rows_and_everything_else_loads(source, caplog):
    path, src = source
    caplog.set_level(logging.INFO)
    got = _match(path, ["background", "dog"])
    for head in HEADS:
        assert np.array_equal(got[head], src[head][[0, 2]]), head
    assert all(np.array_equal(v, src[n]) for n, v in got.items() if n not in HEADS)
    assert "kept 2 classes (background, dog)" in caplog.text and "new, initial rows: 0 (-)" in caplog.text
    assert "classes dropped: 1 (cat)" in caplog.text and "class names recorded in the file" in caplog.text


def test_a_new_class_keeps_the_fresh_initialisation(source, caplog):
    path, src = source
    caplog.set_level(logging.INFO)
    names = ["dog", "horse", "background"]
    fresh = weights_of(tiny_net(3))  # the same seed: what the network starts with
    got = _match(path, names)
    for head in HEADS:
        assert np.array_equal(got[head][0], src[head][2]) and np.array_equal(got[head][2], src[head][0]), head
        assert np.array_equal(got[head][1], fresh[head][1]) and not np.array_equal(got[head][1], src[head][1]), head
    assert "new, initial rows: 1 (horse)" in caplog.text and "dropped: 1 (cat)" in caplog.text


def test_fresh_heads_start_from_the_initialisation_and_the_rest_loads(source, caplog):
    path, src = source
    caplog.set_level(logging.INFO)
    init = weights_of(tiny_net(2))
    net = tiny_net(2)
    load_pretrained(net, path, head="fresh")
    got = weights_of(net)
    assert all(np.array_equal(got[h], init[h]) for h in HEADS)
    assert all(np.array_equal(v, src[n]) for n, v in got.items() if n not in HEADS)
    assert "pretrained_head fresh" in caplog.text and "cls.4.weight" in caplog.text


def test_strict_refuses_another_class_count_naming_the_fine_tuning_keys(source):
    path, _ = source
    net = tiny_net(2)
    before = weights_of(net)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(net, path)
    message = str(info.value)
    assert "\n" not in message and path in message and "model.pretrained_head match" in message
    assert "fresh" in message and "data.classes" in message and "the checkpoint's 3, this network's 2" in message
    assert all(np.array_equal(v, before[n]) for n, v in weights_of(net).items())
    with pytest.raises(CheckpointError) as info:  # as the model of eval / export, fine-tuning is no fix
        load_checkpoint_strict(tiny_net(2), path)
    assert "pretrained_head" not in str(info.value) and "set data.classes" in str(info.value)


def test_a_file_without_names_takes_model_pretrained_class_names(source, tmp_path):
    path, src = source
    plain = _save(tmp_path, src)  # weights only, as a converted or an older checkpoint
    got = _match(plain, ["dog", "background"], pretrained_class_names=NAMES)
    assert np.array_equal(got["cls.4.weight"], src["cls.4.weight"][[2, 0]])
    zoo = _save(tmp_path, {zoo_spelling(n, "pspnet"): v for n, v in src.items()}, "zoo.ckpt")  # the zoo's names
    got = _match(zoo, ["dog", "background"], pretrained_class_names=NAMES)
    assert np.array_equal(got["aux.4.bias"], src["aux.4.bias"][[2, 0]])
    with pytest.raises(CheckpointError, match=r"has 2 names but .*user\.ckpt has 3 classes"):
        _match(plain, ["dog"], pretrained_class_names=["cat", "dog"])
    with pytest.raises(CheckpointError, match="records no class names .* model.pretrained_class_names") as info:
        _match(plain, ["dog"])
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"records its class names \(background, cat, dog; 3\) and "
                                              r"model.pretrained_class_names gives others \(dog, cat, background"):
        _match(path, ["dog"], pretrained_class_names=["dog", "cat", "background"])
    assert _match(path, ["dog"], pretrained_class_names=NAMES)["cls.4.bias"][0] == src["cls.4.bias"][2]


def test_a_21_class_file_without_names_is_taken_as_voc(source, tmp_path, caplog):
    _, src = source
    rng = np.random.default_rng(1)
    voc = dict(src)
    for head in HEADS:
        voc[head] = rng.standard_normal((21,) + src[head].shape[1:]).astype(np.float32)
    path = _save(tmp_path, voc, "voc.ckpt")
    got = _match(path, ["background", "cat", "dog"])
    for head in HEADS:
        assert np.array_equal(got[head], voc[head][[0, VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")]])
    assert "taken to be VOC2012's" in caplog.text


@pytest.mark.parametrize("entry, needle", [
    (np.zeros(10 << 20, np.uint8), "holds 10485760 bytes"),
    (np.frombuffer(b"background,cat,dog", np.uint8), "not UTF-8 JSON"),
    (np.frombuffer(b"\xff\xfe[", np.uint8), "not UTF-8 JSON"),
    (np.frombuffer(b"[" * 100000, np.uint8), "not UTF-8 JSON"),
    (np.frombuffer(json.dumps({"a": 1}).encode(), np.uint8), "not a list of class names"),
    (np.frombuffer(json.dumps(["a", 3, "b"]).encode(), np.uint8), "not a list of class names"),
    (np.frombuffer(json.dumps(["a", "a", "b"]).encode(), np.uint8), "names a class twice"),
    (np.frombuffer(json.dumps(["a", "b"]).encode(), np.uint8), "records 2 class names for its 3 classes"),
    (np.zeros((2, 3), np.float32), "not the UTF-8 text"),
])
def test_a_hostile_class_names_entry_is_one_line_naming_the_file(source, tmp_path, entry, needle):
    _, src = source
    path = _save(tmp_path, {**src, CLASS_NAMES_ENTRY: entry})
    with pytest.raises(CheckpointError) as info:
        _match(path, ["dog"])
    message = str(info.value)
    assert needle in message and "user.ckpt" in message and "\n" not in message and len(message) < 600
    net = tiny_net(3)  # the entry is training state to every other loader
    assert sorted(load_pretrained(net, path)) == sorted(src)


def test_match_refuses_what_it_cannot_match(source, tmp_path):
    path, src = source
    with pytest.raises(CheckpointError, match="none of this config.s classes .* model.pretrained_head fresh"):
        _match(path, ["road", "sky"])
    with pytest.raises(CheckpointError, match="give data.class_names"):
        load_pretrained(tiny_net(2), path, head="match", class_names=None)
    backbone = _save(tmp_path, {n: v for n, v in src.items() if n.startswith("layer")}, "backbone.ckpt")
    with pytest.raises(CheckpointError, match=r"holds no classifier \(cls.4.weight\)"):
        _match(backbone, ["dog"])
    net = tiny_net(2)  # fresh with a backbone: the ImageNet case, as strict
    assert sorted(load_pretrained(net, backbone, head="fresh")) == sorted(n for n in src if n.startswith("layer"))


def test_the_trainer_fine_tunes_from_model_pretrained_and_resume_stays_strict(source, tmp_path):
    path, src = source
    cfg = tiny_config(make_two_classes(tmp_path / "data"), tmp_path / "run", data={"classes": 2, "class_names": ["background", "dog"]},
                      model={"pretrained": path, "pretrained_head": "match"})
    trainer = Trainer(cfg)
    got = weights_of(trainer.net)
    assert all(np.array_equal(got[h], src[h][[0, 2]]) for h in HEADS)
    assert all(np.array_equal(v, src[n]) for n, v in got.items() if n not in HEADS)
    assert trainer.ckpts.class_names == ["background", "dog"]  # what its checkpoints will record
    with pytest.raises(CheckpointError) as info:  # resuming loads strictly, whatever model.pretrained_head says
        Trainer(cfg, resume=path, overwrite=True)
    assert "shape mismatch" in str(info.value) and "pretrained_head" not in str(info.value)
    own = save_train_checkpoint(tmp_path / "own.ckpt", trainer.net, trainer.optimizer, TrainState(1, 2),
                                class_names=["background", "dog"])
    net = tiny_net(2, seed=1)
    load_train_state(read_checkpoint(own), own, net, build_optimizer(net, 0.01, 10))
    assert all(np.array_equal(v, got[n]) for n, v in weights_of(net).items())
