// SPDX-License-Identifier: MIT
/*
 * iommubench kernel-API shim, the run-time half: the shared heap (kmalloc, kmem_cache, per-CPU
 * areas), the page window's allocator, spinlock waits, WARN/BUG counting, printk, delayed work
 * and CPU-hotplug instances. Written from scratch; no kernel code.
 */
#define _GNU_SOURCE
#include <ibk_env.h>

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct ibk_env *ibk_env_cur;
char *ibk_window_base;
__thread int ibk_cpu __attribute__((tls_model("initial-exec"))) = -1;
__thread unsigned long ibk_lock_acq __attribute__((tls_model("initial-exec")));
unsigned long ibk_dma_syncs;

/* A lock for the shim's own structures; not counted with the kernel's spinlocks. */
static void ibk_raw_lock(spinlock_t *l)
{
	unsigned int spins = 0;
	/* settles: mutual exclusion on the shim's heap, page and work lists across processes */
	while (__atomic_exchange_n(&l->raw.locked, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&l->raw.locked, __ATOMIC_RELAXED)) {
			cpu_relax();
			if (++spins > 4096) {
				sched_yield();
				spins = 0;
			}
		}
	}
}

static void ibk_raw_unlock(spinlock_t *l)
{
	/* settles: the next holder sees every write made under l */
	__atomic_store_n(&l->raw.locked, 0, __ATOMIC_RELEASE);
}

u64 ibk_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
}

unsigned long ibk_jiffies(void) { return (unsigned long)(ibk_now_ns() / 1000000ULL); }

/* ---- spinlock waits: test-and-test-and-set, yielding when the holder seems descheduled ---- */
void ibk_spin_lock_slow(spinlock_t *l)
{
	u64 t0 = ibk_now_ns();
	unsigned int spins = 0;
	/* settles: mutual exclusion of every holder of l, in any process mapping the region */
	do {
		while (__atomic_load_n(&l->raw.locked, __ATOMIC_RELAXED)) {
			cpu_relax();
			if (++spins > 4096) {
				sched_yield();
				spins = 0;
			}
		}
	} while (__atomic_exchange_n(&l->raw.locked, 1, __ATOMIC_ACQUIRE));
	if (ibk_env_cur) {
		struct ibk_cpu_stats *s = ibk_my_stats(ibk_env_cur);
		u64 w = ibk_now_ns() - t0;
		/* settles: the no-CPU slot may be shared by threads; per-CPU slots are private */
		__atomic_fetch_add(&s->lock_contended, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->lock_wait_ns, w, __ATOMIC_RELAXED);
		if (w > s->lock_wait_max_ns)
			s->lock_wait_max_ns = w;
	}
}

/* ---- WARN, BUG, printk ----------------------------------------------------------------- */
static unsigned long ibk_warns_no_env;

void ibk_warn(const char *file, int line, const char *cond)
{
	struct ibk_env *env = ibk_env_cur;
	if (!env) {
		__atomic_fetch_add(&ibk_warns_no_env, 1, __ATOMIC_RELAXED);
		return;
	}
	/* settles: warnings from every worker are counted, none lost; the first one names itself */
	if (__atomic_fetch_add(&env->warns, 1, __ATOMIC_SEQ_CST) == 0)
		snprintf(env->first_warn, sizeof(env->first_warn), "%s:%d: WARN_ON(%s)", file, line,
			 cond);
	ibk_printk("WARNING at %s:%d: %s\n", file, line, cond);
}

void ibk_bug(const char *file, int line, const char *cond)
{
	struct ibk_env *env = ibk_env_cur;
	if (env) {
		/* settles: a BUG from any worker is counted before the process stops */
		__atomic_fetch_add(&env->bugs, 1, __ATOMIC_SEQ_CST);
		if (!env->first_warn[0])
			snprintf(env->first_warn, sizeof(env->first_warn), "%s:%d: BUG_ON(%s)", file,
				 line, cond);
	}
	fprintf(stderr, "iommubench kernel shim: BUG at %s:%d: %s\n", file, line, cond);
	abort();
}

#define IBK_LOG_SIZE 65536
static char ibk_log_buf[IBK_LOG_SIZE];
static size_t ibk_log_len;
static int ibk_log_echo = -1;

