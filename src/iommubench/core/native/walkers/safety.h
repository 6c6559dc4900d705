/* The walker-safety registry: how a walker's pass and a table's free are kept apart. One
 * file per mode (walkers/NAME.c, defining ib_walker_mode_NAME) and one IB_WALKER_MODE_ENTRY
 * line in walkers/modes.def; walker.c calls the mode around each pass, ctx.c and reclaim.c
 * read its two properties. */
#ifndef IB_WALKERS_SAFETY_H
#define IB_WALKERS_SAFETY_H

#include <stdint.h>

#include "../catalogue.h"

struct ib_walker_mode {
    const char *name;
    struct ib_about about;
    /* workers take the walk guard shared around every map and unmap (walkers/exclusive.c) */
    uint32_t guards_workers;
    /* freed tables wait in limbo until no walker's pass can still reach them (reclaim.c) */
    uint32_t defers_frees;
    /* around one pass of walker `walker` (0: nothing to do) */
    void (*enter)(void *base, uint32_t walker);
    void (*leave)(void *base, uint32_t walker);
};

/* The point's mode (the first one for an index out of range: the arena check refuses it). */
const struct ib_walker_mode *ib_walker_mode_of(uint32_t walker_safety);

#endif
