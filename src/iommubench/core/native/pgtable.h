/* The IO page table: 4 levels x 512 eight-byte entries, 4 KiB granule, 48-bit IOVA.
 *
 * An entry is (frame << 12) | VALID for a leaf at level 0, or (table index << 12) | VALID |
 * TABLE for a table at levels 3..1. The root is pool page 0. Driver-specific behaviour (how
 * a missing table is installed) is passed in as an always-inlined function, so each driver
 * gets its own specialised walk with no indirect call on the hot path.
 */
#ifndef IB_PGTABLE_H
#define IB_PGTABLE_H

#include "ctx.h"
#include "pool.h"

#define IB_LEVELS 4
#define IB_PTE_VALID 1ull
#define IB_PTE_TABLE 2ull
#define IB_PTE_SHIFT 12
#define IB_ROOT 0u
#define IB_IOVA_PFN_BITS 36
#define IB_INLINE static inline __attribute__((always_inline))

/* Where workloads place their IOVAs (pfn units) and the frame each IOVA maps to: the frame is
 * a pure function of the IOVA so the audit can recompute every expected translation. */
#define IB_REGION_BASE_PFN (1ull << 18)
#define IB_FRAME_OFFSET (1ull << 30)

IB_INLINE uint64_t ib_frame_for(uint64_t pfn) { return pfn + IB_FRAME_OFFSET; }

IB_INLINE unsigned ib_pt_index(uint64_t pfn, int level) { return (pfn >> (9 * level)) & 511u; }
IB_INLINE int ib_pte_valid(uint64_t e) { return (e & IB_PTE_VALID) != 0; }
IB_INLINE int ib_pte_is_table(uint64_t e) { return (e & IB_PTE_TABLE) != 0; }
IB_INLINE uint64_t ib_pte_target(uint64_t e) { return e >> IB_PTE_SHIFT; }
IB_INLINE uint64_t ib_pte_leaf(uint64_t frame) { return (frame << IB_PTE_SHIFT) | IB_PTE_VALID; }
IB_INLINE uint64_t ib_pte_table(uint32_t index)
{
    return ((uint64_t)index << IB_PTE_SHIFT) | IB_PTE_VALID | IB_PTE_TABLE;
}

/* Installs a table into the empty entry *pte (or finds one a racer installed) and returns the
 * entry now present, 0 when the pool ran dry. */
typedef uint64_t (*ib_install_fn)(struct ib_ctx *x, uint64_t *pte);

IB_INLINE uint64_t *ib_walk_to_leaf(struct ib_ctx *x, uint64_t pfn, ib_install_fn install)
{
    /* read once: every acquire load below is a compiler barrier that would force a reload */
    char *const pages = x->pages;
    uint64_t *table = (uint64_t *)pages;
#pragma GCC unroll 4
    for (int level = IB_LEVELS - 1; level > 0; level--) {
        uint64_t *pte = &table[ib_pt_index(pfn, level)];
        /* acquire: pairs with the installer's release, so the new table's zeroes are seen */
        uint64_t e = __atomic_load_n(pte, __ATOMIC_ACQUIRE);
        if (__builtin_expect(!ib_pte_valid(e), 0)) {
            e = install(x, pte);
            if (!e)
                return 0;
        }
        table = (uint64_t *)(pages + ib_pte_target(e) * IB_PAGE_BYTES);
    }
    return &table[ib_pt_index(pfn, 0)];
}

/* The walk without installing: the index of the leaf table covering pfn, IB_NIL when a level
 * is missing. */
IB_INLINE uint32_t ib_lookup_table(struct ib_ctx *x, uint64_t pfn)
{
    char *const pages = x->pages;
    uint64_t *table = (uint64_t *)pages;
    uint32_t index = IB_ROOT;
#pragma GCC unroll 4
    for (int level = IB_LEVELS - 1; level > 0; level--) {
        /* acquire: pairs with the installer's release, so the table's contents are seen */
        uint64_t e = __atomic_load_n(&table[ib_pt_index(pfn, level)], __ATOMIC_ACQUIRE);
        if (!ib_pte_valid(e) || !ib_pte_is_table(e))
            return IB_NIL;
        index = (uint32_t)ib_pte_target(e);
        table = (uint64_t *)(pages + (uint64_t)index * IB_PAGE_BYTES);
    }
    return index;
}

IB_INLINE uint64_t *ib_lookup_leaf(struct ib_ctx *x, uint64_t pfn)
{
    uint32_t index = ib_lookup_table(x, pfn);
    return index == IB_NIL ? 0 : &ib_table(x, index)[ib_pt_index(pfn, 0)];
}

/* Map and unmap counts are kept by the workloads in registers and added to the counters in
 * batches; a per-op increment through x would be a store the next op must wait for. */
