// SPDX-License-Identifier: MIT
/*
 * iommubench kernel-code adapter: the C API of ibk.h over the kernel's own io-pgtable-arm.c and
 * iova.c. Our own code; it only calls the kernel files' public functions (alloc_io_pgtable_ops,
 * the ops' map_pages/unmap_pages/iova_to_phys, free_io_pgtable_ops, init_iova_domain,
 * alloc_iova_fast, free_iova_fast, put_iova_domain) and reads the table through its own walk.
 */
#include <ibk_env.h>
#include <linux/io-pgtable.h>
#include <linux/iova.h>
#include <linux/rbtree.h>

#include "ibk.h"

#ifdef IBK_RACY_CMPXCHG
#define IBK_VARIANT "racy-cmpxchg"
#else
#define IBK_VARIANT "normal"
#endif

struct ibk_pgtable {
	struct ibk_env *env;
	struct io_pgtable_ops *ops;
	struct io_pgtable_cfg cfg; /* as the kernel filled it in (ttbr) */
	struct iommu_flush_ops flush;
	struct ibk_tlb_hooks hooks;
	struct device dev;
	void *pgd;
	u64 pgd_phys;
	int levels;
	int start_level;
};

struct ibk_iovad {
	struct iova_domain iovad;
	struct ibk_env *env;
	u64 mags_at_init; /* magazines the rcaches hold when empty (the CPUs' loaded and prev) */
};

/* ---- env ----------------------------------------------------------------------------------- */
size_t ibk_env_min_bytes(void) { return ((sizeof(struct ibk_env) + 4095) & ~(size_t)4095) + 65536; }

struct ibk_env *ibk_env_create(void *region, size_t bytes, unsigned int nr_cpus)
{
	return ibk_env_init(region, bytes, nr_cpus);
}

int ibk_env_window(struct ibk_env *env, void *base, size_t bytes, ibk_page_alloc_cb alloc,
		   ibk_page_free_cb free_fn, void *cookie)
{
	return ibk_env_set_window(env, base, bytes, alloc, free_fn, cookie);
}

struct ibk_env **ibk_env_slot(void) { return &ibk_env_cur; }


void ibk_cpu_lock_stats(struct ibk_env *env, int cpu, uint64_t out[4])
{
	if (cpu == ibk_cpu)
		ibk_publish(env);
	struct ibk_cpu_stats *s = &env->cpu[(cpu >= 0 && cpu < IBK_MAX_CPUS) ? cpu : IBK_MAX_CPUS];
	out[0] = __atomic_load_n(&s->lock_acq, __ATOMIC_RELAXED);
	out[1] = __atomic_load_n(&s->lock_contended, __ATOMIC_RELAXED);
	out[2] = __atomic_load_n(&s->lock_wait_ns, __ATOMIC_RELAXED);
	out[3] = __atomic_load_n(&s->lock_wait_max_ns, __ATOMIC_RELAXED);
}

void ibk_set_cpu(int cpu) { ibk_cpu = cpu; }
int ibk_get_cpu(void) { return ibk_cpu; }

void ibk_set_online_cpus(struct ibk_env *env, unsigned int n)
{
	/* settles: the tick and the workers read the online count while the harness lowers it */
	__atomic_store_n(&env->online_cpus, n, __ATOMIC_RELEASE);
}

void ibk_publish(struct ibk_env *env)
{
	struct ibk_cpu_stats *s = ibk_my_stats(env);
	/* settles: the no-CPU slot may be shared by threads; per-CPU slots are private */
	__atomic_fetch_add(&s->lock_acq, ibk_lock_acq, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->dma_syncs, ibk_dma_syncs, __ATOMIC_RELAXED);
	ibk_lock_acq = 0;
	ibk_dma_syncs = 0;
}

