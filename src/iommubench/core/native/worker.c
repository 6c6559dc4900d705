/* The worker's side of a run: prefault the arena, arrive at the barrier, run the workload
 * with the driver's specialised loop, publish counters. Also the single-threaded hooks the
 * differential tests use. */
#include "clock.h"
#include "drivers/driver.h"
#include "hist.h"
#include "reclaim.h"

const struct ib_driver_impl *ib_driver_impl_for(const struct ib_params *p);

static const struct ib_driver_impl *impl_of(void *base)
{
    return ib_driver_impl_for(&ib_hdr(base)->params);
}

uint64_t ib_hist_index(uint64_t value) { return ib_hist_bucket(value); }

static int arena_ready(void *base)
{
    struct ib_header *h = ib_hdr(base);
    return __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == IB_MAGIC &&
           h->version == ib_core_version();
}

/* A process's first write to a shared page costs a fault (~1 us here); take them all now so
 * none lands in the measured window. fetch_or(0) writes without changing anything. */
static void prefault_arena(void *base)
{
    uint64_t total = ib_hdr(base)->layout.total_bytes;
    for (uint64_t off = 0; off < total; off += IB_PAGE_BYTES)
        __atomic_fetch_or((uint64_t *)((char *)base + off), 0, __ATOMIC_RELAXED);
}

static int wait_for_release(struct ib_ctx *x)
{
    struct ib_header *h = x->hdr;
    /* acq_rel: our arrival is visible to the parent before we start watching for go */
    __atomic_fetch_add(&h->barrier_arrive.arrived, 1, __ATOMIC_ACQ_REL);
    unsigned spins = 0;
    while (!__atomic_load_n(&h->barrier_go.go, __ATOMIC_ACQUIRE)) {
        cpu_relax();
        if ((++spins & 1023u) == 0 && ib_aborted(x->base))
            return IB_ERR_ABORTED;
    }
    /* the window's schedstat baseline for fixed-work runs, read while there is time to spare */
    ib_ctx_sched_snapshot(x);
    /* then start together: go_ns lies a little in the future, so a worker that the parent's
     * release preempted has caught up by then (the clock is shared by every CPU) */
    while (ib_clock_ns() < h->barrier_go.go_ns)
        cpu_relax();
    x->warm_end_ns = h->barrier_go.go_ns + h->params.warmup_ns;
    x->end_ns = x->warm_end_ns + h->params.duration_ns;
    return IB_OK;
}

int ib_worker_run(void *base, uint32_t worker)
{
    if (!arena_ready(base) || worker >= ib_hdr(base)->params.workers)
        return IB_ERR_PARAMS;
    const struct ib_driver_impl *drv = impl_of(base);
    prefault_arena(base);
    struct ib_ctx x;
    ib_ctx_init(&x, base, worker);
    int r = wait_for_release(&x);
    if (r != IB_OK)
        return r;
    if (x.hdr->params.warmup_ns == 0)
        x.warm_end_ns = 0;
    r = drv->run(&x);
    if (x.phase != IB_DONE)
        ib_ctx_finish(&x);
    /* deferred-free: every table this worker freed is back in the pool before it leaves
     * (the walkers keep passing, and so quiescing, until every worker has finished) */
    ib_reclaim(&x, 1);
    x.final.limbo_pages_max = x.c.limbo_pages_max;
    x.final.grace_periods = x.c.grace_periods;
    x.final.grace_ns_total = x.c.grace_ns_total;
    x.final.grace_ns_max = x.c.grace_ns_max;
    /* correctness is never windowed: evidence found while draining counts too */
    x.final.map_conflicts = x.c.map_conflicts;
    x.final.unmap_missing = x.c.unmap_missing;
    x.final.fq_early_frees = x.c.fq_early_frees;
    x.final.iova_bad_frees = x.c.iova_bad_frees;
    x.final.iova_alloc_failures = x.c.iova_alloc_failures;
    x.slot->counters = x.final;
    x.slot->status = (uint32_t)r;
    __atomic_fetch_add(&x.hdr->finish.finished, 1, __ATOMIC_RELEASE);
    return r;
}

static void debug_ctx(struct ib_ctx *x, void *base)
{
    ib_ctx_init(x, base, 0);
    x->sample_left = UINT64_MAX;
}

int ib_debug_map(void *base, uint64_t iova_pfn, uint64_t frame)
{
    struct ib_ctx x;
    debug_ctx(&x, base);
    return impl_of(base)->map(&x, iova_pfn, frame);
}

int ib_debug_unmap(void *base, uint64_t iova_pfn, uint64_t *frame_out)
{
    struct ib_ctx x;
    debug_ctx(&x, base);
    return impl_of(base)->unmap(&x, iova_pfn, frame_out);
}

int ib_translate(void *base, uint64_t iova_pfn, uint64_t *frame_out)
{
    struct ib_ctx x;
    debug_ctx(&x, base);
    uint64_t *leaf = ib_lookup_leaf(&x, iova_pfn);
    if (!leaf || !ib_pte_valid(*leaf))
        return IB_OP_MISSING;
    *frame_out = ib_pte_target(*leaf);
    return IB_OP_OK;
}
