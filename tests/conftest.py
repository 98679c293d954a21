"""Shared test setup: MindSpore on CPU in PyNative mode, tiny shapes only."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _mindspore_cpu():
    from src.system.device import setup_device

    setup_device("CPU", "PYNATIVE", seed=0)
    _freeze_the_libraries()
    yield


def _freeze_the_libraries() -> None:
    """Import every module the suite uses once and move those objects out of the garbage collector's sight
    (``gc.freeze``): the collection after each test then scans only what tests made (0.1 s -> ~0 per test,
    about a minute over the suite)."""
    import gc
    import importlib
    import pkgutil

    import src

    for info in pkgutil.walk_packages(src.__path__, "src."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in ("onnx", "onnxruntime", "matplotlib.pyplot", "PIL.Image", "cv2", "yaml", "scipy.io"):
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def reference_keys():
    """The PyTorch reference key/shape lists (a copy of the design notes' reference file, kept in tests/fixtures)."""
    import json

    return json.loads((Path(__file__).resolve().parent / "fixtures" / "torch_state_dict_keys.json").read_text())


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Free the networks a test built before the next one builds more (each PSPNet-50 is ~200 MB)."""
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny PSPNet trained one step on a small 'shapes' set with its checkpoint: (config, checkpoint, folder).
    Shared by tests/deploy/ and tests/runtime/, so it trains once per worker."""
    from helpers import ANY_CLASS_MAY_BE_ABSENT, make_shapes, tiny_config
    from src.train.loop import Trainer

    tmp = tmp_path_factory.mktemp("deploy")
    root = make_shapes(tmp / "data", num=5, size=48, seed=6)
    cfg = tiny_config(root, tmp / "run", train={"epochs": 1, "max_steps": 1}, data=ANY_CLASS_MAY_BE_ABSENT,
                      eval_={"base_size": 40, "test_h": 33, "test_w": 33, "batch_size": 2, "save_images": True})
    Trainer(cfg).run()
    ckpt = tmp / "run" / "checkpoints" / "epoch_0001.ckpt"
    assert ckpt.is_file()
    return cfg, ckpt, tmp


@pytest.fixture(scope="session")
def exported(trained):
    """``trained`` exported as MINDIR and ONNX for batch 2 at 33x33: {format: export_model's result}."""
    from src.deploy.export import export_model

    cfg, ckpt, tmp = trained
    out = {}
    for fmt in ("MINDIR", "ONNX"):
        out[fmt] = export_model(cfg.model, cfg.data.classes, str(ckpt), fmt, 2, 33, 33, str(tmp / "exp" / "m"),
                                mean=cfg.data.mean, std=cfg.data.std)
    return out


@pytest.fixture
def root_logging(monkeypatch):
    """The root logger as the test found it, given back after (the cli's main() and logging_setup reconfigure it
    for the whole process), and no launcher variables (PSPNET_*) around the test."""
    import logging

    for var in ("PSPNET_PID_DIR", "PSPNET_LAUNCHER"):
        monkeypatch.delenv(var, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