void ibk_env_stats(struct ibk_env *env, struct ibk_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->warns = __atomic_load_n(&env->warns, __ATOMIC_ACQUIRE);
	out->bugs = __atomic_load_n(&env->bugs, __ATOMIC_ACQUIRE);
	out->heap_bytes_live = __atomic_load_n(&env->heap_live_bytes, __ATOMIC_ACQUIRE);
	out->works_run = __atomic_load_n(&env->works_run, __ATOMIC_ACQUIRE);
	u64 ab = 0, fb = 0;
	for (int i = 0; i <= IBK_MAX_CPUS; i++) {
		struct ibk_cpu_stats *s = &env->cpu[i];
		out->pages_allocated += __atomic_load_n(&s->pages_allocated, __ATOMIC_ACQUIRE);
		out->pages_freed += __atomic_load_n(&s->pages_freed, __ATOMIC_ACQUIRE);
		ab += __atomic_load_n(&s->page_bytes_allocated, __ATOMIC_ACQUIRE);
		fb += __atomic_load_n(&s->page_bytes_freed, __ATOMIC_ACQUIRE);
		out->lock_acquisitions += __atomic_load_n(&s->lock_acq, __ATOMIC_ACQUIRE);
		out->lock_contended += __atomic_load_n(&s->lock_contended, __ATOMIC_ACQUIRE);
		out->lock_wait_ns += __atomic_load_n(&s->lock_wait_ns, __ATOMIC_ACQUIRE);
		if (s->lock_wait_max_ns > out->lock_wait_max_ns)
			out->lock_wait_max_ns = s->lock_wait_max_ns;
		out->dma_syncs += __atomic_load_n(&s->dma_syncs, __ATOMIC_ACQUIRE);
	}
	out->page_bytes_live = ab - fb;
}

const char *ibk_first_warn(struct ibk_env *env) { return env->first_warn; }

void *ibk_shared_alloc(struct ibk_env *env, size_t size)
{
	ibk_env_use(env);
	return kzalloc(size, GFP_KERNEL);
}

void ibk_shared_free(struct ibk_env *env, void *p)
{
	ibk_env_use(env);
	kfree(p);
}

/* ---- page table ------------------------------------------------------------------------------ */
static void ibk_tlb_flush_all(void *cookie)
{
	struct ibk_pgtable *t = cookie;
	if (t->hooks.flush_all)
		t->hooks.flush_all(t->hooks.cookie);
}

static void ibk_tlb_flush_walk(unsigned long iova, size_t size, size_t granule, void *cookie)
{
	struct ibk_pgtable *t = cookie;
	if (t->hooks.flush_walk)
		t->hooks.flush_walk(t->hooks.cookie, iova, size, granule);
}

static void ibk_tlb_add_page(struct iommu_iotlb_gather *gather, unsigned long iova, size_t granule,
			     void *cookie)
{
	struct ibk_pgtable *t = cookie;
	if (gather)
		iommu_iotlb_gather_add_range(gather, iova, granule);
	if (t->hooks.add_page)
		t->hooks.add_page(t->hooks.cookie, iova, granule);
}

#ifdef IBK_HAVE_CFG_ALLOC
static void *ibk_cfg_alloc(void *cookie, size_t size, gfp_t gfp)
{
	(void)gfp;
	return ibk_env_pages_alloc(((struct ibk_pgtable *)cookie)->env, size);
}

static void ibk_cfg_free(void *cookie, void *pages, size_t size)
{
	ibk_env_pages_free(((struct ibk_pgtable *)cookie)->env, pages, size);
}
#endif

int ibk_has_cfg_alloc(void)
{
#ifdef IBK_HAVE_CFG_ALLOC
	return 1;
#else
	return 0;
#endif
}

struct ibk_pgtable *ibk_pgtable_create(struct ibk_env *env, unsigned int ias, unsigned int oas,
				       const struct ibk_tlb_hooks *hooks)
{
	if (!env || !env->win_base || ias < 21 || ias > 48 || oas > 48)
		return NULL;
	ibk_env_use(env);
	struct ibk_pgtable *t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return NULL;
	t->env = env;
	if (hooks)
		t->hooks = *hooks;
	t->flush.tlb_flush_all = ibk_tlb_flush_all;
	t->flush.tlb_flush_walk = ibk_tlb_flush_walk;
	t->flush.tlb_add_page = ibk_tlb_add_page;
	set_dev_node(&t->dev, NUMA_NO_NODE);
	t->cfg.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
	t->cfg.ias = ias;
	t->cfg.oas = oas ? oas : 48;
	t->cfg.coherent_walk = true;
	t->cfg.tlb = &t->flush;
	t->cfg.iommu_dev = &t->dev;
#ifdef IBK_HAVE_CFG_ALLOC
	t->cfg.alloc = ibk_cfg_alloc;
	t->cfg.free = ibk_cfg_free;
#endif
	t->ops = alloc_io_pgtable_ops(ARM_64_LPAE_S1, &t->cfg, t);
	if (!t->ops) {
		kfree(t);
		return NULL;
	}
	t->pgd_phys = t->cfg.arm_lpae_s1_cfg.ttbr;
	t->pgd = phys_to_virt(t->pgd_phys);
	t->levels = (int)DIV_ROUND_UP(ias - 12, 9);
	t->start_level = 4 - t->levels;
	return t;
}

