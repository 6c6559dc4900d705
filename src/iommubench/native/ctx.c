#include <unistd.h>

#include "clock.h"
#include "ctx.h"

void ib_exit_aborted(void) { _exit(100 + IB_ERR_ABORTED); }

const struct ib_allocator *ib_allocator_get(uint32_t i);
const struct ib_invalidation *ib_invalidation_get(uint32_t i);

void ib_ctx_init(struct ib_ctx *x, void *base, uint32_t worker)
{
    struct ib_header *h = ib_hdr(base);
    memset(x, 0, sizeof(*x));
    x->base = base;
    x->hdr = h;
    x->worker = worker;
    x->slot = ib_slot_of(base, worker);
    x->meta = ib_meta(base);
    x->gen = ib_gen(base);
    x->gather = IB_NIL;
    x->guarded = h->params.walkers > 0 && h->params.walker_safety == IB_WS_EXCLUSIVE;
    x->pages = (char *)base + h->layout.pages_off;
    x->hist_map = ib_hist_of(base, worker, 0);
    x->hist_unmap = ib_hist_of(base, worker, 1);
    x->cs_loops = h->cs_loops;
    x->tsc_per_ns = h->tsc_per_ns;
    x->timer_cost_ticks = h->timer_cost_ticks;
    /* sample_every == 0 turns sampling off: the countdown starts too high to ever reach 0 */
    x->sample_every = h->params.sample_every;
    x->sample_left = x->sample_every ? x->sample_every : UINT64_MAX;
    x->phase = IB_WARMUP;
    x->alloc = ib_allocator_get(h->params.allocator);
    x->inval = ib_invalidation_get(h->params.invalidation);
}

static void ib_start_counting(struct ib_ctx *x, uint64_t now)
{
    /* evidence of lost mappings survives the warm-up reset: correctness is never windowed */
    struct ib_counters kept = x->c;
    memset(&x->c, 0, sizeof(x->c));
    x->c.map_conflicts = kept.map_conflicts;
    x->c.unmap_missing = kept.unmap_missing;
    x->c.fq_early_frees = kept.fq_early_frees;
    x->c.iova_bad_frees = kept.iova_bad_frees;
    /* warm-up samples are discarded with the warm-up counters */
    memset(x->hist_map, 0, IB_HIST_BUCKETS * sizeof(uint64_t));
    memset(x->hist_unmap, 0, IB_HIST_BUCKETS * sizeof(uint64_t));
    x->c.start_ns = now;
    x->phase = IB_COUNTING;
}

void ib_ctx_count_from_now(struct ib_ctx *x)
{
    ib_start_counting(x, ib_clock_ns());
    x->end_ns = UINT64_MAX;
}

void ib_ctx_finish(struct ib_ctx *x)
{
    uint64_t now = ib_clock_ns();
    /* the window closed before this worker's warm-up did: it counted nothing, over no time */
    if (x->phase == IB_WARMUP)
        ib_start_counting(x, now);
    x->c.end_ns = now;
    x->final = x->c;
    x->phase = IB_DONE;
}

void ib_clock_check(struct ib_ctx *x)
{
    if (ib_aborted(x->base))
        ib_exit_aborted();
    if (x->phase == IB_DONE)
        return;
    uint64_t now = ib_clock_ns();
    if (x->phase == IB_WARMUP && now >= x->warm_end_ns)
        ib_start_counting(x, now);
    else if (x->phase == IB_COUNTING && now >= x->end_ns)
        ib_ctx_finish(x);
}
