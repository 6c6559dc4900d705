/* What a driver is: how it serialises a map/unmap (enter/leave) and how it installs a missing
 * table. A driver file defines those three functions and ends with IB_DEFINE_DRIVER; that
 * specialises every workload for it, so the hot loop has no indirect call.
 */
#ifndef IB_DRIVER_H
#define IB_DRIVER_H

#include "../guard.h"
#include "../pgtable.h"
#include "../workloads/workloads.h"

typedef int (*ib_run_fn)(struct ib_ctx *x);

struct ib_driver {
    const char *name;
    ib_run_fn run[IB_WORKLOAD_COUNT];
    int (*map)(struct ib_ctx *x, uint64_t pfn, uint64_t frame);
    int (*unmap)(struct ib_ctx *x, uint64_t pfn, uint64_t *frame_out);
};

#define IB_INSTANTIATE_WORKLOAD(wl, drv) \
    static int drv##_run_##wl(struct ib_ctx *x) { return ib_workload_##wl(x, &drv##_ops); }
#define IB_WORKLOAD_SLOT(wl, drv) [IB_WL_##wl] = drv##_run_##wl,

/* guard (exclusive walkers only) -> enter -> optional calibrated critical-section work (the
 * map or the unmap call's own: cs_map_ns, cs_unmap_ns) -> walk -> leave -> guard */
#define IB_DRIVER_OP(drv, loops, call)                                                     \
    if (__builtin_expect(x->guarded, 0))                                                   \
        ib_guard_shared_enter(x);                                                          \
    drv##_enter(x);                                                                        \
    ib_busy(loops);                                                                        \
    __typeof__(call) r = call;                                                             \
    drv##_leave(x);                                                                        \
    if (__builtin_expect(x->guarded, 0))                                                   \
        ib_guard_shared_leave(x);                                                          \
    return r;

#define IB_DEFINE_DRIVER(yaml_name, drv)                                                   \
    static inline __attribute__((always_inline)) int drv##_map(struct ib_ctx *x,           \
                                                              uint64_t pfn, uint64_t fr) \
    {                                                                                      \
        IB_DRIVER_OP(drv, x->cs_map_loops, ib_pt_map(x, pfn, fr, drv##_install))           \
    }                                                                                      \
    static inline __attribute__((always_inline)) int drv##_map_range(                      \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        IB_DRIVER_OP(drv, x->cs_map_loops, ib_pt_map_range(x, pfn, pages, drv##_install))  \
    }                                                                                      \
    static inline __attribute__((always_inline)) int drv##_unmap(struct ib_ctx *x,         \
                                                                uint64_t pfn, uint64_t *f) \
    {                                                                                      \
        IB_DRIVER_OP(drv, x->cs_unmap_loops, ib_pt_unmap(x, pfn, f))                       \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t drv##_unmap_range(               \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        IB_DRIVER_OP(drv, x->cs_unmap_loops, ib_pt_unmap_range(x, pfn, pages))             \
    }                                                                                      \
    static int drv##_map_call(struct ib_ctx *x, uint64_t pfn, uint64_t fr)                 \
    {                                                                                      \
        return drv##_map(x, pfn, fr);                                                      \
    }                                                                                      \
    static int drv##_unmap_call(struct ib_ctx *x, uint64_t pfn, uint64_t *f)               \
    {                                                                                      \
        return drv##_unmap(x, pfn, f);                                                     \
    }                                                                                      \
    static const struct ib_driver_ops drv##_ops = {drv##_map, drv##_map_range, drv##_unmap, \
                                                   drv##_unmap_range};                     \
    IB_WORKLOADS(IB_INSTANTIATE_WORKLOAD, drv)                                             \
    const struct ib_driver ib_driver_##drv = {                                             \
        yaml_name, {IB_WORKLOADS(IB_WORKLOAD_SLOT, drv)}, drv##_map_call, drv##_unmap_call};

/* Lock helpers shared by the serialising drivers: counted, and timed only when contended. */
void ib_spin_lock_contended(struct ib_ctx *x, uint32_t *lock);

static inline __attribute__((always_inline)) void ib_spin_lock(struct ib_ctx *x, uint32_t *lock)
{
    x->c.lock_acquisitions++;
    /* acquire: pairs with the previous holder's release in ib_spin_unlock */
    if (__builtin_expect(__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0, 0))
        ib_spin_lock_contended(x, lock);
}

static inline void ib_spin_unlock(uint32_t *lock)
{
    /* release: the table updates made under the lock are visible to the next holder */
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

#endif
