/* kernel-arm and kernel-arm-racy: the kernel's io-pgtable-arm.c as the page table (see
 * kernel_arm.h). This file is the harness's side: loading the object, the arena state, the
 * pool and TLB hooks, the (driver, lock) code, the audit's format hook (ARM LPAE entries,
 * checked by the audit's own walk and by the kernel's iova_to_phys) and the walkers' pass.
 *
 * It crosses with lockfree (the code as the kernel runs it: table installs race through the
 * kernel's cmpxchg64_relaxed) and with domain-lock under every lock (the same code serialised,
 * drivers/kernel_domain_lock.h). kernel-arm-racy is the same unmodified file built with a
 * plain read-compare-write for that cmpxchg: the negative control the audit must catch.
 */
#include <dlfcn.h>
#include <string.h>

#include "../drivers/driver.h"
#include "../drivers/locked.h"
#include "../inval/inval.h"
#include "../locks/framework.h"
#include "../strategy.h"
#include "../walkstate.h"
#include "kernel_arm.h"
#include "pgtable_kind.h"

struct ib_ctx *ib_kpt_ctx;
int ib_kpt_in_map;

const struct ib_driver *ib_driver_get(uint32_t i);
extern const struct ib_driver ib_driver_lockfree;
extern const struct ib_driver ib_driver_domain_lock;
const struct ib_lock *ib_lock_get(uint32_t i);

/* ---- the lock-free driver's code on this table ------------------------------------------ */
static inline __attribute__((always_inline)) int kpt_lockfree_map(struct ib_ctx *x, uint64_t pfn,
                                                                  uint64_t fr)
{
    ib_busy(x->cs_map_loops);
    return ib_kpt_map(x, pfn, fr, 1);
}

static inline __attribute__((always_inline)) int
kpt_lockfree_map_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages)
{
    ib_busy(x->cs_map_loops);
    return ib_kpt_map(x, pfn, ib_frame_for(pfn), pages);
}

static inline __attribute__((always_inline)) int kpt_lockfree_unmap(struct ib_ctx *x,
                                                                    uint64_t pfn, uint64_t *f)
{
    ib_busy(x->cs_unmap_loops);
    return ib_kpt_unmap(x, pfn, f);
}

static inline __attribute__((always_inline)) uint64_t
kpt_lockfree_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages)
{
    ib_busy(x->cs_unmap_loops);
    return ib_kpt_unmap_range(x, pfn, pages);
}

IB_DRIVER_IMPL(kpt_lockfree)

static const struct ib_driver_impl *kpt_impl(const struct ib_params *p)
{
    const struct ib_driver *d = ib_driver_get(p->driver);
    /* io-pgtable-arm frees a table at once: no grace period for walkers to defer to */
    if (p->walkers && ib_walker_mode_of(p->walker_safety)->defers_frees)
        return 0;
    if (d == &ib_driver_lockfree)
        return &kpt_lockfree_impl;
    if (d == &ib_driver_domain_lock)
        return ib_lock_get(p->lock)->impl[IB_LOCKED_kernel_domain_lock];
    return 0; /* table-lock, naive: they mean nothing for the kernel's own code */
}

/* ---- the pool and TLB hooks ---------------------------------------------------------------- */
static void *kpt_page_alloc(void *cookie, size_t size)
{
    struct ib_ctx *x = ib_kpt_ctx;
    (void)cookie;
    if (!x || size != IB_PAGE_BYTES)
        return 0;
    uint32_t page = ib_pool_alloc(x); /* zeroed, its generation moved */
    if (page == IB_NIL)
        return 0;
    if (ib_kpt_in_map)
        x->c.cas_attempts++;
    x->c.tables_allocated++;
    return ib_table(x, page);
}

static void kpt_page_free(void *cookie, void *table, size_t size)
{
    struct ib_ctx *x = ib_kpt_ctx;
    (void)cookie, (void)size;
    uint32_t page = (uint32_t)(((char *)table - x->pages) / IB_PAGE_BYTES);
    if (ib_kpt_in_map) {
        /* map frees only the table of an install it lost: never visible, as the model's */
        x->c.cas_failures++;
        x->c.tables_allocated--;
    } else {
        x->c.tables_freed++;
    }
    ib_pool_free(x, page);
}

static void kpt_flush_all(void *cookie)
{
    (void)cookie;
    if (ib_kpt_ctx)
        ib_kpt_ctx->c.kernel_tlb_flush_alls++;
}

/* io-pgtable-arm frees a table right after this walk-cache flush: under dma it is one
 * invalidation command of the harness's queue (inv_ns), prefault models no IOTLB */
static void kpt_flush_walk(void *cookie, unsigned long iova, size_t size, size_t granule)
{
    struct ib_ctx *x = ib_kpt_ctx;
    (void)cookie, (void)iova, (void)size, (void)granule;
    if (!x)
        return;
    x->c.kernel_tlb_flush_walks++;
    if (x->hdr->params.workload == IB_WL_dma)
        ib_invalidate(x);
}

