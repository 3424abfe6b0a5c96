/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session.c - VMM connections: accept, authenticate, receive, validate,
 * dispatch, answer.
 *
 * Peers are authenticated once, at accept, with SO_PEERCRED: root, the
 * daemon's own uid and members of the configured VMM group may attach. A
 * refused peer gets PERMISSION_DENIED in answer to its first message and is
 * disconnected. Every datagram then goes through mc_frame_recv() (size cap
 * before decoding, fds close-on-exec) and mc_message_validate() (type table,
 * direction, fields, fd counts) before the handler of its type runs. A peer
 * that keeps sending frames that do not decode is disconnected.
 *
 * Each wake-up reads at most SESSION_RECV_BUDGET datagrams so one busy VMM
 * cannot starve the others.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "convert.h"
#include "frame.h"
#include "log.h"
#include "macro.h"
#include "outq.h"
#include "persist.h"
#include "policy.h"
#include "registry.h"
#include "reqring.h"
#include "ring.h"
#include "session.h"
#include "vm.h"

#define SESSION_RECV_BUDGET 64
/* Ring entries one VMM gets handled per loop iteration. sd-event dispatches one
 * source per iteration and every iteration reads every ring: with many VMMs a
 * larger share would starve the sockets, timers and the admin socket. */
#define SESSION_RING_BUDGET 8
/* Ring entries handled per loop iteration, over all VMMs: about what one
 * dispatched socket source may read, so that rings do not starve the
 * sources sd-event dispatches one per iteration (the admin socket among them). */
#define RING_ITERATION_BUDGET 64
#define SESSION_OUTQ_MAX 1024
#define SESSION_PROTOCOL_ERRORS_MAX 16

struct session {
        LIST_ENTRY(session) link;
        struct daemon *daemon;
        int fd;                      /* connected socket, owned */
        sd_event_source *source;
        struct ucred cred;
        bool refused;                /* credentials not allowed: answer once, then close */
        bool hello_done;
        bool broken;                 /* a send failed: freed on the next wake-up */
        struct vm *vm;               /* attached VM, owned by the registry */
        struct outq outq;            /* answers the socket had no room for */
        unsigned protocol_errors;
        struct reqring *ring;        /* the VMM's request ring, if it set one up */
        uint64_t received;           /* datagrams received (orders ring entries after them) */
        uint64_t sent;               /* datagrams sent or queued, plus queue flushes (the ring's sock_out) */
        uint64_t ring_round;         /* the last round of sessions_ring_run() that served this ring */
};

/**
 * session_update_events() - poll for EPOLLOUT only while output is queued
 */
static void session_update_events(struct session *s)
{
        (void) sd_event_source_set_io_events(s->source, EPOLLIN | (outq_pending(&s->outq) ? EPOLLOUT : 0));
}

/**
 * session_send() - send @m now, or queue it behind earlier answers
 * Return: 0, or negative errno (the session is then marked broken)
 */
static int session_send(struct session *s, const Memconv__Message *m)
{
        int r;

        if (s->broken)
                return -ECONNRESET;
        r = outq_send(&s->outq, s->fd, &m->base);
        if (r >= 0 && s->ring)
                reqring_sock_out(s->ring, ++s->sent);  /* the client reads its socket when it sees this */
        if (r == -ENOBUFS)
                log_warning("VMM pid %d does not read its answers; disconnecting", (int) s->cred.pid);
        if (r < 0 && r != -EMSGSIZE) {
                s->broken = true;
                return r;
        }
        session_update_events(s);
        return r;
}

/**
 * status_from() - a wire Status from an error (or OK when @e is NULL)
 */
static void status_from(Memconv__Status *st, const struct mc_msg_error *e)
{
        memconv__status__init(st);
        if (!e)
                return;
        st->code = e->code;
        st->errno_value = e->error;
        st->message = (char *) e->text;
}

int session_send_decision(struct session *s, uint64_t id, const struct mc_msg_error *err, int action,
                          bool to_private, const struct mc_plan *plan, uint64_t decision_id)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Decision d = MEMCONV__DECISION__INIT;
        Memconv__Status st;
        _cleanup_free_ Memconv__Range *ranges = NULL;
        _cleanup_free_ Memconv__Range **rp = NULL;
        size_t n = plan ? plan->n_ranges : 0;

        status_from(&st, err);
        d.status = &st;
        d.action = (Memconv__Action) action;
        d.to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        d.decision_id = decision_id;
        if (n > 0) {
                ranges = calloc(n, sizeof(*ranges));
                rp = calloc(n, sizeof(*rp));
                if (!ranges || !rp)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        memconv__range__init(&ranges[i]);
                        ranges[i].gpa = plan->ranges[i].gpa;
                        ranges[i].size = plan->ranges[i].size;
                        rp[i] = &ranges[i];
                }
                d.n_ranges = n;
                d.ranges = rp;
        }
        m.id = id;
        m.body_case = MEMCONV__MESSAGE__BODY_DECISION;
        m.decision = &d;
        if (s->ring && !s->broken && reqring_reply(s->ring, id, &m.base))
                return 0;
        return session_send(s, &m);
}