void *ibk_pgtable_ops(struct ibk_pgtable *t) { return t->ops; }
struct ibk_env *ibk_pgtable_env(struct ibk_pgtable *t) { return t->env; }

void ibk_pgtable_info(struct ibk_pgtable *t, struct ibk_pgtable_info *out)
{
	out->pgd = t->pgd;
	out->pgd_phys = t->pgd_phys;
	out->levels = t->levels;
	out->start_level = t->start_level;
	out->granule = SZ_4K;
	out->pgsize_bitmap = t->cfg.pgsize_bitmap;
	out->ias = t->cfg.ias;
	out->oas = t->cfg.oas;
	out->window = t->env->win_base;
	out->window_bytes = t->env->win_size;
	out->page_gen = t->env->page_gen;
}

void ibk_env_page_gen(struct ibk_env *env, uint32_t *gen) { env->page_gen = gen; }

int ibk_map(struct ibk_pgtable *t, unsigned long iova, uint64_t paddr, size_t pgsize,
	    size_t pgcount, int prot, size_t *mapped)
{
	size_t done = 0, total = pgsize * pgcount;
	int ret = t->ops->map_pages(t->ops, iova, paddr, pgsize, pgcount, prot, GFP_ATOMIC, &done);
	/* map_pages stops at a table boundary: go on from there, as the IOMMU core does */
	while (unlikely(!ret && done && done < total)) {
		size_t m = 0;
		ret = t->ops->map_pages(t->ops, iova + done, paddr + done, pgsize,
					(total - done) / pgsize, prot, GFP_ATOMIC, &m);
		done += m;
		if (!m)
			break;
	}
	if (mapped)
		*mapped = done;
	return ret ? ret : (done == total ? 0 : -ENOMEM);
}

static size_t ibk_unmap_gathered(struct ibk_pgtable *t, unsigned long iova, size_t pgsize,
				 size_t pgcount, struct iommu_iotlb_gather *g)
{
	size_t total = pgsize * pgcount;
	size_t done = t->ops->unmap_pages(t->ops, iova, pgsize, pgcount, g);
	while (unlikely(done && done < total)) {
		size_t u = t->ops->unmap_pages(t->ops, iova + done, pgsize, (total - done) / pgsize, g);
		if (!u)
			break;
		done += u;
	}
	return done;
}

static void ibk_sync(struct ibk_pgtable *t, struct iommu_iotlb_gather *g)
{
	if (t->hooks.sync && !g->queued && g->start <= g->end)
		t->hooks.sync(t->hooks.cookie, g->start, g->end - g->start + 1);
}

static void ibk_gather_init(void *gather, int queued)
{
	struct iommu_iotlb_gather *g = gather;
	iommu_iotlb_gather_init(g);
	g->queued = queued != 0;
}

static int ibk_gather_range(void *gather, unsigned long *iova, size_t *size)
{
	struct iommu_iotlb_gather *g = gather;
	if (g->queued || g->start > g->end)
		return 0;
	*iova = g->start;
	*size = g->end - g->start + 1;
	return 1;
}

void ibk_pgtable_direct(struct ibk_pgtable *t, struct ibk_direct *out)
{
	out->ops = t->ops;
	out->map_pages = (ibk_kmap_fn)t->ops->map_pages;
	out->unmap_pages = (ibk_kunmap_fn)t->ops->unmap_pages;
	out->iova_to_phys = (ibk_kiova_to_phys_fn)t->ops->iova_to_phys;
	out->gfp = GFP_ATOMIC;
	out->gather_bytes = sizeof(struct iommu_iotlb_gather);
	out->gather_init = ibk_gather_init;
	out->gather_range = ibk_gather_range;
}

