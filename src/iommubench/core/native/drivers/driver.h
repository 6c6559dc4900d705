/* What a driver is: the granularity at which map and unmap serialise. Two kinds:
 *
 * - lock-free drivers (no lock of the `lock` axis): one file defining how a missing table is
 *   installed (NAME_install), ending with IB_DEFINE_DRIVER, plus one line in drivers.def;
 * - lock-taking drivers: one header (drivers/NAME.h) of templates of map, map_range, unmap and
 *   unmap_range that take the point's lock through the functions they are handed, ending with
 *   its IB_LOCKED_DRIVER line, plus one line in drivers/locked.def; every lock file
 *   instantiates them for its lock (locks/instantiate.h), so the hot loop has direct calls.
 *
 * Either way IB_DRIVER_IMPL specialises every workload for the resulting map/unmap.
 */
#ifndef IB_DRIVER_H
#define IB_DRIVER_H

#include "../catalogue.h"
#include "../guard.h"
#include "../pgtable.h"
#include "../workloads/workloads.h"

typedef int (*ib_run_fn)(struct ib_ctx *x);

/* One (driver, lock) pair's code: the workloads' specialised loops and single-op hooks. */
struct ib_driver_impl {
    ib_run_fn run; /* the point's workload (ib_workload_run) with this driver's calls */
    int (*map)(struct ib_ctx *x, uint64_t pfn, uint64_t frame);
    int (*unmap)(struct ib_ctx *x, uint64_t pfn, uint64_t *frame_out);
};

/* Which instances of the point's lock a driver takes. */
enum ib_lock_scope { IB_SCOPE_NONE = 0, IB_SCOPE_DOMAIN = 1, IB_SCOPE_TABLE = 2 };

struct ib_driver {
    const char *name;
    struct ib_about about;
    uint32_t scope;                     /* enum ib_lock_scope */
    int32_t locked;                     /* index in IB_LOCKED_DRIVERS, or -1 */
    const struct ib_driver_impl *impl;  /* lock-free drivers; locked ones: the lock's */
};


/* exclusive walkers: every map and unmap takes the walk guard shared around the driver */
#define IB_GUARDED(x, call)                                                                \
    ({                                                                                     \
        if (__builtin_expect((x)->guarded, 0))                                             \
            ib_guard_shared_enter(x);                                                      \
        __typeof__(call) ib_r_ = (call);                                                   \
        if (__builtin_expect((x)->guarded, 0))                                             \
            ib_guard_shared_leave(x);                                                      \
        ib_r_;                                                                             \
    })

/* The workloads, specialised for id##_map, id##_map_range, id##_unmap and id##_unmap_range
 * (always inlined), and the impl that registers them. The calibrated critical-section work
 * (cs_map_ns, cs_unmap_ns) is the driver's to place: once per call, under its lock. */
#define IB_DRIVER_IMPL(id)                                                                 \
    static inline __attribute__((always_inline)) int id##_gmap(struct ib_ctx *x,           \
                                                              uint64_t pfn, uint64_t fr)   \
    {                                                                                      \
        return IB_GUARDED(x, id##_map(x, pfn, fr));                                        \
    }                                                                                      \
    static inline __attribute__((always_inline)) int id##_gmap_range(                      \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return IB_GUARDED(x, id##_map_range(x, pfn, pages));                               \
    }                                                                                      \
    static inline __attribute__((always_inline)) int id##_gunmap(struct ib_ctx *x,         \
                                                                uint64_t pfn, uint64_t *f) \
    {                                                                                      \
        return IB_GUARDED(x, id##_unmap(x, pfn, f));                                       \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t id##_gunmap_range(               \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return IB_GUARDED(x, id##_unmap_range(x, pfn, pages));                             \
    }                                                                                      \
    static const struct ib_driver_ops id##_ops = {id##_gmap, id##_gmap_range, id##_gunmap, \
                                                  id##_gunmap_range};                      \
    static int id##_run(struct ib_ctx *x) { return ib_workload_run(x, &id##_ops); }        \
    static int id##_map_call(struct ib_ctx *x, uint64_t pfn, uint64_t fr)                  \
    {                                                                                      \
        return id##_gmap(x, pfn, fr);                                                      \
    }                                                                                      \
    static int id##_unmap_call(struct ib_ctx *x, uint64_t pfn, uint64_t *f)                \
    {                                                                                      \
        return id##_gunmap(x, pfn, f);                                                     \
    }                                                                                      \
    static const struct ib_driver_impl id##_impl = {                                       \
        id##_run, id##_map_call, id##_unmap_call};

/* A lock-free driver: the file defines drv##_install; the walk needs no lock. `flags`:
 * IB_NEGATIVE_CONTROL for a driver the audit must catch, else 0. */
#define IB_DEFINE_DRIVER(yaml_name, drv, desc, flags)                                      \
    static inline __attribute__((always_inline)) int drv##_map(struct ib_ctx *x,           \
                                                              uint64_t pfn, uint64_t fr)   \
    {                                                                                      \
        ib_busy(x->cs_map_loops);                                                          \
        return ib_pt_map(x, pfn, fr, drv##_install);                                       \
    }                                                                                      \
    static inline __attribute__((always_inline)) int drv##_map_range(                      \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        ib_busy(x->cs_map_loops);                                                          \
        return ib_pt_map_range(x, pfn, pages, drv##_install);                              \
    }                                                                                      \
    static inline __attribute__((always_inline)) int drv##_unmap(struct ib_ctx *x,         \
                                                                uint64_t pfn, uint64_t *f) \
    {                                                                                      \
        ib_busy(x->cs_unmap_loops);                                                        \
        return ib_pt_unmap(x, pfn, f);                                                     \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t drv##_unmap_range(               \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        ib_busy(x->cs_unmap_loops);                                                        \
        return ib_pt_unmap_range(x, pfn, pages);                                           \
    }                                                                                      \
    IB_DRIVER_IMPL(drv)                                                                    \
    const struct ib_driver ib_driver_##drv = {                                             \
        yaml_name, {desc, "", "", flags}, IB_SCOPE_NONE, -1, &drv##_impl};

#endif
