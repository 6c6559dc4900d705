#include "drivers/driver.h"

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
