/* The peer loop: Concurrency Kit's spinlocks around the harness's page-table walk, with none of
 * the harness around it (no counters, no sampling, no arena), to check that the harness's own
 * locks cost what a reference implementation costs.
 *
 * Each thread runs the prefault workload as the harness does: the region is split into chunks
 * dealt round-robin to the threads; each cycle maps every owned page (a 4-level walk from the
 * root, installing a missing table with a plain store, then a leaf store) and unmaps it again
 * (walk, leaf clear), each map and each unmap under one domain lock.
 *
 *   peer ALGO THREADS REGION_MIB CHUNK_PAGES WARMUP_S SECONDS  ->  "ops_per_s <float>"
 *
 * ALGO: fas (ck_spinlock_fas), ttas (a test-and-test-and-set built from ck_pr_*), ticket
 * (ck_spinlock_ticket), mcs (ck_spinlock_mcs), or none (no lock: the loop's own cost, the
 * counterpart of the harness's lockfree driver with 128 MiB chunks, where no table is
 * shared). Thread i is pinned to the i-th allowed CPU.
 */
#define _GNU_SOURCE
#include <ck_pr.h>
#include <ck_spinlock.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VALID 1ull
#define TABLE 2ull
#define BASE_PFN (1ull << 18)
#define FRAME_OFFSET (1ull << 30)
#define CLOCK_BATCH 1024u
#define MAX_THREADS 64

static uint64_t *pool;
static uint64_t pool_next = 1; /* bump allocator: under the lock, or atomic with none */
static uint64_t pages_total, chunk_pages;
static unsigned nthreads;
static uint64_t warm_end_ns, end_ns;
static unsigned arrived; /* start barrier */

static ck_spinlock_fas_t fas_lock __attribute__((aligned(128))) = CK_SPINLOCK_FAS_INITIALIZER;
static ck_spinlock_ticket_t ticket_lock __attribute__((aligned(128))) =
    CK_SPINLOCK_TICKET_INITIALIZER;
static ck_spinlock_mcs_t mcs_lock __attribute__((aligned(128))) = CK_SPINLOCK_MCS_INITIALIZER;
static unsigned ttas_lock __attribute__((aligned(128)));

struct worker {
    unsigned index;
    int cpu;
    uint64_t counted;
    struct ck_spinlock_mcs node __attribute__((aligned(128)));
} __attribute__((aligned(128)));

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t *table(uint64_t index) { return pool + index * 512; }

/* The walk. Under a lock (shared == 0) a missing table is taken from the pool and installed
 * with a release store, as the harness's domain-lock does; with no lock (shared == 1) it is
 * installed with a compare-and-swap, as the lockfree driver does, and a loser's table is
 * left unused (the pool has room for the few tables the threads share). */
static inline __attribute__((always_inline)) uint64_t *walk(uint64_t pfn, int install,
                                                            int shared)
{
    uint64_t *t = table(0);
#pragma GCC unroll 4
    for (int level = 3; level > 0; level--) {
        uint64_t *pte = &t[(pfn >> (9 * level)) & 511];
        uint64_t e = __atomic_load_n(pte, __ATOMIC_ACQUIRE);
        if (__builtin_expect(!(e & VALID), 0)) {
            if (!install)
                return 0;
            uint64_t fresh = shared ? __atomic_fetch_add(&pool_next, 1, __ATOMIC_RELAXED)
                                    : pool_next++;
            memset(table(fresh), 0, 4096);
            uint64_t want = (fresh << 12) | VALID | TABLE;
            if (!shared)
                __atomic_store_n(pte, want, __ATOMIC_RELEASE);
            else if (!__atomic_compare_exchange_n(pte, &e, want, 0, __ATOMIC_RELEASE,
                                                  __ATOMIC_ACQUIRE))
                want = e;
            e = want;
        }
        t = table(e >> 12);
    }
    return &t[pfn & 511];
}

static inline __attribute__((always_inline)) void ttas_acquire(void)
{
    while (ck_pr_load_uint(&ttas_lock) != 0 || ck_pr_fas_uint(&ttas_lock, 1) != 0)
        ck_pr_stall();
    ck_pr_fence_lock();
}

static inline __attribute__((always_inline)) void ttas_release(void)
{
    ck_pr_fence_unlock();
    ck_pr_store_uint(&ttas_lock, 0);
}

#define LOCK_none(w) ((void)(w))
#define UNLOCK_none(w) ((void)(w))
#define LOCK_fas(w) ck_spinlock_fas_lock(&fas_lock)
#define UNLOCK_fas(w) ck_spinlock_fas_unlock(&fas_lock)
#define LOCK_ttas(w) ttas_acquire()
#define UNLOCK_ttas(w) ttas_release()
#define LOCK_ticket(w) ck_spinlock_ticket_lock(&ticket_lock)
#define UNLOCK_ticket(w) ck_spinlock_ticket_unlock(&ticket_lock)
#define LOCK_mcs(w) ck_spinlock_mcs_lock(&mcs_lock, &(w)->node)
#define UNLOCK_mcs(w) ck_spinlock_mcs_unlock(&mcs_lock, &(w)->node)