/**
 * session_reply_error() - answer request @req with a refusal, in the
 * answer type its sender waits for
 */
static int session_reply_error(struct session *s, const Memconv__Message *req, const struct mc_msg_error *e)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__HelloReply hr = MEMCONV__HELLO_REPLY__INIT;
        Memconv__AttachReply ar = MEMCONV__ATTACH_REPLY__INIT;
        Memconv__Reply rp = MEMCONV__REPLY__INIT;
        Memconv__Status st;

        status_from(&st, e);
        m.id = req ? req->id : 0;
        switch (req ? req->body_case : MEMCONV__MESSAGE__BODY__NOT_SET) {
        case MEMCONV__MESSAGE__BODY_HELLO:
                hr.status = &st;
                hr.version = MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
                m.body_case = MEMCONV__MESSAGE__BODY_HELLO_REPLY;
                m.hello_reply = &hr;
                break;
        case MEMCONV__MESSAGE__BODY_ATTACH:
                ar.status = &st;
                m.body_case = MEMCONV__MESSAGE__BODY_ATTACH_REPLY;
                m.attach_reply = &ar;
                break;
        case MEMCONV__MESSAGE__BODY_MEMORY_FAULT:
        case MEMCONV__MESSAGE__BODY_CONVERT:
                return session_send_decision(s, m.id, e, MEMCONV__ACTION__ACTION_FAIL, false, NULL, 0);
        default:
                rp.status = &st;
                m.body_case = MEMCONV__MESSAGE__BODY_REPLY;
                m.reply = &rp;
                break;
        }
        return session_send(s, &m);
}

/**
 * session_refuse() - answer @m with a refusal built from a format
 * Return: as session_send()
 */
static int session_refuse(struct session *s, const Memconv__Message *m, Memconv__Code code, int error,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int session_refuse(struct session *s, const Memconv__Message *m, Memconv__Code code, int error,
                          const char *fmt, ...)
{
        struct mc_msg_error e = { .code = code, .error = error };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(e.text, sizeof(e.text), fmt, ap);
        va_end(ap);
        return session_reply_error(s, m, &e);
}

int session_send_committed(struct session *s, const uint64_t *ids, size_t n)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Committed c = MEMCONV__COMMITTED__INIT;
        uint64_t dec[4096], seq[4096];
        int r = 0;

        /* Split so each message stays far below the frame cap; lease seqs carry LEASE_ACK_FLAG. */
        for (size_t off = 0; off < n && r >= 0; off += 4096) {
                size_t chunk = n - off < 4096 ? n - off : 4096;

                c.n_decision_ids = c.n_lease_seqs = 0;
                for (size_t i = off; i < off + chunk; i++) {
                        if (ids[i] & LEASE_ACK_FLAG)
                                seq[c.n_lease_seqs++] = ids[i] & ~LEASE_ACK_FLAG;
                        else
                                dec[c.n_decision_ids++] = ids[i];
                }
                c.decision_ids = dec;
                c.lease_seqs = seq;
                m.body_case = MEMCONV__MESSAGE__BODY_COMMITTED;
                m.committed = &c;
                r = session_send(s, &m);
        }
        return r;
}

int session_send_lease(struct session *s, const Memconv__Lease *l)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;

        m.body_case = MEMCONV__MESSAGE__BODY_LEASE;
        m.lease = (Memconv__Lease *) l;
        return session_send(s, &m);
}

int session_send_settled(struct session *s, const uint64_t *decisions, size_t n_decisions, const uint64_t *seqs,
                         size_t n_seqs)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Settled st = MEMCONV__SETTLED__INIT;
        int r = 0;

        /* 4096 ids of each kind per message keep it far below the frame cap. */
        for (size_t od = 0, os = 0; (od < n_decisions || os < n_seqs) && r >= 0;) {
                st.n_decision_ids = n_decisions - od < 4096 ? n_decisions - od : 4096;
                st.decision_ids = (uint64_t *) decisions + od;
                st.n_lease_seqs = n_seqs - os < 4096 ? n_seqs - os : 4096;
                st.lease_seqs = (uint64_t *) seqs + os;
                od += st.n_decision_ids;
                os += st.n_lease_seqs;
                m.body_case = MEMCONV__MESSAGE__BODY_SETTLED;
                m.settled = &st;
                r = session_send(s, &m);
        }
        return r;
}

