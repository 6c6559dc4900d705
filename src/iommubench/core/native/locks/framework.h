/* What a lock is to the rest of the core: its registration (struct ib_lock) and the table of
 * lock-taking drivers instantiated for it. A lock file (locks/NAME.c) starts with
 *
 *     #define IB_LOCK_NAME NAME
 *     #include "instantiate.h"
 *
 * defines struct NAME_lock, struct NAME_node, NAME_init, NAME_acquire and NAME_release, and
 * ends with
 *
 *     IB_DEFINE_LOCK("yaml-name", "one-line description", flags)
 *
 * which hands those functions to the drivers instantiated at the top of the file and registers
 * the lock: its name, description, the bytes of one lock instance and of one per-worker node,
 * its init, its flags and its drivers. `flags` is 0, or what the lock promises (catalogue.h):
 * IB_FIFO (waiters are served in arrival order) and IB_WAIT_OUTLIVES_ABORT (a waiter cannot
 * leave on the abort flag while its holder lives); tests/core/test_lock_order.py checks each
 * promise against the catalogue. locks/locks.def lists the lock files, one
 * IB_LOCK_ENTRY(NAME) line each.
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
    uint32_t flags;           /* IB_FIFO, IB_WAIT_OUTLIVES_ABORT (catalogue.h) */
    const struct ib_driver_impl *const *impl; /* indexed by enum ib_locked_driver */
};

/* The lock file's functions behind the untyped names the instantiated drivers call
 * (locks/instantiate.h declares them), and its registration. */
#define IB_DEFINE_LOCK(yaml_name, desc, flags)                                             \
    IB_DEFINE_LOCK_AS(yaml_name, IB_LOCK_NAME, desc, flags)
#define IB_DEFINE_LOCK_AS(yaml_name, NAME, desc, flags)                                    \
    IB_DEFINE_LOCK_(yaml_name, NAME, desc, flags)
#define IB_DEFINE_LOCK_(yaml_name, NAME, desc, flags)                                      \
    _Static_assert(_Alignof(struct NAME##_lock) <= 64, #NAME ": lock alignment above 64"); \
    _Static_assert(_Alignof(struct NAME##_node) <= 64, #NAME ": node alignment above 64"); \
    static inline __attribute__((always_inline)) void ib_this_lock_acquire(struct ib_ctx *x, \
                                                                          void *l)         \
    {                                                                                      \
        NAME##_acquire(x, (struct NAME##_lock *)l, &x->c.lock_acquisitions);               \
    }                                                                                      \
    static inline __attribute__((always_inline)) void ib_this_lock_release(struct ib_ctx *x, \
                                                                          void *l)         \
    {                                                                                      \
        NAME##_release(x, (struct NAME##_lock *)l);                                        \
    }                                                                                      \
    static inline __attribute__((always_inline)) uint64_t ib_this_lock_stride(void)        \
    {                                                                                      \
        return IB_LOCK_STRIDE(sizeof(struct NAME##_lock));                                 \
    }                                                                                      \
    static void NAME##_init_v(void *l) { NAME##_init((struct NAME##_lock *)l); }           \
    const struct ib_lock ib_lock_##NAME = {yaml_name,                                      \
                                           desc,                                           \
                                           sizeof(struct NAME##_lock),                     \
                                           _Alignof(struct NAME##_lock),                   \
                                           sizeof(struct NAME##_node),                     \
                                           NAME##_init_v,                                  \
                                           flags,                                          \
                                           ib_this_lock_drivers};

#endif
