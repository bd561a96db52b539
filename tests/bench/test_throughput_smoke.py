"""A tiny run of ``rlm bench throughput``: the code path works and loses nothing (no timings asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm.bench.throughput import ideal_batch, table
from rlm.cli import main


def test_bench_throughput_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main([
        "bench", "throughput", "--n", "24", "--concurrency", "8", "--latency", "0.02", "--overhead-n", "30",
        "--seq-n", "4", "--storm-admit", "3", "--storm-retry-after", "0.02", "--repeats", "1",
        "--transports", "fast,openai", "--sandbox", "local", "--no-peers", "--json", str(out),
    ])
    assert code == 0
    payload = json.loads(out.read_text())
    rows = {(r["scenario"], r["client"]): r for r in payload["rows"]}
    assert set(rows) == {
        ("batch", "raw aiohttp floor"), ("batch", "rlm fast"), ("batch", "rlm openai"),
        ("sequential llm_query", "rlm fast"), ("overhead L=0", "raw aiohttp floor"),
        ("overhead L=0", "rlm fast"), ("overhead L=0", "rlm openai"),
        ("429 storm (admit 3)", "rlm fast"), ("429 storm (admit 3)", "rlm openai"),
    }
    assert all(r["lost"] == 0 and r["wrong"] == 0 for r in payload["rows"])
    assert rows[("batch", "rlm fast")]["ideal"] == ideal_batch(24, 8, 0.02) == 0.06
    assert rows[("429 storm (admit 3)", "rlm fast")]["rate_limited"] > 0  # the storm happened
    assert payload["machine"]["cpus"] >= 1 and payload["machine"]["sandbox"] == "local"
    printed = capsys.readouterr().out
    assert "| 429 storm (admit 3) | rlm fast (" in printed and "of admitted throughput)" in printed
    assert rows[("429 storm (admit 3)", "rlm fast")]["extra"]["share_of_admitted"] > 0


def test_ideal_is_whole_waves_of_the_latency() -> None:
    assert ideal_batch(1000, 64, 0.2) == 16 * 0.2
    assert ideal_batch(64, 64, 0.2) == 0.2
    assert table([]).count("\n") == 1  # header and rule only
