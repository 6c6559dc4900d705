/* SPDX-License-Identifier: MIT */
/*
 * iommubench kernel-code object (libibk-*.so): the C API of the adapter around the kernel's own
 * drivers/iommu/io-pgtable-arm.c, io-pgtable.c, iova.c and lib/rbtree.c, compiled unmodified
 * against the project's shim. Built locally from a kernel source tree; never shipped.
 *
 * Meant to be dlopen()ed: every entry point is a plain C function, so a caller can hold them as
 * function pointers (see struct ibk_api and ibk_get_api()).
 *
 * Sharing across forked workers: the env region, the page window, every table and iova domain
 * are created before fork() in memory mapped MAP_SHARED at the same address in every worker.
 * After creation the page-table object is never written, so its copy in each process agrees.
 * Each worker thread calls ibk_set_cpu(worker index) first: that index is the kernel's CPU.
 *
 * This header is also read by cffi (lines starting with '#' other than '#define NAME number'
 * are dropped before cdef), so it holds declarations only.
 */
#ifndef IBK_H
#define IBK_H
#include <stddef.h>
#include <stdint.h>

#define IBK_API_VERSION 1
#define IBK_PAGE_SIZE 4096

/* IOMMU_* protection flags (the kernel's values) */
#define IBK_PROT_READ 1
#define IBK_PROT_WRITE 2
#define IBK_PROT_CACHE 4
#define IBK_PROT_NOEXEC 8

struct ibk_env;
struct ibk_pgtable;
struct ibk_iovad;

typedef void *(*ibk_page_alloc_cb)(void *cookie, size_t size);
typedef void (*ibk_page_free_cb)(void *cookie, void *page, size_t size);

/* ---- the env: shared region, page window, CPUs, counters --------------------------------- */
/* Lay out an env at the start of region (>= ibk_env_min_bytes()); the rest is the heap. It
 * becomes this process's current env. nr_cpus: the workers (1..64). */
size_t ibk_env_min_bytes(void);
struct ibk_env *ibk_env_create(void *region, size_t bytes, unsigned int nr_cpus);
/* Make env current in this process (after fork it already is). */
void ibk_env_use(struct ibk_env *env);
/* Where table pages come from: [base, base+bytes), phys = address - base; the first page is
 * never used (phys 0). alloc/free NULL: the shim's own allocator over the window. Otherwise
 * alloc(cookie, size) returns zeroed, size-aligned memory inside the window. */
int ibk_env_window(struct ibk_env *env, void *base, size_t bytes, ibk_page_alloc_cb alloc,
		   ibk_page_free_cb free, void *cookie);
/* With a caller's pool: its generation array (per window page, odd while free, moved on every
 * free and reuse), for the walkers' freed-table checks. The shim's own allocator keeps one. */
void ibk_env_page_gen(struct ibk_env *env, uint32_t *gen);
void ibk_set_cpu(int cpu);
int ibk_get_cpu(void);
/* This process's current env, as a slot: a native caller with two envs in one loaded object
 * (a kernel page table and the kernel's IOVA allocator) sets it around its calls. The page
 * window the page-table code reads is apart from it, and an env without a window (the IOVA
 * allocator's) never moves it, not even when made current by ibk_env_use. */
struct ibk_env **ibk_env_slot(void);
/* One CPU's object counts in a kmem_cache of env (frees != 0: frees, else allocations), written
 * by that CPU only: a caller on that CPU reads it around one call to tell what the call did
 * (an IOVA allocation that allocated a struct iova missed the rcache). NULL: no such cache. */
uint64_t *ibk_kmem_cache_cpu_count(struct ibk_env *env, const char *name, int cpu, int frees);
/* One CPU's spinlock counts (the calling thread's acquisitions published first when it is that
 * CPU): acquisitions, contended acquisitions, ns waited, longest wait in ns. */
void ibk_cpu_lock_stats(struct ibk_env *env, int cpu, uint64_t out[4]);
/* num_online_cpus() as the kernel code sees it (the iova depot keeps this many magazines). */
void ibk_set_online_cpus(struct ibk_env *env, unsigned int n);
/* Run every delayed work whose delay has passed (now_ns 0: now, CLOCK_MONOTONIC). Returns how
 * many ran. The harness calls it from its own clock tick; see build.py's notes. */
int ibk_tick(struct ibk_env *env, uint64_t now_ns);
/* What the kernel does when a CPU goes offline: the cpuhp dead callbacks (iova.c returns that
 * CPU's cached IOVAs to the tree). */
int ibk_cpu_dead(struct ibk_env *env, unsigned int cpu);

