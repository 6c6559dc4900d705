#include "dma_state.h"

#include "../clock.h"
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
    return p->workload == IB_WL_dma && (!p->queues_per_worker || !p->queue_depth);
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

const struct ib_strategy ib_dma_state = {dma_size, dma_check, dma_init, dma_audit};
