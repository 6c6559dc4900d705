// SPDX-License-Identifier: MIT
/*
 * iommubench kernel-code object: drivers for its own tests and measurements (see ibk_drive.h).
 * Our own code, calling the kernel's functions only through their public ops and the adapter.
 */
#define _GNU_SOURCE
#include <ibk_env.h>
#include <linux/io-pgtable.h>

#include <sched.h>
#include <stdlib.h>

#include "ibk.h"
#include "ibk_drive.h"

void ibk_barrier_init(struct ibk_barrier *b, uint32_t n)
{
	b->arrived = 0;
	b->gen = 0;
	b->n = n;
}

void ibk_barrier_wait(struct ibk_barrier *b)
{
	uint32_t gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
	/* settles: which arriving worker is last (it alone resets the count and opens the gate) */
	if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) == b->n) {
		__atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
		/* settles: waiters see the reset count before the new generation (release) */
		__atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	unsigned int spins = 0;
	while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen) {
		cpu_relax();
		if (++spins > (1u << 16)) {
			sched_yield();
			spins = 0;
		}
	}
}

/* ---- racing mappers ------------------------------------------------------------------------ */
static void count_table(void *ctx, int level, uint64_t iova, uint64_t phys)
{
	(void)level; (void)iova; (void)phys;
	(*(uint64_t *)ctx)++;
}

static uint64_t tables_reachable(struct ibk_pgtable *t)
{
	uint64_t n = 0;
	ibk_walk(t, count_table, NULL, &n);
	return n;
}

int ibk_drive_race(struct ibk_pgtable *t, struct ibk_race *r, int worker)
{
	struct ibk_env *env = ibk_pgtable_env(t);
	struct ibk_stats st;
	uint64_t allocs_before = 0, tables_before = 0;
	ibk_env_use(env);
	ibk_set_cpu(worker);
	for (uint32_t round = 0; round < r->rounds; round++) {
		ibk_barrier_wait(&r->bar);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		if (worker == 0) {
			ibk_env_stats(env, &st);
			allocs_before = st.pages_allocated;
			tables_before = tables_reachable(t);
		}
		ibk_barrier_wait(&r->bar);
		for (uint64_t i = (uint64_t)worker; i < r->npages; i += r->nworkers) {
			if (ibk_map(t, r->iova0 + i * PAGE_SIZE, r->pa0 + i * PAGE_SIZE, PAGE_SIZE, 1,
				    IOMMU_READ | IOMMU_WRITE, NULL))
				r->map_errors[worker]++;
		}
		ibk_barrier_wait(&r->bar);
		if (worker != 0)
			continue;
		struct ibk_audit a;
		int bad = ibk_audit_range(t, r->iova0, r->pa0, r->npages, &a);
		ibk_env_stats(env, &st);
		uint64_t allocated = st.pages_allocated - allocs_before;
		uint64_t installed = a.tables > tables_before ? a.tables - tables_before : 0;
		r->tables_installed += installed;
		if (allocated > installed)
			r->installs_lost += allocated - installed;
		r->rounds_done = round + 1;
		if (bad && !r->caught_round) {
			r->caught_round = round + 1;
			r->wrong = a.wrong + a.walk_missing + a.kernel_missing;
			r->leaked_bytes = (uint64_t)a.leaked_bytes;
			r->strays = a.strays;
			if (r->stop_on_catch)
				/* settles: the other workers see the stop at the next round's barrier */
				__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
		}
		if (!(r->leave_mapped && round + 1 == r->rounds) && !(bad && r->stop_on_catch))
			ibk_unmap_range(t, r->iova0, r->npages * PAGE_SIZE, 0);
	}
	ibk_publish(env);
	return 0;
}

