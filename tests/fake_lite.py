"""Builds the stand-in MindSpore Lite package (tests/fixtures/fake_lite + tests/fixtures/lite_api_surface) laid out as the
release tarball, and the 310 app against it with the project's own build script (CMake)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Tuple

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "fixtures"


def build_fake_lite(tmp: Path) -> Tuple[Path, Path]:
    """``(LITE_HOME, app)``: runtime/include/api, runtime/lib/libmindspore-lite.so needing
    runtime/third_party/dnnl/libdnnl.so.2, and the app built by inference/ascend310/build.sh."""
    cxx = os.environ.get("CXX", "g++")
    home = tmp / "mindspore-lite-fake-linux-x64"
    (home / "runtime" / "lib").mkdir(parents=True)
    (home / "runtime" / "third_party" / "dnnl").mkdir(parents=True)
    shutil.copytree(DATA / "lite_api_surface" / "include", home / "runtime" / "include")
    dnnl = home / "runtime" / "third_party" / "dnnl" / "libdnnl.so.2"
    subprocess.run([cxx, "-shared", "-fPIC", "-Wl,-soname,libdnnl.so.2", str(DATA / "fake_lite" / "fake_dnnl.cc"),
                    "-o", str(dnnl)], check=True, capture_output=True)
    subprocess.run([cxx, "-std=c++17", "-shared", "-fPIC", "-isystem", str(home / "runtime"),
                    str(DATA / "fake_lite" / "fake_lite.cc"), "-o", str(home / "runtime" / "lib" / "libmindspore-lite.so"),
                    "-Wl,--no-as-needed", str(dnnl)], check=True, capture_output=True)
    build = tmp / "app_build"
    proc = subprocess.run(["bash", str(ROOT / "inference" / "ascend310" / "build.sh"), str(build)],
                          env={**os.environ, "LITE_HOME": str(home)}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the 310 app failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return home, build / "pspnet_310"
