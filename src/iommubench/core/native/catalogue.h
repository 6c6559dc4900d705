/* What a registry entry tells the harness about itself, beyond its name: the one catalogue
 * the Python side reads (ib_catalogue_get), so a new strategy needs no Python edit.
 *
 * `reads` lists the YAML parameters that only some entries of this entry's axis read, as
 * "name,name": a parameter listed by any entry of an axis means nothing for a point whose
 * entry on that axis does not list it (e.g. dma lists queue_depth, so a prefault point
 * ignores it; rcache lists depot). */
#ifndef IB_CATALOGUE_H
#define IB_CATALOGUE_H

#include <stdint.h>

#define IB_TAKES_LOCK 1u        /* takes locks of the `lock` axis */
#define IB_NEGATIVE_CONTROL 2u  /* expected to fail its audit: the audit's own check */
#define IB_PREVENTS_UAF 4u      /* walker safety: no pass may read a freed table (audited) */
#define IB_FIFO 8u              /* locks: serves waiters in arrival order (lock-order test) */
/* locks: a waiter whose holder is alive cannot leave on the abort flag (it sleeps in a call,
 * such as pthread_mutex_lock, that returns only when it owns the lock or the holder died) */
#define IB_WAIT_OUTLIVES_ABORT 16u

struct ib_about {
    const char *description; /* one line */
    const char *reads;       /* "" when it reads no parameter of its own */
    const char *unit;        /* workloads: what one counted operation is, per second */
    uint32_t flags;
};

#endif