void ibk_printk(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (ibk_log_echo < 0)
		ibk_log_echo = getenv("IOMMUBENCH_KERNEL_LOG") != NULL;
	if (ibk_log_echo)
		fputs(line, stderr);
	if (ibk_log_len + (size_t)n >= IBK_LOG_SIZE)
		ibk_log_len = 0; /* keep the latest messages */
	memcpy(ibk_log_buf + ibk_log_len, line, (size_t)n);
	ibk_log_len += (size_t)n;
	ibk_log_buf[ibk_log_len] = 0;
}

size_t ibk_log_read(char *buf, size_t n, int clear)
{
	size_t k = ibk_log_len < n - 1 ? ibk_log_len : n - 1;
	memcpy(buf, ibk_log_buf + (ibk_log_len - k), k);
	buf[k] = 0;
	if (clear)
		ibk_log_len = 0;
	return k;
}

void ibk_dirty_record(struct iommu_dirty_bitmap *dirty, unsigned long iova, unsigned long length)
{
	(void)dirty; (void)iova; (void)length;
	if (ibk_env_cur)
		/* settles: dirty-bit records from every worker are counted */
		__atomic_fetch_add(&ibk_env_cur->dirty_records, 1, __ATOMIC_RELAXED);
}

/* ---- CPUs ------------------------------------------------------------------------------ */
unsigned int ibk_nr_cpus(void) { return ibk_env_cur ? ibk_env_cur->nr_cpus : 1; }
unsigned int ibk_online_cpus(void)
{
	return ibk_env_cur ? __atomic_load_n(&ibk_env_cur->online_cpus, __ATOMIC_RELAXED) : 1;
}

/* ---- the region ------------------------------------------------------------------------ */
struct ibk_env *ibk_env_init(void *region, size_t bytes, unsigned int nr_cpus)
{
	struct ibk_env *env = region;
	size_t hdr = (sizeof(*env) + 4095) & ~(size_t)4095;
	if (!region || bytes < hdr + 65536 || nr_cpus == 0 || nr_cpus > IBK_MAX_CPUS)
		return NULL;
	memset(env, 0, sizeof(*env));
	env->size = bytes;
	env->nr_cpus = nr_cpus;
	env->online_cpus = nr_cpus;
	env->heap_next = hdr;
	env->heap_end = bytes;
	env->magic = IBK_ENV_MAGIC;
	ibk_env_use(env);
	return env;
}

void ibk_env_use(struct ibk_env *env)
{
	ibk_env_cur = env;
	/* An env without a page window (the IOVA allocator's) leaves the window alone: a page
	 * table in another env of this process keeps reading its tables through it. */
	if (!env || env->win_base)
		ibk_window_base = env ? env->win_base : NULL;
}

int ibk_env_set_window(struct ibk_env *env, void *base, size_t bytes, ibk_page_alloc_fn alloc,
		       ibk_page_free_fn free_fn, void *cookie)
{
	if (!env || !base || (!alloc) != (!free_fn))
		return -EINVAL;
	env->win_base = base;
	env->win_size = bytes;
	env->page_alloc = alloc;
	env->page_free = free_fn;
	env->page_cookie = cookie;
	env->page_next = PAGE_SIZE; /* phys 0 is never handed out: a zero entry means "none" */
	for (int i = 0; i <= IBK_MAX_ORDER; i++)
		env->page_free_heads[i] = IBK_NO_PAGE;
	env->page_gen = NULL;
	env->page_link = NULL;
	if (!alloc) {
		struct ibk_env *prev = ibk_env_cur;
		u64 n = bytes >> PAGE_SHIFT;
		ibk_env_cur = env;
		env->page_gen = ibk_kmalloc(n * sizeof(u32), 0);
		env->page_link = ibk_kmalloc(n * sizeof(u32), 0);
		ibk_env_cur = prev;
		if (!env->page_gen || !env->page_link)
			return -ENOMEM;
		for (u64 i = 0; i < n; i++) {
			env->page_gen[i] = 1; /* free */
			env->page_link[i] = IBK_NO_PAGE;
		}
	}
	if (env == ibk_env_cur)
		ibk_window_base = base;
	return 0;
}

/* ---- the heap -------------------------------------------------------------------------- */
static void *heap_carve(struct ibk_env *env, size_t size, size_t align)
{
	void *p = NULL;
	ibk_raw_lock(&env->heap_lock);
	u64 off = (env->heap_next + align - 1) & ~(u64)(align - 1);
	if (off + size <= env->heap_end) {
		env->heap_next = off + size;
		p = (char *)env + off;
	}
	ibk_raw_unlock(&env->heap_lock);
	return p;
}