/* Returns 1 when the window closed. Counting starts at the first batch past warm-up. */
static inline int clock_check(struct worker *w, uint64_t *ops, int *counting)
{
    uint64_t now = now_ns();
    if (!*counting && now >= warm_end_ns) {
        *counting = 1;
        *ops = 0;
    }
    if (now >= end_ns) {
        w->counted = *ops;
        return 1;
    }
    return 0;
}

#define DEFINE_RUN(algo, shared)                                                                   \
    static void run_##algo(struct worker *w)                                                       \
    {                                                                                              \
        const uint64_t stride = chunk_pages * nthreads, end = BASE_PFN + pages_total;              \
        uint64_t ops = 0;                                                                          \
        int counting = 0;                                                                          \
        for (;;) {                                                                                 \
            for (int mapping = 1; mapping >= 0; mapping--) {                                       \
                for (uint64_t first = BASE_PFN + w->index * chunk_pages; first < end;              \
                     first += stride) {                                                            \
                    uint64_t last = first + chunk_pages < end ? first + chunk_pages : end;         \
                    for (uint64_t pfn = first; pfn < last; pfn++) {                                \
                        LOCK_##algo(w);                                                            \
                        uint64_t *leaf = walk(pfn, mapping, shared);                               \
                        if (mapping) {                                                             \
                            if (!(__atomic_load_n(leaf, __ATOMIC_RELAXED) & VALID))                \
                                __atomic_store_n(leaf, ((pfn + FRAME_OFFSET) << 12) | VALID,       \
                                                 __ATOMIC_RELEASE);                                \
                        } else if (leaf && (__atomic_load_n(leaf, __ATOMIC_RELAXED) & VALID)) {    \
                            __atomic_store_n(leaf, 0, __ATOMIC_RELAXED);                           \
                        }                                                                          \
                        UNLOCK_##algo(w);                                                          \
                        if (__builtin_expect((++ops & (CLOCK_BATCH - 1)) == 0, 0) &&               \
                            clock_check(w, &ops, &counting))                                       \
                            return;                                                                \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_RUN(none, 1)
DEFINE_RUN(fas, 0)
DEFINE_RUN(ttas, 0)
DEFINE_RUN(ticket, 0)
DEFINE_RUN(mcs, 0)

static void (*run)(struct worker *);

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
        fprintf(stderr, "peer: cannot pin a thread to CPU %d\n", w->cpu);
        exit(1);
    }
    __atomic_fetch_add(&arrived, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&arrived, __ATOMIC_ACQUIRE) < nthreads)
        ck_pr_stall();
    run(w);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: peer none|fas|ttas|ticket|mcs THREADS REGION_MIB CHUNK_PAGES "
                        "WARMUP_S SECONDS\n");
        return 2;
    }
    const char *algo = argv[1];
    run = !strcmp(algo, "none")     ? run_none
          : !strcmp(algo, "fas")    ? run_fas
          : !strcmp(algo, "ttas")   ? run_ttas
          : !strcmp(algo, "ticket") ? run_ticket
          : !strcmp(algo, "mcs")    ? run_mcs
                                    : 0;
    nthreads = (unsigned)atoi(argv[2]);
    pages_total = strtoull(argv[3], 0, 10) * 256;
    chunk_pages = strtoull(argv[4], 0, 10);
    double warmup = atof(argv[5]), seconds = atof(argv[6]);
    cpu_set_t allowed;
    sched_getaffinity(0, sizeof(allowed), &allowed);
    if (!run || nthreads < 1 || nthreads > MAX_THREADS ||
        nthreads > (unsigned)CPU_COUNT(&allowed) || !pages_total || !chunk_pages || seconds <= 0) {
        fprintf(stderr, "peer: bad arguments (ALGO one of none, fas, ttas, ticket, mcs; THREADS at "
                        "most the allowed CPUs)\n");
        return 2;
    }
    /* the tables a full mapping needs, 4 KiB each: leaves, plus the levels above, plus root */
    uint64_t tables = pages_total / 512 + 64 + 8 * MAX_THREADS;
    pool = aligned_alloc(4096, tables * 4096);
    memset(pool, 0, 4096);
    static struct worker workers[MAX_THREADS];
    pthread_t threads[MAX_THREADS];
    int cpu = -1;
    uint64_t t0 = now_ns();
    warm_end_ns = t0 + (uint64_t)(warmup * 1e9);
    end_ns = warm_end_ns + (uint64_t)(seconds * 1e9);
    for (unsigned i = 0; i < nthreads; i++) {
        do
            cpu++;
        while (!CPU_ISSET(cpu, &allowed));
        workers[i].index = i;
        workers[i].cpu = cpu;
        if (pthread_create(&threads[i], 0, thread_main, &workers[i]) != 0) {
            fprintf(stderr, "peer: cannot start thread %u\n", i);
            return 1;
        }
    }
    uint64_t ops = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(threads[i], 0);
        ops += workers[i].counted;
    }
    printf("ops_per_s %.1f\n", (double)ops / seconds);
    return 0;
}