int session_send_error(struct session *s, uint64_t id, const struct mc_msg_error *e)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Reply rp = MEMCONV__REPLY__INIT;
        Memconv__Status st;

        status_from(&st, e);
        rp.status = &st;
        m.id = id;
        m.body_case = MEMCONV__MESSAGE__BODY_REPLY;
        m.reply = &rp;
        return session_send(s, &m);
}

int session_send_ok(struct session *s, uint64_t id)
{
        return session_send_error(s, id, NULL);  /* no error: an OK status */
}

/* ------------------------------------------------------------------ handlers */

static int handle_hello(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        Memconv__Message out = MEMCONV__MESSAGE__INIT;
        Memconv__HelloReply hr = MEMCONV__HELLO_REPLY__INIT;
        Memconv__Status st;
        struct mc_msg_error e;

        if (s->hello_done)
                return session_refuse(s, m, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                                                "hello: sent twice on one connection");
        if (m->hello->version != MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1) {
                mc_error_set(&e, MEMCONV__CODE__CODE_VERSION_MISMATCH, -EPROTONOSUPPORT,
                             "hello: protocol version %" PRIu32 " is not supported; memconvd %s speaks version 1",
                             m->hello->version, PACKAGE_VERSION);
                return session_reply_error(s, m, &e);
        }
        s->hello_done = true;
        status_from(&st, NULL);
        hr.status = &st;
        hr.version = MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
        hr.server = (char *) "memconvd " PACKAGE_VERSION;
        hr.max_frame = MC_FRAME_MAX;
        out.id = m->id;
        out.body_case = MEMCONV__MESSAGE__BODY_HELLO_REPLY;
        out.hello_reply = &hr;
        return session_send(s, &out);
}

/**
 * uuid_unparse_lower_() - 16 bytes to the 36-character lower-case form
 */
