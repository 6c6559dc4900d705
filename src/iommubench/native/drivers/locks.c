#include "../clock.h"
#include "../lock.h"
#include "driver.h"

/* Test-and-test-and-set with a pause loop: waiters spin on a shared (read) copy of the line
 * and only try the exchange when it looks free, so they do not hammer it with RFOs. */
void ib_spin_wait(struct ib_ctx *x, uint32_t *lock, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    unsigned spins = 0;
    do {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED)) {
            cpu_relax();
            if ((++spins & 4095u) == 0 && ib_aborted(x->base))
                ib_exit_aborted();
        }
        /* acquire: pairs with the holder's release store */
    } while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE));
    ib_lock_waited(stats, t0, ib_clock_ns());
}

void ib_spin_lock_contended(struct ib_ctx *x, uint32_t *lock)
{
    ib_spin_wait(x, lock, &x->c.lock_acquisitions);
}
