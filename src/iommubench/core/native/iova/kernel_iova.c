/* kernel-iova: the kernel's own drivers/iommu/iova.c as the dma workload's IOVA allocator:
 * alloc_iova_fast and free_iova_fast, with its per-CPU rcache (loaded and prev magazines of
 * IOVA_MAG_SIZE pfns per size class), its depot (a list trimmed by delayed work since v6.7,
 * "iommu/iova: Make the rcache depot scale better"; 32 magazines per class on 6.1) and the
 * rbtree of lib/rbtree.c under iova_rbtree_lock. Compiled unmodified with the project's shim
 * into the object built on this machine (core/kernel), loaded before the workers fork.
 *
 * - Its spinlocks, kmem_caches (struct iova, the magazines) and per-CPU areas live in the
 *   shim's heap, which is this allocator's region of the arena (the "env").
 * - The worker index is the CPU (ibk_set_cpu on a worker's first call): the rcache a worker
 *   hits is its own CPU's, and remote completion frees into another CPU's magazines.
 * - The depot's trimming work (iova_depot_work_func, 100 ms after a push) runs on a timer the
 *   harness owns: every worker's poll, from its own loop every few hundred I/Os, calls
 *   ibk_tick, which runs each delayed work whose time has come, on that worker's CPU. So the
 *   trim runs within one poll of when the kernel's workqueue would run it.
 * - The calls go straight to the kernel's functions; around each, this file reads its CPU's
 *   counts in the two kmem_caches, so it knows without touching the kernel's structures what
 *   the call did: a struct iova allocated is an rcache miss (the tree), one freed is an IOVA
 *   back in the tree, a magazine allocated is a full one pushed to the depot, a magazine freed
 *   an empty one traded for a depot magazine (or, in a tick, a depot trim). 6.1 kmallocs its
 *   magazines: there the depot counts stay 0.
 * - The audit (ibk_iova_audit): no two ranges in the tree overlap; every CPU's magazines, the
 *   depot and the kernel's flush return every range, leaving the tree empty (every freed range
 *   was back); the depot returns whole magazines and, on 6.12, as many as the magazine cache
 *   says it held; any kernel WARN fails the point.
 *
 * A kernel page table loaded from the same object shares its process globals (the current env,
 * the CPU): each call here sets the current env to this allocator's and puts the previous back.
 */
#include <dlfcn.h>
#include <string.h>

#include "../inval/inval.h"
#include "../pgtables/ibk.h"
#include "../strategy.h"
#include "iova.h"

#define KIOVA_MAX_CPUS 64 /* the shim's NR_CPUS */
#define KIOVA_ENV_BASE (1ull << 20)

struct kiova_state {
    struct ibk_env *env;
    struct ibk_iovad *d;
    struct ibk_env **slot;
    unsigned long (*alloc)(struct ibk_iovad *, unsigned long, unsigned long, int);
    void (*free)(struct ibk_iovad *, unsigned long, unsigned long);
    int (*tick)(struct ibk_env *, uint64_t);
    void (*set_cpu)(int);
    void (*lock_stats)(struct ibk_env *, int, uint64_t *);
    int (*audit)(struct ibk_iovad *, struct ibk_iova_audit *);
    void (*destroy)(struct ibk_iovad *);
    void (*abandon)(struct ibk_iovad *);
    void (*env_stats)(struct ibk_env *, struct ibk_stats *);
    uint64_t limit_pfn;
    uint64_t env_bytes;
    uint32_t attached;
};

/* A worker's bytes: where its CPU's counts are, and the lock counts it last saw. */
struct kiova_cpu {
    const uint64_t *tree_allocs, *tree_frees, *mag_allocs, *mag_frees;
    uint64_t lock[4];
} IB_ALIGNED;

static const uint64_t kiova_zero; /* a count the object does not keep (6.1's magazines) */
static int kiova_cpu_set = -1;    /* the CPU this process told the object it is */

static inline struct kiova_state *kiova(struct ib_ctx *x)
{
    return (struct kiova_state *)x->shared[IB_AXIS_ALLOCATOR];
}

static inline __attribute__((always_inline)) struct ibk_env *kiova_enter(struct ib_ctx *x,
                                                                         struct kiova_state *s)
{
    if (__builtin_expect(kiova_cpu_set != (int)x->worker, 0)) {
        s->set_cpu((int)x->worker);
        kiova_cpu_set = (int)x->worker;
    }
    struct ibk_env *prev = *s->slot;
    *s->slot = s->env;
    return prev;
}

