/* naive: no lock and a plain check-then-store install. The negative control: two workers that
 * both see an empty entry both install, the later store orphans the earlier table with the
 * mappings already in it, and the audit must report lost mappings and a leaked table. */
#include "driver.h"

static inline void naive_enter(struct ib_ctx *x) { (void)x; }
static inline void naive_leave(struct ib_ctx *x) { (void)x; }

static inline __attribute__((always_inline)) uint64_t naive_install(struct ib_ctx *x,
                                                                     uint64_t *pte)
{
    uint32_t fresh = ib_pool_alloc(x);
    if (fresh == IB_NIL)
        return 0;
    uint64_t e = ib_pte_table(fresh);
    /* deliberately racy: the entry is not re-checked, so a racer's table is overwritten */
    __atomic_store_n(pte, e, __ATOMIC_RELEASE);
    x->c.tables_allocated++;
    return e;
}

IB_DEFINE_DRIVER("naive", naive)
