/*
 * PSCI calls through the SMCCC conduit (HVC #0).
 */
#ifndef GN_PSCI_H
#define GN_PSCI_H

#include <stdint.h>

#define GN_PSCI_VERSION 0x84000000U
#define GN_PSCI_CPU_OFF 0x84000002U
#define GN_PSCI_CPU_ON 0xC4000003U
#define GN_PSCI_SYSTEM_OFF 0x84000008U
#define GN_PSCI_SYSTEM_RESET 0x84000009U

/* PSCI return codes. */
#define GN_PSCI_SUCCESS 0
#define GN_PSCI_NOT_SUPPORTED (-1)
#define GN_PSCI_INVALID_PARAMETERS (-2)
#define GN_PSCI_DENIED (-3)
#define GN_PSCI_ALREADY_ON (-4)
#define GN_PSCI_ON_PENDING (-5)
#define GN_PSCI_INTERNAL_FAILURE (-6)
#define GN_PSCI_NOT_PRESENT (-7)
#define GN_PSCI_DISABLED (-8)
#define GN_PSCI_INVALID_ADDRESS (-9)

/* Returns the PSCI version (major in bits 31:16, minor in bits 15:0). */
uint32_t gn_psci_version(void);

/* Powers on the vCPU with MPIDR target_mpidr at entry with X0 = context_id;
 * returns a PSCI code. */
int32_t gn_psci_cpu_on(uint64_t target_mpidr, uintptr_t entry, uint64_t context_id);

/* Starts vCPU `cpu` (MPIDR Aff0 = cpu) in secondary_main(cpu); returns a PSCI code. */
int32_t gn_cpu_start(unsigned cpu);

/* Powers off the calling vCPU. */
_Noreturn void gn_psci_cpu_off(void);
/* Powers off the whole VM. */
_Noreturn void gn_psci_system_off(void);
/* Resets the whole VM (it boots again from its image). */
_Noreturn void gn_psci_system_reset(void);

#endif /* GN_PSCI_H */
