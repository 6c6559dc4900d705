/* The lock-taking drivers (listed in locked.def): each is one header of templates (map,
 * map_range, unmap, unmap_range taking the lock functions and the stride of per-table-page
 * lock instances) ending with its registration line. Every lock file instantiates each of them
 * for its own lock (locks/instantiate.h), so the hot loop calls the lock's inlined functions.
 *
 * This header pulls in the templates and numbers the drivers: IB_LOCKED_NAME is a driver's
 * index in a lock's impl table. */
#ifndef IB_LOCKED_H
#define IB_LOCKED_H

#include "driver.h"

/* first pass: the templates, registration lines expanding to nothing */
#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope)
#define IB_LOCKED_VARIANT(d)
#include "locked.def"
#undef IB_LOCKED_DRIVER
#undef IB_LOCKED_VARIANT

#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope) IB_LOCKED_##d,
#define IB_LOCKED_VARIANT(d) IB_LOCKED_##d,
enum ib_locked_driver {
#include "locked.def"
    IB_LOCKED_DRIVER_COUNT
};
#undef IB_LOCKED_DRIVER
#undef IB_LOCKED_VARIANT

#endif