/* ---- arena state ---------------------------------------------------------------------------- */
static void kpt_size(const struct ib_params *p, struct ib_region_size *out)
{
    (void)p;
    out->shared = 4096 + IB_KPT_ENV_BYTES; /* the state, then the object's heap */
    out->per_worker = 0;
    out->per_page = 0;
}

static int kpt_check(const struct ib_params *p) { return kpt_impl(p) == 0; }

/* a table lost to the racy control is never freed: give the pool room to show the leak */
static uint64_t kpt_racy_held(const struct ib_params *p, uint64_t pages)
{
    (void)p;
    return pages;
}

static char *kpt_env_region(struct ib_kpt_state *s) { return (char *)s + 4096; }

#define SYM(handle, name) dlsym(handle, name)

static int kpt_attach(void *base, const char *object_path)
{
    struct ib_header *h = ib_hdr(base);
    struct ib_kpt_state *s = ib_region_shared(base, IB_AXIS_DRIVER);
    void *so = dlopen(object_path, RTLD_NOW | RTLD_LOCAL);
    if (!so)
        return IB_ERR_PARAMS;
    const struct ibk_api *(*get_api)(void) = SYM(so, "ibk_get_api");
    struct ibk_env *(*env_create)(void *, size_t, unsigned) = SYM(so, "ibk_env_create");
    int (*env_window)(struct ibk_env *, void *, size_t, ibk_page_alloc_cb, ibk_page_free_cb,
                      void *) = SYM(so, "ibk_env_window");
    void (*env_gen)(struct ibk_env *, uint32_t *) = SYM(so, "ibk_env_page_gen");
    void (*direct)(struct ibk_pgtable *, struct ibk_direct *) = SYM(so, "ibk_pgtable_direct");
    void (*walker_pass)(struct ibk_pgtable *, unsigned long, size_t, size_t,
                        struct ibk_walk_counts *) = SYM(so, "ibk_walker_pass");
    void (*info_of)(struct ibk_pgtable *, struct ibk_pgtable_info *) = SYM(so, "ibk_pgtable_info");
    if (!get_api || !env_create || !env_window || !env_gen || !direct || !walker_pass || !info_of)
        return IB_ERR_PARAMS;
    const struct ibk_api *api = get_api();
    if (!api || api->version != IBK_API_VERSION)
        return IB_ERR_PARAMS;
    uint32_t cpus = h->params.workers < 64 ? h->params.workers : 64;
    s->env_bytes = IB_KPT_ENV_BYTES;
    s->env = env_create(kpt_env_region(s), IB_KPT_ENV_BYTES, cpus);
    if (!s->env)
        return IB_ERR_PARAMS;
    char *pages = (char *)base + h->layout.pages_off;
    /* phys = offset in the pool: page 0, the model's root, is never handed out */
    if (env_window(s->env, pages, h->params.pool_pages * IB_PAGE_BYTES, kpt_page_alloc,
                   kpt_page_free, 0))
        return IB_ERR_PARAMS;
    env_gen(s->env, ib_gen(base));
    /* no add_page hook: the adapter still gathers each page as the kernel's callback would,
     * and the harness invalidates per I/O (its invalidation mode), not per page */
    struct ibk_tlb_hooks hooks = {kpt_flush_all, kpt_flush_walk, 0, 0, 0};
    /* the parent allocates the pgd as worker 0, before any worker runs */
    static struct ib_ctx parent;
    ib_ctx_init(&parent, base, 0);
    ib_kpt_ctx = &parent;
    s->t = api->pgtable_create(s->env, 48, 48, &hooks);
    if (!s->t)
        return IB_ERR_POOL_EMPTY;
    direct(s->t, &s->dk);
    struct ibk_pgtable_info info;
    info_of(s->t, &info);
    s->pgd_phys = info.pgd_phys;
    if (s->dk.gather_bytes > 8 * sizeof(uint64_t))
        return IB_ERR_PARAMS;
    s->unmap_range = api->unmap_range;
    s->walker_pass = walker_pass;
    s->walk = api->walk;
    s->env_stats = api->env_stats;
    s->destroy = api->pgtable_destroy;
    const char *inval = ib_invalidation_name(h->params.invalidation);
    s->queued = h->params.workload == IB_WL_dma && inval && !strcmp(inval, "lazy");
    s->attached = 1;
    return IB_OK;
}

/* ---- the audit's format hook ---------------------------------------------------------------- */
struct kpt_audit {
    struct ib_audit *a;
    uint64_t npages;
};

static void audit_on_table(void *ctx, int level, uint64_t iova, uint64_t phys)
{
    struct kpt_audit *k = ctx;
    (void)level, (void)iova;
    ib_audit_table_page(k->a, phys >> 12);
}

static void audit_on_leaf(void *ctx, int level, uint64_t iova, uint64_t pa, uint64_t size)
{
    struct kpt_audit *k = ctx;
    (void)level;
    for (uint64_t off = 0; off < size; off += IB_PAGE_BYTES)
        ib_audit_leaf(k->a, (iova + off) >> 12, (pa + off) >> 12);
}

