/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-ring.c - the request ring (lib/ring.h, memconv-protocol(7),
 * REQUEST RING) with a real memconvd, real sockets, real guest_memfd and
 * memfd backing and real sealed memfd rings: through libmemconv as a VMM
 * links it, and frame by frame with rings written by hand.
 *
 * What must hold:
 *  - libmemconv uses a ring by default: conversion requests and Applied go
 *    through it, every answer comes back in a slot or on the socket, the
 *    daemon took exactly what the client queued, and its map is what the
 *    client applied;
 *  - mc_client_set_ring() turns the ring off (conversions go on the socket
 *    and still work) and on again (conversions use the ring again);
 *  - with --request-ring=no the client carries on without a ring (-EPERM)
 *    and the daemon shows none;
 *  - every bad RingSetup is refused with its own code, keeps neither the fd
 *    nor a mapping, changes nothing, and the connection goes on working;
 *  - a broken ring (an index beyond the queue, an entry too long, a slot out
 *    of range, a message not allowed there, bytes that do not decode) ends
 *    its own connection only, with an error, a log line and a protocol
 *    error counted; the daemon and other VMMs go on;
 *  - a ring written by hand is served: an answer in the slot named, tagged
 *    (id, READY); an entry queued after a datagram not sent yet waits for
 *    it; an abandoned slot's answer comes on the socket, and the slot can be
 *    reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-vm.h"
#include "frame.h"
#include "harness.h"
#include "macro.h"
#include "memconv.h"
#include "ring.h"

#define RAM (4ULL << 20)
#define CONVERSIONS 2000
#define TOGGLE_CONVERSIONS 200
#define RING_SETTLE_MS 2000
#define STALL_MS 200
#define DETACH_RACES 30

static struct client_vm vm;
static mc_client *client;
#define applies __atomic_load_n(&client_vm_applies, __ATOMIC_RELAXED)

/* ------------------------------------------------------------ figures */

/* What `show` says of a VM, its ring included. */
struct vm_figures {
        bool attached, ring;
        uint64_t entries, replies, socket_replies, kicks, stalls;
        uint64_t private_bytes, ranges, changes, spurious;
};

/* vm_figures() - the VM @name as memconvd shows it; false if it did not answer */
static bool vm_figures(const char *name, struct vm_figures *ret)
{
        Memconv__AdminReply *r = admin_show(name);
        const Memconv__VmInfo *v;

        memset(ret, 0, sizeof(*ret));
        if (!r)
                return false;
        v = r->show->vm;
        ret->attached = strcmp(v->state, "attached") == 0;
        ret->ring = v->ring != NULL;
        if (v->ring) {
                ret->entries = v->ring->entries;
                ret->replies = v->ring->replies;
                ret->socket_replies = v->ring->socket_replies;
                ret->kicks = v->ring->kicks;
                ret->stalls = v->ring->stalls;
        }
        ret->private_bytes = v->private_bytes;
        ret->ranges = v->ranges;
        ret->changes = v->stats->explicit_to_private + v->stats->explicit_to_shared + v->stats->implicit_to_private +
                       v->stats->implicit_to_shared;
        ret->spurious = v->stats->spurious;
        memconv__admin_reply__free_unpacked(r, NULL);
        return true;
}

/*
 * changes_settle() - vm_figures(), asked again (RING_SETTLE_MS at most)
 * until @changes conversions are recorded: the last Applied may still be in
 * the ring, or its change not yet committed, when `show` is answered
 * Return: whether they are; @ret holds the last figures either way
 */
static bool changes_settle(const char *name, uint64_t changes, struct vm_figures *ret)
{
        uint64_t t0 = now_ms();

        while (!vm_figures(name, ret) || ret->changes < changes) {
                if (now_ms() - t0 >= RING_SETTLE_MS)
                        return false;
                usleep(1000);
        }
        return true;
}

/*
 * ring_settle() - wait (RING_SETTLE_MS at most) until the ring of VM @name
 * has taken @entries entries and counted @kicks kicks (UINT64_MAX: any);
 * admin requests wake the daemon's loop, which reads the rings after each
 * wake-up. Return: whether it did; @ret holds the last figures either way.
 */
static bool ring_settle(const char *name, uint64_t entries, uint64_t kicks, struct vm_figures *ret)
{
        uint64_t t0 = now_ms();

        for (;;) {
                if (vm_figures(name, ret) && ret->ring && ret->entries == entries &&
                    (kicks == UINT64_MAX || ret->kicks == kicks))
                        return true;
                if (now_ms() - t0 >= RING_SETTLE_MS) {
                        printf("\n    VM %s: ring %d, entries %" PRIu64 " (want %" PRIu64 "), kicks %" PRIu64 "\n",
                               name, ret->ring, ret->entries, entries, ret->kicks);
                        return false;
                }
                usleep(5000);
        }
}

/* status() - memconvd's status: whether rings are allowed, and its protocol errors */
static bool status(bool *ret_ring, uint64_t *ret_protocol_errors)
{
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__StatusRequest sq = MEMCONV__STATUS_REQUEST__INIT;
        Memconv__AdminReply *r;
        bool ok = false;
        int sock = admin_connect();

        if (sock < 0)
                return false;
        req.id = 7;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_STATUS;
        req.status = &sq;
        r = admin_call(sock, &req);
        if (r && r->body_case == MEMCONV__ADMIN_REPLY__BODY_STATUS_REPLY) {
                if (ret_ring)
                        *ret_ring = r->status_reply->ring;
                if (ret_protocol_errors)
                        *ret_protocol_errors = r->status_reply->protocol_errors;
                ok = true;
        }
        if (r)
                memconv__admin_reply__free_unpacked(r, NULL);
        safe_close(sock);
        return ok;
}

static uint64_t protocol_errors(void)
{
        uint64_t n = UINT64_MAX;

        CU_ASSERT(status(NULL, &n));
        return n;
}

/* daemon_maps() - how many of memconvd's mappings are of the memfd @name */
static int daemon_maps(const char *name)
{
        char path[64], line[512], pat[128];
        int n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) daemon_pid);
        snprintf(pat, sizeof(pat), "/memfd:%s (deleted)", name);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                n += strstr(line, pat) != NULL;
        fclose(f);
        return n;
}

/* daemon_maps_settle() - wait until memconvd maps the memfd @name @want times; Return: the count */
static int daemon_maps_settle(const char *name, int want)
{
        uint64_t t0 = now_ms();
        int n;

        while ((n = daemon_maps(name)) != want && now_ms() - t0 < SETTLE_MS)
                usleep(2000);
        return n;
}

/*
 * daemon_holds() - memconvd's open fds and mappings of the memfd @name,
 * once the fds of a message it answered are closed (it closes them after
 * answering; SETTLE_MS at most)
 */
static int daemon_holds(const char *name)
{
        char pat[128];

        snprintf(pat, sizeof(pat), "/memfd:%s (deleted)", name);
        return daemon_fd_settle(pat, 0) + daemon_maps(name);
}

/* ------------------------------------------------------------ libmemconv */

/* convert_alternating() - @n conversions (even), pages 0-3 each to private and back; the failures */
static unsigned convert_alternating(mc_client *c, unsigned n)
{
        unsigned failed = 0;

        for (unsigned i = 0; i < n; i++) {
                struct mc_exit_result res;

                if (mc_client_convert(c, 0, (uint64_t) ((i / 2) % 4) * PAGE, PAGE, i % 2 == 0,
                                      MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, &res) != MC_EXIT_RETRY ||
                    res.action != MC_EXIT_RETRY)
                        failed++;
        }
        return failed;
}

static void print_ring_stats(const char *what, const struct mc_ring_stats *st)
{
        printf("\n    %s: active %d error %d requests %" PRIu64 " replies %" PRIu64 " socket %" PRIu64
               " async %" PRIu64 " kicks %" PRIu64 " full %" PRIu64 " drains %" PRIu64 "\n", what, st->active,
               st->error, st->requests, st->replies, st->socket_answers, st->async, st->kicks, st->full, st->drains);
}