struct ibk_stats {
	uint64_t warns;
	uint64_t bugs;
	uint64_t pages_allocated; /* table-page allocations (calls) */
	uint64_t pages_freed;
	uint64_t page_bytes_live;
	uint64_t heap_bytes_live;
	uint64_t works_run;
	uint64_t lock_acquisitions; /* published by ibk_publish() */
	uint64_t lock_contended;
	uint64_t lock_wait_ns;
	uint64_t lock_wait_max_ns;
	uint64_t dma_syncs;
};
/* Copy this thread's private counters into its CPU's slot (call once at the end of a run). */
void ibk_publish(struct ibk_env *env);
void ibk_env_stats(struct ibk_env *env, struct ibk_stats *out);
/* Zeroed memory in env's shared heap (visible to every forked worker); NULL when full. */
void *ibk_shared_alloc(struct ibk_env *env, size_t size);
void ibk_shared_free(struct ibk_env *env, void *p);
/* The first WARN/BUG as "file:line: WARN_ON(cond)", or "" */
const char *ibk_first_warn(struct ibk_env *env);
/* This process's printk log (latest 64 KiB); clear != 0 empties it. */
size_t ibk_log_read(char *buf, size_t n, int clear);

/* ---- ARM LPAE stage-1 page table (io-pgtable-arm.c) --------------------------------------- */
struct ibk_tlb_hooks {
	void (*flush_all)(void *cookie);
	void (*flush_walk)(void *cookie, unsigned long iova, size_t size, size_t granule);
	void (*add_page)(void *cookie, unsigned long iova, size_t granule);
	/* after an unmap whose gather is not queued: invalidate [iova, iova+size) */
	void (*sync)(void *cookie, unsigned long iova, size_t size);
	void *cookie;
};
/* ARM_64_LPAE_S1, 4 KiB granule, pgsizes 4K|2M|1G, coherent walk, tables from env's window. */
struct ibk_pgtable *ibk_pgtable_create(struct ibk_env *env, unsigned int ias, unsigned int oas,
				       const struct ibk_tlb_hooks *hooks);
/* map_pages until pgcount pages are mapped (as the IOMMU core loops); 0 or -errno. */
int ibk_map(struct ibk_pgtable *t, unsigned long iova, uint64_t paddr, size_t pgsize,
	    size_t pgcount, int prot, size_t *mapped);
/* unmap_pages until pgcount pages are unmapped; returns bytes unmapped. queued: lazy
 * invalidation (the flush queue), so no per-page add and no sync. */
size_t ibk_unmap(struct ibk_pgtable *t, unsigned long iova, size_t pgsize, size_t pgcount,
		 int queued);
/* The IOMMU core's split of a range into the largest page sizes its alignment allows: a range
 * unmap covering a whole 2 MiB span frees that leaf table, as io-pgtable-arm.c does. */
int ibk_map_range(struct ibk_pgtable *t, unsigned long iova, uint64_t paddr, size_t size,
		  int prot);
size_t ibk_unmap_range(struct ibk_pgtable *t, unsigned long iova, size_t size, int queued);
uint64_t ibk_iova_to_phys(struct ibk_pgtable *t, unsigned long iova);
/* free_io_pgtable_ops; the page-table object itself goes back to the heap. */
void ibk_pgtable_destroy(struct ibk_pgtable *t);
/* The kernel's struct io_pgtable_ops *, for a caller timing the kernel functions directly. */
void *ibk_pgtable_ops(struct ibk_pgtable *t);
struct ibk_env *ibk_pgtable_env(struct ibk_pgtable *t);

/* The kernel's own entry points, for a hot loop that should pay nothing for the adapter:
 * map_pages(ops, iova, paddr, pgsize, pgcount, prot, gfp, &mapped) and
 * unmap_pages(ops, iova, pgsize, pgcount, gather) exactly as io-pgtable-arm.c defines them
 * (one call maps at most up to the next table boundary); gather is gather_bytes of caller
 * memory initialised by gather_init (queued: lazy invalidation). */
typedef int (*ibk_kmap_fn)(void *ops, unsigned long iova, uint64_t paddr, size_t pgsize,
			   size_t pgcount, int prot, unsigned int gfp, size_t *mapped);
typedef size_t (*ibk_kunmap_fn)(void *ops, unsigned long iova, size_t pgsize, size_t pgcount,
				void *gather);
typedef uint64_t (*ibk_kiova_to_phys_fn)(void *ops, unsigned long iova);
struct ibk_direct {
	void *ops;
	ibk_kmap_fn map_pages;
	ibk_kunmap_fn unmap_pages;
	ibk_kiova_to_phys_fn iova_to_phys;
	unsigned int gfp;
	size_t gather_bytes;
	void (*gather_init)(void *gather, int queued);
	/* the gathered range after an unmap, for the caller's invalidation: 0 when empty */
	int (*gather_range)(void *gather, unsigned long *iova, size_t *size);
};
void ibk_pgtable_direct(struct ibk_pgtable *t, struct ibk_direct *out);

