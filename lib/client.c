/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client.c - libmemconv: the VMM side of the memconvd protocol.
 *
 * Theory of operation. One connection carries the requests of every vCPU
 * thread of one VM. Sends need no lock: a SOCK_SEQPACKET datagram is
 * written atomically. Replies are matched to requests by id. There is no
 * reader thread: a waiting caller becomes the "reader" (leader/follower),
 * receives datagrams, and hands each reply to the waiter it belongs to by
 * signalling that waiter's condition variable. When the reader's own reply
 * has arrived it wakes another waiter to take over reading. So a single
 * vCPU pays no thread hand-off at all, and with many vCPUs each waits only
 * for its own answer.
 *
 * A conversion: the vCPU thread sends MemoryFault or Convert, waits for the
 * Decision, applies the decided ranges through the VMM's callback, sends
 * Applied without waiting (the daemon then discards the stale backing off
 * the vCPU's path), and tells the caller to re-enter the guest. If applying
 * fails part way, the ranges already applied are set back before the
 * failure is reported, so KVM and the daemon never disagree.
 *
 * If the connection fails, every waiter gets the error and later calls
 * fail fast with it. The library never prints anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "frame.h"
#include "kvm-compat.h"
#include "macro.h"
#include "memconv.h"
#include "message.h"
#include "client-internal.h"

/**
 * client_wake_reader() - let one waiting thread take over reading
 * @c: the client, locked
 */
static void client_wake_reader(mc_client *c)
{
        for (struct mc_waiter *w = c->waiters; w; w = w->next)
                if (!w->done) {
                        pthread_cond_signal(&w->cond);
                        return;
                }
}

/**
 * client_fail() - the connection is unusable: fail every waiter
 * @c: the client, locked
 * @error: negative errno
 */
void client_fail(mc_client *c, int error)
{
        if (!c->dead)
                c->dead = error;
        client_ring_drop(c);  /* it belongs to the connection */
        for (struct mc_waiter *w = c->waiters; w; w = w->next)
                if (!w->done) {
                        w->error = c->dead;
                        w->done = true;
                        pthread_cond_signal(&w->cond);
                }
}

/**
 * client_dispatch() - hand a received message to the waiter of its id
 * @c: the client, locked
 * @m: the message; ownership passes to the waiter or it is freed
 */
void client_dispatch(mc_client *c, Memconv__Message *m)
{
        struct mc_msg_error err;

        if (mc_message_validate(m, 0, MC_MSG_TO_CLIENT, &err) < 0) {
                memconv__message__free_unpacked(m, NULL);
                client_fail(c, -EPROTO);
                return;
        }
        if (m->body_case == MEMCONV__MESSAGE__BODY_COMMITTED) {
                client_recover_committed(c, m->committed);
                memconv__message__free_unpacked(m, NULL);
                return;
        }
        if (client_lease_message(c, m)) {
                memconv__message__free_unpacked(m, NULL);
                return;
        }
        for (struct mc_waiter *w = c->waiters; w; w = w->next)
                if (w->id == m->id && !w->done) {
                        /* From here until it is remembered and reported, a reconnect waits. */
                        if (m->body_case == MEMCONV__MESSAGE__BODY_DECISION &&
                            m->decision->action == MEMCONV__ACTION__ACTION_APPLY &&
                            w->expect == MEMCONV__MESSAGE__BODY_DECISION)
                                c->applying++;
                        w->reply = m;
                        w->done = true;
                        pthread_cond_signal(&w->cond);
                        return;
                }
        /* Nobody waits for the answer to a LeasedApplied: only a refusal comes. */
        if (m->body_case == MEMCONV__MESSAGE__BODY_REPLY && client_status_errno(m->reply->status) < 0)
                (void) client_recover_refused(c, m->id);
        c->stray++;
        memconv__message__free_unpacked(m, NULL);
}

/**
 * client_unlink() - remove @w from the waiter list
 * @c: the client, locked
 */
static void client_unlink(mc_client *c, struct mc_waiter *w)
{
        for (struct mc_waiter **p = &c->waiters; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        return;
                }
}

void client_spin_merge(mc_client *c, const struct mc_spin *before, const struct mc_spin *after)
{
        /* Counters by difference: other threads may have polled meanwhile. */
        c->spin.hits += after->hits - before->hits;
        c->spin.misses += after->misses - before->misses;
        c->spin.penalties += after->penalties - before->penalties;
        c->spin.spin_ns += after->spin_ns - before->spin_ns;
        c->spin.cur_ns = after->cur_ns;
        c->spin.skip = after->skip;
        c->spin.backoff = after->backoff;
        mc_spin_set_max(&c->spin, c->spin.max_ns);   /* mc_client_set_poll() may have run meanwhile */
}

int client_sock_get(mc_client *c)
{
        c->sock_users++;
        return c->sock;
}

void client_sock_put(mc_client *c)
{
        if (--c->sock_users == 0)
                pthread_cond_broadcast(&c->sock_idle);
}

int client_sock_send_locked(mc_client *c, const Memconv__Message *msg, const int *fds, size_t n_fds)
{
        atomic_fetch_add(&c->sock_sent, 1);
        return mc_frame_send(c->sock, msg, fds, n_fds);
}

int client_sock_send(mc_client *c, unsigned gen, const Memconv__Message *msg, const int *fds, size_t n_fds)
{
        int fd, r;

        pthread_mutex_lock(&c->lock);
        if (c->generation != gen) {
                /* Built for a connection that is gone: its answer could only confuse the new
                 * daemon (an Applied of a decision it never made), and what it carried is
                 * re-sent by the reconnect (Reapplied) or asked again by the caller. */
                pthread_mutex_unlock(&c->lock);
                return -ESTALE;
        }
        fd = client_sock_get(c);
        atomic_fetch_add(&c->sock_sent, 1);
        pthread_mutex_unlock(&c->lock);
        r = mc_frame_send(fd, msg, fds, n_fds);
        pthread_mutex_lock(&c->lock);
        /* Failed here, while the connection is still the one we sent on: a reconnect waiting
         * for us replaces it as soon as the lock is dropped. */
        if (r < 0)
                client_fail(c, r);
        client_sock_put(c);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/**
 * client_recv_stale() - after a receive on the connection of generation @gen
 * (@c locked): whether that connection is being or has been replaced. What
 * it still had queued is then dropped, not handled: a Lease of the old
 * daemon would otherwise outlive client_lease_reset() and be used on the new
 * connection, which never granted it; a Decision's waiter was failed with
 * the old connection; a lost Committed only costs a Reapplied.
 */
static bool client_recv_stale(mc_client *c, unsigned gen, int r, Memconv__Message *m, int *fds, size_t n_fds)
{
        if (c->generation == gen && !c->reconnecting)
                return false;
        if (r >= 0) {
                mc_frame_close_fds(fds, n_fds);
                memconv__message__free_unpacked(m, NULL);
        }
        return true;
}

int client_drain(mc_client *c)
{
        int handled = 0;

        while (!c->reading && !c->dead) {
                Memconv__Message *m = NULL;
                int rfds[MC_FRAME_MAX_FDS];
                size_t n = 0;
                unsigned gen = c->generation;
                int fd, r;

                c->reading = true;
                fd = client_sock_get(c);
                pthread_mutex_unlock(&c->lock);
                r = mc_frame_recv(fd, MSG_DONTWAIT, &m, rfds, &n);
                pthread_mutex_lock(&c->lock);
                client_sock_put(c);
                c->reading = false;
                if (client_recv_stale(c, gen, r, m, rfds, n))
                        break;
                if (r >= 0)
                        mc_frame_close_fds(rfds, n); /* the daemon sends none */
                if (r == -EAGAIN || r == -EWOULDBLOCK)
                        break;
                if (r < 0) {
                        client_fail(c, r == -EMSGSIZE || r == -EBADMSG ? -EPROTO : r);
                        return r;
                }
                client_dispatch(c, m);
                handled++;
        }
        /* A waiter may have been woken while we read: let it read now. */
        client_wake_reader(c);
        return c->dead ? c->dead : handled;
}

/**
 * client_recv() - the reader receives the next datagram, polling first
 * @c: the client, locked; unlocked while receiving
 *
 * The reader polls the socket for the adaptive window of spin.h before it
 * sleeps in recvmsg(): memconvd answers a conversion in a few
 * microseconds, and a vCPU thread that slept meanwhile would have to be
 * woken on its halted CPU, which costs more than the answer. The window
 * and its counters are the client's, kept under the lock; only one thread
 * reads at a time, so it polls with a copy.
 *
 * Return: as mc_frame_recv(); -ESTALE (message dropped) if the connection is
 * being or has been replaced meanwhile (client_recv_stale())
 */
static int client_recv(mc_client *c, Memconv__Message **ret, int fds[MC_FRAME_MAX_FDS], size_t *ret_n)
{
        struct mc_spin spin = c->spin, before = c->spin;
        unsigned gen = c->generation;
        uint64_t start;
        bool hit, may_poll;
        int fd, r;

        /* A thread polling its ring slot is this client's one poller. */
        may_poll = !c->ring_polling;
        fd = client_sock_get(c);
        pthread_mutex_unlock(&c->lock);
        start = mc_spin_now();
        hit = may_poll && mc_spin_poll(&spin, fd, start);
        r = mc_frame_recv(fd, 0, ret, fds, ret_n);
        if (may_poll && !hit)
                mc_spin_waited(&spin, mc_spin_now() - start);
        pthread_mutex_lock(&c->lock);
        client_sock_put(c);
        client_spin_merge(c, &before, &spin);
        if (client_recv_stale(c, gen, r, *ret, fds, *ret_n)) {
                *ret = NULL;
                *ret_n = 0;
                return -ESTALE;
        }
        return r;
}

/**
 * client_call() - send a request and wait for the answer with its id
 * @c: the client
 * @msg: the request; its id is assigned here
 * @fds: fds to pass with it (borrowed) or NULL
 * @n_fds: how many
 * @expect: the body the answer must have
 * @ret_reply: the answer, owned by the caller
 *
 * Return: 0, or a negative errno (connection or protocol failure).
 */
static int client_call(mc_client *c, Memconv__Message *msg, const int *fds, size_t n_fds,
                       Memconv__Message__BodyCase expect, Memconv__Message **ret_reply)
{
        struct mc_waiter w = { .expect = expect };
        struct mc_ring_call call = {};
        bool ring_fallback = false;
        unsigned gen;
        int r;

        pthread_cond_init(&w.cond, NULL);
        pthread_mutex_lock(&c->lock);
        gen = c->generation;
        if (c->dead) {
                r = c->dead;
                pthread_mutex_unlock(&c->lock);
                pthread_cond_destroy(&w.cond);
                return r;
        }
        client_lease_flush(c);  /* reports held back go first: memconvd decides on them */
        w.id = ++c->next_id;
        msg->id = w.id;
        w.next = c->waiters;
        c->waiters = &w;
        if (n_fds == 0 && expect == MEMCONV__MESSAGE__BODY_DECISION && client_ring_request(c, msg, &call)) {
                Memconv__Message *m = NULL;

                pthread_mutex_unlock(&c->lock);
                r = client_ring_wait(c, &call, &m);
                pthread_mutex_lock(&c->lock);
                client_ring_done(c, &call, r > 0);
                ring_fallback = r == 0 && call.polling;
                if (call.generation != c->generation) {
                        /* The ring's connection was replaced meanwhile, failing @w with it:
                         * neither its answer nor its errors are the new connection's. */
                        if (m)
                                memconv__message__free_unpacked(m, NULL);
                } else if (r > 0)
                        client_dispatch(c, m);  /* to us: @w is done */
                else if (r < 0) {
                        if (m)
                                memconv__message__free_unpacked(m, NULL);
                        client_fail(c, r);
                }
                r = 0;
        } else {
                pthread_mutex_unlock(&c->lock);
                r = client_sock_send(c, gen, msg, fds, n_fds);
                pthread_mutex_lock(&c->lock);
        }
        if (r < 0) {
                /* The send failed its connection, and @w with it, already (-ESTALE: the
                 * connection died and was replaced before we could send, and failing the old
                 * one failed @w). Never fail it here: it may be a new one by now. */
                if (!w.done)
                        w.error = r == -ESTALE ? -ENOTCONN : r;
                w.done = true;
        }
        while (!w.done) {
                if (!c->reading) {
                        Memconv__Message *m = NULL;
                        int rfds[MC_FRAME_MAX_FDS];
                        size_t n = 0;

                        c->reading = true;
                        r = client_recv(c, &m, rfds, &n);
                        if (r >= 0)
                                mc_frame_close_fds(rfds, n); /* the daemon sends none */
                        c->reading = false;
                        if (r == -ESTALE) {
                                /* From a connection being replaced, which failed @w: dropped
                                 * (client_recv_stale()). */
                                if (!w.done) {
                                        w.error = -ENOTCONN;
                                        w.done = true;
                                }
                        } else if (r < 0)
                                client_fail(c, r == -EMSGSIZE || r == -EBADMSG ? -EPROTO : r);
                        else
                                client_dispatch(c, m);
                        if (w.done)
                                client_wake_reader(c);
                } else
                        pthread_cond_wait(&w.cond, &c->lock);
        }
        if (ring_fallback)
                client_ring_waited(c, &call);
        client_unlink(c, &w);
        pthread_mutex_unlock(&c->lock);
        pthread_cond_destroy(&w.cond);

        if (!w.reply)
                return w.error ? w.error : -EPROTO;
        if (w.reply->body_case != expect) {
                memconv__message__free_unpacked(w.reply, NULL);
                return -EPROTO;
        }
        *ret_reply = w.reply;
        return 0;
}

/**
 * client_send_async() - send a message nobody waits an answer for
 * Return: 0 or negative errno (the connection is then marked failed)
 */
static int client_send_async(mc_client *c, Memconv__Message *msg)
{
        unsigned gen;
        int r;

        pthread_mutex_lock(&c->lock);
        gen = c->generation;
        client_lease_flush(c);
        if (msg->body_case == MEMCONV__MESSAGE__BODY_APPLIED && client_ring_send_async(c, msg)) {
                pthread_mutex_unlock(&c->lock);
                return 0;
        }
        pthread_mutex_unlock(&c->lock);
        r = client_sock_send(c, gen, msg, NULL, 0);
        /* A failure failed the connection already. -ESTALE: it was replaced before we could
         * send; an Applied is re-sent by the reconnect, as Reapplied. */
        return r == -ESTALE ? -ENOTCONN : r;
}

/**
 * client_status_errno() - the negative errno a reply's status stands for
 * Return: 0 for success
 */
int client_status_errno(const Memconv__Status *s)
{
        if (!s || s->code == MEMCONV__CODE__CODE_OK)
                return 0;
        if (s->errno_value < 0)
                return s->errno_value;
        return mc_code_to_errno(s->code);
}

/**
 * result_fill() - copy a decision's outcome into the caller's result
 */
static void result_fill(struct mc_exit_result *res, enum mc_exit_action action, int error,
                        const Memconv__Status *s)
{
        if (!res)
                return;
        res->action = action;
        res->error = error;
        res->message[0] = 0;
        if (s && s->message)
                snprintf(res->message, sizeof(res->message), "%s", s->message);
}

_public_ int mc_client_connect(const char *socket_path, mc_client **ret)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Memconv__Message msg = MEMCONV__MESSAGE__INIT, *reply = NULL;
        Memconv__Hello hello = MEMCONV__HELLO__INIT;
        _cleanup_close_ int fd = -EBADF;
        mc_client *c;
        int r;

        if (!ret)
                return -EINVAL;
        if (!socket_path)
                socket_path = MC_DEFAULT_SOCKET;
        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->reconnected, NULL);
        pthread_cond_init(&c->sock_idle, NULL);
        client_lease_init(c);
        c->sock = TAKE_FD(fd);
        c->reconnect_ms = MC_RECONNECT_DEFAULT_MS;
        c->spin.max_ns = MC_POLL_DEFAULT_USEC * 1000;
        c->ring_wanted = true;
        c->socket_path = strdup(socket_path);
        if (!c->socket_path) {
                mc_client_free(c);
                return -ENOMEM;
        }

        hello.version = MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
        hello.client = (char *) "libmemconv " PACKAGE_VERSION;
        msg.body_case = MEMCONV__MESSAGE__BODY_HELLO;
        msg.hello = &hello;
        r = client_call(c, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_HELLO_REPLY, &reply);
        if (r >= 0) {
                r = client_status_errno(reply->hello_reply->status);
                if (r >= 0 && reply->hello_reply->version != MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1)
                        r = -EPROTO;
                if (r == -EPROTONOSUPPORT)
                        r = -EPROTO;
                memconv__message__free_unpacked(reply, NULL);
        }
        if (r < 0) {
                mc_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

_public_ mc_client *mc_client_free(mc_client *c)
{
        if (!c)
                return NULL;
        if (c->attached && !c->dead)
                (void) mc_client_detach(c);
        client_lease_free(c);  /* first: its flusher thread may use the socket */
        pthread_mutex_lock(&c->lock);
        client_ring_drop(c);
        pthread_mutex_unlock(&c->lock);
        safe_close(c->sock);
        client_recover_free(c);
        pthread_cond_destroy(&c->reconnected);
        pthread_cond_destroy(&c->sock_idle);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

_public_ void mc_client_set_reconnect(mc_client *c, unsigned timeout_ms)
{
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->reconnect_ms = timeout_ms;
        pthread_mutex_unlock(&c->lock);
}

_public_ int mc_client_set_poll(mc_client *c, unsigned max_usec)
{
        if (!c || max_usec > MC_SPIN_MAX_USEC_LIMIT)
                return -EINVAL;
        pthread_mutex_lock(&c->lock);
        mc_spin_set_max(&c->spin, (uint64_t) max_usec * 1000);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

_public_ void mc_client_poll_stats(mc_client *c, struct mc_poll_stats *ret)
{
        if (!ret)
                return;
        *ret = (struct mc_poll_stats) {};
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        ret->max_usec = c->spin.max_ns / 1000;
        ret->window_usec = c->spin.cur_ns / 1000;
        ret->hits = c->spin.hits;
        ret->misses = c->spin.misses;
        ret->poll_usec = c->spin.spin_ns / 1000;
        pthread_mutex_unlock(&c->lock);
}

_public_ int mc_client_fd(const mc_client *c)
{
        /* A reconnect replaces it (under the lock, which this const accessor cannot take). */
        return c ? __atomic_load_n(&c->sock, __ATOMIC_RELAXED) : -EBADF;
}

_public_ void mc_client_set_apply(mc_client *c, mc_apply_fn fn, void *userdata)
{
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->apply = fn;
        c->apply_userdata = userdata;
        pthread_mutex_unlock(&c->lock);
}

/**
 * client_simple_call() - send a request answered by a plain Reply
 * Return: 0 or the negative errno of the refusal / failure
 */
int client_simple_call(mc_client *c, Memconv__Message *msg, const int *fds, size_t n_fds)
{
        Memconv__Message *reply = NULL;
        int r;

        r = client_call(c, msg, fds, n_fds, MEMCONV__MESSAGE__BODY_REPLY, &reply);
        if (r < 0)
                return r;
        r = client_status_errno(reply->reply->status);
        memconv__message__free_unpacked(reply, NULL);
        return r;
}

_public_ int mc_client_attach(mc_client *c, const struct mc_vm_info *info, uint64_t *ret_vm_id)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT, *reply = NULL;
        Memconv__Attach a = MEMCONV__ATTACH__INIT;
        const Memconv__AttachReply *ar;
        int r;

        if (!c || !info || !info->name)
                return -EINVAL;
        if (c->attached)
                return -EEXIST;
        r = client_recover_remember_vm(c, info);
        if (r < 0)
                return r;
        a.uuid.data = (uint8_t *) info->uuid;
        a.uuid.len = sizeof(info->uuid);
        a.name = (char *) info->name;
        a.cc_type = (Memconv__CcType) info->cc_type;
        a.arch = (Memconv__Arch) info->arch;
        msg.body_case = MEMCONV__MESSAGE__BODY_ATTACH;
        msg.attach = &a;

        r = client_call(c, &msg, NULL, 0, MEMCONV__MESSAGE__BODY_ATTACH_REPLY, &reply);
        if (r < 0)
                return r;
        ar = reply->attach_reply;
        r = client_status_errno(ar->status);
        if (r >= 0) {
                c->attached = true;
                c->vm_id = ar->vm_id;
                if (ar->token.len == sizeof(c->token))
                        memcpy(c->token, ar->token.data, sizeof(c->token));
                if (ret_vm_id)
                        *ret_vm_id = ar->vm_id;
        }
        memconv__message__free_unpacked(reply, NULL);
        if (r >= 0)
                (void) client_ring_start(c);  /* refused: everything goes on the socket */
        return r;
}

_public_ int mc_client_detach(mc_client *c)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__Detach d = MEMCONV__DETACH__INIT;
        int r;

        if (!c)
                return -EINVAL;
        msg.body_case = MEMCONV__MESSAGE__BODY_DETACH;
        msg.detach = &d;
        r = client_simple_call(c, &msg, NULL, 0);
        if (r >= 0) {
                c->attached = false;
                pthread_mutex_lock(&c->lock);
                client_lease_reset(c);
                c->lease.wanted = false;
                pthread_mutex_unlock(&c->lock);
        }
        return r;
}

_public_ int mc_client_register_region(mc_client *c, const struct mc_region_info *ri)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__RegisterRegion rr = MEMCONV__REGISTER_REGION__INIT;
        int fds[2], r;

        if (!c || !ri || ri->guest_memfd < 0)
                return -EINVAL;
        rr.slot = ri->slot;
        rr.gpa = ri->gpa;
        rr.size = ri->size;
        rr.guest_memfd_offset = ri->guest_memfd_offset;
        rr.has_shared = ri->shared_fd >= 0;
        rr.shared_offset = rr.has_shared ? ri->shared_offset : 0;
        rr.initial = ri->initial_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE
                                         : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        msg.body_case = MEMCONV__MESSAGE__BODY_REGISTER_REGION;
        msg.register_region = &rr;
        fds[0] = ri->guest_memfd;
        fds[1] = ri->shared_fd;
        r = client_simple_call(c, &msg, fds, rr.has_shared ? 2 : 1);
        if (r >= 0)
                r = client_recover_remember_region(c, ri);
        return r;
}

_public_ int mc_client_unregister_region(mc_client *c, uint32_t slot)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__UnregisterRegion ur = MEMCONV__UNREGISTER_REGION__INIT;
        int r;

        if (!c)
                return -EINVAL;
        ur.slot = slot;
        msg.body_case = MEMCONV__MESSAGE__BODY_UNREGISTER_REGION;
        msg.unregister_region = &ur;
        r = client_simple_call(c, &msg, NULL, 0);
        if (r >= 0)
                client_recover_forget_region(c, slot);
        return r;
}

