"""Shared test setup: MindSpore on CPU in PyNative mode, tiny shapes only."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _mindspore_cpu():
    from src.device import setup_device

    setup_device("CPU", "PYNATIVE", seed=0)
    yield


@pytest.fixture(scope="session")
def reference_keys():
    """The PyTorch reference key/shape lists (../shared/reference), or skip where shared/ is absent."""
    import json

    path = SHARED / "reference" / "torch_state_dict_keys.json"
    if not path.is_file():
        pytest.skip(f"reference key file not found: {path}")
    return json.loads(path.read_text())


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Free the networks a test built before the next one builds more (each PSPNet-50 is ~200 MB)."""
    yield
    import gc

    gc.collect()
