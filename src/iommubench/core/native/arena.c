/* Arena layout and the parent's side of a run: initialise, release the barrier, abort,
 * read what the workers published. */
#include <errno.h>

#include "clock.h"
#include "pool.h"
#include "strategy.h"

#define ALIGN_UP(v, a) (((v) + (a) - 1) / (a) * (a))

/* The arena's shape, derived rather than bumped by hand: an arena is only ever shared by
 * processes of one build (the Python side also refuses a core built from other sources). */
uint32_t ib_core_version(void)
{
    uint64_t v = 0xcbf29ce484222325ull;
    const uint64_t parts[] = {sizeof(struct ib_header), sizeof(struct ib_params),
                              sizeof(struct ib_layout), sizeof(struct ib_counters),
                              sizeof(struct ib_slot),   ib_driver_count(),
                              ib_lock_count(),          ib_workload_count()};
    for (unsigned i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        v = (v ^ parts[i]) * 0x100000001b3ull;
    return (uint32_t)(v ^ (v >> 32));
}

/* Tables a region needs at each level (plus one for misalignment), twice over for tables a
 * leaking driver loses or losing installs hold, plus what per-worker free lists can cache. */
uint64_t ib_pool_pages_needed(uint64_t region_pages, uint32_t workers)
{
    uint64_t leaves = region_pages / 512 + 2;
    uint64_t mids = leaves / 512 + 2;
    uint64_t tops = mids / 512 + 2;
    return 1 + 2 * (leaves + mids + tops) + (uint64_t)workers * (2 * IB_POOL_BATCH + 8) + 16;
}

/* The pool's size, from the strategies: the table pages each axis's mappings can need,
 * then the pages any of them can hold out of a pool that size. */
uint64_t ib_pool_pages_for(const struct ib_params *p)
{
    uint64_t n = 0, held = 0;
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_strategy *s = ib_strategy_of(p, axis);
        n += s->pool_pages ? s->pool_pages(p) : 0;
    }
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_strategy *s = ib_strategy_of(p, axis);
        held += s->pool_held ? s->pool_held(p, n) : 0;
    }
    return n + held;
}

/* An axis's strategy's region, from off: shared bytes, per-worker and per-page strides. */
static uint64_t layout_region(const struct ib_params *p, int axis, uint64_t off,
                              struct ib_region *r)
{
    struct ib_region_size sz;
    ib_strategy_of(p, axis)->size(p, &sz);
    r->shared_off = off;
    r->shared_bytes = sz.shared;
    off = ALIGN_UP(off + sz.shared, IB_LINE);
    r->worker_off = off;
    r->worker_stride = sz.per_worker;
    off = ALIGN_UP(off + p->workers * sz.per_worker, IB_LINE);
    r->page_off = off;
    r->page_stride = sz.per_page;
    return ALIGN_UP(off + p->pool_pages * sz.per_page, IB_PAGE_BYTES);
}

int ib_layout(const struct ib_params *p, struct ib_layout *out)
{
    memset(out, 0, sizeof(*out));
    if (!p->workers || p->workers > IB_MAX_WORKERS || !p->pool_pages || p->pool_pages >= IB_NIL)
        return IB_ERR_PARAMS;
    uint64_t off = ALIGN_UP(sizeof(struct ib_header), IB_PAGE_BYTES);
    out->slots_off = off;
    off = ALIGN_UP(off + p->workers * sizeof(struct ib_slot), IB_PAGE_BYTES);
    out->hist_off = off;
    off = ALIGN_UP(off + (uint64_t)p->workers * 2 * IB_HIST_BUCKETS * 8, IB_PAGE_BYTES);
    out->meta_off = off;
    off = ALIGN_UP(off + p->pool_pages * sizeof(uint32_t), IB_PAGE_BYTES);
    out->pages_off = off;
    off += p->pool_pages * IB_PAGE_BYTES;
    out->gen_off = off = ALIGN_UP(off, IB_PAGE_BYTES);
    off += p->pool_pages * sizeof(uint32_t);
    out->series_off = off = ALIGN_UP(off, IB_PAGE_BYTES);
    off += (uint64_t)p->workers * IB_SERIES_SLOTS * sizeof(uint64_t);
    off = ALIGN_UP(off, IB_PAGE_BYTES);
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_strategy *s = ib_strategy_of(p, axis);
        if (s->check && s->check(p))
            return IB_ERR_PARAMS;
        off = layout_region(p, axis, off, &out->regions[axis]);
    }
    /* 10 ms ticks, or a multiple of them when the window would need more slots */
    uint64_t per = (uint64_t)IB_SERIES_SLOTS * IB_SERIES_TICK_NS;
    out->series_tick_ns = IB_SERIES_TICK_NS * (p->duration_ns / per + (p->duration_ns % per != 0));
    if (!out->series_tick_ns)
        out->series_tick_ns = IB_SERIES_TICK_NS;
    out->total_bytes = off;
    return IB_OK;
}

