/* qspinlock: Linux's spinlock_t (kernel/locking/qspinlock.c) in one 32-bit word:
 *   bits 0-7   locked byte            set by the holder, cleared by a byte store on release
 *   bits 8-15  pending byte (bit 8)   the first waiter, which spins on the word itself
 *   bits 16-31 tail                   the last queued worker + 1 (an MCS queue of per-worker
 *                                     nodes; the kernel's per-CPU nodes, one nesting level)
 * Uncontended: one compare-and-swap 0 -> locked. The first contender sets pending and waits
 * for the locked byte to clear, then takes the lock with one 16-bit store (locked_pending =
 * 1). Later contenders queue: each spins on its own node until it heads the queue, the head
 * spins on the word until locked and pending are both clear, claims the lock and hands the
 * queue head to its successor. FIFO apart from the pending waiter, which precedes the queue. */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME qspinlock
#include "instantiate.h"

#define QSPIN_LOCKED 1u
#define QSPIN_PENDING (1u << 8)
#define QSPIN_LOCKED_MASK 0xffu
#define QSPIN_LOCKED_PENDING_MASK 0xffffu
#define QSPIN_TAIL_SHIFT 16

struct qspinlock_lock {
    union {
        uint32_t val; /* tail | pending | locked, as above */
        struct {
            uint8_t locked;
            uint8_t pending;
            uint16_t tail;
        } b;
        struct {
            uint16_t locked_pending;
            uint16_t tail;
        } h;
    };
};

struct qspinlock_node {
    uint32_t next;   /* the successor worker + 1; 0 = none yet */
    uint32_t locked; /* set by the predecessor when this node becomes the queue head */
} __attribute__((aligned(64)));

static inline void qspinlock_init(struct qspinlock_lock *l) { (void)l; }

static inline struct qspinlock_node *qspinlock_node_of(struct ib_ctx *x, uint32_t id)
{
    return (struct qspinlock_node *)ib_lock_node(x, id - 1);
}

/* Spins until (val & mask) == 0 and returns the word it saw. */
static inline uint32_t qspinlock_wait_clear(struct ib_ctx *x, struct qspinlock_lock *l,
                                            uint32_t mask)
{
    uint32_t v, spins = 0;
    /* acquire: pairs with the holder's release of the locked byte (the lock's handover) */
    while ((v = __atomic_load_n(&l->val, __ATOMIC_ACQUIRE)) & mask)
        ib_spin_relax(x, &spins);
    return v;
}

/* The pending path: 0,0,* -> 0,1,* -> 0,0,1. Returns 0 when a queue must be joined instead. */
static inline int qspinlock_pending(struct ib_ctx *x, struct qspinlock_lock *l, uint32_t v)
{
    /* the kernel's bounded wait for an in-flight pending -> locked handover (one re-read) */
    if (v == QSPIN_PENDING)
        /* relaxed: only a hint whether the handover finished; decisions use the RMW below */
        v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);
    if (v & ~QSPIN_LOCKED_MASK)
        return 0;
    /* acquire: if the word was free this takes the lock's history with the pending bit */
    v = __atomic_fetch_or(&l->val, QSPIN_PENDING, __ATOMIC_ACQUIRE);
    if (v & ~QSPIN_LOCKED_MASK) {
        if (!(v & QSPIN_PENDING))
            /* relaxed: undo our pending bit; another waiter queued or pends, nobody waits on
             * this byte but a queue head, which re-reads the word */
            __atomic_store_n(&l->b.pending, 0, __ATOMIC_RELAXED);
        return 0;
    }
    if (v & QSPIN_LOCKED)
        qspinlock_wait_clear(x, l, QSPIN_LOCKED_MASK);
    /* relaxed: we own pending, the locked byte is clear and only the pending owner may set it
     * now (queue heads wait for both clear); the acquire was the load that saw it clear */
    __atomic_store_n(&l->h.locked_pending, (uint16_t)QSPIN_LOCKED, __ATOMIC_RELAXED);
    return 1;
}

