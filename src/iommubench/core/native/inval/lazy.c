/* lazy: per-CPU flush queues (iommu.strict=0, IOMMU_DOMAIN_DMA_FQ; dma-iommu.c queue_iova).
 *
 * Each CPU queues unmapped IOVAs in a ring of 256 entries stamped with the global flush-start
 * counter. A flush is start++, one invalidate-all command, finish++; an entry may be released
 * once finish > its stamp, i.e. once a flush that started after the entry was queued has
 * completed. On queueing: release what is covered; if the ring is full, flush and release
 * again; append; arm the 10 ms timeout. The kernel's timer flushes and drains every CPU's ring;
 * here each worker checks its own ring's timeout from its loop (no timer thread), so a ring is
 * drained by its owner only.
 *
 * Debug witness: every flush records 1 + its ticket in flush_done_max (an atomic max,
 * before it bumps finish). At release an entry's stamp must be below that witness, re-read
 * fresh; a release that breaks it is counted in fq_early_frees and fails the audit.
 */
#include "../clock.h"
#include "../iova/iova.h"
#include "../strategy.h"
#include "../workloads/workloads.h"
#include "inval.h"

/* The flush counters every CPU reads, each on its own line (the 2019 split). */
struct lazy_shared {
    struct ib_line_u64 flush_start;    /* flushes begun */
    struct ib_line_u64 flush_finish;   /* flushes completed */
    struct ib_line_u64 flush_done_max; /* debug witness: 1 + highest completed ticket */
};

struct ib_fq_entry {
    uint64_t pfn;
    uint32_t pages;
    uint32_t freelist;    /* table pages freed by this unmap, released with the IOVA (hook) */
    uint64_t counter;     /* flush_start when queued */
};

/* A CPU's flush queue: a ring of IB_FQ_SIZE entries, owner only. */
struct ib_fq {
    uint32_t head, tail;  /* head: oldest entry; tail: next free slot (mod 2*IB_FQ_SIZE) */
    uint32_t armed;       /* the 10 ms timeout is pending */
    uint32_t pad;
    uint64_t armed_ns;
    struct ib_fq_entry e[IB_FQ_SIZE];
} IB_ALIGNED;

static struct lazy_shared *shared_of(struct ib_ctx *x)
{
    return (struct lazy_shared *)x->shared[IB_AXIS_INVALIDATION];
}

static struct ib_fq *own_fq(struct ib_ctx *x) { return (struct ib_fq *)x->own[IB_AXIS_INVALIDATION]; }

static struct ib_fq *ib_fq_of(void *base, uint32_t w)
{
    return (struct ib_fq *)ib_region_worker(base, IB_AXIS_INVALIDATION, w);
}

static uint32_t fq_len(const struct ib_fq *fq)
{
    return (fq->tail + 2 * IB_FQ_SIZE - fq->head) % (2 * IB_FQ_SIZE);
}