/* same_counters() - the counters of @a and @b are equal (active and error aside) */
static bool same_counters(const struct mc_ring_stats *a, const struct mc_ring_stats *b)
{
        return a->requests == b->requests && a->replies == b->replies && a->socket_answers == b->socket_answers &&
               a->async == b->async && a->kicks == b->kicks && a->full == b->full;
}

/* ------------------------------------------------------------ a VMM with a ring written by hand */

struct rvmm {
        struct vmm v;
        int ring_fd;
        struct mc_ring_map *map;
        uint64_t tail;          /* entries queued */
        uint64_t sent;          /* datagrams sent on v.sock: the sock_seq of an entry queued now */
        uint64_t kicks;         /* of them, RingKick */
};

#define TAG(id, state) MC_RING_TAG(id, state)

/* rvmm_open() - connected, hello, VM @name attached, a 4 MiB region registered; no ring yet */
static void rvmm_open(struct rvmm *r, uint8_t tag, const char *name)
{
        memset(r, 0, sizeof(*r));
        r->ring_fd = -EBADF;
        vmm_open(&r->v, tag);
        vmm_attach_region(&r->v, name);
        r->sent = 3;
}

static void rvmm_close(struct rvmm *r)
{
        if (r->map)
                munmap(r->map, MC_RING_SIZE);
        safe_close(r->ring_fd);
        vmm_close(&r->v);
}

/* r_call() - call() that counts the datagram */
static Memconv__Message *r_call(struct rvmm *r, Memconv__Message *m, const int *fds, size_t n)
{
        r->sent++;
        return call(&r->v, m, fds, n);
}

static Memconv__Message *r_convert(struct rvmm *r, uint64_t gpa, uint64_t size, bool to_private)
{
        r->sent++;
        return convert(&r->v, gpa, size, to_private);
}

/* r_probe() - probe_all() on the socket, counted: 1 if every page of the range is already so */
static bool r_probe(struct rvmm *r, uint64_t gpa, uint64_t size, bool private_)
{
        Memconv__Message *m = r_convert(r, gpa, size, private_);
        bool all;

        CU_ASSERT_FATAL(m && m->body_case == MEMCONV__MESSAGE__BODY_DECISION);
        all = m->decision->action == MEMCONV__ACTION__ACTION_RETRY;
        if (m->decision->action == MEMCONV__ACTION__ACTION_APPLY) {
                r->sent++;
                applied(&r->v, m->decision->decision_id, false); /* roll the probe back */
        }
        memconv__message__free_unpacked(m, NULL);
        return all;
}

/* r_kick() - a RingKick datagram */
static void r_kick(struct rvmm *r)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__RingKick k = MEMCONV__RING_KICK__INIT;

        m.body_case = MEMCONV__MESSAGE__BODY_RING_KICK;
        m.ring_kick = &k;
        CU_ASSERT_FATAL(mc_frame_send(r->v.sock, &m, NULL, 0) == 0);
        r->sent++;
        r->kicks++;
}

/*
 * ring_memfd() - a memfd named @name of @size bytes holding @magic and
 * @version where a ring's header has them, then sealed with @seals
 */
static int ring_memfd(const char *name, uint64_t size, unsigned seals, uint64_t magic, uint32_t version)
{
        struct mc_ring_header h = { .magic = magic, .version = version };
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(ftruncate(fd, (off_t) size) == 0);
        CU_ASSERT_FATAL(pwrite(fd, &h, 12, 0) == 12);
        if (seals)
                CU_ASSERT_FATAL(fcntl(fd, F_ADD_SEALS, seals) == 0);
        return fd;
}

static int good_memfd(const char *name)
{
        return ring_memfd(name, MC_RING_SIZE, F_SEAL_SHRINK | F_SEAL_GROW, MC_RING_MAGIC, MC_RING_VERSION);
}

/* ring_setup() - RingSetup with @fd and layout @version; the answer */
static Memconv__Message *ring_setup(struct rvmm *r, int fd, uint32_t version)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__RingSetup rs = MEMCONV__RING_SETUP__INIT;

        rs.version = version;
        m.body_case = MEMCONV__MESSAGE__BODY_RING_SETUP;
        m.ring_setup = &rs;
        return r_call(r, &m, &fd, 1);
}

/* ring_good() - a ring in the memfd @name, set up and accepted, mapped in @r */
static void ring_good(struct rvmm *r, const char *name)
{
        r->ring_fd = good_memfd(name);
        expect_reply(ring_setup(r, r->ring_fd, MC_RING_VERSION), MEMCONV__CODE__CODE_OK, NULL);
        r->map = mmap(NULL, MC_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->ring_fd, 0);
        CU_ASSERT_FATAL(r->map != MAP_FAILED);
        r->tail = 0;
}

/* ring_nudge() - after queueing: a full barrier, then RingKick if memconvd said it sleeps */
static bool ring_nudge(struct rvmm *r)
{
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load_explicit(&r->map->header.daemon_sleeping, memory_order_relaxed))
                return false;
        r_kick(r);
        return true;
}

/*
 * ring_put() - write entry @r->tail: @len (as claimed) and at most a full
 * entry of @data, @slot, @seq; then advance the tail (release)
 */
static void ring_put(struct rvmm *r, const void *data, uint32_t len, uint32_t slot, uint64_t seq)
{
        struct mc_ring_entry *e = &r->map->entries[r->tail % MC_RING_ENTRIES];

        e->len = len;
        e->slot = slot;
        e->sock_seq = seq;
        memcpy(e->data, data, len < MC_RING_ENTRY_DATA ? len : MC_RING_ENTRY_DATA);
        r->tail++;
        atomic_store_explicit(&r->map->header.tail, r->tail, memory_order_release);
}

/* ring_put_msg() - queue @m in the ring, after the datagrams sent so far */
static void ring_put_msg(struct rvmm *r, const Memconv__Message *m, uint32_t slot)
{
        uint8_t buf[MC_RING_ENTRY_DATA];

        CU_ASSERT_FATAL(memconv__message__get_packed_size(m) <= sizeof(buf));
        ring_put(r, buf, (uint32_t) memconv__message__pack(m, buf), slot, r->sent);
}

/* convert_msg() - a Convert of one page at @gpa, with @id */
static void convert_msg(Memconv__Message *m, Memconv__Convert *c, uint64_t id, uint64_t gpa, bool to_private)
{
        memconv__message__init(m);
        memconv__convert__init(c);
        c->gpa = gpa;
        c->size = PAGE;
        c->to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        c->source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE;
        m->id = id;
        m->body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m->convert = c;
}

/*
 * ring_request() - set reply slot @slot's tag to (@id, @state), then queue
 * a Convert of the page at @gpa with @id naming that slot, with sock_seq @seq
 */
static void ring_request(struct rvmm *r, unsigned slot, uint64_t id, uint64_t gpa, bool to_private,
                         enum mc_ring_state state, uint64_t seq)
{
        Memconv__Message m;
        Memconv__Convert c;
        uint8_t buf[MC_RING_ENTRY_DATA];

        convert_msg(&m, &c, id, gpa, to_private);
        atomic_store_explicit(&r->map->slots[slot].tag, TAG(id, state), memory_order_relaxed);
        ring_put(r, buf, (uint32_t) memconv__message__pack(&m, buf), slot, seq);
}

/* ring_applied() - queue Applied(ok) for @decision_id without a slot, and wake memconvd if it sleeps */
static void ring_applied(struct rvmm *r, uint64_t decision_id)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Applied a = MEMCONV__APPLIED__INIT;

        a.decision_id = decision_id;
        a.ok = true;
        m.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
        m.applied = &a;
        ring_put_msg(r, &m, MC_RING_NO_SLOT);
        ring_nudge(r);
}

