"""The Ascend 310 path on MindSpore Lite: the C++ app compiles against the Lite API headers, and the
Python ``lite`` backend speaks the same file contract.  No Ascend and no Lite runtime exist here."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from src.evaluation.backends import BackendError, lite_predict

ROOT = Path(__file__).resolve().parents[1]


def _api_root():
    """A folder holding include/api/model.h: $MS_API_INCLUDE, or $LITE_HOME/runtime."""
    for candidate in (os.environ.get("MS_API_INCLUDE"),
                      os.path.join(os.environ["LITE_HOME"], "runtime") if os.environ.get("LITE_HOME") else None):
        if candidate and os.path.isfile(os.path.join(candidate, "include", "api", "model.h")):
            return candidate
    return None


@pytest.mark.skipif(_api_root() is None, reason="MindSpore Lite API headers not found: set MS_API_INCLUDE to a folder "
                    "holding include/api/model.h (e.g. $LITE_HOME/runtime) to compile-check the 310 app")
def test_310_app_compiles_against_the_lite_api():
    proc = subprocess.run(["bash", "inference/ascend310/build.sh", "--check", _api_root()], cwd=str(ROOT),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_310_build_without_lite_package_says_what_is_missing():
    env = {k: v for k, v in os.environ.items() if k != "LITE_HOME"}
    proc = subprocess.run(["bash", "inference/ascend310/build.sh"], cwd=str(ROOT), capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 1 and "LITE_HOME" in proc.stderr


def test_lite_backend_without_the_wheel_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore_lite", None)  # import fails as if not installed
    with pytest.raises(BackendError, match="mindspore_lite Python package"):
        lite_predict(str(tmp_path / "m.mindir"), 1, (33, 33), 6)


def _fake_lite(calls):
    """A stand-in for the mindspore_lite module recording how the backend drives it."""
    mod = types.ModuleType("mindspore_lite")

    class Context:
        def __init__(self):
            self.target = None
            self.ascend = types.SimpleNamespace(device_id=None)

    class Tensor:
        def set_data_from_numpy(self, x):
            calls.append(("input", x.dtype, x.shape))
            self.data = x

        def get_data_to_numpy(self):
            return self.data * 2

    class Model:
        def build_from_file(self, path, model_type, context):
            calls.append(("build", path, model_type, context.target, context.ascend.device_id))
            self.inputs = [Tensor()]

        def get_inputs(self):
            return self.inputs

        def predict(self, inputs):
            return [inputs[0]]

    mod.Context, mod.Model = Context, Model
    mod.ModelType = types.SimpleNamespace(MINDIR="MINDIR")
    return mod


def test_lite_backend_builds_from_file_and_predicts(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "mindspore_lite", _fake_lite(calls))
    model = tmp_path / "m.mindir"
    model.write_bytes(b"mindir")
    predict = lite_predict(str(model), 2, (33, 33), 6, target="ascend", device_id=3)
    out = predict(np.ones((2, 3, 33, 33), np.float64))
    assert calls[0] == ("build", str(model), "MINDIR", ["ascend"], 3)
    assert calls[1] == ("input", np.float32, (2, 3, 33, 33))
    np.testing.assert_array_equal(out, np.full((2, 3, 33, 33), 2.0))
    with pytest.raises(BackendError, match="not found"):
        lite_predict(str(tmp_path / "none.mindir"), 2, (33, 33), 6)
