/* rcache: per-CPU magazine caches in front of the global tree (Peleg, "iommu/iova: introduce
 * per-cpu caching to iova allocation", v4.7; after Bonwick and Adams' magazines).
 *
 * Per size class (1..32 pages) each CPU has a `loaded` and a `prev` magazine of 127 pfns.
 * alloc: pop loaded; else swap with a non-empty prev; else take a full magazine from the depot
 * (under the class's depot lock), giving back the empty one; else miss -> the tree.
 * free: push loaded; else swap with a non-full prev; else hand the full loaded to the depot and
 * continue with an empty magazine. Sizes above 32 pages always use the tree.
 *
 * depot bounded (before v6.7): at most 32 full magazines; a CPU that finds it full returns its
 * magazine's 127 pfns to the tree under the tree lock.
 * depot list (v6.7, "iommu/iova: Make the rcache depot scale better"): unbounded; the kernel
 * trims one magazine back to the tree every 100 ms while the depot holds more magazines than
 * CPUs. There is no timer thread here, so the trim runs inline: each push that leaves the
 * depot above `workers` magazines returns one magazine to the tree. That keeps the depot at
 * most `workers` deep at all times, tighter than the kernel between two ticks.
 *
 * Magazines live in the arena (a fixed number per class, see ib_layout); every magazine is in
 * exactly one place: a CPU's loaded or prev, the depot's full list, or its empty list.
 */
#include "../lockcore.h"
#include "iova.h"

#define NIL IB_NIL

static inline void depot_lock(struct ib_ctx *x, struct ib_depot *d)
{
    ib_lock_counted(x, &d->lock, &x->c.depot_lock_acquisitions);
}

/* Returns a magazine's pfns to the tree under one tree-lock hold (iova_magazine_free_pfns). */
static void mag_free_pfns(struct ib_ctx *x, struct ib_mag *m)
{
    ib_iova_lock(x);
    for (uint32_t i = 0; i < m->size; i++)
        if (ib_iova_tree_free_locked(x, m->pfns[i]))
            x->c.iova_bad_frees++;
    ib_iova_unlock(x);
    x->c.iova_fallbacks += m->size;
    x->c.depot_trims++;
    m->size = 0;
}

static uint64_t rcache_get(struct ib_ctx *x, uint32_t order)
{
    struct ib_cpu_rcache *cpu = x->own[IB_AXIS_ALLOCATOR];
    struct ib_mag *mags = ib_mags(x->base);
    struct ib_mag *loaded = &mags[cpu->loaded[order]];
    if (loaded->size == 0) {
        uint32_t prev = cpu->prev[order];
        if (mags[prev].size != 0) {
            cpu->prev[order] = cpu->loaded[order];
            cpu->loaded[order] = prev;
        } else {
            struct ib_depot *d = &ib_iova_region(x->base)->depot[order];
            /* unlocked peek: a stale zero only costs one miss, a stale non-zero one lock */
            if (__atomic_load_n(&d->count, __ATOMIC_RELAXED) == 0)
                return 0;
            depot_lock(x, d);
            uint32_t full = d->full_head;
            if (full != NIL) {
                d->full_head = mags[full].next;
                /* relaxed atomic store under the lock: pairs with the unlocked peek above */
                __atomic_store_n(&d->count, d->count - 1, __ATOMIC_RELAXED);
                mags[cpu->loaded[order]].next = d->empty_head;
                d->empty_head = cpu->loaded[order];
                cpu->loaded[order] = full;
            }
            ib_unlock(&d->lock);
            if (full == NIL)
                return 0;
            x->c.depot_pops++;
        }
        loaded = &mags[cpu->loaded[order]];
    }
    return loaded->pfns[--loaded->size];
}

