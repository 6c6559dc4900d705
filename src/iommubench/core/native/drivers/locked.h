/* The lock-taking drivers: each is a header of templates (map, unmap, unmap_range taking the
 * lock functions and the stride of per-table-page lock instances) plus a registration file.
 * Every lock file instantiates each of them (locks/framework.h). */
#ifndef IB_LOCKED_H
#define IB_LOCKED_H

#include "domain_lock.h"
#include "kernel_domain_lock.h"
#include "table_lock.h"

#define IB_LOCKED_DRIVERS(X, arg) X(domain_lock, arg) X(table_lock, arg) X(kernel_domain_lock, arg)

#define IB_LOCKED_ENUM(d, arg) IB_LOCKED_##d,
enum ib_locked_driver { IB_LOCKED_DRIVERS(IB_LOCKED_ENUM, 0) IB_LOCKED_DRIVER_COUNT };

#endif
