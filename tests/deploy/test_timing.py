"""Noise-aware timing (issue 23): verdicts on constructed timings, and the rounds of
``interleaved``. No speed is asserted: the callables are counted, not timed."""

import statistics

import numpy as np
import pytest

from lightcompress.deploy import timing
from lightcompress.deploy.timing import Latency, interleaved, verdict
from lightcompress.errors import OptionError


def _latency(center, spread, n=60, seed=0):
    rng = np.random.default_rng(seed)
    return Latency.from_samples(1, center + spread * rng.standard_normal(n), warmup=0)


def test_equal_distributions_are_same_within_noise():
    # Two timings of one distribution: a verdict would be a false alarm. Notches that must not
    # overlap give about 2% of them; 100 pairs, at most 5.
    verdicts = [verdict(_latency(1.0, 0.1, seed=seed), _latency(1.0, 0.1, seed=seed + 1000)) for seed in range(100)]
    assert sum(v.word != "same within noise" for v in verdicts) <= 5
    assert "same within noise (±" in next(v.text() for v in verdicts if v.word == "same within noise")


def test_clearly_separated_distributions_get_a_verdict():
    for seed in range(20):  # 20% apart, spread 10%, 60 calls: always a verdict
        fast, slow = _latency(1.0, 0.1, seed=seed), _latency(1.2, 0.12, seed=seed + 1000)
        assert verdict(slow, fast).word == "faster" and verdict(fast, slow).word == "slower"
    fast, slow = _latency(1.0, 0.05), _latency(1.5, 0.05, seed=1)
    assert verdict(slow, fast).text().endswith("faster") and 0.6 < verdict(slow, fast).ratio < 0.7


def test_a_difference_inside_a_wide_spread_is_no_verdict():
    # 10% apart, but each timing spreads by 100% of its median over 10 calls: no verdict.
    a, b = _latency(1.0, 1.0, n=10), _latency(1.1, 1.0, n=10, seed=3)
    assert verdict(a, b).word == "same within noise"
    assert verdict(a, b).noise > 0.1


def test_the_noise_never_falls_below_the_floor():
    exact = Latency.from_samples(1, [2.0] * 30, warmup=0)
    nearly = Latency.from_samples(1, [2.0 * (1 + timing.MIN_NOISE / 2)] * 30, warmup=0)
    assert exact.iqr_ms == 0 and verdict(exact, nearly).word == "same within noise"


def test_latency_reports_its_quartiles_and_calls():
    lat = Latency.from_samples(32, [1, 2, 3, 4, 5], warmup=2)
    assert (lat.batch, lat.median_ms, lat.min_ms, lat.repeats, lat.warmup) == (32, 3, 1, 5, 2)
    assert lat.q1_ms == 2 and lat.q3_ms == 4 and lat.iqr_ms == 2
    assert lat.noise_ms == pytest.approx(timing.NOTCH * 2 / 5 ** 0.5)


def test_interleaved_takes_turns_and_times_each_callable_alike():
    order = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    out = interleaved(calls, repeats=10, warmup=2, batch=4)
    assert [lat.batch for lat in out] == [4, 4]
    assert out[0].repeats == out[1].repeats >= 10
    assert order[:4] == ["a", "a", "b", "b"]  # warm-up
    rounds = order[4:]
    # one untimed and CHUNK timed calls per callable per round, in turns
    per_round = timing.CHUNK + 1
    assert rounds[:per_round] == ["a"] * per_round and rounds[per_round:2 * per_round] == ["b"] * per_round


def test_interleaved_grows_until_the_median_is_known(monkeypatch):
    # A callable whose every call takes a different (fake) time: spread 50% of the median. With
    # precision 1% the rounds go on past the 10 calls asked for, until the time budget ends them.
    ticks = iter(np.cumsum(np.abs(np.random.default_rng(0).normal(1e-3, 5e-4, 100_000))))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(ticks)))
    out = timing.timed(lambda: None, repeats=10, warmup=0, precision=0.01, max_seconds=0.5)
    assert out.repeats > 10
    quiet = timing.timed(lambda: None, repeats=10, warmup=0, precision=10.0, max_seconds=0.5)
    assert quiet.repeats == 10


def test_interleaved_times_for_at_least_min_seconds_whatever_the_notches(monkeypatch):
    # Equal fake calls of 1 ms: the notch is zero after the first 10 calls, so without a floor the
    # rounds stop at once; with min_seconds=0.2 they go on for 0.2 s of (fake) clock, ~200 calls.
    clock = iter(np.arange(0, 100, 1e-3 / 2))  # two readings per call, 1 ms per call
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    assert timing.timed(lambda: None, repeats=10, warmup=0).repeats == 10
    floored = timing.timed(lambda: None, repeats=10, warmup=0, min_seconds=0.2)
    assert 150 <= floored.repeats <= 260


