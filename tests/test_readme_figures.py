"""The README's performance figures are the benchmark reports' own: every number in that section must
appear in benchmarks/results.md, memory.md or conv.md (copied, not rounded or remembered)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A decimal number on its own: not part of a version (2.13.0, python3.11) or a longer number.
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\d.])")


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("**Speed and memory**")
    return text[start:text.index("### ", start)]


def test_readme_performance_figures_come_from_the_reports():
    reports = "".join((ROOT / "benchmarks" / name).read_text(encoding="utf-8")
                      for name in ("results.md", "memory.md", "conv.md") if (ROOT / "benchmarks" / name).exists())
    figures = NUMBER.findall(_section())
    assert len(figures) >= 10, "the README's performance section lost its figures"
    missing = sorted({f for f in figures if not re.search(rf"(?<![\w.]){re.escape(f)}(?![\d.])", reports)})
    assert not missing, f"README figures not in benchmarks/results.md, memory.md or conv.md: {missing}"


def test_the_number_pattern_skips_versions():
    assert NUMBER.findall("torch 2.13.0+cpu, python3.11, 1.863 s, 0.98x") == ["1.863", "0.98"]