enum ib_op_result { IB_OP_OK = 0, IB_OP_CONFLICT = 1, IB_OP_MISSING = 2, IB_OP_NOMEM = 3 };

/* The caller owns [pfn] (the IOMMU API contract), so the leaf needs no compare-and-swap:
 * a relaxed load to check, a release store to publish. */
IB_INLINE int ib_pt_map(struct ib_ctx *x, uint64_t pfn, uint64_t frame, ib_install_fn install)
{
    uint64_t *leaf = ib_walk_to_leaf(x, pfn, install);
    if (!leaf)
        return IB_OP_NOMEM;
    if (__atomic_load_n(leaf, __ATOMIC_RELAXED) & IB_PTE_VALID) {
        x->c.map_conflicts++;
        return IB_OP_CONFLICT;
    }
    __atomic_store_n(leaf, ib_pte_leaf(frame), __ATOMIC_RELEASE);
    return IB_OP_OK;
}

/* One call mapping a contiguous range, as iommu_map maps the pages of one dma_map_page: each
 * page's walk and leaf store are ib_pt_map's. */
IB_INLINE int ib_pt_map_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages,
                              ib_install_fn install)
{
    for (uint64_t i = 0; i < pages; i++) {
        int r = ib_pt_map(x, pfn + i, ib_frame_for(pfn + i), install);
        if (__builtin_expect(r != IB_OP_OK, 0) && r != IB_OP_CONFLICT)
            return r;
    }
    return IB_OP_OK;
}

IB_INLINE int ib_pt_unmap(struct ib_ctx *x, uint64_t pfn, uint64_t *frame_out)
{
    uint64_t *leaf = ib_lookup_leaf(x, pfn);
    uint64_t e = leaf ? __atomic_load_n(leaf, __ATOMIC_RELAXED) : 0;
    if (!ib_pte_valid(e))
        return IB_OP_MISSING;
    __atomic_store_n(leaf, 0, __ATOMIC_RELAXED);
    *frame_out = ib_pte_target(e);
    return IB_OP_OK;
}

/* A lock function of the point's lock, handed to a driver's templates as an always-inlined
 * constant; ib_no_lock for a walk that takes no per-table lock. */
typedef void (*ib_lock_fn)(struct ib_ctx *x, void *lock);

IB_INLINE void ib_no_lock(struct ib_ctx *x, void *lock) { (void)x, (void)lock; }

/* Table page `index`'s instance of the point's lock (table-lock: stride bytes per page). */
IB_INLINE void *ib_table_lock(struct ib_ctx *x, uint32_t index, uint64_t stride)
{
    return x->lock_pages + (uint64_t)index * stride;
}

IB_INLINE uint64_t ib_pt_span(int level) { return 1ull << (9 * level); } /* pfns per entry */

/* The first entry of a table at `level` spanning pfns from `base` that [lo, ...) reaches. */
IB_INLINE unsigned ib_pt_first(uint64_t lo, uint64_t base, int level)
{
    return lo > base ? (unsigned)((lo - base) / ib_pt_span(level)) : 0;
}

IB_INLINE void ib_gather_table(struct ib_ctx *x, uint32_t index)
{
    x->meta[index] = x->gather;
    x->gather = index;
    x->c.tables_freed++;
}

/* Clear the leaves of one leaf table (base: the pfn of its entry 0) in [lo, hi); counts the
 * pages not mapped to the frame this model expects. */
IB_INLINE uint64_t ib_clear_leaves(struct ib_ctx *x, uint32_t index, uint64_t base, uint64_t lo,
                                   uint64_t hi)
{
    uint64_t *table = ib_table(x, index), lost = 0;
    for (uint64_t pfn = lo > base ? lo : base; pfn < hi && pfn < base + 512; pfn++) {
        uint64_t *pte = &table[pfn - base];
        uint64_t e = __atomic_load_n(pte, __ATOMIC_RELAXED);
        if (!ib_pte_valid(e) || ib_pte_target(e) != ib_frame_for(pfn))
            lost++;
        if (ib_pte_valid(e))
            __atomic_store_n(pte, 0, __ATOMIC_RELAXED);
    }
    return lost;
}

/* Unmap [pfn, pfn + pages): clear every leaf, and detach every table whose whole span the
 * range covers (and so every table below it), as VT-d's clear-level path does. A depth-first
 * walk with an explicit stack (so it inlines into each driver): `acq`/`rel` bracket the
 * clearing of a leaf table and each detach from a parent table. Detached tables are chained
 * on x->gather through the pool's links; the caller releases them only after the invalidation
 * that covers this unmap. Returns how many of the pages were not mapped to the frame this
 * model expects (lost mappings). The caller owns the range, so a covered table is touched by
 * nobody else but walkers; detaching it is one release store. */
