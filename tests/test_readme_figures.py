"""The performance figures of the docs are the benchmark reports' own: every number in the "Speed and memory"
section of docs/BENCHMARKS.md, and in each row of the README's results table that cites a report, must appear
in benchmarks/results.md, memory.md or conv.md (copied, not rounded or remembered)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A decimal number on its own: not part of a version (2.13.0, python3.11) or a longer number.
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\d.])")
REPORTS = ("results.md", "memory.md", "conv.md")


def _reports() -> str:
    return "".join((ROOT / "benchmarks" / name).read_text(encoding="utf-8")
                   for name in REPORTS if (ROOT / "benchmarks" / name).exists())


def _missing(figures, reports):
    return sorted({f for f in figures if not re.search(rf"(?<![\w.]){re.escape(f)}(?![\d.])", reports)})


def _section() -> str:
    """docs/BENCHMARKS.md from '## Speed and memory' to the next '## ' heading (its ### parts included)."""
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    start = text.index("## Speed and memory")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _readme_report_rows():
    """The rows of the README's '## Results' table whose source cell names a benchmark report."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Results")
    end = text.find("\n## ", start + 1)
    rows = [line for line in text[start:end].splitlines() if line.startswith("| ")]
    return [row for row in rows if any(f"benchmarks/{name}" in row.rsplit("|", 2)[-2] for name in REPORTS)]


def test_benchmarks_page_performance_figures_come_from_the_reports():
    figures = NUMBER.findall(_section())
    assert len(figures) >= 10, "the performance section of docs/BENCHMARKS.md lost its figures"
    missing = _missing(figures, _reports())
    assert not missing, f"docs/BENCHMARKS.md figures not in benchmarks/results.md, memory.md or conv.md: {missing}"


def test_readme_results_rows_that_cite_a_report_copy_its_figures():
    rows = _readme_report_rows()
    assert len(rows) >= 3, "the README's results table lost its rows from the benchmark reports"
    # the source cell (a date, a link) is not a figure
    figures = [f for row in rows for f in NUMBER.findall("|".join(row.split("|")[1:-2]))]
    assert len(figures) >= 5
    missing = _missing(figures, _reports())
    assert not missing, f"README results figures not in benchmarks/results.md, memory.md or conv.md: {missing}"


def test_the_number_pattern_skips_versions():
    assert NUMBER.findall("torch 2.13.0+cpu, python3.11, 1.863 s, 0.98x") == ["1.863", "0.98"]
