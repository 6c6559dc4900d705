"""The figures of a run, one module per figure family; `iommubench.report.plots` draws them all.

- `style`: colours, markers, rc settings, grids and saving.
- `labels`: units that follow the workload, titles that name the fixed parameters.
- `series`: splitting a summary into lines and drawing them (invalid points as crosses).
- `axes`: x axis, log y where it helps, oversubscription shading, the linear ideal.
- `summary`: throughput, scaling, contention, latency percentiles, fairness.
- `locks`: which lock the waiting goes to (stacked shares of worker time).
- `survival`: latency survival curves from the histograms.
- `timeline`: throughput over time of every repetition of the headline points.
"""
