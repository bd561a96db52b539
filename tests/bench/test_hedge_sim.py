"""The hedging simulation that chose Hedge's defaults follows the hedger's rules and can tell policies apart."""

from __future__ import annotations

import statistics

import pytest

from rlm import Hedge
from rlm.bench.hedge_sim import simulate
from rlm.cli import main


def test_without_hedging_every_item_is_one_request_and_the_tail_decides() -> None:
    runs = [simulate(600, 32, 0.1, 1.0, seed, None) for seed in range(10)]
    assert all(r.extra == 0 for r in runs)
    assert statistics.fmean(r.seconds for r in runs) > 1.9 * (600 * 0.1 / 32)  # the ideal, every call at the median
    assert simulate(600, 32, 0.1, 1.0, 3, None) == runs[3]  # the same seed, the same batch


def test_hedging_shortens_the_batch_within_max_extra_and_copies() -> None:
    plain = statistics.fmean(simulate(600, 32, 0.1, 1.0, s, None).seconds for s in range(20))
    for policy in (Hedge(), Hedge(percentile=0.9, copies=1), Hedge(max_extra=0.02)):
        runs = [simulate(600, 32, 0.1, 1.0, s, policy) for s in range(20)]
        assert all(r.extra <= int(policy.max_extra * 600) for r in runs)
        assert statistics.fmean(r.seconds for r in runs) < 0.9 * plain, policy
    small = [simulate(15, 32, 0.1, 1.0, s, Hedge()) for s in range(5)]
    assert all(r.extra == 0 for r in small)  # fewer finished calls than min_samples: never hedged


def test_the_command_prints_a_row_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "hedge-sim", "--seeds", "3", "--percentiles", "0.7", "--copies", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "| unhedged |" in out and "| percentile 0.7, copies 1 |" in out and "| percentile 0.7, copies 2 |" in out
