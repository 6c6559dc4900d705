/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/iommu.h> is part of ibk_shim.h */
#include <ibk_shim.h>
