/* The per-worker context: private to one worker process for the whole run. */
#ifndef IB_CTX_H
#define IB_CTX_H

#include "arena.h"

struct ib_allocator;
struct ib_invalidation;
struct ib_walk_state;

struct ib_ctx {
    void *base;
    const struct ib_allocator *alloc;       /* dma: the IOVA allocator */
    const struct ib_invalidation *inval;    /* dma: the invalidation mode */
    struct ib_header *hdr;
    struct ib_walk_state *walk;             /* the walker axis's state (walkstate.h) */
    void *shared[IB_AXES];                  /* each axis's shared region */
    void *own[IB_AXES];                     /* ... and this worker's bytes of it */
    struct ib_slot *slot;
    uint32_t *meta;
    uint32_t *gen;              /* per pool page: odd while free (walkers detect reuse) */
    char *pages;
    void *lock_shared;          /* domain-lock: the point's one lock instance */
    char *lock_pages;           /* table-lock: table page i's lock at i x the lock's stride */
    char *lock_nodes;           /* the lock's per-worker nodes (ib_lock_node) */
    uint64_t lock_node_stride;
    uint64_t *hist_map;
    uint64_t *hist_unmap;
    struct ib_counters c;       /* live counters; zeroed when warm-up ends */
    struct ib_counters final;   /* snapshot taken when the measured window closes */
    uint64_t cs_map_loops;      /* calibrated busy work inside each map call */
    uint64_t cs_unmap_loops;    /* ... and inside each unmap call */
    uint64_t sample_every;
    uint64_t sample_left;
    uint64_t warm_end_ns;
    uint64_t end_ns;
    double tsc_per_ns;
    double timer_cost_ticks;
    uint32_t worker;
    uint32_t phase;             /* enum ib_phase */
    uint32_t guarded;           /* exclusive walkers: map/unmap take the walk guard shared */
    uint32_t gather;            /* tables the current unmap detached, linked through meta */
    uint32_t series_n;          /* throughput ticks recorded so far */
    uint64_t *series;           /* this worker's IB_SERIES_SLOTS in the arena */
    uint64_t series_tick_ns;
    uint64_t next_tick_ns;      /* when the next throughput tick is due */
    uint64_t sched_oncpu0;      /* schedstat when counting started */
    uint64_t sched_runq0;
    int sched_ok0;
};

enum ib_phase { IB_WARMUP = 0, IB_COUNTING = 1, IB_DONE = 2 };

void ib_ctx_init(struct ib_ctx *x, void *base, uint32_t worker);

/* Called every few hundred ops, and at the end of every phase of work: moves the run from
 * warm-up to counting to done, records throughput ticks, and leaves at once when the harness
 * aborted the point. */
void ib_clock_check(struct ib_ctx *x);

/* Runs a fixed amount of work with no warm-up: counting starts now and ends at ib_ctx_finish. */
void ib_ctx_count_from_now(struct ib_ctx *x);
/* Reads the worker's schedstat as the baseline of its window (before the start, for runs
 * that count from their first op). */
void ib_ctx_sched_snapshot(struct ib_ctx *x);
void ib_ctx_finish(struct ib_ctx *x);

static inline uint64_t *ib_table(const struct ib_ctx *x, uint32_t index)
{
    return (uint64_t *)(x->pages + (uint64_t)index * IB_PAGE_BYTES);
}

/* Calibrated busy work standing in for what a real driver does inside its critical section
 * (PTE cache maintenance, say). The asm keeps the compiler from folding the loop. */
static inline void ib_busy(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++)
        __asm__ __volatile__("" : "+r"(i));
}

#endif
