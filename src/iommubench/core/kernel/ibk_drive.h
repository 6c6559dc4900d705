/* SPDX-License-Identifier: MIT */
/*
 * Drivers for the kernel-code object's own tests and measurements (drive.c): forked workers
 * racing on one page table or one iova domain, and the timing loops of `measure`. Everything in
 * these structs lives in shared memory created before fork. Read by cffi like ibk.h.
 */
#ifndef IBK_DRIVE_H
#define IBK_DRIVE_H
#include <stdint.h>

#define IBK_DRIVE_MAX_WORKERS 64

struct ibk_barrier {
	uint32_t arrived;
	uint32_t gen;
	uint32_t n;
	uint32_t pad;
};
void ibk_barrier_init(struct ibk_barrier *b, uint32_t n);
void ibk_barrier_wait(struct ibk_barrier *b);

/* Workers map interleaved pages of one range (page i by worker i % nworkers, one page per call),
 * so they race to install the same tables; worker 0 then audits the range and unmaps it with a
 * range unmap that frees the leaf tables, and the next round races again. */
struct ibk_race {
	struct ibk_barrier bar;
	uint64_t iova0;
	uint64_t pa0;
	uint64_t npages;
	uint32_t nworkers;
	uint32_t rounds;
	uint32_t stop_on_catch; /* stop at the first failed audit */
	uint32_t leave_mapped;  /* keep the last round mapped for an audit by the caller */
	uint32_t stop;
	uint32_t pad;
	/* written by worker 0 */
	uint64_t rounds_done;
	uint64_t caught_round;  /* 1-based round of the first failed audit; 0: none */
	uint64_t installs_lost; /* table pages allocated and freed by a losing mapper */
	uint64_t tables_installed;
	uint64_t wrong;         /* pages that translated wrongly or not at all */
	uint64_t leaked_bytes;  /* pool bytes not reachable, at the first failed audit */
	uint64_t strays;
	uint64_t map_errors[IBK_DRIVE_MAX_WORKERS];
};
int ibk_drive_race(struct ibk_pgtable *t, struct ibk_race *r, int worker);

/* Timing: each worker maps then unmaps npages single pages in its own 1 GiB-aligned range, with
 * the tables already present (a warm pass first), alternating the modes pass by pass:
 * mode 0 calls the kernel's ops->map_pages/unmap_pages directly (a minimal loop), mode 1 the
 * adapter's ibk_map/ibk_unmap through the function pointers of ibk_get_api(), mode 2 the
 * kernel's entry points as ibk_pgtable_direct() hands them to a caller. */
struct ibk_bench {
	struct ibk_barrier bar;
	uint64_t npages;
	uint32_t nworkers;
	uint32_t passes; /* per mode */
	uint64_t ns[3][2][IBK_DRIVE_MAX_WORKERS];  /* [mode][0 map, 1 unmap][worker] */
	uint64_t ops[3][2][IBK_DRIVE_MAX_WORKERS];
	uint64_t errors[IBK_DRIVE_MAX_WORKERS];
};
int ibk_drive_bench(struct ibk_pgtable *t, struct ibk_bench *b, int worker);

/* Walkers against unmaps that free tables: mappers map their 2 MiB chunks of the range (one
 * map call per chunk) and unmap each with a range unmap, which frees its leaf table at once;
 * walkers make ibk_walker_pass passes over the whole range until the mappers are done.
 * index < nworkers: a mapper; else walker index - nworkers. */
struct ibk_walk_race {
	struct ibk_barrier bar; /* nworkers + nwalkers */
	uint64_t iova0;
	uint64_t pa0;
	uint64_t npages;        /* a multiple of 512 */
	uint32_t nworkers;
	uint32_t nwalkers;
	uint32_t rounds;
	uint32_t done;          /* mappers finished */
	uint64_t map_errors[IBK_DRIVE_MAX_WORKERS];
	struct ibk_walk_counts walk[16];
};
int ibk_drive_walk(struct ibk_pgtable *t, struct ibk_walk_race *r, int index);

/* iova.c under racing workers: each keeps up to `depth` live ranges (1..32 pages, and one in 16
 * larger so the tree serves it), marks its pages in a shared bitmap (a page already marked is
 * an overlap), frees the oldest first (or, with burst, all at once when it holds `depth`), and at
 * the end frees everything it holds. Worker 0 runs
 * the delayed work (ibk_tick) every tick_every operations, tick_skew_ns ahead of the clock. */
struct ibk_iova_race {
	struct ibk_barrier bar;
	unsigned long *bitmap; /* one bit per pfn below limit_pfn, in shared memory */
	uint64_t limit_pfn;
	uint64_t ops;          /* allocations per worker */
	uint32_t nworkers;
	uint32_t depth;
	uint32_t tick_every;
	uint32_t burst;        /* 1: fill to depth, then free everything (magazines reach the depot) */
	uint64_t tick_skew_ns;
	uint64_t seed;
	uint64_t allocs[IBK_DRIVE_MAX_WORKERS];
	uint64_t frees[IBK_DRIVE_MAX_WORKERS];
	uint64_t overlaps[IBK_DRIVE_MAX_WORKERS];
	uint64_t failures[IBK_DRIVE_MAX_WORKERS];
	uint64_t ticks_run[IBK_DRIVE_MAX_WORKERS];
};
int ibk_drive_iova(struct ibk_iovad *d, struct ibk_iova_race *r, int worker);

#endif /* IBK_DRIVE_H */
