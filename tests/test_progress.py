"""src.progress: the time-left text (eta_text: HH:MM:SS, days past one day, at the average rate so far) and the
Progress log lines with bar, rate and ETA, written about every 5% of the items and at the last one."""
import logging
import re
import time
import types

import pytest

import src.progress
from src.progress import Progress, eta_text


def test_eta_is_the_average_time_per_item_times_the_items_left():
    assert eta_text(10.0, 5, 5) == "00:00:10"
    assert eta_text(60.0, 2, 3) == "00:01:30"
    assert eta_text(3600.0 + 61, 1, 1) == "01:01:01"


def test_eta_past_a_day_shows_the_days():
    assert eta_text(2 * 86400 + 3661, 1, 1) == "2d 01:01:01"
    assert eta_text(86399, 1, 1) == "23:59:59"


def test_eta_with_nothing_done_or_nothing_left_does_not_fail():
    assert eta_text(5.0, 0, 2) == "00:00:10"  # no item done yet: the time so far counts as one item's
    assert eta_text(5.0, 3, 0) == eta_text(5.0, 3, -4) == "00:00:00"


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "src.progress"]


def test_progress_logs_about_every_5_percent_and_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger="src.progress")
    p = Progress(45, "images")  # every 2 items (45 // 20), and item 45
    for done in range(1, 46):
        p.update(done)
    lines = _lines(caplog)
    assert len(lines) == 22 + 1
    assert lines[0].startswith("[") and " 2/45 images" in lines[0]
    assert lines[-1].startswith("[" + "#" * 20 + "]") and " 45/45 images" in lines[-1]


def test_progress_of_few_items_logs_each_one(caplog):
    caplog.set_level(logging.INFO, logger="src.progress")
    p = Progress(3, "windows")
    for done in (1, 2, 3):
        p.update(done)
    assert [re.search(r"\] (\d+)/3 windows", line).group(1) for line in _lines(caplog)] == ["1", "2", "3"]


def test_progress_line_shows_rate_and_time_left(caplog, monkeypatch):
    now = [100.0]
    clock = types.SimpleNamespace(perf_counter=lambda: now[0], strftime=time.strftime, gmtime=time.gmtime)
    monkeypatch.setattr(src.progress, "time", clock)  # this module's clock only
    caplog.set_level(logging.INFO, logger="src.progress")
    p = Progress(20, "images")
    now[0] = 104.0
    p.update(10)  # 0.4 s per image, 10 images left: 4 s
    (line,) = _lines(caplog)
    assert line == "[" + "#" * 10 + " " * 10 + "] 10/20 images, 0.40 s/image, ETA 00:00:04"


@pytest.mark.parametrize("done", [1, 3, 19])
def test_progress_is_silent_between_its_steps(caplog, done):
    caplog.set_level(logging.INFO, logger="src.progress")
    Progress(40).update(done)  # every 2 items
    assert _lines(caplog) == []
