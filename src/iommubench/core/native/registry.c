#include <string.h>

#include "drivers/driver.h"
#include "inval/inval.h"
#include "iova/iova.h"
#include "lockcore.h"
#include "pgtables/pgtable_kind.h"
#include "strategy.h"

/* The drivers: the lock-taking ones (drivers/locked.def), then the lock-free ones
 * (drivers/drivers.def), in the order `iommubench list` shows. */
#define IB_LOCKED_DRIVER(d, yaml_name, desc, scope) IB_DRIVER_ENTRY(d)
#define IB_LOCKED_VARIANT(d)
#define IB_DRIVER_ENTRY(drv) extern const struct ib_driver ib_driver_##drv;
#include "drivers/locked.def"
#include "drivers/drivers.def"
#undef IB_DRIVER_ENTRY

#define IB_DRIVER_ENTRY(drv) &ib_driver_##drv,
static const struct ib_driver *const drivers[] = {
#include "drivers/locked.def"
#include "drivers/drivers.def"
};
#undef IB_DRIVER_ENTRY
#undef IB_LOCKED_DRIVER
#undef IB_LOCKED_VARIANT

#define IB_WORKLOAD(wl) #wl,
static const char *const workload_names[] = {
#include "workloads/workloads.def"
};
#undef IB_WORKLOAD
#define IB_WORKLOAD(wl) extern const struct ib_workload_entry ib_workload_##wl##_entry;
#include "workloads/workloads.def"
#undef IB_WORKLOAD
#define IB_WORKLOAD(wl) &ib_workload_##wl##_entry,
static const struct ib_workload_entry *const workloads[] = {
#include "workloads/workloads.def"
};
#undef IB_WORKLOAD

uint32_t ib_driver_count(void) { return sizeof(drivers) / sizeof(drivers[0]); }

const char *ib_driver_name(uint32_t i) { return i < ib_driver_count() ? drivers[i]->name : 0; }

const char *ib_driver_description(uint32_t i)
{
    return i < ib_driver_count() ? drivers[i]->about.description : 0;
}

int ib_driver_takes_lock(uint32_t i)
{
    return i < ib_driver_count() && (drivers[i]->about.flags & IB_TAKES_LOCK);
}

const struct ib_driver *ib_driver_get(uint32_t i)
{
    return i < ib_driver_count() ? drivers[i] : 0;
}

#define IB_LOCK_ENTRY(name) extern const struct ib_lock ib_lock_##name;
#include "locks/locks.def"
#undef IB_LOCK_ENTRY

#define IB_LOCK_ENTRY(name) &ib_lock_##name,
static const struct ib_lock *const locks[] = {
#include "locks/locks.def"
};
#undef IB_LOCK_ENTRY

uint32_t ib_lock_count(void) { return sizeof(locks) / sizeof(locks[0]); }

const char *ib_lock_name(uint32_t i) { return i < ib_lock_count() ? locks[i]->name : 0; }

const char *ib_lock_description(uint32_t i)
{
    return i < ib_lock_count() ? locks[i]->description : 0;
}

const struct ib_lock *ib_lock_get(uint32_t i) { return locks[i < ib_lock_count() ? i : 0]; }

#define IB_PGTABLE_ENTRY(id) extern const struct ib_pgtable_kind ib_pgtable_##id;
#include "pgtables/pgtables.def"
#undef IB_PGTABLE_ENTRY

#define IB_PGTABLE_ENTRY(id) &ib_pgtable_##id,
static const struct ib_pgtable_kind *const pgtables[] = {
#include "pgtables/pgtables.def"
};
#undef IB_PGTABLE_ENTRY

uint32_t ib_pgtable_count(void) { return sizeof(pgtables) / sizeof(pgtables[0]); }

const char *ib_pgtable_name(uint32_t i) { return i < ib_pgtable_count() ? pgtables[i]->name : 0; }

