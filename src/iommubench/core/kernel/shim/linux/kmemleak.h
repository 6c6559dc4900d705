/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/kmemleak.h> is part of ibk_shim.h */
#include <ibk_shim.h>
