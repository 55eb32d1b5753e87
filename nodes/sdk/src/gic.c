/*
 * GICv3 driver: distributor and redistributor programming over MMIO (one
 * 32-bit LDR/STR per access), the ICC_* system registers, and the dispatcher
 * behind the SDK's default irq_handler(). See gn/gic.h.
 */
#include <stddef.h>

#include <gn/cpu.h>
#include <gn/gic.h>
#include <gn/mmio.h>
#include <gn/platform.h>

/* Distributor and redistributor register offsets (GICv3, IHI 0069). */
#define GICD_CTLR 0x0000U
#define GICD_CTLR_ENABLE_GRP1 (1U << 1)
#define GIC_ISENABLER 0x0100U
#define GIC_ICENABLER 0x0180U
#define GIC_IPRIORITYR 0x0400U
#define GIC_ICFGR 0x0C00U
#define GICD_IROUTER 0x6000U
#define GICR_WAKER 0x0014U
#define GICR_WAKER_PROCESSOR_SLEEP (1U << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1U << 2)
#define GICR_SGI_BASE 0x10000UL

/* ICC_* by encoding, so any assembler accepts them. */
#define ICC_PMR_EL1 "S3_0_C4_C6_0"
#define ICC_IAR1_EL1 "S3_0_C12_C12_0"
#define ICC_EOIR1_EL1 "S3_0_C12_C12_1"
#define ICC_BPR1_EL1 "S3_0_C12_C12_3"
#define ICC_CTLR_EL1 "S3_0_C12_C12_4"
#define ICC_IGRPEN1_EL1 "S3_0_C12_C12_7"
#define ICC_SGI1R_EL1 "S3_0_C12_C11_5"

#define ICC_WRITE(reg, v) __asm__ volatile("msr " reg ", %0\n\tisb" ::"r"((uint64_t)(v)) : "memory")

struct irq_slot {
    gn_irq_handler handler;
    void *arg;
};

static struct irq_slot irq_slots[GN_GIC_INTID_LIMIT];
volatile uint64_t gn_gic_unhandled;

static uintptr_t gicr_sgi_base(void)
{
    return GN_GICR_BASE + gn_cpu_id() * GN_GICR_STRIDE + GICR_SGI_BASE;
}

/* Base of the frame that holds intid's per-INTID registers. */
static uintptr_t frame_of(unsigned intid)
{
    return intid < GN_GIC_SPI_BASE ? gicr_sgi_base() : GN_GICD_BASE;
}

static void set_bit_reg(uintptr_t frame, uint32_t reg, unsigned intid)
{
    gn_mmio_write32(frame + reg + 4U * (intid / 32U), 1U << (intid % 32U));
}

static void set_priority(uintptr_t frame, unsigned intid, uint8_t priority)
{
    uintptr_t addr = frame + GIC_IPRIORITYR + (intid & ~3U);
    unsigned shift = 8U * (intid & 3U);
    uint32_t word = gn_mmio_read32(addr);
    word = (word & ~(0xFFU << shift)) | ((uint32_t)priority << shift);
    gn_mmio_write32(addr, word);
}

static void set_trigger(uintptr_t frame, unsigned intid, bool edge)
{
    uintptr_t addr = frame + GIC_ICFGR + 4U * (intid / 16U);
    unsigned bit = 2U * (intid % 16U) + 1U;
    uint32_t word = gn_mmio_read32(addr);
    word = edge ? (word | (1U << bit)) : (word & ~(1U << bit));
    gn_mmio_write32(addr, word);
}

void gn_gic_init(void)
{
    uint32_t ctlr = gn_mmio_read32(GN_GICD_BASE + GICD_CTLR);
    gn_mmio_write32(GN_GICD_BASE + GICD_CTLR, ctlr | GICD_CTLR_ENABLE_GRP1);
}