/* slot_wait() - wait up to @ms for slot @slot's tag to be @want; Return: the tag last seen */
static uint64_t slot_wait(struct rvmm *r, unsigned slot, uint64_t want, unsigned ms)
{
        uint64_t t0 = now_ms(), tag;

        while ((tag = atomic_load_explicit(&r->map->slots[slot].tag, memory_order_acquire)) != want &&
               now_ms() - t0 < ms)
                usleep(100);
        return tag;
}

/*
 * sock_out_wait() - wait until the ring's sock_out differs from @old (the
 * daemon publishes it just after the datagram went out); SETTLE_MS at most
 * Return: the value last seen
 */
static uint64_t sock_out_wait(struct rvmm *r, uint64_t old)
{
        uint64_t t0 = now_ms(), v;

        while ((v = atomic_load_explicit(&r->map->header.sock_out, memory_order_acquire)) == old &&
               now_ms() - t0 < SETTLE_MS)
                usleep(100);
        return v;
}

/* slot_message() - the answer in slot @slot (owned by the caller), or NULL */
static Memconv__Message *slot_message(struct rvmm *r, unsigned slot)
{
        uint32_t len = r->map->slots[slot].len;

        if (len > MC_RING_SLOT_DATA)
                return NULL;
        return memconv__message__unpack(NULL, len, r->map->slots[slot].data);
}

/* expect_apply() - @m is a Decision for @id applying the page at @gpa; Return: its decision id (0: not) */
static uint64_t expect_apply(Memconv__Message *m, uint64_t id, uint64_t gpa, bool to_private)
{
        uint64_t dec = 0;

        CU_ASSERT_FATAL(m != NULL);
        CU_ASSERT_EQUAL_FATAL(m->body_case, MEMCONV__MESSAGE__BODY_DECISION);
        CU_ASSERT_EQUAL(m->id, id);
        CU_ASSERT_EQUAL(status_code(m->decision->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_EQUAL(m->decision->action, MEMCONV__ACTION__ACTION_APPLY);
        CU_ASSERT_EQUAL(m->decision->to, to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE
                                                    : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED);
        CU_ASSERT_EQUAL(m->decision->n_ranges, 1);
        if (m->decision->n_ranges == 1) {
                CU_ASSERT_EQUAL(m->decision->ranges[0]->gpa, gpa);
                CU_ASSERT_EQUAL(m->decision->ranges[0]->size, PAGE);
        }
        if (m->id == id && m->decision->action == MEMCONV__ACTION__ACTION_APPLY)
                dec = m->decision->decision_id;
        CU_ASSERT_NOT_EQUAL(dec, 0);
        memconv__message__free_unpacked(m, NULL);
        return dec;
}

/*
 * ring_convert() - convert the page at @gpa through the ring, the answer
 * awaited in slot @slot, applied (Applied through the ring)
 * Return: whether the answer came in the slot and was an APPLY for it
 */
static bool ring_convert(struct rvmm *r, unsigned slot, uint64_t gpa, bool to_private)
{
        uint64_t id = ++r->v.next_id, tag, dec;

        ring_request(r, slot, id, gpa, to_private, MC_RING_WAIT, r->sent);
        ring_nudge(r);
        tag = slot_wait(r, slot, TAG(id, MC_RING_READY), SETTLE_MS);
        CU_ASSERT_EQUAL(tag, TAG(id, MC_RING_READY));
        if (tag != TAG(id, MC_RING_READY))
                return false;
        dec = expect_apply(slot_message(r, slot), id, gpa, to_private);
        if (!dec)
                return false;
        ring_applied(r, dec);
        atomic_store_explicit(&r->map->slots[slot].tag, TAG(0, MC_RING_FREE), memory_order_relaxed);
        return true;
}

/* recv_within() - the next message that is not Committed, waiting @ms at most; NULL if none */
static Memconv__Message *recv_within(int sock, int ms)
{
        uint64_t end = now_ms() + (uint64_t) ms;

        for (;;) {
                uint64_t now = now_ms();
                struct pollfd p = { .fd = sock, .events = POLLIN };
                Memconv__Message *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n = 0;

                if (now >= end || poll(&p, 1, (int) (end - now)) != 1)
                        return NULL;
                if (mc_frame_recv(sock, MSG_DONTWAIT, &m, fds, &n) < 0)
                        return NULL;
                mc_frame_close_fds(fds, n);
                if (m->body_case != MEMCONV__MESSAGE__BODY_COMMITTED)
                        return m;
                memconv__message__free_unpacked(m, NULL);
        }
}

/*
 * read_until_closed() - read what memconvd sends until it hangs up
 * (SETTLE_MS at most): Committed notices are skipped, the last other
 * message is kept in @ret_last (owned by the caller), @ret_others counts them
 * Return: whether it hung up (end of file, or a reset)
 */
static bool read_until_closed(int sock, Memconv__Message **ret_last, unsigned *ret_others)
{
        uint64_t t0 = now_ms();
        bool reset = false;

        *ret_last = NULL;
        *ret_others = 0;
        while (now_ms() - t0 < SETTLE_MS) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                uint8_t buf[MC_FRAME_MAX];
                Memconv__Message *m;
                ssize_t n;

                if (poll(&p, 1, 100) <= 0)
                        continue;
                n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0)
                        return true;
                if (n < 0) {
                        if (errno == ECONNRESET) {
                                /* It hung up with a datagram of ours unread; what it sent is still queued. */
                                reset = true;
                                continue;
                        }
                        if (errno == EAGAIN)
                                return reset;
                        return false;
                }
                m = memconv__message__unpack(NULL, (size_t) n, buf);
                if (!m)
                        return false;
                if (m->body_case == MEMCONV__MESSAGE__BODY_COMMITTED) {
                        memconv__message__free_unpacked(m, NULL);
                        continue;
                }
                if (*ret_last)
                        memconv__message__free_unpacked(*ret_last, NULL);
                *ret_last = m;
                (*ret_others)++;
        }
        return false;
}

/* ------------------------------------------------------------ 1. libmemconv uses the ring by default */

static void test_default_ring(void)
{
        struct mc_ring_stats st0, st;
        struct vm_figures f0, f;
        unsigned a0 = applies;
        bool ring = false;

        CU_ASSERT_FATAL(status(&ring, NULL));
        CU_ASSERT(ring);                /* RequestRing= defaults to yes */
        mc_client_ring_stats(client, &st0);
        CU_ASSERT(st0.active);
        CU_ASSERT_EQUAL(st0.error, 0);
        /* Attach and RegisterRegion went on the socket: nothing was queued yet. */
        CU_ASSERT_EQUAL(st0.requests, 0);
        CU_ASSERT_EQUAL(st0.async, 0);
        CU_ASSERT_FATAL(vm_figures("ring", &f0));
        CU_ASSERT(f0.ring);
        CU_ASSERT_EQUAL(f0.entries, 0);

        CU_ASSERT_EQUAL(convert_alternating(client, CONVERSIONS), 0);
        mc_client_ring_stats(client, &st);
        print_ring_stats("after 2000 conversions", &st);
        CU_ASSERT(st.active);
        CU_ASSERT_EQUAL(st.error, 0);
        CU_ASSERT_EQUAL(st.requests, CONVERSIONS);       /* no lease: every one asked, through the ring */
        CU_ASSERT_EQUAL(st.replies + st.socket_answers, st.requests);
        CU_ASSERT_EQUAL(st.async, CONVERSIONS);          /* each decided APPLY, its Applied through the ring */
        CU_ASSERT_EQUAL(st.full, 0);
        CU_ASSERT_EQUAL(applies - a0, CONVERSIONS);

        /* The daemon took exactly what was queued, and answered as the client saw it. */
        CU_ASSERT(ring_settle("ring", st.requests + st.async, st.kicks, &f));
        CU_ASSERT(changes_settle("ring", f0.changes + CONVERSIONS, &f));
        CU_ASSERT_EQUAL(f.entries, st.requests + st.async);
        CU_ASSERT_EQUAL(f.replies, st.replies);
        CU_ASSERT_EQUAL(f.socket_replies, st.socket_answers);
        CU_ASSERT_EQUAL(f.kicks, st.kicks);
        /* Entries wait only for datagrams sent before them, here only kicks: at most one stall each. */
        CU_ASSERT(f.stalls <= st.kicks);
        /* Its map is what the client applied: every conversion recorded, all pages shared again. */
        CU_ASSERT_EQUAL(f.changes - f0.changes, CONVERSIONS);
        CU_ASSERT_EQUAL(f.spurious, f0.spurious);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(f.ranges, 0);

        /* One more to private: the map follows. */
        CU_ASSERT_EQUAL(mc_client_convert(client, 0, 8 * PAGE, 2 * PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                          MC_PAGE_4K, NULL), MC_EXIT_RETRY);
        mc_client_ring_stats(client, &st);
        CU_ASSERT_EQUAL(st.requests, CONVERSIONS + 1);
        CU_ASSERT(ring_settle("ring", st.requests + st.async, UINT64_MAX, &f));
        CU_ASSERT_EQUAL(f.private_bytes, 2 * PAGE);
        CU_ASSERT_EQUAL(f.ranges, 1);
        CU_ASSERT_EQUAL(mc_client_convert(client, 0, 8 * PAGE, 2 * PAGE, false, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                          MC_PAGE_4K, NULL), MC_EXIT_RETRY);
        mc_client_ring_stats(client, &st);
        CU_ASSERT(ring_settle("ring", st.requests + st.async, UINT64_MAX, &f));
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(applies - a0, CONVERSIONS + 2);
}

