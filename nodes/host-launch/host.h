/*
 * host-launch's shared state: the RM client, what the host knows about its
 * child, and the printing of call outcomes and RM notifications (notify.c).
 */
#ifndef HOST_LAUNCH_HOST_H
#define HOST_LAUNCH_HOST_H

#include <gn/sdk.h>

#define CHILD_IDLE_LINE "child: idle"
#define CHILD_RANG_LINE "child: doorbell rang" /* followed by " (flags 0x<f>)" */
#define NO_VMID 0xFFFFU

extern gn_rm rm;

/* The child VM. The notification handlers set the flags. */
struct child {
    uint16_t vmid;            /* NO_VMID before VM_ALLOC_VMID */
    uint32_t handle;          /* its image parcel */
    uint8_t *parcel;
    size_t image_size, dtb_size;
    uint64_t bell_cap;        /* the doorbell-source cap VM_GET_HYP_RESOURCES gave, or 0 */
    uint64_t owner_bell_cap;  /* the receive cap of the doorbell the child rings, or 0 */
    uint32_t owner_bell_virq; /* the host's virq for it (VM_GET_HYP_RESOURCES), or 0 */
    volatile bool from_child; /* that doorbell interrupted the host (its IRQ handler) */
    volatile uint32_t from_child_intid; /* ... on this INTID */
    volatile uint64_t from_child_flags; /* ... and doorbell_receive returned these flags */
    volatile gn_error_t from_child_error; /* ... or this error */
    bool idle;                /* it said CHILD_IDLE_LINE */
    bool rang;                /* it said CHILD_RANG_LINE... */
    bool exited;              /* VM_EXITED for it */
    bool released;            /* MEM_RELEASED of its parcel */
    bool reset;               /* VM_STATUS RESET for it */
    char line[200];
    size_t line_len;
};

extern struct child child;

/* Prints `host: FAIL <call>: RM error 0x<e> (<NAME>)` or the transport error. */
void print_failure(const char *call, gn_rm_result r);

/* Prints one notification (and updates the child's flags). */
void show(const gn_rm_notification *n);

/* Prints every notification received so far. */
void drain(void);

/* Prints `host: <call>: ok<detail>` or the failure, then the notifications that
 * came with the call; true on RM_OK. */
bool outcome(const char *call, gn_rm_result r, const char *detail);

/* Handles notifications until *flag is set; false (with a FAIL line) after
 * timeout_us. */
bool wait_for(const bool *flag, uint64_t timeout_us, const char *what);

#endif /* HOST_LAUNCH_HOST_H */
