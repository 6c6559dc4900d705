/* The dma workload's state, its region of the arena (IB_AXIS_WORKLOAD): the invalidation
 * command queue (shared) and each worker's completion ring with its entries (per worker).
 * Sized, initialised and audited by its strategy entry (dma_state.c). */
#ifndef IB_DMA_STATE_H
#define IB_DMA_STATE_H

#include "../ctx.h"

struct ib_dma_shared {
    struct ib_line_u32 inv_lock;            /* the single invalidation (command) queue */
    struct { uint64_t loops; } IB_ALIGNED inv; /* busy-loop iterations giving params.inv_ns */
};

/* One in-flight I/O. */
struct ib_io {
    uint64_t pfn;
    uint64_t deadline;    /* TSC ticks at which the transfer is done */
    uint32_t pages;
    uint32_t pad;
};

/* A worker's device queues as one single-producer single-consumer ring of queues x depth
 * I/Os, oldest first. The producer is the submitting worker; the consumer is the same worker
 * (completion: local) or the next one (completion: remote). */
struct ib_ring {
    struct { uint64_t head; } IB_ALIGNED prod;     /* written by the producer only */
    struct { uint64_t tail; } IB_ALIGNED cons;     /* written by the consumer only */
    struct { uint32_t closed; } IB_ALIGNED done;   /* the producer submits no more */
};

static inline struct ib_dma_shared *ib_dma_shared(void *base)
{
    return (struct ib_dma_shared *)ib_region_shared(base, IB_AXIS_WORKLOAD);
}

/* Worker w's ring, its queues x depth entries right after it. */
static inline struct ib_ring *ib_ring_of(void *base, uint32_t w)
{
    return (struct ib_ring *)ib_region_worker(base, IB_AXIS_WORKLOAD, w);
}

static inline struct ib_io *ib_ring_entries(void *base, uint32_t w)
{
    return (struct ib_io *)(ib_ring_of(base, w) + 1);
}

extern const struct ib_strategy ib_dma_state;

#endif
