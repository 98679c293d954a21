"""Tests of src/checkpoint/files.py: atomic saving with a checksum and strict loading into a network (every
missing, unexpected and mis-shaped name listed, nothing changed when refused, allowances explicit, the hint for a
misplaced checkpoint), what counts as training state, and the class-names / pyramid entries a training checkpoint
records. Reading the file format and the model zoo's names: test_format.py."""
import hashlib

import numpy as np
import pytest

from checkpoint_cases import Tiny, _params, _refusal
from src.checkpoint.format import CheckpointError
from src.checkpoint.files import (CLASS_NAMES_ENTRY, PYRAMID_ENTRY, arrays_to_entries,
                                  checksum_path, class_names_entry, load_checkpoint_strict, load_params_strict,
                                  match_parameters, non_finite_names, pyramid_entry, read_weights_and_state,
                                  save_checkpoint_atomic, saved_class_names, saved_pyramid, verify_checksum)


def test_round_trip_exact(tmp_path):
    net = Tiny()
    params = _params(net)
    path = save_checkpoint_atomic(arrays_to_entries(params), tmp_path / "a.ckpt")
    other = Tiny()
    loaded = load_checkpoint_strict(other, path)
    assert sorted(loaded) == sorted(params)
    for p in other.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), params[p.name])
    assert not list(tmp_path.glob("*.tmp*"))


def test_missing_unexpected_and_shape_errors_list_names():
    net = Tiny()
    params = _params(net)
    del params["cls.1.gamma"]
    params["extra.weight"] = np.zeros(3, np.float32)
    params["cls.0.bias"] = np.zeros(5, np.float32)
    with pytest.raises(CheckpointError) as info:
        load_params_strict(net, params, "x.ckpt")
    msg = str(info.value)
    assert "x.ckpt" in msg and "cls.1.gamma" in msg and "extra.weight" in msg and "cls.0.bias" in msg
    assert "(4,)" in msg and "(5,)" in msg


def test_nothing_changes_when_refused():
    net = Tiny()
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    params = _params(net)
    params.pop("aux.weight")
    with pytest.raises(CheckpointError):
        load_params_strict(net, params)
    for p in net.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), before[p.name])


def test_training_checkpoint_into_eval_net_needs_explicit_aux_allowance():
    params = _params(Tiny(aux=True))
    eval_net = Tiny(aux=False)
    with pytest.raises(CheckpointError, match="aux.weight"):
        load_params_strict(eval_net, params)
    loaded = load_params_strict(eval_net, params, allow_unexpected=("aux.",))
    assert not any(n.startswith("aux.") for n in loaded)


def test_every_entry_a_training_checkpoint_adds_is_known_as_training_state():
    """The loader tells weights from training state by name; the run's own names (src.train.run_state) must all
    be known to it, or a resumed checkpoint given to eval would be refused as unexpected weights."""
    from src.checkpoint.files import is_training_state
    from src.train import run_state

    names = run_state.OPTIMIZER_STATE_PREFIXES + run_state.LOOP_STATE_NAMES + (run_state.SCHEDULE_PREFIX + "base_lr",
                                                                            run_state.LOCAL_BEST_NAME)
    assert all(is_training_state(n) for n in names)
    assert not is_training_state("layer0.0.weight") and not is_training_state("cls.4.bias")


def test_misplaced_checkpoints_get_the_right_hint(tmp_path, tiny_pspnet_weights):
    """A backbone given as the model points to model.pretrained (it said "another pyramid"); a file of training
    state only says it holds no weights (it said "a 7x7 stem"); a zoo backbone missing one tensor is still read
    as the zoo's and names that tensor."""
    backbone = {n: v for n, v in tiny_pspnet_weights.items() if n.startswith("layer")}
    assert "give it as model.pretrained" in _refusal(tmp_path, backbone)
    state = {"global_step": np.ones(1, np.int32), "moments.layer0.0.weight": np.zeros(1, np.float32)}
    assert "holds none of this network's weights (only training state)" in _refusal(tmp_path, state)
    stem = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    zoo = {(f"{stem[n.split('.')[1]]}.{n.split('.', 2)[2]}" if n.startswith("layer0.") else
            n.replace(".downsample.", ".down_sample_layer.")): v for n, v in backbone.items()}
    del zoo["bn1.gamma"]
    message = _refusal(tmp_path, zoo, load="pretrained")
    assert "missing from the checkpoint (1): layer0.1.gamma" in message


