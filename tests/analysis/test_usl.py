"""The USL fit recovers known parameters: exactly from noise-free data, within its interval
from noisy data (and its intervals cover the truth about 95% of the time), fits only series
with three non-oversubscribed worker counts, says why it did not fit the others, and is drawn
in the scaling figure as a model."""

from __future__ import annotations

import numpy as np
import pytest

from iommubench.analysis import usl
from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run
from iommubench.report import plots
from iommubench.report import summary as report_summary

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run

WORKERS = np.repeat([1, 2, 4, 8, 16], 3)


@pytest.mark.parametrize(
    "lam, sigma, kappa",
    [(1e6, 0.05, 0.002), (3e7, 0.3, 0.0), (5e5, 0.0, 0.01), (2e8, 0.0, 0.0), (1e6, 0.9, 0.2)],
)
def test_noise_free_data_give_the_parameters_exactly(lam, sigma, kappa):
    f = usl.fit(WORKERS, usl.usl(WORKERS, lam, sigma, kappa))
    assert f.lam.value == pytest.approx(lam, rel=1e-6)
    assert f.sigma.value == pytest.approx(sigma, abs=1e-7)
    assert f.kappa.value == pytest.approx(kappa, abs=1e-8)
    # nothing left to explain: the interval closes on the estimate
    assert f.sigma.hi - f.sigma.lo == pytest.approx(0, abs=1e-7)


def test_noisy_data_fall_within_the_interval():
    rng = np.random.default_rng(3)
    truth = usl.usl(WORKERS, 1e6, 0.05, 0.002)
    f = usl.fit(WORKERS, truth * np.exp(rng.normal(0, 0.05, truth.size)))
    assert f.sigma.lo <= 0.05 <= f.sigma.hi
    assert f.kappa.lo <= 0.002 <= f.kappa.hi
    assert f.lam.lo <= 1e6 <= f.lam.hi
    assert f.sigma.hi - f.sigma.lo > 0.01  # 5% noise leaves real doubt
    assert "95% profile-likelihood" in f.interval_method


def test_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    truth = usl.usl(WORKERS, 1e6, 0.05, 0.002)
    trials, hits = 40, np.zeros(2)
    widths = []
    for _ in range(trials):
        f = usl.fit(WORKERS, truth * np.exp(rng.normal(0, 0.05, truth.size)))
        hits += [f.sigma.lo <= 0.05 <= f.sigma.hi, f.kappa.lo <= 0.002 <= f.kappa.hi]
        widths.append((f.sigma.hi - f.sigma.lo, f.kappa.hi - f.kappa.lo))
    # 95% nominal: 40 trials cover at least 34 times with probability 0.99
    assert (hits >= 34).all(), hits
    # and not by being huge: the median widths were 0.057 (sigma) and 0.0033 (kappa)
    assert (np.median(widths, axis=0) < [0.1, 0.005]).all()


def test_too_few_worker_counts_are_refused_and_three_reps_have_no_interval():
    with pytest.raises(ValueError, match="3"):
        usl.fit([1, 1, 2, 2], [1.0, 1.1, 1.8, 1.9])
    with pytest.raises(ValueError, match="positive"):
        usl.fit([1, 2, 4], [1.0, 0.0, 2.0])
    f = usl.fit([1, 2, 4], usl.usl([1, 2, 4], 10.0, 0.1, 0.01))
    assert np.isnan(f.sigma.lo) and f.interval_method.startswith("no interval")


def test_peak_workers_is_where_the_model_turns_down():
    f = usl.fit(WORKERS, usl.usl(WORKERS, 1.0, 0.04, 0.0025))
    n_star = f.peak_workers
    assert n_star == pytest.approx(np.sqrt(0.96 / 0.0025), rel=1e-4)
    assert f.predict(n_star) > f.predict(n_star * 0.9) and f.predict(n_star) > f.predict(
        n_star * 1.1
    )


# --------------------------------------------------------------------------- a run

