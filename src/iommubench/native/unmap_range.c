#include "pgtable.h"

struct range {
    struct ib_ctx *x;
    uint64_t lo, hi; /* [lo, hi) in pfns */
    uint64_t lost;
};

static void gather_table(struct ib_ctx *x, uint32_t index)
{
    x->meta[index] = x->gather;
    x->gather = index;
    x->c.tables_freed++;
}

static void clear_leaves(struct range *r, uint64_t *table, uint64_t base, uint64_t lo,
                         uint64_t hi)
{
    for (uint64_t pfn = lo; pfn < hi; pfn++) {
        uint64_t *pte = &table[pfn - base];
        uint64_t e = __atomic_load_n(pte, __ATOMIC_RELAXED);
        if (!ib_pte_valid(e) || ib_pte_target(e) != ib_frame_for(pfn))
            r->lost++;
        if (ib_pte_valid(e))
            __atomic_store_n(pte, 0, __ATOMIC_RELAXED);
    }
}

/* `table` at `level` spans pfns [base, base + 512^(level+1)). */
static void clear_level(struct range *r, uint64_t *table, int level, uint64_t base)
{
    uint64_t span = 1ull << (9 * level); /* pfns under one entry */
    uint64_t lo = r->lo > base ? r->lo : base;
    uint64_t hi = r->hi < base + 512 * span ? r->hi : base + 512 * span;
    if (level == 0) {
        clear_leaves(r, table, base, lo, hi);
        return;
    }
    for (uint64_t i = (lo - base) / span; base + i * span < hi; i++) {
        uint64_t entry_lo = base + i * span, entry_hi = entry_lo + span;
        uint64_t e = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);
        if (!ib_pte_valid(e) || !ib_pte_is_table(e)) {
            uint64_t a = entry_lo > lo ? entry_lo : lo, b = entry_hi < hi ? entry_hi : hi;
            r->lost += b - a; /* nothing mapped under a missing table */
            continue;
        }
        uint32_t child = (uint32_t)ib_pte_target(e);
        clear_level(r, ib_table(r->x, child), level - 1, entry_lo);
        if (r->lo <= entry_lo && entry_hi <= r->hi) {
            /* release: the cleared entries below are visible before the table disappears */
            __atomic_store_n(&table[i], 0, __ATOMIC_RELEASE);
            gather_table(r->x, child);
        }
    }
}

uint64_t ib_pt_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages)
{
    struct range r = {x, pfn, pfn + pages, 0};
    clear_level(&r, ib_table(x, IB_ROOT), IB_LEVELS - 1, 0);
    return r.lost;
}