static void uuid_unparse_lower_(const uint8_t u[16], char out[37])
{
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int handle_attach(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__Attach *a = m->attach;
        struct domain_reg *reg = NULL;
        struct vm *vm;
        int r;

        if (s->vm)
                return session_refuse(s, m, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                                                "attach: this connection already has VM %s attached",
                                                                s->vm->name);
        vm = vm_find_uuid(s->daemon, a->uuid.data, true);
        if (vm)
                return session_refuse(s, m, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                      "attach: VM %s is attached by another connection (pid %d)",
                                      vm->uuid_str, (int) vm->pid);
        vm = a->token.len > 0 ? vm_find_uuid(s->daemon, a->uuid.data, false) : NULL;
        if (a->token.len > 0 && (!vm || memcmp(a->token.data, vm->token, sizeof(vm->token)) != 0 ||
                                 vm->uid != s->cred.uid))
                return session_refuse(s, m, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                      "attach: the token does not resume any detached instance of this VM "
                                      "owned by uid %u", (unsigned) s->cred.uid);
        if (!vm && s->daemon->config.require_registration) {
                char uuid[37];

                uuid_unparse_lower_(a->uuid.data, uuid);
                reg = registry_find(s->daemon, uuid);
                if (!reg)
                        log_notice("Refusing VM %s from pid %d: not registered by libvirt", uuid, (int) s->cred.pid);
                if (!reg)
                        return session_refuse(s, m, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                              "attach: VM %s is not registered by libvirt (memconvd-libvirt-hook at "
                                              "prepare begin) and RequireRegistration=yes", uuid);
        }
        if (!vm) {
                char uuid[37], why[256];
                const char *plugin;
                struct mc_policy_vm pv;

                uuid_unparse_lower_(a->uuid.data, uuid);
                if (!reg)
                        reg = registry_find(s->daemon, uuid);
                pv = (struct mc_policy_vm) {
                        .uuid = uuid,
                        .name = a->name,
                        .cc_type = a->cc_type,
                        .uid = (uint32_t) s->cred.uid,
                        .pid = (int32_t) s->cred.pid,
                        .registered = reg != NULL,
                        .registered_name = reg ? reg->name : NULL,
                };
                r = policy_chain_attach(s->daemon->policy, &pv, why, sizeof(why), &plugin);
                if (r < 0) {
                        log_notice("Refusing VM %s (%s) from pid %d: policy plugin %s: %s", a->name, uuid,
                                   (int) s->cred.pid, plugin, why);
                        return session_refuse(s, m, MEMCONV__CODE__CODE_POLICY_REFUSED, r,
                                              "attach: policy plugin %s refused VM %s: %s", plugin, uuid, why);
                }
        }
        if (!vm) {
                struct vm *o;
                unsigned n = 0;

                LIST_FOREACH(o, &s->daemon->vms, link)
                        n += o->uid == s->cred.uid;
                if (n >= s->daemon->config.max_vms_per_uid) {
                        log_notice("Refusing a VM for uid %u: it has %u VM instances (VMsPerUID=%u)",
                                   (unsigned) s->cred.uid, n, s->daemon->config.max_vms_per_uid);
                        return session_refuse(s, m, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOSPC,
                                              "attach: uid %u already has %u VMs (VMsPerUID); forget detached "
                                              "ones with memconvctl forget", (unsigned) s->cred.uid, n);
                }
        }
        if (vm) {
                vm->state = VM_ATTACHED;
                vm->session = s;
                vm->pid = s->cred.pid;
                vm->attached_usec = daemon_now();
                log_info("VM %s (%s) resumed by pid %d", vm->name, vm->uuid_str, (int) s->cred.pid);
        } else {
                r = vm_new(s->daemon, s, a->uuid.data, a->name, a->cc_type, a->arch, s->cred.uid, s->cred.pid, &vm);
                if (r < 0)
                        return session_refuse(s, m, mc_code_from_errno(r), r, "attach: cannot create VM");
                log_info("VM %s (%s) attached by pid %d uid %u: id %" PRIu64 ", cc type %s", vm->name,
                         vm->uuid_str, (int) s->cred.pid, (unsigned) s->cred.uid, vm->id,
                         protobuf_c_enum_descriptor_get_value(&memconv__cc_type__descriptor, a->cc_type)->name);
                if (reg)
                        registry_apply_policy(vm, reg);
                s->vm = vm;
                /* A new VM is answered once its journal exists: its token must survive us. */
                if (persist_vm_created(vm, m->id))
                        return 0;
        }
        s->vm = vm;
        return session_send_attach_reply(s, m->id);
}

int session_send_attach_reply(struct session *s, uint64_t id)
{
        Memconv__Message out = MEMCONV__MESSAGE__INIT;
        Memconv__AttachReply ar = MEMCONV__ATTACH_REPLY__INIT;
        Memconv__Status st;

        status_from(&st, NULL);
        ar.status = &st;
        ar.vm_id = s->vm->id;
        ar.token.data = s->vm->token;
        ar.token.len = sizeof(s->vm->token);
        out.id = id;
        out.body_case = MEMCONV__MESSAGE__BODY_ATTACH_REPLY;
        out.attach_reply = &ar;
        return session_send(s, &out);
}

static int handle_detach(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        /* Answered (and done) once its last changes are durable: then nothing is lost. */
        persist_detach(s->vm, m->id);
        return 0;
}

void session_vm_detached(struct session *s)
{
        if (!s || !s->vm)
                return;
        vm_detach(s->vm, "the VMM detached");
        s->vm = NULL;
        /* The ring stays, as the connection does: entries the VMM queued before it
         * saw the detach are answered NOT_ATTACHED there, as on the socket. */
}

static int handle_ring_setup(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        struct mc_msg_error e;

        if (!s->daemon->config.ring)
                return session_refuse(s, m, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                      "ring-setup: request rings are turned off here (RequestRing=no)");
        if (s->ring)
                return session_refuse(s, m, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                      "ring-setup: this connection has a request ring already");
        if (reqring_new(fds[0], &s->ring, &e) < 0)
                return session_reply_error(s, m, &e);
        reqring_sock_out(s->ring, s->sent);
        log_debug("VMM pid %d: VM %s uses a request ring", (int) s->cred.pid, s->vm->name);
        return session_send_ok(s, m->id);
}

static int handle_ring_kick(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        /* Nothing to answer: the loop reads every ring after each wake-up. */
        if (s->ring)
                reqring_kicked(s->ring);
        return 0;
}

static int handle_register_region(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__RegisterRegion *rr = m->register_region;
        struct mc_msg_error e;
        int r;

        if (s->vm->n_regions >= s->daemon->config.max_regions_per_vm)
                return session_refuse(s, m, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOSPC,
                                      "register-region: VM %s already has %zu regions (RegionsPerVM)", s->vm->name,
                                      s->vm->n_regions);

        r = vm_region_add(s->vm, rr->slot, rr->gpa, rr->size, fds[0], rr->guest_memfd_offset,
                          rr->has_shared ? fds[1] : -EBADF, rr->shared_offset,
                          rr->initial == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE, &e);
        if (r < 0)
                return session_reply_error(s, m, &e);
        fds[0] = fds[1] = -EBADF; /* the region owns them now */
        return session_send_ok(s, m->id);
}

static int handle_unregister_region(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        struct mc_msg_error e;

        if (vm_region_remove(s->vm, m->unregister_region->slot, &e) < 0)
                return session_reply_error(s, m, &e);
        return session_send_ok(s, m->id);
}

static int handle_memory_fault(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__MemoryFault *f = m->memory_fault;
        struct conv_request req = {
                .id = m->id,
                .vcpu = f->vcpu,
                .implicit = true,
                .fault_flags = f->flags,
                .to_private = f->flags & (1ULL << 3), /* KVM_MEMORY_EXIT_FLAG_PRIVATE */
                .gpa = f->gpa,
                .size = f->size,
                .received_usec = daemon_now(),
                .rx = ++s->vm->n_rx,
        };

        return convert_request(s->vm, s, &req);
}

static int handle_convert(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__Convert *c = m->convert;
        struct conv_request req = {
                .id = m->id,
                .vcpu = c->vcpu,
                .source = c->source,
                .page_size = c->page_size,
                .to_private = c->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE,
                .gpa = c->gpa,
                .size = c->size,
                .received_usec = daemon_now(),
                .rx = ++s->vm->n_rx,
        };

        return convert_request(s->vm, s, &req);
}

static int handle_applied(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__Applied *a = m->applied;
        struct mc_msg_error e;

        if (convert_applied(s->vm, a->decision_id, a->ok, a->errno_value, &e) < 0) {
                log_warning("VM %s: %s", s->vm->name, e.text);
                return session_reply_error(s, m, &e);
        }
        return 0;
}

static int handle_reapplied(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__Reapplied *ra = m->reapplied;
        struct conv_request req = {
                .id = ra->request_id,
                .vcpu = ra->vcpu,
                .implicit = ra->implicit,
                .source = ra->source,
                .to_private = ra->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE,
                .received_usec = daemon_now(),
        };
        uint64_t (*ranges)[2] = calloc(ra->n_ranges, sizeof(*ranges));
        struct mc_msg_error e;
        int r;

        if (!ranges)
                return session_refuse(s, m, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        for (size_t i = 0; i < ra->n_ranges; i++) {
                ranges[i][0] = ra->ranges[i]->gpa;
                ranges[i][1] = ra->ranges[i]->size;
        }
        r = convert_reapplied(s->vm, &req, (const uint64_t (*)[2]) ranges, ra->n_ranges, &e);
        free(ranges);
        if (r < 0) {
                log_warning("VM %s: %s", s->vm->name, e.text);
                return session_reply_error(s, m, &e);
        }
        /* Answered once what it recorded is durable: then the VMM may forget it. */
        persist_ack(s->vm, 0, m->id);
        return 0;
}

static int handle_lease_request(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        struct mc_msg_error e;

        if (lease_request(s->vm, m->lease_request->want, &e) < 0)
                return session_reply_error(s, m, &e);
        (void) session_send_ok(s, m->id);
        lease_try_grant(s->vm);  /* after the answer: a client reads it first */
        return 0;
}

/**
 * leased_report() - record one leased conversion the VMM reports, alone
 * (LeasedApplied) or in a LeasedBatch; a refusal answers @id
 */
static void leased_report(struct session *s, uint64_t id, const Memconv__LeasedApplied *a)
{
        struct conv_request req = {
                .id = id,
                .vcpu = a->vcpu,
                .implicit = a->implicit,
                .fault_flags = a->implicit && a->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE ? 1ULL << 3 : 0,
                .source = a->source,
                .to_private = a->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE,
                .gpa = a->gpa,
                .size = a->size,
                .received_usec = daemon_now(),
                .rx = ++s->vm->n_rx,
        };
        struct mc_msg_error e;

        if (lease_check_report(s->vm, a, &e) < 0 || convert_leased(s->vm, &req, a->seq, &e) < 0) {
                /* Applied by the VMM against its lease, or not this VM's memory: not recorded.
                 * The lease ends here; the VMM asks the daemon from now on. */
                log_warning("VM %s: %s", s->vm->name, e.text);
                (void) session_send_error(s, id, &e);
                lease_revoke(s->vm, "a conversion under it was refused", LEASE_HOLD_USEC);
        }
}

static int handle_leased_applied(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        leased_report(s, m->id, m->leased_applied);
        return 0;
}

static int handle_leased_batch(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const Memconv__LeasedBatch *b = m->leased_batch;

        /* In order, each as if it had come alone: a refused one does not stop the rest, which
         * the VMM applied too (under the lease it held then). */
        for (size_t i = 0; i < b->n_reports; i++)
                leased_report(s, b->ids[i], b->reports[i]);
        s->vm->stats.leased_batches++;
        return 0;
}

static int handle_lease_returned(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        struct mc_msg_error e;

        if (lease_returned(s->vm, m->lease_returned->lease_id, &e) < 0)
                return session_reply_error(s, m, &e);
        return 0;
}

static int handle_resumed(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        convert_reconcile(s->vm);
        return session_send_ok(s, m->id);
}

struct handler {
        Memconv__Message__BodyCase body;
        bool needs_vm;
        int (*fn)(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds);
};

static const struct handler handlers[] = {
        { MEMCONV__MESSAGE__BODY_HELLO, false, handle_hello },
        { MEMCONV__MESSAGE__BODY_ATTACH, false, handle_attach },
        { MEMCONV__MESSAGE__BODY_DETACH, true, handle_detach },
        { MEMCONV__MESSAGE__BODY_REGISTER_REGION, true, handle_register_region },
        { MEMCONV__MESSAGE__BODY_UNREGISTER_REGION, true, handle_unregister_region },
        { MEMCONV__MESSAGE__BODY_MEMORY_FAULT, true, handle_memory_fault },
        { MEMCONV__MESSAGE__BODY_CONVERT, true, handle_convert },
        { MEMCONV__MESSAGE__BODY_APPLIED, true, handle_applied },
        { MEMCONV__MESSAGE__BODY_REAPPLIED, true, handle_reapplied },
        { MEMCONV__MESSAGE__BODY_RESUMED, true, handle_resumed },
        { MEMCONV__MESSAGE__BODY_LEASE_REQUEST, true, handle_lease_request },
        { MEMCONV__MESSAGE__BODY_LEASED_APPLIED, true, handle_leased_applied },
        { MEMCONV__MESSAGE__BODY_LEASED_BATCH, true, handle_leased_batch },
        { MEMCONV__MESSAGE__BODY_LEASE_RETURNED, true, handle_lease_returned },
        { MEMCONV__MESSAGE__BODY_RING_SETUP, true, handle_ring_setup },
        { MEMCONV__MESSAGE__BODY_RING_KICK, false, handle_ring_kick },
};

/**
 * session_protocol_error() - count a bad frame, answer it
 * Return: 0, or -EPROTO when the peer has used up its allowance
 */
static int session_protocol_error(struct session *s, const Memconv__Message *m, const struct mc_msg_error *e)
{
        s->daemon->protocol_errors++;
        log_debug("VMM pid %d: %s", (int) s->cred.pid, e->text);
        (void) session_reply_error(s, m, e);
        if (++s->protocol_errors > SESSION_PROTOCOL_ERRORS_MAX) {
                log_warning("VMM pid %d sent %u malformed messages; disconnecting", (int) s->cred.pid,
                            s->protocol_errors);
                return -EPROTO;
        }
        return 0;
}

/**
 * session_protocol_errorf() - session_protocol_error() with a formatted text
 */
static int session_protocol_errorf(struct session *s, const Memconv__Message *m, Memconv__Code code,
                                   int error, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int session_protocol_errorf(struct session *s, const Memconv__Message *m, Memconv__Code code,
                                   int error, const char *fmt, ...)
{
        struct mc_msg_error e = { .code = code, .error = error };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(e.text, sizeof(e.text), fmt, ap);
        va_end(ap);
        return session_protocol_error(s, m, &e);
}

/**
 * session_dispatch() - validate one message and run its handler
 * @fds: the fds that came with it; a handler that keeps one sets it to -EBADF
 * Return: 0, or negative errno to disconnect the peer
 */
static int session_dispatch(struct session *s, const Memconv__Message *m, int *fds, size_t n_fds)
{
        const struct handler *h = NULL;
        struct mc_msg_error e;

        if (s->refused) {
                mc_error_set(&e, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                             "uid %u gid %u may not attach VMMs to memconvd (allowed: root, uid %u, or the VMM group)",
                             (unsigned) s->cred.uid, (unsigned) s->cred.gid, (unsigned) geteuid());
                (void) session_reply_error(s, m, &e);
                return -EPERM;
        }
        if (mc_message_validate(m, n_fds, MC_MSG_TO_DAEMON, &e) < 0)
                return session_protocol_error(s, m, &e);
        if (!s->hello_done && m->body_case != MEMCONV__MESSAGE__BODY_HELLO)
                return session_protocol_errorf(s, m, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                                                   "%s before hello", mc_message_type_name(m->body_case));
        for (size_t i = 0; i < ELEMENTSOF(handlers); i++)
                if (handlers[i].body == m->body_case)
                        h = &handlers[i];
        if (!h)
                return session_protocol_errorf(s, m, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                                                   "%s is not a request", mc_message_type_name(m->body_case));
        if (h->needs_vm && !s->vm) {
                mc_error_set(&e, MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN,
                             "%s: no VM is attached on this connection", mc_message_type_name(m->body_case));
                (void) session_reply_error(s, m, &e);
                return 0;
        }
        (void) h->fn(s, m, fds, n_fds);
        return 0;
}

/**
 * session_frame_error() - answer a datagram that could not be decoded
 * Return: as session_protocol_error()
 */
static int session_frame_error(struct session *s, const Memconv__Message *m, int error)
{
        struct mc_msg_error e;

        switch (error) {
        case -EMFILE:
                /* Not the peer's fault: answered by id, not counted against it. */
                if (!s->daemon->fd_shortage_logged++)
                        log_warning("Out of file descriptors: the fds of a message from VMM pid %d were lost "
                                    "and it was refused; raise memconvd's RLIMIT_NOFILE (LimitNOFILE=)",
                                    (int) s->cred.pid);
                mc_error_set(&e, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -EMFILE,
                             "memconvd is out of file descriptors: the fds of this message were lost; "
                             "nothing changed, try again later");
                return session_reply_error(s, m, &e), 0;
        case -EMSGSIZE:
                mc_error_set(&e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, error,
                             "frame larger than %u bytes refused", MC_FRAME_MAX);
                break;
        case -ETOOMANYREFS:
                mc_error_set(&e, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                             "more than %u fds, or a control message other than SCM_RIGHTS", MC_FRAME_MAX_FDS);
                break;
        default:
                mc_error_set(&e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EBADMSG,
                             "frame is not a memconv.Message");
                break;
        }
        return session_protocol_error(s, m, &e);
}

static unsigned session_ring_take(struct session *s, unsigned budget);

static int session_on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct session *s = userdata;

        if (revents & EPOLLOUT) {
                if (outq_flush(&s->outq, s->fd) < 0)
                        s->broken = true;
                else if (s->ring)
                        reqring_sock_out(s->ring, ++s->sent);  /* queued answers went out */
                session_update_events(s);
        }

        for (unsigned i = 0; i < SESSION_RECV_BUDGET && !s->broken && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)); i++) {
                Memconv__Message *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n_fds = 0;
                int r;

                r = mc_frame_recv_salvage(s->fd, MSG_DONTWAIT, &m, fds, &n_fds);
                if (r == -EAGAIN)
                        break;
                /* Entries the VMM queued before it sent this datagram go first; an entry
                 * names the datagrams sent before it, so the two streams merge in the
                 * order each VMM thread sent them. */
                if (s->ring && r != -ECONNRESET) {
                        session_ring_take(s, MC_RING_ENTRIES);
                        if (s->broken) {
                                mc_frame_close_fds(fds, n_fds);
                                if (m)
                                        memconv__message__free_unpacked(m, NULL);
                                break;
                        }
                }
                s->received++;
                if (r == -EMSGSIZE || r == -EBADMSG || r == -ETOOMANYREFS || r == -EMFILE) {
                        if (session_frame_error(s, m, r) < 0)
                                s->broken = true;
                        if (m)
                                memconv__message__free_unpacked(m, NULL);
                        continue;
                }
                if (r < 0) {
                        if (r != -ECONNRESET)
                                log_debug_errno(r, "VMM pid %d: receive failed", (int) s->cred.pid);
                        s->broken = true;
                        break;
                }
                if (session_dispatch(s, m, fds, n_fds) < 0)
                        s->broken = true;
                mc_frame_close_fds(fds, n_fds);
                memconv__message__free_unpacked(m, NULL);
        }

        if (s->broken) {
                (void) outq_flush(&s->outq, s->fd); /* a refusal should still reach the peer */
                session_free(s);
        }
        return 0;
}

