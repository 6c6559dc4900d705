/* dma: the streaming DMA pattern of NICs and NVMe. Each worker is a CPU owning
 * queues_per_worker device queues of queue_depth; per I/O it allocates an IOVA (size drawn
 * from the granule mix with the seeded RNG), maps every page with the driver, keeps the I/O in
 * flight for dma_ns, then unmaps every page, invalidates (strict) or queues (lazy), and frees
 * the IOVA. The queues are one FIFO ring of queues x depth I/Os: submissions are dealt round
 * robin to the queues and every I/O takes the same dma_ns, so the oldest I/O is always the
 * next to complete.
 *
 * completion: local -- the submitting worker completes its own ring.
 * completion: remote -- worker w's ring is completed by worker (w + 1) % n, so the CPU that
 *   unmaps and frees an IOVA is not the one that allocated it (a controller with fewer
 *   completion vectors than CPUs): frees fill one CPU's magazines while allocations drain
 *   another's, and full magazines travel through the depot. With one worker, remote
 *   degenerates to local (the ring goes from worker 0 to worker 0).
 *
 * The ring is single-producer single-consumer: the producer writes an entry, then publishes
 * head (release); the consumer reads head (acquire), the entry, unmaps, then publishes tail
 * (release) so the slot can be reused. Neither side ever blocks on the other: a full ring
 * only means "complete something first", so there is no deadlock. At the end each worker
 * stops submitting and closes its ring, then drains its incoming ring until that is closed and
 * empty (uncounted), and finally drains its flush queue, so the audit finds no mapping left
 * and every IOVA back in the allocator.
 *
 * map_mode: sg (the default) maps the I/O's pages as a scatterlist of single-page entries,
 * one driver call per entry (iommu_map_sg: one IOVA for the list, each entry mapped, one
 * sync); single maps them in one driver call (dma_map_page -> iommu_map). Either way the
 * unmap is one call for the range and one invalidation (dma_unmap_sg / dma_unmap_page).
 *
 * Map latency is alloc + map of every page (what dma_map_single or dma_map_sg costs); unmap
 * latency is unmap of every page + invalidate or queue + free (dma_unmap_single). One I/O in
 * sample_every is timed for each.
 */
#ifndef IB_WL_DMA_H
#define IB_WL_DMA_H

#include "../clock.h"
#include "../inval/inval.h"
#include "../iova/iova.h"
#include "../pgtable.h"
#include "dma_state.h"

#define IB_DMA_BATCH 64u        /* completions or submissions per turn */
#define IB_DMA_ACCOUNT 256u     /* I/Os between counter updates and clock checks */

