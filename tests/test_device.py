import pytest

from src.system.device import DeviceError, available_targets, prepare_environment, resolve_target


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
