"""The Universal Scalability Law fitted to a series' throughput against its worker count.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

lambda is the throughput of one worker, sigma the share of the work that serialises
(contention), kappa the cost of keeping shared data coherent between every pair of workers
(coherency: what makes throughput fall, not just flatten, past N* = sqrt((1 - sigma) / kappa)).

The fit is nonlinear least squares on log throughput, one residual per repetition: noise in
throughput is multiplicative (a repetition is a few percent off whatever its level), so the
log residuals have one spread across worker counts. lambda is eliminated in closed form (for
given sigma and kappa the best log lambda is the mean residual), and sigma, kappa >= 0 are
found with `scipy.optimize.least_squares` from a few starting points.

Intervals are profile-likelihood intervals (Bates and Watts, "Nonlinear Regression Analysis",
6.1): a value v of one parameter is inside when the residual sum of squares with that
parameter fixed at v and the others refitted stays below SSE_min (1 + F(0.95; 1, n - 3) /
(n - 3)). Unlike the covariance matrix's +- 1.96 se, this follows the curvature of the model
and the sigma, kappa >= 0 bounds. Measured coverage on synthetic series (workers 1, 2, 4, 8,
16, 3 repetitions, 5% log-normal noise, sigma 0.05, kappa 0.002; 1000 series,
`tests/analysis/test_usl.py` runs 40): lambda 95.1%, sigma 95.6%, kappa 95.0%; with sigma 0.3,
kappa 0.01 and 2% noise (500 series): 95.4%, 96.0%, 96.4%. It needs more than
three repetitions in all; with exactly three the fit is exact and has no interval.

Only headline points take part (valid, not oversubscribed): with more workers than CPUs the
throughput follows the CPU share the workers win, which the law does not describe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from iommubench.analysis.decisions import group_columns, headline
from iommubench.analysis.run_reader import label, param_key, varying_params
from iommubench.spec.catalogue import NEGATIVE_CONTROLS

CONFIDENCE = 0.95
MIN_WORKER_COUNTS = 3
N_PARAMS = 3
PARAM_NAMES = ("lambda", "sigma", "kappa")
_STARTS = ((0.0, 0.0), (0.1, 0.001), (0.5, 0.05), (0.01, 0.3))
_SEARCH_LIMIT = 1e6  # an interval reaching past this is unbounded


def usl(n: Any, lam: float, sigma: float, kappa: float) -> Any:
    """The law's throughput at worker count(s) n."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@dataclass(frozen=True)
class Estimate:
    """One parameter with its interval (lo/hi NaN when there is none; hi inf: unbounded)."""

    value: float
    lo: float
    hi: float


@dataclass
class Fit:
    """A series' fit: the parameters with intervals and what it was fitted to."""

    lam: Estimate
    sigma: Estimate
    kappa: Estimate
    workers: tuple[float, ...]  # distinct worker counts fitted
    n: int  # repetitions fitted
    sse: float
    group: str = ""
    points: tuple[int, ...] = field(default_factory=tuple)  # every point of the series

    def predict(self, n: Any) -> Any:
        return usl(n, self.lam.value, self.sigma.value, self.kappa.value)

    @property
    def peak_workers(self) -> float:
        """N* where the modelled throughput peaks (inf when it never turns down)."""
        s, k = self.sigma.value, self.kappa.value
        if k <= 0:
            return float("inf")
        return float(np.sqrt(max(1 - s, 0.0) / k))

    @property
    def interval_method(self) -> str:
        if self.n <= N_PARAMS:
            return f"no interval ({self.n} repetitions for {N_PARAMS} parameters)"
        return f"{CONFIDENCE:.0%} profile-likelihood interval (F test, n={self.n})"


