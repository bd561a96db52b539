"""``rlm bench sandbox-attacks`` runs: a few rows of its table at every level, each in a fresh host process.

The full table is a bench (docs/security.md); these rows are the cheap ones, and one of
them proves per level, without sending anything, whether a way off the machine exists.
"""

from __future__ import annotations

import argparse

import pytest
from sandbox_modes import MODES

from rlm.bench import sandbox_attacks
from rlm.bench.attacks import every_attack

ROWS = ["read key from os.environ", "find a way off the machine"]  # each cell is a fresh host: a few seconds
PROBLEMS = ("KEY", "HOST", "received", "left behind", "WRITTEN", "AFFECTED", "FAILED", "not available")


def test_a_few_rows_of_the_attack_table_at_every_level(capsys: pytest.CaptureFixture[str]) -> None:
    available = [m for m in MODES if sandbox_attacks.attack_settings(m) is not None]
    assert sandbox_attacks.run(argparse.Namespace(modes=",".join(available), only=ROWS)) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:] for line in lines
            if line.startswith("| ") and not line.startswith("| attack")}
    assert sorted(rows) == sorted(n for n in every_attack()[0] if any(r in n for r in ROWS))
    for name, cells in rows.items():
        assert len(cells) == len(available)
        for mode, cell in zip(available, cells, strict=True):
            assert not any(p in cell for p in PROBLEMS), (name, mode, cell)
    assert rows["read key from os.environ"] == ["[]"] * len(available)
    ways_out = dict(zip(available, rows["find a way off the machine (nothing is sent)"], strict=True))
    if "bwrap" in ways_out:  # its own network namespace: no device and no route but the loopback
        assert ways_out["bwrap"].startswith("off lo: devices none - routes none / none")
    if "uid" in ways_out:  # the host's routes are there, but no socket that could use one
        assert "AF_INET socket PermissionError" in ways_out["uid"]
    if "none" in ways_out:
        assert "AF_INET socket made" in ways_out["none"]
