"""src.system.device: which device target a request resolves to (and its one-sentence refusals), the targets
this MindSpore finds here, and the environment set before MindSpore runs kernels (oneDNN's ISA, a user's value kept)."""
import pytest

from src.system.device import (DeviceError, available_targets, choose_device_id, device_peak_gb, peak_rss_gb,
                               prepare_environment, quiet_native_logs, resolve_target, rss_gb)


def test_auto_picks_first_available():
    assert resolve_target("auto", ["GPU", "CPU"]) == "GPU"
    assert resolve_target("auto", ["CPU"]) == "CPU"


def test_missing_device_is_one_clear_sentence():
    with pytest.raises(DeviceError) as info:
        resolve_target("Ascend", ["CPU"])
    msg = str(info.value)
    assert "Ascend" in msg and "available: CPU" in msg and "\n" not in msg


def test_unknown_target():
    with pytest.raises(DeviceError, match="unknown device target"):
        resolve_target("TPU", ["CPU"])


def test_cpu_is_available_here():
    assert "CPU" in available_targets()


def test_onednn_isa_set_only_when_unset(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    prepare_environment("CPU")
    import os
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    prepare_environment("CPU")
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    prepare_environment("Ascend")
    assert "ONEDNN_MAX_CPU_ISA" not in os.environ


def test_quiet_native_logs_sets_errors_only_unless_the_user_chose(monkeypatch):
    import os
    monkeypatch.delenv("GLOG_v", raising=False)
    quiet_native_logs(False)
    assert "GLOG_v" not in os.environ
    quiet_native_logs(True)
    assert os.environ["GLOG_v"] == "3"
    monkeypatch.setenv("GLOG_v", "0")
    quiet_native_logs(True)
    assert os.environ["GLOG_v"] == "0"


def test_device_id_from_a_launcher_comes_before_the_configs():
    assert choose_device_id(2, False, {}) == (2, "device.device_id")
    assert choose_device_id(2, False, {"MS_LOCAL_RANK_ID": "1"}) == (1, "the environment's MS_LOCAL_RANK_ID")
    assert choose_device_id(None, False, {"DEVICE_ID": "4", "MS_LOCAL_RANK_ID": "1"})[0] == 4  # rank table first
    assert choose_device_id(None, True, {"DEVICE_ID": "4"}) == (4, "the environment's DEVICE_ID")  # no flag value
    with pytest.raises(DeviceError, match="MS_LOCAL_RANK_ID='-1' in the environment is not a device number"):
        choose_device_id(0, False, {"MS_LOCAL_RANK_ID": "-1"})


def test_memory_figures_of_this_process():
    now, peak = rss_gb(), peak_rss_gb()
    assert 0 < now <= peak_rss_gb() and peak <= peak_rss_gb()  # a peak never goes down
    rounded = peak_rss_gb(2)
    assert rounded == round(rounded, 2) and abs(rounded - peak) < 0.5
    assert device_peak_gb("CPU") is None  # CPU has no device memory pool
