"""The benchmark report: one process per benchmark, limits, JSON, Markdown, plot."""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scripts import bench
from scripts.bench_latency import TABLETS, write_plot
from scripts.svgplot import Series, line_chart, nice_ceiling


def _fine(quick: bool, root: Path) -> list[bench.Figure]:
    return [bench.Figure("thing", 2.0, "ms", "floor", 1.0, "≤ 2×")]


def _boom(quick: bool, root: Path) -> list[bench.Figure]:
    raise RuntimeError("the printer caught fire")


def _slow(quick: bool, root: Path) -> list[bench.Figure]:
    time.sleep(60)
    return []


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "BENCHMARKS",
                        {"fine": _fine, "boom": _boom, "slow": _slow})
    monkeypatch.setattr(bench, "STOP_GRACE_S", 5.0)
    monkeypatch.setattr(bench, "MIN_LIMIT_S", 0.5)


@pytest.mark.usefixtures("registry")
def test_figures_come_back_from_the_benchmark_process(tmp_path: Path) -> None:
    outcome = bench.run_one("fine", True, tmp_path, 30.0)

    assert outcome.error == ""
    assert [(f.name, f.ratio) for f in outcome.figures] == [("thing", 2.0)]


@pytest.mark.usefixtures("registry")
def test_a_failing_benchmark_is_reported_not_fatal(tmp_path: Path) -> None:
    outcome = bench.run_one("boom", True, tmp_path, 30.0)

    assert outcome.figures == []
    assert outcome.error == "RuntimeError: the printer caught fire"


@pytest.mark.usefixtures("registry")
def test_a_benchmark_over_its_limit_is_stopped(tmp_path: Path) -> None:
    outcome = bench.run_one("slow", True, tmp_path, 1.0)

    assert "no result within the 1 s limit" in outcome.error
    assert outcome.seconds < 10


def test_a_spent_budget_runs_nothing(tmp_path: Path) -> None:
    outcome = bench.run_one("fine", True, tmp_path, bench.MIN_LIMIT_S - 1)

    assert outcome.error == "not run: the --quick time budget is spent"


@pytest.mark.usefixtures("registry")
def test_json_and_markdown_carry_floor_ratio_machine_and_command(
    tmp_path: Path,
) -> None:
    outcomes = [bench.run_one("fine", True, tmp_path, 30.0),
                bench.Outcome("boom", 0.5, [], "RuntimeError: x")]
    args = argparse.Namespace(quick=True, readme=False, json=tmp_path / "r.json",
                              markdown=tmp_path / "r.md")

    bench.report(outcomes, args, ["fine", "boom"], 3.0)

    data = json.loads(args.json.read_text(encoding="utf-8"))
    assert data["command"] == "python scripts/bench.py --quick fine boom"
    assert data["machine"] == bench.machine_summary()
    assert data["figures"][0] | {"floor": 1.0, "ratio": 2.0, "benchmark": "fine"} \
        == data["figures"][0]
    assert data["benchmarks"][1] == {"name": "boom", "seconds": 0.5,
                                     "error": "RuntimeError: x"}
    text = args.markdown.read_text(encoding="utf-8")
    assert "| thing | 2.000 ms | 1.000 ms (floor) | 2.00× | ≤ 2× |" in text
    assert "**boom failed:** RuntimeError: x" in text


def test_the_latency_plot_is_a_valid_svg_with_four_lines(tmp_path: Path) -> None:
    sales = {n: [float(n + i) for i in range(100)] for n in TABLETS}
    empty = {n: [1.0] * 100 for n in TABLETS}

    path = write_plot(sales, empty, "test run", tmp_path / "plot.svg")

    root = ET.fromstring(path.read_text(encoding="utf-8"))
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 4
    assert all(len(p.get("points", "").split()) == len(TABLETS) for p in lines)


def test_chart_text_is_escaped_and_the_scale_is_round() -> None:
    svg = line_chart("a < b", "&", "x", "y", ["1"], [Series("s", "#000", (3.0,))])

    assert "a &lt; b" in svg and "&amp;" in svg
    assert [nice_ceiling(v) for v in (0.7, 109, 1000)] == [0.8, 150, 1000]
