/* The audit, run by the parent after every worker has exited: every mapping a worker's ledger
 * says is live translates exactly, nothing else is mapped, and every pool page is either
 * reachable exactly once from the root or on exactly one free list. */
#include <stdlib.h>

#include "iova/iova.h"
#include "pgtable.h"
#include "strategy.h"
#include "workloads/workloads.h"

enum { SEEN_TABLE = 1, SEEN_FREE = 2 };

struct ib_audit {
    struct ib_ctx x;
    uint8_t *seen;
    uint64_t npages;
    struct ib_audit_result *r;
    uint64_t *dump_pfns, *dump_frames, dump_cap, dump_len;
};

/* The ledger: which worker owns pfn, and whether that worker left it mapped. */
static int expected_frame(const struct ib_header *h, uint64_t pfn, uint64_t *frame)
{
    const struct ib_params *p = &h->params;
    if (pfn < IB_REGION_BASE_PFN || pfn >= IB_REGION_BASE_PFN + p->region_pages)
        return 0;
    uint64_t owner = ((pfn - IB_REGION_BASE_PFN) / p->chunk_pages) % p->workers;
    const struct ib_slot *s = (const struct ib_slot *)((const char *)h + h->layout.slots_off);
    if (s[owner].ledger != IB_LEDGER_ALL_CHUNKS)
        return 0;
    *frame = ib_frame_for(pfn);
    return 1;
}

static void visit_leaf(struct ib_audit *a, uint64_t pfn, uint64_t e)
{
    a->r->present_mappings++;
    if (a->dump_len < a->dump_cap) {
        a->dump_pfns[a->dump_len] = pfn;
        a->dump_frames[a->dump_len] = ib_pte_target(e);
    }
    a->dump_len++;
    uint64_t want;
    if (!expected_frame(a->x.hdr, pfn, &want))
        a->r->stray_mappings++;
    else if (ib_pte_target(e) != want)
        a->r->wrong_translations++;
}

static void audit_table(void *v, uint32_t index, int level) { (void)v, (void)index, (void)level; }

/* Every present entry: a leaf at level 0 (no block mappings in this model), above it a table
 * inside the pool, other than the root, reached once. */
static uint32_t audit_entry(void *v, int level, uint64_t pfn, uint64_t e)
{
    struct ib_audit *a = v;
    if (level == 0 || !ib_pte_is_table(e)) {
        if (level == 0)
            visit_leaf(a, pfn, e);
        else
            a->r->corrupt_entries++;
        return IB_NIL;
    }
    uint64_t child = ib_pte_target(e);
    if (child >= a->npages || child == IB_ROOT) {
        a->r->corrupt_entries++;
        return IB_NIL;
    }
    if (a->seen[child] & SEEN_TABLE) {
        a->r->multiply_linked++;
        return IB_NIL;
    }
    a->seen[child] |= SEEN_TABLE;
    a->r->reachable_tables++;
    return (uint32_t)child;
}

/* A free list (counted in free_pages) or a limbo list (limbo_pages): every page on it once,
 * and nowhere else. */
static void visit_list(struct ib_audit *a, uint32_t head, uint64_t *count)
{
    /* bounded: a page pushed twice can make the list cyclic */
    for (uint64_t steps = 0; head != IB_NIL && steps <= a->npages; steps++) {
        if (head >= a->npages) {
            a->r->corrupt_entries++;
            return;
        }
        if (a->seen[head] & SEEN_FREE) {
            a->r->double_frees++;
            return;
        }
        if (a->seen[head] & SEEN_TABLE)
            a->r->double_frees++;
        a->seen[head] |= SEEN_FREE;
        (*count)++;
        /* a page's generation is odd exactly while it sits on a free list */
        if ((count == &a->r->free_pages) != (a->x.gen[head] & 1u))
            a->r->corrupt_entries++;
        head = a->x.meta[head];
    }
}

struct ib_audit_result *ib_audit_result_of(struct ib_audit *a) { return a->r; }

void ib_audit_held_pages(struct ib_audit *a, uint32_t head)
{
    visit_list(a, head, &a->r->limbo_pages);
}

static void count_expected(struct ib_audit *a)
{
    const struct ib_params *p = &a->x.hdr->params;
    for (uint64_t pfn = IB_REGION_BASE_PFN; pfn < IB_REGION_BASE_PFN + p->region_pages; pfn++) {
        uint64_t want, got;
        if (!expected_frame(a->x.hdr, pfn, &want))
            continue;
        a->r->expected_mappings++;
        uint64_t *leaf = ib_lookup_leaf(&a->x, pfn);
        got = leaf ? *leaf : 0;
        if (!ib_pte_valid(got))
            a->r->lost_mappings++;
    }
}

/* The IOVA audit, after every worker drained its I/Os and its flush queue: the tree is a valid
 * ordered set of disjoint ranges below the mask, every cached pfn names exactly one range of
 * its class (a pfn cached twice would be handed out twice), and every range in the tree is
 * cached: anything else was allocated and never freed. */