class _Problem:
    """The least-squares problem of one series: log throughput y at worker counts n."""

    def __init__(self, n: np.ndarray, y: np.ndarray) -> None:
        self.n = n
        self.base = y - np.log(n)  # y - log n = log lambda - log D(sigma, kappa)

    def log_lambda(self, sigma: float, kappa: float) -> float:
        return float(
            np.mean(self.base + np.log1p(sigma * (self.n - 1) + kappa * self.n * (self.n - 1)))
        )

    def refit(self, which: int, fixed: tuple[float, float], start: float) -> float:
        """The least SSE over parameter `which` (0 sigma, 1 kappa) >= 0, the other one held at
        its value in `fixed`: projected Gauss-Newton from `start`, halving steps that do not
        lower the SSE."""
        grad = (self.n - 1) if which == 0 else self.n * (self.n - 1)
        v = start
        vals = list(fixed)

        def at(value: float) -> tuple[np.ndarray, np.ndarray]:
            vals[which] = value
            d = 1 + vals[0] * (self.n - 1) + vals[1] * self.n * (self.n - 1)
            r = self.base + np.log1p(d - 1)
            j = grad / d
            return r - r.mean(), j - j.mean()

        r, j = at(v)
        sse = float(r @ r)
        for _ in range(100):
            jj = float(j @ j)
            if jj == 0:
                break
            step = -float(j @ r) / jj
            while True:
                nv = max(v + step, 0.0)
                nr, nj = at(nv)
                nsse = float(nr @ nr)
                if nsse <= sse or abs(step) < 1e-15 * (1 + v):
                    break
                step /= 2
            done = abs(nv - v) <= 1e-10 * (abs(v) + 1e-8)
            if nsse <= sse:
                v, r, j, sse = nv, nr, nj, nsse
            if done or nsse > sse:
                break
        return sse

    def jacobian(self, sigma: float, kappa: float) -> np.ndarray:
        """d(log D)/d(sigma, kappa) per repetition, D = 1 + sigma (n-1) + kappa n (n-1)."""
        d = 1 + sigma * (self.n - 1) + kappa * self.n * (self.n - 1)
        return np.column_stack([(self.n - 1) / d, self.n * (self.n - 1) / d])

    def best(
        self, offset: float | None = None, starts: Sequence[Sequence[float]] = _STARTS
    ) -> tuple[np.ndarray, float]:
        """(sigma, kappa) >= 0 with the least SSE, from the best of a few starting points;
        log lambda is the best one, or `offset` when given (for lambda's profile)."""

        def res(z: np.ndarray) -> np.ndarray:
            r = self.base + np.log1p(z[0] * (self.n - 1) + z[1] * self.n * (self.n - 1))
            return r - (r.mean() if offset is None else offset)

        def jac(z: np.ndarray) -> np.ndarray:
            j = self.jacobian(z[0], z[1])
            return j - j.mean(axis=0) if offset is None else j

        best_x, best_sse = np.zeros(2), np.inf
        for start in starts:
            fitted = optimize.least_squares(
                res, np.array(start), jac=jac, bounds=(0.0, np.inf), xtol=1e-12, ftol=1e-12
            )
            if 2 * float(fitted.cost) < best_sse:
                best_x, best_sse = fitted.x, 2 * float(fitted.cost)
        return best_x, best_sse


def _bound(
    f: Callable[[float], float], at: float, step: float, lower: bool, floor: float | None = 0.0
) -> float:
    """Where f (negative at `at`) crosses 0 going down (not below `floor`) or up from `at`;
    `at` itself when rounding leaves f(at) at or above 0 (a fit too exact to leave room),
    -inf/inf when the crossing lies beyond the search."""
    if f(at) >= 0:
        return at
    if lower and floor is not None and f(floor) <= 0:
        return floor
    sign = -1.0 if lower else 1.0
    end = at + sign * step
    while f(end) <= 0:
        if abs(end - at) > _SEARCH_LIMIT:
            return sign * float("inf")
        end = at + 2 * (end - at)
        if lower and floor is not None and end < floor:
            end = floor
    a, b = (end, at) if lower else (at, end)
    return float(optimize.brentq(f, a, b, xtol=1e-12, rtol=1e-6))


def _threshold(sse_min: float, n: int) -> float:
    dof = n - N_PARAMS
    return sse_min * (1 + sps.f.ppf(CONFIDENCE, 1, dof) / dof)


def _profile_interval(p: _Problem, which: int, x: np.ndarray, limit: float) -> Estimate:
    """The profile-likelihood interval of sigma (0) or kappa (1)."""
    value = float(x[which])
    if limit <= 0:  # an exact fit: the data leave no room either way
        return Estimate(value, value, value)

    other = 1 - which

    def excess(v: float) -> float:
        fixed = (v, 0.0) if which == 0 else (0.0, v)
        return min(p.refit(other, fixed, start) for start in (float(x[other]), 0.0)) - limit

    step = max(abs(value), 1e-3 if which == 0 else 1e-5)
    return Estimate(value, _bound(excess, value, step, True), _bound(excess, value, step, False))


def _lambda_interval(p: _Problem, x: np.ndarray, limit: float) -> Estimate:
    """The profile interval of lambda, on log lambda (fixed log lambda: refit sigma, kappa)."""
    ll = p.log_lambda(*x)
    if limit <= 0:
        return Estimate(float(np.exp(ll)), float(np.exp(ll)), float(np.exp(ll)))

    def excess(v: float) -> float:
        return p.best(offset=v, starts=(tuple(x),))[1] - limit

    lo = _bound(excess, ll, 0.05, True, floor=None)
    hi = _bound(excess, ll, 0.05, False)
    return Estimate(float(np.exp(ll)), float(np.exp(lo)), float(np.exp(hi)))


