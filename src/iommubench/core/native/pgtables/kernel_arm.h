/* kernel-arm: the kernel's own drivers/iommu/io-pgtable-arm.c (ARM LPAE stage 1, 48-bit IOVA,
 * 4 KiB granule, coherent walk), compiled unmodified with the project's shim into an object
 * built on this machine (core/kernel) and loaded by ib_pgtable_attach. Its table pages come
 * from the arena's pool (the cfg->alloc/free hooks), its TLB callbacks reach the harness.
 *
 * The calls below go straight to the kernel's map_pages/unmap_pages (ibk_pgtable_direct): the
 * adapter costs nothing on the hot path. A worker is one process, so the context the pool
 * hooks need is a per-process static, set on each call.
 */
#ifndef IB_KERNEL_ARM_H
#define IB_KERNEL_ARM_H

#include "ibk.h"
#include "../ctx.h"
#include "../pgtable.h"

struct ib_kpt_state {
    struct ibk_env *env;
    struct ibk_pgtable *t;
    struct ibk_direct dk;
    size_t (*unmap_range)(struct ibk_pgtable *t, unsigned long iova, size_t size, int queued);
    void (*walker_pass)(struct ibk_pgtable *t, unsigned long iova, size_t size, size_t step,
                        struct ibk_walk_counts *c);
    long (*walk)(struct ibk_pgtable *t, ibk_table_cb on_table, ibk_leaf_cb on_leaf, void *ctx);
    void (*env_stats)(struct ibk_env *env, struct ibk_stats *out);
    void (*destroy)(struct ibk_pgtable *t);
    uint64_t pgd_phys;
    uint32_t queued;   /* lazy invalidation: unmap's gather is queued (no per-page adds) */
    uint32_t attached;
    uint64_t env_bytes;
};

#define IB_KPT_ENV_BYTES (1ull << 20)
#define IB_KPT_PROT 3 /* IOMMU_READ | IOMMU_WRITE */
#define IB_KPT_EEXIST 17

extern struct ib_ctx *ib_kpt_ctx; /* this process's worker, for the pool hooks */
extern int ib_kpt_in_map;         /* a free during map is a lost install race */

static inline struct ib_kpt_state *ib_kpt(struct ib_ctx *x)
{
    return (struct ib_kpt_state *)x->shared[IB_AXIS_DRIVER];
}

/* map [pfn, pfn + pages) onto frames from `frame`, one map_pages call per table (the kernel
 * stops at each table boundary, as the IOMMU core loops) */
static inline __attribute__((always_inline)) int ib_kpt_map(struct ib_ctx *x, uint64_t pfn,
                                                            uint64_t frame, uint64_t pages)
{
    struct ib_kpt_state *s = ib_kpt(x);
    const uint64_t iova = pfn << 12, pa = frame << 12, total = pages << 12;
    uint64_t done = 0;
    int ret = 0;
    ib_kpt_ctx = x;
    ib_kpt_in_map = 1;
    if (pages == 1) { /* one call, as the driver's one-page map: no loop to go round */
        size_t m = 0;
        ret = s->dk.map_pages(s->dk.ops, iova, pa, IB_PAGE_BYTES, 1, IB_KPT_PROT, s->dk.gfp, &m);
        ib_kpt_in_map = 0;
        if (__builtin_expect(ret == 0 && m == IB_PAGE_BYTES, 1))
            return IB_OP_OK;
        goto failed;
    }
    while (done < total) {
        size_t m = 0;
        ret = s->dk.map_pages(s->dk.ops, iova + done, pa + done, IB_PAGE_BYTES,
                              (total - done) >> 12, IB_KPT_PROT, s->dk.gfp, &m);
        done += m;
        if (ret || !m)
            break;
    }
    ib_kpt_in_map = 0;
    if (__builtin_expect(ret == 0 && done == total, 1))
        return IB_OP_OK;
failed:
    if (ret == -IB_KPT_EEXIST) {
        x->c.map_conflicts++;
        return IB_OP_CONFLICT;
    }
    return IB_OP_NOMEM;
}

static inline __attribute__((always_inline)) int ib_kpt_unmap(struct ib_ctx *x, uint64_t pfn,
                                                              uint64_t *frame_out)
{
    struct ib_kpt_state *s = ib_kpt(x);
    uint64_t g[8]; /* the kernel's gather; ibk_direct.gather_bytes is checked at attach */
    ib_kpt_ctx = x;
    s->dk.gather_init(g, (int)s->queued);
    size_t u = s->dk.unmap_pages(s->dk.ops, pfn << 12, IB_PAGE_BYTES, 1, g);
    if (u != IB_PAGE_BYTES)
        return IB_OP_MISSING;
    /* the kernel returns no frame: wrong translations are the audit's to find */
    *frame_out = ib_frame_for(pfn);
    return IB_OP_OK;
}

/* Returns the pages not unmapped (lost). A range covering a whole 2 MiB span frees its leaf
 * table at once, after the walk-cache flush callback, as io-pgtable-arm.c does. */
static inline __attribute__((always_inline)) uint64_t ib_kpt_unmap_range(struct ib_ctx *x,
                                                                         uint64_t pfn,
                                                                         uint64_t pages)
{
    struct ib_kpt_state *s = ib_kpt(x);
    ib_kpt_ctx = x;
    size_t u = s->unmap_range(s->t, pfn << 12, pages << 12, (int)s->queued);
    return pages - (u >> 12);
}

#endif