void session_free(struct session *s)
{
        if (!s)
                return;
        if (s->vm) {
                convert_session_gone(s->vm, s);
                vm_detach(s->vm, "the VMM disconnected");
        }
        outq_clear(&s->outq);
        reqring_free(s->ring);
        LIST_REMOVE(s, link);
        sd_event_source_disable_unref(s->source);
        safe_close(s->fd);
        free(s);
}

/**
 * peer_allowed() - whether @cred may attach VMMs
 */
static bool peer_allowed(struct daemon *d, int fd, const struct ucred *cred)
{
        gid_t groups[256];
        socklen_t len = sizeof(groups);

        if (cred->uid == 0 || cred->uid == geteuid())
                return true;
        if (d->config.vmm_group == (gid_t) -1)
                return false;
        if (cred->gid == d->config.vmm_group)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false;
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == d->config.vmm_group)
                        return true;
        return false;
}

int session_on_listen(sd_event_source *src, int listen_fd, uint32_t revents, void *userdata)
{
        struct daemon *d = userdata;

        for (;;) {
                socklen_t len = sizeof(struct ucred);
                struct session *s;
                int fd, r;

                fd = daemon_accept(src, listen_fd, "VMM");
                if (fd < 0)
                        return 0;
                s = calloc(1, sizeof(*s));
                if (!s) {
                        safe_close(fd);
                        log_error("Out of memory accepting a VMM connection");
                        return 0;
                }
                s->daemon = d;
                s->fd = fd;
                s->outq.max = SESSION_OUTQ_MAX;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &s->cred, &len) < 0) {
                        log_warning_errno(errno, "Failed to read VMM peer credentials; refusing it");
                        free(s);
                        safe_close(fd);
                        continue;
                }
                s->refused = !peer_allowed(d, fd, &s->cred);
                if (s->refused) {
                        d->peers_refused++;
                        log_notice("Refusing VMM connection from pid %d uid %u gid %u: not allowed",
                                   (int) s->cred.pid, (unsigned) s->cred.uid, (unsigned) s->cred.gid);
                }
                r = sd_event_add_io(d->event, &s->source, fd, EPOLLIN, session_on_io, s);
                if (r < 0) {
                        log_warning_errno(r, "Failed to watch a VMM connection");
                        free(s);
                        safe_close(fd);
                        continue;
                }
                (void) sd_event_source_set_description(s->source, "vmm-session");
                LIST_INSERT_HEAD(&d->sessions, s, link);
                d->sessions_total++;
                log_debug("VMM connected: pid %d uid %u", (int) s->cred.pid, (unsigned) s->cred.uid);
        }
}