/**
 * client_connection_lost() - whether @r means the daemon went away
 */
static bool client_connection_lost(int r)
{
        return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN || r == -ECONNREFUSED || r == -ENOENT;
}

/**
 * client_report_applied() - tell the daemon how applying a decision went
 * Return: 0 or negative errno
 */
static int client_report_applied(mc_client *c, uint64_t decision_id, int error)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__Applied a = MEMCONV__APPLIED__INIT;

        a.decision_id = decision_id;
        a.ok = error >= 0;
        a.errno_value = error < 0 ? error : 0;
        msg.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
        msg.applied = &a;
        return client_send_async(c, &msg);
}

/**
 * client_apply() - apply a decision's ranges, undoing them on failure
 * @c: the client
 * @d: the decision (action APPLY)
 *
 * Return: 0, or the callback's negative errno after rolling back.
 */
static int client_apply(mc_client *c, const Memconv__Decision *d)
{
        bool to_private = d->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        mc_apply_fn fn;
        void *ud;
        size_t i;
        int r = 0;

        pthread_mutex_lock(&c->lock);
        fn = c->apply;
        ud = c->apply_userdata;
        pthread_mutex_unlock(&c->lock);
        if (!fn)
                return -ENOSYS;

        for (i = 0; i < d->n_ranges; i++) {
                r = fn(ud, d->ranges[i]->gpa, d->ranges[i]->size, to_private);
                if (r >= 0)
                        continue;
                /* Put back what was applied; best effort, KVM accepted it once. */
                while (i-- > 0)
                        (void) fn(ud, d->ranges[i]->gpa, d->ranges[i]->size, !to_private);
                return r < 0 ? r : -EIO;
        }
        return 0;
}

