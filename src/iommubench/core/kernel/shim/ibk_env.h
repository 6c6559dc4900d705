/* SPDX-License-Identifier: MIT */
/*
 * The shared region behind the shim: one struct ibk_env at the start of caller-provided shared
 * memory, followed by the heap. Everything kernel code allocates with kmalloc, kmem_cache or
 * alloc_percpu lives in the heap, so forked workers that map the region at the same address
 * share it. Private to the shim and the adapter; the harness sees struct ibk_env as opaque.
 */
#ifndef IBK_ENV_H
#define IBK_ENV_H

#include <ibk_shim.h>

#define IBK_ENV_MAGIC 0x31766e656b626900ULL /* "\0ibkenv1" */
#define IBK_MAX_CPUS NR_CPUS
#define IBK_MAX_WORKS 64
#define IBK_MAX_CPUHP 16
#define IBK_NCLASS 28       /* kmalloc size classes 2^4 .. 2^31 */
#define IBK_MAX_ORDER 12    /* page blocks up to 16 MiB */
#define IBK_NO_PAGE 0xffffffffu

typedef void *(*ibk_page_alloc_fn)(void *cookie, size_t size);
typedef void (*ibk_page_free_fn)(void *cookie, void *page, size_t size);

/* One CPU's counters, on its own lines. Written by that CPU only (atomics keep -1 safe). */
struct ibk_cpu_stats {
	u64 lock_acq;       /* published from the thread's counter by ibk_publish() */
	u64 lock_contended; /* acquisitions that had to wait */
	u64 lock_wait_ns;   /* time spent waiting, contended path only */
	u64 lock_wait_max_ns;
	u64 pages_allocated; /* table-page allocations (calls) */
	u64 pages_freed;     /* table-page frees (calls) */
	u64 page_bytes_allocated;
	u64 page_bytes_freed;
	u64 dma_syncs;
	u64 pad[7];
} __aligned(128);

struct ibk_env {
	u64 magic;
	u64 size;         /* bytes of the whole region */
	u32 nr_cpus;      /* possible CPUs = workers */
	u32 online_cpus;  /* num_online_cpus(); lowered to drain the iova depot */

	/* WARN and BUG */
	u64 warns;
	u64 bugs;
	char first_warn[192];

	/* the heap: [heap_next, heap_end) is still uncarved; offsets from the region start */
	spinlock_t heap_lock;
	u64 heap_next;
	u64 heap_end;
	void *kfree_lists[IBK_NCLASS];
	u64 heap_live_bytes;

	/* the page window: phys = address - win_base */
	char *win_base;
	u64 win_size;
	ibk_page_alloc_fn page_alloc; /* NULL: the internal allocator below */
	ibk_page_free_fn page_free;
	void *page_cookie;
	/* per window page: odd while free, moves on every free and every reuse (walkers read it
	 * like a seqlock); maintained by the internal allocator, or by the caller's pool */
	u32 *page_gen;
	spinlock_t page_lock;
	u64 page_next; /* internal allocator: next uncarved offset in the window */
	/* internal allocator's free lists: page indices, linked through page_link (never through
	 * the pages, so a walker reading a freed table finds no pointer to follow out of it) */
	u32 page_free_heads[IBK_MAX_ORDER + 1];
	u32 *page_link;

	/* delayed work, run by ibk_tick() */
	spinlock_t work_lock;
	struct delayed_work *works[IBK_MAX_WORKS];
	u64 works_run;

	/* CPU hotplug instances: the dead callback returns a CPU's cached state */
	int (*cpuhp_dead)(unsigned int cpu, struct hlist_node *node);
	struct hlist_node *cpuhp_nodes[IBK_MAX_CPUHP];

	u64 dirty_records;

	/* kmem_caches, for the audit's object counts */
	struct kmem_cache *caches[16];

	struct ibk_cpu_stats cpu[IBK_MAX_CPUS + 1]; /* the last slot: threads with no CPU set */
};

extern struct ibk_env *ibk_env_cur;

static inline struct ibk_cpu_stats *ibk_my_stats(struct ibk_env *env)
{
	int c = ibk_cpu;
	return &env->cpu[(c >= 0 && c < IBK_MAX_CPUS) ? c : IBK_MAX_CPUS];
}

struct ibk_env *ibk_env_init(void *region, size_t bytes, unsigned int nr_cpus);
void ibk_env_use(struct ibk_env *env);
int ibk_env_set_window(struct ibk_env *env, void *base, size_t bytes, ibk_page_alloc_fn alloc,
		       ibk_page_free_fn free_fn, void *cookie);
void *ibk_env_pages_alloc(struct ibk_env *env, size_t size);
void ibk_env_pages_free(struct ibk_env *env, void *p, size_t size);
u64 ibk_now_ns(void);
u64 ibk_kmem_cache_live_named(const char *name);
u64 *ibk_kmem_cache_cpu_count(struct ibk_env *env, const char *name, int cpu, int frees);
size_t ibk_kmem_cache_size_named(struct ibk_env *env, const char *name);
int ibk_tick(struct ibk_env *env, u64 now_ns);
int ibk_cpu_dead(struct ibk_env *env, unsigned int cpu);

#endif /* IBK_ENV_H */
