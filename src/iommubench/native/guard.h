/* The walk guard for walker_safety: exclusive. A reader/writer spinlock in the arena: every
 * map and unmap takes it shared, a walker takes it exclusive for a whole pass. This is the
 * rwsem between unmap and the debugfs dump that upstream tried and dropped as too costly for
 * the fast path; here its cost is measured.
 *
 * Word layout: bit 31 = a walker holds it, bit 30 = a walker waits (new readers back off so
 * walkers are not starved), bits 0..29 = readers inside.
 */
#ifndef IB_GUARD_H
#define IB_GUARD_H

#include "ctx.h"

#define IB_GUARD_WRITER (1u << 31)
#define IB_GUARD_WAITING (1u << 30)
#define IB_GUARD_READERS (IB_GUARD_WAITING - 1)

void ib_guard_shared_wait(struct ib_ctx *x, uint32_t *guard);
void ib_guard_exclusive_enter(void *base, uint32_t *guard, uint64_t *wait_ns);

static inline __attribute__((always_inline)) void ib_guard_shared_enter(struct ib_ctx *x)
{
    uint32_t *g = &x->hdr->walk_guard.v;
    /* acquire: a walker's pass (and its reads) completed before we change the table */
    uint32_t s = __atomic_fetch_add(g, 1, __ATOMIC_ACQUIRE);
    if (__builtin_expect(s & (IB_GUARD_WRITER | IB_GUARD_WAITING), 0))
        ib_guard_shared_wait(x, g);
}

static inline __attribute__((always_inline)) void ib_guard_shared_leave(struct ib_ctx *x)
{
    /* release: our table updates are visible to the walker that takes the guard next */
    __atomic_fetch_sub(&x->hdr->walk_guard.v, 1, __ATOMIC_RELEASE);
}

static inline void ib_guard_exclusive_leave(uint32_t *guard)
{
    /* release: the walker's reads are done before any map/unmap proceeds */
    __atomic_fetch_and(guard, ~IB_GUARD_WRITER, __ATOMIC_RELEASE);
}

#endif
