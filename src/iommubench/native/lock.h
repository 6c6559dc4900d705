/* The counted spinlock every native lock uses: acquisitions always counted; contention, wait
 * time and the longest single wait only on the contended path (so the uncontended path is one
 * increment and one exchange). Each lock's counters are four adjacent uint64_t fields of
 * struct ib_counters (_acquisitions, _contended, _wait_ns, _max_wait_ns), passed as a pointer
 * to the first: the domain lock, the IOVA tree lock, the depot locks, the invalidation-queue
 * lock and the page pool's lock are reported separately. */
#ifndef IB_LOCK_H
#define IB_LOCK_H

#include <stddef.h>

#include "ctx.h"

enum ib_lock_stat { IB_LS_ACQ = 0, IB_LS_CONTENDED = 1, IB_LS_WAIT_NS = 2, IB_LS_MAX_WAIT_NS = 3 };

#define IB_LOCK_STATS_ADJACENT(prefix)                                                     \
    _Static_assert(offsetof(struct ib_counters, prefix##_max_wait_ns) ==                   \
                       offsetof(struct ib_counters, prefix##_acquisitions) + 24,           \
                   #prefix " counters must be adjacent")
IB_LOCK_STATS_ADJACENT(lock);
IB_LOCK_STATS_ADJACENT(iova_lock);
IB_LOCK_STATS_ADJACENT(depot_lock);
IB_LOCK_STATS_ADJACENT(inv_lock);
IB_LOCK_STATS_ADJACENT(guard);
IB_LOCK_STATS_ADJACENT(pool_lock);

/* Adds one contended wait that started at t0 (ns) to a lock's counters. */
static inline void ib_lock_waited(uint64_t *stats, uint64_t t0, uint64_t t1)
{
    uint64_t ns = t1 - t0;
    stats[IB_LS_CONTENDED]++;
    stats[IB_LS_WAIT_NS] += ns;
    if (ns > stats[IB_LS_MAX_WAIT_NS])
        stats[IB_LS_MAX_WAIT_NS] = ns;
}

/* Test-and-test-and-set with a pause loop; leaves the process when the point is aborted. */
void ib_spin_wait(struct ib_ctx *x, uint32_t *lock, uint64_t *stats);

static inline __attribute__((always_inline)) void
ib_lock_counted(struct ib_ctx *x, uint32_t *lock, uint64_t *stats)
{
    stats[IB_LS_ACQ]++;
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_spin_wait(x, lock, stats);
}

/* Uncounted, for limbo's internal lock: held for a few list operations, never across a walk,
 * taken only by deferred-free, whose cost is reported as grace periods instead. */
static inline void ib_lock_plain(struct ib_ctx *x, uint32_t *lock)
{
    uint64_t stats[4] = {0};
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_spin_wait(x, lock, stats);
}

static inline void ib_unlock(uint32_t *lock)
{
    /* release: what was written under the lock is visible to the next holder */
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

#endif
