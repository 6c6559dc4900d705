"""Log-linear latency histograms over integer nanoseconds, shared with the native core.

The native `hist.c` mirrors this layout exactly; change neither side alone.

- SUB_BITS = 6: 64 sub-buckets per octave.
- v < 64: the bucket index is v itself (exact).
- v >= 64: e = v.bit_length() - 1, shift = e - 6,
  index = 64 * (shift + 1) + ((v >> shift) - 64).
  Values 64..127 therefore also get one bucket each; above that a bucket spans 2**shift values.
- NBUCKETS = 64 * 36 covers values below 2**41 ns (~36 minutes); larger values are clamped to
  the last bucket.

A bucket of width w starts at lo >= 64 * w, so the midpoint of its integer range is within
(w - 1) / 2 / lo < 1/128 of any value in it: that is the percentile error bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SUB_BITS = 6
SUB_BUCKETS = 1 << SUB_BITS  # 64
OCTAVES = 36
NBUCKETS = SUB_BUCKETS * OCTAVES  # 2304
MAX_TRACKED = 1 << (OCTAVES + SUB_BITS - 1)  # 2**41: values >= this are clamped
REL_ERROR = 1.0 / (2 * SUB_BUCKETS)  # 1/128


def bucket_index(v: int) -> int:
    """The bucket of a latency of `v` nanoseconds (negative values count as 0)."""
    v = int(v)
    if v < SUB_BUCKETS:
        return max(v, 0)
    if v >= MAX_TRACKED:
        return NBUCKETS - 1
    shift = v.bit_length() - 1 - SUB_BITS
    return SUB_BUCKETS * (shift + 1) + ((v >> shift) - SUB_BUCKETS)


def bucket_indices(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """Vectorised `bucket_index` over an array of non-negative integer nanoseconds."""
    v = np.clip(np.asarray(values, dtype=np.int64), 0, MAX_TRACKED - 1).astype(np.uint64)
    out = v.astype(np.int64)
    big = v >= SUB_BUCKETS
    if np.any(big):
        vb = v[big]
        # frexp is exact for integers below 2**53: vb = m * 2**exp, 0.5 <= m < 1, so
        # exp is vb.bit_length()
        e = np.frexp(vb.astype(np.float64))[1].astype(np.int64) - 1
        shift = e - SUB_BITS
        out[big] = SUB_BUCKETS * (shift + 1) + (
            (vb >> shift.astype(np.uint64)).astype(np.int64) - SUB_BUCKETS
        )
    return out


def bucket_bounds(i: int) -> tuple[int, int]:
    """The integer range [lo, hi) of bucket `i`. The last bucket also holds clamped values."""
    i = int(i)
    if not 0 <= i < NBUCKETS:
        raise IndexError(f"bucket {i} outside 0..{NBUCKETS - 1}")
    if i < SUB_BUCKETS:
        return i, i + 1
    shift = i // SUB_BUCKETS - 1
    sub = i % SUB_BUCKETS
    return (SUB_BUCKETS + sub) << shift, (SUB_BUCKETS + sub + 1) << shift


def bucket_midpoint(i: int) -> float:
    """The midpoint of bucket `i`'s integer range: exact for width-1 buckets."""
    lo, hi = bucket_bounds(i)
    return (lo + hi - 1) / 2.0


def empty() -> np.ndarray:
    """A zeroed histogram."""
    return np.zeros(NBUCKETS, dtype=np.uint64)


def histogram(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """The histogram of a set of latencies in nanoseconds."""
    idx = bucket_indices(values)
    return np.bincount(idx, minlength=NBUCKETS).astype(np.uint64)


def merge(hists: Iterable[np.ndarray]) -> np.ndarray:
    """The sum of histograms (e.g. per worker, or per repetition)."""
    out = empty()
    for h in hists:
        h = np.asarray(h, dtype=np.uint64)
        if h.shape != (NBUCKETS,):
            raise ValueError(f"histogram has shape {h.shape}, expected ({NBUCKETS},)")
        out += h
    return out


def count(hist: np.ndarray) -> int:
    """The number of samples in a histogram."""
    return int(np.asarray(hist, dtype=np.uint64).sum())


def percentiles(hist: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles (q in 0..100) as bucket midpoints; NaN for an empty histogram.

    The value returned for q is the midpoint of the bucket holding the sample of rank
    max(1, ceil(q / 100 * n)) -- numpy's ``method="inverted_cdf"`` -- so it is exact below 128 ns
    and within 1/128 relative error above.
    """
    h = np.asarray(hist, dtype=np.uint64)
    n = int(h.sum())
    if n == 0:
        return [float("nan")] * len(qs)
    cum = np.cumsum(h, dtype=np.uint64)
    out = []
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q} outside 0..100")
        x = q * n / 100.0
        r = round(x)
        # q * n / 100 carries float rounding: an x within 1e-9 of an integer is that integer
        rank = max(1, r if abs(x - r) <= 1e-9 * max(1.0, x) else int(np.ceil(x)))
        i = int(np.searchsorted(cum, np.uint64(rank), side="left"))
        out.append(bucket_midpoint(i))
    return out


def percentile(hist: np.ndarray, q: float) -> float:
    """One nearest-rank percentile; see `percentiles`."""
    return percentiles(hist, [q])[0]


def mean(hist: np.ndarray) -> float:
    """The mean latency, using bucket midpoints; NaN for an empty histogram."""
    h = np.asarray(hist, dtype=np.float64)
    n = h.sum()
    if n == 0:
        return float("nan")
    mids = np.array([bucket_midpoint(i) for i in range(NBUCKETS)])
    return float((h * mids).sum() / n)
