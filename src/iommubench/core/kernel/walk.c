// SPDX-License-Identifier: MIT
/*
 * iommubench kernel-code object: the walkers' pass over the kernel's table (see
 * ibk_walker_pass in ibk.h). Kept apart from the shim: it needs <signal.h> and <setjmp.h>.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "ibk.h"

#define PTE_ADDR 0x0000fffffffff000ULL

static __thread sigjmp_buf *walk_jmp;
static struct sigaction walk_prev;
static int walk_installed;

static void walk_segv(int sig, siginfo_t *si, void *uc)
{
	if (walk_jmp)
		siglongjmp(*walk_jmp, 1);
	/* not ours: the handler that was there before */
	if (walk_prev.sa_flags & SA_SIGINFO)
		walk_prev.sa_sigaction(sig, si, uc);
	else if (walk_prev.sa_handler != SIG_IGN && walk_prev.sa_handler != SIG_DFL)
		walk_prev.sa_handler(sig);
	else {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static void walk_guard_install(void)
{
	struct sigaction sa;
	if (walk_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = walk_segv;
	/* NODEFER: we leave the handler by siglongjmp without restoring the mask */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &walk_prev);
	walk_installed = 1;
}

void ibk_walker_pass(struct ibk_pgtable *t, unsigned long iova, size_t size, size_t step,
		     struct ibk_walk_counts *c)
{
	struct ibk_pgtable_info info;
	struct ibk_direct dk;
	sigjmp_buf jb;
	ibk_pgtable_info(t, &info);
	ibk_pgtable_direct(t, &dk);
	walk_guard_install();
	const uint64_t npages = info.window_bytes >> 12;
	uint32_t *gen = info.page_gen;
	for (unsigned long v = iova; v < iova + size; v += step) {
		uint32_t page[4], before[4];
		int n = 0;
		uint64_t phys = info.pgd_phys;
		for (int lvl = info.start_level; lvl <= 3; lvl++) {
			uint64_t pg = phys >> 12;
			if (!phys || pg >= npages) {
				c->corrupt++;
				break;
			}
			page[n] = (uint32_t)pg;
			/* acquire: the generation is read before any entry of the page (seqlock) */
			before[n] = gen ? __atomic_load_n(&gen[pg], __ATOMIC_ACQUIRE) : 0;
			n++;
			const uint64_t *table = (const uint64_t *)(info.window + phys);
			unsigned int shift = 12 + 9 * (3 - lvl);
			uint64_t pte = __atomic_load_n(&table[(v >> shift) & 511], __ATOMIC_RELAXED);
			if (lvl == 3 || (pte & 3) != 3)
				break;
			phys = pte & PTE_ADDR;
		}
		uint64_t got = 0;
		walk_jmp = &jb;
		if (sigsetjmp(jb, 0) == 0)
			got = dk.iova_to_phys(dk.ops, v);
		else
			c->faults++;
		walk_jmp = NULL;
		/* acquire fence: the kernel's reads happened before the generations are re-read */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		for (int i = 0; gen && i < n; i++) {
			uint32_t after = __atomic_load_n(&gen[page[i]], __ATOMIC_RELAXED);
			if (after != before[i] || (after & 1u)) {
				c->freed_reads++;
				break;
			}
		}
		c->lookups++;
		c->tables_read += (uint64_t)n;
		if (got)
			c->translated++;
	}
	c->passes++;
}
