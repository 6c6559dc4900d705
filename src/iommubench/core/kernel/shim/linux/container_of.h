/* SPDX-License-Identifier: MIT */
/* iommubench shim: <linux/container_of.h> is part of ibk_shim.h */
#include <ibk_shim.h>
