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

#include "../inval/inval.h"
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
    /* a phase shorter than one batch (or a worker with no chunk) still sees the window */
    ib_clock_check(x);
    x->sample_left = left;
    return r;
}

/* The unmap phase with unmap_pages > 1: each owned chunk is unmapped in calls of up to
 * unmap_pages pages (never past the chunk: other workers own what lies beyond). A call that
 * covers whole tables frees them; prefault has no IOTLB to model, so the freed tables are
 * released right after the call, as a strict invalidation would let them be. Latency is per
 * call; ops count pages. */
static inline __attribute__((always_inline)) void
ib_prefault_unmap_ranges(struct ib_ctx *x, const struct ib_driver_ops *ops)
{
    const struct ib_params *p = &x->hdr->params;
    const uint64_t chunk = p->chunk_pages, stride = chunk * p->workers, step = p->unmap_pages;
    const uint64_t end = IB_REGION_BASE_PFN + p->region_pages;
    uint64_t left = x->sample_left, pending = 0;
    for (uint64_t first = IB_REGION_BASE_PFN + x->worker * chunk; first < end; first += stride) {
        uint64_t last = first + chunk < end ? first + chunk : end;
        for (uint64_t pfn = first; pfn < last; pfn += step) {
            uint64_t n = last - pfn < step ? last - pfn : step;
            int timed = ib_sample_due(x, &left);
            uint64_t t0 = timed ? ib_ticks() : 0;
            x->c.unmap_missing += ops->unmap_range(x, pfn, n);
            uint32_t freed = x->gather;
            x->gather = IB_NIL;
            ib_release_freelist(x, freed);
            if (timed)
                ib_record_sample(x, x->hist_unmap, &x->c.unmap_samples, ib_ticks() - t0);
            pending += n;
            if (__builtin_expect(pending >= IB_CLOCK_BATCH, 0)) {
                ib_account(x, 0, pending);
                pending = 0;
                ib_clock_check(x);
            }
        }
    }
    ib_account(x, 0, pending);
    ib_clock_check(x); /* as at the end of ib_prefault_phase */
    x->sample_left = left;
}

static inline __attribute__((always_inline)) void
ib_prefault_unmap_phase(struct ib_ctx *x, const struct ib_driver_ops *ops)
{
    if (x->hdr->params.unmap_pages > 1)
        ib_prefault_unmap_ranges(x, ops);
    else
        ib_prefault_phase(x, ops, 0);
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
        ib_prefault_unmap_phase(x, ops);
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

IB_WORKLOAD(prefault)
