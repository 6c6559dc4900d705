/* mcs: the Mellor-Crummey/Scott queue lock. The lock word holds the tail of a queue of
 * per-worker nodes (worker index + 1, 0 = free); an arrival swaps itself in as the tail, links
 * itself behind its predecessor and spins on its own node, so a release touches one waiter's
 * line instead of every waiter's. FIFO. The holder passes the lock by setting its successor's
 * flag; with no successor it swings the tail back to 0. */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME mcs
#include "instantiate.h"

struct mcs_lock {
    uint32_t tail; /* the last queued worker + 1; 0 = free */
};

struct mcs_node {
    uint32_t next;   /* the successor worker + 1; 0 = none yet */
    uint32_t locked; /* set by the predecessor when it hands the lock over */
} __attribute__((aligned(64)));

static inline void mcs_init(struct mcs_lock *l) { (void)l; }

static inline struct mcs_node *mcs_node_of(struct ib_ctx *x, uint32_t id)
{
    return (struct mcs_node *)ib_lock_node(x, id - 1);
}

static __attribute__((noinline)) void mcs_wait(struct ib_ctx *x, struct mcs_node *me,
                                               uint32_t prev, uint32_t id, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    uint32_t spins = 0;
    /* release: the predecessor reads our node (next) only after it sees this link */
    __atomic_store_n(&mcs_node_of(x, prev)->next, id, __ATOMIC_RELEASE);
    /* acquire: pairs with the predecessor's release that hands the lock over */
    while (!__atomic_load_n(&me->locked, __ATOMIC_ACQUIRE))
        ib_spin_relax(x, &spins);
    ib_lock_waited(stats, t0, ib_clock_ns());
}

static inline __attribute__((always_inline)) void mcs_acquire(struct ib_ctx *x,
                                                              struct mcs_lock *l,
                                                              uint64_t *stats)
{
    uint32_t id = x->worker + 1;
    struct mcs_node *me = mcs_node_of(x, id);
    stats[IB_LS_ACQ]++;
    /* relaxed: our node is private until the tail swap below publishes it */
    __atomic_store_n(&me->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&me->locked, 0, __ATOMIC_RELAXED);
    /* acq_rel: release publishes the reset node to our successor; acquire pairs with the last
     * holder's release of the tail when the queue was empty */
    uint32_t prev = __atomic_exchange_n(&l->tail, id, __ATOMIC_ACQ_REL);
    if (__builtin_expect(prev != 0, 0))
        mcs_wait(x, me, prev, id, stats);
}

static __attribute__((noinline)) uint32_t mcs_wait_successor(struct ib_ctx *x,
                                                             struct mcs_node *me)
{
    uint32_t next, spins = 0;
    /* acquire: the successor's link, stored after it swapped itself in as the tail */
    while ((next = __atomic_load_n(&me->next, __ATOMIC_ACQUIRE)) == 0)
        ib_spin_relax(x, &spins);
    return next;
}

static inline __attribute__((always_inline)) void mcs_release(struct ib_ctx *x,
                                                              struct mcs_lock *l)
{
    uint32_t id = x->worker + 1;
    struct mcs_node *me = mcs_node_of(x, id);
    /* acquire: a successor already linked; its node is ready to be handed the lock */
    uint32_t next = __atomic_load_n(&me->next, __ATOMIC_ACQUIRE);
    if (next == 0) {
        uint32_t expect = id;
        /* release: with nobody queued the lock is free, and the next arrival's swap (acquire)
         * sees the critical section; failing means an arrival swapped in after us */
        if (__atomic_compare_exchange_n(&l->tail, &expect, 0, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
            return;
        next = mcs_wait_successor(x, me);
    }
    /* release: the critical section's writes are visible to the successor we hand over to */
    __atomic_store_n(&mcs_node_of(x, next)->locked, 1, __ATOMIC_RELEASE);
}

/* For the FIFO test (IB_FIFO): with worker 0 holding and waiters 1..k arriving one after
 * another, whether waiter k is queued (it is the tail). */
static inline int mcs_queued(struct mcs_lock *l, uint32_t k)
{
    /* relaxed: a test's poll; the waiter's tail swap is what it waits to see */
    return __atomic_load_n(&l->tail, __ATOMIC_RELAXED) == k + 1;
}

IB_DEFINE_LOCK("mcs", "MCS queue lock: FIFO, each waiter spins on its own node", IB_FIFO)
