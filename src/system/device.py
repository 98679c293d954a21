"""Device and execution-mode setup for MindSpore, and this process's memory peaks (host and device).

All environment changes happen inside :func:`setup_device`, never at import.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping, Optional, Tuple

from src.errors import PSPNetError

logger = logging.getLogger(__name__)

DEVICE_ORDER = ("Ascend", "GPU", "CPU")


class DeviceError(PSPNetError, RuntimeError):
    """The requested device cannot be used by this MindSpore installation."""


def prepare_environment(target: str, quiet: bool = True) -> None:
    """Set process environment that must be in place before MindSpore runs kernels.

    On CPU, ``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN use its JIT GEMM path for
    convolutions (about 150x faster than the reference kernel it picks on
    AVX-512 machines); a value the user set is kept.  ``quiet`` sets
    ``GLOG_v=3`` (errors only) for MindSpore's C++ logs unless already set.
    """
    if target == "CPU" and "ONEDNN_MAX_CPU_ISA" not in os.environ:
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    quiet_native_logs(quiet)


def quiet_native_logs(quiet: bool = True) -> None:
    """``GLOG_v=3`` (errors only) for MindSpore's C++ logs unless the user set it; before MindSpore's import."""
    if quiet and "GLOG_v" not in os.environ:
        os.environ["GLOG_v"] = "3"


def available_targets() -> list:
    """Device targets this MindSpore build can use on this machine, in preference order."""
    import mindspore.hal as hal

    found = []
    for name in DEVICE_ORDER:
        try:
            if hal.is_available(name):
                found.append(name)
        except Exception:  # noqa: BLE001 - a missing plugin raises; that means "not available"
            logger.debug("device %s: availability check raised", name, exc_info=True)
    return found


def resolve_target(requested: str, available: Optional[list] = None) -> str:
    """Map ``auto``/``Ascend``/``GPU``/``CPU`` to a target that exists, or raise DeviceError."""
    valid = ("auto",) + DEVICE_ORDER
    if requested not in valid:
        raise DeviceError(f"unknown device target '{requested}'; choose one of {', '.join(valid)}")
    if available is None:
        available = available_targets()
    if requested == "auto":
        if not available:
            raise DeviceError("this MindSpore installation can use no device at all (not even CPU)")
        return available[0]
    if requested not in available:
        raise DeviceError(
            f"device target '{requested}' is not available with this MindSpore build on this machine "
            f"(available: {', '.join(available) or 'none'}); set device.target to one of those or 'auto'"
        )
    return requested


def choose_device_id(device_id: Optional[int], from_flag: bool, env: Mapping[str, str]) -> Tuple[int, str]:
    """(device id, where it came from): a ``--device_id`` flag first, then a launcher's ``DEVICE_ID`` (rank
    table) or ``MS_LOCAL_RANK_ID`` (msrun), then the config's ``device.device_id``, then 0."""
    if from_flag and device_id is not None:
        return device_id, "--device_id"
    for var in ("DEVICE_ID", "MS_LOCAL_RANK_ID"):
        raw = env.get(var)
        if raw is not None:
            if not (raw.isascii() and raw.isdigit()):
                raise DeviceError(f"{var}={raw!r} in the environment is not a device number; unset it or pass "
                                  f"--device_id N")
            return int(raw), f"the environment's {var}"
    return (0, "the default") if device_id is None else (device_id, "device.device_id")


def setup_device(target: str = "auto", mode: str = "GRAPH", device_id: Optional[int] = None,
                 seed: Optional[int] = None, quiet: bool = True, id_from_flag: bool = False) -> str:
    """Select the device and execution mode; return the target actually used.

    The device id: ``id_from_flag`` (``--device_id``) wins; else a launcher's ``DEVICE_ID`` (rank-table
    launch) or ``MS_LOCAL_RANK_ID`` (msrun), so each process of a data-parallel job gets its own device;
    else ``device_id`` (the config's ``device.device_id``). The log line says which.  ``seed`` seeds
    MindSpore's global seed.
    """
    quiet_native_logs(quiet)  # finding the targets imports MindSpore
    resolved = resolve_target(target)
    prepare_environment(resolved, quiet)
    import mindspore as ms

    if mode not in ("GRAPH", "PYNATIVE"):
        raise DeviceError(f"unknown mode '{mode}'; choose GRAPH or PYNATIVE")
    device_id, source = choose_device_id(device_id, id_from_flag, os.environ)
    if resolved == "CPU":
        ms.set_device("CPU")
    else:
        ms.set_device(resolved, device_id)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "GRAPH" else ms.PYNATIVE_MODE)
    if seed is not None:
        ms.set_seed(seed)
    logger.info("device %s (id %s, from %s), %s mode", resolved, device_id, source, mode)
    return resolved


def peak_rss_gb(digits: Optional[int] = None) -> float:
    """This process image's peak resident memory in GiB, rounded to ``digits`` when given.

    Linux's ``VmHWM`` (``ru_maxrss`` would count the parent's size at a fork); elsewhere ``ru_maxrss``.
    Host memory: on CPU it is the training's memory, on Ascend / GPU the host side only."""
    try:
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = peak / 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere
    gb = kib / 1024 ** 2
    return gb if digits is None else round(gb, digits)


def rss_gb() -> float:
    """This process's resident memory now, in GiB (a baseline before a measured step)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def device_peak_gb(target: str) -> Optional[float]:
    """The device memory pool's peak held by tensors since the process started, in GiB
    (``mindspore.runtime.max_memory_allocated``), or None where MindSpore has no such figure (CPU)."""
    if target == "CPU":
        return None
    try:
        import mindspore as ms

        peak = ms.runtime.max_memory_allocated()
    except (AttributeError, RuntimeError) as exc:  # an older MindSpore, or a backend without the statistic
        logger.debug("device memory peak unavailable: %s", exc)
        return None
    return peak / 2 ** 30 if peak else None