static uint64_t kiova_alloc(struct ib_ctx *x, uint32_t pages)
{
    struct kiova_state *s = kiova(x);
    const struct kiova_cpu *c = x->own[IB_AXIS_ALLOCATOR];
    struct ibk_env *prev = kiova_enter(x, s);
    const uint64_t ta = *c->tree_allocs, tf = *c->tree_frees, mf = *c->mag_frees;
    /* iommu_dma_alloc_iova: flush_rcache, so a full space flushes every CPU's cache first */
    unsigned long pfn = s->alloc(s->d, pages, s->limit_pfn, 1);
    *s->slot = prev;
    const uint64_t missed = *c->tree_allocs - ta;
    if (ib_iova_order(pages) < IB_RCACHE_ORDERS) {
        if (pfn && !missed)
            x->c.rcache_hits++;
        else
            x->c.rcache_misses++;
    }
    x->c.iova_fallbacks += missed + (*c->tree_frees - tf);
    if (pfn)
        x->c.depot_pops += *c->mag_frees - mf; /* an empty magazine traded for a full one */
    else
        x->c.depot_trims += *c->mag_frees - mf; /* the flush of a full space */
    return pfn;
}

static void kiova_free(struct ib_ctx *x, uint64_t pfn, uint32_t pages)
{
    struct kiova_state *s = kiova(x);
    const struct kiova_cpu *c = x->own[IB_AXIS_ALLOCATOR];
    struct ibk_env *prev = kiova_enter(x, s);
    const uint64_t tf = *c->tree_frees, ma = *c->mag_allocs;
    s->free(s->d, pfn, pages);
    *s->slot = prev;
    x->c.iova_fallbacks += *c->tree_frees - tf;
    x->c.depot_pushes += *c->mag_allocs - ma; /* a full magazine pushed, a new one loaded */
}

/* The harness's timer: due delayed work (the depot trim) runs here, on this worker's CPU. */
static void kiova_poll(struct ib_ctx *x, uint64_t now_ns)
{
    struct kiova_state *s = kiova(x);
    struct kiova_cpu *c = x->own[IB_AXIS_ALLOCATOR];
    struct ibk_env *prev = kiova_enter(x, s);
    const uint64_t tf = *c->tree_frees, mf = *c->mag_frees;
    if (s->tick(s->env, now_ns)) {
        x->c.depot_trims += *c->mag_frees - mf;
        x->c.iova_fallbacks += *c->tree_frees - tf;
    }
    /* every spinlock iova.c takes (the tree's, the depot's, the per-CPU rcache's) */
    uint64_t l[4];
    s->lock_stats(s->env, (int)x->worker, l);
    *s->slot = prev;
    x->c.iova_lock_acquisitions += l[0] - c->lock[0];
    x->c.iova_lock_contended += l[1] - c->lock[1];
    x->c.iova_lock_wait_ns += l[2] - c->lock[2];
    if (l[3] > x->c.iova_lock_max_wait_ns)
        x->c.iova_lock_max_wait_ns = l[3];
    memcpy(c->lock, l, sizeof(l));
}

/* ---- arena state ---------------------------------------------------------------------------- */
/* The shim's heap for the point: every range that can be allocated at once (every I/O in
 * flight, every flush-queue entry, the CPUs' magazines, the depot at its trim threshold) as a
 * 64-byte struct iova, the magazines (1 KiB each), what the kmem_caches' per-CPU free lists
 * can strand, half as much again, and the env's own pages. */
static uint64_t kiova_env_bytes(const struct ib_params *p)
{
    const uint64_t w = p->workers, mag = IB_MAG_SIZE;
    const uint64_t flight = w * ((uint64_t)p->queues_per_worker * p->queue_depth + IB_FQ_SIZE);
    const uint64_t cached = IB_RCACHE_ORDERS * mag * (2 * w + w + 2);
    const uint64_t ranges = flight + cached + 64;
    const uint64_t mags = IB_RCACHE_ORDERS * (2 * w + w + 2) + ranges / mag + 16;
    const uint64_t stranded = w * 256 * (64 + 1024);
    const uint64_t heap = ranges * 64 + mags * 1024 + stranded;
    return (KIOVA_ENV_BASE + heap + heap / 2 + 4095) & ~4095ull;
}

static void kiova_size(const struct ib_params *p, struct ib_region_size *out)
{
    int dma = ib_workload_reads(p, "allocator");
    out->shared = dma ? 4096 + kiova_env_bytes(p) : 0; /* the state, then the env */
    out->per_worker = dma ? sizeof(struct kiova_cpu) : 0;
    out->per_page = 0;
}

/* The shim's CPUs: the worker index is the CPU, below NR_CPUS. */
static int kiova_check(const struct ib_params *p)
{
    return ib_workload_reads(p, "allocator") && (p->workers < 1 || p->workers > KIOVA_MAX_CPUS);
}

#define SYM(so, name) dlsym(so, name)