struct ibk_khdr {
	u32 cls;
	u32 magic;
	u64 pad;
};
#define IBK_KHDR_MAGIC 0x6b6d616cu

void *ibk_kmalloc(size_t size, gfp_t gfp)
{
	struct ibk_env *env = ibk_env_cur;
	if (!env)
		return NULL;
	size_t need = size + sizeof(struct ibk_khdr);
	unsigned int cls = 4;
	while (((size_t)1 << cls) < need)
		cls++;
	if (cls - 4 >= IBK_NCLASS)
		return NULL;
	struct ibk_khdr *h;
	ibk_raw_lock(&env->heap_lock);
	h = env->kfree_lists[cls - 4];
	if (h)
		env->kfree_lists[cls - 4] = *(void **)(h + 1);
	ibk_raw_unlock(&env->heap_lock);
	if (!h)
		h = heap_carve(env, (size_t)1 << cls, 16);
	if (!h)
		return NULL;
	h->cls = cls;
	h->magic = IBK_KHDR_MAGIC;
	/* settles: heap accounting from every worker */
	__atomic_fetch_add(&env->heap_live_bytes, (u64)1 << cls, __ATOMIC_RELAXED);
	if (gfp & __GFP_ZERO)
		memset(h + 1, 0, size);
	return h + 1;
}

void ibk_kfree(const void *p)
{
	struct ibk_env *env = ibk_env_cur;
	if (!p || !env)
		return;
	struct ibk_khdr *h = (struct ibk_khdr *)p - 1;
	if (WARN_ON(h->magic != IBK_KHDR_MAGIC))
		return;
	h->magic = 0;
	/* settles: heap accounting from every worker */
	__atomic_fetch_sub(&env->heap_live_bytes, (u64)1 << h->cls, __ATOMIC_RELAXED);
	ibk_raw_lock(&env->heap_lock);
	*(void **)(h + 1) = env->kfree_lists[h->cls - 4];
	env->kfree_lists[h->cls - 4] = h;
	ibk_raw_unlock(&env->heap_lock);
}

/* Per-CPU areas: a header line before CPU 0's copy says how far apart the copies are. */
struct ibk_pcpu_hdr {
	void *block;
	u64 stride;
	u64 pad[6];
};

void *ibk_alloc_percpu(size_t size, size_t align)
{
	struct ibk_env *env = ibk_env_cur;
	if (!env)
		return NULL;
	size_t a = align > 64 ? align : 64;
	size_t stride = (size + a - 1) & ~(a - 1);
	char *block = ibk_kmalloc(sizeof(struct ibk_pcpu_hdr) + a + stride * env->nr_cpus,
				  GFP_KERNEL | __GFP_ZERO);
	if (!block)
		return NULL;
	char *p = (char *)(((uintptr_t)block + sizeof(struct ibk_pcpu_hdr) + a - 1) & ~(a - 1));
	struct ibk_pcpu_hdr *h = (struct ibk_pcpu_hdr *)p - 1;
	h->block = block;
	h->stride = stride;
	return p;
}

size_t ibk_percpu_stride(const void *p) { return ((const struct ibk_pcpu_hdr *)p - 1)->stride; }

void ibk_free_percpu(void *p)
{
	if (p)
		ibk_kfree(((struct ibk_pcpu_hdr *)p - 1)->block);
}

/* kmem_cache: per-CPU free lists, a shared list under a lock, then fresh carving. */
#define IBK_KC_CPU_MAX 256 /* a CPU keeps at most this many free objects */
#define IBK_KC_BATCH 32    /* objects moved from the shared list at a time */
struct ibk_kc_cpu {
	void *head;
	u32 count;
	u64 allocs; /* objects this CPU allocated and freed: written by this CPU only, so the */
	u64 frees;  /* harness can tell a cache miss from a hit around one call (ibk.h) */
} __aligned(64);
struct kmem_cache {
	const char *name;
	u32 size;
	u32 objsize;
	u32 align;
	void (*ctor)(void *);
	spinlock_t lock;
	void *shared;
	u64 live;
	struct ibk_kc_cpu cpu[IBK_MAX_CPUS];
};