void gn_gic_cpu_init(void)
{
    uintptr_t rd = GN_GICR_BASE + gn_cpu_id() * GN_GICR_STRIDE;
    uint32_t waker = gn_mmio_read32(rd + GICR_WAKER);
    gn_mmio_write32(rd + GICR_WAKER, waker & ~GICR_WAKER_PROCESSOR_SLEEP);
    while (gn_mmio_read32(rd + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP)
        ;
    ICC_WRITE(ICC_PMR_EL1, 0xFF);
    ICC_WRITE(ICC_BPR1_EL1, 0);
    ICC_WRITE(ICC_CTLR_EL1, 0);
    ICC_WRITE(ICC_IGRPEN1_EL1, 1);
}

int gn_irq_register(unsigned intid, gn_irq_handler handler, void *arg)
{
    if (intid >= GN_GIC_INTID_LIMIT)
        return -1;
    /* Another vCPU may be dispatching intid: it must never see the new handler with the
     * old argument. */
    volatile struct irq_slot *slot = &irq_slots[intid];
    slot->handler = NULL;
    __asm__ volatile("dmb ish" ::: "memory");
    slot->arg = arg;
    __asm__ volatile("dmb ish" ::: "memory");
    slot->handler = handler;
    return 0;
}

int gn_gic_enable_spi(unsigned intid, uint8_t priority, unsigned cpu, bool edge)
{
    if (intid < GN_GIC_SPI_BASE || intid >= GN_GIC_INTID_LIMIT || cpu >= GN_MAX_CPUS)
        return -1;
    uintptr_t route = GN_GICD_BASE + GICD_IROUTER + 8U * intid;
    set_priority(GN_GICD_BASE, intid, priority);
    set_trigger(GN_GICD_BASE, intid, edge);
    gn_mmio_write32(route, cpu);    /* Aff0 = cpu, IRM = 0 */
    gn_mmio_write32(route + 4U, 0); /* Aff3 = 0 */
    set_bit_reg(GN_GICD_BASE, GIC_ISENABLER, intid);
    return 0;
}

int gn_gic_enable_private(unsigned intid, uint8_t priority)
{
    if (intid >= GN_GIC_SPI_BASE)
        return -1;
    uintptr_t frame = gicr_sgi_base();
    set_priority(frame, intid, priority);
    set_bit_reg(frame, GIC_ISENABLER, intid);
    return 0;
}

int gn_gic_disable(unsigned intid)
{
    if (intid >= GN_GIC_INTID_LIMIT)
        return -1;
    set_bit_reg(frame_of(intid), GIC_ICENABLER, intid);
    return 0;
}

void gn_gic_send_sgi(unsigned intid, unsigned cpu)
{
    /* INTID in bits 27:24, RS = cpu / 16 in bits 47:44, target list bit cpu % 16. */
    uint64_t value = ((uint64_t)(intid & 0xFU) << 24) | ((uint64_t)(cpu / 16U) << 44) |
                     (1ULL << (cpu % 16U));
    __asm__ volatile("dsb ish" ::: "memory"); /* prior stores visible before the SGI */
    ICC_WRITE(ICC_SGI1R_EL1, value);
}

unsigned gn_gic_dispatch(void)
{
    unsigned handled = 0;
    for (;;) {
        uint64_t iar;
        __asm__ volatile("mrs %0, " ICC_IAR1_EL1 : "=r"(iar)::"memory");
        unsigned intid = (unsigned)(iar & 0xFFFFFFU);
        if (intid >= GN_GIC_INTID_LIMIT)
            return handled; /* 1023: nothing (more) is signalled */
        volatile struct irq_slot *slot = &irq_slots[intid];
        gn_irq_handler handler = slot->handler;
        if (handler != NULL) {
            handler(intid, slot->arg);
        } else {
            gn_gic_disable(intid);
            gn_gic_unhandled = gn_gic_unhandled + 1;
        }
        ICC_WRITE(ICC_EOIR1_EL1, iar);
        handled++;
    }
}
