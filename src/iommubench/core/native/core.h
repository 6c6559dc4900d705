/* iommubench native core: the interface the Python harness binds to.
 *
 * Everything here is plain C (no Python headers) so a small C program can drive the same
 * core, e.g. under ThreadSanitizer (see tests/native/). All state shared between worker
 * processes lives in one arena (a shared-memory segment) addressed by offsets, because each
 * process maps the segment at its own address.
 */
#ifndef IB_CORE_H
#define IB_CORE_H

#include <stdint.h>

#define IB_HIST_SUB_BITS 6
#define IB_HIST_BUCKETS 2304 /* 64 sub-buckets x 36 octaves */
#define IB_MAX_WORKERS 4096
#define IB_MAX_GRANULES 64    /* entries of a granule mix */
#define IB_SERIES_SLOTS 1024  /* throughput ticks each worker can record in one window */
#define IB_SERIES_TICK_NS 10000000 /* 10 ms, coarser when the window needs more slots */

enum ib_exit {
    IB_OK = 0,
    IB_ERR_PARAMS = 1,
    IB_ERR_POOL_EMPTY = 2,
    IB_ERR_ABORTED = 3,
    IB_ERR_NO_SPACE = 4,    /* the workload's address space (below its mask) was exhausted */
    IB_ERR_AUDIT = 5, /* the audit could not run (no memory for its marks): a failed point */
};

/* One point's parameters, as the harness resolved them (names as in the YAML). */
struct ib_params {
    uint32_t workload;      /* index into the workload registry */
    uint32_t driver;        /* index into the driver registry */
    uint32_t lock;          /* index into the lock registry (ignored by lock-free drivers) */
    uint32_t workers;
    uint32_t sample_every;  /* time one op in N; 0 = off */
    uint64_t region_pages;
    uint64_t chunk_pages;
    uint64_t cycles;        /* 0 = run for duration; K = exactly K map/unmap cycles */
    uint64_t cs_map_ns;     /* busy work inside each map call (a per-call cost) */
    uint64_t cs_unmap_ns;   /* busy work inside each unmap call */
    uint64_t warmup_ns;
    uint64_t duration_ns;
    uint64_t pool_pages;    /* table pages in the pool, root included */
    uint64_t seed;
    uint32_t allocator;     /* index into the allocator registry */
    uint32_t invalidation;  /* index into the invalidation registry */
    uint32_t n_granules;
    uint32_t granules[64];  /* IB_MAX_GRANULES: the mix, drawn uniformly with the seeded RNG */
#include "params.def"
    /* walkers: debugfs-style dumps racing with unmap (the walker-safety registry) */
    uint32_t walkers;       /* extra processes walking the whole table, pass after pass */
    uint32_t walker_safety; /* index into the walker-safety registry */
    uint64_t walker_gap_ns; /* walkers sleep this long between passes (0: back to back) */
};


/* Per-worker counters, private during the run and published into the worker's slot at the
 * end: the core's own and each owner's, declared in counters.def (and the files it includes),
 * every one a uint64_t the harness reads by name. An IB_MEASURE is a counter that is also
 * reported as a column of its own (ib_catalogue_measure_name); an IB_COUNTER is internal. */
struct ib_counters {
#define IB_COUNTER(name) uint64_t name;
#define IB_MEASURE(name) uint64_t name;
#define IB_LOCK_FAMILY(p, _) uint64_t p##_acquisitions, p##_contended, p##_wait_ns, p##_max_wait_ns;
#include "counters.def"
#undef IB_LOCK_FAMILY
#undef IB_MEASURE
#undef IB_COUNTER
};

/* The audit's findings: the core's own and each owner's, declared in audit.def. */
struct ib_audit_result {
#define IB_AUDIT(name) uint64_t name;
#include "audit.def"
#undef IB_AUDIT
};

