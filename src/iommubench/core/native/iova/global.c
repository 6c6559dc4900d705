/* global: every allocation and free goes to the IOVA tree (tree.c) under its one lock, as
 * drivers/iommu/iova.c without per-CPU caches. */
#include "iova.h"

static uint64_t global_alloc(struct ib_ctx *x, uint32_t pages)
{
    return ib_iova_tree_alloc(x, ib_iova_alloc_size(pages));
}

static void global_free(struct ib_ctx *x, uint64_t pfn, uint32_t pages)
{
    (void)pages;
    ib_iova_tree_free(x, pfn);
}

const struct ib_allocator ib_allocator_global = {
    "global",
    {"one ordered tree of allocated ranges under one spinlock (iova_rbtree_lock)", "", "", 0},
    &ib_iova_strategy,
    global_alloc,
    global_free,
};
