/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/init.h> is part of ibk_shim.h */
#include <ibk_shim.h>
