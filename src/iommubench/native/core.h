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

/* Bumped whenever the arena layout or this interface changes; the Python side refuses to run
 * a compiled core whose version differs from the one it expects. */
#define IB_CORE_VERSION 3

#define IB_HIST_SUB_BITS 6
#define IB_HIST_BUCKETS 2304 /* 64 sub-buckets x 36 octaves */
#define IB_MAX_WORKERS 4096

enum ib_exit {
    IB_OK = 0,
    IB_ERR_PARAMS = 1,
    IB_ERR_POOL_EMPTY = 2,
    IB_ERR_ABORTED = 3,
};

/* One point's parameters, as the harness resolved them (names as in the YAML). */
struct ib_params {
    uint32_t workload;      /* index into the workload registry */
    uint32_t driver;        /* index into the driver registry */
    uint32_t workers;
    uint32_t sample_every;  /* time one op in N; 0 = off */
    uint64_t region_pages;
    uint64_t chunk_pages;
    uint64_t cycles;        /* 0 = run for duration; K = exactly K map/unmap cycles */
    uint64_t cs_ns;         /* busy work inside each map/unmap */
    uint64_t warmup_ns;
    uint64_t duration_ns;
    uint64_t pool_pages;    /* table pages in the pool, root included */
    uint64_t seed;
};

/* Per-worker counters, private during the run and published into the worker's slot at the
 * end. Keep every field a uint64_t: the harness reads them by name. */
struct ib_counters {
    uint64_t ops;
    uint64_t maps;
    uint64_t unmaps;
    uint64_t lock_acquisitions;
    uint64_t lock_contended;
    uint64_t lock_wait_ns;
    uint64_t cas_attempts;
    uint64_t cas_failures;
    uint64_t tables_allocated;
    uint64_t tables_freed;
    uint64_t pool_refills;
    uint64_t map_conflicts;   /* map found the leaf already present */
    uint64_t unmap_missing;   /* unmap found no leaf, or another frame: a lost mapping */
    uint64_t cycles;
    uint64_t samples;
    uint64_t start_ns;
    uint64_t end_ns;
};

struct ib_audit_result {
    uint64_t expected_mappings;
    uint64_t present_mappings;
    uint64_t lost_mappings;       /* in a ledger, absent from the table */
    uint64_t wrong_translations;  /* present with another frame */
    uint64_t stray_mappings;      /* in the table, in no ledger */
    uint64_t reachable_tables;
    uint64_t free_pages;
    uint64_t leaked_tables;       /* neither reachable nor free */
    uint64_t double_frees;        /* free twice, or free and reachable */
    uint64_t multiply_linked;     /* reachable through more than one entry */
    uint64_t corrupt_entries;     /* an entry pointing outside the pool */
};

struct ib_layout {
    uint64_t total_bytes;
    uint64_t slots_off;
    uint64_t hist_off;
    uint64_t meta_off;
    uint64_t pages_off;
};

/* Registries: names are the YAML spellings. */
uint32_t ib_driver_count(void);
const char *ib_driver_name(uint32_t i);
uint32_t ib_workload_count(void);
const char *ib_workload_name(uint32_t i);

uint32_t ib_core_version(void);
int ib_layout(const struct ib_params *p, struct ib_layout *out);
uint64_t ib_pool_pages_needed(uint64_t region_pages, uint32_t workers);

/* Parent side. */
int ib_arena_init(void *base, uint64_t size, const struct ib_params *p);
uint32_t ib_arrived(void *base);
void ib_release(void *base, uint64_t go_ns);
void ib_abort(void *base);
uint32_t ib_finished(void *base);
int ib_read_counters(void *base, uint32_t worker, struct ib_counters *out);
int ib_read_histograms(void *base, uint32_t worker, uint64_t *map_out, uint64_t *unmap_out);
int ib_audit(void *base, struct ib_audit_result *out);

/* Worker side: prefault, arrive, wait for release, run, publish. Returns an ib_exit. */
int ib_worker_run(void *base, uint32_t worker);

/* Single-threaded hooks for the differential tests against the reference model. */
int ib_debug_map(void *base, uint64_t iova_pfn, uint64_t frame);
int ib_debug_unmap(void *base, uint64_t iova_pfn, uint64_t *frame_out);
int ib_translate(void *base, uint64_t iova_pfn, uint64_t *frame_out);
uint64_t ib_debug_dump(void *base, uint64_t *pfns, uint64_t *frames, uint64_t cap);

/* Clocks and calibration. */
uint64_t ib_now_ns(void);
double ib_timer_cost_ns(void);
uint64_t ib_hist_index(uint64_t value);
double ib_handoff_probe_ns(int cpu_a, int cpu_b, uint32_t rounds);

#endif
