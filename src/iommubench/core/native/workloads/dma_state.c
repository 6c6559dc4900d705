#include "dma_state.h"

#include "../clock.h"
#include "../inval/inval.h"
#include "../iova/iova.h"
#include "../pool.h"
#include "../strategy.h"
#include "workloads.h"

static void dma_size(const struct ib_params *p, struct ib_region_size *out)
{
    int dma = p->workload == IB_WL_dma;
    uint64_t cap = (uint64_t)p->queues_per_worker * p->queue_depth;
    uint64_t ring = sizeof(struct ib_ring) + cap * sizeof(struct ib_io);
    out->shared = dma ? sizeof(struct ib_dma_shared) : 0;
    out->per_worker = dma ? (ring + IB_LINE - 1) / IB_LINE * IB_LINE : 0;
    out->per_page = 0;
}

static int dma_check(const struct ib_params *p)
{
    if (p->workload != IB_WL_dma)
        return 0;
    if (!p->queues_per_worker || !p->queue_depth || p->completion > 1 || !p->n_granules ||
        p->n_granules > IB_MAX_GRANULES || p->dma_bits < 20 || p->dma_bits > 64)
        return 1;
    for (uint32_t i = 0; i < p->n_granules; i++)
        if (!p->granules[i] || p->granules[i] > 1024)
            return 1;
    return 0;
}

static uint32_t max_granule(const struct ib_params *p)
{
    uint32_t m = 1;
    for (uint32_t i = 0; i < p->n_granules && i < IB_MAX_GRANULES; i++)
        m = p->granules[i] > m ? p->granules[i] : m;
    return m;
}

/* The IOVA span a dma point can touch. Below 2^34 the whole space below the mask (at most 16
 * MiB of tables); above, twice every page that can be allocated at once, plus slack for the
 * alignment holes, at the top of the space where the allocator works. */
static uint64_t dma_span_pages(const struct ib_params *p)
{
    /* clamped both ways: this runs before the parameters are checked, and a mask below one
     * page would make the shift negative */
    uint32_t bits = p->dma_bits < 48 ? p->dma_bits : 48;
    bits = bits < 12 ? 12 : bits;
    uint64_t space = 1ull << (bits - 12);
    if (bits <= 34)
        return space;
    uint64_t w = p->workers, cap = (uint64_t)p->queues_per_worker * p->queue_depth;
    uint64_t g = max_granule(p), ga = ib_iova_alloc_size(g) > g ? ib_iova_alloc_size(g) : g;
    uint64_t live = (w * cap + w * IB_FQ_SIZE) * ga * 2 +
                    ib_iova_mags_per_order(p) * IB_MAG_SIZE * 63 /* 1 + 2 + ... + 32 pages */;
    uint64_t span = 2 * live + (1ull << 20);
    return span < space ? span : space;
}

/* The tables the IOVA span can need at each level, twice over, plus the workers' caches. */
static uint64_t dma_pool_pages(const struct ib_params *p)
{
    uint64_t span = dma_span_pages(p);
    uint64_t leaves = span / 512 + 2, mids = span / (512 * 512) + 2;
    uint64_t tops = span / (512ull * 512 * 512) + 2;
    return 1 + 2 * (leaves + mids + tops) + (uint64_t)p->workers * (2 * IB_POOL_BATCH + 8) + 16;
}

static void dma_init(void *base)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    if (p->workload == IB_WL_dma)
        ib_dma_shared(base)->inv.loops = ib_calibrate_busy_loops(p->inv_ns);
}

/* I/Os left in a completion ring after the drain were never completed */
static void dma_audit(void *base, struct ib_audit *a)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    for (uint32_t w = 0; p->workload == IB_WL_dma && w < p->workers; w++) {
        const struct ib_ring *r = ib_ring_of(base, w);
        ib_audit_result_of(a)->inflight_left += r->prod.head - r->cons.tail;
    }
}

const struct ib_strategy ib_dma_state = {
    .size = dma_size,
    .check = dma_check,
    .init = dma_init,
    .audit = dma_audit,
    .pool_pages = dma_pool_pages,
};

const struct ib_workload_entry ib_workload_dma_entry = {
    &ib_dma_state,
    {"streaming DMA: per I/O allocate an IOVA, map, hold dma_ns, unmap, invalidate, free",
     "allocator,invalidation,completion,queues_per_worker,queue_depth,granule_pages,dma_ns,"
     "inv_ns,dma_bits,map_mode",
     "I/O/s", 0},
};
