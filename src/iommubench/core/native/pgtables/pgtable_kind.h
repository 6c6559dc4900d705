/* The page-table axis: which implementation holds the IO page table. The project's own model
 * (pgtable.h) is built in; others are loaded at run time from an object built on this machine
 * (ib_pgtable_attach) and bring their own driver code, arena state and table format.
 *
 * A page table is one file here ending with IB_DEFINE_PGTABLE, plus one line in pgtables.def.
 */
#ifndef IB_PGTABLE_KIND_H
#define IB_PGTABLE_KIND_H

#include "../catalogue.h"
#include "../core.h"

struct ib_strategy;
struct ib_driver_impl;

struct ib_pgtable_kind {
    const char *name;
    struct ib_about about;
    /* 0: built in; else which run-time object it needs (1 normal, 2 racy-cmpxchg) */
    uint32_t object_variant;
    /* its arena state, in the driver axis's region (0: the driver's own) */
    const struct ib_strategy *state;
    /* the code of the point's (driver, lock) on this table, 0 when it does not apply (0 for
     * the whole hook: the driver's own code) */
    const struct ib_driver_impl *(*impl)(const struct ib_params *p);
    /* parent, after ib_arena_init, before fork: load the object and create the table */
    int (*attach)(void *base, const char *object_path);
};

#define IB_DEFINE_PGTABLE(yaml_name, id, desc, flags, variant, state, impl, attach)        \
    const struct ib_pgtable_kind ib_pgtable_##id = {                                       \
        yaml_name, {desc, "", "", flags}, variant, state, impl, attach};

#endif