/* The queue: join as tail, wait to be head, wait for locked and pending to clear, claim. */
static inline void qspinlock_queue(struct ib_ctx *x, struct qspinlock_lock *l)
{
    uint32_t id = x->worker + 1, spins = 0, next = 0;
    struct qspinlock_node *me = qspinlock_node_of(x, id);
    /* relaxed: our node is private until the tail exchange below publishes it */
    __atomic_store_n(&me->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&me->locked, 0, __ATOMIC_RELAXED);
    uint32_t expect = 0;
    /* acquire: a last trylock (the kernel retries after touching the cold node); pairs with
     * the holder's release of the locked byte */
    if (__atomic_compare_exchange_n(&l->val, &expect, QSPIN_LOCKED, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        return;
    /* acq_rel: release publishes our reset node before anyone can find it through the tail;
     * acquire pairs with the predecessor's release of the tail, so its node is ready */
    uint32_t old = (uint32_t)__atomic_exchange_n(&l->h.tail, (uint16_t)id, __ATOMIC_ACQ_REL);
    if (old) {
        /* release: the predecessor reads our node only after it sees this link */
        __atomic_store_n(&qspinlock_node_of(x, old)->next, id, __ATOMIC_RELEASE);
        /* acquire: pairs with the predecessor's release that makes us the queue head */
        while (!__atomic_load_n(&me->locked, __ATOMIC_ACQUIRE))
            ib_spin_relax(x, &spins);
        /* relaxed: a hint only; the successor link is re-read with acquire before use */
        next = __atomic_load_n(&me->next, __ATOMIC_RELAXED);
    }
    uint32_t v = qspinlock_wait_clear(x, l, QSPIN_LOCKED_PENDING_MASK);
    if ((v >> QSPIN_TAIL_SHIFT) == id) {
        /* relaxed: we are the only one queued, so the word goes n,0,0 -> 0,0,1; a concurrent
         * pender or arrival makes this fail and is then queued behind us. The acquire of the
         * lock was the load that saw locked and pending clear */
        if (__atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return;
    }
    /* relaxed: someone is queued behind us, so nobody else may take the cleared lock byte */
    __atomic_store_n(&l->b.locked, (uint8_t)QSPIN_LOCKED, __ATOMIC_RELAXED);
    spins = 0;
    /* acquire: the successor's link, stored after it took the tail from us */
    while (!next && !(next = __atomic_load_n(&me->next, __ATOMIC_ACQUIRE)))
        ib_spin_relax(x, &spins);
    /* release: the successor becomes queue head only after our claim of the lock byte */
    __atomic_store_n(&qspinlock_node_of(x, next)->locked, 1, __ATOMIC_RELEASE);
}

static __attribute__((noinline)) void qspinlock_slow(struct ib_ctx *x, struct qspinlock_lock *l,
                                                     uint32_t v, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    if (!qspinlock_pending(x, l, v))
        qspinlock_queue(x, l);
    ib_lock_waited(stats, t0, ib_clock_ns());
}

static inline __attribute__((always_inline)) void qspinlock_acquire(struct ib_ctx *x,
                                                                    struct qspinlock_lock *l,
                                                                    uint64_t *stats)
{
    uint32_t v = 0;
    stats[IB_LS_ACQ]++;
    /* acquire: 0,0,0 -> 0,0,1; pairs with the last holder's release of the locked byte */
    if (__builtin_expect(!__atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, 0,
                                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED),
                         0))
        qspinlock_slow(x, l, v, stats);
}

static inline __attribute__((always_inline)) void qspinlock_release(struct ib_ctx *x,
                                                                    struct qspinlock_lock *l)
{
    /* release: a byte store, as the kernel's; the critical section is visible to whoever
     * sees the locked byte clear */
    __atomic_store_n(&l->b.locked, 0, __ATOMIC_RELEASE);
}

/* For the FIFO test (IB_FIFO): with worker 0 holding and waiters 1..k arriving one after
 * another, whether waiter k is queued: the first takes the pending bit, later ones the tail. */
static inline int qspinlock_queued(struct qspinlock_lock *l, uint32_t k)
{
    /* relaxed: a test's poll; the waiter's own atomic is what it waits to see */
    uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);
    return k == 1 ? (v & QSPIN_PENDING) != 0 : (v >> QSPIN_TAIL_SHIFT) == k + 1;
}

IB_DEFINE_LOCK("qspinlock", "Linux spinlock_t: locked byte, pending bit, MCS tail", IB_FIFO)
