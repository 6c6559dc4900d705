#include "drivers/driver.h"
#include "inval/inval.h"
#include "iova/iova.h"

#define IB_DRIVER_ENTRY(drv) extern const struct ib_driver ib_driver_##drv;
#include "drivers/drivers.def"
#undef IB_DRIVER_ENTRY

#define IB_DRIVER_ENTRY(drv) &ib_driver_##drv,
static const struct ib_driver *const drivers[] = {
#include "drivers/drivers.def"
};
#undef IB_DRIVER_ENTRY

#define IB_WL_NAME(wl, arg) #wl,
static const char *const workload_names[] = {IB_WORKLOADS(IB_WL_NAME, 0)};

uint32_t ib_driver_count(void) { return sizeof(drivers) / sizeof(drivers[0]); }

const char *ib_driver_name(uint32_t i) { return i < ib_driver_count() ? drivers[i]->name : 0; }

const struct ib_driver *ib_driver_get(uint32_t i)
{
    return i < ib_driver_count() ? drivers[i] : 0;
}

uint32_t ib_workload_count(void) { return IB_WORKLOAD_COUNT; }

const char *ib_workload_name(uint32_t i)
{
    return i < IB_WORKLOAD_COUNT ? workload_names[i] : 0;
}

#define IB_ALLOCATOR_ENTRY(a) extern const struct ib_allocator ib_allocator_##a;
#include "iova/allocators.def"
#undef IB_ALLOCATOR_ENTRY

#define IB_ALLOCATOR_ENTRY(a) &ib_allocator_##a,
static const struct ib_allocator *const allocators[] = {
#include "iova/allocators.def"
};
#undef IB_ALLOCATOR_ENTRY

#define IB_INVALIDATION_ENTRY(m) extern const struct ib_invalidation ib_invalidation_##m;
#include "inval/invalidations.def"
#undef IB_INVALIDATION_ENTRY

#define IB_INVALIDATION_ENTRY(m) &ib_invalidation_##m,
static const struct ib_invalidation *const invalidations[] = {
#include "inval/invalidations.def"
};
#undef IB_INVALIDATION_ENTRY

uint32_t ib_allocator_count(void) { return sizeof(allocators) / sizeof(allocators[0]); }

const char *ib_allocator_name(uint32_t i)
{
    return i < ib_allocator_count() ? allocators[i]->name : 0;
}

const struct ib_allocator *ib_allocator_get(uint32_t i)
{
    return allocators[i < ib_allocator_count() ? i : 0];
}

uint32_t ib_invalidation_count(void) { return sizeof(invalidations) / sizeof(invalidations[0]); }

const char *ib_invalidation_name(uint32_t i)
{
    return i < ib_invalidation_count() ? invalidations[i]->name : 0;
}

const struct ib_invalidation *ib_invalidation_get(uint32_t i)
{
    return invalidations[i < ib_invalidation_count() ? i : 0];
}