static void fq_flush(struct ib_ctx *x)
{
    struct lazy_shared *h = shared_of(x);
    /* acq_rel: the ticket orders this flush after every entry stamped with a lower value */
    uint64_t ticket = __atomic_fetch_add(&h->flush_start.v, 1, __ATOMIC_ACQ_REL);
    ib_invalidate(x); /* invalidate-all: one command */
    uint64_t want = ticket + 1, seen = __atomic_load_n(&h->flush_done_max.v, __ATOMIC_RELAXED);
    /* atomic max: concurrent flushes may finish out of order; the witness keeps the highest */
    while (seen < want && !__atomic_compare_exchange_n(&h->flush_done_max.v, &seen, want, 1,
                                                       __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    /* release: a CPU that sees this finish sees the invalidation and the witness before it */
    __atomic_fetch_add(&h->flush_finish.v, 1, __ATOMIC_RELEASE);
    x->c.flushes++;
}

/* fq_ring_free: release every entry a completed flush covers, oldest first. */
static void fq_release(struct ib_ctx *x, struct ib_fq *fq)
{
    /* acquire: pairs with the flusher's release increment of finish */
    uint64_t finish = __atomic_load_n(&shared_of(x)->flush_finish.v, __ATOMIC_ACQUIRE);
    while (fq->head != fq->tail) {
        struct ib_fq_entry *e = &fq->e[fq->head % IB_FQ_SIZE];
        if (e->counter >= finish)
            break;
        /* acquire: the witness re-read independently of the decision above */
        if (e->counter >= __atomic_load_n(&shared_of(x)->flush_done_max.v, __ATOMIC_ACQUIRE))
            x->c.fq_early_frees++;
        ib_release_freelist(x, e->freelist);
        x->alloc->free(x, e->pfn, e->pages);
        fq->head = (fq->head + 1) % (2 * IB_FQ_SIZE);
    }
    if (fq->head == fq->tail)
        fq->armed = 0;
}

static void lazy_unmapped(struct ib_ctx *x, uint64_t pfn, uint32_t pages, uint32_t freelist)
{
    /* full barrier (the kernel's smp_mb() in queue_iova): the stores clearing this I/O's
     * entries must be visible before the flush-start stamp is read below. Without it the
     * load can pass the stores (store-load reordering, even on x86): a flush that starts
     * after our stale stamp but invalidates before the clears are visible would count as
     * covering this entry while the IOTLB can still re-cache the old entries. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    struct ib_fq *fq = own_fq(x);
    fq_release(x, fq);
    /* The kernel flushes once here. But flushes on other CPUs may complete out of order: if an
     * older flush is still running when ours bumps finish, finish stays at or below our
     * newest stamps and the ring is still full; appending would overwrite (leak) the oldest
     * entry. So flush until there is room. */
    while (fq_len(fq) == IB_FQ_SIZE) {
        if (ib_aborted(x->base))
            ib_exit_aborted();
        fq_flush(x);
        x->c.fq_full_flushes++;
        fq_release(x, fq);
    }
    struct ib_fq_entry *e = &fq->e[fq->tail % IB_FQ_SIZE];
    e->pfn = pfn;
    e->pages = pages;
    e->freelist = freelist;
    /* acquire: pairs with the flusher's ticket increment; the fence above orders this read
     * after the clears of this I/O's entries */
    e->counter = __atomic_load_n(&shared_of(x)->flush_start.v, __ATOMIC_ACQUIRE);
    fq->tail = (fq->tail + 1) % (2 * IB_FQ_SIZE);
    x->c.fq_entries++;
    if (!fq->armed) {
        fq->armed = 1;
        fq->armed_ns = 0; /* stamped lazily by the next poll: no clock read per I/O */
    }
}

static void lazy_poll(struct ib_ctx *x, uint64_t now_ns)
{
    struct ib_fq *fq = own_fq(x);
    if (!fq->armed)
        return;
    if (!fq->armed_ns) {
        fq->armed_ns = now_ns;
        return;
    }
    if (now_ns - fq->armed_ns < IB_FQ_TIMEOUT_NS)
        return;
    fq_flush(x);
    x->c.fq_timeout_flushes++;
    fq_release(x, fq);
}

/* Our flush may complete before an older one still running elsewhere, leaving finish below
 * our newest stamps: flush again until everything is covered (bounded by the flushes in
 * flight; a dead flusher aborts the point). */
static void lazy_drain(struct ib_ctx *x)
{
    struct ib_fq *fq = own_fq(x);
    while (fq->head != fq->tail) {
        if (ib_aborted(x->base))
            ib_exit_aborted();
        fq_flush(x);
        fq_release(x, fq);
    }
}

/* Where the workload invalidates: the shared counters, and one flush queue per worker */
static void lazy_size(const struct ib_params *p, struct ib_region_size *out)
{
    int dma = ib_workload_reads(p, "invalidation");
    out->shared = dma ? sizeof(struct lazy_shared) : 0;
    out->per_worker = dma ? sizeof(struct ib_fq) : 0;
    out->per_page = 0;
}

/* Entries left in a flush queue after the drain were never released */
static void lazy_audit(void *base, struct ib_audit *a)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    int dma = ib_workload_reads(p, "invalidation");
    for (uint32_t w = 0; dma && w < p->workers; w++)
        ib_audit_result_of(a)->inflight_left += fq_len(ib_fq_of(base, w));
}

static const struct ib_strategy lazy_state = {lazy_size, 0, 0, lazy_audit};

const struct ib_invalidation ib_invalidation_lazy = {
    "lazy",
    {"per-CPU flush queues of 256 entries, 10 ms timeout", "", "", 0},
    &lazy_state,
    lazy_unmapped,
    lazy_poll,
    lazy_drain,
};
