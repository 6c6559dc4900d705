/* The audit, run by the parent after every worker has exited: every mapping a worker's ledger
 * says is live translates exactly, nothing else is mapped, and every pool page is either
 * reachable exactly once from the root or on exactly one free list. */
#include <stdlib.h>

#include "pgtable.h"
#include "strategy.h"
#include "workloads/workloads.h"

enum { SEEN_TABLE = 1, SEEN_FREE = 2 };

struct ib_audit {
    struct ib_ctx x;
    int failed; /* a hook could not run (no memory for its marks) */
    uint8_t *seen;
    uint64_t npages;
    struct ib_audit_result *r;
    uint64_t *dump_pfns, *dump_frames, dump_cap, dump_len;
};

/* The workload's ledger: whether pfn must be mapped at the end, and to which frame. */
static int expected_frame(const struct ib_header *h, uint64_t pfn, uint64_t *frame)
{
    const struct ib_strategy *w = ib_strategy_of(&h->params, IB_AXIS_WORKLOAD);
    return w->ledger && w->ledger(h, pfn, frame);
}

/* The pfns the workload's ledger can say yes to. */
static void ledger_span(const struct ib_params *p, uint64_t *lo, uint64_t *hi)
{
    const struct ib_strategy *w = ib_strategy_of(p, IB_AXIS_WORKLOAD);
    *lo = *hi = 0;
    if (w->ledger_span)
        w->ledger_span(p, lo, hi);
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

/* A free list (counted in free_pages) or a list a strategy holds (its own count): every page
 * on it once, and nowhere else. */
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

void ib_audit_failed(struct ib_audit *a) { a->failed = 1; }

void ib_audit_held_pages(struct ib_audit *a, uint32_t head, uint64_t *count)
{
    visit_list(a, head, count);
}

/* A table in its own format (the page-table axis) reports what its walk reaches. */
void ib_audit_table_page(struct ib_audit *a, uint64_t page)
{
    if (page >= a->npages || page == IB_ROOT) {
        a->r->corrupt_entries++;
        return;
    }
    if (a->seen[page] & SEEN_TABLE) {
        a->r->multiply_linked++;
        return;
    }
    a->seen[page] |= SEEN_TABLE;
    a->r->reachable_tables++;
}

void ib_audit_leaf(struct ib_audit *a, uint64_t pfn, uint64_t frame)
{
    visit_leaf(a, pfn, ib_pte_leaf(frame));
}

int ib_audit_expected_next(struct ib_audit *a, uint64_t *cursor, uint64_t *pfn, uint64_t *frame)
{
    uint64_t lo, hi;
    ledger_span(&a->x.hdr->params, &lo, &hi);
    for (uint64_t i = *cursor; lo + i < hi; i++) {
        if (expected_frame(a->x.hdr, lo + i, frame)) {
            *pfn = lo + i;
            *cursor = i + 1;
            return 1;
        }
    }
    *cursor = hi - lo;
    return 0;
}

static void count_expected(struct ib_audit *a)
{
    const struct ib_params *p = &a->x.hdr->params;
    const struct ib_strategy *format = ib_table_format(p);
    uint64_t lo, hi;
    ledger_span(p, &lo, &hi);
    for (uint64_t pfn = lo; pfn < hi; pfn++) {
        uint64_t want, got;
        if (!expected_frame(a->x.hdr, pfn, &want))
            continue;
        a->r->expected_mappings++;
        if (format && format->translate) {
            if (!format->translate(a->x.base, pfn, &got))
                a->r->lost_mappings++;
            continue;
        }
        uint64_t *leaf = ib_lookup_leaf(&a->x, pfn);
        got = leaf ? *leaf : 0;
        if (!ib_pte_valid(got))
            a->r->lost_mappings++;
    }
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
    /* before the hooks: a table in its own format is torn down by its hook */
    count_expected(&a);
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_strategy *s = ib_strategy_of(&a.x.hdr->params, axis);
        if (s->audit)
            s->audit(base, &a);
    }
    for (uint64_t i = 0; i < a.npages; i++)
        if (!a.seen[i])
            r->leaked_tables++;
    free(a.seen);
    int rc = a.failed ? IB_ERR_AUDIT : IB_OK;
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
