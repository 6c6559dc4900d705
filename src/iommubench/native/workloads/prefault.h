/* prefault: VFIO/iommufd VM start. The region is split into chunks dealt round-robin to the
 * workers (chunk k belongs to worker k % workers); each cycle maps every owned chunk, then
 * unmaps it. One-page chunks make the workers race to install the same tables; 128 MiB chunks
 * (parallel VFIO pinning's unit) keep them in separate tables.
 *
 * Timed mode (cycles == 0) repeats cycles until the window closes, then finishes the current
 * phase uncounted and leaves every owned chunk mapped, so the audit checks live translations.
 * Fixed mode (cycles == K) counts exactly K cycles and leaves nothing mapped.
 */
#ifndef IB_WL_PREFAULT_H
#define IB_WL_PREFAULT_H

#include "../pgtable.h"

#define IB_CLOCK_BATCH 1024u

static inline __attribute__((always_inline)) int
ib_prefault_phase(struct ib_ctx *x, const struct ib_driver_ops *ops, int mapping)
{
    const struct ib_params *p = &x->hdr->params;
    const uint64_t chunk = p->chunk_pages, stride = chunk * p->workers;
    const uint64_t end = IB_REGION_BASE_PFN + p->region_pages;
    uint64_t left = x->sample_left, pending = 0;
    int r = IB_OK;
    for (uint64_t first = IB_REGION_BASE_PFN + x->worker * chunk; first < end; first += stride) {
        uint64_t last = first + chunk < end ? first + chunk : end;
        for (uint64_t pfn = first; pfn < last; pfn++) {
            if (mapping) {
                if (ib_do_map(x, ops, pfn, ib_frame_for(pfn), &left) == IB_OP_NOMEM) {
                    r = IB_ERR_POOL_EMPTY;
                    goto out;
                }
            } else {
                uint64_t frame = 0;
                if (ib_do_unmap(x, ops, pfn, &frame, &left) != IB_OP_OK ||
                    frame != ib_frame_for(pfn))
                    x->c.unmap_missing++;
            }
            if (__builtin_expect(++pending == IB_CLOCK_BATCH, 0)) {
                ib_account(x, mapping, pending);
                pending = 0;
                ib_clock_check(x);
            }
        }
    }
out:
    ib_account(x, mapping, pending);
    x->sample_left = left;
    return r;
}

static inline __attribute__((always_inline)) int
ib_workload_prefault(struct ib_ctx *x, const struct ib_driver_ops *ops)
{
    uint64_t fixed_cycles = x->hdr->params.cycles;
    if (fixed_cycles)
        ib_ctx_count_from_now(x);
    for (;;) {
        int r = ib_prefault_phase(x, ops, 1);
        if (r != IB_OK)
            return r;
        if (!fixed_cycles && x->phase == IB_DONE)
            break;
        ib_prefault_phase(x, ops, 0);
        x->c.cycles++;
        if (fixed_cycles && x->c.cycles == fixed_cycles) {
            ib_ctx_finish(x);
            x->slot->ledger = IB_LEDGER_EMPTY;
            return IB_OK;
        }
    }
    x->slot->ledger = IB_LEDGER_ALL_CHUNKS;
    return IB_OK;
}

#endif
