"""Percentiles and small helpers for the benchmark figures."""

import statistics


def percentile(samples, pct):
    """Nearest-rank percentile of a list of numbers (pct in 0..100)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(samples_s):
    """p50/p95/p99/n of durations given in seconds, reported in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    if not ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None}
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
    }


def ratio(a, b, digits=2):
    if a is None or b in (None, 0):
        return None
    return round(a / b, digits)
