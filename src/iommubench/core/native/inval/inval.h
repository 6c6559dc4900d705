/* IOTLB invalidation modes. A mode is one file here defining a `struct ib_invalidation` named
 * ib_invalidation_NAME, plus one line in invalidations.def.
 *
 * `unmapped` is called once per I/O after its page-table entries are cleared; the mode must
 * make the IOVA reusable (x->alloc->free) only once no IOTLB can still hold a translation for
 * it. `freelist` is the hook for table freeing (a later issue): the table pages that unmap
 * emptied, released to the pool by ib_release_freelist after the invalidation that covers
 * them, exactly where the IOVA is released. Until tables are freed it is always IB_NIL.
 */
#ifndef IB_INVAL_H
#define IB_INVAL_H

#include "../catalogue.h"
#include "../ctx.h"
#include "../reclaim.h"

#define IB_FQ_SIZE 256 /* flush-queue entries per CPU */
#define IB_FQ_TIMEOUT_NS 10000000ull /* 10 ms, dma-iommu.c's FQ_TIMEOUT */

struct ib_strategy;

struct ib_invalidation {
    const char *name;
    struct ib_about about;
    const struct ib_strategy *state; /* its arena state (strategy.h); 0 for none */
    void (*unmapped)(struct ib_ctx *x, uint64_t pfn, uint32_t pages, uint32_t freelist);
    /* Timeouts, from the worker's own loop (there are no timer threads). */
    void (*poll)(struct ib_ctx *x, uint64_t now_ns);
    /* End of run, or IOVA space exhausted: flush and release everything this CPU queued. */
    void (*drain)(struct ib_ctx *x);
};

/* One invalidation command on the single command queue: inv_ns of busy work under its lock. */
void ib_invalidate(struct ib_ctx *x);

/* Where table pages freed by an unmap go back to the pool, after their invalidation: at
 * once, or through limbo when walkers use deferred-free (reclaim.c). */
static inline void ib_release_freelist(struct ib_ctx *x, uint32_t freelist)
{
    if (freelist != IB_NIL)
        ib_release_tables(x, freelist);
}

#endif