static uint64_t tree_walk(struct ib_audit *a, const struct ib_iova_node *n, uint32_t t,
                          uint64_t *last_hi, uint64_t nodes, int depth)
{
    if (t == IB_NIL)
        return 0;
    if (t >= nodes || depth > 64) {
        a->r->iova_corrupt++;
        return 0;
    }
    uint64_t c = tree_walk(a, n, n[t].left, last_hi, nodes, depth + 1);
    const struct ib_iova_state *s = &a->x.hdr->iova;
    uint64_t size = n[t].hi - n[t].lo + 1;
    uint64_t align = size <= 1 ? 1 : 1ull << (64 - __builtin_clzll(size - 1));
    if (n[t].lo < IB_IOVA_START_PFN || n[t].hi < n[t].lo || n[t].hi > s->limit_pfn ||
        (n[t].lo & (align - 1)))
        a->r->iova_corrupt++; /* out of bounds, or not size-aligned */
    if (*last_hi != UINT64_MAX && n[t].lo <= *last_hi)
        a->r->iova_double_allocs++; /* overlapping or out-of-order ranges */
    *last_hi = n[t].hi;
    return c + 1 + tree_walk(a, n, n[t].right, last_hi, nodes, depth + 1);
}

static void audit_cached(struct ib_audit *a, uint8_t *seen, const struct ib_mag *m, uint32_t order)
{
    const struct ib_iova_node *n = ib_iova_nodes(a->x.base);
    for (uint32_t i = 0; i < m->size && i < IB_MAG_SIZE; i++) {
        a->r->iova_cached++;
        uint32_t t = ib_iova_find(a->x.base, m->pfns[i]);
        if (t == IB_NIL || n[t].hi - n[t].lo + 1 != (1ull << order)) {
            a->r->iova_corrupt++;
        } else if (seen[t]) {
            a->r->iova_double_allocs++;
        } else {
            seen[t] = 1;
        }
    }
}

static int audit_iova(struct ib_audit *a)
{
    void *base = a->x.base;
    struct ib_header *h = a->x.hdr;
    const struct ib_iova_node *n = ib_iova_nodes(base);
    uint64_t nodes = h->layout.iova_nodes, last_hi = UINT64_MAX;
    uint64_t in_tree = tree_walk(a, n, h->iova.root, &last_hi, nodes, 0);
    a->r->iova_ranges = in_tree;
    uint64_t free_nodes = 0;
    for (uint32_t k = h->iova.free_nodes; k != IB_NIL && free_nodes <= nodes; k = n[k].left) {
        if (k >= nodes) {
            a->r->iova_corrupt++;
            break;
        }
        free_nodes++;
    }
    if (in_tree + free_nodes != nodes || in_tree != h->iova.nodes_used)
        a->r->iova_corrupt++;
    uint8_t *seen = calloc(nodes ? nodes : 1, 1);
    if (!seen)
        return IB_ERR_AUDIT;
    const struct ib_mag *mags = ib_mags(base);
    uint64_t per = h->layout.mags_per_order;
    for (uint32_t order = 0; order < IB_RCACHE_ORDERS && per; order++) {
        for (uint32_t w = 0; w < h->params.workers; w++) {
            audit_cached(a, seen, &mags[ib_cpu_rcache_of(base, w)->loaded[order]], order);
            audit_cached(a, seen, &mags[ib_cpu_rcache_of(base, w)->prev[order]], order);
        }
        uint64_t steps = 0;
        for (uint32_t m = h->depot[order].full_head; m != IB_NIL && steps <= per;
             m = mags[m].next, steps++) {
            if (m < order * per || m >= (order + 1) * per) {
                a->r->iova_corrupt++;
                break;
            }
            audit_cached(a, seen, &mags[m], order);
        }
        if (steps != h->depot[order].count)
            a->r->iova_corrupt++;
    }
    uint64_t cached_ranges = 0;
    for (uint64_t t = 0; t < nodes; t++)
        cached_ranges += seen[t];
    free(seen);
    a->r->iova_leaks = in_tree - cached_ranges;
    for (uint32_t w = 0; w < h->params.workers; w++) {
        const struct ib_ring *r = ib_ring_of(base, w);
        a->r->inflight_left += r->prod.head - r->cons.tail;
    }
    return IB_OK;
}

static int run_audit(void *base, struct ib_audit_result *r, uint64_t *pfns, uint64_t *frames,
                     uint64_t cap, uint64_t *dumped)
{
    struct ib_audit a = {.r = r, .dump_pfns = pfns, .dump_frames = frames, .dump_cap = cap};
    memset(r, 0, sizeof(*r));
    ib_ctx_init(&a.x, base, 0);
    a.npages = a.x.hdr->params.pool_pages;
    a.seen = calloc(a.npages, 1);
    if (!a.seen)
        return IB_ERR_AUDIT;
    a.seen[IB_ROOT] = SEEN_TABLE;
    r->reachable_tables = 1;
    ib_pt_visit(a.x.pages, &a, audit_table, audit_entry, audit_table);
    visit_list(&a, a.x.hdr->pool.head, &r->free_pages);
    for (uint32_t w = 0; w < a.x.hdr->params.workers; w++) {
        visit_list(&a, ib_slot_of(base, w)->free_head, &r->free_pages);
    }
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_strategy *s = ib_strategy_of(&a.x.hdr->params, axis);
        if (s->audit)
            s->audit(base, &a);
    }
    for (uint64_t i = 0; i < a.npages; i++)
        if (!a.seen[i])
            r->leaked_tables++;
    count_expected(&a);
    free(a.seen);
    int rc = a.x.hdr->params.workload == IB_WL_dma ? audit_iova(&a) : IB_OK;
    if (dumped)
        *dumped = a.dump_len;
    return rc;
}

int ib_audit(void *base, struct ib_audit_result *out)
{
    return run_audit(base, out, 0, 0, 0, 0);
}

uint64_t ib_debug_dump(void *base, uint64_t *pfns, uint64_t *frames, uint64_t cap)
{
    struct ib_audit_result r;
    uint64_t n = 0;
    run_audit(base, &r, pfns, frames, cap, &n);
    return n;
}
