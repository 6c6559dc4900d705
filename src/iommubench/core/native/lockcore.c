#include "lockcore.h"

void ib_ttas_wait(struct ib_ctx *x, uint32_t *lock, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    uint32_t spins = 0;
    do {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED))
            ib_spin_relax(x, &spins);
        /* acquire: pairs with the holder's release store */
    } while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE));
    ib_lock_waited(stats, t0, ib_clock_ns());
}