size_t ibk_unmap(struct ibk_pgtable *t, unsigned long iova, size_t pgsize, size_t pgcount,
		 int queued)
{
	struct iommu_iotlb_gather g;
	iommu_iotlb_gather_init(&g);
	g.queued = queued != 0;
	size_t done = ibk_unmap_gathered(t, iova, pgsize, pgcount, &g);
	ibk_sync(t, &g);
	return done;
}

/* The largest page size in the bitmap that the alignment of iova (and paddr) and size allow,
 * and how many of it fit before the next larger size could take over. */
static size_t ibk_pgsize(u64 bitmap, unsigned long iova, u64 paddr, size_t size, size_t *count)
{
	u64 addr_merge = (u64)iova | paddr;
	u64 ok = bitmap & GENMASK_ULL(fls64(size) - 1, 0);
	if (addr_merge)
		ok &= GENMASK_ULL(__ffs(addr_merge), 0);
	if (!ok)
		return 0;
	size_t pgsize = (size_t)1 << __fls(ok);
	u64 bigger = bitmap & ~GENMASK_ULL(__fls(ok), 0);
	size_t n = size >> __fls(ok);
	if (bigger) {
		u64 next = (u64)1 << __ffs(bigger);
		u64 offset = next - (addr_merge & (next - 1));
		if (offset < size && (offset & (pgsize - 1)) == 0)
			n = offset >> __fls(ok);
	}
	*count = n ? n : 1;
	return pgsize;
}

int ibk_map_range(struct ibk_pgtable *t, unsigned long iova, uint64_t paddr, size_t size,
		  int prot)
{
	size_t done = 0;
	while (done < size) {
		size_t count, mapped = 0;
		size_t pgsize = ibk_pgsize(t->cfg.pgsize_bitmap, iova + done, paddr + done,
					   size - done, &count);
		if (!pgsize)
			return -EINVAL;
		int ret = ibk_map(t, iova + done, paddr + done, pgsize, count, prot, &mapped);
		done += mapped;
		if (ret)
			return ret;
	}
	return 0;
}

size_t ibk_unmap_range(struct ibk_pgtable *t, unsigned long iova, size_t size, int queued)
{
	struct iommu_iotlb_gather g;
	size_t done = 0;
	iommu_iotlb_gather_init(&g);
	g.queued = queued != 0;
	while (done < size) {
		size_t count;
		size_t pgsize = ibk_pgsize(t->cfg.pgsize_bitmap, iova + done, 0, size - done,
					   &count);
		if (!pgsize)
			break;
		size_t u = ibk_unmap_gathered(t, iova + done, pgsize, count, &g);
		done += u;
		if (u < pgsize * count)
			break;
	}
	ibk_sync(t, &g);
	return done;
}

uint64_t ibk_iova_to_phys(struct ibk_pgtable *t, unsigned long iova)
{
	return t->ops->iova_to_phys(t->ops, iova);
}

void ibk_pgtable_destroy(struct ibk_pgtable *t)
{
	if (!t)
		return;
	ibk_env_use(t->env);
	free_io_pgtable_ops(t->ops);
	kfree(t);
}

/* ---- the audit's own LPAE walk ---------------------------------------------------------------- */
#define IBK_PTE_ADDR GENMASK_ULL(47, 12)

static long walk_level(struct ibk_pgtable *t, int lvl, u64 iova_base, const u64 *table,
		       unsigned int nent, ibk_table_cb on_table, ibk_leaf_cb on_leaf, void *ctx)
{
	long strays = 0;
	unsigned int shift = 12 + 9 * (3 - lvl);
	for (unsigned int i = 0; i < nent; i++) {
		u64 pte = READ_ONCE(table[i]);
		u64 iova = iova_base + ((u64)i << shift);
		if (!pte)
			continue;
		unsigned int type = pte & 3;
		u64 pa = pte & IBK_PTE_ADDR;
		if (lvl < 3 && type == 3) {
			if (pa < PAGE_SIZE || pa + PAGE_SIZE > t->env->win_size) {
				strays++;
				continue;
			}
			if (on_table)
				on_table(ctx, lvl + 1, iova, pa);
			strays += walk_level(t, lvl + 1, iova, phys_to_virt(pa), 512, on_table,
					     on_leaf, ctx);
		} else if ((lvl == 3 && type == 3) || ((lvl == 1 || lvl == 2) && type == 1)) {
			if (on_leaf)
				on_leaf(ctx, lvl, iova, pa, (u64)1 << shift);
		} else {
			strays++;
		}
	}
	return strays;
}

