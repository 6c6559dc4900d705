/* The arena: the layout of the shared-memory segment, and the per-worker context.
 *
 *   header    barrier, pool state, the dma workload's shared words; each on its own 128-byte
 *             line (adjacent-line prefetch pairs 64-byte lines, so 64 would still false-share)
 *   slots     one 128-byte-aligned slot per worker: published counters, local free list
 *   hist      per-worker latency histograms (map, unmap)
 *   meta      per-page metadata of the table pool (free-list links)
 *   series    per worker: cumulative counted ops at each throughput tick (after the pool's
 *             generations)
 *   pages     the table pool; page 0 is the root
 *   regions   one per strategy axis (enum ib_axis), opaque here: the bytes the chosen entry
 *             declared (struct ib_strategy): shared, per worker, per table page; e.g. the
 *             point's lock instances and nodes, the walkers' guard, mutex, epoch and limbo
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
/* Bytes between two table pages' lock instances: struct page's 64, where Linux keeps the
 * split page-table lock. */
#define IB_LOCK_STRIDE(size) (((size) + 63) / 64 * 64)

struct ib_line_u32 { uint32_t v; } IB_ALIGNED;
struct ib_line_u64 { uint64_t v; } IB_ALIGNED;

struct ib_header {
    uint64_t magic;
    uint32_t version;
    uint32_t pad0;
    struct ib_params params;
    struct ib_layout layout;
    uint64_t cs_map_loops;        /* busy-loop iterations giving params.cs_map_ns */
    uint64_t cs_unmap_loops;      /* busy-loop iterations giving params.cs_unmap_ns */
    double tsc_per_ns;            /* latency sampling clock, calibrated by the parent */
    double timer_cost_ticks;      /* subtracted from every sample */

    struct { uint32_t arrived; } IB_ALIGNED barrier_arrive;
    struct { uint32_t go; uint32_t pad; uint64_t go_ns; } IB_ALIGNED barrier_go;
    struct ib_line_u32 abort_flag;
    struct { uint32_t finished; } IB_ALIGNED finish;
    struct {
        uint32_t lock;      /* protects head and count of the shared free list */
        uint32_t head;
        uint64_t count;
    } IB_ALIGNED pool;

    /* dma workload */
};

struct ib_slot {
    struct ib_counters counters;   /* published at the end of the run */
    uint32_t free_head;            /* the worker's local free list (owner only during run) */
    uint32_t free_count;
    uint32_t ledger;               /* what this worker left mapped, for the audit */
    uint32_t status;
} IB_ALIGNED;

/* A walker's slot: the epoch it announced for the pass it is in (0 = between passes), on
 * its own line because every freeing worker reads it, then its published counters. */
struct ib_walker_slot {
    struct { uint64_t epoch; } IB_ALIGNED announce;
    struct ib_walker_counters counters;
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

/* An axis's region: its shared bytes, worker w's bytes, table page i's bytes. */
static inline void *ib_region_shared(void *base, int axis)
{
    return (char *)base + ib_hdr(base)->layout.regions[axis].shared_off;
}

static inline void *ib_region_worker(void *base, int axis, uint32_t w)
{
    const struct ib_region *r = &ib_hdr(base)->layout.regions[axis];
    return (char *)base + r->worker_off + (uint64_t)w * r->worker_stride;
}

static inline void *ib_region_page(void *base, int axis, uint64_t i)
{
    const struct ib_region *r = &ib_hdr(base)->layout.regions[axis];
    return (char *)base + r->page_off + i * r->page_stride;
}

static inline uint32_t *ib_gen(void *base)
{
    return (uint32_t *)((char *)base + ib_hdr(base)->layout.gen_off);
}

/* A worker's throughput samples: written by that worker only, read by the parent afterwards. */
static inline uint64_t *ib_series_of(void *base, uint32_t w)
{
    return (uint64_t *)((char *)base + ib_hdr(base)->layout.series_off) + (uint64_t)w * IB_SERIES_SLOTS;
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
