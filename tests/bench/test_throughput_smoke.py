"""A tiny run of ``rlm bench throughput``: the code path works and loses nothing (no timings asserted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rlm.bench.report import Row, table, targets
from rlm.bench.throughput import add_arguments, ideal_batch, plan
from rlm.cli import main


def test_bench_throughput_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main([
        "bench", "throughput", "--n", "24", "--concurrency", "8", "--latency", "0.02", "--overhead-n", "30",
        "--seq-n", "4", "--storm-n", "24", "--storm-admit", "3", "--storm-retry-after", "0.02", "--repeats", "1",
        "--transports", "fast,openai", "--sandbox", "local", "--no-peers", "--json", str(out),
        "--tail-n", "30", "--tail-c", "4", "--tail-median", "0.01", "--tail-sigma", "1.0",
    ])
    assert code == 0
    payload = json.loads(out.read_text())
    rows = {(r["scenario"], r["client"]): r for r in payload["rows"]}
    assert set(rows) == {
        ("batch", "raw aiohttp floor"), ("batch", "rlm fast"), ("batch", "rlm openai"),
        ("sequential llm_query", "rlm fast"), ("overhead L=0", "raw aiohttp floor"),
        ("overhead L=0", "rlm fast"), ("overhead L=0", "rlm openai"),
        ("429 storm (admit 3)", "rlm fast"),
        ("lognormal tail (sigma 1.0)", "raw aiohttp floor"), ("lognormal tail (sigma 1.0)", "rlm fast"),
        ("lognormal tail (sigma 1.0)", "rlm fast hedged"),
    }
    assert all(r["lost"] == 0 and r["wrong"] == 0 for r in payload["rows"])
    assert rows[("batch", "rlm fast")]["ideal"] == ideal_batch(24, 8, 0.02) == 0.06
    assert rows[("429 storm (admit 3)", "rlm fast")]["rate_limited"] > 0  # the storm happened
    assert payload["machine"]["cpus"] >= 1 and payload["machine"]["sandbox"] == "local"
    printed = capsys.readouterr().out
    assert "| 429 storm (admit 3) | rlm fast (" in printed and "of admitted throughput)" in printed
    assert rows[("429 storm (admit 3)", "rlm fast")]["extra"]["share_of_admitted"] > 0
    checks = payload["targets"]  # batch and overhead for each transport; the storm and hedging for the first
    assert len(checks) == 6 and all(c.startswith(("target met", "target NOT met")) for c in checks)
    assert sum("faster than unhedged" in c for c in checks) == 1
    assert sum("batch wall/ideal" in c and "raw aiohttp floor" in c for c in checks) == 2
    assert checks[0] in printed
    # Each part is announced, with its estimate, before its rows; and what it took is said after them.
    announced = [line for line in printed.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in announced] == ["[1/5", "[2/5", "[3/5", "[4/5", "[5/5"]
    assert all(": about " in line for line in announced) and printed.count("  took ") == 5
    assert printed.index("[2/5] sequential llm_query loop of 4 calls") < printed.index("| sequential llm_query |")
    assert payload["machine"]["estimated_seconds"] > 0


def test_ideal_is_whole_waves_of_the_latency() -> None:
    assert ideal_batch(1000, 64, 0.2) == 16 * 0.2
    assert ideal_batch(64, 64, 0.2) == 0.2
    assert table([]).count("\n") == 1  # header and rule only


def test_targets_say_met_or_not_met_from_the_measured_rows() -> None:
    floor = Row("batch", "raw aiohttp floor", 1000, 64, 0.2, walls=[3.3], ideal=3.2)
    fast = Row("batch", "rlm fast", 1000, 64, 0.2, walls=[3.3], ideal=3.2)
    slow = Row("batch", "rlm openai", 1000, 64, 0.2, walls=[4.0], ideal=3.2)
    cpu = Row("overhead L=0", "rlm fast", 2000, 64, 0.0, walls=[0.4], cpu_s=[0.4])
    storm = Row("429 storm (admit 16)", "rlm fast", 1000, 64, 0.2, walls=[13.0], ideal=12.6, lost=1,
                extra={"share_of_admitted": 0.96})
    lines = targets([floor, fast, slow, cpu, storm])
    assert lines[0].startswith("target met ") and "wall/ideal 1.031" in lines[0] and "ours/floor 1.000" in lines[0]
    assert lines[1].startswith("target NOT met") and "wall/ideal 1.250" in lines[1]
    assert lines[2].startswith("target met ") and "0.20 ms/call" in lines[2]
    assert lines[3].startswith("target NOT met") and "1 lost" in lines[3]  # a lost item fails the storm


def test_the_defaults_are_planned_to_finish_within_five_minutes() -> None:
    """The estimate of every part, peers included, for a quiet machine of the kind the docs measured on."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parts = plan(parser.parse_args([]), Path("peers-python"))
    assert [p.title.split(",")[0].split(" of ")[0] for p in parts] == [
        "batch", "sequential llm_query loop", "client overhead", "429 storm", "lognormal tail"]
    assert 180 < sum(p.seconds for p in parts) <= 240
    # The old defaults: the sequential row alone was 1,000 calls at 0.2 s, and two sigmas of 10 repeats.
    old = plan(parser.parse_args(["--seq-n", "1000", "--storm-n", "1000", "--tail-sigma", "1.0,1.5",
                                  "--tail-repeats", "10"]), Path("peers-python"))
    assert sum(p.seconds for p in old) > 600
