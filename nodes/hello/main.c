/*
 * hello: greets the console with the VM's name, then powers off (bootarg
 * "poweroff") or echoes console input forever.
 */
#include <gn/sdk.h>

int main(const void *dtb)
{
    gn_dt dt;
    const char *args = NULL;
    int err = gn_dt_init(&dt, dtb);
    if (err == GN_DT_OK)
        args = gn_dt_bootargs(&dt);
    else
        gn_printf("hello: cannot read the DTB: %s\n", gn_dt_strerror(err));

    gn_str name = {"(unnamed)", 9};
    gn_bootargs_get(args, "vm", &name);
    gn_printf("hello from %.*s\n", (int)name.len, name.ptr);

    if (gn_bootargs_has(args, "poweroff"))
        gn_psci_system_off();
    gn_console_echo_loop();
}
