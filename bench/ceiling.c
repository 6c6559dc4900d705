/* The ceiling for one worker: a minimal hand-written loop doing what the harness's lockfree
 * driver does per op on the prefault workload (a 4-level walk from the root, CAS install of a
 * missing table, a leaf store on map, a leaf clear on unmap), with none of the harness around
 * it: no counters, no sampling, no clock checks, no arena.
 *
 *   ceiling REGION_MIB SECONDS   ->   prints "ops_per_s <float>"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VALID 1ull
#define TABLE 2ull
#define BASE_PFN (1ull << 18)

static uint64_t *pool;
static uint64_t next_free = 1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t *table(uint64_t index) { return pool + index * 512; }

static uint64_t *walk(uint64_t pfn)
{
    uint64_t *t = table(0);
    for (int level = 3; level > 0; level--) {
        uint64_t *pte = &t[(pfn >> (9 * level)) & 511];
        uint64_t e = __atomic_load_n(pte, __ATOMIC_ACQUIRE);
        if (!(e & VALID)) {
            uint64_t fresh = next_free++;
            memset(table(fresh), 0, 4096);
            uint64_t want = (fresh << 12) | VALID | TABLE;
            e = 0;
            if (__atomic_compare_exchange_n(pte, &e, want, 0, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
                e = want;
        }
        t = table(e >> 12);
    }
    return &t[pfn & 511];
}

int main(int argc, char **argv)
{
    uint64_t pages = (argc > 1 ? strtoull(argv[1], 0, 10) : 1024) * 256;
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    pool = aligned_alloc(4096, (pages / 512 + 16) * 4096 * 2);
    memset(pool, 0, 4096);
    uint64_t ops = 0, end = 0, t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
    while (!end) {
        for (uint64_t pfn = BASE_PFN; pfn < BASE_PFN + pages; pfn++) {
            uint64_t *leaf = walk(pfn);
            if (!(__atomic_load_n(leaf, __ATOMIC_RELAXED) & VALID))
                __atomic_store_n(leaf, ((pfn + (1ull << 30)) << 12) | VALID, __ATOMIC_RELEASE);
        }
        for (uint64_t pfn = BASE_PFN; pfn < BASE_PFN + pages; pfn++) {
            uint64_t *leaf = walk(pfn);
            if (__atomic_load_n(leaf, __ATOMIC_RELAXED) & VALID)
                __atomic_store_n(leaf, 0, __ATOMIC_RELAXED);
        }
        ops += 2 * pages;
        if (now_ns() >= deadline)
            end = now_ns();
    }
    printf("ops_per_s %.1f\n", (double)ops / ((double)(end - t0) / 1e9));
    return 0;
}
