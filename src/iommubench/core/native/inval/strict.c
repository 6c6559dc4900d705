/* strict: every unmap invalidates before its IOVA is freed (iommu.strict=1, the
 * IOMMU_DOMAIN_DMA default without a flush queue): one command, inv_ns, under the single
 * invalidation-queue lock, as the SMMUv3 command queue's spinlock was until 2019. */
#include "../lockcore.h"
#include "inval.h"
#include "../workloads/dma_state.h"
#include "../iova/iova.h"

void ib_invalidate(struct ib_ctx *x)
{
    struct ib_dma_shared *q = x->shared[IB_AXIS_WORKLOAD];
    ib_lock_counted(x, &q->inv_lock.v, &x->c.inv_lock_acquisitions);
    ib_busy(q->inv.loops);
    ib_unlock(&q->inv_lock.v);
    x->c.invalidations++;
}

static void strict_unmapped(struct ib_ctx *x, uint64_t pfn, uint32_t pages, uint32_t freelist)
{
    ib_invalidate(x);
    ib_release_freelist(x, freelist);
    x->alloc->free(x, pfn, pages);
}

static void strict_poll(struct ib_ctx *x, uint64_t now_ns) { (void)x, (void)now_ns; }
static void strict_drain(struct ib_ctx *x) { (void)x; }

const struct ib_invalidation ib_invalidation_strict = {
    "strict",
    {"invalidate on every unmap, inv_ns under one invalidation-queue lock", "", "", 0},
    0,
    strict_unmapped,
    strict_poll,
    strict_drain,
};