long ibk_walk(struct ibk_pgtable *t, ibk_table_cb on_table, ibk_leaf_cb on_leaf, void *ctx)
{
	unsigned int pgd_bits = t->cfg.ias - 12 - 9 * (t->levels - 1);
	if (on_table)
		on_table(ctx, t->start_level, 0, t->pgd_phys);
	return walk_level(t, t->start_level, 0, t->pgd, 1u << pgd_bits, on_table, on_leaf, ctx);
}

struct audit_ctx {
	struct ibk_audit *a;
	u64 iova, pa, npages;
};

static void audit_table(void *ctx, int level, uint64_t iova, uint64_t phys)
{
	struct audit_ctx *c = ctx;
	(void)iova; (void)phys;
	c->a->tables++;
	c->a->table_bytes += PAGE_SIZE; /* 4 KiB granule; the 48-bit pgd is one page too */
	(void)level;
}

static void audit_leaf(void *ctx, int level, uint64_t iova, uint64_t pa, uint64_t size)
{
	struct audit_ctx *c = ctx;
	(void)level;
	c->a->leaves++;
	c->a->mapped_bytes += size;
	for (u64 off = 0; off < size; off += PAGE_SIZE) {
		u64 v = iova + off;
		if (v < c->iova || v >= c->iova + c->npages * PAGE_SIZE) {
			c->a->extra++;
			continue;
		}
		if (pa + off != c->pa + (v - c->iova))
			c->a->wrong++;
	}
}

int ibk_audit_range(struct ibk_pgtable *t, unsigned long iova, uint64_t pa, uint64_t npages,
		    struct ibk_audit *out)
{
	struct audit_ctx c = { out, iova, pa, npages };
	struct ibk_stats st;
	memset(out, 0, sizeof(*out));
	out->strays = (u64)ibk_walk(t, audit_table, audit_leaf, &c);
	u64 found = out->mapped_bytes / PAGE_SIZE - out->extra;
	out->walk_missing = npages > found ? npages - found : 0;
	for (u64 i = 0; i < npages; i++) {
		u64 got = t->ops->iova_to_phys(t->ops, iova + i * PAGE_SIZE + 42);
		if (!got)
			out->kernel_missing++;
		else if (got != pa + i * PAGE_SIZE + 42)
			out->wrong++;
	}
	ibk_env_stats(t->env, &st);
	out->pool_bytes_live = st.page_bytes_live;
	out->leaked_bytes = (int64_t)st.page_bytes_live - (int64_t)out->table_bytes;
	return (out->strays || out->wrong || out->walk_missing || out->kernel_missing ||
		out->extra || out->leaked_bytes)
		       ? 1
		       : 0;
}

/* ---- iova ------------------------------------------------------------------------------------ */
struct ibk_iovad *ibk_iova_create(struct ibk_env *env, unsigned long granule,
				  unsigned long start_pfn)
{
	ibk_env_use(env);
	if (iova_cache_get())
		return NULL;
	struct ibk_iovad *d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d) {
		iova_cache_put();
		return NULL;
	}
	d->env = env;
	init_iova_domain(&d->iovad, granule, start_pfn);
	if (iova_domain_init_rcaches(&d->iovad)) {
		put_iova_domain(&d->iovad);
		kfree(d);
		iova_cache_put();
		return NULL;
	}
	d->mags_at_init = ibk_kmem_cache_live_named("iommu_iova_magazine");
	return d;
}

unsigned long ibk_iova_alloc(struct ibk_iovad *d, unsigned long npages, unsigned long limit_pfn,
			     int flush_rcache)
{
	return alloc_iova_fast(&d->iovad, npages, limit_pfn, flush_rcache != 0);
}

void ibk_iova_free(struct ibk_iovad *d, unsigned long pfn, unsigned long npages)
{
	free_iova_fast(&d->iovad, pfn, npages);
}