def test_class_names_are_recorded_as_utf8_json_and_read_back_checked():
    names = ["sky", "road", "café"]
    entry = class_names_entry(names)
    assert entry.dtype == np.uint8 and entry.ndim == 1
    assert saved_class_names({CLASS_NAMES_ENTRY: entry}, "a.ckpt") == names
    assert saved_class_names({"global_step": np.ones(1, np.int32)}, "a.ckpt") is None  # an older file has none
    assert class_names_entry(["x" * 1000] * 1100) is None  # over a megabyte: more than a reader accepts
    for value, match in ((class_names_entry(["a", "a"]), "names a class twice"),
                         (np.zeros(3, np.float32), "not the UTF-8 text"),
                         (np.frombuffer(b"\xff\xfe", np.uint8), "not UTF-8 JSON"),
                         (np.frombuffer(b'{"a": 1}', np.uint8), "not a list of class names"),
                         (np.frombuffer(b'["a", ""]', np.uint8), "not a list of class names")):
        with pytest.raises(CheckpointError, match=match) as info:
            saved_class_names({CLASS_NAMES_ENTRY: value}, "a.ckpt")
        assert str(info.value).startswith("a.ckpt: its class_names entry") and "\n" not in str(info.value)


def test_the_pyramid_form_is_recorded_as_ascii_and_read_back_checked():
    for form in ("semseg", "zoo"):
        assert saved_pyramid({PYRAMID_ENTRY: pyramid_entry(form)}, "p.ckpt") == form
    assert saved_pyramid({}, "p.ckpt") is None
    with pytest.raises(ValueError, match="'psp'"):
        pyramid_entry("psp")
    for value in (np.frombuffer(b"zoom", np.uint8), np.array([122, 111, 111], np.int32), np.zeros((2, 3), np.uint8)):
        with pytest.raises(CheckpointError, match="p.ckpt: its pyramid_form entry is not one of semseg, zoo"):
            saved_pyramid({PYRAMID_ENTRY: value}, "p.ckpt")


def test_the_checksum_beside_a_saved_checkpoint_tells_a_damaged_file(tmp_path):
    path = save_checkpoint_atomic(arrays_to_entries({"w": np.arange(4, dtype=np.float32)}), tmp_path / "w.ckpt")
    assert checksum_path(path) == tmp_path / "w.ckpt.sha256"
    assert checksum_path(path).read_text().split() == [hashlib.sha256(path.read_bytes()).hexdigest(), "w.ckpt"]
    assert verify_checksum(path) is True
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert verify_checksum(path) is False
    checksum_path(path).unlink()
    assert verify_checksum(path) is None  # a file from elsewhere: nothing to check it against


def test_match_parameters_lists_what_differs_after_the_allowances_and_non_finite_names_the_bad_arrays():
    shapes = {"a": (2,), "b": (3, 1), "aux.c": (1,)}
    ckpt = {"a": np.zeros(2), "b": np.zeros((1, 3)), "extra.d": np.zeros(1)}
    mismatch = "b: checkpoint (1, 3) vs network (3, 1)"
    assert match_parameters(shapes, ckpt) == (["aux.c"], ["extra.d"], [mismatch])
    assert match_parameters(shapes, ckpt, allow_missing=("aux.",), allow_unexpected=("extra.",)) == ([], [], [mismatch])
    params = {"nan": np.array([1.0, np.nan], np.float32), "ok": np.ones(2, np.float16), "inf": np.array([-np.inf]),
              "ints": np.array([2 ** 31 - 1], np.int32)}
    assert non_finite_names(params) == ["nan", "inf"]


def test_weights_and_training_state_are_told_apart_in_one_read(tmp_path):
    entries = {"cls.w": np.ones((2, 2), np.float32), "global_step": np.array([7], np.int32),
               "moments.cls.w": np.zeros((2, 2), np.float32), CLASS_NAMES_ENTRY: class_names_entry(["a", "b"])}
    path = save_checkpoint_atomic(arrays_to_entries(entries), tmp_path / "run.ckpt")
    weights, zoo, state = read_weights_and_state(path)
    assert list(weights) == ["cls.w"] and zoo == "" and np.array_equal(weights["cls.w"], entries["cls.w"])
    assert sorted(state) == sorted(["global_step", "moments.cls.w", CLASS_NAMES_ENTRY])
    assert saved_class_names(state, str(path)) == ["a", "b"] and int(state["global_step"][0]) == 7