int ib_arena_init(void *base, uint64_t size, const struct ib_params *p)
{
    struct ib_layout layout;
    if (ib_layout(p, &layout) != IB_OK || layout.total_bytes > size)
        return IB_ERR_PARAMS;
    if (p->driver >= ib_driver_count() || p->lock >= ib_lock_count() ||
        p->workload >= ib_workload_count())
        return IB_ERR_PARAMS;
    if (p->allocator >= ib_allocator_count() || p->invalidation >= ib_invalidation_count() ||
        p->walker_safety >= ib_walker_safety_count())
        return IB_ERR_PARAMS;
    struct ib_header *h = ib_hdr(base);
    memset(h, 0, sizeof(*h));
    h->params = *p;
    h->layout = layout;
    h->version = ib_core_version();
    h->cs_map_loops = ib_calibrate_busy_loops(p->cs_map_ns);
    h->cs_unmap_loops = ib_calibrate_busy_loops(p->cs_unmap_ns);
    static double tsc_per_ns, timer_cost;
    if (tsc_per_ns == 0) {
        tsc_per_ns = ib_calibrate_tsc_per_ns();
        timer_cost = ib_calibrate_timer_cost_ticks();
    }
    h->tsc_per_ns = tsc_per_ns;
    h->timer_cost_ticks = timer_cost;
    memset((char *)base + layout.slots_off, 0, layout.meta_off - layout.slots_off);
    ib_pool_init(base);
    for (int axis = 0; axis < IB_AXES; axis++) {
        const struct ib_region *r = &layout.regions[axis];
        uint64_t end = r->page_off + p->pool_pages * r->page_stride;
        memset((char *)base + r->shared_off, 0, end - r->shared_off);
        const struct ib_strategy *s = ib_strategy_of(p, axis);
        if (s->init)
            s->init(base);
    }
    /* magic last: a worker attaching early sees an arena that is not ready */
    __atomic_store_n(&h->magic, IB_MAGIC, __ATOMIC_RELEASE);
    return IB_OK;
}

double ib_timer_cost_ns(void)
{
    return ib_calibrate_timer_cost_ticks() / ib_calibrate_tsc_per_ns();
}

uint64_t ib_now_ns(void) { return ib_clock_ns(); }

uint32_t ib_arrived(void *base)
{
    return __atomic_load_n(&ib_hdr(base)->barrier_arrive.arrived, __ATOMIC_ACQUIRE);
}

uint32_t ib_finished(void *base)
{
    return __atomic_load_n(&ib_hdr(base)->finish.finished, __ATOMIC_ACQUIRE);
}

void ib_release(void *base, uint64_t go_ns)
{
    struct ib_header *h = ib_hdr(base);
    h->barrier_go.go_ns = go_ns;
    /* release: go_ns is visible to every worker that sees go */
    __atomic_store_n(&h->barrier_go.go, 1, __ATOMIC_RELEASE);
}

void ib_abort(void *base) { __atomic_store_n(&ib_hdr(base)->abort_flag.v, 1, __ATOMIC_SEQ_CST); }

int ib_read_counters(void *base, uint32_t worker, struct ib_counters *out)
{
    if (worker >= ib_hdr(base)->params.workers)
        return IB_ERR_PARAMS;
    *out = ib_slot_of(base, worker)->counters;
    return IB_OK;
}

uint64_t ib_read_series(void *base, uint32_t worker, uint64_t *out, uint64_t cap)
{
    if (worker >= ib_hdr(base)->params.workers)
        return 0;
    uint64_t n = ib_slot_of(base, worker)->counters.series_ticks;
    n = n < cap ? n : cap;
    n = n < IB_SERIES_SLOTS ? n : IB_SERIES_SLOTS;
    memcpy(out, ib_series_of(base, worker), n * sizeof(uint64_t));
    return n;
}

int ib_read_histograms(void *base, uint32_t worker, uint64_t *map_out, uint64_t *unmap_out)
{
    if (worker >= ib_hdr(base)->params.workers)
        return IB_ERR_PARAMS;
    memcpy(map_out, ib_hist_of(base, worker, 0), IB_HIST_BUCKETS * sizeof(uint64_t));
    memcpy(unmap_out, ib_hist_of(base, worker, 1), IB_HIST_BUCKETS * sizeof(uint64_t));
    return IB_OK;
}