int ibk_iova_drain(struct ibk_iovad *d)
{
	struct ibk_env *env = d->env;
	unsigned int online = env->online_cpus;
	int runs = 0;
	for (unsigned int cpu = 0; cpu < env->nr_cpus; cpu++)
		ibk_cpu_dead(env, cpu);
	/* With no CPU online the depot's trim keeps rescheduling itself until the depot is empty;
	 * a tick far in the future runs it at once. */
	ibk_set_online_cpus(env, 0);
	for (int i = 0; i < 1 << 20; i++) {
		int n = ibk_tick(env, ~0ULL);
		if (!n)
			break;
		runs += n;
	}
	ibk_set_online_cpus(env, online);
	/* Last, what the kernel does when an allocation finds no space: flush every online CPU's
	 * cache and the depot (the only way to empty 6.1's fixed-size depot). A limit below the
	 * domain's start makes the allocation fail. */
	if (d->iovad.start_pfn > 0)
		WARN_ON(alloc_iova_fast(&d->iovad, 1, d->iovad.start_pfn - 1, true) != 0);
	return runs;
}

void ibk_iova_census(struct ibk_iovad *d, struct ibk_iova_census *out)
{
	unsigned long flags;
	unsigned long prev_hi = 0;
	bool first = true;
	memset(out, 0, sizeof(*out));
	spin_lock_irqsave(&d->iovad.iova_rbtree_lock, flags);
	for (struct rb_node *n = rb_first(&d->iovad.rbroot); n; n = rb_next(n)) {
		struct iova *v = rb_entry(n, struct iova, node);
		if (v->pfn_lo == ~0UL)
			continue; /* the anchor */
		out->ranges++;
		out->pages += v->pfn_hi - v->pfn_lo + 1;
		if (!first && v->pfn_lo <= prev_hi)
			out->overlaps++;
		if (v->pfn_hi < v->pfn_lo)
			out->overlaps++;
		prev_hi = v->pfn_hi;
		first = false;
	}
	spin_unlock_irqrestore(&d->iovad.iova_rbtree_lock, flags);
	out->iova_objects_live = ibk_kmem_cache_live_named("iommu_iova");
}

struct ibk_env *ibk_iovad_env(struct ibk_iovad *d) { return d->env; }

/* One census after a drain step: what the step returned to the tree, checked against the
 * struct iova objects alive in their kmem_cache. */
static u64 iova_step(struct ibk_iovad *d, u64 *ranges, struct ibk_iova_audit *out)
{
	struct ibk_iova_census c;
	ibk_iova_census(d, &c);
	int grew = c.ranges > *ranges; /* a drain step never allocates */
	u64 freed = grew ? 0 : *ranges - c.ranges;
	if (grew || c.iova_objects_live != c.ranges)
		out->objects_mismatch++;
	*ranges = c.ranges;
	return freed;
}

