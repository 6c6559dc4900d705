/* strict: every unmap invalidates before its IOVA is freed (iommu.strict=1, the
 * IOMMU_DOMAIN_DMA default without a flush queue): one command (command.c) per unmap. */
#include "../iova/iova.h"
#include "inval.h"

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
