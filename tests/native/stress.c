/* stress: drives the native core with threads instead of processes, no Python involved, so
 * the same sources can run under ThreadSanitizer (tests/core/test_native_tsan.py builds it with
 * -fsanitize=thread together with every src/iommubench/core/native .c file).
 *
 *   stress DRIVER [WORKERS [REGION_MIB [CYCLES]]] [KEY=VALUE ...]
 *
 * By default it runs the prefault workload with one-page chunks (every worker races to
 * install the same tables) for exactly CYCLES map/unmap cycles, then audits the arena and
 * prints the audit and the counters summed over workers (and walkers) as key=value lines.
 * KEY=VALUE options, anywhere on the line:
 *
 *   lock=NAME                  the lock the driver takes (lock registry name; default ttas)
 *   workload=prefault|dma      dma: streaming DMA, always timed (REGION_MIB, CYCLES unused)
 *   duration_ms=N              run for N ms instead of CYCLES cycles (warm-up 0)
 *   chunk_pages=N unmap_pages=N              prefault: chunk size, pages per unmap call
 *   allocator=NAME invalidation=NAME         dma: registry names (default rcache, lazy)
 *   completion=local|remote depot=bounded|list queue_depth=N dma_ns=N inv_ns=N dma_bits=N
 *   granules=A,B,...           dma: the granule mix (default 1)
 *   walkers=N walker_safety=NAME walker_gap_us=N   walker threads dumping the table meanwhile
 *   pgtable=NAME kernel_object=PATH          a page table (or allocator) loaded from the
 *                              kernel-code object (core/kernel); one worker: its per-process
 *                              context is one thread's here
 *
 * Exit 0 when the audit is clean; the naive driver (the negative control) exits 0 either way
 * and only reports. Exit 1 for a dirty audit, 2 for bad arguments or a failed setup. Freed-table
 * reads by walkers fail the audit only for the modes that promise none (exclusive and
 * deferred-free); for unsafe and group-mutex they are reported.
 *
 * ib_worker_run and ib_walker_run do not pin: threads go wherever the scheduler puts them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "walkers/safety.h"

#define MAX_THREADS 64

struct thread_arg {
    void *base;
    uint32_t index;
    int walker;
    int rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    a->rc = a->walker ? ib_walker_run(a->base, a->index) : ib_worker_run(a->base, a->index);
    return 0;
}

/* A non-negative decimal, or -1. */
static long parse_long(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return (!*s || *end || v < 0) ? -1 : v;
}

typedef uint32_t (*count_fn)(void);
typedef const char *(*name_fn)(uint32_t);

static int registry_index(count_fn count, name_fn name, const char *want)
{
    for (uint32_t i = 0; i < count(); i++)
        if (strcmp(name(i), want) == 0)
            return (int)i;
    return -1;
}

static int word_index(const char *const *words, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (strcmp(words[i], want) == 0)
            return i;
    return -1;
}

#define COUNTER_FIELDS(X)                                                                  \
    X(ops) X(maps) X(unmaps) X(lock_acquisitions) X(lock_contended) X(cas_attempts)       \
    X(cas_failures) X(tables_allocated) X(tables_freed) X(pool_refills) X(map_conflicts)  \
    X(unmap_missing) X(cycles) X(pages_mapped) X(rcache_hits) X(rcache_misses)            \
    X(depot_pushes) X(depot_pops) X(depot_trims) X(iova_fallbacks) X(invalidations)       \
    X(flushes) X(fq_entries) X(fq_full_flushes) X(fq_timeout_flushes) X(fq_early_frees)   \
    X(iova_alloc_failures) X(iova_bad_frees) X(ring_full) X(guard_contended)              \
    X(limbo_pages_max) X(grace_periods)

#define AUDIT_FIELDS(X)                                                                    \
    X(expected_mappings) X(present_mappings) X(lost_mappings) X(wrong_translations)       \
    X(stray_mappings) X(reachable_tables) X(free_pages) X(leaked_tables) X(double_frees)  \
    X(multiply_linked) X(corrupt_entries) X(iova_ranges) X(iova_cached) X(iova_leaks)     \
    X(iova_double_allocs) X(iova_corrupt) X(inflight_left) X(limbo_pages)