static void kpt_audit(void *base, struct ib_audit *a)
{
    struct ib_kpt_state *s = ib_region_shared(base, IB_AXIS_DRIVER);
    struct ib_audit_result *r = ib_audit_result_of(a);
    struct ibk_stats st;
    if (!s->attached) {
        ib_audit_failed(a);
        return;
    }
    struct kpt_audit k = {a, ib_hdr(base)->params.pool_pages};
    /* the audit's own walk: every table reachable from the pgd, every leaf's frame */
    uint64_t strays = (uint64_t)s->walk(s->t, audit_on_table, audit_on_leaf, &k);
    r->corrupt_entries += strays;
    /* the kernel's own walk: every expected page, by iova_to_phys */
    uint64_t pfn, frame;
    for (uint64_t i = 0; ib_audit_expected_next(a, &i, &pfn, &frame);) {
        uint64_t got = s->dk.iova_to_phys(s->dk.ops, (pfn << 12) + 42);
        if (!got)
            r->kernel_missing++;
        else if (got != (frame << 12) + 42)
            r->kernel_wrong++;
    }
    s->env_stats(s->env, &st);
    r->kernel_warns += st.warns + st.bugs;
    /* free_io_pgtable_ops: every table back to the pool */
    static struct ib_ctx parent;
    ib_ctx_init(&parent, base, 0);
    ib_kpt_ctx = &parent;
    s->destroy(s->t);
    s->attached = 0;
    r->kernel_pool_after_free = ib_pool_pages_out(base);
}

/* the audit's own lookup of one page (ARM LPAE: a page descriptor at level 3, blocks above,
 * attribute and software bits ignored) */
static int kpt_translate(void *base, uint64_t pfn, uint64_t *frame)
{
    struct ib_kpt_state *s = ib_region_shared(base, IB_AXIS_DRIVER);
    struct ib_header *h = ib_hdr(base);
    const char *pages = (const char *)base + h->layout.pages_off;
    uint64_t table = s->pgd_phys;
    for (int level = 0; level <= 3; level++) {
        if (!table || table / IB_PAGE_BYTES >= h->params.pool_pages)
            return 0;
        uint64_t e = ((const uint64_t *)(pages + table))[(pfn >> (9 * (3 - level))) & 511];
        unsigned type = e & 3;
        uint64_t addr = e & 0x0000fffffffff000ull;
        if (level < 3 && type == 3) {
            table = addr;
            continue;
        }
        if ((level == 3 && type == 3) || ((level == 1 || level == 2) && type == 1)) {
            uint64_t span = 1ull << (9 * (3 - level));
            *frame = (addr >> 12) + (pfn & (span - 1));
            return 1;
        }
        return 0;
    }
    return 0;
}

/* ---- the walkers' pass: the kernel's own walk (iova_to_phys) over every mapped leaf table --- */
struct kpt_pass {
    struct ib_kpt_state *s;
    struct ibk_walk_counts wc;
};

static void pass_on_table(void *ctx, int level, uint64_t iova, uint64_t phys)
{
    struct kpt_pass *p = ctx;
    (void)phys;
    if (level == 3) /* a leaf table: every one of its pages through the kernel's walk */
        p->s->walker_pass(p->s->t, iova, 512 * IB_PAGE_BYTES, IB_PAGE_BYTES, &p->wc);
}

static void kpt_walk_pass(void *base, struct ib_walker_counters *c)
{
    struct kpt_pass p = {ib_region_shared(base, IB_AXIS_DRIVER), {0}};
    p.s->walk(p.s->t, pass_on_table, 0, &p);
    c->tables_read += p.wc.tables_read;
    c->entries_read += p.wc.lookups;
    c->uaf_tables += p.wc.freed_reads;
    c->uaf_reads += p.wc.freed_reads;
    c->corrupt_reads += p.wc.corrupt + p.wc.faults;
}

static const struct ib_strategy kpt_state = {
    .size = kpt_size,
    .check = kpt_check,
    .audit = kpt_audit,
    .translate = kpt_translate,
    .walk_pass = kpt_walk_pass,
};

static const struct ib_strategy kpt_racy_state = {
    .size = kpt_size,
    .check = kpt_check,
    .audit = kpt_audit,
    .pool_held = kpt_racy_held,
    .translate = kpt_translate,
    .walk_pass = kpt_walk_pass,
};

IB_DEFINE_PGTABLE("kernel-arm", kernel_arm,
                  "the kernel's own io-pgtable-arm.c (LPAE stage 1), built from a kernel tree", 0,
                  1, &kpt_state, kpt_impl, kpt_attach)
IB_DEFINE_PGTABLE("kernel-arm-racy", kernel_arm_racy,
                  "io-pgtable-arm.c with a racy cmpxchg in the shim: the audit must catch it",
                  IB_NEGATIVE_CONTROL, 2, &kpt_racy_state, kpt_impl, kpt_attach)