def fit(workers: Sequence[float], throughput: Sequence[float], intervals: bool = True) -> Fit:
    """Fit the law to repetitions: one (worker count, throughput) pair per repetition.

    Raises ValueError with fewer than three distinct worker counts or a throughput <= 0.
    """
    n = np.asarray(workers, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or not np.all(np.isfinite(x)) or np.any(x <= 0) or np.any(n < 1):
        raise ValueError("throughput must be finite and positive, worker counts >= 1")
    counts = tuple(sorted(set(n.tolist())))
    if len(counts) < MIN_WORKER_COUNTS:
        raise ValueError(f"{len(counts)} distinct worker counts; the fit needs 3")
    p = _Problem(n, np.log(x))
    best, sse = p.best()
    if len(n) <= N_PARAMS or not intervals:
        nan = float("nan")
        lam = Estimate(float(np.exp(p.log_lambda(*best))), nan, nan)
        sig, kap = Estimate(float(best[0]), nan, nan), Estimate(float(best[1]), nan, nan)
    else:
        limit = _threshold(sse, len(n))
        lam = _lambda_interval(p, best, limit)
        sig = _profile_interval(p, 0, best, limit)
        kap = _profile_interval(p, 1, best, limit)
    return Fit(lam, sig, kap, counts, len(n), sse)


# --------------------------------------------------------------------------- a run's series


@dataclass
class Skipped:
    """A series without a fit and why."""

    group: str
    reason: str
    points: tuple[int, ...] = field(default_factory=tuple)


def _series(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The scaling groups (every parameter but `workers`), negative controls left out."""
    if summary.empty or "workers" not in summary:
        return []
    df = summary
    if "driver" in df:
        df = df[~df["driver"].isin(NEGATIVE_CONTROLS)]
    gcols = group_columns(df)
    shown = varying_params(df, exclude=["workers"])
    keys = df.apply(lambda r: param_key(r, gcols), axis=1)
    return [
        (label(g.iloc[0], shown) if shown else "all", g) for _, g in df.groupby(keys, sort=False)
    ]


def _observations(g: pd.DataFrame) -> tuple[list[float], list[float]]:
    """One (workers, ops/s) pair per repetition behind each headline point's estimate."""
    ws: list[float] = []
    xs: list[float] = []
    for _, r in g[headline(g)].iterrows():
        samples = r.get("samples")
        values = list(samples) if isinstance(samples, (tuple, list)) else [r["ops_per_s"]]
        values = [float(v) for v in values if np.isfinite(v) and v > 0]
        ws += [float(r["workers"])] * len(values)
        xs += values
    return ws, xs


def fit_run(summary: pd.DataFrame, cpus: int | None) -> tuple[list[Fit], list[Skipped]]:
    """A fit for every series with at least three distinct non-oversubscribed worker counts,
    and a reason for every other series."""
    fits: list[Fit] = []
    skipped: list[Skipped] = []
    for glabel, g in _series(summary):
        points = tuple(int(p) for p in g["point"])
        ws, xs = _observations(g)
        distinct = sorted(set(ws))
        if len(distinct) < MIN_WORKER_COUNTS:
            skipped.append(Skipped(glabel, _why_not(distinct, g, cpus), points))
            continue
        f = fit(ws, xs)
        f.group, f.points = glabel, points
        fits.append(f)
    return fits, skipped


def _why_not(distinct: list[float], g: pd.DataFrame, cpus: int | None) -> str:
    have = ", ".join(f"{w:g}" for w in distinct) or "none"
    all_counts = sorted({float(w) for w in pd.to_numeric(g["workers"], errors="coerce").dropna()})
    if cpus is not None and cpus < MIN_WORKER_COUNTS and len(all_counts) >= MIN_WORKER_COUNTS:
        return (
            f"this machine has {cpus} CPU{'s' if cpus != 1 else ''}, so at most {cpus} worker "
            f"counts run without oversubscription (valid here: {have}); the fit needs "
            f"{MIN_WORKER_COUNTS}"
        )
    return f"valid, non-oversubscribed worker counts: {have}; the fit needs {MIN_WORKER_COUNTS}"


def cpus_of(summary: pd.DataFrame) -> int | None:
    if "cpus_available" not in summary:
        return None
    c = pd.to_numeric(summary["cpus_available"], errors="coerce").dropna()
    return int(c.max()) if len(c) else None


def _est(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "lo": e.lo, "hi": e.hi}


def to_json(fits: Sequence[Fit], skipped: Sequence[Skipped]) -> dict[str, Any]:
    """summary.json's `usl` block."""
    return {
        "model": "X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1))",
        "fits": [
            {
                "group": f.group,
                "lambda": _est(f.lam),
                "sigma": _est(f.sigma),
                "kappa": _est(f.kappa),
                "peak_workers": f.peak_workers,
                "workers": list(f.workers),
                "n": f.n,
                "interval": f.interval_method,
                "points": list(f.points),
            }
            for f in fits
        ],
        "skipped": [{"group": s.group, "reason": s.reason} for s in skipped],
    }
