/* stress: drives the native core with threads instead of processes, no Python involved, so
 * the same sources can run under ThreadSanitizer (tests/test_native_tsan.py builds it with
 * -fsanitize=thread together with every src/iommubench/native .c file).
 *
 *   stress DRIVER [WORKERS [REGION_MIB [CYCLES]]]
 *
 * Runs the prefault workload with one-page chunks (every worker races to install the same
 * tables) for exactly CYCLES map/unmap cycles, then audits the arena and prints the audit and
 * the counters summed over workers as key=value lines. Exit 0 when the audit is clean; the
 * naive driver (the negative control) exits 0 either way and only reports. Exit 1 for a dirty
 * audit, 2 for bad arguments or a failed setup.
 *
 * ib_worker_run does not pin: threads go wherever the scheduler puts them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

struct worker_arg {
    void *base;
    uint32_t index;
    int rc;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    a->rc = ib_worker_run(a->base, a->index);
    return 0;
}

static long parse_arg(int argc, char **argv, int i, long fallback)
{
    if (argc <= i)
        return fallback;
    char *end;
    long v = strtol(argv[i], &end, 10);
    return (*end || v <= 0) ? -1 : v;
}

static int driver_index(const char *name)
{
    for (uint32_t i = 0; i < ib_driver_count(); i++)
        if (strcmp(ib_driver_name(i), name) == 0)
            return (int)i;
    return -1;
}

static int workload_index(const char *name)
{
    for (uint32_t i = 0; i < ib_workload_count(); i++)
        if (strcmp(ib_workload_name(i), name) == 0)
            return (int)i;
    return -1;
}

#define COUNTER_FIELDS(X)                                                                  \
    X(ops) X(maps) X(unmaps) X(lock_acquisitions) X(lock_contended) X(cas_attempts)       \
    X(cas_failures) X(tables_allocated) X(tables_freed) X(pool_refills) X(map_conflicts)  \
    X(unmap_missing) X(cycles)

#define AUDIT_FIELDS(X)                                                                    \
    X(expected_mappings) X(present_mappings) X(lost_mappings) X(wrong_translations)       \
    X(stray_mappings) X(reachable_tables) X(free_pages) X(leaked_tables) X(double_frees)  \
    X(multiply_linked) X(corrupt_entries)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DRIVER [WORKERS [REGION_MIB [CYCLES]]]\n", argv[0]);
        return 2;
    }
    int driver = driver_index(argv[1]);
    int workload = workload_index("prefault");
    long workers = parse_arg(argc, argv, 2, 2);
    long region_mib = parse_arg(argc, argv, 3, 4);
    long cycles = parse_arg(argc, argv, 4, 3);
    if (driver < 0 || workload < 0 || workers < 1 || workers > 64 || region_mib < 1 ||
        cycles < 1) {
        fprintf(stderr, "bad arguments (driver %s)\n", argv[1]);
        return 2;
    }

    struct ib_params p;
    memset(&p, 0, sizeof(p));
    p.workload = (uint32_t)workload;
    p.driver = (uint32_t)driver;
    p.workers = (uint32_t)workers;
    p.region_pages = (uint64_t)region_mib * 256;
    p.chunk_pages = 1;
    p.cycles = (uint64_t)cycles;
    p.pool_pages = ib_pool_pages_needed(p.region_pages, p.workers);
    p.seed = 1;

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

    pthread_t threads[64];
    struct worker_arg args[64];
    for (long w = 0; w < workers; w++) {
        args[w] = (struct worker_arg){base, (uint32_t)w, -1};
        if (pthread_create(&threads[w], 0, worker_main, &args[w]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    while (ib_arrived(base) != (uint32_t)workers)
        ;
    ib_release(base, ib_now_ns());
    int worker_failed = 0;
    for (long w = 0; w < workers; w++) {
        pthread_join(threads[w], 0);
        if (args[w].rc != 0) {
            printf("worker %ld returned %d\n", w, args[w].rc);
            worker_failed = 1;
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
    struct ib_audit_result r;
    if (ib_audit(base, &r) != 0) {
        fprintf(stderr, "ib_audit failed\n");
        return 2;
    }

    printf("driver=%s workers=%ld region_pages=%llu cycles=%ld pool_pages=%llu\n", argv[1],
           workers, (unsigned long long)p.region_pages, cycles,
           (unsigned long long)p.pool_pages);
#define PRINT(f) printf("audit.%s=%llu\n", #f, (unsigned long long)r.f);
    AUDIT_FIELDS(PRINT)
#undef PRINT
#define PRINT(f) printf("counters.%s=%llu\n", #f, (unsigned long long)sum.f);
    COUNTER_FIELDS(PRINT)
#undef PRINT

    /* fixed cycles leave nothing mapped: every table page is reachable or free, every map
     * and unmap happened once per page per cycle, and none found the wrong state */
    uint64_t want_ops = p.region_pages * (uint64_t)cycles;
    int clean = !worker_failed && r.expected_mappings == 0 && r.present_mappings == 0 &&
                r.lost_mappings == 0 && r.wrong_translations == 0 && r.stray_mappings == 0 &&
                r.leaked_tables == 0 && r.double_frees == 0 && r.multiply_linked == 0 &&
                r.corrupt_entries == 0 && r.reachable_tables + r.free_pages == p.pool_pages &&
                sum.map_conflicts == 0 && sum.unmap_missing == 0 && sum.maps == want_ops &&
                sum.unmaps == want_ops && sum.cycles == (uint64_t)(cycles * workers);
    printf("audit_ok=%d\n", clean);
    free(base);
    if (strcmp(argv[1], "naive") == 0)
        return 0; /* the negative control: reported, never failed */
    return clean ? 0 : 1;
}