#define WALKER_FIELDS(X)                                                                   \
    X(passes) X(entries_read) X(tables_read) X(uaf_reads) X(uaf_tables) X(corrupt_reads)

static const char *const completions[] = {"local", "remote"};
static const char *const depots[] = {"bounded", "list"};

static const char *kernel_object; /* kernel_object=PATH */

/* Applies one KEY=VALUE option to p; returns 0, or -1 for a bad one. */
static int apply_option(struct ib_params *p, const char *opt, long *duration_ms)
{
    const char *eq = strchr(opt, '=');
    size_t klen = (size_t)(eq - opt);
    const char *v = eq + 1;
    long n = parse_long(v);
    int i, positive = n > 0 ? 0 : -1; /* -1 unless v is a positive decimal */
#define KEY(k) (klen == strlen(k) && strncmp(opt, k, klen) == 0)
    if (KEY("workload"))
        i = registry_index(ib_workload_count, ib_workload_name, v), p->workload = (uint32_t)i;
    else if (KEY("lock"))
        i = registry_index(ib_lock_count, ib_lock_name, v), p->lock = (uint32_t)i;
    else if (KEY("allocator"))
        i = registry_index(ib_allocator_count, ib_allocator_name, v), p->allocator = (uint32_t)i;
    else if (KEY("invalidation"))
        i = registry_index(ib_invalidation_count, ib_invalidation_name, v),
        p->invalidation = (uint32_t)i;
    else if (KEY("pgtable"))
        i = registry_index(ib_pgtable_count, ib_pgtable_name, v), p->pgtable = (uint32_t)i;
    else if (KEY("kernel_object"))
        i = *v ? 0 : -1, kernel_object = v;
    else if (KEY("walker_safety"))
        i = registry_index(ib_walker_safety_count, ib_walker_safety_name, v),
        p->walker_safety = (uint32_t)i;
    else if (KEY("completion"))
        i = word_index(completions, 2, v), p->completion = (uint32_t)i;
    else if (KEY("depot"))
        i = word_index(depots, 2, v), p->depot = (uint32_t)i;
    else if (KEY("duration_ms"))
        i = positive, *duration_ms = n;
    else if (KEY("chunk_pages"))
        i = positive, p->chunk_pages = (uint64_t)n;
    else if (KEY("unmap_pages"))
        i = positive, p->unmap_pages = (uint64_t)n;
    else if (KEY("queue_depth"))
        i = positive, p->queue_depth = (uint32_t)n;
    else if (KEY("dma_ns"))
        i = (int)(n < 0 ? -1 : 0), p->dma_ns = (uint64_t)n;
    else if (KEY("inv_ns"))
        i = (int)(n < 0 ? -1 : 0), p->inv_ns = (uint64_t)n;
    else if (KEY("dma_bits"))
        i = positive, p->dma_bits = (uint32_t)n;
    else if (KEY("walker_gap_us"))
        i = (int)(n < 0 ? -1 : 0), p->walker_gap_ns = (uint64_t)n * 1000;
    else if (KEY("walkers"))
        i = (n < 0 || n > MAX_THREADS / 2) ? -1 : 0, p->walkers = (uint32_t)n;
    else if (KEY("granules")) {
        p->n_granules = 0;
        i = 0;
        for (const char *s = v; *s && i >= 0;) {
            char *end;
            long g = strtol(s, &end, 10);
            if (end == s || g <= 0 || p->n_granules == 64 || (*end && *end != ','))
                i = -1;
            else
                p->granules[p->n_granules++] = (uint32_t)g;
            s = *end ? end + 1 : end;
        }
        if (!p->n_granules)
            i = -1;
    } else
        i = -1;
#undef KEY
    return i < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *usage = "usage: %s DRIVER [WORKERS [REGION_MIB [CYCLES]]] [KEY=VALUE ...]\n";
    const char *pos[4] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++)
        if (!strchr(argv[i], '=')) {
            if (npos == 4) {
                fprintf(stderr, usage, argv[0]);
                return 2;
            }
            pos[npos++] = argv[i];
        }
    if (npos < 1) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    const char *driver_name = pos[0];
    int driver = registry_index(ib_driver_count, ib_driver_name, driver_name);
    long workers = npos > 1 ? parse_long(pos[1]) : 2;
    long region_mib = npos > 2 ? parse_long(pos[2]) : 4;
    long cycles = npos > 3 ? parse_long(pos[3]) : 3;
    if (driver < 0 || workers < 1 || workers > MAX_THREADS / 2 || region_mib < 1 ||
        cycles < 1) {
        fprintf(stderr, "bad arguments (driver %s)\n", driver_name);
        return 2;
    }

    /* the harness's defaults (parameters.py, encoded by parameters.encode) */
    struct ib_params p;
    memset(&p, 0, sizeof(p));
    p.workload = (uint32_t)registry_index(ib_workload_count, ib_workload_name, "prefault");
    p.driver = (uint32_t)driver;
    p.lock = (uint32_t)registry_index(ib_lock_count, ib_lock_name, "ttas");
    p.workers = (uint32_t)workers;
    p.chunk_pages = 1;
    p.seed = 1;
    p.allocator = (uint32_t)registry_index(ib_allocator_count, ib_allocator_name, "rcache");
    p.invalidation =
        (uint32_t)registry_index(ib_invalidation_count, ib_invalidation_name, "lazy");
    p.depot = 1;
    p.queues_per_worker = 1;
    p.queue_depth = 32;
    p.inv_ns = 240;
    p.dma_bits = 32;
    p.n_granules = 1;
    p.granules[0] = 1;
    p.unmap_pages = 1;
    long duration_ms = 0;
    for (int i = 1; i < argc; i++)
        if (strchr(argv[i], '=') && apply_option(&p, argv[i], &duration_ms) != 0) {
            fprintf(stderr, "bad option %s\n", argv[i]);
            return 2;
        }
    int dma = strcmp(ib_workload_name(p.workload), "dma") == 0;
    if (dma) {
        /* no prefault region: the audit then expects no mapping once the I/Os are drained */
        p.region_pages = 0;
        p.chunk_pages = 0;
        p.cycles = 0;
        if (!duration_ms)
            duration_ms = 50;
    } else {
        p.region_pages = (uint64_t)region_mib * 256;
        p.cycles = duration_ms ? 0 : (uint64_t)cycles;
    }
    p.duration_ns = (uint64_t)duration_ms * 1000000ull;
    p.pool_pages = ib_pool_pages_for(&p);
    long walkers = p.walkers;

    struct ib_layout layout;
    if (ib_layout(&p, &layout) != 0) {
        fprintf(stderr, "ib_layout rejected the parameters\n");
        return 2;
    }
    uint64_t size = (layout.total_bytes + 4095) / 4096 * 4096;
    void *base = aligned_alloc(4096, size);
    if (!base) {
        fprintf(stderr, "out of memory (%llu bytes)\n", (unsigned long long)size);
        return 2;
    }
    memset(base, 0, size);
    if (ib_arena_init(base, size, &p) != 0) {
        fprintf(stderr, "ib_arena_init failed\n");
        return 2;
    }
    if (ib_pgtable_attach(base, kernel_object) != 0 ||
        ib_allocator_attach(base, kernel_object) != 0) {
        fprintf(stderr, "cannot load the kernel code (kernel_object=PATH)\n");
        return 2;
    }

    long threads_n = workers + walkers;
    pthread_t threads[MAX_THREADS];
    struct thread_arg args[MAX_THREADS];
    for (long t = 0; t < threads_n; t++) {
        int walker = t >= workers;
        args[t] = (struct thread_arg){base, (uint32_t)(walker ? t - workers : t), walker, -1};
        if (pthread_create(&threads[t], 0, thread_main, &args[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    /* workers and walkers all arrive at the barrier before anyone is released */
    while (ib_arrived(base) != (uint32_t)threads_n)
        ;
    ib_release(base, ib_now_ns());
    int thread_failed = 0;
    for (long t = 0; t < threads_n; t++) {
        pthread_join(threads[t], 0);
        if (args[t].rc != 0) {
            printf("%s %u returned %d\n", args[t].walker ? "walker" : "worker", args[t].index,
                   args[t].rc);
            thread_failed = 1;
        }
    }

    struct ib_counters sum, c;
    memset(&sum, 0, sizeof(sum));
    for (long w = 0; w < workers; w++) {
        ib_read_counters(base, (uint32_t)w, &c);
#define ADD(f) sum.f += c.f;
        COUNTER_FIELDS(ADD)
#undef ADD
    }
    struct ib_walker_counters wsum, wc;
    memset(&wsum, 0, sizeof(wsum));
    for (long w = 0; w < walkers; w++) {
        ib_read_walker_counters(base, (uint32_t)w, &wc);
#define ADD(f) wsum.f += wc.f;
        WALKER_FIELDS(ADD)
#undef ADD
    }
    struct ib_audit_result r;
    if (ib_audit(base, &r) != 0) {
        fprintf(stderr, "ib_audit failed\n");
        return 2;
    }

    printf("driver=%s lock=%s workload=%s workers=%ld walkers=%ld region_pages=%llu cycles=%llu "
           "duration_ms=%ld pool_pages=%llu\n",
           driver_name, ib_lock_name(p.lock), ib_workload_name(p.workload), workers, walkers,
           (unsigned long long)p.region_pages, (unsigned long long)p.cycles, duration_ms,
           (unsigned long long)p.pool_pages);
    if (dma)
        printf("allocator=%s invalidation=%s completion=%s depot=%s n_granules=%u\n",
               ib_allocator_name(p.allocator), ib_invalidation_name(p.invalidation),
               completions[p.completion], depots[p.depot], p.n_granules);
    if (walkers)
        printf("walker_safety=%s\n", ib_walker_safety_name(p.walker_safety));
#define PRINT(f) printf("audit.%s=%llu\n", #f, (unsigned long long)r.f);
    AUDIT_FIELDS(PRINT)
#undef PRINT
#define PRINT(f) printf("counters.%s=%llu\n", #f, (unsigned long long)sum.f);
    COUNTER_FIELDS(PRINT)
#undef PRINT
#define PRINT(f) printf("walkers.%s=%llu\n", #f, (unsigned long long)wsum.f);
    WALKER_FIELDS(PRINT)
#undef PRINT

    /* every workload: the page table is sound, every pool page is reachable or free (none
     * left in limbo), and no map or unmap found the wrong state */
    int clean = !thread_failed && r.lost_mappings == 0 && r.wrong_translations == 0 &&
                r.stray_mappings == 0 && r.leaked_tables == 0 && r.double_frees == 0 &&
                r.multiply_linked == 0 && r.corrupt_entries == 0 && r.limbo_pages == 0 &&
                r.reachable_tables + r.free_pages == p.pool_pages && sum.map_conflicts == 0 &&
                sum.unmap_missing == 0 && sum.ops > 0;
    if (dma) {
        /* nothing mapped after the drain; no IOVA leaked, handed out twice or freed early */
        clean = clean && r.present_mappings == 0 && r.iova_leaks == 0 &&
                r.iova_double_allocs == 0 && r.iova_corrupt == 0 && r.inflight_left == 0 &&
                sum.fq_early_frees == 0 && sum.iova_bad_frees == 0;
    } else if (p.cycles) {
        /* fixed cycles leave nothing mapped, and every map and unmap happened once per page
         * per cycle */
        uint64_t want_ops = p.region_pages * p.cycles;
        clean = clean && r.expected_mappings == 0 && r.present_mappings == 0 &&
                sum.maps == want_ops && sum.unmaps == want_ops &&
                sum.cycles == p.cycles * (uint64_t)workers;
    } else {
        /* timed: every owned chunk is left mapped */
        clean = clean && r.expected_mappings == p.region_pages &&
                r.present_mappings == p.region_pages;
    }
    if (walkers && (ib_walker_mode_of(p.walker_safety)->about.flags & IB_PREVENTS_UAF))
        clean = clean && wsum.uaf_reads == 0 && wsum.uaf_tables == 0;
    printf("audit_ok=%d\n", clean);
    ib_arena_detach(base);
    free(base);
    if (strcmp(driver_name, "naive") == 0)
        return 0; /* the negative control: reported, never failed */
    return clean ? 0 : 1;
}