/* One walker's counters, published when it stops. */
struct ib_walker_counters {
    uint64_t passes;
    uint64_t entries_read;        /* present entries read, every level */
    uint64_t tables_read;
    uint64_t uaf_reads;           /* entries read from a table page freed while being read */
    uint64_t uaf_tables;          /* table reads that overlapped a free (or a reuse) */
    uint64_t corrupt_reads;       /* entries pointing outside the pool: garbage from reuse */
    uint64_t pass_ns_total;
    uint64_t pass_ns_max;
    uint64_t wait_ns;             /* waiting for the walker-safety lock, where one is taken */
    uint64_t start_ns;
    uint64_t end_ns;
};

/* The strategy axes: each point picks one entry of each registry, and each entry owns an
 * opaque region of the arena (ib_layout.regions[axis]). */
enum ib_axis {
    IB_AXIS_DRIVER = 0,
    IB_AXIS_LOCK = 1,
    IB_AXIS_ALLOCATOR = 2,
    IB_AXIS_INVALIDATION = 3,
    IB_AXIS_WALKER = 4,
    IB_AXIS_WORKLOAD = 5,
    IB_AXES = 6,
};

/* One strategy's bytes in the arena: shared, per worker (stride apart), per table page. */
struct ib_region {
    uint64_t shared_off;
    uint64_t shared_bytes;
    uint64_t worker_off;
    uint64_t worker_stride;
    uint64_t page_off;
    uint64_t page_stride;
};

struct ib_layout {
    uint64_t total_bytes;
    uint64_t slots_off;
    uint64_t hist_off;
    uint64_t meta_off;
    uint64_t pages_off;
    uint64_t gen_off;             /* per pool page: generation, odd while free */
    uint64_t series_off;          /* per worker: IB_SERIES_SLOTS cumulative op counts */
    uint64_t series_tick_ns;      /* the tick: IB_SERIES_TICK_NS, or coarser for long windows */
    struct ib_region regions[6];  /* IB_AXES: each axis's chosen strategy's own state */
};

/* The catalogue: every registry entry of every axis, in `iommubench list` order. `axis` is
 * the YAML parameter that picks it; `reads`, the parameters only it reads on that axis
 * (comma-separated); `unit`, a workload's throughput unit ("" elsewhere). */
struct ib_catalogue_entry {
    const char *axis;
    const char *name;
    const char *description;
    const char *reads;
    const char *unit;
    uint32_t takes_lock;
    uint32_t negative_control;
    uint32_t prevents_uaf;
    uint32_t fifo;
    uint32_t wait_outlives_abort;
};
uint32_t ib_catalogue_size(void);
int ib_catalogue_get(uint32_t i, struct ib_catalogue_entry *out);
/* The catalogue's measures: the counters declared IB_MEASURE(name) in counters.def and the
 * files it includes, in declaration order. Each is a column of points.csv (summed over the
 * point's workers) and of workers.csv (each worker's own); name is 0 past the end. */
uint32_t ib_catalogue_measure_count(void);
const char *ib_catalogue_measure_name(uint32_t i);
/* The lock families: each IB_LOCK_FAMILY(prefix, "what it locks") of counters.def, in
 * declaration order; 0 past the end. */
uint32_t ib_catalogue_lock_family_count(void);
const char *ib_catalogue_lock_family_prefix(uint32_t i);
const char *ib_catalogue_lock_family_about(uint32_t i);

/* Registries: names are the YAML spellings. */
uint32_t ib_driver_count(void);
const char *ib_driver_name(uint32_t i);
const char *ib_driver_description(uint32_t i);
/* 1 when the driver takes locks of the `lock` axis (and so depends on params.lock). */
int ib_driver_takes_lock(uint32_t i);
uint32_t ib_lock_count(void);
const char *ib_lock_name(uint32_t i);
const char *ib_lock_description(uint32_t i);
uint32_t ib_workload_count(void);
const char *ib_workload_name(uint32_t i);
uint32_t ib_allocator_count(void);
const char *ib_allocator_name(uint32_t i);
uint32_t ib_invalidation_count(void);
const char *ib_invalidation_name(uint32_t i);
uint32_t ib_walker_safety_count(void);
const char *ib_walker_safety_name(uint32_t i);
uint32_t ib_pgtable_count(void);
const char *ib_pgtable_name(uint32_t i);
/* 0: a page table built into the core; else the variant of the object it is loaded from
 * (1 normal, 2 racy-cmpxchg), built on this machine from a kernel tree (core/kernel). */
