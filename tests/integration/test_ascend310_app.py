"""The Ascend 310 path on MindSpore Lite: the C++ app compiles against the Lite API headers and keeps its file
contract (the Python ``lite`` backend's cases are in tests/runtime/test_backends.py). No Ascend and no Lite runtime
exist here."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


pytestmark = pytest.mark.slow  # compiles and links the 310 app against stand-in and real Lite packages

ROOT = Path(__file__).resolve().parents[2]


def _api_roots():
    """Folders holding include/api/model.h: the repository's stand-in of the API surface the app uses, plus the
    real Lite headers when $MS_API_INCLUDE or $LITE_HOME names them (then the app is compiled against both)."""
    roots = [str(ROOT / "tests" / "fixtures" / "lite_api_surface")]
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
    root = ROOT / "tests" / "fixtures" / "lite_api_surface"
    proc = subprocess.run([os.environ.get("CXX", "g++"), "-std=c++17", "-fsyntax-only", "-isystem", str(root),
                           str(broken)], capture_output=True, text=True)
    assert proc.returncode != 0 and "SetDeviceId" in proc.stderr


def test_310_build_without_lite_package_says_what_is_missing():
    env = {k: v for k, v in os.environ.items() if k != "LITE_HOME"}
    proc = subprocess.run(["bash", "inference/ascend310/build.sh"], cwd=str(ROOT), capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 1 and "LITE_HOME" in proc.stderr


# --- the app built with CMake against a stand-in Lite package, run through every path ---------------------------

@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    from fake_lite import build_fake_lite

    home, app = build_fake_lite(tmp_path_factory.mktemp("lite"))
    return home, app


def _app(lite, args, record=None, **env):
    home, app = lite
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_LITE") and k != "LD_LIBRARY_PATH"}
    if record:
        env["FAKE_LITE_RECORD"] = str(record)
    return subprocess.run([str(app), *args], capture_output=True, text=True, env={**clean, **env}, timeout=60)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    xs = {}
    for name in ("a.bin", "b.bin"):
        xs[name] = rng.standard_normal((2, 3, 33, 33)).astype(np.float32)
        xs[name].tofile(tmp_path / "in" / name)
    (tmp_path / "m.mindir").write_bytes(b"mindir")
    args = [f"--mindir_path={tmp_path / 'm.mindir'}", f"--input_dir={tmp_path / 'in'}",
            f"--output_dir={tmp_path / 'out'}"]
    return tmp_path, xs, args


def test_app_links_through_the_package_layout_and_writes_checked_logits(lite, inputs):
    tmp, xs, args = inputs
    elf = subprocess.run(["readelf", "-d", str(lite[1])], capture_output=True, text=True).stdout
    assert "libmindspore-lite.so" in elf and "third_party/dnnl" in elf  # run path covers third_party
    proc = _app(lite, [*args, "--device_id=3"], record=tmp / "rec.txt")
    assert proc.returncode == 0, proc.stderr
    assert "processed 2 files" in proc.stdout
    assert (tmp / "rec.txt").read_text() == "device=ascend id=3 precision=enforce_fp32\n"  # float32 by default
    for name, x in xs.items():
        y = np.fromfile(tmp / "out" / name.replace(".bin", "_0.bin"), np.float32).reshape(2, 6, 33, 33)
        want = np.stack([x[:, k % 3] + k for k in range(6)], axis=1)
        np.testing.assert_array_equal(y, want)
    assert _app(lite, [*args, "--precision=float16"], record=tmp / "r16.txt").returncode == 0
    assert (tmp / "r16.txt").read_text() == "device=ascend id=0 precision=enforce_fp16\n"


def test_app_writes_each_output_under_a_temporary_name_and_renames_it(lite, inputs):
    """A write that fails (here the temporary name is taken by a folder, as a full disk would fail it) leaves the
    earlier output intact and nothing cut short under the final name; the app exits 1 naming the file."""
    tmp, xs, args = inputs
    (tmp / "out").mkdir()
    (tmp / "out" / "a_0.bin").write_bytes(b"an earlier output")
    (tmp / "out" / "a_0.bin.part").mkdir()
    proc = _app(lite, args)
    assert proc.returncode == 1 and "cannot write" in proc.stderr and "a_0.bin" in proc.stderr
    assert (tmp / "out" / "a_0.bin").read_bytes() == b"an earlier output"
    (tmp / "out" / "a_0.bin.part").rmdir()
    assert _app(lite, args).returncode == 0
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["a_0.bin", "b_0.bin"]  # no temporary left
    assert (tmp / "out" / "a_0.bin").stat().st_size == 2 * 6 * 33 * 33 * 4


@pytest.mark.parametrize("mode,message", [
    ("wrong_shape", "has shape (2, 6, 5, 5), expected (2, classes, 33, 33)"),
    ("fp16", "is not float32"),
    ("two_outputs", "returned 2 outputs"),
    ("null_data", "returned no data"),
    ("short_data", "holds 52268 bytes"),
    ("fp16_input", "model input is not float32"),
    ("build_fail", "cannot build"),
])
def test_app_refuses_outputs_that_do_not_fit(lite, inputs, mode, message):
    tmp, _, args = inputs
    proc = _app(lite, args, FAKE_LITE_MODE=mode)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not any((tmp / "out").glob("*.bin")) if (tmp / "out").exists() else True  # nothing half-written


@pytest.mark.parametrize("extra,code,message", [
    (["--devcie_id=3"], 2, "unknown option --devcie_id"),
    (["--device_id=1", "--device_id=2"], 2, "given twice"),
    (["--precision=int8"], 2, "--precision must be float32 or float16"),
    (["--device=gpu"], 2, "--device must be ascend or cpu"),
    (["positional"], 2, "expected --key=value"),
])
def test_app_refuses_bad_arguments(lite, inputs, extra, code, message):
    _, _, args = inputs
    proc = _app(lite, [*args, *extra])
    assert proc.returncode == code and message in proc.stderr, proc.stderr


def test_app_refuses_bad_folders_and_sizes(lite, inputs):
    tmp, _, args = inputs
    (tmp / "empty").mkdir()
    proc = _app(lite, [args[0], f"--input_dir={tmp / 'empty'}", args[2]])
    assert proc.returncode == 1 and "no .bin input files" in proc.stderr
    proc = _app(lite, [args[0], f"--input_dir={tmp / 'nowhere'}", args[2]])
    assert proc.returncode == 1 and "cannot open input folder" in proc.stderr
    (tmp / "in" / "c.bin").write_bytes(b"\0" * 100)
    proc = _app(lite, args)
    assert proc.returncode == 1 and "c.bin: 100 bytes, but the model input needs 26136" in proc.stderr


def test_app_needs_the_third_party_libraries_at_link_and_run_time(lite, tmp_path):
    home, _ = lite
    broken = tmp_path / "broken"
    shutil.copytree(home, broken, symlinks=True)
    shutil.rmtree(broken / "runtime" / "third_party")
    proc = subprocess.run(["bash", str(ROOT / "inference" / "ascend310" / "build.sh"), str(tmp_path / "b")],
                          env={**os.environ, "LITE_HOME": str(broken)}, capture_output=True, text=True)
    assert proc.returncode != 0 and "libdnnl.so.2" in proc.stdout + proc.stderr  # the link fails loudly


# --- the app against a real MindSpore Lite runtime (mindspore-lite 2.0.0 from the package index) -----------------

@pytest.fixture(scope="module")
def real_lite(tmp_path_factory):
    from real_lite import real_lite_package

    home = real_lite_package()
    if home is None:
        pytest.skip("the mindspore-lite 2.0.0 wheel cannot be downloaded here")
    build = tmp_path_factory.mktemp("real_lite_build")
    proc = subprocess.run(["bash", str(ROOT / "inference" / "ascend310" / "build.sh"), str(build)],
                          env={**os.environ, "LITE_HOME": str(home)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return home, build / "pspnet_310"


def test_app_builds_and_runs_on_the_real_lite_runtime(real_lite, tmp_path):
    """Linked against Lite 2.0's real runtime and headers in the tarball layout, the app loads it through its run
    path. Lite 2.0 refuses a MindSpore 2.10 MINDIR (MindIR version 3); with the version field lowered to 1 (a
    test-only edit: Lite 2.0 then reads a one-convolution graph) the app runs it on Lite's CPU backend, its
    output checks pass on real tensors, and the logits equal MindSpore's."""
    import mindspore as ms
    from mindspore import nn
    from mindspore.train import mind_ir_pb2

    _, app = real_lite
    net = nn.Conv2d(3, 6, 1, weight_init="normal")
    x = np.random.default_rng(0).standard_normal((2, 3, 33, 33)).astype(np.float32)
    ms.export(net, ms.Tensor(x), file_name=str(tmp_path / "conv"), file_format="MINDIR")
    want = net(ms.Tensor(x)).asnumpy()
    (tmp_path / "in").mkdir()
    x.tofile(tmp_path / "in" / "a.bin")
    args = [f"--input_dir={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}", "--device=cpu"]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    refused = subprocess.run([str(app), f"--mindir_path={tmp_path / 'conv.mindir'}", *args], capture_output=True,
                             text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "maximum mind ir version: 1" in refused.stderr
    assert "error: cannot build" in refused.stderr
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString((tmp_path / "conv.mindir").read_bytes())
    assert model.mind_ir_version == 3
    model.mind_ir_version = 1
    (tmp_path / "conv_v1.mindir").write_bytes(model.SerializeToString())
    proc = subprocess.run([str(app), f"--mindir_path={tmp_path / 'conv_v1.mindir'}", *args], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.fromfile(tmp_path / "out" / "a_0.bin", np.float32).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
