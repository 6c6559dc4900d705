/* Table install for drivers that hold a lock covering the entry: nobody else can be
 * installing into it, so a plain check-then-store suffices. */
#ifndef IB_SERIAL_INSTALL_H
#define IB_SERIAL_INSTALL_H

#include "driver.h"

static inline __attribute__((always_inline)) uint64_t ib_serial_install(struct ib_ctx *x,
                                                                         uint64_t *pte)
{
    uint32_t fresh = ib_pool_alloc(x);
    if (fresh == IB_NIL)
        return 0;
    uint64_t e = ib_pte_table(fresh);
    /* release: a lock-free reader (a walker) must see the zeroed table before the entry */
    __atomic_store_n(pte, e, __ATOMIC_RELEASE);
    x->c.tables_allocated++;
    return e;
}

#endif
