"""Shared test setup: MindSpore on CPU in PyNative mode, tiny shapes only."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _mindspore_cpu():
    from src.device import setup_device

    setup_device("CPU", "PYNATIVE", seed=0)
    yield


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
