/* The walker-safety registry's entries: how a walker's pass and a table's free are kept
 * apart (walker.c names them; ctx.c, reclaim.c and the walker axis act on them). */
#ifndef IB_WALKERS_SAFETY_H
#define IB_WALKERS_SAFETY_H

enum ib_walker_safety {
    IB_WS_UNSAFE = 0,
    IB_WS_EXCLUSIVE = 1,
    IB_WS_DEFERRED_FREE = 2,
    IB_WS_GROUP_MUTEX = 3,
    IB_WS_COUNT = 4,
};

#endif
