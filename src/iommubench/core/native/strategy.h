/* What every strategy (an entry of the driver, lock, allocator, invalidation, walker or
 * workload registry) declares about its state, so the arena can lay out and initialise it
 * without knowing the strategy: its shared, per-worker and per-table-page bytes, its init
 * (parent, single-threaded, on zeroed memory) and its audit hook (parent, after the run). */
#ifndef IB_STRATEGY_H
#define IB_STRATEGY_H

#include "catalogue.h"
#include "core.h"

struct ib_region_size {
    uint64_t shared;
    uint64_t per_worker;
    uint64_t per_page;
};

struct ib_audit; /* the audit in progress (audit.c) */
struct ib_header; /* the arena header (arena.h) a workload's ledger reads */

struct ib_strategy {
    void (*size)(const struct ib_params *p, struct ib_region_size *out);
    /* non-zero when the point's parameters do not fit the state (0: always fit) */
    int (*check)(const struct ib_params *p);
    void (*init)(void *base);
    /* tells the audit what the strategy holds (after every worker has exited) */
    void (*audit)(void *base, struct ib_audit *a);
    /* table pages the point's mappings can need, root and per-worker caches included; the
     * pool holds the sum over the axes (0 or null: none) */
    uint64_t (*pool_pages)(const struct ib_params *p);
    /* table pages the strategy can hold out of a pool of `pages` (e.g. freed tables waiting
     * for a grace period); added on top of the sum (null: none) */
    uint64_t (*pool_held)(const struct ib_params *p, uint64_t pages);
    /* A table in another format than pgtable.h's (the page-table axis): the audit's lookup
     * of one page (1 and its frame when mapped), and one walker pass over the table. The
     * audit hook then reports the tables and leaves (ib_audit_table_page, ib_audit_leaf). */
    int (*translate)(void *base, uint64_t pfn, uint64_t *frame);
    void (*walk_pass)(void *base, struct ib_walker_counters *c);
    /* A workload's ledger, for the audit: the pfns [*lo, *hi) its workers can leave mapped,
     * and whether `pfn` must be mapped at the end of the run, and to which frame (null:
     * nothing stays mapped). */
    void (*ledger_span)(const struct ib_params *p, uint64_t *lo, uint64_t *hi);
    int (*ledger)(const struct ib_header *h, uint64_t pfn, uint64_t *frame);
};

/* For an audit hook: a list of table pages, linked through the pool's links, that the
 * strategy holds out of the pool (e.g. freed tables waiting for a grace period). Each page
 * must be on it once and nowhere else; they are counted in *count (a field of the result). */
void ib_audit_held_pages(struct ib_audit *a, uint32_t head, uint64_t *count);
/* The result a hook adds its findings to. */
struct ib_audit_result *ib_audit_result_of(struct ib_audit *a);
/* A hook that could not run (no memory): the audit returns IB_ERR_AUDIT. */
void ib_audit_failed(struct ib_audit *a);
/* For a table in its own format: a table page reached from its root (counted reachable,
 * multiply linked when reached twice), and a present leaf (checked against the ledgers). */
void ib_audit_table_page(struct ib_audit *a, uint64_t page);
void ib_audit_leaf(struct ib_audit *a, uint64_t pfn, uint64_t frame);
/* The ledgers' expected mappings one by one: from *cursor (0 first), 0 when done. */
int ib_audit_expected_next(struct ib_audit *a, uint64_t *cursor, uint64_t *pfn, uint64_t *frame);
/* Table pages out of the pool: on no free list (the root excluded). */
uint64_t ib_pool_pages_out(void *base);
/* The page-table axis's strategy for the point (in the driver axis's region), or 0. */
const struct ib_strategy *ib_table_format(const struct ib_params *p);

/* A workload's registry entry (one per workloads.def line, defined in its state file as
 * ib_workload_NAME_entry): its state and what it tells the catalogue. */
struct ib_workload_entry {
    const struct ib_strategy *state;
    struct ib_about about;
};

/* Whether the point's workload reads parameter `name` (its catalogue entry lists it): how an
 * axis's state knows it is needed (e.g. IOVA state only where a workload reads `allocator`)
 * without naming a workload. Setup and audit only, never the hot loop. */
int ib_workload_reads(const struct ib_params *p, const char *name);

/* The strategy the point picked on `axis` (never null: an entry without state has an empty
 * one). */
const struct ib_strategy *ib_strategy_of(const struct ib_params *p, int axis);

#endif
