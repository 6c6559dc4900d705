/* serial-mutex: one per-domain sleeping lock (AMD's api_lock until 2019), here a
 * process-shared robust pthread mutex created once by the parent. */
#include <errno.h>

#include "../clock.h"
#include "../lock.h"
#include "serial_install.h"

static void serial_mutex_slow(struct ib_ctx *x, pthread_mutex_t *m, int r)
{
    if (r == EBUSY) {
        uint64_t t0 = ib_clock_ns();
        r = pthread_mutex_lock(m);
        ib_lock_waited(&x->c.lock_acquisitions, t0, ib_clock_ns());
    }
    if (r == EOWNERDEAD) {
        /* a worker died holding the lock: the harness fails the point; recover so that the
         * survivors reach their abort check instead of hanging */
        pthread_mutex_consistent(m);
    }
    if (ib_aborted(x->base)) {
        pthread_mutex_unlock(m);
        ib_exit_aborted();
    }
}

static inline void serial_mutex_enter(struct ib_ctx *x)
{
    pthread_mutex_t *m = &x->hdr->domain_mutex.m;
    x->c.lock_acquisitions++;
    int r = pthread_mutex_trylock(m);
    if (__builtin_expect(r != 0, 0))
        serial_mutex_slow(x, m, r);
}

static inline void serial_mutex_leave(struct ib_ctx *x)
{
    pthread_mutex_unlock(&x->hdr->domain_mutex.m);
}

#define serial_mutex_install ib_serial_install

IB_DEFINE_DRIVER("serial-mutex", serial_mutex)
