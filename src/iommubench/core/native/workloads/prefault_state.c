/* The prefault workload's strategy entry: no state of its own; its parameters' check and
 * the table pages its region needs. */
#include "../strategy.h"

static void prefault_size(const struct ib_params *p, struct ib_region_size *out)
{
    (void)p;
    out->shared = out->per_worker = out->per_page = 0;
}

static int prefault_check(const struct ib_params *p) { return !p->region_pages || !p->chunk_pages; }

static uint64_t prefault_pool_pages(const struct ib_params *p)
{
    return ib_pool_pages_needed(p->region_pages, p->workers);
}

const struct ib_strategy ib_prefault_state = {
    .size = prefault_size,
    .check = prefault_check,
    .pool_pages = prefault_pool_pages,
};

const struct ib_workload_entry ib_workload_prefault_entry = {
    &ib_prefault_state,
    {"VFIO/iommufd VM start: map a region in chunks dealt to the workers, then unmap it",
     "region_mib,chunk_pages,unmap_pages,cycles", "ops/s", 0},
};
