/* The arena: the layout of the shared-memory segment, and the per-worker context.
 *
 *   header    locks, barrier, pool state; each on its own 128-byte line (adjacent-line
 *             prefetch pairs 64-byte lines, so 64 would still false-share)
 *   slots     one 128-byte-aligned slot per worker: published counters, local free list
 *   hist      per-worker latency histograms (map, unmap)
 *   meta      per-page metadata of the table pool (free-list links)
 *   pages     the table pool; page 0 is the root
 */
#ifndef IB_ARENA_H
#define IB_ARENA_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core.h"

#define IB_LINE 128
#define IB_ALIGNED __attribute__((aligned(IB_LINE)))
#define IB_PAGE_BYTES 4096
#define IB_MAGIC 0x696f6d6d75626e63ULL /* "iommubnc" */
#define IB_NIL 0xffffffffu

struct ib_line_u32 { uint32_t v; } IB_ALIGNED;

struct ib_header {
    uint64_t magic;
    uint32_t version;
    uint32_t pad0;
    struct ib_params params;
    struct ib_layout layout;
    uint64_t cs_loops;            /* busy-loop iterations giving params.cs_ns */
    double tsc_per_ns;            /* latency sampling clock, calibrated by the parent */
    double timer_cost_ticks;      /* subtracted from every sample */

    struct ib_line_u32 domain_spin;                 /* serial-spin: the per-domain lock */
    struct { pthread_mutex_t m; } IB_ALIGNED domain_mutex; /* serial-mutex */
    struct { uint32_t arrived; } IB_ALIGNED barrier_arrive;
    struct { uint32_t go; uint32_t pad; uint64_t go_ns; } IB_ALIGNED barrier_go;
    struct ib_line_u32 abort_flag;
    struct { uint32_t finished; } IB_ALIGNED finish;
    struct {
        uint32_t lock;      /* protects head and count of the shared free list */
        uint32_t head;
        uint64_t count;
    } IB_ALIGNED pool;
};

struct ib_slot {
    struct ib_counters counters;   /* published at the end of the run */
    uint32_t free_head;            /* the worker's local free list (owner only during run) */
    uint32_t free_count;
    uint32_t ledger;               /* what this worker left mapped, for the audit */
    uint32_t status;
} IB_ALIGNED;

enum ib_ledger { IB_LEDGER_EMPTY = 0, IB_LEDGER_ALL_CHUNKS = 1 };

static inline struct ib_header *ib_hdr(void *base) { return (struct ib_header *)base; }

static inline struct ib_slot *ib_slot_of(void *base, uint32_t w)
{
    return (struct ib_slot *)((char *)base + ib_hdr(base)->layout.slots_off) + w;
}

static inline uint32_t *ib_meta(void *base)
{
    return (uint32_t *)((char *)base + ib_hdr(base)->layout.meta_off);
}

static inline uint64_t *ib_page(void *base, uint32_t index)
{
    return (uint64_t *)((char *)base + ib_hdr(base)->layout.pages_off +
                        (uint64_t)index * IB_PAGE_BYTES);
}

static inline uint64_t *ib_hist_of(void *base, uint32_t w, int which)
{
    uint64_t *h = (uint64_t *)((char *)base + ib_hdr(base)->layout.hist_off);
    return h + ((uint64_t)w * 2 + (uint64_t)which) * IB_HIST_BUCKETS;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline int ib_aborted(void *base)
{
    return __atomic_load_n(&ib_hdr(base)->abort_flag.v, __ATOMIC_RELAXED) != 0;
}

/* A worker that sees the abort flag leaves at once: the point is already failed, and nobody
 * may keep spinning on a lock or barrier held by a dead process. */
void ib_exit_aborted(void) __attribute__((noreturn));

#endif
