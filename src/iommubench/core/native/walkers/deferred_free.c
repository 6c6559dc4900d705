/* deferred-free: epoch-based reclamation, the RCU-freeing of table pages named upstream as the
 * right fix. A pass announces the epoch it started in; unmap's freed tables wait in limbo
 * (reclaim.c) until every walker has announced a later one. */
#include "../reclaim.h"
#include "safety.h"

static void deferred_enter(void *base, uint32_t walker) { ib_epoch_enter_pass(base, walker); }

static void deferred_leave(void *base, uint32_t walker) { ib_epoch_leave_pass(base, walker); }

const struct ib_walker_mode ib_walker_mode_deferred_free = {
    "deferred-free",
    {"epoch-based reclamation of freed table pages", "", "", IB_PREVENTS_UAF},
    0, 1, deferred_enter, deferred_leave,
};
