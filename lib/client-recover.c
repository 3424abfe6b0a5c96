/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client-recover.c - keeping a VMM running across a memconvd restart.
 *
 * Theory of operation. The client remembers what it told the daemon that a
 * new daemon would need again: the attach (with the token the daemon gave),
 * every registered region (with its own duplicates of the fds, since the
 * VMM's fds are only borrowed), and every applied decision until the daemon
 * says it is durable (Committed). When a request fails because the
 * connection died, the thread that noticed reconnects: with backoff, for up
 * to reconnect_ms, it connects, says hello, attaches with the token (which
 * resumes the VM from the daemon's journal), registers the regions again and
 * re-sends the unacknowledged decisions as Reapplied, each waited for. Only
 * then is the new socket installed and the generation bumped; threads that
 * failed meanwhile wait for that and ask again. Nothing applied is lost
 * (the daemon records Reapplied ranges it does not have) and nothing is
 * applied twice (a request is only re-asked if its decision never came).
 *
 * The handshake runs on the new socket before any other thread can see it,
 * so it uses plain synchronous calls (recover_call()). The old socket is
 * shut down when the reconnect starts and closed only when no thread sends
 * or reads on it any more (client_sock_get()): a thread preempted inside
 * its send must not find the fd number taken by another file. A message
 * built for the old connection is not sent on the new one
 * (client_sock_send() checks the generation).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "frame.h"
#include "macro.h"
#include "message.h"

#define RECOVER_ANSWER_TIMEOUT_MS 5000

int client_recover_remember_vm(mc_client *c, const struct mc_vm_info *info)
{
        char *name = strdup(info->name);

        if (!name)
                return -ENOMEM;
        pthread_mutex_lock(&c->lock);
        free((char *) c->vm_info.name);
        c->vm_info = *info;
        c->vm_info.name = name;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

int client_recover_remember_region(mc_client *c, const struct mc_region_info *ri)
{
        struct mc_region_copy *n;
        int g, sh = -EBADF;

        g = fcntl(ri->guest_memfd, F_DUPFD_CLOEXEC, 3);
        if (g < 0)
                return negative_errno();
        if (ri->shared_fd >= 0) {
                sh = fcntl(ri->shared_fd, F_DUPFD_CLOEXEC, 3);
                if (sh < 0) {
                        int r = negative_errno();

                        safe_close(g);
                        return r;
                }
        }
        pthread_mutex_lock(&c->lock);
        n = realloc(c->regions, sizeof(*n) * (c->n_regions + 1));
        if (!n) {
                pthread_mutex_unlock(&c->lock);
                safe_close(g);
                safe_close(sh);
                return -ENOMEM;
        }
        c->regions = n;
        n[c->n_regions].info = *ri;
        n[c->n_regions].info.guest_memfd = g;
        n[c->n_regions].info.shared_fd = sh;
        c->n_regions++;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void client_recover_forget_region(mc_client *c, uint32_t slot)
{
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n_regions; i++)
                if (c->regions[i].info.slot == slot) {
                        safe_close(c->regions[i].info.guest_memfd);
                        safe_close(c->regions[i].info.shared_fd);
                        memmove(c->regions + i, c->regions + i + 1, sizeof(*c->regions) * (c->n_regions - i - 1));
                        c->n_regions--;
                        break;
                }
        pthread_mutex_unlock(&c->lock);
}

/** recover_append() - add @rec at the end of the unacknowledged list (@c locked) */
static void recover_append(mc_client *c, struct mc_applied_rec *rec)
{
        if (c->unacked_tail)
                c->unacked_tail->next = rec;
        else
                c->unacked = rec;
        c->unacked_tail = rec;
        c->n_unacked++;
}

int client_recover_applied(mc_client *c, const Memconv__Decision *d, const Memconv__Message *req)
{
        struct mc_applied_rec *rec = calloc(1, sizeof(*rec) + sizeof(Memconv__Range) * d->n_ranges);

        if (!rec)
                return -ENOMEM;
        rec->decision_id = d->decision_id;
        rec->request_id = req->id;
        rec->to_private = d->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        rec->n_ranges = d->n_ranges;
        for (size_t i = 0; i < d->n_ranges; i++) {
                memconv__range__init(&rec->ranges[i]);
                rec->ranges[i].gpa = d->ranges[i]->gpa;
                rec->ranges[i].size = d->ranges[i]->size;
        }
        if (req->body_case == MEMCONV__MESSAGE__BODY_MEMORY_FAULT) {
                rec->implicit = true;
                rec->vcpu = req->memory_fault->vcpu;
        } else if (req->body_case == MEMCONV__MESSAGE__BODY_CONVERT) {
                rec->vcpu = req->convert->vcpu;
                rec->source = req->convert->source;
        }
        pthread_mutex_lock(&c->lock);
        recover_append(c, rec);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

int client_recover_leased(mc_client *c, uint64_t seq, uint64_t msg_id, uint32_t vcpu, uint64_t gpa, uint64_t size,
                          bool to_private, bool implicit, int source)
{
        struct mc_applied_rec *rec = calloc(1, sizeof(*rec) + sizeof(Memconv__Range));

        if (!rec)
                return -ENOMEM;
        rec->lease_seq = seq;
        rec->request_id = msg_id;
        rec->vcpu = vcpu;
        rec->to_private = to_private;
        rec->implicit = implicit;
        rec->source = source;
        rec->n_ranges = 1;
        memconv__range__init(&rec->ranges[0]);
        rec->ranges[0].gpa = gpa;
        rec->ranges[0].size = size;
        recover_append(c, rec);
        return 0;
}

/**
 * recover_forget() - drop the unacknowledged record whose decision id
 * (@leased false) or lease seq (@leased true) is @id (@c locked)
 */
static void recover_forget(mc_client *c, uint64_t id, bool leased)
{
        struct mc_applied_rec **p, *prev = NULL;

        /* Ids arrive roughly in order: usually the list head matches. */
        for (p = &c->unacked; *p; prev = *p, p = &(*p)->next)
                if ((leased ? (*p)->lease_seq : (*p)->decision_id) == id) {
                        struct mc_applied_rec *rec = *p;

                        *p = rec->next;
                        if (c->unacked_tail == rec)
                                c->unacked_tail = prev;
                        c->n_unacked--;
                        free(rec);
                        return;
                }
}

bool client_recover_refused(mc_client *c, uint64_t msg_id)
{
        for (struct mc_applied_rec *rec = c->unacked; rec; rec = rec->next)
                if (rec->lease_seq && rec->request_id == msg_id) {
                        recover_forget(c, rec->lease_seq, true);
                        return true;
                }
        return false;
}

void client_recover_committed(mc_client *c, const Memconv__Committed *m)
{
        for (size_t i = 0; i < m->n_decision_ids; i++)
                recover_forget(c, m->decision_ids[i], false);
        for (size_t i = 0; i < m->n_lease_seqs; i++)
                recover_forget(c, m->lease_seqs[i], true);
}

/**
 * recover_call() - send @msg on @fd and wait (bounded) for the answer with
 * its id, skipping anything else (Committed of the new daemon included)
 * Return: 0 with @ret_reply owned by the caller, or negative errno
 */
static int recover_call(mc_client *c, int fd, Memconv__Message *msg, const int *fds, size_t n_fds,
                        Memconv__Message__BodyCase expect, Memconv__Message **ret_reply)
{
        int r;

        pthread_mutex_lock(&c->lock);
        msg->id = ++c->next_id;
        c->recover_sent++;       /* the new connection's count, for the request ring's ordering */
        pthread_mutex_unlock(&c->lock);
        r = mc_frame_send(fd, msg, fds, n_fds);
        if (r < 0)
                return r;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                Memconv__Message *m = NULL;
                int rfds[MC_FRAME_MAX_FDS];
                size_t n = 0;

                r = poll(&p, 1, RECOVER_ANSWER_TIMEOUT_MS);
                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0 && errno != EINTR)
                        return negative_errno();
                if (r < 0)
                        continue;
                r = mc_frame_recv(fd, 0, &m, rfds, &n);
                if (r < 0)
                        return r;
                mc_frame_close_fds(rfds, n);
                if (m->id == msg->id) {
                        if (m->body_case != expect) {
                                memconv__message__free_unpacked(m, NULL);
                                return -EPROTO;
                        }
                        *ret_reply = m;
                        return 0;
                }
                if (m->body_case == MEMCONV__MESSAGE__BODY_COMMITTED) {
                        pthread_mutex_lock(&c->lock);
                        client_recover_committed(c, m->committed);
                        pthread_mutex_unlock(&c->lock);
                }
                /* A grant of the new daemon (a revocation needs an answer on the new socket,
                 * which is not installed yet; none can come before a grant). */
                if (m->body_case == MEMCONV__MESSAGE__BODY_LEASE && !m->lease->revoked &&
                    mc_message_validate(m, 0, MC_MSG_TO_CLIENT, &(struct mc_msg_error) { 0 }) >= 0) {
                        pthread_mutex_lock(&c->lock);
                        (void) client_lease_message(c, m);
                        pthread_mutex_unlock(&c->lock);
                }
                memconv__message__free_unpacked(m, NULL);
        }
}

/**
 * recover_status() - errno of a Reply / HelloReply / AttachReply status
 */
static int recover_status(const Memconv__Message *m)
{
        switch (m->body_case) {
        case MEMCONV__MESSAGE__BODY_HELLO_REPLY:
                return client_status_errno(m->hello_reply->status);
        case MEMCONV__MESSAGE__BODY_ATTACH_REPLY:
                return client_status_errno(m->attach_reply->status);
        case MEMCONV__MESSAGE__BODY_REPLY:
                return client_status_errno(m->reply->status);
        default:
                return -EPROTO;
        }
}

/**
 * recover_simple() - recover_call() + status, freeing the answer
 */
static int recover_simple(mc_client *c, int fd, Memconv__Message *msg, const int *fds, size_t n_fds,
                          Memconv__Message__BodyCase expect)
{
        Memconv__Message *reply = NULL;
        int r = recover_call(c, fd, msg, fds, n_fds, expect, &reply);

        if (r < 0)
                return r;
        r = recover_status(reply);
        memconv__message__free_unpacked(reply, NULL);
        return r;
}

/**
 * recover_reapplied() - send one Reapplied and wait for its answer
 * Return: 0 when recorded, or refused for good; negative errno when the
 * attempt failed and the record must be sent again (connection, BUSY, the
 * daemon out of memory)
 */
static int recover_reapplied(mc_client *c, int fd, Memconv__Message *msg)
{
        Memconv__Message *reply = NULL;
        const Memconv__Status *st;
        int r = recover_call(c, fd, msg, NULL, 0, MEMCONV__MESSAGE__BODY_REPLY, &reply);

        if (r < 0)
                return r;
        st = reply->reply->status;
        r = client_status_errno(st);
        /* Refused for good (its region is gone, say): sending it again would only fail
         * again and keep this VMM from ever reconnecting. The daemon logs the refusal. */
        if (r < 0 && st->code != MEMCONV__CODE__CODE_BUSY && st->code != MEMCONV__CODE__CODE_RESOURCE_LIMIT)
                r = 0;
        memconv__message__free_unpacked(reply, NULL);
        return r;
}

/**
 * recover_handshake() - one attempt: a new connection that knows everything
 * @ret_fd: the connected, resumed socket
 * Return: 0, or negative errno (-ECONNREFUSED / -ENOENT: nobody listens yet)
 */
static int recover_handshake(mc_client *c, int *ret_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__Hello hello = MEMCONV__HELLO__INIT;
        Memconv__Attach a = MEMCONV__ATTACH__INIT;
        _cleanup_close_ int fd = -EBADF;
        struct mc_vm_info info;
        uint8_t token[16];
        bool want_lease;
        int r;

        strncpy(sa.sun_path, c->socket_path, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();

        hello.version = MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
        hello.client = (char *) "libmemconv " PACKAGE_VERSION " (reconnecting)";
        msg.body_case = MEMCONV__MESSAGE__BODY_HELLO;
        msg.hello = &hello;
        r = recover_simple(c, fd, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        if (r < 0)
                return r;

        pthread_mutex_lock(&c->lock);
        info = c->vm_info;
        memcpy(token, c->token, sizeof(token));
        pthread_mutex_unlock(&c->lock);
        a.uuid.data = info.uuid;
        a.uuid.len = sizeof(info.uuid);
        a.name = (char *) info.name;
        a.cc_type = (Memconv__CcType) info.cc_type;
        a.arch = (Memconv__Arch) info.arch;
        a.token.data = token;
        a.token.len = sizeof(token);
        msg = (Memconv__Message) MEMCONV__MESSAGE__INIT;
        msg.body_case = MEMCONV__MESSAGE__BODY_ATTACH;
        msg.attach = &a;
        r = recover_simple(c, fd, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        if (r < 0)
                return r == -EPERM ? -ESTALE : r;  /* the daemon no longer knows this VM */

        /* The region list only changes under the lock, and setup calls do not race recovery. */
        for (size_t i = 0; i < c->n_regions; i++) {
                const struct mc_region_info *ri = &c->regions[i].info;
                Memconv__RegisterRegion rr = MEMCONV__REGISTER_REGION__INIT;
                int fds[2] = { ri->guest_memfd, ri->shared_fd };

                rr.slot = ri->slot;
                rr.gpa = ri->gpa;
                rr.size = ri->size;
                rr.guest_memfd_offset = ri->guest_memfd_offset;
                rr.has_shared = ri->shared_fd >= 0;
                rr.shared_offset = rr.has_shared ? ri->shared_offset : 0;
                rr.initial = ri->initial_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE
                                                 : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
                msg = (Memconv__Message) MEMCONV__MESSAGE__INIT;
                msg.body_case = MEMCONV__MESSAGE__BODY_REGISTER_REGION;
                msg.register_region = &rr;
                r = recover_simple(c, fd, &msg, fds, rr.has_shared ? 2 : 1, MEMCONV__MESSAGE__BODY_REPLY);
                if (r < 0)
                        return r;
        }

        /* Oldest first, so the daemon records them in the order they happened. */
        for (;;) {
                Memconv__Reapplied ra = MEMCONV__REAPPLIED__INIT;
                Memconv__Range *rp[MC_DECISION_RANGES_MAX];
                struct mc_applied_rec *rec;

                pthread_mutex_lock(&c->lock);
                rec = c->unacked;
                if (rec) {
                        c->unacked = rec->next;
                        if (!c->unacked)
                                c->unacked_tail = NULL;
                        c->n_unacked--;
                }
                pthread_mutex_unlock(&c->lock);
                if (!rec)
                        break;
                for (size_t i = 0; i < rec->n_ranges && i < MC_DECISION_RANGES_MAX; i++)
                        rp[i] = &rec->ranges[i];
                ra.ranges = rp;
                ra.n_ranges = rec->n_ranges;
                ra.to = rec->to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
                ra.implicit = rec->implicit;
                ra.vcpu = rec->vcpu;
                ra.source = (Memconv__ConvertSource) rec->source;
                ra.request_id = rec->request_id;
                msg = (Memconv__Message) MEMCONV__MESSAGE__INIT;
                msg.body_case = MEMCONV__MESSAGE__BODY_REAPPLIED;
                msg.reapplied = &ra;
                r = recover_reapplied(c, fd, &msg);
                if (r < 0) {
                        /* Put it back in front: the next attempt sends it again. */
                        pthread_mutex_lock(&c->lock);
                        rec->next = c->unacked;
                        c->unacked = rec;
                        if (!c->unacked_tail)
                                c->unacked_tail = rec;
                        c->n_unacked++;
                        pthread_mutex_unlock(&c->lock);
                        return r;
                }
                free(rec);
        }

        /* Everything is said: the daemon may now discard what is stale. */
        {
                Memconv__Resumed rs = MEMCONV__RESUMED__INIT;

                msg = (Memconv__Message) MEMCONV__MESSAGE__INIT;
                msg.body_case = MEMCONV__MESSAGE__BODY_RESUMED;
                msg.resumed = &rs;
                r = recover_simple(c, fd, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_REPLY);
                if (r < 0)
                        return r;
        }

        /* A lease is per connection: ask the new daemon again (it grants one when it can). */
        pthread_mutex_lock(&c->lock);
        want_lease = c->lease.wanted;
        pthread_mutex_unlock(&c->lock);
        if (want_lease) {
                Memconv__LeaseRequest lr = MEMCONV__LEASE_REQUEST__INIT;

                lr.want = true;
                msg = (Memconv__Message) MEMCONV__MESSAGE__INIT;
                msg.body_case = MEMCONV__MESSAGE__BODY_LEASE_REQUEST;
                msg.lease_request = &lr;
                r = recover_simple(c, fd, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_REPLY);
                if (r < 0 && r != -EPERM)
                        return r;  /* -EPERM: leases are off there; carry on without */
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int client_recover_reconnect(mc_client *c, unsigned gen)
{
        struct timespec start, now;
        unsigned delay_ms = 10;
        int r = -ETIMEDOUT, fd = -EBADF;

        pthread_mutex_lock(&c->lock);
        while (c->reconnecting)
                pthread_cond_wait(&c->reconnected, &c->lock);
        if (c->generation != gen) {
                /* Someone else reconnected meanwhile: use that connection, unless
                 * their attempt failed for good or it has died again already. */
                if (c->recover_error || !c->dead) {
                        r = c->recover_error;
                        pthread_mutex_unlock(&c->lock);
                        return r;
                }
        }
        c->reconnecting = true;
        /* Threads still sending or reading on the dead connection return now, rather than
         * when its peer (perhaps alive, after a protocol error) gets round to it. */
        (void) shutdown(c->sock, SHUT_RDWR);
        /* Leased conversions being applied now must be in the list to re-send first. */
        client_lease_reset(c);
        pthread_mutex_unlock(&c->lock);

        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                uint64_t elapsed;

                pthread_mutex_lock(&c->lock);
                c->recover_sent = 0;  /* each attempt is a new connection */
                pthread_mutex_unlock(&c->lock);
                r = recover_handshake(c, &fd);
                if (r >= 0 || r == -ESTALE || r == -EPROTO)
                        break;
                clock_gettime(CLOCK_MONOTONIC, &now);
                /* Signed: tv_nsec may be smaller now than at the start. */
                elapsed = (uint64_t) (((int64_t) now.tv_sec - (int64_t) start.tv_sec) * 1000 +
                                      ((int64_t) now.tv_nsec - (int64_t) start.tv_nsec) / 1000000);
                if (elapsed + delay_ms > c->reconnect_ms)
                        break;
                usleep(delay_ms * 1000);
                delay_ms = delay_ms < 500 ? delay_ms * 2 : 1000;
        }

        pthread_mutex_lock(&c->lock);
        if (r >= 0) {
                /* Nobody may be inside a send or recv on the old fd when it is closed: the
                 * number could be reused at once, by the VMM's own files too. */
                while (c->sock_users > 0)
                        pthread_cond_wait(&c->sock_idle, &c->lock);
                safe_close(c->sock);
                __atomic_store_n(&c->sock, fd, __ATOMIC_RELAXED);  /* mc_client_fd() reads it unlocked */
                atomic_store(&c->sock_sent, c->recover_sent);  /* the new daemon counts from its accept */
                c->dead = 0;
                c->reading = false;
                c->reconnects++;
        } else {
                c->dead = r;
                c->recover_error = r;  /* sticky: later calls fail at once */
        }
        c->generation++;
        c->reconnecting = false;
        pthread_cond_broadcast(&c->reconnected);
        pthread_mutex_unlock(&c->lock);
        if (r >= 0)
                (void) client_ring_start(c);  /* a ring is per connection */
        return r;
}

void client_recover_free(mc_client *c)
{
        for (size_t i = 0; i < c->n_regions; i++) {
                safe_close(c->regions[i].info.guest_memfd);
                safe_close(c->regions[i].info.shared_fd);
        }
        free(c->regions);
        c->regions = NULL;
        c->n_regions = 0;
        while (c->unacked) {
                struct mc_applied_rec *rec = c->unacked;

                c->unacked = rec->next;
                free(rec);
        }
        c->unacked_tail = NULL;
        free((char *) c->vm_info.name);
        c->vm_info.name = NULL;
        free(c->socket_path);
        c->socket_path = NULL;
}
