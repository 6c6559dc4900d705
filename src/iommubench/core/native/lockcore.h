/* The one lock primitive of the core: how every lock waits, counts and leaves an aborted point.
 *
 *   ib_spin_relax / IB_SPIN_WHILE   the spin-wait: a pause, and every 4096 spins a check of the
 *                                   abort flag (a dead holder never hangs the others)
 *   ib_futex_wait / ib_futex_wake   sleeping, with a timeout so the abort flag is re-checked
 *   ib_lock_waited                  a contended wait's accounting
 *   ib_lock_node                    worker w's per-worker node of the point's lock (e.g. MCS)
 *   ib_lock_counted / ib_unlock     the test-and-test-and-set lock of the core's internal locks
 *                                   (IOVA tree, depot, invalidation queue, page pool, limbo)
 *
 * Every lock's counters are four adjacent uint64_t fields of struct ib_counters
 * (_acquisitions, _contended, _wait_ns, _max_wait_ns: one IB_LOCK_FAMILY line of a
 * counters.def declares them in that order), passed as a pointer to the first.
 * Acquisitions are counted always; contention, wait and the longest wait only on the
 * contended path, so an uncontended acquire is the algorithm's fast path plus one increment.
 *
 * A lock algorithm of the `lock` axis is one file in locks/ that includes this header and ends
 * with IB_DEFINE_LOCK (locks/framework.h), plus one line in locks/locks.def; it includes
 * locks/instantiate.h, which includes this header.
 */
#ifndef IB_LOCKCORE_H
#define IB_LOCKCORE_H

#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctx.h"

#define IB_SPIN_CHECK_MASK 4095u /* spins between two looks at the abort flag */

enum ib_lock_stat { IB_LS_ACQ = 0, IB_LS_CONTENDED = 1, IB_LS_WAIT_NS = 2, IB_LS_MAX_WAIT_NS = 3 };


/* Adds one contended wait that started at t0 (ns) to a lock's counters. */
static inline void ib_lock_waited(uint64_t *stats, uint64_t t0, uint64_t t1)
{
    uint64_t ns = t1 - t0;
    stats[IB_LS_CONTENDED]++;
    stats[IB_LS_WAIT_NS] += ns;
    if (ns > stats[IB_LS_MAX_WAIT_NS])
        stats[IB_LS_MAX_WAIT_NS] = ns;
}

/* One turn of a wait loop: relax the CPU; now and then, leave if the point was aborted. */
static inline __attribute__((always_inline)) void ib_spin_relax(struct ib_ctx *x,
                                                                 uint32_t *spins)
{
    cpu_relax();
    if (__builtin_expect((++*spins & IB_SPIN_CHECK_MASK) == 0, 0) && ib_aborted(x->base))
        ib_exit_aborted();
}

/* Spin while `cond` holds (re-evaluated every turn: use atomic loads in it). */
#define IB_SPIN_WHILE(x, cond)                                                             \
    do {                                                                                   \
        uint32_t ib_spins_ = 0;                                                            \
        while (cond)                                                                       \
            ib_spin_relax((x), &ib_spins_);                                                \
    } while (0)

/* Sleep while *addr == val, at most timeout_ns, then leave if the point was aborted. The
 * futex is shared (not FUTEX_PRIVATE): the waiters are processes mapping the same arena. */
static inline void ib_futex_wait(struct ib_ctx *x, uint32_t *addr, uint32_t val,
                                 uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull)};
    syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, 0, 0);
    if (ib_aborted(x->base))
        ib_exit_aborted();
}

/* Wake up to n sleepers on addr. */
static inline void ib_futex_wake(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE, n, 0, 0, 0);
}

/* Worker w's node of the point's lock (per-worker bytes the lock declared, e.g. an MCS queue
 * node), reached by index because every process maps the arena at its own address. */
static inline __attribute__((always_inline)) void *ib_lock_node(struct ib_ctx *x, uint32_t w)
{
    return x->lock_nodes + (uint64_t)w * x->lock_node_stride;
}

/* The contended path of the test-and-test-and-set lock: waiters spin on a shared (read) copy
 * of the line and only try the exchange when it looks free, so they do not hammer it with
 * RFOs. Out of line: the fast path stays one exchange. */
void ib_ttas_wait(struct ib_ctx *x, uint32_t *lock, uint64_t *stats);

static inline __attribute__((always_inline)) void ib_lock_counted(struct ib_ctx *x,
                                                                   uint32_t *lock,
                                                                   uint64_t *stats)
{
    stats[IB_LS_ACQ]++;
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_ttas_wait(x, lock, stats);
}

/* Uncounted, for limbo's internal lock: held for a few list operations, never across a walk,
 * taken only by deferred-free, whose cost is reported as grace periods instead. */
static inline void ib_lock_plain(struct ib_ctx *x, uint32_t *lock)
{
    uint64_t stats[4] = {0};
    /* acquire: pairs with the previous holder's release in ib_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_ttas_wait(x, lock, stats);
}

static inline __attribute__((always_inline)) void ib_unlock(uint32_t *lock)
{
    /* release: what was written under the lock is visible to the next holder */
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

#include "locks/framework.h"

#endif