struct ibk_pgtable_info {
	void *pgd;
	uint64_t pgd_phys;
	int levels;      /* 4 for ias 48 */
	int start_level; /* the kernel's numbering: the root is start_level, leaves are level 3 */
	uint64_t granule;
	uint64_t pgsize_bitmap;
	unsigned int ias;
	unsigned int oas;
	char *window;        /* the page window: phys = address - window */
	uint64_t window_bytes;
	uint32_t *page_gen;  /* per window page, odd while free; NULL if nobody keeps them */
};
void ibk_pgtable_info(struct ibk_pgtable *t, struct ibk_pgtable_info *out);

/* The audit's own walk of the LPAE format (not the kernel's code): table and page descriptors
 * (type 3), blocks (type 1) at levels 1-2, output address bits 47:12, attribute and software
 * bits ignored. Visits each table (pgd first), then each leaf. Returns the number of stray
 * entries (non-zero, not a valid descriptor for its level, or a table outside the window). */
typedef void (*ibk_table_cb)(void *ctx, int level, uint64_t iova, uint64_t phys);
typedef void (*ibk_leaf_cb)(void *ctx, int level, uint64_t iova, uint64_t pa, uint64_t size);
long ibk_walk(struct ibk_pgtable *t, ibk_table_cb on_table, ibk_leaf_cb on_leaf, void *ctx);

struct ibk_audit {
	uint64_t tables;        /* tables reachable from the pgd, the pgd included */
	uint64_t table_bytes;   /* their bytes */
	uint64_t leaves;        /* leaf entries */
	uint64_t mapped_bytes;
	uint64_t strays;        /* malformed entries */
	uint64_t wrong;         /* expected pages whose walk or iova_to_phys disagreed */
	uint64_t walk_missing;  /* expected pages the walk did not find */
	uint64_t kernel_missing; /* expected pages iova_to_phys did not find */
	uint64_t extra;         /* leaves outside the expected range */
	uint64_t pool_bytes_live; /* env accounting: page bytes allocated - freed */
	int64_t leaked_bytes;   /* pool_bytes_live - table_bytes (0 when nothing leaked) */
};
/* Check that [iova, iova + npages*4K) translates to [pa, ...) page by page, by the walk and by
 * iova_to_phys, that nothing else is mapped, and that the reachable tables equal the pool. */
int ibk_audit_range(struct ibk_pgtable *t, unsigned long iova, uint64_t pa, uint64_t npages,
		    struct ibk_audit *out);

/* A debugfs-style walker pass with the kernel's own walk: iova_to_phys for every `step` bytes
 * of [iova, iova+size). Each lookup's path is read first by the audit's walk and the page
 * generations noted; after the kernel's walk a moved or odd generation on the path counts a
 * read of a freed (or freed and reused) table page -- a lower bound, as for the model's
 * walkers. A kernel walk that follows a reused page out of the window faults: the fault is
 * caught (SIGSEGV, this thread, this call only) and counted, never fatal. */
struct ibk_walk_counts {
	uint64_t passes;
	uint64_t lookups;
	uint64_t translated;
	uint64_t tables_read;
	uint64_t freed_reads;
	uint64_t faults;
	uint64_t corrupt; /* a path entry pointing outside the window */
};
void ibk_walker_pass(struct ibk_pgtable *t, unsigned long iova, size_t size, size_t step,
		     struct ibk_walk_counts *c);

/* ---- the kernel's IOVA allocator (iova.c) -------------------------------------------------- */
struct ibk_iovad *ibk_iova_create(struct ibk_env *env, unsigned long granule,
				  unsigned long start_pfn);
/* alloc_iova_fast / free_iova_fast on the calling thread's CPU; 0 when no space. */
unsigned long ibk_iova_alloc(struct ibk_iovad *d, unsigned long npages, unsigned long limit_pfn,
			     int flush_rcache);
void ibk_iova_free(struct ibk_iovad *d, unsigned long pfn, unsigned long npages);
/* Every CPU's cached IOVAs back to the tree (cpuhp dead), the depot trimmed to empty (the
 * delayed work with no CPU online), then an allocation that cannot succeed (the kernel then
 * flushes every cache and the depot: 6.1 has no trim work). Returns the delayed-work runs. */
