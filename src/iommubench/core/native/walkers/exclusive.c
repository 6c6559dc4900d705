/* exclusive: a reader/writer lock between the dump and the page-table API. Every map and unmap
 * takes the walk guard (guard.h) shared, the walker takes it exclusive for its whole pass: the
 * cost of serialising everyone for one debug file (the rwsem tried and dropped upstream). */
#include "../guard.h"
#include "../walkstate.h"
#include "safety.h"

static void exclusive_enter(void *base, uint32_t walker)
{
    uint64_t waited = 0; /* the pass's wait is timed around the whole enter (walker.c) */
    (void)walker;
    ib_guard_exclusive_enter(base, &ib_walk_state(base)->guard, &waited);
}

static void exclusive_leave(void *base, uint32_t walker)
{
    (void)walker;
    ib_guard_exclusive_leave(&ib_walk_state(base)->guard);
}

const struct ib_walker_mode ib_walker_mode_exclusive = {
    "exclusive",
    {"reader/writer lock: map/unmap shared, walkers exclusive", "", "", IB_PREVENTS_UAF},
    1, 0, exclusive_enter, exclusive_leave,
};
