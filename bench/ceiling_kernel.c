/* The ceiling for one worker on the kernel's own io-pgtable-arm.c: a minimal loop calling the
 * kernel's map_pages and unmap_pages (as ibk_pgtable_direct hands them out, the same entry
 * points the harness's kernel-arm driver calls) on what the harness's prefault workload does
 * with one worker: map every page of the region one call per page, unmap it one call per page
 * (4 KiB unmaps leave the leaf tables in place), again; nothing else around it: no counters,
 * no sampling, no clock checks, no arena. Its IOVAs and frames are the harness's.
 *
 *   ceiling_kernel OBJECT REGION_MIB SECONDS   ->   prints "ops_per_s <float>"
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "ibk.h"

#define BASE_PFN (1ull << 18)    /* IB_REGION_BASE_PFN */
#define FRAME_OFFSET (1ull << 30) /* ib_frame_for: pfn + 2^30 */
#define PROT (IBK_PROT_READ | IBK_PROT_WRITE)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The loop, on its own so a profiler can count its instructions alone
 * (valgrind --tool=callgrind --toggle-collect=kernel_loop). Returns when it stopped. */
static __attribute__((noinline)) uint64_t kernel_loop(const struct ibk_direct *dk, uint64_t pages,
                                                      uint64_t deadline, uint64_t *ops_out,
                                                      uint64_t *errors_out)
{
    uint64_t gather[8]; /* the kernel's struct iommu_iotlb_gather: dk->gather_bytes */
    uint64_t ops = 0, errors = 0, end = 0;
    while (!end) {
        for (uint64_t pfn = BASE_PFN; pfn < BASE_PFN + pages; pfn++) {
            size_t mapped = 0;
            errors += dk->map_pages(dk->ops, pfn << 12, (pfn + FRAME_OFFSET) << 12, 4096, 1,
                                    PROT, dk->gfp, &mapped) != 0;
        }
        for (uint64_t pfn = BASE_PFN; pfn < BASE_PFN + pages; pfn++) {
            dk->gather_init(gather, 0); /* a gather per call, as iommu_unmap passes one */
            errors += dk->unmap_pages(dk->ops, pfn << 12, 4096, 1, gather) != 4096;
        }
        ops += 2 * pages;
        uint64_t now = now_ns();
        if (now >= deadline)
            end = now;
    }
    *ops_out = ops;
    *errors_out = errors;
    return end;
}

static void *sym(void *so, const char *name)
{
    void *p = dlsym(so, name);
    if (!p) {
        fprintf(stderr, "ceiling_kernel: %s: no %s\n", dlerror(), name);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ceiling_kernel OBJECT [REGION_MIB [SECONDS]]\n");
        return 2;
    }
    uint64_t pages = (argc > 2 ? strtoull(argv[2], 0, 10) : 128) * 256;
    double seconds = argc > 3 ? atof(argv[3]) : 1.0;
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "ceiling_kernel: %s\n", dlerror());
        return 2;
    }
    struct ibk_env *(*env_create)(void *, size_t, unsigned) = sym(so, "ibk_env_create");
    int (*env_window)(struct ibk_env *, void *, size_t, ibk_page_alloc_cb, ibk_page_free_cb,
                      void *) = sym(so, "ibk_env_window");
    void (*direct)(struct ibk_pgtable *, struct ibk_direct *) = sym(so, "ibk_pgtable_direct");
    const struct ibk_api *(*get_api)(void) = sym(so, "ibk_get_api");
    void (*set_cpu)(int) = sym(so, "ibk_set_cpu");
    size_t heap = 16 << 20, window = (pages / 512 + 64) * 4096 * 2;
    void *region = mmap(0, heap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    void *win = mmap(0, window, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ibk_env *env = env_create(region, heap, 1);
    if (!env || env_window(env, win, window, 0, 0, 0))
        return 2;
    set_cpu(0);
    struct ibk_pgtable *t = get_api()->pgtable_create(env, 48, 48, 0);
    if (!t)
        return 2;
    struct ibk_direct dk;
    direct(t, &dk);
    if (dk.gather_bytes > 8 * sizeof(uint64_t))
        return 2;
    uint64_t ops = 0, errors = 0, t0 = now_ns();
    uint64_t end = kernel_loop(&dk, pages, t0 + (uint64_t)(seconds * 1e9), &ops, &errors);
    printf("ops_per_s %.1f errors %llu\n", (double)ops / ((double)(end - t0) / 1e9),
           (unsigned long long)errors);
    return errors != 0;
}
