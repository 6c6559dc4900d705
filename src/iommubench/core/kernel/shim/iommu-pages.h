/* SPDX-License-Identifier: MIT */
/*
 * iommubench shim: the IOMMU page allocation helpers (6.11+), on the shim's page window. Found by
 * the quoted include only because the staged tree does not carry the kernel's own copy.
 */
#ifndef IBK_IOMMU_PAGES_H
#define IBK_IOMMU_PAGES_H
#include <ibk_shim.h>

static inline void *iommu_alloc_pages_node(int nid, gfp_t gfp, int order)
{
	(void)nid;
	return ibk_pages_alloc(PAGE_SIZE << order, gfp);
}
static inline void *iommu_alloc_pages(gfp_t gfp, int order)
{
	return iommu_alloc_pages_node(NUMA_NO_NODE, gfp, order);
}
static inline void *iommu_alloc_page_node(int nid, gfp_t gfp)
{
	return iommu_alloc_pages_node(nid, gfp, 0);
}
static inline void *iommu_alloc_page(gfp_t gfp) { return iommu_alloc_pages(gfp, 0); }
static inline void iommu_free_pages(void *virt, int order)
{
	if (virt)
		ibk_pages_free(virt, PAGE_SIZE << order);
}
static inline void iommu_free_page(void *virt) { iommu_free_pages(virt, 0); }
#endif
