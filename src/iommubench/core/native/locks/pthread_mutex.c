/* pthread-mutex: a process-shared robust pthread mutex (AMD's api_lock until 2019 was a
 * mutex): an uncontended trylock, then the C library's lock (futex sleep). The C prefix is
 * pmutex: pthread_mutex_init is the C library's. */
#include <errno.h>
#include <pthread.h>

/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME pmutex
#include "instantiate.h"

struct pmutex_lock {
    pthread_mutex_t m;
};
struct pmutex_node {
    char unused;
};

static inline void pmutex_init(struct pmutex_lock *l)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    /* robust: a worker that dies holding it hands the next locker EOWNERDEAD, not a hang */
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&l->m, &a);
    pthread_mutexattr_destroy(&a);
}

/* trylock said r != 0: wait, then make sure the lock is really ours. A result other than 0 or
 * EOWNERDEAD (ENOTRECOVERABLE: a dead holder's state was never made consistent; EINVAL...)
 * means we do not hold it: the point fails, and every worker leaves. */
static __attribute__((noinline)) void pmutex_slow(struct ib_ctx *x, struct pmutex_lock *l,
                                                  int r, uint64_t *stats)
{
    if (r == EBUSY) {
        uint64_t t0 = ib_clock_ns();
        r = pthread_mutex_lock(&l->m);
        ib_lock_waited(stats, t0, ib_clock_ns());
    }
    if (r == EOWNERDEAD) {
        /* a worker died holding the lock: the harness fails the point; recover so that the
         * survivors reach their abort check instead of hanging */
        pthread_mutex_consistent(&l->m);
        r = 0;
    }
    if (r != 0) {
        ib_abort(x->base);
        ib_exit_aborted();
    }
    if (ib_aborted(x->base)) {
        pthread_mutex_unlock(&l->m);
        ib_exit_aborted();
    }
}

static inline __attribute__((always_inline)) void pmutex_acquire(struct ib_ctx *x,
                                                                  struct pmutex_lock *l,
                                                                  uint64_t *stats)
{
    stats[IB_LS_ACQ]++;
    int r = pthread_mutex_trylock(&l->m);
    if (__builtin_expect(r != 0, 0))
        pmutex_slow(x, l, r, stats);
}

static inline __attribute__((always_inline)) void pmutex_release(struct ib_ctx *x,
                                                                  struct pmutex_lock *l)
{
    pthread_mutex_unlock(&l->m);
}

IB_DEFINE_LOCK("pthread-mutex", "process-shared robust pthread mutex (sleeps)",
               IB_WAIT_OUTLIVES_ABORT)
