#include <fcntl.h>
#include <unistd.h>

#include "clock.h"
#include "ctx.h"
#include "walkstate.h"

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
    x->guarded = h->params.walkers > 0 && ib_walker_mode_of(h->params.walker_safety)->guards_workers;
    x->pages = (char *)base + h->layout.pages_off;
    x->walk = ib_walk_state(base);
    for (int axis = 0; axis < IB_AXES; axis++) {
        x->shared[axis] = ib_region_shared(base, axis);
        x->own[axis] = ib_region_worker(base, axis, worker);
    }
    x->lock_shared = ib_region_shared(base, IB_AXIS_LOCK);
    x->lock_pages = ib_region_page(base, IB_AXIS_LOCK, 0);
    x->lock_nodes = ib_region_worker(base, IB_AXIS_LOCK, 0);
    x->lock_node_stride = h->layout.regions[IB_AXIS_LOCK].worker_stride;
    x->hist_map = ib_hist_of(base, worker, 0);
    x->hist_unmap = ib_hist_of(base, worker, 1);
    x->series = ib_series_of(base, worker);
    x->series_tick_ns = h->layout.series_tick_ns;
    x->next_tick_ns = UINT64_MAX;
    x->cs_map_loops = h->cs_map_loops;
    x->cs_unmap_loops = h->cs_unmap_loops;
    x->tsc_per_ns = h->tsc_per_ns;
    x->timer_cost_ticks = h->timer_cost_ticks;
    /* sample_every == 0 turns sampling off: the countdown starts too high to ever reach 0 */
    x->sample_every = h->params.sample_every;
    x->sample_left = x->sample_every ? x->sample_every : UINT64_MAX;
    x->phase = IB_WARMUP;
    x->alloc = ib_allocator_get(h->params.allocator);
    x->inval = ib_invalidation_get(h->params.invalidation);
}

static uint64_t parse_u64(const char **s)
{
    uint64_t v = 0;
    while (**s == ' ')
        (*s)++;
    while (**s >= '0' && **s <= '9')
        v = v * 10 + (uint64_t)(*(*s)++ - '0');
    return v;
}

/* This thread's scheduler statistics: time on a CPU and time runnable but waiting on a run
 * queue, in ns (/proc/PID/schedstat). Returns 0 when the kernel does not provide them. */
static int read_schedstat(uint64_t *oncpu_ns, uint64_t *runq_ns)
{
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[96];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *s = buf;
    *oncpu_ns = parse_u64(&s);
    *runq_ns = parse_u64(&s);
    return *s == ' ';
}

void ib_ctx_sched_snapshot(struct ib_ctx *x)
{
    x->sched_ok0 = read_schedstat(&x->sched_oncpu0, &x->sched_runq0);
}

/* fresh_sched: read schedstat now; 0 keeps the snapshot taken before the synchronised start
 * (a fixed-work run counts from its first op, and a syscall there would skew the start by
 * microseconds: the naive control's upper-table race lasts about 100 ns) */
static void ib_start_counting(struct ib_ctx *x, uint64_t now, int fresh_sched)
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
    if (fresh_sched)
        ib_ctx_sched_snapshot(x);
    /* ticks count from the window's nominal start (the same for every worker of a timed
     * run), so the last one falls at the window's end; a fixed-work run starts now */
    const uint64_t duration = x->hdr->params.duration_ns;
    int timed = x->end_ns != UINT64_MAX && x->end_ns >= duration && x->end_ns - duration <= now;
    x->next_tick_ns = (timed ? x->end_ns - duration : now) + x->series_tick_ns;
    x->series_n = 0;
    x->c.start_ns = ib_clock_ns(); /* after the schedstat read: its cost stays out */
    x->phase = IB_COUNTING;
}

void ib_ctx_count_from_now(struct ib_ctx *x)
{
    x->end_ns = UINT64_MAX;
    ib_start_counting(x, ib_clock_ns(), 0);
}

/* Every tick that has passed (up to the window's end) gets the ops counted so far. */
static void record_ticks(struct ib_ctx *x, uint64_t now)
{
    while (x->next_tick_ns <= now && x->next_tick_ns <= x->end_ns) {
        if (x->series_n == IB_SERIES_SLOTS) {
            x->next_tick_ns = UINT64_MAX;
            return;
        }
        x->series[x->series_n++] = x->c.ops;
        x->next_tick_ns += x->series_tick_ns;
    }
}

void ib_ctx_finish(struct ib_ctx *x)
{
    uint64_t now = ib_clock_ns();
    /* the window closed before this worker's warm-up did: it counted nothing, over no time */
    if (x->phase == IB_WARMUP)
        ib_start_counting(x, now, 1);
    record_ticks(x, now);
    x->c.end_ns = now;
    uint64_t oncpu = 0, runq = 0;
    if (x->sched_ok0 && read_schedstat(&oncpu, &runq)) {
        x->c.sched_ok = 1;
        x->c.sched_oncpu_ns = oncpu - x->sched_oncpu0;
        x->c.sched_runq_ns = runq - x->sched_runq0;
    }
    x->c.series_ticks = x->series_n;
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
        ib_start_counting(x, now, 1);
    else if (x->phase == IB_COUNTING) {
        if (now >= x->next_tick_ns)
            record_ticks(x, now);
        if (now >= x->end_ns)
            ib_ctx_finish(x);
    }
}