def test_a_slow_model_stops_short_of_the_repeats_at_the_long_bound(monkeypatch):
    # Fake calls of 10 s each (a large model at batch 32): 30 repeats would take 300 s per
    # callable; the rounds stop after LONG_SECONDS with MIN_REPEATS calls, and the count says so.
    clock = iter(np.arange(0, 1e6, 5.0))  # two readings per call, 10 s per call
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    out = timing.interleaved([lambda: None, lambda: None], repeats=30, warmup=0)
    assert [lat.repeats for lat in out] == [timing.MIN_REPEATS] * 2
    fast = iter(np.arange(0, 1e6, 5e-4))  # 1 ms calls: the bound never comes into it
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(fast)))
    assert timing.interleaved([lambda: None], repeats=30, warmup=0)[0].repeats >= 30


def test_a_slow_episode_in_a_minority_of_blocks_leaves_the_median_and_widens_the_notch():
    rng = np.random.default_rng(1)
    samples, cuts = [], []
    for block in range(12):  # 12 blocks of 200 calls; 5 of them run 30% slower (a shared machine's episode)
        scale = 1.3 if block in range(3, 8) else 1.0
        cuts.append(len(samples))
        samples += list(scale * rng.normal(1.0, 0.1, 200))
    plain = timing.Latency.from_samples(1, samples, 0)
    blocked = timing.Latency.from_samples(1, samples, 0, cuts[1:])
    assert blocked.blocks == 12 and plain.blocks == 1
    assert abs(blocked.median_ms - 1.0) < 0.02 < 0.05 < abs(plain.median_ms - 1.0)
    assert blocked.noise_ms > plain.noise_ms  # the drift between blocks is in the notch


def _episode(rng, slow_blocks, scale, n_blocks=12, calls=200):
    """Samples of 12 blocks of calls around 1.0 ms, ``slow_blocks`` of them ``scale`` times slower."""
    samples, cuts = [], []
    for block in range(n_blocks):
        cuts.append(len(samples))
        samples += list((scale if block in slow_blocks else 1.0) * rng.normal(1.0, 0.05, calls))
    return samples, cuts[1:]


def test_an_episode_in_most_blocks_leaves_the_median_of_the_quietest_third():
    # The shared machine measured: an episode covered 8 of 12 blocks, and the median of the
    # blocks' medians followed it. The quietest third are the 4 undisturbed blocks.
    rng = np.random.default_rng(2)
    samples, cuts = _episode(rng, range(2, 10), 1.35)
    lat = timing.Latency.from_samples(1, samples, 0, cuts)
    assert lat.blocks == 12 and lat.quiet_blocks == 4 and lat.repeats == len(samples)
    assert abs(lat.median_ms - 1.0) < 0.02
    blocks = [statistics.median(samples[a:b]) for a, b in zip([0, *cuts], [*cuts, len(samples)])]
    assert statistics.median(blocks) > 1.3  # what the median of block medians said
    assert lat.noise_ms > 0.1  # all twelve blocks' spread is in the notch: the verdict stays careful


def test_models_timed_together_take_their_medians_from_the_same_quiet_blocks():
    # Two callables timed in turns: an episode slows the first in blocks 0-3 and the second in
    # blocks 4-7; both ran quietly in blocks 8-11. Both medians come from those four blocks.
    rng = np.random.default_rng(3)
    a, cuts = _episode(rng, range(0, 4), 1.3)
    b, _ = _episode(rng, range(4, 8), 1.3)
    b = [2 * v for v in b]
    medians = [[statistics.median(p) for p in timing._blocks(s, cuts)] for s in (a, b)]
    assert timing.quiet_blocks(medians) == [8, 9, 10, 11]
    both = timing._latencies(1, [a, b], 0, cuts)
    assert [lat.quiet_blocks for lat in both] == [4, 4]
    assert abs(both[1].median_ms / both[0].median_ms - 2.0) < 0.04
    assert abs(both[0].median_ms - 1.0) < 0.02


def test_the_quietest_blocks_are_those_where_every_model_ran_fastest():
    medians = [[1.0, 1.3, 1.0, 1.0, 1.3, 1.3], [2.0, 2.6, 2.0, 2.6, 2.0, 2.6]]
    assert timing.quiet_blocks(medians) == [0, 2, 3]  # 0 and 2: both fast; then 3 or 4 (one slow each), the first
    assert timing.quiet_blocks([[1.0] * 30]) == list(range(10))  # a third of the blocks
    assert len(timing.quiet_blocks([[1.0] * 4])) == 3  # never fewer than 3


def test_the_whole_model_floor_comes_from_the_environment_and_a_bad_value_is_one_line(monkeypatch):
    monkeypatch.delenv("LIGHTCOMPRESS_TIMING_SECONDS", raising=False)
    assert timing.whole_model_seconds() == timing.WHOLE_MODEL_SECONDS == 6.0
    monkeypatch.setenv("LIGHTCOMPRESS_TIMING_SECONDS", "1.5")
    assert timing.whole_model_seconds() == 1.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv("LIGHTCOMPRESS_TIMING_SECONDS", bad)
        with pytest.raises(OptionError, match=r"LIGHTCOMPRESS_TIMING_SECONDS=.* is not a number of seconds >= 0 "
                                              r"\(an environment variable\); use e\.g\. 6, or 0"):
            timing.whole_model_seconds()
