/* SPDX-License-Identifier: MIT */
/* iommubench shim: <asm/barrier.h> is part of ibk_shim.h */
#include <ibk_shim.h>
