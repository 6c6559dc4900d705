/* lockfree: no domain lock. A missing table is allocated, zeroed and installed with one
 * compare-and-swap (io-pgtable-arm since "iommu/io-pgtable-arm: Support lockless operation",
 * v4.13; VT-d pfn_to_dma_pte; AMD alloc_pte). Leaves belong to the caller's range. */
#include "driver.h"

static inline __attribute__((always_inline)) uint64_t lockfree_install(struct ib_ctx *x,
                                                                        uint64_t *pte)
{
    uint32_t fresh = ib_pool_alloc(x);
    if (fresh == IB_NIL)
        return 0;
    uint64_t expected = 0;
    uint64_t desired = ib_pte_table(fresh);
    x->c.cas_attempts++;
    /* release: the zeroed table is visible before the entry that points at it;
     * acquire on failure: we descend into the winner's table and must see its zeroes */
    if (__atomic_compare_exchange_n(pte, &expected, desired, 0, __ATOMIC_RELEASE,
                                    __ATOMIC_ACQUIRE)) {
        x->c.tables_allocated++;
        return desired;
    }
    /* lost the race: our table was never visible to anyone, so it goes straight back */
    x->c.cas_failures++;
    ib_pool_free(x, fresh);
    return expected;
}

IB_DEFINE_DRIVER("lockfree", lockfree,
                 "compare-and-swap install of missing tables (io-pgtable-arm since v4.13, VT-d)", 0)