/**
 * client_decide() - send a conversion request, act on the decision
 * @c: the client
 * @msg: MemoryFault or Convert request
 * @ret_result: optional detail
 * @ret_refused: optional; set true when the daemon refused (ACTION_FAIL),
 *               as opposed to a connection or apply failure
 *
 * Return: an enum mc_exit_action, or a negative errno: the daemon's refusal
 * (ACTION_FAIL), a connection failure, or the apply callback's error.
 */
static int client_decide(mc_client *c, Memconv__Message *msg, struct mc_exit_result *ret_result,
                         bool *ret_refused)
{
        Memconv__Message *reply = NULL;
        const Memconv__Decision *d;
        uint64_t track = 0, gpa, size;
        int r, error;

        if (msg->body_case == MEMCONV__MESSAGE__BODY_MEMORY_FAULT) {
                const Memconv__MemoryFault *f = msg->memory_fault;

                gpa = f->gpa;
                size = f->size;
                /* Only a conversion (no flag but PRIVATE) can go under the lease. */
                if (!(f->flags & ~0xfULL))  /* R/W/X and PRIVATE, as memconvd handles them */
                        r = client_lease_try(c, f->vcpu, gpa, size, f->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE, true,
                                             MC_SOURCE_UNSPECIFIED);
                else
                        r = 0;
        } else {
                const Memconv__Convert *cv = msg->convert;

                gpa = cv->gpa;
                size = cv->size;
                r = client_lease_try(c, cv->vcpu, gpa, size, cv->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE, false,
                                     cv->source);
        }
        if (r != 0) {
                /* Done under the lease (1), or the attribute callback failed (nothing changed). */
                result_fill(ret_result, r > 0 ? MC_EXIT_RETRY : MC_EXIT_NOT_HANDLED, r < 0 ? r : 0, NULL);
                return r > 0 ? MC_EXIT_RETRY : r;
        }
        /* Kept off the lease from now until memconvd has finished with it. */
        track = client_lease_track_request(c, gpa, size);

        for (;;) {
                unsigned gen;

                pthread_mutex_lock(&c->lock);
                gen = c->generation;
                pthread_mutex_unlock(&c->lock);
                r = client_call(c, msg, NULL, 0, MEMCONV__MESSAGE__BODY_DECISION, &reply);
                if (r >= 0 || !client_connection_lost(r) || !c->attached || !c->reconnect_ms)
                        break;
                /* The daemon went away before answering: ask the next one. */
                r = client_recover_reconnect(c, gen);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                client_lease_request_done(c, track, 0);
                result_fill(ret_result, MC_EXIT_NOT_HANDLED, r, NULL);
                return r;
        }
        d = reply->decision;
        error = client_status_errno(d->status);
        /* Applied (or rolled back) decisions stay tracked until Settled; before Applied is sent. */
        client_lease_request_done(c, track, d->action == MEMCONV__ACTION__ACTION_APPLY ? d->decision_id : 0);

        switch (d->action) {
        case MEMCONV__ACTION__ACTION_RETRY:
                r = MC_EXIT_RETRY;
                break;
        case MEMCONV__ACTION__ACTION_APPLY:
                r = client_apply(c, d);
                /* Kept until Committed: re-sent if the daemon dies before making it durable. */
                if (r >= 0 && client_recover_applied(c, d, msg) < 0)
                        r = -ENOMEM;
                (void) client_report_applied(c, d->decision_id, r);
                client_applying_done(c);
                if (r >= 0)
                        r = MC_EXIT_RETRY;
                else
                        error = r;
                break;
        case MEMCONV__ACTION__ACTION_INJECT_FAULT:
                r = MC_EXIT_INJECT_FAULT;
                break;
        case MEMCONV__ACTION__ACTION_STOP_VM:
                r = MC_EXIT_STOP_VM;
                break;
        case MEMCONV__ACTION__ACTION_NOT_HANDLED:
                r = MC_EXIT_NOT_HANDLED;
                break;
        case MEMCONV__ACTION__ACTION_FAIL:
                r = error < 0 ? error : -EPROTO;
                if (ret_refused && error < 0)
                        *ret_refused = true;
                break;
        default:
                r = -EPROTO;
                break;
        }
        result_fill(ret_result, r >= 0 ? (enum mc_exit_action) r : MC_EXIT_NOT_HANDLED, error,
                    d->status);
        memconv__message__free_unpacked(reply, NULL);
        return r;
}

