/* The counted spinlock every native lock uses: acquisitions always counted, contention and
 * wait time only on the contended path (so the uncontended path is one exchange). The counter
 * fields are chosen by the caller: the domain lock, the IOVA tree lock, the depot locks and the
 * invalidation-queue lock are reported separately. */
#ifndef IB_LOCK_H
#define IB_LOCK_H

#include "ctx.h"

/* Test-and-test-and-set with a pause loop; leaves the process when the point is aborted. */
void ib_spin_wait(struct ib_ctx *x, uint32_t *lock, uint64_t *contended, uint64_t *wait_ns);

static inline __attribute__((always_inline)) void
ib_lock_counted(struct ib_ctx *x, uint32_t *lock, uint64_t *acquisitions, uint64_t *contended,
                uint64_t *wait_ns)
{
    (*acquisitions)++;
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_spin_wait(x, lock, contended, wait_ns);
}

/* Uncounted, for the pool's and limbo's internal locks: held for a few list operations, never
 * across a walk, and not part of any strategy being measured. */
static inline void ib_lock_plain(struct ib_ctx *x, uint32_t *lock)
{
    uint64_t contended = 0, wait_ns = 0;
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_spin_wait(x, lock, &contended, &wait_ns);
}

static inline void ib_unlock(uint32_t *lock)
{
    /* release: what was written under the lock is visible to the next holder */
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

#endif