IB_INLINE uint64_t ib_pt_clear_range(struct ib_ctx *x, uint64_t lo, uint64_t hi, ib_lock_fn acq,
                                     ib_lock_fn rel, uint64_t stride)
{
    uint32_t tab[IB_LEVELS];
    uint64_t base[IB_LEVELS];
    unsigned idx[IB_LEVELS];
    uint64_t lost = 0;
    int level = IB_LEVELS - 1;
    tab[level] = IB_ROOT;
    base[level] = 0;
    idx[level] = ib_pt_first(lo, 0, level);
    for (;;) {
        if (level == 0) {
            void *l = ib_table_lock(x, tab[0], stride);
            acq(x, l);
            lost += ib_clear_leaves(x, tab[0], base[0], lo, hi);
            rel(x, l);
        } else {
            uint64_t span = ib_pt_span(level);
            uint64_t entry_lo = base[level] + idx[level] * span;
            if (idx[level] < 512 && entry_lo < hi) {
                uint64_t *pte = &ib_table(x, tab[level])[idx[level]];
                /* acquire: pairs with the installer's release, so the child's contents are seen */
                uint64_t e = __atomic_load_n(pte, __ATOMIC_ACQUIRE);
                if (!ib_pte_valid(e) || !ib_pte_is_table(e)) {
                    uint64_t a = entry_lo > lo ? entry_lo : lo;
                    uint64_t b = entry_lo + span < hi ? entry_lo + span : hi;
                    lost += b - a; /* nothing mapped under a missing table */
                    idx[level]++;
                    continue;
                }
                tab[level - 1] = (uint32_t)ib_pte_target(e);
                base[level - 1] = entry_lo;
                idx[level - 1] = ib_pt_first(lo, entry_lo, level - 1);
                level--;
                continue;
            }
        }
        /* this table is done: back to its parent, detaching it if the range covers it */
        if (level == IB_LEVELS - 1)
            return lost;
        level++;
        uint64_t span = ib_pt_span(level);
        uint64_t entry_lo = base[level] + idx[level] * span;
        if (lo <= entry_lo && entry_lo + span <= hi) {
            void *l = ib_table_lock(x, tab[level], stride);
            acq(x, l);
            /* release: the cleared entries below are visible before the table disappears */
            __atomic_store_n(&ib_table(x, tab[level])[idx[level]], 0, __ATOMIC_RELEASE);
            rel(x, l);
            ib_gather_table(x, tab[level - 1]);
        }
        idx[level]++;
    }
}

/* The whole-table visit of the walkers and the audit: depth first, in pfn order, with an
 * explicit stack. enter(v, table, level) before a table's entries are read; entry(v, level,
 * pfn, e) for each present entry (pfn: at level 0 the page, above it the pfn of the entry's
 * first page >> 9 * level), returning the child table to descend into or IB_NIL; leave(v,
 * table, level) once a table's entries (and everything below them) are done. */
typedef void (*ib_pt_table_fn)(void *v, uint32_t table, int level);
typedef uint32_t (*ib_pt_entry_fn)(void *v, int level, uint64_t pfn, uint64_t e);

IB_INLINE void ib_pt_visit(const char *pages, void *v, ib_pt_table_fn enter, ib_pt_entry_fn entry,
                           ib_pt_table_fn leave)
{
    struct {
        uint32_t table;
        uint32_t i;
        uint64_t prefix;
    } st[IB_LEVELS];
    int level = IB_LEVELS - 1;
    st[level].table = IB_ROOT;
    st[level].i = 0;
    st[level].prefix = 0;
    enter(v, IB_ROOT, level);
    for (;;) {
        if (st[level].i == 512) {
            leave(v, st[level].table, level);
            if (level == IB_LEVELS - 1)
                return;
            level++;
            continue;
        }
        const uint64_t *t = (const uint64_t *)(pages + (uint64_t)st[level].table * IB_PAGE_BYTES);
        /* acquire: pairs with the installer's release, so a new child's zeroes are seen */
        uint64_t e = __atomic_load_n(&t[st[level].i], __ATOMIC_ACQUIRE);
        uint64_t pfn = (st[level].prefix << 9) | st[level].i;
        st[level].i++;
        if (!ib_pte_valid(e))
            continue;
        uint32_t child = entry(v, level, pfn, e);
        if (child == IB_NIL || level == 0)
            continue;
        level--;
        st[level].table = child;
        st[level].i = 0;
        st[level].prefix = pfn;
        enter(v, child, level);
    }
}

IB_INLINE uint64_t ib_pt_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages)
{
    return ib_pt_clear_range(x, pfn, pfn + pages, ib_no_lock, ib_no_lock, 0);
}

#endif
