/* The first include of every lock file (locks/NAME.c), after its `#define IB_LOCK_NAME NAME`:
 * the core's lock primitives, and every lock-taking driver D of drivers/locked.def
 * instantiated for the lock this file defines, as D_NAME (impl D_NAME_impl, loops
 * D_NAME_run_WORKLOAD, so a profile names driver and lock). The instantiations call
 * ib_this_lock_acquire, ib_this_lock_release and ib_this_lock_stride, declared here and
 * defined by the file's closing IB_DEFINE_LOCK (locks/framework.h): static and always
 * inlined, so each lock's drivers get its functions inlined with direct calls only, and the
 * names never meet across files. A new lock-taking driver is built with every lock without
 * any lock file changing. */
#ifndef IB_LOCK_INSTANTIATE_H
#define IB_LOCK_INSTANTIATE_H

#ifndef IB_LOCK_NAME
#error "a lock file defines IB_LOCK_NAME, its C prefix, before it includes instantiate.h"
#endif

#include "../lockcore.h"

static inline __attribute__((always_inline)) void ib_this_lock_acquire(struct ib_ctx *x,
                                                                      void *l);
static inline __attribute__((always_inline)) void ib_this_lock_release(struct ib_ctx *x,
                                                                      void *l);
static inline __attribute__((always_inline)) uint64_t ib_this_lock_stride(void);

#define IB_LOCK_CAT_(a, b) a##_##b
#define IB_LOCK_CAT(a, b) IB_LOCK_CAT_(a, b)
/* driver D built with this file's lock: D_NAME */
#define IB_WITH_THIS_LOCK(D) IB_LOCK_CAT(D, IB_LOCK_NAME)

/* Driver D with this file's lock, as `id` (D_NAME): D's templates handed its functions and
 * stride. The two outer macros expand IB_WITH_THIS_LOCK(D) before the third pastes it. */
#define IB_INSTANTIATE_LOCKED(D) IB_INSTANTIATE_LOCKED_AS(D, IB_WITH_THIS_LOCK(D))
#define IB_INSTANTIATE_LOCKED_AS(D, id) IB_INSTANTIATE_LOCKED_(D, id)
#define IB_INSTANTIATE_LOCKED_(D, id)                                                      \
    static inline __attribute__((always_inline)) int id##_map(                             \
        struct ib_ctx *x, uint64_t pfn, uint64_t fr)                                       \
    {                                                                                      \
        return D##_map(x, pfn, fr, ib_this_lock_acquire, ib_this_lock_release,             \
                       ib_this_lock_stride());                                             \
    }                                                                                      \
    static inline __attribute__((always_inline)) int id##_map_range(                       \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return D##_map_range(x, pfn, pages, ib_this_lock_acquire, ib_this_lock_release,    \
                             ib_this_lock_stride());                                       \
    }                                                                                      \
    static inline __attribute__((always_inline)) int id##_unmap(                           \
        struct ib_ctx *x, uint64_t pfn, uint64_t *f)                                       \
    {                                                                                      \
        return D##_unmap(x, pfn, f, ib_this_lock_acquire, ib_this_lock_release,            \
                         ib_this_lock_stride());                                           \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t id##_unmap_range(                \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return D##_unmap_range(x, pfn, pages, ib_this_lock_acquire, ib_this_lock_release,  \
                               ib_this_lock_stride());                                     \
    }                                                                                      \
    IB_DRIVER_IMPL(id)

#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope) IB_INSTANTIATE_LOCKED(d)
#define IB_LOCKED_VARIANT(d) IB_INSTANTIATE_LOCKED(d)
#include "../drivers/locked.def"
#undef IB_LOCKED_DRIVER
#undef IB_LOCKED_VARIANT

/* this lock's drivers, indexed by enum ib_locked_driver */
#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope)                                        \
    [IB_LOCKED_##d] = &IB_LOCK_CAT(IB_WITH_THIS_LOCK(d), impl),
#define IB_LOCKED_VARIANT(d) [IB_LOCKED_##d] = &IB_LOCK_CAT(IB_WITH_THIS_LOCK(d), impl),
static const struct ib_driver_impl *const ib_this_lock_drivers[IB_LOCKED_DRIVER_COUNT] = {
#include "../drivers/locked.def"
};
#undef IB_LOCKED_DRIVER
#undef IB_LOCKED_VARIANT

#endif
