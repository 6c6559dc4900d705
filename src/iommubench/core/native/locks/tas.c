/* tas: test-and-set. Every waiter retries the exchange itself, so each attempt takes the line
 * exclusive: the lock line bounces between waiters even while the holder runs. */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME tas
#include "instantiate.h"

struct tas_lock {
    uint32_t v;
};
struct tas_node {
    char unused;
};

static inline void tas_init(struct tas_lock *l) { (void)l; }

static __attribute__((noinline)) void tas_wait(struct ib_ctx *x, struct tas_lock *l,
                                               uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    uint32_t spins = 0;
    /* acquire: pairs with the holder's release store in tas_release */
    while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
        ib_spin_relax(x, &spins);
    ib_lock_waited(stats, t0, ib_clock_ns());
}

static inline __attribute__((always_inline)) void tas_acquire(struct ib_ctx *x,
                                                               struct tas_lock *l,
                                                               uint64_t *stats)
{
    stats[IB_LS_ACQ]++;
    /* acquire: pairs with the previous holder's release store */
    if (__builtin_expect(__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE) != 0, 0))
        tas_wait(x, l, stats);
}

static inline __attribute__((always_inline)) void tas_release(struct ib_ctx *x,
                                                               struct tas_lock *l)
{
    /* release: the critical section's writes are visible to the next holder */
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

IB_DEFINE_LOCK("tas", "test-and-set: every waiter retries the exchange", 0)
