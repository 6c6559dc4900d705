/* adaptive-mutex: Linux's struct mutex in user space. The lock word names its owner (worker
 * + 1, shifted) and carries a waiters bit. Uncontended: one compare-and-swap 0 -> owner, and
 * one exchange back to 0 on release. A contender spins optimistically while the owner looks
 * like it is running: Linux spins while owner->on_cpu, which user space cannot read, so here
 * a waiter spins while the owner keeps changing (handovers are progress) or has held the lock
 * for less than ADAPTIVE_SPIN_NS, far longer than any map or unmap takes unless its holder is
 * descheduled. Then it sets the waiters bit and sleeps on a futex (with a timeout, so it sees
 * an aborted point); the release that finds the bit set wakes one sleeper. A woken waiter
 * takes the lock with the waiters bit set, since others may still sleep (Drepper's "mutex
 * 2"). There is no OSQ and no handoff: every spinner reads the word and may take the lock
 * before a woken sleeper (on this 2-CPU VM at most one other worker competes). */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME adaptive_mutex
#include "instantiate.h"

#define ADAPTIVE_WAITERS 1u
#define ADAPTIVE_SPIN_NS 20000u     /* one owner's hold before a spinner presumes it is off CPU */
#define ADAPTIVE_SLEEP_NS 2000000u  /* the futex timeout: how often a sleeper checks for abort */

struct adaptive_mutex_lock {
    uint32_t word; /* (owner worker + 1) << 1 | waiters; 0 = free */
};

struct adaptive_mutex_node {
    char unused;
};

static inline void adaptive_mutex_init(struct adaptive_mutex_lock *l) { (void)l; }

/* Optimistic spinning; returns 1 with the lock held, 0 when it is time to sleep. */
static inline int adaptive_mutex_spin(struct ib_ctx *x, struct adaptive_mutex_lock *l,
                                      uint32_t me)
{
    uint32_t owner = 0, spins = 0;
    uint64_t since = 0;
    for (;;) {
        /* relaxed: a look at the owner; the lock is taken by the compare-and-swap below */
        uint32_t v = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
        if (v == 0) {
            /* acquire: pairs with the last holder's release exchange */
            if (__atomic_compare_exchange_n(&l->word, &v, me, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return 1;
            continue;
        }
        /* as in Linux, spinners compete with woken sleepers (no handoff: two workers) */
        if ((v & ~ADAPTIVE_WAITERS) != owner) {
            owner = v & ~ADAPTIVE_WAITERS;
            since = ib_clock_ns();
        } else if ((spins & 63u) == 0 && ib_clock_ns() - since > ADAPTIVE_SPIN_NS) {
            return 0;
        }
        ib_spin_relax(x, &spins);
    }
}

/* Sleeps until the lock is ours; a hold taken here keeps the waiters bit, since other
 * sleepers may remain. */
static inline void adaptive_mutex_sleep(struct ib_ctx *x, struct adaptive_mutex_lock *l,
                                        uint32_t me)
{
    for (;;) {
        /* relaxed: a look at the word; every decision below is a compare-and-swap */
        uint32_t v = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
        if (v == 0) {
            /* acquire: pairs with the last holder's release exchange */
            if (__atomic_compare_exchange_n(&l->word, &v, me | ADAPTIVE_WAITERS, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return;
            continue;
        }
        /* relaxed: sets the waiters bit on this owner's hold, so its release wakes a sleeper;
         * failing means the word moved on, and we look again */
        if (!(v & ADAPTIVE_WAITERS) &&
            !__atomic_compare_exchange_n(&l->word, &v, v | ADAPTIVE_WAITERS, 0,
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        ib_futex_wait(x, &l->word, v | ADAPTIVE_WAITERS, ADAPTIVE_SLEEP_NS);
    }
}

static __attribute__((noinline)) void adaptive_mutex_slow(struct ib_ctx *x,
                                                          struct adaptive_mutex_lock *l,
                                                          uint32_t me, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    if (!adaptive_mutex_spin(x, l, me))
        adaptive_mutex_sleep(x, l, me);
    ib_lock_waited(stats, t0, ib_clock_ns());
}

static inline __attribute__((always_inline)) void
adaptive_mutex_acquire(struct ib_ctx *x, struct adaptive_mutex_lock *l, uint64_t *stats)
{
    uint32_t me = (x->worker + 1) << 1, free_word = 0;
    stats[IB_LS_ACQ]++;
    /* acquire: 0 -> owner; pairs with the last holder's release exchange */
    if (__builtin_expect(!__atomic_compare_exchange_n(&l->word, &free_word, me, 0,
                                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED),
                         0))
        adaptive_mutex_slow(x, l, me, stats);
}

static inline __attribute__((always_inline)) void
adaptive_mutex_release(struct ib_ctx *x, struct adaptive_mutex_lock *l)
{
    /* release: the critical section is visible to the next owner; the old word says whether
     * a sleeper set the waiters bit during our hold */
    if (__builtin_expect(__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) & ADAPTIVE_WAITERS,
                         0))
        ib_futex_wake(&l->word, 1);
}

IB_DEFINE_LOCK("adaptive-mutex",
               "Linux struct mutex: spin while the holder runs, then sleep on a futex",
               0)
