/* The walk guard for walker_safety: exclusive. A phase-fair reader/writer lock in the arena
 * (Brandenburg and Anderson's PF-T): every map and unmap takes it shared, a walker takes it
 * exclusive for a whole pass. This is the rwsem between unmap and the debugfs dump that
 * upstream tried and dropped as too costly for the fast path; here its cost is measured.
 *
 * Phase-fair: readers and walkers take turns. A reader that arrives while a walker holds or
 * waits for the guard enters as soon as that walker's phase ends, even when another walker is
 * already queued; a walker waits for the readers that arrived before it, never for later ones.
 * So neither side can starve the other (two walkers cannot hand the guard to each other while
 * the workers wait for good).
 *
 *   rin   readers arrived (in units of IB_GUARD_RINC), low bits: the present walker's
 *         IB_GUARD_PRES and the parity of its ticket (IB_GUARD_PHID)
 *   rout  readers left (same units)
 *   win   walker tickets taken; wout: walker tickets served (walkers queue in order)
 */
#ifndef IB_GUARD_H
#define IB_GUARD_H

#include "ctx.h"
#include "walkstate.h"

#define IB_GUARD_RINC 0x100u
#define IB_GUARD_PHID 0x1u
#define IB_GUARD_PRES 0x2u
#define IB_GUARD_WBITS (IB_GUARD_PRES | IB_GUARD_PHID)

void ib_guard_shared_wait(struct ib_ctx *x, struct ib_walk_guard *g, uint32_t phase);
void ib_guard_exclusive_enter(void *base, struct ib_walk_guard *g, uint64_t *wait_ns);

static inline __attribute__((always_inline)) void ib_guard_shared_enter(struct ib_ctx *x)
{
    struct ib_walk_guard *g = &x->walk->guard;
    x->c.guard_acquisitions++;
    /* acquire: a walker's pass (and its reads) completed before we change the table */
    uint32_t w = __atomic_fetch_add(&g->r.rin, IB_GUARD_RINC, __ATOMIC_ACQUIRE) & IB_GUARD_WBITS;
    if (__builtin_expect(w != 0, 0))
        ib_guard_shared_wait(x, g, w);
}

static inline __attribute__((always_inline)) void ib_guard_shared_leave(struct ib_ctx *x)
{
    /* release: our table updates are visible to the walker that waits for rout */
    __atomic_fetch_add(&x->walk->guard.r.rout, IB_GUARD_RINC, __ATOMIC_RELEASE);
}

static inline void ib_guard_exclusive_leave(struct ib_walk_guard *g)
{
    /* release: the walker's reads are done before the readers it held back proceed */
    __atomic_fetch_and(&g->r.rin, ~IB_GUARD_WBITS, __ATOMIC_RELEASE);
    /* release: the next walker in ticket order starts after this pass ended */
    __atomic_store_n(&g->w.wout, __atomic_load_n(&g->w.wout, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELEASE);
}

#endif