struct kmem_cache *ibk_kmem_cache_create(const char *name, unsigned int size, unsigned int align,
					 slab_flags_t flags, void (*ctor)(void *))
{
	struct kmem_cache *c = ibk_kmalloc(sizeof(*c), GFP_KERNEL | __GFP_ZERO);
	if (!c)
		return NULL;
	c->name = name; /* a string literal: same address in every forked process */
	c->size = size;
	c->align = align < 8 ? 8 : align;
	if (flags & SLAB_HWCACHE_ALIGN && c->align < 64)
		c->align = 64;
	c->objsize = ((size < 8 ? 8 : size) + c->align - 1) & ~(c->align - 1);
	c->ctor = ctor;
	for (int i = 0; i < 16; i++) {
		if (!ibk_env_cur->caches[i]) {
			ibk_env_cur->caches[i] = c;
			break;
		}
	}
	return c;
}

void ibk_kmem_cache_destroy(struct kmem_cache *c)
{
	if (!c)
		return;
	WARN_ON(c->live != 0);
	for (int i = 0; i < 16; i++)
		if (ibk_env_cur && ibk_env_cur->caches[i] == c)
			ibk_env_cur->caches[i] = NULL;
	/* Objects were carved from the heap; they are left there (the region dies with the run). */
	ibk_kfree(c);
}

void *ibk_kmem_cache_alloc(struct kmem_cache *c, gfp_t gfp)
{
	int cpu = ibk_cpu;
	void *p = NULL;
	struct ibk_kc_cpu *pc = (cpu >= 0 && cpu < IBK_MAX_CPUS) ? &c->cpu[cpu] : NULL;
	if (pc)
		pc->allocs++;
	if (pc && pc->head) {
		p = pc->head;
		pc->head = *(void **)p;
		pc->count--;
	} else {
		ibk_raw_lock(&c->lock);
		p = c->shared;
		if (p) {
			c->shared = *(void **)p;
			/* move a batch to this CPU while the lock is held */
			for (int i = 1; pc && i < IBK_KC_BATCH && c->shared; i++) {
				void *q = c->shared;
				c->shared = *(void **)q;
				*(void **)q = pc->head;
				pc->head = q;
				pc->count++;
			}
		}
		ibk_raw_unlock(&c->lock);
		if (!p)
			p = heap_carve(ibk_env_cur, c->objsize, c->align);
		if (!p)
			return NULL;
	}
	/* settles: the cache's live count, from every worker */
	__atomic_fetch_add(&c->live, 1, __ATOMIC_RELAXED);
	if (gfp & __GFP_ZERO)
		memset(p, 0, c->size);
	else if (c->ctor)
		c->ctor(p);
	return p;
}

void ibk_kmem_cache_free(struct kmem_cache *c, void *p)
{
	if (!p)
		return;
	int cpu = ibk_cpu;
	/* settles: the cache's live count, from every worker */
	__atomic_fetch_sub(&c->live, 1, __ATOMIC_RELAXED);
	if (cpu >= 0 && cpu < IBK_MAX_CPUS)
		c->cpu[cpu].frees++;
	if (cpu >= 0 && cpu < IBK_MAX_CPUS && c->cpu[cpu].count < IBK_KC_CPU_MAX) {
		*(void **)p = c->cpu[cpu].head;
		c->cpu[cpu].head = p;
		c->cpu[cpu].count++;
		return;
	}
	ibk_raw_lock(&c->lock);
	*(void **)p = c->shared;
	c->shared = p;
	ibk_raw_unlock(&c->lock);
}

static struct kmem_cache *kmem_cache_named(struct ibk_env *env, const char *name)
{
	for (int i = 0; env && i < 16; i++)
		if (env->caches[i] && !strcmp(env->caches[i]->name, name))
			return env->caches[i];
	return NULL;
}

u64 *ibk_kmem_cache_cpu_count(struct ibk_env *env, const char *name, int cpu, int frees)
{
	struct kmem_cache *c = kmem_cache_named(env, name);
	if (!c || cpu < 0 || cpu >= IBK_MAX_CPUS)
		return NULL;
	return frees ? &c->cpu[cpu].frees : &c->cpu[cpu].allocs;
}

size_t ibk_kmem_cache_size_named(struct ibk_env *env, const char *name)
{
	struct kmem_cache *c = kmem_cache_named(env, name);
	return c ? c->size : 0;
}

