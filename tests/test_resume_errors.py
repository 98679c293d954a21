"""Resume refusals, in their own file (own pytest process): reading a 590 MB checkpoint needs free memory
that a process which already trained several PSPNet-50s may not have."""
import pytest

from helpers import make_shapes, tiny_config
from src.checkpoint import CheckpointError, read_checkpoint
from src.train.loop import Trainer


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


def test_resume_from_corrupt_or_weights_only_checkpoint_is_refused(shapes, tmp_path):
    Trainer(tiny_config(shapes, tmp_path / "r", train={"epochs": 1})).run()
    ckpt = tmp_path / "r" / "checkpoints" / "epoch_0001.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        Trainer(tiny_config(shapes, tmp_path / "r2", train={"epochs": 2}), resume=str(cut))
    from src.checkpoint import arrays_to_entries, save_checkpoint_atomic

    weights = {k: v for k, v in read_checkpoint(ckpt).items() if k.startswith(("layer", "ppm", "cls", "aux"))}
    save_checkpoint_atomic(arrays_to_entries(weights), tmp_path / "w.ckpt")
    with pytest.raises(CheckpointError, match="weights-only"):
        Trainer(tiny_config(shapes, tmp_path / "r3", train={"epochs": 2}), resume=str(tmp_path / "w.ckpt"))
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(tiny_config(shapes, tmp_path / "r4"), resume=str(tmp_path / "nope.ckpt"))
