/* Walkers: debugfs-style dumps of the whole IO page table, racing with the workers' unmaps.
 *
 * A pass reads every present entry from the root down, following tables, as the VT-d
 * domain_translation_struct dump does. Every table read is checked like a seqlock reader:
 * the page's generation (odd while free; it moves on every free and every reuse) is read
 * before and after; a change, or an odd value, means the walker read a table page that was
 * freed, or freed and reused, while it was reading it. Those reads are counted, never
 * followed outside the pool, never fatal. A reuse that completes between reading the parent
 * entry and the child's first generation read escapes the check, so the count is a lower
 * bound.
 *
 * What keeps a pass and a free apart is the point's walker-safety mode (walkers/NAME.c, one
 * file each, registered in walkers/modes.def): its enter and leave hooks run around each pass.
 */
#include <errno.h>
#include <time.h>

#include "clock.h"
#include "guard.h"
#include "pgtable.h"
#include "reclaim.h"
#include "strategy.h"
#include "walkstate.h"

struct pass {
    void *base;
    char *pages;
    uint32_t *gen;
    uint64_t npages;
    struct ib_walker_counters *c;
    uint32_t before[IB_LEVELS]; /* the generation of the table being read at each level */
    uint64_t read[IB_LEVELS];   /* present entries read from it so far */
};

#define IB_WALKER_MODE_ENTRY(m) extern const struct ib_walker_mode ib_walker_mode_##m;
#include "walkers/modes.def"
#undef IB_WALKER_MODE_ENTRY

#define IB_WALKER_MODE_ENTRY(m) &ib_walker_mode_##m,
static const struct ib_walker_mode *const modes[] = {
#include "walkers/modes.def"
};
#undef IB_WALKER_MODE_ENTRY

#define IB_WALKER_MODES (sizeof(modes) / sizeof(modes[0]))

const struct ib_walker_mode *ib_walker_mode_of(uint32_t walker_safety)
{
    return modes[walker_safety < IB_WALKER_MODES ? walker_safety : 0];
}

uint32_t ib_walker_safety_count(void) { return IB_WALKER_MODES; }

const struct ib_about *ib_walker_safety_about(uint32_t i)
{
    return i < IB_WALKER_MODES ? &modes[i]->about : 0;
}

static void walk_state_size(const struct ib_params *p, struct ib_region_size *out)
{
    out->shared = sizeof(struct ib_walk_state) + p->walkers * sizeof(struct ib_walker_slot);
    out->per_worker = 0;
    out->per_page = sizeof(struct ib_limbo_mark);
}

static void walk_state_init(void *base)
{
    struct ib_walk_state *s = ib_walk_state(base);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    /* robust: a walker that dies holding it hands the next locker EOWNERDEAD, not a hang */
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->group_mutex.m, &a);
    pthread_mutexattr_destroy(&a);
    s->epoch.v = 1;
    s->limbo.head = s->limbo.tail = IB_NIL;
}

/* deferred-free: freed tables still waiting in limbo are held out of the pool */
static void walk_state_audit(void *base, struct ib_audit *a)
{
    ib_audit_held_pages(a, ib_walk_state(base)->limbo.head, &ib_audit_result_of(a)->limbo_pages);
}

static int walk_state_check(const struct ib_params *p)
{
    return p->walker_safety >= IB_WALKER_MODES || p->walkers > 64;
}

/* deferred-free: a table freed during a walker's pass stays out of the pool until the pass
 * ends, so as many tables again can be waiting in limbo as the table itself holds */
static uint64_t walk_state_pool_held(const struct ib_params *p, uint64_t pages)
{
    return p->walkers && ib_walker_mode_of(p->walker_safety)->defers_frees ? pages : 0;
}

const struct ib_strategy ib_walker_strategy = {
    .size = walk_state_size,
    .check = walk_state_check,
    .init = walk_state_init,
    .audit = walk_state_audit,
    .pool_held = walk_state_pool_held,
};

int ib_read_walker_counters(void *base, uint32_t walker, struct ib_walker_counters *out)
{
    if (walker >= ib_hdr(base)->params.walkers)
        return IB_ERR_PARAMS;
    *out = ib_walker_slot_of(base, walker)->counters;
    return IB_OK;
}

const char *ib_walker_safety_name(uint32_t i)
{
    return i < IB_WALKER_MODES ? modes[i]->name : 0;
}

/* Every table read is checked like a seqlock reader: its generation before its first entry
 * and after its last (and everything below it). */
static void pass_enter(void *v, uint32_t index, int level)
{
    struct pass *p = v;
    /* acquire: the generation is read before any entry of the page (seqlock reader) */
    p->before[level] = __atomic_load_n(&p->gen[index], __ATOMIC_ACQUIRE);
    p->read[level] = 0;
    p->c->tables_read++;
}