/**
 * client_convert() - mc_client_convert(), telling refusals apart
 * @ret_refused: see client_decide()
 */
static int client_convert(mc_client *c, unsigned vcpu, uint64_t gpa, uint64_t size,
                          bool to_private, enum mc_convert_source source,
                          enum mc_page_size page_size, struct mc_exit_result *ret_result,
                          bool *ret_refused)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__Convert cv = MEMCONV__CONVERT__INIT;

        if (!c)
                return -EINVAL;
        cv.vcpu = vcpu;
        cv.gpa = gpa;
        cv.size = size;
        cv.to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        cv.source = (Memconv__ConvertSource) source;
        cv.page_size = (Memconv__PageSize) page_size;
        msg.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        msg.convert = &cv;
        return client_decide(c, &msg, ret_result, ret_refused);
}

_public_ int mc_client_convert(mc_client *c, unsigned vcpu, uint64_t gpa, uint64_t size,
                               bool to_private, enum mc_convert_source source,
                               enum mc_page_size page_size, struct mc_exit_result *ret_result)
{
        return client_convert(c, vcpu, gpa, size, to_private, source, page_size, ret_result, NULL);
}

_public_ int mc_client_fault(mc_client *c, unsigned vcpu, uint64_t gpa, uint64_t size, uint64_t flags,
                             const void *syndrome, size_t syndrome_len,
                             struct mc_exit_result *ret_result)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__MemoryFault mf = MEMCONV__MEMORY_FAULT__INIT;

        if (!c || syndrome_len > MC_SYNDROME_MAX || (syndrome_len > 0 && !syndrome))
                return -EINVAL;
        mf.vcpu = vcpu;
        mf.gpa = gpa;
        mf.size = size;
        mf.flags = flags;
        mf.syndrome.data = (uint8_t *) syndrome;
        mf.syndrome.len = syndrome_len;
        msg.body_case = MEMCONV__MESSAGE__BODY_MEMORY_FAULT;
        msg.memory_fault = &mf;
        return client_decide(c, &msg, ret_result, NULL);
}

