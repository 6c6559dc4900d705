#include "guard.h"

#include <sched.h>

#include "clock.h"
#include "lockcore.h"

/* A pass or a map can take far longer than a spin is worth, and on an oversubscribed point
 * the holder may need this very CPU: pause briefly, then yield. */
static void ib_guard_backoff(void *base, unsigned spins)
{
    if (spins < 256)
        cpu_relax();
    else
        sched_yield();
    if ((spins & 1023u) == 0 && ib_aborted(base))
        ib_exit_aborted();
}

/* A walker held or wanted the guard when we arrived (its bits are `phase`): our arrival is
 * already counted in rin, so wait only until that walker's phase ends. */
void ib_guard_shared_wait(struct ib_ctx *x, struct ib_walk_guard *g, uint32_t phase)
{
    uint64_t t0 = ib_clock_ns();
    unsigned spins = 0;
    /* acquire: as in ib_guard_shared_enter, pairs with the walker's release of rin */
    while ((__atomic_load_n(&g->r.rin, __ATOMIC_ACQUIRE) & IB_GUARD_WBITS) == phase)
        ib_guard_backoff(x->base, ++spins);
    ib_lock_waited(&x->c.guard_acquisitions, t0, ib_clock_ns());
}

void ib_guard_exclusive_enter(void *base, struct ib_walk_guard *g, uint64_t *wait_ns)
{
    uint64_t t0 = ib_clock_ns();
    unsigned spins = 0;
    /* relaxed: the ticket only orders walkers; wout's acquire below orders the passes */
    uint32_t ticket = __atomic_fetch_add(&g->w.win, 1, __ATOMIC_RELAXED);
    /* acquire: pairs with the previous walker's release of wout */
    while (__atomic_load_n(&g->w.wout, __ATOMIC_ACQUIRE) != ticket)
        ib_guard_backoff(base, ++spins);
    /* acq_rel: readers arriving from now on see the walker; the count of those before it is
     * read in the same step */
    uint32_t before = __atomic_fetch_add(&g->r.rin, IB_GUARD_PRES | (ticket & IB_GUARD_PHID),
                                         __ATOMIC_ACQ_REL) & ~IB_GUARD_WBITS;
    /* acquire: pairs with each reader's release of rout, so their table updates are seen */
    while (__atomic_load_n(&g->r.rout, __ATOMIC_ACQUIRE) != before)
        ib_guard_backoff(base, ++spins);
    *wait_ns += ib_clock_ns() - t0;
}