uint32_t ib_pgtable_object_variant(uint32_t i)
{
    return i < ib_pgtable_count() ? pgtables[i]->object_variant : 0;
}

static const struct ib_pgtable_kind *pgtable_of(const struct ib_params *p)
{
    return pgtables[p->pgtable < ib_pgtable_count() ? p->pgtable : 0];
}

const struct ib_strategy *ib_table_format(const struct ib_params *p)
{
    return pgtable_of(p)->state;
}

int ib_pgtable_attach(void *base, const char *object_path)
{
    const struct ib_pgtable_kind *k = pgtable_of(&ib_hdr(base)->params);
    if (!k->attach)
        return IB_OK; /* built in: nothing to load */
    return object_path ? k->attach(base, object_path) : IB_ERR_PARAMS;
}

/* The code of a (driver, lock) pair: a lock-free driver's own, or the lock's instance of a
 * lock-taking driver. */
const struct ib_driver_impl *ib_driver_impl(uint32_t driver, uint32_t lock)
{
    const struct ib_driver *d = drivers[driver < ib_driver_count() ? driver : 0];
    if (d->locked < 0)
        return d->impl;
    return locks[lock < ib_lock_count() ? lock : 0]->impl[d->locked];
}

/* ... on the point's page table, which may bring its own (0: the pair does not apply) */
const struct ib_driver_impl *ib_driver_impl_for(const struct ib_params *p)
{
    const struct ib_pgtable_kind *k = pgtable_of(p);
    return k->impl ? k->impl(p) : ib_driver_impl(p->driver, p->lock);
}

int ib_pgtable_accepts(const struct ib_params *p)
{
    const struct ib_pgtable_kind *k = pgtable_of(p);
    return !k->impl || k->impl(p) != 0;
}

/* The lock axis's state: the instances the driver takes (one per domain, or one per table
 * page, IB_LOCK_STRIDE apart) and one node per worker on its own line. */
static uint32_t lock_scope(const struct ib_params *p)
{
    return p->driver < ib_driver_count() ? drivers[p->driver]->scope : IB_SCOPE_NONE;
}

static void lock_size(const struct ib_params *p, struct ib_region_size *out)
{
    const struct ib_lock *l = locks[p->lock < ib_lock_count() ? p->lock : 0];
    uint32_t scope = lock_scope(p);
    out->shared = scope == IB_SCOPE_DOMAIN ? l->size : 0;
    out->per_page = scope == IB_SCOPE_TABLE ? IB_LOCK_STRIDE(l->size) : 0;
    out->per_worker = scope != IB_SCOPE_NONE ? (l->node_size + IB_LINE - 1) / IB_LINE * IB_LINE : 0;
}

static void lock_init(void *base)
{
    const struct ib_params *p = &ib_hdr(base)->params;
    const struct ib_lock *l = locks[p->lock < ib_lock_count() ? p->lock : 0];
    uint32_t scope = lock_scope(p);
    if (scope == IB_SCOPE_DOMAIN)
        l->init(ib_region_shared(base, IB_AXIS_LOCK));
    for (uint64_t i = 0; scope == IB_SCOPE_TABLE && i < p->pool_pages; i++)
        l->init(ib_region_page(base, IB_AXIS_LOCK, i));
}

static const struct ib_strategy lock_strategy = {lock_size, 0, lock_init, 0};

static void no_size(const struct ib_params *p, struct ib_region_size *out)
{
    (void)p;
    memset(out, 0, sizeof(*out));
}

static const struct ib_strategy stateless = {no_size, 0, 0, 0};

extern const struct ib_strategy ib_walker_strategy;
const struct ib_invalidation *ib_invalidation_get(uint32_t i);
const struct ib_allocator *ib_allocator_get(uint32_t i);