int ibk_iova_drain(struct ibk_iovad *d);
/* Ranges held by the tree (allocated or cached), the anchor excluded; overlaps counted. */
struct ibk_iova_census {
	uint64_t ranges;
	uint64_t pages;
	uint64_t overlaps;
	uint64_t iova_objects_live; /* struct iova objects in their kmem_cache */
};
void ibk_iova_census(struct ibk_iovad *d, struct ibk_iova_census *out);
/* The allocator's audit, after the run (every I/O complete, so the tree holds only cached
 * IOVAs): the census, then every CPU's loaded and prev magazines returned (cpuhp dead, CPU by
 * CPU), the depot trimmed by its own work with no CPU online, then the kernel's flush on a
 * failed allocation; the tree must then be empty. Each step's returned ranges are counted
 * against the struct iova objects alive; depot steps return whole magazines; on 6.12 the
 * magazine cache ends with exactly the CPUs' loaded and prev, and the depot's magazines times
 * IOVA_MAG_SIZE equal the ranges it returned. Returns 1 when any check failed. */
struct ibk_iova_audit {
	uint64_t ranges;            /* ranges in the tree after the run (allocated or cached) */
	uint64_t overlaps;          /* neighbouring ranges that overlap: handed out twice */
	uint64_t cpu_cached;        /* ranges the CPUs' magazines held */
	uint64_t cpu_cached_max;    /* ... the most one CPU held */
	uint64_t depot_cached;      /* ranges the depot held */
	uint64_t depot_magazines;   /* magazines the depot held (6.12; 0 on 6.1) */
	uint64_t depot_trim_runs;   /* runs of the depot's trimming work during the drain */
	uint64_t partial_magazines; /* depot steps that returned a part of a magazine */
	uint64_t magazine_mismatch; /* magazines unaccounted for, or a CPU over its two per class */
	uint64_t objects_mismatch;  /* struct iova objects alive != ranges in the tree */
	uint64_t leaks;             /* ranges left after every cache is empty: never freed */
	uint64_t warns;             /* WARN_ON/BUG_ON in the env (a cached IOVA not in the tree) */
	uint64_t magazine_size;     /* IOVA_MAG_SIZE */
};
int ibk_iova_audit(struct ibk_iovad *d, struct ibk_iova_audit *out);
/* A run that ended before its teardown: reset this process's iova.c state (cache users,
 * kmem_caches) without touching the region, which may hold a lock a killed worker took. */
void ibk_iova_abandon(struct ibk_iovad *d);
void ibk_iova_destroy(struct ibk_iovad *d);
struct ibk_env *ibk_iovad_env(struct ibk_iovad *d);

/* ---- the kernel file's own self-test (io-pgtable-arm.c's initcall) ------------------------- */
/* Runs every initcall compiled in; returns the first non-zero result (0: all passed). */
int ibk_run_initcalls(int *ran);

/* ---- identity ------------------------------------------------------------------------------ */
int ibk_api_version(void);
/* "normal" or "racy-cmpxchg" */
const char *ibk_variant(void);
/* 1 when the tree has io_pgtable_cfg's alloc/free hooks (6.12) and they are in use */
int ibk_has_cfg_alloc(void);

/* Function pointers for a native caller (the harness) that dlopen()s the object. */
struct ibk_api {
	int version;
	struct ibk_pgtable *(*pgtable_create)(struct ibk_env *, unsigned int, unsigned int,
					      const struct ibk_tlb_hooks *);
	int (*map)(struct ibk_pgtable *, unsigned long, uint64_t, size_t, size_t, int, size_t *);
	size_t (*unmap)(struct ibk_pgtable *, unsigned long, size_t, size_t, int);
	int (*map_range)(struct ibk_pgtable *, unsigned long, uint64_t, size_t, int);
	size_t (*unmap_range)(struct ibk_pgtable *, unsigned long, size_t, int);
	uint64_t (*iova_to_phys)(struct ibk_pgtable *, unsigned long);
	void (*pgtable_destroy)(struct ibk_pgtable *);
	long (*walk)(struct ibk_pgtable *, ibk_table_cb, ibk_leaf_cb, void *);
	struct ibk_iovad *(*iova_create)(struct ibk_env *, unsigned long, unsigned long);
	unsigned long (*iova_alloc)(struct ibk_iovad *, unsigned long, unsigned long, int);
	void (*iova_free)(struct ibk_iovad *, unsigned long, unsigned long);
	void (*iova_destroy)(struct ibk_iovad *);
	void (*set_cpu)(int);
	int (*tick)(struct ibk_env *, uint64_t);
	void (*env_stats)(struct ibk_env *, struct ibk_stats *);
};
const struct ibk_api *ibk_get_api(void);

#endif /* IBK_H */
