/* group-mutex: the merged VT-d behaviour ("iommu/vt-d: debugfs: Remove device_domain_lock
 * usage", v6.0): the dump holds the group mutex, which excludes attach and detach only, so
 * unmap still frees tables under the walker. */
#include <errno.h>

#include "../arena.h"
#include "../walkstate.h"
#include "safety.h"

/* A result other than 0 or EOWNERDEAD (ENOTRECOVERABLE...) means we do not hold the mutex:
 * the point fails and everyone leaves. */
static void group_enter(void *base, uint32_t walker)
{
    struct ib_walk_state *h = ib_walk_state(base);
    (void)walker;
    int r = pthread_mutex_lock(&h->group_mutex.m);
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&h->group_mutex.m);
        r = 0;
    }
    if (r != 0) {
        ib_abort(base);
        ib_exit_aborted();
    }
}

static void group_leave(void *base, uint32_t walker)
{
    (void)walker;
    pthread_mutex_unlock(&ib_walk_state(base)->group_mutex.m);
}

const struct ib_walker_mode ib_walker_mode_group_mutex = {
    "group-mutex",
    {"the merged VT-d behaviour: protects nothing against unmap", "", "", 0},
    0, 0, group_enter, group_leave,
};