u64 ibk_kmem_cache_live_named(const char *name)
{
	u64 n = 0;
	for (int i = 0; ibk_env_cur && i < 16; i++) {
		struct kmem_cache *c = ibk_env_cur->caches[i];
		if (c && !strcmp(c->name, name))
			n += __atomic_load_n(&c->live, __ATOMIC_RELAXED);
	}
	return n;
}

/* ---- pages ----------------------------------------------------------------------------- */
static void *internal_pages_alloc(struct ibk_env *env, size_t size)
{
	int order = get_order(size);
	size_t bytes = PAGE_SIZE << order;
	void *p = NULL;
	if (order > IBK_MAX_ORDER)
		return NULL;
	ibk_raw_lock(&env->page_lock);
	u32 head = env->page_free_heads[order];
	if (head != IBK_NO_PAGE) {
		env->page_free_heads[order] = env->page_link[head];
		p = env->win_base + ((u64)head << PAGE_SHIFT);
	} else {
		/* naturally aligned in phys, as a buddy allocator's blocks are */
		u64 off = (env->page_next + bytes - 1) & ~(u64)(bytes - 1);
		if (off + bytes <= env->win_size) {
			env->page_next = off + bytes;
			p = env->win_base + off;
		}
	}
	ibk_raw_unlock(&env->page_lock);
	if (!p)
		return NULL;
	{
		u32 *g = &env->page_gen[((char *)p - env->win_base) >> PAGE_SHIFT];
		for (u64 i = 0; i < (bytes >> PAGE_SHIFT); i++)
			/* settles: a walker reading this page as the table it was sees the reuse
			 * (seqlock writer: the generation moves before the page is rewritten) */
			__atomic_store_n(&g[i], g[i] + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
	}
	memset(p, 0, bytes);
	return p;
}

static void internal_pages_free(struct ibk_env *env, void *p, size_t size)
{
	int order = get_order(size);
	{
		u32 *g = &env->page_gen[((char *)p - env->win_base) >> PAGE_SHIFT];
		for (u64 i = 0; i < ((PAGE_SIZE << order) >> PAGE_SHIFT); i++)
			/* settles: a walker still reading the page sees it freed (release: the page
			 * was unlinked from the table before its generation says free) */
			__atomic_store_n(&g[i], g[i] + 1, __ATOMIC_RELEASE);
	}
	u32 index = (u32)(((char *)p - env->win_base) >> PAGE_SHIFT);
	ibk_raw_lock(&env->page_lock);
	env->page_link[index] = env->page_free_heads[order];
	env->page_free_heads[order] = index;
	ibk_raw_unlock(&env->page_lock);
}

void *ibk_env_pages_alloc(struct ibk_env *env, size_t size)
{
	if (!env || !env->win_base)
		return NULL;
	void *p = env->page_alloc ? env->page_alloc(env->page_cookie, size)
				  : internal_pages_alloc(env, size);
	if (!p)
		return NULL;
	if (WARN_ON((char *)p < env->win_base + PAGE_SIZE ||
		    (char *)p + size > env->win_base + env->win_size))
		return NULL;
	struct ibk_cpu_stats *s = ibk_my_stats(env);
	/* settles: the no-CPU slot may be shared by threads; per-CPU slots are private */
	__atomic_fetch_add(&s->pages_allocated, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->page_bytes_allocated, size, __ATOMIC_RELAXED);
	return p;
}

void ibk_env_pages_free(struct ibk_env *env, void *p, size_t size)
{
	if (!p || !env)
		return;
	struct ibk_cpu_stats *s = ibk_my_stats(env);
	/* settles: the no-CPU slot may be shared by threads; per-CPU slots are private */
	__atomic_fetch_add(&s->pages_freed, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->page_bytes_freed, size, __ATOMIC_RELAXED);
	if (env->page_free)
		env->page_free(env->page_cookie, p, size);
	else
		internal_pages_free(env, p, size);
}

void *ibk_pages_alloc(size_t size, gfp_t gfp)
{
	(void)gfp; /* always zeroed, as __GFP_ZERO and the io-pgtable hooks require */
	return ibk_env_pages_alloc(ibk_env_cur, size);
}

void ibk_pages_free(void *p, size_t size) { ibk_env_pages_free(ibk_env_cur, p, size); }

/* ---- delayed work ---------------------------------------------------------------------- */
void ibk_init_delayed_work(struct delayed_work *dw, work_func_t fn)
{
	struct ibk_env *env = ibk_env_cur;
	dw->work.func = fn;
	dw->due_ns = 0;
	dw->pending = 0;
	dw->slot = -1;
	if (!env)
		return;
	ibk_raw_lock(&env->work_lock);
	for (int i = 0; i < IBK_MAX_WORKS; i++) {
		if (!env->works[i]) {
			env->works[i] = dw;
			dw->slot = i;
			break;
		}
	}
	ibk_raw_unlock(&env->work_lock);
	WARN_ON(dw->slot < 0);
}

bool ibk_schedule_delayed_work(struct delayed_work *dw, unsigned long delay)
{
	int idle = 0;
	/* settles: many CPUs queueing the same work: one queues it, the rest see it pending */
	if (!__atomic_compare_exchange_n(&dw->pending, &idle, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return false;
	/* A tick that reads the old due time before this store runs the work early: harmless. */
	__atomic_store_n(&dw->due_ns, ibk_now_ns() + (u64)delay * 1000000ULL, __ATOMIC_RELEASE);
	return true;
}

bool ibk_cancel_delayed_work_sync(struct delayed_work *dw)
{
	struct ibk_env *env = ibk_env_cur;
	/* settles: a cancel racing a queue or a tick: the work is left idle */
	bool was = __atomic_exchange_n(&dw->pending, 0, __ATOMIC_ACQ_REL);
	if (env && dw->slot >= 0) {
		ibk_raw_lock(&env->work_lock);
		if (env->works[dw->slot] == dw)
			env->works[dw->slot] = NULL;
		ibk_raw_unlock(&env->work_lock);
		dw->slot = -1;
	}
	return was;
}

int ibk_tick(struct ibk_env *env, u64 now_ns)
{
	int ran = 0;
	if (!env)
		return 0;
	if (!now_ns)
		now_ns = ibk_now_ns();
	for (int i = 0; i < IBK_MAX_WORKS; i++) {
		struct delayed_work *dw = __atomic_load_n(&env->works[i], __ATOMIC_ACQUIRE);
		int queued = 1;
		if (!dw || __atomic_load_n(&dw->pending, __ATOMIC_ACQUIRE) != 1 ||
		    __atomic_load_n(&dw->due_ns, __ATOMIC_ACQUIRE) > now_ns)
			continue;
		/* settles: two ticks (or a tick and a cancel) on one work: one of them claims it */
		if (!__atomic_compare_exchange_n(&dw->pending, &queued, 0, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		dw->work.func(&dw->work);
		ran++;
	}
	/* settles: ticks from several processes are all counted */
	__atomic_fetch_add(&env->works_run, (u64)ran, __ATOMIC_RELAXED);
	return ran;
}

/* ---- CPU hotplug ----------------------------------------------------------------------- */
int ibk_cpuhp_setup_multi(int state, int (*startup)(unsigned int, struct hlist_node *),
			  int (*teardown)(unsigned int, struct hlist_node *))
{
	(void)startup;
	if (ibk_env_cur && state == CPUHP_IOMMU_IOVA_DEAD)
		ibk_env_cur->cpuhp_dead = teardown;
	return 0;
}

int ibk_cpuhp_add_instance(int state, struct hlist_node *node)
{
	struct ibk_env *env = ibk_env_cur;
	if (!env || state != CPUHP_IOMMU_IOVA_DEAD)
		return 0;
	for (int i = 0; i < IBK_MAX_CPUHP; i++) {
		if (!env->cpuhp_nodes[i]) {
			env->cpuhp_nodes[i] = node;
			return 0;
		}
	}
	return -ENOSPC;
}

int ibk_cpuhp_remove_instance(int state, struct hlist_node *node)
{
	struct ibk_env *env = ibk_env_cur;
	if (!env || state != CPUHP_IOMMU_IOVA_DEAD)
		return 0;
	for (int i = 0; i < IBK_MAX_CPUHP; i++)
		if (env->cpuhp_nodes[i] == node)
			env->cpuhp_nodes[i] = NULL;
	return 0;
}

int ibk_cpu_dead(struct ibk_env *env, unsigned int cpu)
{
	int n = 0;
	if (!env || !env->cpuhp_dead)
		return 0;
	for (int i = 0; i < IBK_MAX_CPUHP; i++) {
		if (env->cpuhp_nodes[i]) {
			env->cpuhp_dead(cpu, env->cpuhp_nodes[i]);
			n++;
		}
	}
	return n;
}
