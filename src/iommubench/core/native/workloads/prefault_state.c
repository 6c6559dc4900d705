/* The prefault workload's strategy entry: no state of its own; its parameters' check, the
 * table pages its region needs, and its ledger for the audit. */
#include "../arena.h"
#include "../pgtable.h"
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

/* Chunks are dealt round-robin: pfn's owner is its chunk's index modulo the workers, and a
 * worker that ended with every chunk mapped (IB_LEDGER_ALL_CHUNKS) leaves all of them mapped
 * to ib_frame_for(pfn). */
static void prefault_ledger_span(const struct ib_params *p, uint64_t *lo, uint64_t *hi)
{
    *lo = IB_REGION_BASE_PFN;
    *hi = IB_REGION_BASE_PFN + p->region_pages;
}

static int prefault_ledger(const struct ib_header *h, uint64_t pfn, uint64_t *frame)
{
    const struct ib_params *p = &h->params;
    if (pfn < IB_REGION_BASE_PFN || pfn >= IB_REGION_BASE_PFN + p->region_pages)
        return 0;
    uint64_t owner = ((pfn - IB_REGION_BASE_PFN) / p->chunk_pages) % p->workers;
    const struct ib_slot *s = (const struct ib_slot *)((const char *)h + h->layout.slots_off);
    if (s[owner].ledger != IB_LEDGER_ALL_CHUNKS)
        return 0;
    *frame = ib_frame_for(pfn);
    return 1;
}

const struct ib_strategy ib_prefault_state = {
    .size = prefault_size,
    .check = prefault_check,
    .pool_pages = prefault_pool_pages,
    .ledger_span = prefault_ledger_span,
    .ledger = prefault_ledger,
};

const struct ib_workload_entry ib_workload_prefault_entry = {
    &ib_prefault_state,
    {"VFIO/iommufd VM start: map a region in chunks dealt to the workers, then unmap it",
     "region_mib,chunk_pages,unmap_pages,cycles", "ops/s", 0},
};
