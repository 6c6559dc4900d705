/* IOVA allocators. An allocator is one file here defining a `struct ib_allocator` named
 * ib_allocator_NAME, plus one line in allocators.def (kernel_iova.c: the kernel's own iova.c,
 * loaded from the kernel-code object, with its own state). Allocation is size-aligned (to the next
 * power of two) and top-down below the DMA mask, as drivers/iommu/iova.c does; pfn 0 is never
 * handed out, so 0 means failure. Sizes of up to 32 pages are rounded up to a power of two
 * (alloc_iova_fast), larger ones are allocated exactly; free takes the same page count.
 */
#ifndef IB_IOVA_H
#define IB_IOVA_H

#include "../catalogue.h"

#include "../ctx.h"

#define IB_IOVA_START_PFN 1ull
#define IB_RCACHE_ORDERS 6 /* size classes 1..32 pages */
#define IB_MAG_SIZE 127    /* IOVAs per magazine */

/* The global IOVA allocator: an AVL tree of allocated ranges keyed by pfn_lo, in a node pool
 * addressed by index. Everything in it is protected by iova.lock. */
struct ib_iova_state {
    uint32_t lock;        /* iova_rbtree_lock: every tree and node-pool access */
    uint32_t root;
    uint32_t free_nodes;  /* the node pool's free list, linked through .left */
    uint32_t pad;
    uint64_t hint;        /* cached32_node: allocation continues below this pfn (exclusive) */
    uint64_t limit_pfn;   /* last pfn below the DMA mask */
    uint64_t nodes_used;
} IB_ALIGNED;

/* One size class's depot: full magazines (a stack) and spare empty ones, under one lock. */
struct ib_depot {
    uint32_t lock;        /* rcache->lock: the full and empty lists and their counts */
    uint32_t full_head;
    uint32_t empty_head;
    uint32_t count;       /* full magazines in the depot */
} IB_ALIGNED;

struct ib_iova_node {
    uint64_t lo, hi;      /* inclusive pfn range */
    uint32_t left, right;
    int32_t height;
    uint32_t pad;
};

struct ib_mag {
    uint32_t size;
    uint32_t next;        /* depot list link */
    uint64_t pfns[IB_MAG_SIZE];
};

/* A CPU's loaded and prev magazines per size class: touched by the owning worker only (the
 * kernel's per-CPU lock guards against preemption, which a pinned worker process has not). */
struct ib_cpu_rcache {
    uint32_t loaded[IB_RCACHE_ORDERS];
    uint32_t prev[IB_RCACHE_ORDERS];
} IB_ALIGNED;

/* The allocator axis's shared region (both allocators: rcache falls back to the tree): the
 * tree's state, the depots, where the node pool and the magazines lie (from the region's
 * start), then the nodes and the magazines. A worker's bytes are its CPU's rcache. */
struct ib_iova_region {
    struct ib_iova_state iova;
    struct ib_depot depot[IB_RCACHE_ORDERS];
    struct {
        uint64_t nodes;          /* tree nodes in the node pool */
        uint64_t mags_per_order; /* magazines per size class */
        uint64_t nodes_off;
        uint64_t mags_off;
    } IB_ALIGNED geo;
};

static inline struct ib_iova_region *ib_iova_region(void *base)
{
    return (struct ib_iova_region *)ib_region_shared(base, IB_AXIS_ALLOCATOR);
}

static inline struct ib_iova_node *ib_iova_nodes(void *base)
{
    struct ib_iova_region *r = ib_iova_region(base);
    return (struct ib_iova_node *)((char *)r + r->geo.nodes_off);
}

static inline struct ib_mag *ib_mags(void *base)
{
    struct ib_iova_region *r = ib_iova_region(base);
    return (struct ib_mag *)((char *)r + r->geo.mags_off);
}

static inline struct ib_cpu_rcache *ib_cpu_rcache_of(void *base, uint32_t w)
{
    return (struct ib_cpu_rcache *)ib_region_worker(base, IB_AXIS_ALLOCATOR, w);
}

extern const struct ib_strategy ib_iova_strategy;

/* Magazines per size class a point needs (also what pool sizing counts as cached IOVAs). */
uint64_t ib_iova_mags_per_order(const struct ib_params *p);

struct ib_strategy;

struct ib_allocator {
    const char *name;
    struct ib_about about;
    const struct ib_strategy *state; /* its arena state (strategy.h) */
    uint64_t (*alloc)(struct ib_ctx *x, uint32_t pages);
    void (*free)(struct ib_ctx *x, uint64_t pfn, uint32_t pages);
    /* Optional (0: none). Its timers, from the worker's own loop every few hundred I/Os, as an
     * invalidation mode's poll: there are no timer threads. */
    void (*poll)(struct ib_ctx *x, uint64_t now_ns);
    /* Optional, for an allocator loaded at run time from the kernel-code object (core/kernel):
     * which variant it loads (1 normal, 0 none), its attach (parent, after ib_arena_init and
     * before any worker forks) and its detach (parent, before the arena goes, whether or not
     * the point got as far as its audit). */
    uint32_t object_variant;
    int (*attach)(void *base, const char *object_path);
    void (*detach)(void *base);
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
