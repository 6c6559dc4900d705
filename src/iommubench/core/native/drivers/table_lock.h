/* table-lock: split locks, one instance of the point's lock per table page (as CPU page tables
 * split their page-table lock). A walk reads entries without a lock, as lock-free walks do: the
 * caller owns its range, and a table is freed only by an unmap whose range covers it. The lock
 * of a table is taken to install into it, to store or clear its leaves, and to detach a child
 * from it. A missing table is allocated outside the lock and the entry re-checked inside (as
 * exynos does); a racer that installed first wins, and the spare table goes back to the pool.
 * The calibrated critical-section work (cs_map_ns, cs_unmap_ns) runs once per call, under
 * the first leaf table's lock (range unmap: before the walk, outside any lock). A worker holds
 * one table lock at a time. */
#ifndef IB_TABLE_LOCK_H
#define IB_TABLE_LOCK_H

#include "driver.h"

/* Installs a table into the empty entry *pte of table `parent`, or finds a racer's. */
static inline __attribute__((always_inline)) uint64_t
table_lock_install(struct ib_ctx *x, uint32_t parent, uint64_t *pte, ib_lock_fn acq,
                   ib_lock_fn rel, uint64_t stride)
{
    uint32_t fresh = ib_pool_alloc(x);
    if (fresh == IB_NIL)
        return 0;
    void *l = ib_table_lock(x, parent, stride);
    acq(x, l);
    /* relaxed: installs into this table happen under its lock, whose acquire ordered us after
     * the previous installer, and so after the zeroes of the table it installed */
    uint64_t e = __atomic_load_n(pte, __ATOMIC_RELAXED);
    if (!ib_pte_valid(e)) {
        e = ib_pte_table(fresh);
        /* release: lock-free readers (other walks, walkers) see the zeroed table first */
        __atomic_store_n(pte, e, __ATOMIC_RELEASE);
        x->c.tables_allocated++;
        fresh = IB_NIL;
    }
    rel(x, l);
    if (fresh != IB_NIL)
        ib_pool_free(x, fresh); /* never visible to anyone: straight back */
    return e;
}

/* One page: the walk, then the leaf store under the leaf table's lock, with `loops` of the
 * calibrated work there (a call's cs_map_ns is spent once, on its first page). */
static inline __attribute__((always_inline)) int
table_lock_map_page(struct ib_ctx *x, uint64_t pfn, uint64_t fr, uint64_t loops,
                    ib_lock_fn acq, ib_lock_fn rel, uint64_t stride)
{
    char *const pages = x->pages;
    uint32_t index = IB_ROOT;
#pragma GCC unroll 4
    for (int level = IB_LEVELS - 1; level > 0; level--) {
        uint64_t *table = (uint64_t *)(pages + (uint64_t)index * IB_PAGE_BYTES);
        uint64_t *pte = &table[ib_pt_index(pfn, level)];
        /* acquire: pairs with the installer's release, so the new table's zeroes are seen */
        uint64_t e = __atomic_load_n(pte, __ATOMIC_ACQUIRE);
        if (__builtin_expect(!ib_pte_valid(e), 0)) {
            e = table_lock_install(x, index, pte, acq, rel, stride);
            if (!e)
                return IB_OP_NOMEM;
        }
        index = (uint32_t)ib_pte_target(e);
    }
    uint64_t *leaf = &ib_table(x, index)[ib_pt_index(pfn, 0)];
    void *l = ib_table_lock(x, index, stride);
    int r = IB_OP_OK;
    acq(x, l);
    ib_busy(loops);
    if (__atomic_load_n(leaf, __ATOMIC_RELAXED) & IB_PTE_VALID) {
        x->c.map_conflicts++;
        r = IB_OP_CONFLICT;
    } else {
        /* release: a walker that reads the leaf reads it whole */
        __atomic_store_n(leaf, ib_pte_leaf(fr), __ATOMIC_RELEASE);
    }
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) int
table_lock_map(struct ib_ctx *x, uint64_t pfn, uint64_t fr, ib_lock_fn acq, ib_lock_fn rel,
               uint64_t stride)
{
    return table_lock_map_page(x, pfn, fr, x->cs_map_loops, acq, rel, stride);
}

static inline __attribute__((always_inline)) int
table_lock_map_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                     ib_lock_fn rel, uint64_t stride)
{
    for (uint64_t i = 0; i < pages; i++) {
        uint64_t loops = i == 0 ? x->cs_map_loops : 0;
        int r = table_lock_map_page(x, pfn + i, ib_frame_for(pfn + i), loops, acq, rel, stride);
        if (__builtin_expect(r != IB_OP_OK, 0) && r != IB_OP_CONFLICT)
            return r;
    }
    return IB_OP_OK;
}

static inline __attribute__((always_inline)) int
table_lock_unmap(struct ib_ctx *x, uint64_t pfn, uint64_t *f, ib_lock_fn acq, ib_lock_fn rel,
                 uint64_t stride)
{
    uint32_t index = ib_lookup_table(x, pfn);
    if (index == IB_NIL)
        return IB_OP_MISSING;
    uint64_t *leaf = &ib_table(x, index)[ib_pt_index(pfn, 0)];
    void *l = ib_table_lock(x, index, stride);
    acq(x, l);
    ib_busy(x->cs_unmap_loops);
    uint64_t e = __atomic_load_n(leaf, __ATOMIC_RELAXED);
    if (ib_pte_valid(e))
        __atomic_store_n(leaf, 0, __ATOMIC_RELAXED);
    rel(x, l);
    if (!ib_pte_valid(e))
        return IB_OP_MISSING;
    *f = ib_pte_target(e);
    return IB_OP_OK;
}

static inline __attribute__((always_inline)) uint64_t
table_lock_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                       ib_lock_fn rel, uint64_t stride)
{
    ib_busy(x->cs_unmap_loops);
    return ib_pt_clear_range(x, pfn, pfn + pages, acq, rel, stride);
}

#endif

IB_LOCKED_DRIVER(table_lock, "table-lock",
                 "split locks: one per table page, taken to install into or clear it",
                 IB_SCOPE_TABLE)