USL_MODEL = {
    "lockfree": {w: float(usl.usl(w, 2e7, 0.02, 0.0005)) for w in (1, 2, 4, 8, 16)},
    "serial-spin": {w: float(usl.usl(w, 1e7, 0.6, 0.05)) for w in (1, 2, 4, 8, 16)},
}


def _summary(tmp_path, cpus, workers=(1, 2, 4, 8, 16), noise=0.0):
    d = make_run(
        tmp_path,
        drivers=("lockfree", "serial-spin"),
        workers=workers,
        cpus=cpus,
        model=USL_MODEL,
        noise=noise,
        failed_rep=False,
        handoff_flip=False,
    )
    return load_run(d), with_scaling(summarize(load_run(d)))


def test_a_run_is_fitted_from_its_non_oversubscribed_repetitions(tmp_path):
    _, summary = _summary(tmp_path, cpus=8)
    fits, skipped = usl.fit_run(summary, 8)
    assert not skipped and len(fits) == 2
    by = {f.group: f for f in fits}
    lf = next(f for g, f in by.items() if "lockfree" in g)
    ss = next(f for g, f in by.items() if "domain-lock/ttas" in g)  # serial-spin
    assert lf.workers == (1, 2, 4, 8)  # 16 workers on 8 CPUs is left out
    assert lf.n == 12  # one observation per repetition
    assert lf.sigma.value == pytest.approx(0.02, abs=1e-4)
    assert lf.kappa.value == pytest.approx(0.0005, abs=1e-5)
    assert ss.sigma.value == pytest.approx(0.6, abs=1e-3)
    assert ss.kappa.value == pytest.approx(0.05, abs=1e-4)


def test_two_cpus_give_a_reason_instead_of_a_fit(tmp_path):
    _, summary = _summary(tmp_path, cpus=2, workers=(1, 2, 4))
    fits, skipped = usl.fit_run(summary, 2)
    assert not fits and len(skipped) == 2
    assert "this machine has 2 CPUs" in skipped[0].reason
    assert "valid here: 1, 2" in skipped[0].reason


def test_summary_json_and_report_carry_the_table_or_the_reason(tmp_path):
    run, summary = _summary(tmp_path, cpus=8, noise=0.02)
    s = report_summary.build(run, summary)
    fits = s["usl"]["fits"]
    assert len(fits) == 2 and {"lambda", "sigma", "kappa"} <= set(fits[0])
    assert fits[0]["sigma"]["lo"] <= fits[0]["sigma"]["value"] <= fits[0]["sigma"]["hi"]
    from iommubench.report.blocks import blocks

    text = str(blocks(s))
    assert "Scaling model (USL)" in text and "σ contention" in text
    run2, summary2 = _summary(tmp_path / "two", cpus=2, workers=(1, 2, 4))
    s2 = report_summary.build(run2, summary2)
    assert s2["usl"]["fits"] == [] and "this machine has 2 CPUs" in str(blocks(s2))


def _model_lines(fig):
    return [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("usl:")
    ]


def test_the_scaling_figure_draws_the_model_dashed_and_labelled(tmp_path):
    _, summary = _summary(tmp_path, cpus=8)
    fig = plots.scaling_figure(summary)
    lines = [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("usl:")
    ]
    assert len(lines) == 4  # two series, speedup and efficiency
    assert all(ln.get_linestyle() != "-" and ln.get_marker() in ("", "None") for ln in lines)
    xs = np.asarray(lines[0].get_xdata(), dtype=float)
    assert xs.max() >= 16  # extrapolated past the fitted 8
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any(t.startswith("USL model") for t in labels)
    plots.plt.close(fig)
    _, two = _summary(tmp_path / "two", cpus=2, workers=(1, 2, 4))
    notes: list[str] = []
    fig = plots.scaling_figure(two, notes=notes)
    assert not [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("usl:")
    ]
    assert any("no USL model" in n for n in notes)
    plots.plt.close(fig)