/* ---- walkers against table-freeing unmaps ---------------------------------------------------- */
int ibk_drive_walk(struct ibk_pgtable *t, struct ibk_walk_race *r, int index)
{
	struct ibk_env *env = ibk_pgtable_env(t);
	const uint64_t chunk = 512 * PAGE_SIZE, nchunks = r->npages / 512;
	ibk_env_use(env);
	ibk_set_cpu(index);
	ibk_barrier_wait(&r->bar);
	if ((uint32_t)index >= r->nworkers) {
		struct ibk_walk_counts *c = &r->walk[index - r->nworkers];
		/* acquire: pairs with the last mapper's release; the loop ends after its unmaps
		 * (one pass at least, however fast the mappers were) */
		do
			ibk_walker_pass(t, r->iova0, r->npages * PAGE_SIZE, PAGE_SIZE, c);
		while (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) < r->nworkers);
		return 0;
	}
	for (uint32_t round = 0; round < r->rounds; round++) {
		for (uint64_t k = (uint64_t)index; k < nchunks; k += r->nworkers)
			if (ibk_map(t, r->iova0 + k * chunk, r->pa0 + k * chunk, PAGE_SIZE, 512,
				    IOMMU_READ | IOMMU_WRITE, NULL))
				r->map_errors[index]++;
		for (uint64_t k = (uint64_t)index; k < nchunks; k += r->nworkers)
			if (ibk_unmap_range(t, r->iova0 + k * chunk, chunk, 0) != chunk)
				r->map_errors[index]++;
	}
	/* settles: the walkers stop once every mapper has counted itself done (release) */
	__atomic_fetch_add(&r->done, 1, __ATOMIC_RELEASE);
	ibk_publish(env);
	return 0;
}

/* ---- timing loops ---------------------------------------------------------------------------- */
static inline uint64_t now_ns(void) { return ibk_now_ns(); }

int ibk_drive_bench(struct ibk_pgtable *t, struct ibk_bench *b, int worker)
{
	struct ibk_env *env = ibk_pgtable_env(t);
	struct io_pgtable_ops *ops = ibk_pgtable_ops(t);
	const struct ibk_api *api = ibk_get_api();
	/* volatile: the compiler may not see through the pointers, as a dlopen()ing caller can't */
	int (*volatile map)(struct ibk_pgtable *, unsigned long, uint64_t, size_t, size_t, int,
			    size_t *) = api->map;
	size_t (*volatile unmap)(struct ibk_pgtable *, unsigned long, size_t, size_t, int) =
		api->unmap;
	const unsigned long base = (unsigned long)(worker + 1) << 30;
	const uint64_t pa = (uint64_t)(worker + 1) << 32;
	const int prot = IOMMU_READ | IOMMU_WRITE;
	uint64_t n = b->npages;
	ibk_env_use(env);
	ibk_set_cpu(worker);
	/* warm pass: installs the tables, which 4 KiB unmaps leave in place */
	for (uint64_t i = 0; i < n; i++)
		if (map(t, base + i * PAGE_SIZE, pa + i * PAGE_SIZE, PAGE_SIZE, 1, prot, NULL))
			b->errors[worker]++;
	for (uint64_t i = 0; i < n; i++)
		unmap(t, base + i * PAGE_SIZE, PAGE_SIZE, 1, 0);
	struct ibk_direct dk;
	ibk_pgtable_direct(t, &dk);
	ibk_kmap_fn volatile kmap = dk.map_pages;
	ibk_kunmap_fn volatile kunmap = dk.unmap_pages;
	for (uint32_t pass = 0; pass < 3 * b->passes; pass++) {
		int mode = pass % 3;
		size_t mapped;
		ibk_barrier_wait(&b->bar);
		uint64_t t0 = now_ns();
		if (mode == 0) {
			for (uint64_t i = 0; i < n; i++)
				if (ops->map_pages(ops, base + i * PAGE_SIZE, pa + i * PAGE_SIZE, PAGE_SIZE,
						   1, prot, GFP_ATOMIC, &mapped))
					b->errors[worker]++;
		} else if (mode == 1) {
			for (uint64_t i = 0; i < n; i++)
				if (map(t, base + i * PAGE_SIZE, pa + i * PAGE_SIZE, PAGE_SIZE, 1, prot,
					&mapped))
					b->errors[worker]++;
		} else {
			for (uint64_t i = 0; i < n; i++)
				if (kmap(dk.ops, base + i * PAGE_SIZE, pa + i * PAGE_SIZE, PAGE_SIZE, 1,
					 prot, dk.gfp, &mapped))
					b->errors[worker]++;
		}
		uint64_t t1 = now_ns();
		ibk_barrier_wait(&b->bar);
		uint64_t t2 = now_ns();
		if (mode == 0) {
			for (uint64_t i = 0; i < n; i++) {
				/* a gather per call, as the IOMMU core's iommu_unmap passes one */
				struct iommu_iotlb_gather g;
				iommu_iotlb_gather_init(&g);
				if (ops->unmap_pages(ops, base + i * PAGE_SIZE, PAGE_SIZE, 1, &g) !=
				    PAGE_SIZE)
					b->errors[worker]++;
			}
		} else if (mode == 1) {
			for (uint64_t i = 0; i < n; i++)
				if (unmap(t, base + i * PAGE_SIZE, PAGE_SIZE, 1, 0) != PAGE_SIZE)
					b->errors[worker]++;
		} else {
			for (uint64_t i = 0; i < n; i++) {
				char g[64] __aligned(8);
				dk.gather_init(g, 0);
				if (kunmap(dk.ops, base + i * PAGE_SIZE, PAGE_SIZE, 1, g) != PAGE_SIZE)
					b->errors[worker]++;
			}
		}
		uint64_t t3 = now_ns();
		b->ns[mode][0][worker] += t1 - t0;
		b->ns[mode][1][worker] += t3 - t2;
		b->ops[mode][0][worker] += n;
		b->ops[mode][1][worker] += n;
	}
	ibk_publish(env);
	return 0;
}

