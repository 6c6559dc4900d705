/* The walker axis's shared state, its region of the arena (IB_AXIS_WALKER): the walk guard
 * (exclusive), the group mutex (group-mutex), and the epoch and limbo FIFO of deferred-free.
 * Laid out, initialised and audited through the walker strategy (walker.c). */
#ifndef IB_WALKSTATE_H
#define IB_WALKSTATE_H

#include "arena.h"
#include "walkers/safety.h"

/* The walk guard's words (guard.h): readers' counters on one line, walkers' tickets on
 * another, so a map/unmap touches one line as before. */
struct ib_walk_guard {
    struct { uint32_t rin, rout; } IB_ALIGNED r;
    struct { uint32_t win, wout; } IB_ALIGNED w;
};

struct ib_walk_state {
    struct ib_walk_guard guard;             /* exclusive: the reader/writer lock (guard.h) */
    struct { pthread_mutex_t m; } IB_ALIGNED group_mutex; /* group-mutex: attach/detach only */
    struct ib_line_u64 epoch;               /* deferred-free: tags limbo batches, starts at 1 */
    struct {
        uint32_t lock;      /* the limbo FIFO: any worker pushes, any worker reclaims */
        uint32_t head, tail;
        uint32_t reclaiming; /* workers between popping pages and returning them to the pool */
        uint64_t count;
    } IB_ALIGNED limbo;
    struct ib_walker_slot slots[]; /* one per walker (params.walkers) */
};

/* Per pool page, for limbo: the epoch tag of the batch it was freed in, and when. */
struct ib_limbo_mark {
    uint64_t tag;
    uint64_t freed_ns;
};

/* The limbo marks are the walker axis's per-table-page bytes. */
static inline struct ib_limbo_mark *ib_limbo_marks(void *base)
{
    return (struct ib_limbo_mark *)ib_region_page(base, IB_AXIS_WALKER, 0);
}

static inline struct ib_walk_state *ib_walk_state(void *base)
{
    return (struct ib_walk_state *)ib_region_shared(base, IB_AXIS_WALKER);
}

static inline struct ib_walker_slot *ib_walker_slot_of(void *base, uint32_t w)
{
    return &ib_walk_state(base)->slots[w];
}

#endif
