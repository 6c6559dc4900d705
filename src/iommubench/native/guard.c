#include "guard.h"

#include <sched.h>

#include "clock.h"

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

/* A walker holds or wants the guard: undo our increment, wait until it is gone, retry. */
void ib_guard_shared_wait(struct ib_ctx *x, uint32_t *guard)
{
    x->c.guard_contended++;
    uint64_t t0 = ib_clock_ns();
    unsigned spins = 0;
    for (;;) {
        __atomic_fetch_sub(guard, 1, __ATOMIC_RELAXED);
        while (__atomic_load_n(guard, __ATOMIC_RELAXED) & (IB_GUARD_WRITER | IB_GUARD_WAITING)) {
            ib_guard_backoff(x->base, ++spins);
        }
        /* acquire: as in ib_guard_shared_enter */
        uint32_t s = __atomic_fetch_add(guard, 1, __ATOMIC_ACQUIRE);
        if (!(s & (IB_GUARD_WRITER | IB_GUARD_WAITING)))
            break;
    }
    x->c.guard_wait_ns += ib_clock_ns() - t0;
}

void ib_guard_exclusive_enter(void *base, uint32_t *guard, uint64_t *wait_ns)
{
    uint64_t t0 = ib_clock_ns();
    unsigned spins = 0;
    for (;;) {
        uint32_t s = __atomic_load_n(guard, __ATOMIC_RELAXED);
        if (!(s & (IB_GUARD_READERS | IB_GUARD_WRITER))) {
            /* acquire: every reader's table updates are visible to the pass */
            if (__atomic_compare_exchange_n(guard, &s, IB_GUARD_WRITER, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                break;
            continue;
        }
        if (!(s & IB_GUARD_WAITING))
            __atomic_fetch_or(guard, IB_GUARD_WAITING, __ATOMIC_RELAXED);
        ib_guard_backoff(base, ++spins);
    }
    *wait_ns += ib_clock_ns() - t0;
}