const struct ib_strategy *ib_strategy_of(const struct ib_params *p, int axis)
{
    if (axis == IB_AXIS_LOCK)
        return &lock_strategy;
    if (axis == IB_AXIS_WORKLOAD)
        return workloads[p->workload < IB_WORKLOAD_COUNT ? p->workload : 0]->state;
    if (axis == IB_AXIS_ALLOCATOR)
        return ib_allocator_get(p->allocator)->state;
    if (axis == IB_AXIS_INVALIDATION) {
        const struct ib_strategy *s = ib_invalidation_get(p->invalidation)->state;
        return s ? s : &stateless;
    }
    if (axis == IB_AXIS_DRIVER && pgtable_of(p)->state)
        return pgtable_of(p)->state; /* a page table of its own keeps its state there */
    return axis == IB_AXIS_WALKER ? &ib_walker_strategy : &stateless;
}

uint32_t ib_workload_count(void) { return IB_WORKLOAD_COUNT; }

int ib_workload_reads(const struct ib_params *p, const char *name)
{
    const char *reads = workloads[p->workload < IB_WORKLOAD_COUNT ? p->workload : 0]->about.reads;
    size_t n = strlen(name);
    for (const char *at = strstr(reads, name); at; at = strstr(at + 1, name))
        if ((at == reads || at[-1] == ',') && (at[n] == ',' || at[n] == 0))
            return 1;
    return 0;
}

const char *ib_workload_name(uint32_t i)
{
    return i < IB_WORKLOAD_COUNT ? workload_names[i] : 0;
}

#define IB_ALLOCATOR_ENTRY(a) extern const struct ib_allocator ib_allocator_##a;
#include "iova/allocators.def"
#undef IB_ALLOCATOR_ENTRY

#define IB_ALLOCATOR_ENTRY(a) &ib_allocator_##a,
static const struct ib_allocator *const allocators[] = {
#include "iova/allocators.def"
};
#undef IB_ALLOCATOR_ENTRY

#define IB_INVALIDATION_ENTRY(m) extern const struct ib_invalidation ib_invalidation_##m;
#include "inval/invalidations.def"
#undef IB_INVALIDATION_ENTRY

#define IB_INVALIDATION_ENTRY(m) &ib_invalidation_##m,
static const struct ib_invalidation *const invalidations[] = {
#include "inval/invalidations.def"
};
#undef IB_INVALIDATION_ENTRY

uint32_t ib_allocator_count(void) { return sizeof(allocators) / sizeof(allocators[0]); }

const char *ib_allocator_name(uint32_t i)
{
    return i < ib_allocator_count() ? allocators[i]->name : 0;
}

const struct ib_allocator *ib_allocator_get(uint32_t i)
{
    return allocators[i < ib_allocator_count() ? i : 0];
}

uint32_t ib_allocator_object_variant(uint32_t i)
{
    return i < ib_allocator_count() ? allocators[i]->object_variant : 0;
}

/* The allocator's own attach and detach decide whether the point's workload reads it. */
int ib_allocator_attach(void *base, const char *object_path)
{
    const struct ib_allocator *a = ib_allocator_get(ib_hdr(base)->params.allocator);
    return a->attach ? a->attach(base, object_path) : IB_OK; /* built in: nothing to load */
}

void ib_arena_detach(void *base)
{
    const struct ib_allocator *a = ib_allocator_get(ib_hdr(base)->params.allocator);
    if (a->detach)
        a->detach(base);
}

uint32_t ib_invalidation_count(void) { return sizeof(invalidations) / sizeof(invalidations[0]); }

const char *ib_invalidation_name(uint32_t i)
{
    return i < ib_invalidation_count() ? invalidations[i]->name : 0;
}

const struct ib_invalidation *ib_invalidation_get(uint32_t i)
{
    return invalidations[i < ib_invalidation_count() ? i : 0];
}

/* The measures: the names of the IB_MEASURE counters, in declaration order (the IB_COUNTER
 * lines expand to nothing). */
static const char *const measures[] = {
#define IB_COUNTER(name)
#define IB_MEASURE(name) #name,
#define IB_LOCK_FAMILY(prefix, about)
#include "counters.def"
#undef IB_LOCK_FAMILY
#undef IB_MEASURE
#undef IB_COUNTER
};

