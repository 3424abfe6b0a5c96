/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client-internal.h - the state of an mc_client, shared by client.c (the
 * request/answer machinery) and client-recover.c (surviving a daemon
 * restart). Internal header.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "memconv.h"
#include "memconv.pb-c.h"

#define MC_RECONNECT_DEFAULT_MS 30000

/* An applied decision the daemon has not yet acknowledged as durable. */
struct mc_applied_rec {
        struct mc_applied_rec *next;
        uint64_t decision_id;     /* of the daemon instance that decided it */
        uint64_t request_id;
        uint32_t vcpu;
        bool to_private;
        bool implicit;
        int source;
        size_t n_ranges;
        Memconv__Range ranges[];  /* gpa/size copies; the message headers unused */
};

/* A registered region, remembered to register it again after a restart. */
struct mc_region_copy {
        struct mc_region_info info;  /* guest_memfd/shared_fd are our own dups */
};

struct mc_waiter {
        uint64_t id;
        Memconv__Message *reply; /* owned once done */
        int error;
        bool done;
        pthread_cond_t cond;
        struct mc_waiter *next;
};

struct mc_client {
        int sock;                 /* owned */
        pthread_mutex_t lock;     /* protects everything below */
        bool reading;             /* a thread is inside recv */
        int dead;                 /* 0, or the -errno that killed the connection */
        struct mc_waiter *waiters;
        uint64_t next_id;
        uint64_t stray;           /* replies nobody waited for (e.g. to a bad Applied) */

        mc_apply_fn apply;
        void *apply_userdata;

        bool attached;
        uint64_t vm_id;
        uint8_t token[16];

        /* Recovery (client-recover.c); all under @lock. */
        char *socket_path;               /* owned */
        struct mc_vm_info vm_info;       /* name owned */
        struct mc_region_copy *regions;  /* owned, with dup'ed fds */
        size_t n_regions;
        struct mc_applied_rec *unacked;  /* oldest first */
        struct mc_applied_rec *unacked_tail;
        size_t n_unacked;
        unsigned generation;             /* bumped by every successful reconnect */
        bool reconnecting;
        int recover_error;               /* 0, or why reconnecting failed for good */
        pthread_cond_t reconnected;
        unsigned reconnect_ms;           /* 0: do not reconnect */
        uint64_t reconnects;
};


/* client.c */
int client_status_errno(const Memconv__Status *s);

/* client-recover.c */

/**
 * client_recover_remember_vm() / _region() / _forget_region() - keep what
 * attach and register-region said, to say it again after a restart
 * Return: 0 or -ENOMEM / -errno of dup()
 */
int client_recover_remember_vm(mc_client *c, const struct mc_vm_info *info);
int client_recover_remember_region(mc_client *c, const struct mc_region_info *ri);
void client_recover_forget_region(mc_client *c, uint32_t slot);

/**
 * client_recover_applied() - remember an applied decision until Committed
 * Return: 0 or -ENOMEM
 */
int client_recover_applied(mc_client *c, const Memconv__Decision *d, const Memconv__Message *req);

/** client_recover_committed() - forget acknowledged decisions (@c locked) */
void client_recover_committed(mc_client *c, const Memconv__Committed *m);

/**
 * client_recover_reconnect() - the connection of generation @gen died:
 * connect again (with backoff, up to c->reconnect_ms), resume the VM with
 * its token, register the regions again, re-send unacknowledged decisions.
 * Concurrent callers wait for the one doing it.
 * Return: 0 when a working connection is in place; negative errno otherwise
 */
int client_recover_reconnect(mc_client *c, unsigned gen);

/** client_recover_free() - drop remembered state (fds closed) */
void client_recover_free(mc_client *c);
