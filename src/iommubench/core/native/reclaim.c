#include "reclaim.h"

#include <sched.h>

#include "clock.h"
#include "lockcore.h"
#include "pool.h"
#include "walkstate.h"

static int deferred(const struct ib_ctx *x)
{
    const struct ib_params *p = &x->hdr->params;
    return p->walkers > 0 && ib_walker_mode_of(p->walker_safety)->defers_frees;
}

void ib_epoch_enter_pass(void *base, uint32_t walker)
{
    struct ib_walk_state *h = ib_walk_state(base);
    uint64_t *announce = &ib_walker_slot_of(base, walker)->announce.epoch;
    for (;;) {
        uint64_t e = __atomic_load_n(&h->epoch.v, __ATOMIC_SEQ_CST);
        /* seq_cst store, then re-check: once the epoch is seen unchanged after our
         * announcement is visible, a batch tagged later than e was detached after this
         * point, so the pass cannot reach it; a batch tagged e or earlier waits for us */
        __atomic_store_n(announce, e, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->epoch.v, __ATOMIC_SEQ_CST) == e)
            return;
    }
}

void ib_epoch_leave_pass(void *base, uint32_t walker)
{
    /* release: every read of the pass is done before a reclaimer can see us quiescent */
    __atomic_store_n(&ib_walker_slot_of(base, walker)->announce.epoch, 0, __ATOMIC_RELEASE);
}

/* Safe once no walker can still hold a pointer into the batch: each is between passes (0),
 * or announced an epoch at or after the batch's tag. */
static int grace_over(const struct ib_ctx *x, uint64_t tag)
{
    for (uint32_t w = 0; w < x->hdr->params.walkers; w++) {
        /* acquire: pairs with ib_epoch_leave_pass, so the pass's reads are over */
        uint64_t a = __atomic_load_n(&ib_walker_slot_of(x->base, w)->announce.epoch,
                                     __ATOMIC_ACQUIRE);
        if (a != 0 && a < tag)
            return 0;
    }
    return 1;
}

static void limbo_lock(struct ib_ctx *x) { ib_lock_plain(x, &x->walk->limbo.lock); }

static void limbo_unlock(struct ib_ctx *x) { ib_unlock(&x->walk->limbo.lock); }

static void limbo_push(struct ib_ctx *x, uint32_t list)
{
    struct ib_limbo_mark *marks = ib_limbo_marks(x->base);
    /* seq_cst: orders the detach stores (earlier) before any walker's announcement that
     * reads the new epoch; the tag is the epoch a safe walker must have announced */
    uint64_t tag = __atomic_add_fetch(&x->walk->epoch.v, 1, __ATOMIC_SEQ_CST);
    uint64_t now = ib_clock_ns();
    limbo_lock(x);
    while (list != IB_NIL) {
        uint32_t page = list;
        list = x->meta[page];
        marks[page].tag = tag;
        marks[page].freed_ns = now;
        x->meta[page] = IB_NIL;
        if (x->walk->limbo.tail == IB_NIL)
            x->walk->limbo.head = page;
        else
            x->meta[x->walk->limbo.tail] = page;
        x->walk->limbo.tail = page;
        /* atomic although under the lock: a dry pool reads it without the lock */
        __atomic_add_fetch(&x->walk->limbo.count, 1, __ATOMIC_RELAXED);
    }
    if (x->walk->limbo.count > x->c.limbo_pages_max)
        x->c.limbo_pages_max = x->walk->limbo.count;
    limbo_unlock(x);
}

/* Pop every page at the head of the FIFO whose grace period is over, onto `out`. A batch is
 * tagged before it takes the lock, so tags almost but not quite grow along the FIFO: stop at
 * the first batch still in its grace period rather than skip past it. */
static uint32_t limbo_pop_safe(struct ib_ctx *x)
{
    struct ib_limbo_mark *marks = ib_limbo_marks(x->base);
    uint32_t out = IB_NIL;
    uint64_t last_tag = 0;
    limbo_lock(x);
    uint64_t now = ib_clock_ns(); /* under the lock: no batch in the FIFO is younger */
    while (x->walk->limbo.head != IB_NIL) {
        uint32_t page = x->walk->limbo.head;
        if (marks[page].tag != last_tag) {
            if (!grace_over(x, marks[page].tag))
                break;
            uint64_t grace = now - marks[page].freed_ns;
            x->c.grace_periods++;
            x->c.grace_ns_total += grace;
            x->c.grace_ns_max = grace > x->c.grace_ns_max ? grace : x->c.grace_ns_max;
            last_tag = marks[page].tag;
        }
        x->walk->limbo.head = x->meta[page];
        if (x->walk->limbo.head == IB_NIL)
            x->walk->limbo.tail = IB_NIL;
        /* release: our `reclaiming` increment is visible to a dry pool that reads this count
         * (pool_wait_for_limbo); atomic although under the lock, as in limbo_push */
        __atomic_sub_fetch(&x->walk->limbo.count, 1, __ATOMIC_RELEASE);
        x->meta[page] = out;
        out = page;
    }
    limbo_unlock(x);
    return out;
}

void ib_reclaim(struct ib_ctx *x, int wait)
{
    unsigned spins = 0;
    for (;;) {
        /* acq_rel: a worker waiting on a dry pool sees either our pages in limbo or us here */
        __atomic_fetch_add(&x->walk->limbo.reclaiming, 1, __ATOMIC_ACQ_REL);
        uint32_t list = limbo_pop_safe(x);
        while (list != IB_NIL) {
            uint32_t page = list;
            list = x->meta[page];
            ib_pool_free(x, page);
        }
        /* release: the pages above are on a free list before we stop counting ourselves */
        __atomic_fetch_sub(&x->walk->limbo.reclaiming, 1, __ATOMIC_RELEASE);
        if (!wait || __atomic_load_n(&x->walk->limbo.count, __ATOMIC_RELAXED) == 0)
            return;
        /* the walker we wait for may need this very CPU to finish its pass */
        if (spins > 64)
            sched_yield();
        else
            cpu_relax();
        if ((++spins & 1023u) == 0 && ib_aborted(x->base))
            ib_exit_aborted();
    }
}

void ib_release_tables(struct ib_ctx *x, uint32_t list)
{
    if (deferred(x)) {
        limbo_push(x, list);
        ib_reclaim(x, 0);
        return;
    }
    while (list != IB_NIL) {
        uint32_t page = list;
        list = x->meta[page];
        ib_pool_free(x, page);
    }
}