/**
 * hypercall_ret() - what the guest sees in RAX for a refused conversion
 * Return: the negative KVM error code
 */
static int64_t hypercall_ret(int error)
{
        switch (error) {
        case -EPERM:
        case -EACCES:
                return -KVM_EPERM;
        case -EINVAL:
        case -ERANGE:
                return -KVM_EINVAL;
        default:
                return -KVM_EFAULT;
        }
}

_public_ int mc_handle_exit(mc_client *c, unsigned vcpu, struct kvm_run *run,
                            struct mc_exit_result *ret_result)
{
        if (!c || !run)
                return -EINVAL;

        if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
                const struct mc_kvm_memory_fault *mf = mc_kvm_run_memory_fault(run);

                return mc_client_fault(c, vcpu, mf->gpa, mf->size, mf->flags, NULL, 0, ret_result);
        }

        if (run->exit_reason == KVM_EXIT_HYPERCALL && run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
                uint64_t gpa = run->hypercall.args[0], npages = run->hypercall.args[1];
                uint64_t attrs = run->hypercall.args[2];
                uint64_t hint = attrs & 0xf;
                bool refused = false;
                int r;

                /* KVM has checked these; a VMM feeding us its own decoding may not have. */
                if (npages == 0 || npages > UINT64_MAX / 4096ULL ||
                    (attrs & ~(uint64_t) (KVM_MAP_GPA_RANGE_ENCRYPTED | 0xf)) || hint > MC_PAGE_1G) {
                        run->hypercall.ret = (uint64_t) -KVM_EINVAL;
                        result_fill(ret_result, MC_EXIT_RETRY, -EINVAL, NULL);
                        return MC_EXIT_RETRY;
                }
                r = client_convert(c, vcpu, gpa, npages * 4096ULL,
                                   attrs & KVM_MAP_GPA_RANGE_ENCRYPTED,
                                   MC_SOURCE_KVM_HC_MAP_GPA_RANGE, (enum mc_page_size) hint,
                                   ret_result, &refused);
                if (r == MC_EXIT_RETRY) {
                        run->hypercall.ret = 0;
                        return r;
                }
                if (r >= 0) {
                        /* inject / stop: the guest must not see success */
                        run->hypercall.ret = (uint64_t) -KVM_EPERM;
                        return r;
                }
                run->hypercall.ret = (uint64_t) hypercall_ret(r);
                /* A refusal is the guest's answer: it goes on with the error in RAX.
                 * A lost daemon or failed apply is the VMM's problem: report it. */
                if (refused) {
                        if (ret_result)
                                ret_result->action = MC_EXIT_RETRY;
                        return MC_EXIT_RETRY;
                }
                return r;
        }

        result_fill(ret_result, MC_EXIT_NOT_HANDLED, 0, NULL);
        return MC_EXIT_NOT_HANDLED;
}
