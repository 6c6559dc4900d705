/* What turns a lock file into drivers. A lock file (locks/NAME.c) defines struct NAME_lock,
 * struct NAME_node, NAME_init, NAME_acquire and NAME_release, and ends with
 *
 *     IB_DEFINE_LOCK("yaml-name", NAME, "one-line description")
 *
 * which instantiates every lock-taking driver (drivers/locked.h) for this lock with every
 * workload, so the hot loop calls the lock's inlined functions directly, and registers the
 * lock: its name, description, the bytes of one lock instance and of one per-worker node, and
 * its init. locks/locks.def lists the lock files, one IB_LOCK_ENTRY(NAME) line each.
 */
#ifndef IB_LOCK_FRAMEWORK_H
#define IB_LOCK_FRAMEWORK_H

#include "../drivers/locked.h"

struct ib_lock {
    const char *name;
    const char *description;
    uint32_t size;        /* one lock instance (per domain, or per table page) */
    uint32_t align;
    uint32_t node_size;   /* one worker's node */
    void (*init)(void *lock); /* parent, single-threaded, on zeroed memory */
    const struct ib_driver_impl *impl[IB_LOCKED_DRIVER_COUNT];
};

/* The typed lock functions behind the untyped pointers the drivers' templates take. */
#define IB_LOCK_GLUE(NAME)                                                                 \
    static inline __attribute__((always_inline)) void NAME##_acq_v(struct ib_ctx *x,       \
                                                                   void *l)                \
    {                                                                                      \
        NAME##_acquire(x, (struct NAME##_lock *)l, &x->c.lock_acquisitions);               \
    }                                                                                      \
    static inline __attribute__((always_inline)) void NAME##_rel_v(struct ib_ctx *x,       \
                                                                   void *l)                \
    {                                                                                      \
        NAME##_release(x, (struct NAME##_lock *)l);                                        \
    }                                                                                      \
    static void NAME##_init_v(void *l) { NAME##_init((struct NAME##_lock *)l); }

/* Driver D specialised for lock NAME: D's templates with NAME's functions and stride. */
#define IB_INSTANTIATE_LOCKED(D, NAME)                                                     \
    static inline __attribute__((always_inline)) int D##_##NAME##_map(struct ib_ctx *x,    \
                                                                     uint64_t pfn,         \
                                                                     uint64_t fr)          \
    {                                                                                      \
        return D##_map(x, pfn, fr, NAME##_acq_v, NAME##_rel_v,                             \
                       IB_LOCK_STRIDE(sizeof(struct NAME##_lock)));                        \
    }                                                                                      \
    static inline __attribute__((always_inline)) int D##_##NAME##_map_range(               \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return D##_map_range(x, pfn, pages, NAME##_acq_v, NAME##_rel_v,                    \
                             IB_LOCK_STRIDE(sizeof(struct NAME##_lock)));                  \
    }                                                                                      \
    static inline __attribute__((always_inline)) int D##_##NAME##_unmap(                   \
        struct ib_ctx *x, uint64_t pfn, uint64_t *f)                                       \
    {                                                                                      \
        return D##_unmap(x, pfn, f, NAME##_acq_v, NAME##_rel_v,                            \
                         IB_LOCK_STRIDE(sizeof(struct NAME##_lock)));                      \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t D##_##NAME##_unmap_range(        \
        struct ib_ctx *x, uint64_t pfn, uint64_t pages)                                    \
    {                                                                                      \
        return D##_unmap_range(x, pfn, pages, NAME##_acq_v, NAME##_rel_v,                  \
                               IB_LOCK_STRIDE(sizeof(struct NAME##_lock)));                \
    }                                                                                      \
    IB_DRIVER_IMPL(D##_##NAME)

#define IB_LOCKED_IMPL_REF(D, NAME) &D##_##NAME##_impl,

#define IB_DEFINE_LOCK(yaml_name, NAME, desc)                                              \
    _Static_assert(_Alignof(struct NAME##_lock) <= 64, #NAME ": lock alignment above 64");  \
    _Static_assert(_Alignof(struct NAME##_node) <= 64, #NAME ": node alignment above 64");  \
    IB_LOCK_GLUE(NAME)                                                                     \
    IB_LOCKED_DRIVERS(IB_INSTANTIATE_LOCKED, NAME)                                         \
    const struct ib_lock ib_lock_##NAME = {                                                \
        yaml_name,                                                                         \
        desc,                                                                              \
        sizeof(struct NAME##_lock),                                                        \
        _Alignof(struct NAME##_lock),                                                      \
        sizeof(struct NAME##_node),                                                        \
        NAME##_init_v,                                                                     \
        {IB_LOCKED_DRIVERS(IB_LOCKED_IMPL_REF, NAME)}};

#endif