int ibk_iova_audit(struct ibk_iovad *d, struct ibk_iova_audit *out)
{
	struct ibk_env *env = d->env;
	struct ibk_iova_census c;
	ibk_env_use(env);
	memset(out, 0, sizeof(*out));
	/* IOVA_MAG_SIZE is iova.c's own: read it off the magazine cache's object (a size word, then
	 * the pfns); 6.1 kmallocs its magazines, of the same 127 pfns */
	size_t mag_bytes = ibk_kmem_cache_size_named(env, "iommu_iova_magazine");
	u64 m = mag_bytes ? (mag_bytes - sizeof(unsigned long)) / sizeof(unsigned long) : 127;
	u64 mags0 = ibk_kmem_cache_live_named("iommu_iova_magazine");
	out->magazine_size = m;
	ibk_iova_census(d, &c);
	out->ranges = c.ranges;
	out->overlaps = c.overlaps;
	if (c.iova_objects_live != c.ranges)
		out->objects_mismatch++;
	u64 ranges = c.ranges;
	/* each CPU's loaded and prev magazines back to the tree: the cpuhp dead callback */
	for (unsigned int cpu = 0; cpu < env->nr_cpus; cpu++) {
		ibk_cpu_dead(env, cpu);
		u64 freed = iova_step(d, &ranges, out);
		out->cpu_cached += freed;
		if (freed > out->cpu_cached_max)
			out->cpu_cached_max = freed;
	}
	/* the depot: its trimming work with no CPU online pops one full magazine per size class
	 * per run until the depot is empty (6.12); each step returns whole magazines */
	unsigned int online = env->online_cpus;
	ibk_set_online_cpus(env, 0);
	for (int i = 0; i < 1 << 20; i++) {
		int n = ibk_tick(env, ~0ULL);
		if (!n)
			break;
		out->depot_trim_runs += (u64)n;
		u64 freed = iova_step(d, &ranges, out);
		out->depot_cached += freed;
		if (freed % m)
			out->partial_magazines++;
	}
	ibk_set_online_cpus(env, online);
	/* what the kernel does when an allocation finds no space: flush every CPU's cache and the
	 * depot (the only way to empty 6.1's fixed-size depot, or a depot whose work is idle) */
	if (d->iovad.start_pfn > 0 && alloc_iova_fast(&d->iovad, 1, d->iovad.start_pfn - 1, true))
		out->objects_mismatch++; /* an allocation below the domain's start succeeded */
	u64 freed = iova_step(d, &ranges, out);
	out->depot_cached += freed;
	if (freed % m)
		out->partial_magazines++;
	out->leaks = ranges;
	if (mag_bytes) {
		/* 6.12: every magazine is a CPU's loaded or prev, or in the depot */
		u64 mags = ibk_kmem_cache_live_named("iommu_iova_magazine");
		out->depot_magazines = mags0 > mags ? mags0 - mags : 0;
		if (mags != d->mags_at_init || out->depot_magazines * m != out->depot_cached)
			out->magazine_mismatch++;
		u64 orders = env->nr_cpus ? d->mags_at_init / (2ULL * env->nr_cpus) : 0;
		if (out->cpu_cached_max > 2 * orders * m)
			out->magazine_mismatch++;
	}
	out->warns = __atomic_load_n(&env->warns, __ATOMIC_ACQUIRE) +
		     __atomic_load_n(&env->bugs, __ATOMIC_ACQUIRE);
	return (out->overlaps || out->leaks || out->objects_mismatch || out->partial_magazines ||
		out->magazine_mismatch || out->warns)
		       ? 1
		       : 0;
}

void ibk_iova_abandon(struct ibk_iovad *d)
{
	/* A run that ended before its teardown (a worker killed, say) leaves iova.c's own state in
	 * this process (its cache users and kmem_caches) pointing into a region about to go. Reset
	 * that state without touching the region: no current env, so no lock in it is taken and
	 * nothing is freed into it. */
	struct ibk_env *prev = ibk_env_cur;
	(void)d;
	ibk_env_cur = NULL;
	iova_cache_put();
	ibk_env_cur = prev;
}

void ibk_iova_destroy(struct ibk_iovad *d)
{
	if (!d)
		return;
	ibk_env_use(d->env);
	put_iova_domain(&d->iovad);
	kfree(d);
	iova_cache_put();
}

/* ---- initcalls (the self-test) ---------------------------------------------------------------- */
extern ibk_initcall_t __start_ibk_initcalls[] __attribute__((weak));
extern ibk_initcall_t __stop_ibk_initcalls[] __attribute__((weak));

int ibk_run_initcalls(int *ran)
{
	int first = 0, n = 0;
	for (ibk_initcall_t *f = __start_ibk_initcalls; f && f < __stop_ibk_initcalls; f++) {
		int r = (*f)();
		n++;
		if (r && !first)
			first = r;
	}
	if (ran)
		*ran = n;
	return first;
}

/* ---- identity --------------------------------------------------------------------------------- */
int ibk_api_version(void) { return IBK_API_VERSION; }
const char *ibk_variant(void) { return IBK_VARIANT; }

static const struct ibk_api ibk_api_table = {
	.version = IBK_API_VERSION,
	.pgtable_create = ibk_pgtable_create,
	.map = ibk_map,
	.unmap = ibk_unmap,
	.map_range = ibk_map_range,
	.unmap_range = ibk_unmap_range,
	.iova_to_phys = ibk_iova_to_phys,
	.pgtable_destroy = ibk_pgtable_destroy,
	.walk = ibk_walk,
	.iova_create = ibk_iova_create,
	.iova_alloc = ibk_iova_alloc,
	.iova_free = ibk_iova_free,
	.iova_destroy = ibk_iova_destroy,
	.set_cpu = ibk_set_cpu,
	.tick = ibk_tick,
	.env_stats = ibk_env_stats,
};

const struct ibk_api *ibk_get_api(void) { return &ibk_api_table; }