static int kiova_attach(void *base, const char *object_path)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    if (!ib_workload_reads(p, "allocator"))
        return IB_OK; /* a workload with no IOVA space: nothing to load */
    struct kiova_state *s = ib_region_shared(base, IB_AXIS_ALLOCATOR);
    void *so = object_path ? dlopen(object_path, RTLD_NOW | RTLD_LOCAL) : 0;
    if (!so)
        return IB_ERR_PARAMS;
    struct ibk_env *(*env_create)(void *, size_t, unsigned) = SYM(so, "ibk_env_create");
    struct ibk_env **(*env_slot)(void) = SYM(so, "ibk_env_slot");
    struct ibk_iovad *(*create)(struct ibk_env *, unsigned long, unsigned long) =
        SYM(so, "ibk_iova_create");
    uint64_t *(*count)(struct ibk_env *, const char *, int, int) =
        SYM(so, "ibk_kmem_cache_cpu_count");
    s->alloc = SYM(so, "ibk_iova_alloc");
    s->free = SYM(so, "ibk_iova_free");
    s->tick = SYM(so, "ibk_tick");
    s->set_cpu = SYM(so, "ibk_set_cpu");
    s->lock_stats = SYM(so, "ibk_cpu_lock_stats");
    s->audit = SYM(so, "ibk_iova_audit");
    s->destroy = SYM(so, "ibk_iova_destroy");
    s->abandon = SYM(so, "ibk_iova_abandon");
    s->env_stats = SYM(so, "ibk_env_stats");
    if (!env_create || !env_slot || !create || !count || !s->alloc || !s->free || !s->tick ||
        !s->set_cpu || !s->lock_stats || !s->audit || !s->destroy || !s->abandon || !s->env_stats)
        return IB_ERR_PARAMS; /* an object older than this file */
    s->slot = env_slot();
    struct ibk_env *prev = *s->slot;
    s->env_bytes = kiova_env_bytes(p);
    s->env = env_create((char *)s + 4096, s->env_bytes, p->workers);
    s->d = s->env ? create(s->env, IB_PAGE_BYTES, IB_IOVA_START_PFN) : 0;
    if (!s->d) {
        *s->slot = prev;
        return IB_ERR_PARAMS;
    }
    uint32_t bits = p->dma_bits < 48 ? p->dma_bits : 48;
    s->limit_pfn = (1ull << (bits - 12)) - 1; /* inclusive, as alloc_iova_fast takes it */
    for (uint32_t w = 0; w < p->workers; w++) {
        struct kiova_cpu *c = ib_region_worker(base, IB_AXIS_ALLOCATOR, w);
        const uint64_t *m_alloc = count(s->env, "iommu_iova_magazine", (int)w, 0);
        const uint64_t *m_free = count(s->env, "iommu_iova_magazine", (int)w, 1);
        c->tree_allocs = count(s->env, "iommu_iova", (int)w, 0);
        c->tree_frees = count(s->env, "iommu_iova", (int)w, 1);
        c->mag_allocs = m_alloc ? m_alloc : &kiova_zero;
        c->mag_frees = m_free ? m_free : &kiova_zero;
        if (!c->tree_allocs || !c->tree_frees) {
            *s->slot = prev;
            return IB_ERR_PARAMS;
        }
    }
    *s->slot = prev;
    s->attached = 1;
    return IB_OK;
}

/* Parent, before the arena goes. After the audit there is nothing left to do; a point that
 * never reached it leaves iova.c's process state pointing into this arena, reset here. */
static void kiova_detach(void *base)
{
    struct kiova_state *s = ib_region_shared(base, IB_AXIS_ALLOCATOR);
    if (!ib_workload_reads(&ib_hdr(base)->params, "allocator") || !s->attached)
        return;
    s->abandon(s->d);
    s->attached = 0;
}

static void kiova_audit(void *base, struct ib_audit *a)
{
    struct kiova_state *s = ib_region_shared(base, IB_AXIS_ALLOCATOR);
    struct ib_audit_result *r = ib_audit_result_of(a);
    if (!ib_workload_reads(&ib_hdr(base)->params, "allocator"))
        return;
    if (!s->attached) {
        ib_audit_failed(a);
        return;
    }
    struct ibk_env *prev = *s->slot;
    *s->slot = s->env;
    struct ibk_iova_audit k;
    s->audit(s->d, &k);
    r->iova_ranges += k.ranges;
    r->iova_cached += k.cpu_cached + k.depot_cached;
    r->iova_leaks += k.leaks;
    r->iova_double_allocs += k.overlaps;
    r->iova_corrupt += k.objects_mismatch + k.partial_magazines + k.magazine_mismatch;
    /* put_iova_domain and the last iova_cache_put: a kmem_cache not empty by then WARNs */
    s->destroy(s->d);
    s->attached = 0;
    struct ibk_stats st;
    s->env_stats(s->env, &st);
    r->kernel_warns += st.warns + st.bugs;
    *s->slot = prev;
}

static const struct ib_strategy kiova_state = {
    .size = kiova_size,
    .check = kiova_check,
    .audit = kiova_audit,
};

const struct ib_allocator ib_allocator_kernel_iova = {
    "kernel-iova",
    {"the kernel's own iova.c (per-CPU rcache, depot, rbtree), built from a kernel tree", "", "",
     0},
    &kiova_state,
    kiova_alloc,
    kiova_free,
    kiova_poll,
    1,
    kiova_attach,
    kiova_detach,
};