bool sessions_ring_pending(struct daemon *d)
{
        struct session *s;

        LIST_FOREACH(s, &d->sessions, link)
                if (s->ring && !s->broken && reqring_pending(s->ring, s->received))
                        return true;
        return false;
}

bool sessions_ring_pending_cb(void *userdata)
{
        return sessions_ring_pending(userdata);
}

void sessions_ring_sleeping(struct daemon *d, bool sleeping)
{
        struct session *s;

        LIST_FOREACH(s, &d->sessions, link)
                if (s->ring)
                        reqring_sleeping(s->ring, sleeping);
}

/**
 * session_ring_take() - handle up to @budget entries of @s's ring that the
 * VMM queued before its socket datagram number @s->received + 1; a broken
 * ring marks the session broken
 */
static unsigned session_ring_take(struct session *s, unsigned budget)
{
        unsigned i;

        for (i = 0; i < budget && s->ring && !s->broken; i++) {
                Memconv__Message *m = NULL;
                struct mc_msg_error e;
                int r;

                r = reqring_take(s->ring, s->received, &m, &e);
                if (r == 0)
                        break;
                if (r < 0) {
                        s->daemon->protocol_errors++;
                        log_warning("VMM pid %d broke its request ring (%s); disconnecting", (int) s->cred.pid,
                                    e.text);
                        (void) session_send_error(s, 0, &e);
                        s->broken = true;
                        break;
                }
                if (session_dispatch(s, m, NULL, 0) < 0)
                        s->broken = true;
                memconv__message__free_unpacked(m, NULL);
        }
        return i;
}