static void rcache_put(struct ib_ctx *x, uint32_t order, uint64_t pfn)
{
    struct ib_cpu_rcache *cpu = x->own[IB_AXIS_ALLOCATOR];
    struct ib_mag *mags = ib_mags(x->base);
    struct ib_mag *loaded = &mags[cpu->loaded[order]];
    if (loaded->size == IB_MAG_SIZE) {
        uint32_t prev = cpu->prev[order];
        if (mags[prev].size != IB_MAG_SIZE) {
            cpu->prev[order] = cpu->loaded[order];
            cpu->loaded[order] = prev;
        } else {
            struct ib_depot *d = &ib_iova_region(x->base)->depot[order];
            uint32_t full = cpu->loaded[order], trim = NIL, overflow = 0;
            uint32_t cap = x->hdr->params.depot == 0 ? 32u : x->hdr->params.workers;
            depot_lock(x, d);
            if (d->count >= 32u && x->hdr->params.depot == 0) {
                overflow = 1; /* bounded and full: this magazine goes back to the tree */
            } else if (d->empty_head == NIL) {
                overflow = 1; /* no spare magazine (cannot happen with ib_layout's sizing) */
            } else {
                mags[full].next = d->full_head;
                d->full_head = full;
                __atomic_store_n(&d->count, d->count + 1, __ATOMIC_RELAXED); /* see the peek */
                cpu->loaded[order] = d->empty_head;
                d->empty_head = mags[d->empty_head].next;
                x->c.depot_pushes++;
                if (d->count > cap) { /* list: the inline trim of one magazine */
                    trim = d->full_head; /* iova_depot_pop: the head */
                    d->full_head = mags[trim].next;
                    __atomic_store_n(&d->count, d->count - 1, __ATOMIC_RELAXED); /* the peek */
                }
            }
            ib_unlock(&d->lock);
            if (overflow) {
                mag_free_pfns(x, &mags[full]);
            } else if (trim != NIL) {
                mag_free_pfns(x, &mags[trim]);
                depot_lock(x, d);
                mags[trim].next = d->empty_head;
                d->empty_head = trim;
                ib_unlock(&d->lock);
            }
        }
        loaded = &mags[cpu->loaded[order]];
    }
    loaded->pfns[loaded->size++] = pfn;
}

static uint64_t rcache_alloc(struct ib_ctx *x, uint32_t pages)
{
    uint32_t order = ib_iova_order(pages);
    if (order >= IB_RCACHE_ORDERS) {
        x->c.iova_fallbacks++;
        return ib_iova_tree_alloc(x, pages);
    }
    uint64_t pfn = rcache_get(x, order);
    if (pfn) {
        x->c.rcache_hits++;
        return pfn;
    }
    x->c.rcache_misses++;
    x->c.iova_fallbacks++;
    return ib_iova_tree_alloc(x, 1ull << order);
}

static void rcache_free(struct ib_ctx *x, uint64_t pfn, uint32_t pages)
{
    uint32_t order = ib_iova_order(pages);
    if (order >= IB_RCACHE_ORDERS) {
        x->c.iova_fallbacks++;
        ib_iova_tree_free(x, pfn);
        return;
    }
    rcache_put(x, order, pfn);
}

void ib_rcache_init(void *base)
{
    struct ib_iova_region *h = ib_iova_region(base);
    struct ib_mag *mags = ib_mags(base);
    uint32_t per = (uint32_t)h->geo.mags_per_order, workers = ib_hdr(base)->params.workers;
    for (uint32_t order = 0; order < IB_RCACHE_ORDERS; order++) {
        struct ib_depot *d = &h->depot[order];
        d->lock = 0;
        d->full_head = NIL;
        d->empty_head = NIL;
        d->count = 0;
        uint32_t first = order * per;
        for (uint32_t i = 0; i < per; i++) {
            mags[first + i].size = 0;
            mags[first + i].next = NIL;
        }
        if (!per)
            continue;
        for (uint32_t w = 0; w < workers; w++) {
            ib_cpu_rcache_of(base, w)->loaded[order] = first + 2 * w;
            ib_cpu_rcache_of(base, w)->prev[order] = first + 2 * w + 1;
        }
        for (uint32_t i = per; i-- > 2 * workers;) {
            mags[first + i].next = d->empty_head;
            d->empty_head = first + i;
        }
    }
}

const struct ib_allocator ib_allocator_rcache = {
    "rcache",
    {"per-CPU magazines of 127 IOVAs per size class in front of global", "depot", "", 0},
    &ib_iova_strategy,
    rcache_alloc,
    rcache_free,
};