static inline uint64_t ib_rng_next(uint64_t *s)
{
    /* splitmix64: cheap, seeded, good enough to draw from a granule mix */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Allocate and map one I/O, in one map call (single) or one per page (sg: a scatterlist of
 * single-page entries; one IOVA for the list, as iommu_dma_map_sg allocates); 0 with *err set
 * when the IOVA space or the table pool ran out. */
static inline __attribute__((always_inline)) uint64_t
ib_dma_submit(struct ib_ctx *x, const struct ib_driver_ops *ops, uint32_t pages, int single,
              uint64_t *left, int *err)
{
    int timed = ib_sample_due(x, left);
    uint64_t t0 = timed ? ib_ticks() : 0;
    uint64_t pfn = x->alloc->alloc(x, pages);
    if (__builtin_expect(!pfn, 0)) {
        /* space exhausted: give back what this CPU holds in its flush queue, retry once */
        x->inval->drain(x);
        pfn = x->alloc->alloc(x, pages);
        if (!pfn) {
            x->c.iova_alloc_failures++;
            *err = IB_ERR_NO_SPACE;
            return 0;
        }
    }
    int nomem = 0;
    if (single) /* one call for the I/O's pages, as dma_map_page's iommu_map */
        nomem = ops->map_range(x, pfn, pages) == IB_OP_NOMEM;
    else /* sg: one call per page entry of the list, as iommu_map_sg */
        for (uint32_t i = 0; i < pages && !nomem; i++)
            nomem = ops->map(x, pfn + i, ib_frame_for(pfn + i)) == IB_OP_NOMEM;
    if (__builtin_expect(nomem, 0)) {
        *err = IB_ERR_POOL_EMPTY;
        return 0;
    }
    if (timed)
        ib_record_sample(x, x->hist_map, &x->c.map_samples, ib_ticks() - t0);
    return pfn;
}

static inline __attribute__((always_inline)) void
ib_dma_complete(struct ib_ctx *x, const struct ib_driver_ops *ops, const struct ib_io *io,
                uint64_t *left)
{
    int timed = ib_sample_due(x, left);
    uint64_t t0 = timed ? ib_ticks() : 0;
    uint64_t pfn = io->pfn;
    /* one unmap call for the I/O's range, as dma_unmap_page makes one iommu_unmap call; a
     * range covering a whole table frees it, after the invalidation that covers the range */
    x->c.unmap_missing += ops->unmap_range(x, pfn, io->pages);
    uint32_t freelist = x->gather;
    x->gather = IB_NIL;
    x->inval->unmapped(x, pfn, io->pages, freelist);
    if (timed)
        ib_record_sample(x, x->hist_unmap, &x->c.unmap_samples, ib_ticks() - t0);
}

static inline void ib_dma_account(struct ib_ctx *x, uint64_t *done, uint64_t *submitted,
                                  uint64_t *pages)
{
    x->c.ops += *done;
    x->c.unmaps += *done;
    x->c.maps += *submitted;
    x->c.pages_mapped += *pages;
    *done = *submitted = *pages = 0;
}

static inline __attribute__((always_inline)) int
ib_workload_dma(struct ib_ctx *x, const struct ib_driver_ops *ops)
{
    const struct ib_params *p = &x->hdr->params;
    const uint32_t n = p->workers, w = x->worker;
    const uint32_t src = p->completion ? (w + n - 1) % n : w;
    const uint64_t cap = (uint64_t)p->queues_per_worker * p->queue_depth;
    const uint64_t dma_ticks = (uint64_t)((double)p->dma_ns * x->tsc_per_ns + 0.5);
    const uint32_t ngran = p->n_granules;
    const int single = p->map_mode == 1;
    struct ib_ring *out = ib_ring_of(x->base, w), *in = ib_ring_of(x->base, src);
    struct ib_io *oe = ib_ring_entries(x->base, w), *ie = ib_ring_entries(x->base, src);
    uint64_t head = 0, tail_seen = 0;   /* producer side, private copies */
    uint64_t ctail = 0, head_seen = 0;  /* consumer side, private copies */
    uint64_t rng = p->seed * 0x9e3779b97f4a7c15ull + w + 1;
    uint64_t left_map = x->sample_left, left_unmap = x->sample_left;
    uint64_t done = 0, submitted = 0, pages = 0, since_check = 0;
    int err = IB_OK;

    while (x->phase != IB_DONE) {
        uint32_t k = 0, s = 0;
        uint64_t now = 0;
        /* complete the oldest I/Os whose transfer is over */
        while (k < IB_DMA_BATCH) {
            if (ctail == head_seen) {
                /* acquire: pairs with the producer's release of head; the entry and the
                 * mappings it names are visible */
                head_seen = __atomic_load_n(&in->prod.head, __ATOMIC_ACQUIRE);
                if (ctail == head_seen)
                    break;
            }
            const struct ib_io *io = &ie[ctail % cap];
            if (io->deadline > now && (now = ib_ticks()) < io->deadline)
                break;
            ib_dma_complete(x, ops, io, &left_unmap);
            ctail++;
            /* release: our reads of the slot and the unmap precede the producer's reuse */
            __atomic_store_n(&in->cons.tail, ctail, __ATOMIC_RELEASE);
            k++;
        }
        /* submit until the device queues are full */
        while (s < IB_DMA_BATCH) {
            if (head - tail_seen == cap) {
                /* acquire: pairs with the consumer's release of tail */
                tail_seen = __atomic_load_n(&out->cons.tail, __ATOMIC_ACQUIRE);
                if (head - tail_seen == cap) {
                    x->c.ring_full += s == 0;
                    break;
                }
            }
            uint32_t g = p->granules[ngran == 1 ? 0 : ib_rng_next(&rng) % ngran];
            uint64_t pfn = ib_dma_submit(x, ops, g, single, &left_map, &err);
            if (!pfn) {
                if (err == IB_ERR_POOL_EMPTY)
                    goto out;
                err = IB_OK; /* IOVA space: wait for completions to free some */
                break;
            }
            struct ib_io *io = &oe[head % cap];
            io->pfn = pfn;
            io->pages = g;
            io->deadline = dma_ticks ? ib_ticks() + dma_ticks : 0;
            head++;
            /* release: the entry and the new mappings are visible before head moves */
            __atomic_store_n(&out->prod.head, head, __ATOMIC_RELEASE);
            pages += g;
            s++;
        }
        done += k;
        submitted += s;
        since_check += k + s;
        if (since_check >= IB_DMA_ACCOUNT || (k == 0 && s == 0)) {
            ib_dma_account(x, &done, &submitted, &pages);
            since_check = 0;
            if (x->alloc->poll) /* before the clock check, so the window's counts include it */
                x->alloc->poll(x, ib_clock_ns());
            ib_clock_check(x);
            x->inval->poll(x, ib_clock_ns());
            if (k == 0 && s == 0)
                cpu_relax();
        }
    }
out:
    ib_dma_account(x, &done, &submitted, &pages);
    /* release: our last head is visible before closed */
    __atomic_store_n(&out->done.closed, 1, __ATOMIC_RELEASE);
    /* drain the incoming ring, uncounted: until its producer has closed it and it is empty */
    for (unsigned spins = 0;; spins++) {
        /* acquire: after closed, the head we read next is the producer's last */
        int closed = __atomic_load_n(&in->done.closed, __ATOMIC_ACQUIRE);
        uint64_t h = __atomic_load_n(&in->prod.head, __ATOMIC_ACQUIRE);
        while (ctail != h) {
            ib_dma_complete(x, ops, &ie[ctail % cap], &left_unmap);
            ctail++;
            __atomic_store_n(&in->cons.tail, ctail, __ATOMIC_RELEASE); /* as above */
        }
        if (closed)
            break;
        cpu_relax();
        if ((spins & 1023u) == 0 && ib_aborted(x->base))
            ib_exit_aborted();
    }
    x->inval->drain(x);
    x->sample_left = left_map;
    x->slot->ledger = IB_LEDGER_EMPTY;
    return err;
}

#endif

IB_WORKLOAD(dma)
