"""A real MindSpore Lite runtime from the package index, laid out as Lite's release tarball.

The only Lite on the index is ``mindspore-lite`` 2.0.0 (a Python 3.7 wheel).  Its ``mindspore_lite/lib`` holds
the cloud-inference runtime (``libmindspore-extendrt_python.so`` with the C++ API the app calls) and its
``include/api`` the headers; this module downloads the wheel once (into ``.venv/lite-2.0.0``), and lays the
files out as ``runtime/include``, ``runtime/lib`` (the runtime as ``libmindspore-lite.so``, plus its converter
plugins) and ``runtime/third_party/{dnnl,glog,opencv}``.  ``None`` when the wheel cannot be had.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "mindspore_lite-2.0.0-cp37-cp37m-manylinux1_x86_64.whl"
RUNTIME_LIBS = {  # wheel file -> its place in the tarball layout (and the name it is loaded by)
    "libmindspore-extendrt_python.so": "runtime/lib/libmindspore-lite.so",
    "libmindspore_converter.so": "runtime/lib/libmindspore_converter.so",
    "libmslite_converter_plugin.so": "runtime/lib/libmslite_converter_plugin.so",
    "libmindspore_core.so": "runtime/lib/libmindspore_core.so",
    "libmsplugin-ge-litert_python.so": "runtime/lib/libmsplugin-ge-litert.so",
    "libruntime_convert_plugin_python.so": "runtime/lib/libruntime_convert_plugin_python.so",
    "libdnnl.so.2": "runtime/third_party/dnnl/libdnnl.so.2",
    "libmindspore_glog.so.0": "runtime/third_party/glog/libmindspore_glog.so.0",
    "libopencv_core.so.4.5": "runtime/third_party/opencv/libopencv_core.so.4.5",
    "libopencv_imgcodecs.so.4.5": "runtime/third_party/opencv/libopencv_imgcodecs.so.4.5",
    "libopencv_imgproc.so.4.5": "runtime/third_party/opencv/libopencv_imgproc.so.4.5",
}


def real_lite_package(cache: Path = ROOT / ".venv" / "lite-2.0.0") -> Optional[Path]:
    """LITE_HOME of the laid-out package (made once), or None if the wheel cannot be downloaded here."""
    home = cache / "mindspore-lite-2.0.0-linux-x64"
    if (home / "runtime" / "lib" / "libmindspore-lite.so").is_file():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               "--python-version", "3.7", "--implementation", "cp", "--abi", "cp37m",
                               "--platform", "manylinux1_x86_64", "mindspore-lite==2.0.0", "-d", str(cache)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wheel.is_file():
            return None
    staging = cache / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            rel = name[len("mindspore_lite/"):]
            if rel.startswith("include/"):
                z.extract(name, staging)
                dst = staging / "runtime" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                (staging / name).replace(dst)
            elif rel.startswith("lib/") and rel[4:] in RUNTIME_LIBS:
                z.extract(name, staging)
                dst = staging / RUNTIME_LIBS[rel[4:]]
                dst.parent.mkdir(parents=True, exist_ok=True)
                (staging / name).replace(dst)
    # the runtime's own SONAME, which the app and the plugins record as their dependency
    (staging / "runtime" / "lib" / "libmindspore-extendrt_python.so").symlink_to("libmindspore-lite.so")
    shutil.rmtree(staging / "mindspore_lite", ignore_errors=True)
    staging.rename(home)
    wheel.unlink()  # 170 MB; the laid-out package is what is kept
    return home