uint32_t ib_pgtable_object_variant(uint32_t i);
/* Parent, after ib_arena_init and before any worker forks: load the point's page table from
 * its object and create the table in the arena (nothing for a built-in one). */
int ib_pgtable_attach(void *base, const char *object_path);
/* 1 when the point's driver (and lock) apply to its page table. */
int ib_pgtable_accepts(const struct ib_params *p);
/* 0: an allocator built into the core; else the variant of the kernel-code object it is
 * loaded from (1 normal), as for a page table. */
uint32_t ib_allocator_object_variant(uint32_t i);
/* Parent, after ib_pgtable_attach and before any worker forks: load the point's allocator from
 * its object (nothing for a built-in one, or a workload that reads no allocator). */
int ib_allocator_attach(void *base, const char *object_path);
/* Parent, before the arena is unmapped, whether or not the point ran to its audit: what an
 * attach took from this process is given back (a no-op when the audit already did). */
void ib_arena_detach(void *base);

/* The arena's shape (sizes of the shared structs, registry sizes), derived at build time. */
uint32_t ib_core_version(void);
int ib_layout(const struct ib_params *p, struct ib_layout *out);
uint64_t ib_pool_pages_needed(uint64_t region_pages, uint32_t workers);
/* The table pages a point needs, as its strategies declare them (ib_strategy.pool_pages). */
uint64_t ib_pool_pages_for(const struct ib_params *p);

/* Parent side. */
int ib_arena_init(void *base, uint64_t size, const struct ib_params *p);
uint32_t ib_arrived(void *base);
void ib_release(void *base, uint64_t go_ns);
void ib_abort(void *base);
uint32_t ib_finished(void *base);
int ib_read_counters(void *base, uint32_t worker, struct ib_counters *out);
int ib_read_histograms(void *base, uint32_t worker, uint64_t *map_out, uint64_t *unmap_out);
/* Worker's cumulative counted ops at ticks 1..n of series_tick_ns after its counted window
 * started; returns n (at most cap and IB_SERIES_SLOTS). */
uint64_t ib_read_series(void *base, uint32_t worker, uint64_t *out, uint64_t cap);
/* IB_OK, or IB_ERR_AUDIT when the audit could not run: then the point has failed. */
int ib_audit(void *base, struct ib_audit_result *out);

/* Worker side: prepare, arrive, wait for release, run, publish. Returns an ib_exit. */
int ib_worker_run(void *base, uint32_t worker);
/* Walker side: arrive with the workers, then dump the table pass after pass until every
 * worker has finished. */
int ib_walker_run(void *base, uint32_t walker);
int ib_read_walker_counters(void *base, uint32_t walker, struct ib_walker_counters *out);

/* Single-threaded hooks for the differential tests against the reference model. */
int ib_debug_map(void *base, uint64_t pfn, uint64_t frame);
int ib_debug_unmap(void *base, uint64_t pfn, uint64_t *frame_out);
int ib_translate(void *base, uint64_t pfn, uint64_t *frame_out);
uint64_t ib_debug_dump(void *base, uint64_t *pfns, uint64_t *frames, uint64_t cap);

/* Clocks and calibration. */
uint64_t ib_now_ns(void);
double ib_timer_cost_ns(void);
uint64_t ib_hist_index(uint64_t value);
double ib_handoff_probe_ns(int cpu_a, int cpu_b, uint32_t rounds);

#endif
