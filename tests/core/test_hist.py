"""The log-linear histogram layout (mirrored by the native core) and its percentile bound."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iommubench.core import hist


def test_constants_match_native_layout():
    assert hist.SUB_BITS == 6
    assert hist.NBUCKETS == 64 * 36
    assert hist.MAX_TRACKED == 2**41


def test_bounds_and_index_agree_for_every_bucket():
    prev_hi = 0
    for i in range(hist.NBUCKETS):
        lo, hi = hist.bucket_bounds(i)
        assert lo == prev_hi, "buckets must tile the integers without gaps"
        assert hi > lo
        assert hist.bucket_index(lo) == i
        assert hist.bucket_index(hi - 1) == i
        if hi - lo > 1:
            assert hist.bucket_index((lo + hi) // 2) == i
        prev_hi = hi
    assert prev_hi == hist.MAX_TRACKED


def test_small_values_are_exact():
    for v in range(128):
        assert hist.bucket_bounds(hist.bucket_index(v)) == (v, v + 1)
        assert hist.percentile(hist.histogram([v]), 50) == v


def test_the_formula_from_the_spec():
    for v in [64, 65, 127, 128, 129, 255, 256, 1000, 123456, 2**40 + 12345]:
        e = v.bit_length() - 1
        shift = e - 6
        assert hist.bucket_index(v) == 64 * (shift + 1) + ((v >> shift) - 64)


def test_clamping():
    assert hist.bucket_index(2**41) == hist.NBUCKETS - 1
    assert hist.bucket_index(2**60) == hist.NBUCKETS - 1
    assert hist.bucket_index(-5) == 0
    with pytest.raises(IndexError):
        hist.bucket_bounds(hist.NBUCKETS)


@given(st.lists(st.integers(min_value=0, max_value=2**45), min_size=1, max_size=200))
def test_vectorised_index_matches_scalar(values):
    got = hist.bucket_indices(values)
    assert list(got) == [hist.bucket_index(v) for v in values]


@given(
    st.lists(
        st.lists(st.integers(min_value=0, max_value=2**42), max_size=50), min_size=1, max_size=6
    )
)
def test_merge_is_the_histogram_of_the_union(parts):
    merged = hist.merge(hist.histogram(p) for p in parts)
    union = hist.histogram([v for p in parts for v in p])
    assert np.array_equal(merged, union)
    assert hist.count(merged) == sum(len(p) for p in parts)


def test_merge_rejects_wrong_shape():
    with pytest.raises(ValueError):
        hist.merge([np.zeros(10, dtype=np.uint64)])


def nearest_rank(data, q):
    """numpy's method="inverted_cdf" in exact arithmetic (numpy rounds q / 100 * n in float)."""
    rank = max(1, math.ceil(Fraction(str(q)) * len(data) / 100))
    return float(np.sort(data)[rank - 1])


def test_nearest_rank_reference_agrees_with_numpy():
    data = np.arange(1, 1001)
    for q in [0, 1, 10, 50, 90, 99, 100]:
        assert nearest_rank(data, q) == np.percentile(data, q, method="inverted_cdf")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    mu=st.floats(2.0, 14.0),
    sigma=st.floats(0.1, 2.0),
)
def test_percentile_error_bound_on_lognormal(seed, n, mu, sigma):
    rng = np.random.default_rng(seed)
    data = np.round(rng.lognormal(mu, sigma, size=n)).astype(np.int64)
    h = hist.histogram(data)
    qs = [0, 1, 10, 50, 90, 99, 99.9, 100]
    got = hist.percentiles(h, qs)
    for q, g in zip(qs, got, strict=True):
        want = nearest_rank(data, q)
        if want < 128:
            assert g == want
        else:
            assert abs(g - want) <= want * hist.REL_ERROR + 1e-9


def test_percentile_of_empty_histogram_is_nan():
    assert np.isnan(hist.percentile(hist.empty(), 50))
    with pytest.raises(ValueError):
        hist.percentile(hist.histogram([1]), 101)


def test_mean_close_to_true_mean():
    rng = np.random.default_rng(1)
    data = np.round(rng.lognormal(8, 1, size=5000)).astype(np.int64)
    assert hist.mean(hist.histogram(data)) == pytest.approx(data.mean(), rel=1 / 128)
