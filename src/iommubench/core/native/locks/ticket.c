/* ticket: the x86 spinlock of Linux before 4.2. One fetch-and-add takes the next ticket and
 * reads the owner in the same instruction; a waiter spins on the owner half until it shows its
 * ticket, and the holder hands over by bumping the owner. Strictly FIFO, but every waiter
 * spins on the same line, so each release invalidates all of them and the next in line pays a
 * miss after the others: the collapse under contention that queued spinlocks replaced. */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME ticket
#include "instantiate.h"

#define TICKET_NEXT_ONE (1ull << 32)

struct ticket_lock {
    union {
        uint64_t word; /* owner in the low half, next in the high half (one xadd reads both) */
        struct {
            uint32_t owner; /* the ticket now served; written only by the holder */
            uint32_t next;  /* the ticket the next arrival takes */
        } t;
    };
};

struct ticket_node {
    char unused;
};

static inline void ticket_init(struct ticket_lock *l) { (void)l; }

static __attribute__((noinline)) void ticket_wait(struct ib_ctx *x, struct ticket_lock *l,
                                                  uint32_t mine, uint64_t *stats)
{
    uint64_t t0 = ib_clock_ns();
    uint32_t spins = 0;
    /* acquire: pairs with the previous holder's release of the owner half */
    while (__atomic_load_n(&l->t.owner, __ATOMIC_ACQUIRE) != mine)
        ib_spin_relax(x, &spins);
    ib_lock_waited(stats, t0, ib_clock_ns());
}

static inline __attribute__((always_inline)) void ticket_acquire(struct ib_ctx *x,
                                                                 struct ticket_lock *l,
                                                                 uint64_t *stats)
{
    stats[IB_LS_ACQ]++;
    /* acquire: taking a ticket orders arrivals; when it is already served this is the
     * acquisition and pairs with the last holder's release of the owner half */
    uint64_t old = __atomic_fetch_add(&l->word, TICKET_NEXT_ONE, __ATOMIC_ACQUIRE);
    uint32_t mine = (uint32_t)(old >> 32);
    if (__builtin_expect((uint32_t)old != mine, 0))
        ticket_wait(x, l, mine, stats);
}

static inline __attribute__((always_inline)) void ticket_release(struct ib_ctx *x,
                                                                 struct ticket_lock *l)
{
    /* relaxed: only the holder writes the owner half, so it reads its own last store */
    uint32_t owner = __atomic_load_n(&l->t.owner, __ATOMIC_RELAXED);
    /* release: the critical section's writes are visible to the next ticket's holder */
    __atomic_store_n(&l->t.owner, owner + 1, __ATOMIC_RELEASE);
}

/* For the FIFO test (IB_FIFO): with worker 0 holding and waiters 1..k arriving one after
 * another, whether waiter k has taken its ticket (the holder's and k others are out). */
static inline int ticket_queued(struct ticket_lock *l, uint32_t k)
{
    /* relaxed: a test's poll; the waiter's fetch-and-add is what it waits to see */
    uint64_t w = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
    return (uint32_t)(w >> 32) - (uint32_t)w == k + 1;
}

IB_DEFINE_LOCK("ticket",
               "ticket lock: FIFO, every waiter spins on the one line (Linux before 4.2)",
               IB_FIFO)
