#include "pool.h"
#include "strategy.h"

#include "clock.h"
#include "lockcore.h"
#include "reclaim.h"
#include "walkstate.h"

/* The shared list's lock: held only to move a batch of pages, never across a walk. */
static void pool_lock(struct ib_ctx *x)
{
    ib_lock_counted(x, &x->hdr->pool.lock, &x->c.pool_lock_acquisitions);
}

static void pool_unlock(struct ib_ctx *x) { ib_unlock(&x->hdr->pool.lock); }

void ib_pool_init(void *base)
{
    struct ib_header *h = ib_hdr(base);
    uint32_t *meta = ib_meta(base);
    uint64_t n = h->params.pool_pages;
    /* page 0 is the root; the rest start on the shared list in index order */
    for (uint64_t i = 1; i < n; i++)
        meta[i] = i + 1 < n ? (uint32_t)(i + 1) : IB_NIL;
    meta[0] = IB_NIL;
    /* generations: odd while a page is free, even while it is a table (the root, page 0) */
    uint32_t *gen = ib_gen(base);
    for (uint64_t i = 0; i < n; i++)
        gen[i] = i ? 1 : 0;
    h->pool.head = n > 1 ? 1 : IB_NIL;
    h->pool.count = n - 1;
    memset(ib_page(base, 0), 0, IB_PAGE_BYTES);
    /* every worker starts with a batch of its own, so the first table installs of a run are
     * not serialised on the shared list's lock (which would hide the start-up race) */
    for (uint32_t w = 0; w < h->params.workers; w++) {
        struct ib_slot *s = ib_slot_of(base, w);
        s->free_head = IB_NIL;
        s->free_count = 0;
        for (int i = 0; i < IB_POOL_BATCH && h->pool.head != IB_NIL; i++) {
            uint32_t page = h->pool.head;
            h->pool.head = meta[page];
            h->pool.count--;
            meta[page] = s->free_head;
            s->free_head = page;
            s->free_count++;
        }
    }
}

static void pool_refill(struct ib_ctx *x)
{
    struct ib_slot *s = x->slot;
    pool_lock(x);
    for (int i = 0; i < IB_POOL_BATCH && x->hdr->pool.head != IB_NIL; i++) {
        uint32_t page = x->hdr->pool.head;
        x->hdr->pool.head = x->meta[page];
        x->hdr->pool.count--;
        x->meta[page] = s->free_head;
        s->free_head = page;
        s->free_count++;
    }
    pool_unlock(x);
    x->c.pool_refills++;
}

static void pool_spill(struct ib_ctx *x)
{
    struct ib_slot *s = x->slot;
    pool_lock(x);
    for (int i = 0; i < IB_POOL_BATCH; i++) {
        uint32_t page = s->free_head;
        s->free_head = x->meta[page];
        s->free_count--;
        x->meta[page] = x->hdr->pool.head;
        x->hdr->pool.head = page;
        x->hdr->pool.count++;
    }
    pool_unlock(x);
}

/* deferred-free: the pool is dry but freed tables wait in limbo for the walkers. Wait with
 * them, as a synchronize_rcu() would, rather than fail the allocation. Pages a reclaimer pops
 * go onto that reclaimer's own free list (and reach the shared list only when it spills), so
 * this gives up once nothing is left in limbo and nobody is between popping and freeing. */
static int pool_wait_for_limbo(struct ib_ctx *x)
{
    while (x->slot->free_count == 0) {
        /* acquire: pairs with the release decrement in limbo_pop_safe, so a reclaimer that
         * emptied limbo is seen counted in `reclaiming`; and keeps the load below after it */
        uint64_t in_limbo = __atomic_load_n(&x->walk->limbo.count, __ATOMIC_ACQUIRE);
        /* acquire: pairs with the reclaimer's release decrement: its pages are freed */
        if (in_limbo == 0 && __atomic_load_n(&x->walk->limbo.reclaiming, __ATOMIC_ACQUIRE) == 0)
            return 0;
        ib_reclaim(x, 1);
        pool_refill(x);
    }
    return 1;
}

uint32_t ib_pool_alloc(struct ib_ctx *x)
{
    struct ib_slot *s = x->slot;
    if (s->free_count == 0)
        pool_refill(x);
    if (s->free_count == 0 && !pool_wait_for_limbo(x))
        return IB_NIL;
    uint32_t page = s->free_head;
    s->free_head = x->meta[page];
    s->free_count--;
    /* seqlock writer: the generation moves before the page is rewritten, so a walker still
     * reading this page as the table it used to be sees the reuse */
    __atomic_store_n(&x->gen[page], x->gen[page] + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memset(ib_table(x, page), 0, IB_PAGE_BYTES);
    return page;
}

void ib_pool_free(struct ib_ctx *x, uint32_t page)
{
    struct ib_slot *s = x->slot;
    /* release: the page was unlinked from the table before its generation says free */
    __atomic_store_n(&x->gen[page], x->gen[page] + 1, __ATOMIC_RELEASE);
    x->meta[page] = s->free_head;
    s->free_head = page;
    s->free_count++;
    if (s->free_count >= 2 * IB_POOL_BATCH)
        pool_spill(x);
}

uint64_t ib_pool_pages_out(void *base)
{
    struct ib_header *h = ib_hdr(base);
    uint32_t *meta = ib_meta(base);
    uint64_t free_pages = 0, n = h->params.pool_pages;
    /* bounded: a page freed twice can make a list cyclic */
    for (uint32_t p = h->pool.head; p != IB_NIL && free_pages <= n; p = meta[p])
        free_pages++;
    for (uint32_t w = 0; w < h->params.workers; w++)
        for (uint32_t p = ib_slot_of(base, w)->free_head; p != IB_NIL && free_pages <= n;
             p = meta[p])
            free_pages++;
    return free_pages >= n - 1 ? 0 : n - 1 - free_pages;
}
