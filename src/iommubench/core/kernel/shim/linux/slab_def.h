/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/slab_def.h> is part of ibk_shim.h */
#include <ibk_shim.h>
