/* ttas: test-and-test-and-set with a pause loop (the core's own internal lock): waiters spin on
 * a shared copy of the line and try the exchange only when it looks free. */
/* this file's C prefix: its structs, its functions and the drivers built with it */
#define IB_LOCK_NAME ttas
#include "instantiate.h"

struct ttas_lock {
    uint32_t v;
};
struct ttas_node {
    char unused;
};

static inline void ttas_init(struct ttas_lock *l) { (void)l; }

static inline __attribute__((always_inline)) void ttas_acquire(struct ib_ctx *x,
                                                                struct ttas_lock *l,
                                                                uint64_t *stats)
{
    ib_lock_counted(x, &l->v, stats);
}

static inline __attribute__((always_inline)) void ttas_release(struct ib_ctx *x,
                                                                struct ttas_lock *l)
{
    ib_unlock(&l->v);
}

IB_DEFINE_LOCK("ttas", "test-and-test-and-set with a pause loop", 0)