static uint32_t pass_entry(void *v, int level, uint64_t pfn, uint64_t e)
{
    struct pass *p = v;
    p->read[level]++;
    if (level == 0 || !ib_pte_is_table(e))
        return IB_NIL;
    uint64_t child = ib_pte_target(e);
    if (child == IB_ROOT || child >= p->npages) {
        p->c->corrupt_reads++; /* garbage from a reused page: never follow it out */
        return IB_NIL;
    }
    return (uint32_t)child;
}

static void pass_leave(void *v, uint32_t index, int level)
{
    struct pass *p = v;
    /* acquire fence: every entry above was read before the generation is read again */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint32_t after = __atomic_load_n(&p->gen[index], __ATOMIC_RELAXED);
    p->c->entries_read += p->read[level];
    if ((p->before[level] & 1u) || after != p->before[level]) {
        p->c->uaf_tables++;
        p->c->uaf_reads += p->read[level];
    }
}

static void read_table(struct pass *p)
{
    const struct ib_strategy *format = ib_table_format(&ib_hdr(p->base)->params);
    if (format && format->walk_pass)
        format->walk_pass(p->base, p->c); /* a table in its own format walks itself */
    else
        ib_pt_visit(p->pages, p, pass_enter, pass_entry, pass_leave);
}

static void one_pass(struct pass *p, uint32_t walker, const struct ib_walker_mode *mode)
{
    uint64_t t0 = ib_clock_ns();
    if (mode->enter)
        mode->enter(p->base, walker);
    uint64_t t1 = ib_clock_ns();
    p->c->wait_ns += t1 - t0; /* the mode's lock or announcement, as the walker waited for it */
    read_table(p);
    if (mode->leave)
        mode->leave(p->base, walker);
    uint64_t ns = ib_clock_ns() - t1;
    p->c->passes++;
    p->c->pass_ns_total += ns;
    p->c->pass_ns_max = ns > p->c->pass_ns_max ? ns : p->c->pass_ns_max;
}

int ib_walker_run(void *base, uint32_t walker)
{
    struct ib_header *h = ib_hdr(base);
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != IB_MAGIC ||
        h->version != ib_core_version() || walker >= h->params.walkers)
        return IB_ERR_PARAMS;
    for (uint64_t off = 0; off < h->layout.total_bytes; off += IB_PAGE_BYTES)
        __atomic_fetch_or((uint64_t *)((char *)base + off), 0, __ATOMIC_RELAXED); /* prefault */
    struct ib_walker_counters c = {0};
    struct pass p = {.base = base,
                     .pages = (char *)base + h->layout.pages_off,
                     .gen = ib_gen(base),
                     .npages = h->params.pool_pages,
                     .c = &c};
    /* acq_rel: arrive with the workers; the parent releases everyone at once */
    __atomic_fetch_add(&h->barrier_arrive.arrived, 1, __ATOMIC_ACQ_REL);
    unsigned spins = 0;
    while (!__atomic_load_n(&h->barrier_go.go, __ATOMIC_ACQUIRE)) {
        cpu_relax();
        if ((++spins & 1023u) == 0 && ib_aborted(base))
            return IB_ERR_ABORTED;
    }
    while (ib_clock_ns() < h->barrier_go.go_ns) /* start with the workers (worker.c) */
        cpu_relax();
    c.start_ns = ib_clock_ns();
    /* a timed run's walkers stop when the counted window closes: the workers' uncounted tail
     * (finishing the phase they are in) then runs at full speed, which under the exclusive
     * guard could otherwise take one op per pass; a fixed-work run has no window */
    const uint64_t stop_ns = h->params.cycles ? UINT64_MAX
                                              : h->barrier_go.go_ns + h->params.warmup_ns +
                                                    h->params.duration_ns;
    /* acquire: pairs with each worker's release of finished; walk until all have */
    while (__atomic_load_n(&h->finish.finished, __ATOMIC_ACQUIRE) < h->params.workers &&
           ib_clock_ns() < stop_ns) {
        if (ib_aborted(base))
            ib_exit_aborted();
        one_pass(&p, walker, ib_walker_mode_of(h->params.walker_safety));
        if (h->params.walker_gap_ns) {
            /* a dump now and then, not back to back: the CPU is free meanwhile */
            struct timespec gap = {(time_t)(h->params.walker_gap_ns / 1000000000ull),
                                   (long)(h->params.walker_gap_ns % 1000000000ull)};
            nanosleep(&gap, 0);
        }
    }
    c.end_ns = ib_clock_ns();
    ib_walker_slot_of(base, walker)->counters = c;
    return IB_OK;
}
