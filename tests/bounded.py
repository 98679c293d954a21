"""Refusals measured: the error, its message, the Python memory and the time it took."""
import time
import tracemalloc

import pytest


def refusal(call, error, path, match: str, peak_mb: float, max_s: float = 30, max_len: int = 600) -> str:
    """``call()`` must raise ``error`` with a one-line message naming ``path`` and ``match``, using less than
    ``peak_mb`` MB of Python memory (tracemalloc) and ``max_s`` seconds; returns the message."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(error) as info:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert match in message, message
    assert len(message) < max_len, f"{len(message)} characters"
    assert time.monotonic() - started < max_s
    assert peak < peak_mb * 2**20, f"refusal used {peak / 2**20:.0f} MB"
    return message
