/* One IOTLB invalidation command, shared by every invalidation mode (and by page tables
 * whose own flush callbacks invalidate): inv_ns of calibrated busy work under the single
 * invalidation-queue lock, as the SMMUv3 command queue's spinlock was until 2019 ("iommu/
 * arm-smmu-v3: Reduce contention during command-queue insertion"). */
#include "../lockcore.h"
#include "../workloads/dma_state.h"
#include "inval.h"

void ib_invalidate(struct ib_ctx *x)
{
    struct ib_dma_shared *q = x->shared[IB_AXIS_WORKLOAD];
    ib_lock_counted(x, &q->inv_lock.v, &x->c.inv_lock_acquisitions);
    ib_busy(q->inv.loops);
    ib_unlock(&q->inv_lock.v);
    x->c.invalidations++;
}
