/* The IOVA allocators' state in the arena (the allocator axis's region), shared by both
 * allocators (rcache falls back to the tree): its sizing, initialisation and audit. dma only:
 * a prefault point has no IOVA space. */
#include <stdlib.h>

#include "../strategy.h"
#include "../inval/inval.h"
#include "iova.h"

#define ALIGN_UP(v, a) (((v) + (a) - 1) / (a) * (a))

/* Full magazines a class's depot can hold at once: 32 (bounded) or, with the inline trim,
 * one more than the workers momentarily (list). */
static uint64_t depot_cap(const struct ib_params *p)
{
    return p->depot == 0 ? 32 : (uint64_t)p->workers + 1;
}

/* Each CPU: loaded + prev; the depot; one magazine per CPU in transit during a trim; spare. */
uint64_t ib_iova_mags_per_order(const struct ib_params *p)
{
    return 3ull * p->workers + depot_cap(p) + 2;
}

/* Ranges that can be allocated at once: every I/O in flight, every flush-queue entry, and
 * every magazine slot (cached IOVAs stay allocated in the tree). */
static uint64_t max_ranges(const struct ib_params *p)
{
    uint64_t w = p->workers, cap = (uint64_t)p->queues_per_worker * p->queue_depth;
    return w * cap + w * IB_FQ_SIZE + IB_RCACHE_ORDERS * ib_iova_mags_per_order(p) * IB_MAG_SIZE +
           64;
}

static uint64_t nodes_off(void) { return ALIGN_UP(sizeof(struct ib_iova_region), IB_PAGE_BYTES); }

static uint64_t mags_off(const struct ib_params *p)
{
    return ALIGN_UP(nodes_off() + max_ranges(p) * sizeof(struct ib_iova_node), IB_PAGE_BYTES);
}

static void iova_size(const struct ib_params *p, struct ib_region_size *out)
{
    int dma = ib_workload_reads(p, "allocator");
    uint64_t mags = ib_iova_mags_per_order(p) * IB_RCACHE_ORDERS * sizeof(struct ib_mag);
    out->shared = dma ? mags_off(p) + mags : 0;
    out->per_worker = dma ? sizeof(struct ib_cpu_rcache) : 0;
    out->per_page = 0;
}

/* Node and magazine indices are 32-bit, IB_NIL excluded. */
static int iova_check(const struct ib_params *p)
{
    if (!ib_workload_reads(p, "allocator"))
        return 0;
    return p->depot > 1 /* rcache: bounded or list */ || max_ranges(p) >= IB_NIL || ib_iova_mags_per_order(p) * IB_RCACHE_ORDERS >= IB_NIL;
}

static void iova_init(void *base)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    if (!ib_workload_reads(p, "allocator"))
        return;
    struct ib_iova_region *r = ib_iova_region(base);
    r->geo.nodes = max_ranges(p);
    r->geo.mags_per_order = ib_iova_mags_per_order(p);
    r->geo.nodes_off = nodes_off();
    r->geo.mags_off = mags_off(p);
    ib_iova_init(base);
    ib_rcache_init(base);
}

/* The IOVA audit, after every worker drained its I/Os and its flush queue: the tree is a valid
 * ordered set of disjoint ranges below the mask, every cached pfn names exactly one range of
 * its class (a pfn cached twice would be handed out twice), and every range in the tree is
 * cached: anything else was allocated and never freed. */
static uint64_t tree_walk(struct ib_audit_result *r, const struct ib_iova_region *s,
                          const struct ib_iova_node *n, uint32_t t, uint64_t *last_hi, int depth)
{
    if (t == IB_NIL)
        return 0;
    if (t >= s->geo.nodes || depth > 64) {
        r->iova_corrupt++;
        return 0;
    }
    uint64_t c = tree_walk(r, s, n, n[t].left, last_hi, depth + 1);
    uint64_t size = n[t].hi - n[t].lo + 1;
    uint64_t align = size <= 1 ? 1 : 1ull << (64 - __builtin_clzll(size - 1));
    if (n[t].lo < IB_IOVA_START_PFN || n[t].hi < n[t].lo || n[t].hi > s->iova.limit_pfn ||
        (n[t].lo & (align - 1)))
        r->iova_corrupt++; /* out of bounds, or not size-aligned */
    if (*last_hi != UINT64_MAX && n[t].lo <= *last_hi)
        r->iova_double_allocs++; /* overlapping or out-of-order ranges */
    *last_hi = n[t].hi;
    return c + 1 + tree_walk(r, s, n, n[t].right, last_hi, depth + 1);
}

static void audit_cached(void *base, struct ib_audit_result *r, uint8_t *seen,
                         const struct ib_mag *m, uint32_t order)
{
    const struct ib_iova_node *n = ib_iova_nodes(base);
    for (uint32_t i = 0; i < m->size && i < IB_MAG_SIZE; i++) {
        r->iova_cached++;
        uint32_t t = ib_iova_find(base, m->pfns[i]);
        if (t == IB_NIL || n[t].hi - n[t].lo + 1 != (1ull << order)) {
            r->iova_corrupt++;
        } else if (seen[t]) {
            r->iova_double_allocs++;
        } else {
            seen[t] = 1;
        }
    }
}

static void iova_audit(void *base, struct ib_audit *a)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    if (!ib_workload_reads(p, "allocator"))
        return;
    struct ib_audit_result *r = ib_audit_result_of(a);
    const struct ib_iova_region *s = ib_iova_region(base);
    const struct ib_iova_node *n = ib_iova_nodes(base);
    uint64_t nodes = s->geo.nodes, last_hi = UINT64_MAX;
    uint64_t in_tree = tree_walk(r, s, n, s->iova.root, &last_hi, 0);
    r->iova_ranges = in_tree;
    uint64_t free_nodes = 0;
    for (uint32_t k = s->iova.free_nodes; k != IB_NIL && free_nodes <= nodes; k = n[k].left) {
        if (k >= nodes) {
            r->iova_corrupt++;
            break;
        }
        free_nodes++;
    }
    if (in_tree + free_nodes != nodes || in_tree != s->iova.nodes_used)
        r->iova_corrupt++;
    uint8_t *seen = calloc(nodes ? nodes : 1, 1);
    if (!seen) {
        ib_audit_failed(a);
        return;
    }
    const struct ib_mag *mags = ib_mags(base);
    uint64_t per = s->geo.mags_per_order;
    for (uint32_t order = 0; order < IB_RCACHE_ORDERS && per; order++) {
        for (uint32_t w = 0; w < p->workers; w++) {
            audit_cached(base, r, seen, &mags[ib_cpu_rcache_of(base, w)->loaded[order]], order);
            audit_cached(base, r, seen, &mags[ib_cpu_rcache_of(base, w)->prev[order]], order);
        }
        uint64_t steps = 0;
        for (uint32_t m = s->depot[order].full_head; m != IB_NIL && steps <= per;
             m = mags[m].next, steps++) {
            if (m < order * per || m >= (order + 1) * per) {
                r->iova_corrupt++;
                break;
            }
            audit_cached(base, r, seen, &mags[m], order);
        }
        if (steps != s->depot[order].count)
            r->iova_corrupt++;
    }
    uint64_t cached_ranges = 0;
    for (uint64_t t = 0; t < nodes; t++)
        cached_ranges += seen[t];
    free(seen);
    r->iova_leaks = in_tree - cached_ranges;
}

const struct ib_strategy ib_iova_strategy = {iova_size, iova_check, iova_init, iova_audit};
