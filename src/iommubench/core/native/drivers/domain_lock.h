/* domain-lock: one lock of the point's algorithm held across every map and unmap, as rockchip
 * (dt_lock), exynos (pgtablelock), tegra (as->lock), mtk_iommu_v1 and msm (pgtlock) do, and
 * arm-smmu did before v4.13. Under it a missing table is a plain check-then-store. */
#ifndef IB_DOMAIN_LOCK_H
#define IB_DOMAIN_LOCK_H

#include "serial_install.h"

static inline __attribute__((always_inline)) int
domain_lock_map(struct ib_ctx *x, uint64_t pfn, uint64_t fr, ib_lock_fn acq, ib_lock_fn rel,
                uint64_t stride)
{
    void *l = x->lock_shared;
    acq(x, l);
    ib_busy(x->cs_map_loops);
    int r = ib_pt_map(x, pfn, fr, ib_serial_install);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) int
domain_lock_map_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                      ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    acq(x, l);
    ib_busy(x->cs_map_loops);
    int r = ib_pt_map_range(x, pfn, pages, ib_serial_install);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) int
domain_lock_unmap(struct ib_ctx *x, uint64_t pfn, uint64_t *f, ib_lock_fn acq, ib_lock_fn rel,
                  uint64_t stride)
{
    void *l = x->lock_shared;
    acq(x, l);
    ib_busy(x->cs_unmap_loops);
    int r = ib_pt_unmap(x, pfn, f);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) uint64_t
domain_lock_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                        ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    acq(x, l);
    ib_busy(x->cs_unmap_loops);
    uint64_t r = ib_pt_unmap_range(x, pfn, pages);
    rel(x, l);
    return r;
}

#endif

IB_LOCKED_DRIVER(domain_lock, "domain-lock",
                 "one per-domain lock around every map and unmap (rockchip, exynos, tegra)",
                 IB_SCOPE_DOMAIN)