/* ---- racing iova users ----------------------------------------------------------------------- */
static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct live {
	unsigned long pfn;
	unsigned long n;
};

static uint64_t mark(unsigned long *bitmap, unsigned long pfn, unsigned long n, int set)
{
	uint64_t conflicts = 0;
	for (unsigned long p = pfn; p < pfn + n; p++) {
		unsigned long m = 1UL << (p % BITS_PER_LONG);
		unsigned long *w = &bitmap[p / BITS_PER_LONG];
		/* settles: two workers holding the same pfn: the second sees the first's bit */
		unsigned long old = set ? __atomic_fetch_or(w, m, __ATOMIC_ACQ_REL)
					: __atomic_fetch_and(w, ~m, __ATOMIC_ACQ_REL);
		if (set ? (old & m) : !(old & m))
			conflicts++;
	}
	return conflicts;
}

int ibk_drive_iova(struct ibk_iovad *d, struct ibk_iova_race *r, int worker)
{
	struct ibk_env *env = ibk_iovad_env(d);
	uint32_t depth = r->depth ? r->depth : 64;
	struct live *ring = calloc(depth, sizeof(*ring));
	uint64_t rng = r->seed * 2654435761u + (uint64_t)worker * 0x9e3779b97f4a7c15ULL + 1;
	uint32_t head = 0, count = 0;
	if (!ring)
		return -ENOMEM;
	ibk_env_use(env);
	ibk_set_cpu(worker);
	ibk_barrier_wait(&r->bar);
	for (uint64_t op = 0; op < r->ops; op++) {
		for (uint32_t nfree = count == depth ? (r->burst ? depth : 1) : 0; nfree; nfree--) {
			struct live *l = &ring[head];
			r->overlaps[worker] += mark(r->bitmap, l->pfn, l->n, 0);
			ibk_iova_free(d, l->pfn, l->n);
			r->frees[worker]++;
			head = (head + 1) % depth;
			count--;
		}
		uint64_t x = xorshift(&rng);
		unsigned long n = (x & 15) == 0 ? 33 + (x >> 8) % 96 : 1 + (x >> 8) % 32;
		unsigned long pfn = ibk_iova_alloc(d, n, r->limit_pfn - 1, 1);
		if (!pfn) {
			r->failures[worker]++;
		} else {
			r->overlaps[worker] += mark(r->bitmap, pfn, n, 1);
			ring[(head + count) % depth] = (struct live){ pfn, n };
			count++;
			r->allocs[worker]++;
		}
		if (worker == 0 && r->tick_every && op % r->tick_every == 0)
			r->ticks_run[worker] += ibk_tick(env, ibk_now_ns() + r->tick_skew_ns);
	}
	while (count) {
		struct live *l = &ring[head];
		r->overlaps[worker] += mark(r->bitmap, l->pfn, l->n, 0);
		ibk_iova_free(d, l->pfn, l->n);
		r->frees[worker]++;
		head = (head + 1) % depth;
		count--;
	}
	free(ring);
	ibk_publish(env);
	return 0;
}
