"""``rlm bench throughput``'s rows and how they are reported: the table, the targets, JSON."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table; ``walls`` holds the timed seconds of each repeat."""

    scenario: str
    client: str
    n: int
    c: int | None
    latency: float
    walls: list[float] = field(default_factory=list)
    ideal: float | None = None
    cpu_s: list[float] = field(default_factory=list)
    lost: int = 0
    wrong: int = 0
    rate_limited: int = 0
    requests: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def ratio(self) -> float | None:
        return self.median / self.ideal if self.ideal else None

    @property
    def cpu_ms_per_call(self) -> float | None:
        return 1000 * statistics.median(self.cpu_s) / self.n if self.cpu_s else None


def row_line(row: Row) -> str:
    ratio = f" wall/ideal={row.ratio:.3f}" if row.ratio else ""
    cpu = f" cpu={row.cpu_ms_per_call:.2f}ms/call" if row.cpu_ms_per_call is not None else ""
    return (f"  {row.scenario:<22} {row.client:<18} N={row.n:<5} C={row.c} median={row.median:.3f}s"
            f"{ratio}{cpu} lost={row.lost} 429s={row.rate_limited}")


def table(rows: list[Row]) -> str:
    """A Markdown table; ``vs rlm``: a batch row's time per call over our first transport's batch."""
    ours = next((r for r in rows if r.scenario == "batch" and r.client.startswith("rlm ")), None)
    lines = [
        (
            "| scenario | client | N | C | L s | wall s, median [min-max] | ideal s | wall/ideal "
            "| ms/call | client CPU ms/call | lost | 429s | vs rlm |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{r.median:.3f} [{min(r.walls):.3f}-{max(r.walls):.3f}]"
        versus = ""
        if ours is not None and r is not ours and r.scenario in ("batch", "sequential llm_query"):
            versus = f"{r.median * ours.n / r.n / ours.median:.2f}x"
        lines.append(
            f"| {r.scenario} | {r.client}{' (' + r.note + ')' if r.note else ''} | {r.n} | {r.c} | {r.latency:g} "
            f"| {spread} | {_f(r.ideal)} | {_f(r.ratio, 3)} | {1000 * r.median / r.n:.2f} "
            f"| {_f(r.cpu_ms_per_call)} | {r.lost} | {r.rate_limited} | {versus} |"
        )
    return "\n".join(lines)


#: The issue's targets: batch wall/ideal, client CPU per call at latency 0, storm share.
TARGET_RATIO = 1.05
TARGET_CPU_MS = 1.0
TARGET_SHARE = 0.85


def targets(rows: list[Row]) -> list[str]:
    """One line per target for each of our transports: what was measured, and whether it is met.

    The batch line also gives the raw aiohttp floor of the same run, because on a small
    machine the server's own CPU keeps even that floor a few percent above the ideal.
    """
    floor = next((r for r in rows if r.scenario == "batch" and r.client == "raw aiohttp floor"), None)
    lines = []
    for row in rows:
        if not row.client.startswith("rlm ") or row.scenario.startswith("sequential"):
            continue
        if row.scenario == "batch" and row.ratio is not None:
            extra = (
                f" (raw aiohttp floor {floor.ratio:.3f}, ours/floor {row.median / floor.median:.3f})"
                if floor and floor.ratio
                else ""
            )
            lines.append(_verdict(
                f"{row.client}: batch wall/ideal {row.ratio:.3f}{extra}",
                row.ratio <= TARGET_RATIO,
                f"<= {TARGET_RATIO}",
            ))
        elif row.scenario == "overhead L=0" and row.cpu_ms_per_call is not None:
            cpu = row.cpu_ms_per_call
            lines.append(_verdict(
                f"{row.client}: client CPU {cpu:.2f} ms/call at latency 0",
                cpu <= TARGET_CPU_MS,
                f"<= {TARGET_CPU_MS} ms",
            ))
        elif "speedup_vs_unhedged" in row.extra:
            speedup = float(row.extra["speedup_vs_unhedged"])
            by_median = float(row.extra.get("median_speedup_vs_unhedged", speedup))
            added = row.requests / (row.n * max(1, len(row.walls))) - 1
            lines.append(_verdict(
                f"{row.client}: {row.scenario}, {speedup:.2f}x faster than unhedged on average "
                f"({by_median:.2f}x by the median) for {added:+.1%} requests",
                speedup >= 1.3 and added <= 0.08,
                ">= 1.3x for <= 8 % extra",
            ))
        elif "share_of_admitted" in row.extra:
            share = row.extra["share_of_admitted"]
            ok = share >= TARGET_SHARE and row.lost == 0
            lines.append(_verdict(
                f"{row.client}: 429 storm {share:.1%} of admitted throughput, {row.lost} lost",
                ok,
                f">= {TARGET_SHARE:.0%}, 0 lost",
            ))
    return lines


def _verdict(measured: str, ok: bool, target: str) -> str:
    return f"target {'met    ' if ok else 'NOT met'} | {measured} | target {target}"


def _f(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def row_json(row: Row) -> dict[str, Any]:
    return {**asdict(row), "median": row.median, "ratio": row.ratio, "cpu_ms_per_call": row.cpu_ms_per_call}


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPUs, versions, load; kept in the JSON beside the rows."""
    import aiohttp
    import openai

    from .. import __version__

    model = ""
    try:
        model = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")), ""
        )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
        "python": platform.python_version(), "rlm": __version__, "openai": openai.__version__,
        "aiohttp": aiohttp.__version__, "loadavg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