/**
 * session_ring_run() - handle up to @budget entries of @s's ring
 * Return: how many were taken (a session whose ring broke is freed)
 */
static unsigned session_ring_run(struct session *s, unsigned budget)
{
        unsigned n = session_ring_take(s, budget);

        if (s->broken) {
                (void) outq_flush(&s->outq, s->fd);
                session_free(s);
        }
        return n;
}

void sessions_ring_run(struct daemon *d)
{
        unsigned budget = RING_ITERATION_BUDGET;

        /* Turns: each ring with work is served once per round, a round may span
         * iterations, so every VMM gets its share and the loop's iteration stays short. */
        for (unsigned pass = 0; pass < 2 && budget > 0; pass++) {
                struct session *s, *next;

                for (s = LIST_FIRST(&d->sessions); s && budget > 0; s = next) {
                        next = LIST_NEXT(s, link);
                        if (!s->ring || s->ring_round == d->ring_round || !reqring_pending(s->ring, s->received))
                                continue;
                        s->ring_round = d->ring_round;
                        budget -= session_ring_run(s, budget < SESSION_RING_BUDGET ? budget : SESSION_RING_BUDGET);
                }
                if (budget > 0)
                        d->ring_round++;        /* everyone with work had a turn */
        }
}

bool session_ring_stats(const struct session *s, struct reqring_stats *ret)
{
        if (!s || !s->ring)
                return false;
        reqring_get_stats(s->ring, ret);
        return true;
}
