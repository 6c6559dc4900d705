/* domain-lock on the kernel's page table (pgtables/kernel_arm.h): the same unmodified
 * io-pgtable-arm.c serialised by one lock of the point's algorithm around every map and
 * unmap, as the simpler drivers serialise their own tables. Not a driver of its own: the
 * page-table axis picks it for domain-lock (pgtables/kernel_arm.c), and every lock file
 * instantiates it with the other lock-taking drivers. */
#ifndef IB_KERNEL_DOMAIN_LOCK_H
#define IB_KERNEL_DOMAIN_LOCK_H

#include "../pgtables/kernel_arm.h"

static inline __attribute__((always_inline)) int
kernel_domain_lock_map(struct ib_ctx *x, uint64_t pfn, uint64_t fr, ib_lock_fn acq,
                       ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    (void)stride;
    acq(x, l);
    ib_busy(x->cs_map_loops);
    int r = ib_kpt_map(x, pfn, fr, 1);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) int
kernel_domain_lock_map_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                             ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    (void)stride;
    acq(x, l);
    ib_busy(x->cs_map_loops);
    int r = ib_kpt_map(x, pfn, ib_frame_for(pfn), pages);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) int
kernel_domain_lock_unmap(struct ib_ctx *x, uint64_t pfn, uint64_t *f, ib_lock_fn acq,
                         ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    (void)stride;
    acq(x, l);
    ib_busy(x->cs_unmap_loops);
    int r = ib_kpt_unmap(x, pfn, f);
    rel(x, l);
    return r;
}

static inline __attribute__((always_inline)) uint64_t
kernel_domain_lock_unmap_range(struct ib_ctx *x, uint64_t pfn, uint64_t pages, ib_lock_fn acq,
                               ib_lock_fn rel, uint64_t stride)
{
    void *l = x->lock_shared;
    (void)stride;
    acq(x, l);
    ib_busy(x->cs_unmap_loops);
    uint64_t r = ib_kpt_unmap_range(x, pfn, pages);
    rel(x, l);
    return r;
}

#endif

IB_LOCKED_VARIANT(kernel_domain_lock)
