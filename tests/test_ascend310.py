"""The Ascend 310 path on MindSpore Lite: the C++ app compiles against the Lite API headers, and the
Python ``lite`` backend speaks the same file contract.  No Ascend and no Lite runtime exist here."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from src.model.formats import BackendError, lite_predict

ROOT = Path(__file__).resolve().parents[1]


def _api_roots():
    """Folders holding include/api/model.h: the repository's stand-in of the API surface the app uses, plus the
    real Lite headers when $MS_API_INCLUDE or $LITE_HOME names them (then the app is compiled against both)."""
    roots = [str(ROOT / "tests" / "data" / "lite_api_surface")]
    for candidate in (os.environ.get("MS_API_INCLUDE"),
                      os.path.join(os.environ["LITE_HOME"], "runtime") if os.environ.get("LITE_HOME") else None):
        if candidate and os.path.isfile(os.path.join(candidate, "include", "api", "model.h")):
            roots.append(candidate)
    return roots


@pytest.mark.parametrize("api_root", _api_roots())
def test_310_app_compiles_against_the_lite_api(api_root):
    proc = subprocess.run(["bash", "inference/ascend310/build.sh", "--check", api_root], cwd=str(ROOT),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_compile_check_catches_a_wrong_call(tmp_path):
    """The stand-in is strict enough to matter: an app calling an API member that does not exist fails."""
    app = (ROOT / "inference" / "ascend310" / "src" / "main.cc").read_text()
    assert "ascend->SetDeviceID(device_id);" in app
    broken = tmp_path / "main.cc"
    broken.write_text(app.replace("ascend->SetDeviceID(device_id);", "ascend->SetDeviceId(device_id);"))
    root = ROOT / "tests" / "data" / "lite_api_surface"
    proc = subprocess.run([os.environ.get("CXX", "g++"), "-std=c++17", "-fsyntax-only", "-isystem", str(root),
                           str(broken)], capture_output=True, text=True)
    assert proc.returncode != 0 and "SetDeviceId" in proc.stderr


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
