/* Latency sampling: one operation in sample_every is timed with the TSC; the timer's own cost
 * is subtracted and the result recorded in the worker's histogram in the arena. */
#ifndef IB_SAMPLING_H
#define IB_SAMPLING_H

#include "../clock.h"
#include "../hist.h"

/* sums: the direction's count and four sample sums in struct ib_counters (ns, ns squared,
 * whole 100 ns units, their squares): dma_map_benchmark's mean and deviation come from the
 * count and the latter two. */
static inline void ib_record_sample(struct ib_ctx *x, uint64_t *hist, uint64_t *sums,
                                    uint64_t ticks)
{
    double t = (double)ticks - x->timer_cost_ticks;
    uint64_t ns = t > 0 ? (uint64_t)(t / x->tsc_per_ns + 0.5) : 0;
    uint64_t units = ns / 100;
    hist[ib_hist_bucket(ns)]++;
    sums[0]++;
    sums[1] += ns;
    sums[2] += ns * ns;
    sums[3] += units;
    sums[4] += units * units;
    x->c.samples++;
}

/* The countdown lives in the caller's register (*left), not in the context. */
static inline __attribute__((always_inline)) int ib_sample_due(struct ib_ctx *x, uint64_t *left)
{
    if (__builtin_expect(--*left != 0, 1))
        return 0;
    *left = x->sample_every;
    return 1;
}

static inline __attribute__((always_inline)) int
ib_do_map(struct ib_ctx *x, const struct ib_driver_ops *ops, uint64_t pfn, uint64_t frame,
          uint64_t *left)
{
    if (__builtin_expect(!ib_sample_due(x, left), 1))
        return ops->map(x, pfn, frame);
    uint64_t t0 = ib_ticks();
    int r = ops->map(x, pfn, frame);
    ib_record_sample(x, x->hist_map, &x->c.map_samples, ib_ticks() - t0);
    return r;
}

static inline __attribute__((always_inline)) int
ib_do_unmap(struct ib_ctx *x, const struct ib_driver_ops *ops, uint64_t pfn, uint64_t *frame,
            uint64_t *left)
{
    if (__builtin_expect(!ib_sample_due(x, left), 1))
        return ops->unmap(x, pfn, frame);
    uint64_t t0 = ib_ticks();
    int r = ops->unmap(x, pfn, frame);
    ib_record_sample(x, x->hist_unmap, &x->c.unmap_samples, ib_ticks() - t0);
    return r;
}

/* Adds a batch of ops counted in registers, then lets the clock move the phase. */
static inline void ib_account(struct ib_ctx *x, int mapping, uint64_t n)
{
    x->c.ops += n;
    if (mapping)
        x->c.maps += n;
    else
        x->c.unmaps += n;
}

#endif
