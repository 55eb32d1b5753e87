/*
 * The gunyah-net guest platform: what the emulator provides to an AArch64 VM.
 *
 * Every guest-visible address and boot-state fact lives here, so that an image
 * and the emulator agree on one list. Values are plain integer constants so the
 * header can be included from C and from assembly (.S) files.
 *
 * Boot state: the boot vCPU starts at the ELF entry at EL1h, MMU off, DAIF
 * masked, with X0 = the DTB address. Secondary vCPUs start at the entry given
 * to PSCI CPU_ON with X0 = the context_id (the SDK passes the cpu index).
 */
#ifndef GN_PLATFORM_H
#define GN_PLATFORM_H

/* [0, 1 GiB): the MMIO window (trap-and-forward VMMIO plus local devices). */
#define GN_MMIO_WINDOW_BASE 0x00000000UL
#define GN_MMIO_WINDOW_SIZE 0x40000000UL

/* GICv3 distributor (64 KiB) and redistributors (128 KiB stride per vCPU). */
#define GN_GICD_BASE 0x08000000UL
#define GN_GICD_SIZE 0x00010000UL
#define GN_GICR_BASE 0x080A0000UL
#define GN_GICR_STRIDE 0x00020000UL

/* PL011 UART. */
#define GN_UART_BASE 0x09000000UL
#define GN_UART_DR 0x00   /* data register */
#define GN_UART_FR 0x18   /* flag register */
#define GN_UART_IMSC 0x38 /* interrupt mask set/clear */
#define GN_UART_RIS 0x3C  /* raw interrupt status */
#define GN_UART_MIS 0x40  /* masked interrupt status */
#define GN_UART_ICR 0x44  /* interrupt clear */
#define GN_UART_FR_BUSY (1U << 3)
#define GN_UART_FR_RXFE (1U << 4) /* receive FIFO empty */
#define GN_UART_FR_TXFF (1U << 5) /* transmit FIFO full */
#define GN_UART_SPI 1             /* SPI number, level-high */
#define GN_UART_INTID 33          /* = 32 + GN_UART_SPI */

/* RAM: images are linked here; the size comes from the DT /memory node. */
#define GN_RAM_BASE 0x80000000UL
#define GN_RAM_MIN_SIZE 0x00100000UL /* at least 1 MiB */

/* The flattened DT sits in the top 64 KiB of RAM. */
#define GN_DTB_WINDOW_SIZE 0x00010000UL

/* An image (code, data, bss and stacks) must stay below this bound, which
 * keeps it clear of the DTB window for the smallest RAM size. */
#define GN_IMAGE_MAX_SIZE 0x00080000UL /* 512 KiB */

/* vCPUs: vCPU i has MPIDR Aff0 = i. */
#define GN_MAX_CPUS 8
#define GN_STACK_SIZE 0x4000UL /* 16 KiB per vCPU */

#endif /* GN_PLATFORM_H */
