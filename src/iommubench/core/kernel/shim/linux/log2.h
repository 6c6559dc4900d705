/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/log2.h> is part of ibk_shim.h */
#include <ibk_shim.h>
