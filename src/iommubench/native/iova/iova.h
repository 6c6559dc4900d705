/* IOVA allocators. An allocator is one file here defining a `struct ib_allocator` named
 * ib_allocator_NAME, plus one line in allocators.def. Allocation is size-aligned (to the next
 * power of two) and top-down below the DMA mask, as drivers/iommu/iova.c does; pfn 0 is never
 * handed out, so 0 means failure. Sizes of up to 32 pages are rounded up to a power of two
 * (alloc_iova_fast), larger ones are allocated exactly; free takes the same page count.
 */
#ifndef IB_IOVA_H
#define IB_IOVA_H

#include "../ctx.h"

#define IB_IOVA_START_PFN 1ull

struct ib_allocator {
    const char *name;
    uint64_t (*alloc)(struct ib_ctx *x, uint32_t pages);
    void (*free)(struct ib_ctx *x, uint64_t pfn, uint32_t pages);
};

static inline uint32_t ib_iova_order(uint32_t pages)
{
    return pages <= 1 ? 0 : 32u - (uint32_t)__builtin_clz(pages - 1);
}

/* What the tree actually holds for a request of `pages` (alloc_iova_fast's rounding). */
static inline uint64_t ib_iova_alloc_size(uint32_t pages)
{
    uint32_t order = ib_iova_order(pages);
    return order < IB_RCACHE_ORDERS ? (1ull << order) : pages;
}

/* The global tree, under the tree lock. Exposed for the rcache, which falls back to it:
 * the _locked variants expect the caller to hold iova.lock (taken with ib_iova_lock). */
void ib_iova_lock(struct ib_ctx *x);
void ib_iova_unlock(struct ib_ctx *x);
uint64_t ib_iova_tree_alloc_locked(struct ib_ctx *x, uint64_t size);
int ib_iova_tree_free_locked(struct ib_ctx *x, uint64_t pfn);
uint64_t ib_iova_tree_alloc(struct ib_ctx *x, uint64_t size);
void ib_iova_tree_free(struct ib_ctx *x, uint64_t pfn);

/* Parent side: an empty tree below the DMA mask and every magazine on its class's list. */
void ib_iova_init(void *base);
void ib_rcache_init(void *base);
/* Tree lookups for the audit (no locking; the workers have exited). */
uint32_t ib_iova_find(void *base, uint64_t pfn);

#endif
