/* The registrations of the lock-taking drivers (locked.def): each reads the `lock` parameter,
 * and its code is the instantiation in the point's lock file (struct ib_lock's impl). */
#include "locked.h"

#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope)                                        \
    const struct ib_driver ib_driver_##d = {                                               \
        yaml_name, {desc, "lock", "", IB_TAKES_LOCK}, scope, IB_LOCKED_##d, 0};
#define IB_LOCKED_VARIANT(d)
#include "locked.def"