uint32_t ib_catalogue_measure_count(void) { return sizeof(measures) / sizeof(measures[0]); }

const char *ib_catalogue_measure_name(uint32_t i)
{
    return i < ib_catalogue_measure_count() ? measures[i] : 0;
}

/* The walker-safety modes' lines (walker.c names them). */
const struct ib_about *ib_walker_safety_about(uint32_t i);

/* The catalogue, axis by axis in `iommubench list` order. */
static void fill(struct ib_catalogue_entry *out, const char *axis, const char *name,
                 const struct ib_about *about)
{
    out->axis = axis;
    out->name = name;
    out->description = about->description ? about->description : "";
    out->reads = about->reads ? about->reads : "";
    out->unit = about->unit ? about->unit : "";
    out->takes_lock = (about->flags & IB_TAKES_LOCK) != 0;
    out->negative_control = (about->flags & IB_NEGATIVE_CONTROL) != 0;
    out->prevents_uaf = (about->flags & IB_PREVENTS_UAF) != 0;
    out->fifo = (about->flags & IB_FIFO) != 0;
    out->wait_outlives_abort = (about->flags & IB_WAIT_OUTLIVES_ABORT) != 0;
}

uint32_t ib_catalogue_size(void)
{
    return IB_WORKLOAD_COUNT + ib_driver_count() + ib_lock_count() + ib_allocator_count() +
           ib_invalidation_count() + ib_walker_safety_count() + ib_pgtable_count();
}

int ib_catalogue_get(uint32_t i, struct ib_catalogue_entry *out)
{
    if (i < IB_WORKLOAD_COUNT) {
        fill(out, "workload", workload_names[i], &workloads[i]->about);
        return 0;
    }
    i -= IB_WORKLOAD_COUNT;
    if (i < ib_driver_count()) {
        fill(out, "driver", drivers[i]->name, &drivers[i]->about);
        return 0;
    }
    i -= ib_driver_count();
    if (i < ib_lock_count()) {
        struct ib_about about = {locks[i]->description, "", "", locks[i]->flags};
        fill(out, "lock", locks[i]->name, &about);
        return 0;
    }
    i -= ib_lock_count();
    if (i < ib_allocator_count()) {
        fill(out, "allocator", allocators[i]->name, &allocators[i]->about);
        return 0;
    }
    i -= ib_allocator_count();
    if (i < ib_invalidation_count()) {
        fill(out, "invalidation", invalidations[i]->name, &invalidations[i]->about);
        return 0;
    }
    i -= ib_invalidation_count();
    if (i < ib_walker_safety_count()) {
        fill(out, "walker_safety", ib_walker_safety_name(i), ib_walker_safety_about(i));
        return 0;
    }
    i -= ib_walker_safety_count();
    if (i < ib_pgtable_count()) {
        fill(out, "pgtable", pgtables[i]->name, &pgtables[i]->about);
        return 0;
    }
    return -1;
}

/* The lock families (IB_LOCK_FAMILY in counters.def), in declaration order. */
static const char *const lock_families[][2] = {
#define IB_COUNTER(name)
#define IB_MEASURE(name)
#define IB_LOCK_FAMILY(prefix, about) {#prefix, about},
#include "counters.def"
#undef IB_LOCK_FAMILY
#undef IB_MEASURE
#undef IB_COUNTER
};

uint32_t ib_catalogue_lock_family_count(void)
{
    return sizeof(lock_families) / sizeof(lock_families[0]);
}

const char *ib_catalogue_lock_family_prefix(uint32_t i)
{
    return i < ib_catalogue_lock_family_count() ? lock_families[i][0] : 0;
}

const char *ib_catalogue_lock_family_about(uint32_t i)
{
    return i < ib_catalogue_lock_family_count() ? lock_families[i][1] : 0;
}