/* ------------------------------------------------------------ 2. turned off and on again */

static void test_toggle(void)
{
        struct mc_ring_stats st0, st;
        struct vm_figures f0, f;
        unsigned a0 = applies;

        CU_ASSERT_EQUAL(mc_client_set_ring(NULL, true), -EINVAL);
        memset(&st, 0xff, sizeof(st));
        mc_client_ring_stats(NULL, &st);
        CU_ASSERT(!st.active && st.error == 0 && st.requests == 0 && st.async == 0);

        mc_client_ring_stats(client, &st0);
        CU_ASSERT_FATAL(st0.active);
        CU_ASSERT_FATAL(ring_settle("ring", st0.requests + st0.async, UINT64_MAX, &f0));

        /* Off: conversions go on the socket, the ring's counters stay. */
        CU_ASSERT_EQUAL(mc_client_set_ring(client, false), 0);
        mc_client_ring_stats(client, &st);
        CU_ASSERT(!st.active);
        CU_ASSERT_EQUAL(st.error, 0);
        CU_ASSERT(same_counters(&st, &st0));
        CU_ASSERT_EQUAL(convert_alternating(client, TOGGLE_CONVERSIONS), 0);
        mc_client_ring_stats(client, &st);
        CU_ASSERT(!st.active);
        CU_ASSERT(same_counters(&st, &st0));
        CU_ASSERT_EQUAL(applies - a0, TOGGLE_CONVERSIONS);
        CU_ASSERT(changes_settle("ring", f0.changes + TOGGLE_CONVERSIONS, &f));
        CU_ASSERT_EQUAL(f.entries, f0.entries);  /* the daemon took nothing from a ring */
        CU_ASSERT_EQUAL(f.changes - f0.changes, TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(mc_client_set_ring(client, false), 0);  /* off twice: still off */
        mc_client_ring_stats(client, &st);
        CU_ASSERT(!st.active);

        /* On again: the next conversions use a ring. */
        CU_ASSERT_EQUAL(mc_client_set_ring(client, true), 0);
        mc_client_ring_stats(client, &st);
        CU_ASSERT(st.active);
        CU_ASSERT_EQUAL(st.error, 0);
        CU_ASSERT_EQUAL(convert_alternating(client, TOGGLE_CONVERSIONS), 0);
        mc_client_ring_stats(client, &st);
        print_ring_stats("off, then on and 200 more", &st);
        CU_ASSERT(st.active);
        CU_ASSERT_EQUAL(st.requests, st0.requests + TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(st.async, st0.async + TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(st.replies + st.socket_answers, st.requests);
        CU_ASSERT_EQUAL(applies - a0, 2 * TOGGLE_CONVERSIONS);
        CU_ASSERT(ring_settle("ring", f0.entries + 2 * TOGGLE_CONVERSIONS, UINT64_MAX, &f));
        CU_ASSERT(changes_settle("ring", f0.changes + 2 * TOGGLE_CONVERSIONS, &f));
        CU_ASSERT_EQUAL(f.entries, f0.entries + 2 * TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(f.replies, st.replies);
        CU_ASSERT_EQUAL(f.socket_replies, st.socket_answers);
        CU_ASSERT_EQUAL(f.changes - f0.changes, 2 * TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(mc_client_set_ring(client, true), 0);   /* on twice: the same ring */
        mc_client_ring_stats(client, &st0);
        CU_ASSERT(st0.active && same_counters(&st, &st0));
}

/* ------------------------------------------------------------ 4. RingSetup refused */

/*
 * assert_unchanged() - after a refused RingSetup on @r: the daemon keeps
 * neither fd nor mapping of the memfd @name, VM @vm has no ring and its map
 * is all shared, and a Convert on the socket is decided
 */
static void assert_unchanged(struct rvmm *r, const char *vm_name, const char *name)
{
        struct vm_figures f;

        CU_ASSERT(daemon_alive());
        if (name)
                CU_ASSERT_EQUAL(daemon_holds(name), 0);
        CU_ASSERT_FATAL(vm_figures(vm_name, &f));
        CU_ASSERT(f.attached);
        CU_ASSERT(!f.ring);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(f.ranges, 0);
        CU_ASSERT_EQUAL(f.changes, 0);
        /* to shared, all shared already: answered RETRY; the map stays all shared */
        CU_ASSERT(r_probe(r, REGION_GPA, REGION_SIZE, false));
}

/* refuse_fd() - RingSetup of @fd (closed after) is refused with @code (@text in the message); nothing changed */
static void refuse_fd(struct rvmm *r, int fd, uint32_t version, Memconv__Code code, const char *text,
                      const char *name)
{
        expect_reply(ring_setup(r, fd, version), code, text);
        safe_close(fd);
        assert_unchanged(r, "setup-refused", name);
}

static void test_setup_refused(void)
{
        struct rvmm r, n;
        uint64_t pe0 = protocol_errors();
        int p[2], fd, fd2;
        char path[64];

        rvmm_open(&r, 0x41, "setup-refused");
        assert_unchanged(&r, "setup-refused", NULL);

        /* a) not a memfd */
        CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
        refuse_fd(&r, p[0], 1, MEMCONV__CODE__CODE_BAD_FD, "not a memfd", NULL);
        safe_close(p[1]);
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        CU_ASSERT_FATAL(fd >= 0);
        refuse_fd(&r, fd, 1, MEMCONV__CODE__CODE_BAD_FD, "not a memfd", NULL);

        /* b) the wrong size, smaller or larger */
        refuse_fd(&r, ring_memfd("rt-small", MC_RING_SIZE - 4096, F_SEAL_SHRINK | F_SEAL_GROW, MC_RING_MAGIC, 1), 1,
                  MEMCONV__CODE__CODE_INVALID_ARGUMENT, "a ring has 53248", "rt-small");
        refuse_fd(&r, ring_memfd("rt-large", MC_RING_SIZE + 4096, F_SEAL_SHRINK | F_SEAL_GROW, MC_RING_MAGIC, 1), 1,
                  MEMCONV__CODE__CODE_INVALID_ARGUMENT, "a ring has 53248", "rt-large");

        /* c) not sealed against resizing (or only half); write-sealed; read-only */
        refuse_fd(&r, ring_memfd("rt-unsealed", MC_RING_SIZE, 0, MC_RING_MAGIC, 1), 1, MEMCONV__CODE__CODE_BAD_FD,
                  "F_SEAL_SHRINK and F_SEAL_GROW", "rt-unsealed");
        refuse_fd(&r, ring_memfd("rt-shrink", MC_RING_SIZE, F_SEAL_SHRINK, MC_RING_MAGIC, 1), 1,
                  MEMCONV__CODE__CODE_BAD_FD, "F_SEAL_SHRINK and F_SEAL_GROW", "rt-shrink");
        refuse_fd(&r, ring_memfd("rt-wsealed", MC_RING_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, MC_RING_MAGIC,
                                 1), 1, MEMCONV__CODE__CODE_BAD_FD, "not write-sealed", "rt-wsealed");
        fd = good_memfd("rt-rdonly");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        fd2 = open(path, O_RDONLY | O_CLOEXEC);
        CU_ASSERT_FATAL(fd2 >= 0);
        safe_close(fd);
        refuse_fd(&r, fd2, 1, MEMCONV__CODE__CODE_BAD_FD, "reading and writing", "rt-rdonly");

        /* d) not a new ring of this layout: magic, header version, a tail already moved */
        refuse_fd(&r, ring_memfd("rt-magic", MC_RING_SIZE, F_SEAL_SHRINK | F_SEAL_GROW, MC_RING_MAGIC ^ 1, 1), 1,
                  MEMCONV__CODE__CODE_INVALID_ARGUMENT, "new, empty ring", "rt-magic");
        refuse_fd(&r, ring_memfd("rt-hversion", MC_RING_SIZE, F_SEAL_SHRINK | F_SEAL_GROW, MC_RING_MAGIC, 2), 1,
                  MEMCONV__CODE__CODE_INVALID_ARGUMENT, "new, empty ring", "rt-hversion");
        fd = good_memfd("rt-tail");
        {
                uint64_t tail = 1;

                CU_ASSERT_FATAL(pwrite(fd, &tail, sizeof(tail), offsetof(struct mc_ring_header, tail)) == 8);
        }
        refuse_fd(&r, fd, 1, MEMCONV__CODE__CODE_INVALID_ARGUMENT, "new, empty ring", "rt-tail");

        /* e) a layout version the daemon does not know (a good ring otherwise) */
        refuse_fd(&r, good_memfd("rt-version"), 2, MEMCONV__CODE__CODE_VERSION_MISMATCH, "version 2 unknown",
                  "rt-version");
        CU_ASSERT_EQUAL(protocol_errors(), pe0 + 1);  /* only the malformed message counted */

        /* f) before Attach: refused; the same memfd is taken once the VM is attached */
        memset(&n, 0, sizeof(n));
        n.ring_fd = -EBADF;
        vmm_open(&n.v, 0x42);
        n.sent = 1;
        fd = good_memfd("rt-early");
        expect_reply(ring_setup(&n, fd, 1), MEMCONV__CODE__CODE_NOT_ATTACHED, "no VM is attached");
        CU_ASSERT_EQUAL(daemon_holds("rt-early"), 0);
        vmm_attach_region(&n.v, "setup-early");
        n.sent += 2;
        expect_reply(ring_setup(&n, fd, 1), MEMCONV__CODE__CODE_OK, NULL);
        n.ring_fd = fd;
        n.map = mmap(NULL, MC_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CU_ASSERT_FATAL(n.map != MAP_FAILED);
        CU_ASSERT_EQUAL(daemon_maps("rt-early"), 1);
        CU_ASSERT(ring_convert(&n, 0, REGION_GPA, true));
        CU_ASSERT(ring_convert(&n, 0, REGION_GPA, false));
        rvmm_close(&n);
        CU_ASSERT_EQUAL(daemon_maps_settle("rt-early", 0), 0);

        /* g) a second ring on a connection that has one: refused, the first one goes on */
        ring_good(&r, "rt-first");
        fd = good_memfd("rt-second");
        expect_reply(ring_setup(&r, fd, 1), MEMCONV__CODE__CODE_EXISTS, "has a request ring already");
        safe_close(fd);
        CU_ASSERT_EQUAL(daemon_holds("rt-second"), 0);
        CU_ASSERT_EQUAL(daemon_maps("rt-first"), 1);
        CU_ASSERT(ring_convert(&r, 9, REGION_GPA + 3 * PAGE, true));
        {
                struct vm_figures f;

                CU_ASSERT(ring_settle("setup-refused", 2, UINT64_MAX, &f));
                CU_ASSERT_EQUAL(f.replies, 1);
                CU_ASSERT_EQUAL(f.private_bytes, PAGE);
        }
        CU_ASSERT(r_probe(&r, REGION_GPA + 3 * PAGE, PAGE, true));
        CU_ASSERT(ring_convert(&r, 9, REGION_GPA + 3 * PAGE, false));
        CU_ASSERT(r_probe(&r, REGION_GPA, REGION_SIZE, false));
        CU_ASSERT_EQUAL(protocol_errors(), pe0 + 1);
        rvmm_close(&r);
        CU_ASSERT_EQUAL(daemon_maps_settle("rt-first", 0), 0);
        CU_ASSERT(daemon_alive());
}

/* ------------------------------------------------------------ 5. a broken ring ends its connection only */

enum breakage {
        BREAK_TAIL_AHEAD, BREAK_TAIL_BACK, BREAK_LEN, BREAK_SLOT, BREAK_HELLO, BREAK_APPLIED_SLOT, BREAK_GARBAGE,
        BREAK__MAX,
};

static const struct {
        const char *name;
        const char *text;       /* in the error and the log line */
} breakages[BREAK__MAX] = {
        [BREAK_TAIL_AHEAD] = { "tail-ahead", "tail 65 is not within 64 entries after head 0" },
        [BREAK_TAIL_BACK] = { "tail-back", "tail 0 is not within 64 entries after head 4" },
        [BREAK_LEN] = { "len-241", "claims 241 bytes" },
        [BREAK_SLOT] = { "slot-64", "names reply slot 64" },
        [BREAK_HELLO] = { "hello", "hello may not be sent on the ring" },
        [BREAK_APPLIED_SLOT] = { "applied-slot", "may not be sent on the ring with a reply slot" },
        [BREAK_GARBAGE] = { "garbage", "is not a memconv.Message" },
};

/* break_ring() - do @k to @r's ring */
static void break_ring(struct rvmm *r, enum breakage k)
{
        Memconv__Message m;
        Memconv__Convert c;
        Memconv__Hello h = MEMCONV__HELLO__INIT;
        Memconv__Applied a = MEMCONV__APPLIED__INIT;
        uint8_t buf[MC_RING_ENTRY_DATA];
        uint32_t len;

        convert_msg(&m, &c, ++r->v.next_id, REGION_GPA, true);
        switch (k) {
        case BREAK_TAIL_AHEAD:
                atomic_store_explicit(&r->map->header.tail, MC_RING_ENTRIES + 1, memory_order_release);
                break;
        case BREAK_TAIL_BACK:
                /* four good entries taken (a page to private and back, each with its Applied),
                 * then the tail moves back */
                CU_ASSERT_FATAL(ring_convert(r, 0, REGION_GPA, true));
                CU_ASSERT_FATAL(ring_convert(r, 0, REGION_GPA, false));
                {
                        uint64_t t0 = now_ms();

                        while (atomic_load(&r->map->header.head) != 4 && now_ms() - t0 < SETTLE_MS)
                                usleep(100);
                        CU_ASSERT_EQUAL_FATAL(atomic_load(&r->map->header.head), 4);
                }
                atomic_store_explicit(&r->map->header.tail, 0, memory_order_release);
                break;
        case BREAK_LEN:
                len = (uint32_t) memconv__message__pack(&m, buf);
                memset(buf + len, 0, sizeof(buf) - len);
                atomic_store(&r->map->slots[1].tag, TAG(m.id, MC_RING_WAIT));
                ring_put(r, buf, MC_RING_ENTRY_DATA + 1, 1, r->sent);
                break;
        case BREAK_SLOT:
                len = (uint32_t) memconv__message__pack(&m, buf);
                ring_put(r, buf, len, MC_RING_SLOTS, r->sent);
                break;
        case BREAK_HELLO:
                h.version = 1;
                m.body_case = MEMCONV__MESSAGE__BODY_HELLO;
                m.hello = &h;
                atomic_store(&r->map->slots[2].tag, TAG(m.id, MC_RING_WAIT));
                ring_put_msg(r, &m, 2);
                break;
        case BREAK_APPLIED_SLOT:
                a.decision_id = 1;
                a.ok = true;
                m.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
                m.applied = &a;
                atomic_store(&r->map->slots[3].tag, TAG(m.id, MC_RING_WAIT));
                ring_put_msg(r, &m, 3);
                break;
        case BREAK_GARBAGE:
                memset(buf, 0xff, 32);
                atomic_store(&r->map->slots[4].tag, TAG(m.id, MC_RING_WAIT));
                ring_put(r, buf, 32, 4, r->sent);
                break;
        default:
                CU_FAIL_FATAL("no such breakage");
        }
        ring_nudge(r);
}

static void test_broken_ring(void)
{
        struct rvmm b;
        int broke = log_count("broke its request ring", NULL);

        /* A bystander VMM with its own ring, and libmemconv's VM beside it. */
        rvmm_open(&b, 0x50, "bystander");
        ring_good(&b, "rt-bystander");

        for (int k = 0; k < BREAK__MAX; k++) {
                struct mc_ring_stats st0, st;
                struct rvmm r;
                struct vm_figures f;
                Memconv__Message *last;
                char name[64], ring_name[64];
                unsigned others;
                uint64_t pe0;

                snprintf(name, sizeof(name), "broken-%s", breakages[k].name);
                snprintf(ring_name, sizeof(ring_name), "rt-broken-%s", breakages[k].name);
                rvmm_open(&r, (uint8_t) (0x51 + k), name);
                ring_good(&r, ring_name);
                CU_ASSERT_EQUAL(daemon_maps(ring_name), 1);
                pe0 = protocol_errors();

                break_ring(&r, (enum breakage) k);

                /* The daemon says why (a Reply with id 0), then hangs up. */
                CU_ASSERT(read_until_closed(r.v.sock, &last, &others));
                CU_ASSERT_EQUAL(others, 1);
                CU_ASSERT_PTR_NOT_NULL(last);
                if (last) {
                        CU_ASSERT_EQUAL(last->id, 0);
                        CU_ASSERT_EQUAL(last->body_case, MEMCONV__MESSAGE__BODY_REPLY);
                        if (last->body_case == MEMCONV__MESSAGE__BODY_REPLY) {
                                CU_ASSERT_EQUAL(status_code(last->reply->status), MEMCONV__CODE__CODE_PROTOCOL_ERROR);
                                CU_ASSERT(last->reply->status &&
                                          strstr(last->reply->status->message, breakages[k].text));
                                if (last->reply->status && !strstr(last->reply->status->message, breakages[k].text))
                                        printf("\n    %s: \"%s\"\n", breakages[k].name,
                                               last->reply->status->message);
                        }
                        memconv__message__free_unpacked(last, NULL);
                }
                CU_ASSERT(log_wait_count("broke its request ring", NULL, broke + 1));
                CU_ASSERT(log_wait("broke its request ring", breakages[k].text));
                broke++;
                CU_ASSERT_EQUAL(protocol_errors(), pe0 + 1);

                /* Only that connection ended: its VM detached, its ring unmapped, nothing changed. */
                CU_ASSERT(daemon_alive());
                CU_ASSERT(log_wait(name, "detached: the VMM disconnected"));
                CU_ASSERT_FATAL(vm_figures(name, &f));
                CU_ASSERT(!f.attached);
                CU_ASSERT(!f.ring);
                CU_ASSERT_EQUAL(f.private_bytes, 0);
                CU_ASSERT_EQUAL(daemon_maps_settle(ring_name, 0), 0);
                CU_ASSERT_EQUAL(daemon_fd_settle("memfd:shared", 1), 1);  /* the bystander's */

                /* The bystander goes on, through its ring and its socket; so does libmemconv's VM. */
                CU_ASSERT(ring_convert(&b, (unsigned) k, REGION_GPA + (uint64_t) k * PAGE, true));
                CU_ASSERT(r_probe(&b, REGION_GPA + (uint64_t) k * PAGE, PAGE, true));
                CU_ASSERT(ring_convert(&b, (unsigned) k, REGION_GPA + (uint64_t) k * PAGE, false));
                mc_client_ring_stats(client, &st0);
                CU_ASSERT_EQUAL(convert_alternating(client, 2), 0);
                mc_client_ring_stats(client, &st);
                CU_ASSERT_EQUAL(st.requests, st0.requests + 2);
                rvmm_close(&r);
        }
        {
                struct vm_figures f;

                CU_ASSERT(ring_settle("bystander", 4 * BREAK__MAX, UINT64_MAX, &f));
                CU_ASSERT(f.attached);
                CU_ASSERT_EQUAL(f.replies, 2 * BREAK__MAX);
                CU_ASSERT_EQUAL(f.private_bytes, 0);
                CU_ASSERT_EQUAL(f.changes, 2 * BREAK__MAX);
        }
        rvmm_close(&b);
        CU_ASSERT_EQUAL(daemon_maps_settle("rt-bystander", 0), 0);
}

/* ------------------------------------------------------------ 6. a ring by hand: answers, order */

static void test_hand_ring(void)
{
        struct rvmm r;
        struct vm_figures f;
        Memconv__Message *m;
        uint64_t id, dec, t0;

        rvmm_open(&r, 0x61, "hand-ring");
        ring_good(&r, "rt-hand");
        /* The daemon published sock_out when it answered the RingSetup on the socket. */
        CU_ASSERT(sock_out_wait(&r, 0) > 0);

        /* A Convert in entry 0, its answer awaited in slot 3. */
        id = ++r.v.next_id;
        ring_request(&r, 3, id, REGION_GPA + 5 * PAGE, true, MC_RING_WAIT, r.sent);
        ring_nudge(&r);
        CU_ASSERT_EQUAL(slot_wait(&r, 3, TAG(id, MC_RING_READY), SETTLE_MS), TAG(id, MC_RING_READY));
        CU_ASSERT(r.map->slots[3].len > 0 && r.map->slots[3].len <= MC_RING_SLOT_DATA);
        dec = expect_apply(slot_message(&r, 3), id, REGION_GPA + 5 * PAGE, true);
        CU_ASSERT_EQUAL(atomic_load(&r.map->header.head), 1);
        /* Nothing came on the socket for it. */
        m = recv_within(r.v.sock, 50);
        CU_ASSERT_PTR_NULL(m);
        if (m)
                memconv__message__free_unpacked(m, NULL);
        /* Its Applied through the ring, without a slot: recorded. */
        ring_applied(&r, dec);
        CU_ASSERT(ring_settle("hand-ring", 2, r.kicks, &f));
        CU_ASSERT_EQUAL(f.replies, 1);
        CU_ASSERT_EQUAL(f.socket_replies, 0);
        CU_ASSERT_EQUAL(f.private_bytes, PAGE);
        CU_ASSERT_EQUAL(atomic_load(&r.map->header.head), 2);
        CU_ASSERT(r_probe(&r, REGION_GPA + 5 * PAGE, PAGE, true));
        CU_ASSERT(r_probe(&r, REGION_GPA, 5 * PAGE, false));

        /*
         * An entry queued after a datagram the client has not sent yet waits for it.
         * Admin requests wake the daemon's loop, so it looks at the entry (a stall
         * counted) without any datagram on this connection.
         */
        id = ++r.v.next_id;
        ring_request(&r, 7, id, REGION_GPA + 5 * PAGE, false, MC_RING_WAIT, r.sent + 1);
        t0 = now_ms();
        while (vm_figures("hand-ring", &f) && f.stalls == 0 && now_ms() - t0 < RING_SETTLE_MS)
                usleep(5000);
        CU_ASSERT_EQUAL(f.stalls, 1);
        CU_ASSERT_EQUAL(f.entries, 2);
        CU_ASSERT_EQUAL(slot_wait(&r, 7, TAG(id, MC_RING_READY), STALL_MS), TAG(id, MC_RING_WAIT));
        CU_ASSERT(vm_figures("hand-ring", &f));        /* woken once more: still waiting */
        CU_ASSERT_EQUAL(slot_wait(&r, 7, TAG(id, MC_RING_READY), 20), TAG(id, MC_RING_WAIT));
        CU_ASSERT_EQUAL(atomic_load(&r.map->header.head), 2);
        CU_ASSERT_EQUAL(f.entries, 2);
        /* The datagram it was queued after: now it is handled. */
        r_kick(&r);
        CU_ASSERT_EQUAL(slot_wait(&r, 7, TAG(id, MC_RING_READY), SETTLE_MS), TAG(id, MC_RING_READY));
        dec = expect_apply(slot_message(&r, 7), id, REGION_GPA + 5 * PAGE, false);
        ring_applied(&r, dec);
        CU_ASSERT(ring_settle("hand-ring", 4, r.kicks, &f));
        CU_ASSERT_EQUAL(f.stalls, 1);
        CU_ASSERT_EQUAL(f.replies, 2);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT(r_probe(&r, REGION_GPA, REGION_SIZE, false));

        /* The same across the queue's end: 64 more entries, the ring wraps. */
        for (unsigned i = 0; i < 32; i++)
                CU_ASSERT(ring_convert(&r, i % MC_RING_SLOTS, REGION_GPA + (i / 2 % 8) * PAGE, i % 2 == 0));
        CU_ASSERT(ring_settle("hand-ring", 4 + 64, r.kicks, &f));
        CU_ASSERT(changes_settle("hand-ring", 2 + 32, &f));
        CU_ASSERT_EQUAL(atomic_load(&r.map->header.head), 4 + 64);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT_EQUAL(f.changes, 2 + 32);
        rvmm_close(&r);
        CU_ASSERT_EQUAL(daemon_maps_settle("rt-hand", 0), 0);
}

/* ------------------------------------------------------------ 7. an abandoned slot */

static void test_abandoned_slot(void)
{
        const uint64_t gpa = REGION_GPA + 8 * PAGE;
        struct rvmm r;
        struct vm_figures f;
        Memconv__Message *m;
        uint64_t id, id2, dec, out0;

        rvmm_open(&r, 0x71, "abandoned-slot");
        ring_good(&r, "rt-abandoned");
        out0 = atomic_load(&r.map->header.sock_out);

        /* Given up before the daemon could answer: the answer comes on the socket. */
        id = ++r.v.next_id;
        ring_request(&r, 5, id, gpa, true, MC_RING_SOCKET, r.sent);
        ring_nudge(&r);
        m = recv_within(r.v.sock, SETTLE_MS);
        dec = expect_apply(m, id, gpa, true);
        CU_ASSERT_EQUAL(atomic_load(&r.map->slots[5].tag), TAG(id, MC_RING_SOCKET));
        CU_ASSERT(sock_out_wait(&r, out0) > out0);  /* the client is told to read its socket */
        ring_applied(&r, dec);
        CU_ASSERT(ring_settle("abandoned-slot", 2, r.kicks, &f));
        CU_ASSERT_EQUAL(f.replies, 0);
        CU_ASSERT_EQUAL(f.socket_replies, 1);
        CU_ASSERT_EQUAL(f.private_bytes, PAGE);

        /* The slot reused for a newer request: its answer is in the slot. */
        id2 = ++r.v.next_id;
        ring_request(&r, 5, id2, gpa, false, MC_RING_WAIT, r.sent);
        ring_nudge(&r);
        CU_ASSERT_EQUAL(slot_wait(&r, 5, TAG(id2, MC_RING_READY), SETTLE_MS), TAG(id2, MC_RING_READY));
        dec = expect_apply(slot_message(&r, 5), id2, gpa, false);
        ring_applied(&r, dec);
        m = recv_within(r.v.sock, 50);
        CU_ASSERT_PTR_NULL(m);          /* not also on the socket */
        if (m)
                memconv__message__free_unpacked(m, NULL);
        CU_ASSERT(ring_settle("abandoned-slot", 4, r.kicks, &f));
        CU_ASSERT_EQUAL(f.replies, 1);
        CU_ASSERT_EQUAL(f.socket_replies, 1);
        CU_ASSERT_EQUAL(f.private_bytes, 0);

        /* A slot whose tag names another request is not written: that answer comes on the socket. */
        id = ++r.v.next_id;
        atomic_store(&r.map->slots[6].tag, TAG(id + 1000, MC_RING_WAIT));
        {
                Memconv__Message cm;
                Memconv__Convert c;

                convert_msg(&cm, &c, id, gpa, true);
                ring_put_msg(&r, &cm, 6);
        }
        ring_nudge(&r);
        dec = expect_apply(recv_within(r.v.sock, SETTLE_MS), id, gpa, true);
        CU_ASSERT_EQUAL(atomic_load(&r.map->slots[6].tag), TAG(id + 1000, MC_RING_WAIT));
        ring_applied(&r, dec);
        CU_ASSERT(ring_convert(&r, 6, gpa, false));
        CU_ASSERT(ring_settle("abandoned-slot", 8, r.kicks, &f));
        CU_ASSERT_EQUAL(f.replies, 2);
        CU_ASSERT_EQUAL(f.socket_replies, 2);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        CU_ASSERT(r_probe(&r, REGION_GPA, REGION_SIZE, false));
        rvmm_close(&r);
}

/* ------------------------------------------------------------ 8. detach */

/*
 * A request a vCPU thread queued after the VM detached (it had not seen
 * the answer yet) is refused NOT_ATTACHED in its slot, as on the socket:
 * the ring is the connection's and outlives the attachment.
 */
static void test_detached_request(void)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT, *a;
        Memconv__Detach d = MEMCONV__DETACH__INIT;
        struct rvmm r;
        uint64_t id, tag;

        rvmm_open(&r, 0x91, "ring-detach");
        ring_good(&r, "rt-detach");
        m.body_case = MEMCONV__MESSAGE__BODY_DETACH;
        m.detach = &d;
        a = r_call(&r, &m, NULL, 0);
        CU_ASSERT_FATAL(a != NULL);
        CU_ASSERT_EQUAL(a->body_case, MEMCONV__MESSAGE__BODY_REPLY);
        CU_ASSERT_EQUAL(status_code(a->reply->status), MEMCONV__CODE__CODE_OK);
        memconv__message__free_unpacked(a, NULL);

        id = ++r.v.next_id;
        ring_request(&r, 2, id, REGION_GPA, true, MC_RING_WAIT, r.sent);
        (void) ring_nudge(&r);
        tag = slot_wait(&r, 2, TAG(id, MC_RING_READY), RING_SETTLE_MS);
        CU_ASSERT_EQUAL(tag, TAG(id, MC_RING_READY));
        a = tag == TAG(id, MC_RING_READY) ? slot_message(&r, 2) : NULL;
        CU_ASSERT_PTR_NOT_NULL(a);
        if (a && a->body_case == MEMCONV__MESSAGE__BODY_DECISION) {
                CU_ASSERT_EQUAL(a->id, id);
                CU_ASSERT_EQUAL(a->decision->action, MEMCONV__ACTION__ACTION_FAIL);
                CU_ASSERT_EQUAL(status_code(a->decision->status), MEMCONV__CODE__CODE_NOT_ATTACHED);
        } else
                CU_FAIL("no Decision in the slot");
        if (a)
                memconv__message__free_unpacked(a, NULL);
        CU_ASSERT(daemon_alive());
        rvmm_close(&r);
}

static _Atomic int race_result;
static _Atomic unsigned race_done;

/* race_converter() - convert until it fails; @p: the client */
static void *race_converter(void *p)
{
        for (unsigned i = 0;; i++) {
                int r = mc_client_convert(p, 1, (uint64_t) ((i / 2) % 4) * PAGE, PAGE, i % 2 == 0,
                                          MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);

                race_done = i + 1;
                if (r < 0) {
                        race_result = r;
                        return NULL;
                }
        }
}

/*
 * A vCPU thread converting while another detaches: its next conversion
 * fails with -ENOTCONN, never hangs (a ring dropped on detach once left
 * such a request unanswered for ever).
 */
static void test_detach_race(void)
{
        unsigned hung = 0, wrong = 0;

        for (unsigned k = 0; k < DETACH_RACES && !hung; k++) {
                struct mc_vm_info info = { .name = "ring-race", .cc_type = MC_CC_SEV_SNP, .arch = MC_ARCH_X86_64 };
                struct mc_region_info ri = { .slot = 0, .gpa = 0, .size = RAM, .shared_fd = -1 };
                char uuid[17];
                struct timespec ts;
                mc_client *c = NULL;
                pthread_t t;

                snprintf(uuid, sizeof(uuid), "race-%011u", k);
                memcpy(info.uuid, uuid, sizeof(info.uuid));
                CU_ASSERT_FATAL(mc_client_connect(sock_path, &c) == 0);
                mc_client_set_apply(c, client_vm_count_apply, NULL);
                CU_ASSERT_FATAL(mc_client_attach(c, &info, NULL) == 0);
                ri.guest_memfd = gmem_create(RAM);
                CU_ASSERT_FATAL(ri.guest_memfd >= 0);
                CU_ASSERT_FATAL(mc_client_register_region(c, &ri) == 0);
                close(ri.guest_memfd);
                race_result = 0;
                race_done = 0;
                CU_ASSERT_FATAL(pthread_create(&t, NULL, race_converter, c) == 0);
                while (race_done < 20 + k % 37)
                        sched_yield();
                CU_ASSERT_EQUAL(mc_client_detach(c), 0);
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 5;
                if (pthread_timedjoin_np(t, NULL, &ts) != 0) {
                        fprintf(stderr, "\n    try %u: the converting thread still waits 5 s after detach\n", k);
                        hung++;
                        break;  /* leave it: it holds the client */
                }
                if (race_result != -ENOTCONN)
                        wrong++;
                mc_client_free(c);
        }
        CU_ASSERT_EQUAL(hung, 0);
        CU_ASSERT_EQUAL(wrong, 0);
}

/* ------------------------------------------------------------ 3. rings turned off (runs last: restarts memconvd) */

static void test_rings_off(void)
{
        struct mc_vm_info info = { .name = "ring-off", .cc_type = MC_CC_SEV_SNP, .arch = MC_ARCH_X86_64 };
        struct mc_ring_stats st;
        struct vm_figures f;
        struct rvmm r;
        unsigned a0;
        bool ring = true;
        int wstatus;
        mc_client *c = NULL;

        /* Stop this memconvd cleanly (its log kept if something failed), start one with rings off. */
        vm.client = client = mc_client_free(client);
        CU_ASSERT_FATAL(kill(daemon_pid, SIGTERM) == 0);
        CU_ASSERT_FATAL(waitpid(daemon_pid, &wstatus, 0) == daemon_pid);
        CU_ASSERT(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
        if (CU_get_number_of_failures() > 0) {
                char kept[320];

                snprintf(kept, sizeof(kept), "%s/daemon-rings-on.log", tmpdir);
                if (rename(log_path, kept) == 0)
                        fprintf(stderr, "\n    the first daemon's log is kept in %s\n", kept);
        }
        daemon_extra_arg = "--request-ring=no";
        CU_ASSERT_FATAL(daemon_start() == 0);
        CU_ASSERT_FATAL(status(&ring, NULL));
        CU_ASSERT(!ring);

        /* libmemconv is refused its ring and carries on over the socket. */
        memcpy(info.uuid, "ring-off-test-01", 16);
        CU_ASSERT_FATAL(mc_client_connect(sock_path, &c) == 0);
        CU_ASSERT_FATAL(mc_client_attach(c, &info, NULL) == 0);
        CU_ASSERT_FATAL(mc_client_register_region(c, &vm.region) == 0);
        mc_client_set_apply(c, client_vm_count_apply, NULL);
        mc_client_ring_stats(c, &st);
        CU_ASSERT(!st.active);
        CU_ASSERT_EQUAL(st.error, -EPERM);
        a0 = applies;
        CU_ASSERT_EQUAL(convert_alternating(c, TOGGLE_CONVERSIONS), 0);
        mc_client_ring_stats(c, &st);
        CU_ASSERT(!st.active);
        CU_ASSERT_EQUAL(st.error, -EPERM);
        CU_ASSERT_EQUAL(st.requests + st.async + st.kicks + st.replies + st.socket_answers, 0);
        CU_ASSERT_EQUAL(applies - a0, TOGGLE_CONVERSIONS);
        CU_ASSERT_FATAL(changes_settle("ring-off", TOGGLE_CONVERSIONS, &f));
        CU_ASSERT(f.attached);
        CU_ASSERT(!f.ring);
        CU_ASSERT_EQUAL(f.changes, TOGGLE_CONVERSIONS);
        CU_ASSERT_EQUAL(f.private_bytes, 0);
        /* Asking again is refused the same way. */
        CU_ASSERT_EQUAL(mc_client_set_ring(c, true), -EPERM);
        mc_client_ring_stats(c, &st);
        CU_ASSERT(!st.active);
        CU_ASSERT_EQUAL(st.error, -EPERM);

        /* By hand: PERMISSION_DENIED, nothing kept, the connection goes on. */
        rvmm_open(&r, 0x81, "ring-off-raw");
        r.ring_fd = good_memfd("rt-off");
        expect_reply(ring_setup(&r, r.ring_fd, 1), MEMCONV__CODE__CODE_PERMISSION_DENIED, "RequestRing=no");
        CU_ASSERT_EQUAL(daemon_holds("rt-off"), 0);
        CU_ASSERT(r_probe(&r, REGION_GPA, REGION_SIZE, false));
        CU_ASSERT_FATAL(vm_figures("ring-off-raw", &f));
        CU_ASSERT(!f.ring);
        rvmm_close(&r);
        mc_client_free(c);
}

int main(void)
{
        static const struct client_vm_test tests[] = {
                { "libmemconv uses a ring by default; the daemon's figures and map agree", test_default_ring },
                { "mc_client_set_ring(): off goes on the socket, on uses a ring again", test_toggle },
                { "bad RingSetups are refused with their code and change nothing", test_setup_refused },
                { "a broken ring ends its own connection only", test_broken_ring },
                { "a ring by hand: answers in the slot, entries wait for earlier datagrams", test_hand_ring },
                { "an abandoned slot: the answer on the socket, the slot reused", test_abandoned_slot },
                { "a request queued after detach is refused in its slot", test_detached_request },
                { "a conversion racing detach fails, it never hangs", test_detach_race },
                { "--request-ring=no: refused, everything on the socket", test_rings_off },
        };
        int r;

        r = client_vm_setup(&vm, "", "ring", "ring-test-000001", RAM, client_vm_count_apply);
        if (r != 0)
                return r;
        client = vm.client;
        return client_vm_run(&vm, "ring", tests, sizeof(tests) / sizeof(tests[0]));
}
