"""What the tests of src/checkpoint/ share (imported by name: pytest puts this folder on sys.path): a tiny network
and its weights shifted off their initial values, the model zoo's spelling of this network's names, and the
one-line refusal a mismatched checkpoint gives."""
import numpy as np
import pytest
from mindspore import nn

from src.checkpoint.files import arrays_to_entries, load_checkpoint_strict, save_checkpoint_atomic
from src.checkpoint.format import CheckpointError


class Tiny(nn.Cell):
    def __init__(self, aux=True):
        super().__init__()
        self.cls = nn.SequentialCell([nn.Conv2d(3, 4, 1, has_bias=True), nn.BatchNorm2d(4)])
        if aux:
            self.aux = nn.Conv2d(3, 2, 1, has_bias=True)


def _params(net):
    return {p.name: p.asnumpy() + 1.5 for p in net.get_parameters()}


def _zoo_names_of(ours):
    """Our PSPNet names as the model zoo's cells name them (written from its ResNet and PSPNet cells: the stem is
    ``backbone.layer1`` (conv1, bn1, conv2, ... as one sequence), ResNet's layer1-4 are ``backbone.layer2-5``, the
    pyramid's branches ``ppm.stage1-4`` (stage2 has no pool cell in front), ``auxiliary_branch``)."""
    zoo = {}
    for name, value in ours.items():
        module, _, rest = name.partition(".")
        if module == "layer0":
            new = f"backbone.layer1.{rest}"
        elif module.startswith("layer"):
            new = f"backbone.layer{int(module[5:]) + 1}.{rest}".replace(".downsample.", ".down_sample_layer.")
        elif module == "ppm":
            _, branch, index, leaf = rest.split(".")
            index = int(index) - 1 if branch == "1" else int(index)
            new = f"ppm.stage{int(branch) + 1}.{index}.{leaf}"
        elif module == "aux":
            new = f"auxiliary_branch.{rest}"
        else:
            new = name
        zoo[new] = value
    return zoo


def _refusal(tmp_path, entries, load="strict"):
    """The one-line message loading ``entries`` gives, with the network checked unchanged."""
    from src.model.pspnet import PSPNet
    from src.train.finetune import load_pretrained

    path = save_checkpoint_atomic(arrays_to_entries(entries), tmp_path / "user.ckpt")
    net = PSPNet(classes=6, layers=14, width_divisor=16)
    before = {p.name: p.asnumpy() for p in net.get_parameters()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_strict(net, path) if load == "strict" else load_pretrained(net, str(path))
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in net.get_parameters())
    message = str(info.value)
    assert "\n" not in message and len(message) < 1500 and "user.ckpt" in message
    return message
