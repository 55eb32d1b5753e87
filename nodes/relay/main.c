/*
 * relay: three (or more) VMs pass a message around a ring of message queues.
 *
 * Bootargs: in=<label> (the queue this VM receives on), out=<label> (the
 * queue it sends on), start (this VM begins each lap and checks it),
 * laps=N (start only, default 5), poweroff (start only: power off when
 * done), and vm=<name> (set by gunyah-net).
 *
 * The message is a lap number, a hop count and a text path: the start VM
 * sends "<its name>", each hop appends ">" and its name, so after one lap the
 * start VM sees "alpha>bravo>charlie>alpha" and checks the lap number.
 */
#include <gn/sdk.h>

#define DEFAULT_LAPS 5U
#define PATH_MAX 200U

struct baton {
    uint32_t lap;
    uint32_t hops;
    char path[PATH_MAX];
};

struct node {
    char name[33];
    gn_msgq in, out;
};

static bool open_queues(struct node *n, const gn_dt *dt, uint32_t in, uint32_t out)
{
    int err = gn_msgq_open(&n->in, dt, GN_HYP_MSGQUEUE_RX, in);
    if (err == 0)
        err = gn_msgq_open(&n->out, dt, GN_HYP_MSGQUEUE_TX, out);
    if (err != 0) {
        gn_printf("relay: %s: cannot open queues in=%u out=%u: %s\n", n->name, in, out,
                  gn_ipc_strerror(err));
        return false;
    }
    gn_printf("relay: %s: ready: receives on queue %u, sends on queue %u\n", n->name, in, out);
    return true;
}

/* Appends ">name" to the path; false if it does not fit. */
static bool append_hop(struct baton *b, const char *name)
{
    size_t used = gn_strnlen(b->path, PATH_MAX);
    int n = gn_snprintf(b->path + used, PATH_MAX - used, ">%s", name);
    b->hops++;
    return used + (size_t)n < PATH_MAX;
}

static size_t baton_size(const struct baton *b)
{
    return 8U + gn_strnlen(b->path, PATH_MAX) + 1U;
}

static bool receive(struct node *n, struct baton *b)
{
    size_t size = 0;
    *b = (struct baton){0};
    gn_error_t err = gn_msgq_recv(&n->in, b, sizeof(*b) - 1, &size, NULL);
    if (err != GN_OK) {
        gn_printf("relay: %s: msgqueue_receive: %s\n", n->name, gunyah_error_name(err));
        return false;
    }
    return true;
}

static bool send(struct node *n, const struct baton *b)
{
    gn_error_t err = gn_msgq_send(&n->out, b, baton_size(b), 0, NULL);
    if (err != GN_OK)
        gn_printf("relay: %s: msgqueue_send: %s\n", n->name, gunyah_error_name(err));
    return err == GN_OK;
}

_Noreturn static void run_hop(struct node *n)
{
    struct baton b;
    for (;;) {
        if (!receive(n, &b))
            continue;
        gn_printf("relay: %s: lap %u hop %u: got \"%s\", passing on\n", n->name, b.lap,
                  b.hops + 1, b.path);
        if (!append_hop(&b, n->name))
            gn_printf("relay: %s: path too long, truncated\n", n->name);
        send(n, &b);
    }
}

static bool run_start(struct node *n, uint64_t laps)
{
    struct baton b;
    for (uint32_t lap = 1; lap <= laps; lap++) {
        b = (struct baton){.lap = lap};
        gn_snprintf(b.path, PATH_MAX, "%s", n->name);
        gn_printf("relay: %s: lap %u: sending \"%s\"\n", n->name, lap, b.path);
        if (!send(n, &b) || !receive(n, &b))
            return false;
        append_hop(&b, n->name);
        if (b.lap != lap || b.hops < 2) {
            gn_printf("relay: FAIL lap %u: got lap %u after %u hops: \"%s\"\n", lap, b.lap,
                      b.hops, b.path);
            return false;
        }
        gn_printf("relay: %s: lap %u back after %u hops: \"%s\"\n", n->name, lap, b.hops, b.path);
    }
    gn_printf("relay: %lu laps ok\n", laps);
    return true;
}

static bool label_arg(const char *args, const char *key, uint32_t *out)
{
    uint64_t v;
    if (gn_bootargs_get_u64(args, key, &v) && v <= UINT32_MAX) {
        *out = (uint32_t)v;
        return true;
    }
    gn_printf("relay: error: needs bootarg %s=<queue label>\n", key);
    return false;
}

int main(const void *dtb)
{
    gn_dt dt;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("relay: cannot read the DTB: %s\n", gn_dt_strerror(err));
        return 1;
    }
    const char *args = gn_dt_bootargs(&dt);
    static struct node n;
    gn_str vm = {"?", 1};
    gn_bootargs_get(args, "vm", &vm);
    gn_snprintf(n.name, sizeof(n.name), "%.*s", (int)vm.len, vm.ptr);
    uint32_t in, out;
    uint64_t laps = DEFAULT_LAPS;
    if (!label_arg(args, "in", &in) || !label_arg(args, "out", &out))
        return 1;
    gn_str value;
    if (gn_bootargs_get(args, "laps", &value) && !gn_str_to_u64(value, &laps)) {
        gn_printf("relay: error: laps=%.*s is not a decimal\n", (int)value.len, value.ptr);
        return 1;
    }
    if (!open_queues(&n, &dt, in, out))
        return 1;
    if (!gn_bootargs_has(args, "start"))
        run_hop(&n);
    if (run_start(&n, laps) && gn_bootargs_has(args, "poweroff"))
        return 0;
    gn_idle_forever();
}
