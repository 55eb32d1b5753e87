/*
 * The gunyah-net guest SDK: include this one header to get all of it.
 */
#ifndef GN_SDK_H
#define GN_SDK_H

#include <gn/atomic.h>
#include <gn/bootargs.h>
#include <gn/console.h>
#include <gn/cpu.h>
#include <gn/dt.h>
#include <gn/format.h>
#include <gn/gic.h>
#include <gn/hvc.h>
#include <gn/hyp_dt.h>
#include <gn/ipc.h>
#include <gn/mmio.h>
#include <gn/platform.h>
#include <gn/psci.h>
#include <gn/ring.h>
#include <gn/rm_calls.h>
#include <gn/rm_rpc.h>
#include <gn/string.h>
#include <gn/timer.h>
#include <gn/uart.h>

#endif /* GN_SDK_H */
