/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * daemon.h - the state of one memconvd process.
 *
 * Everything runs on one sd-event loop thread, except fallocate() discards,
 * which run on the discard worker threads (discard.c) and come back to the
 * loop as completions. So no structure here needs a lock; the only data
 * shared with the workers is the discard job queue, which discard.c owns.
 *
 * Ownership: the daemon owns the listening socket, every session (one per
 * VMM connection) and every VM. A VM outlives its session: after the VMM
 * disconnects the VM's fds are closed but its map and counters stay for
 * inspection until it is forgotten.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "spin.h"

struct discarder;
struct persist;
struct policy_chain;
struct policy_plugin_config;
struct session;
struct vm;

LIST_HEAD(session_list, session);
LIST_HEAD(vm_list, vm);
LIST_HEAD(domain_list, domain_reg);

struct daemon_config {
        char *vmm_socket_path;   /* owned */
        char *admin_socket_path; /* owned */
        gid_t vmm_group;         /* members may attach VMMs; (gid_t) -1: root and our uid only */
        gid_t admin_group;       /* members may administer; (gid_t) -1: root and our uid only */
        unsigned discard_threads;
        uint64_t summary_interval_usec;
        char *state_dir;         /* owned */
        bool journal;            /* keep a conversion journal in state_dir */
        uint64_t journal_compact;
        uint64_t journal_commit_interval_usec;
        size_t history_records;  /* per-VM history ring */
        int log_level;
        int log_target;
        char *plugin_dir;        /* owned */
        struct policy_plugin_config *plugins; /* owned, in chain order */
        size_t n_plugins;
        char *config_file;       /* owned: the file read (drop-ins: config_file + ".d/") */
        bool require_registration; /* only libvirt-registered uuids may attach new VMs */
        unsigned max_vms_per_uid;      /* VM instances (attached or kept) one uid may have */
        unsigned max_regions_per_vm;
        unsigned max_requests_per_vm;  /* decided-but-unfinished + waiting + delayed */
        int syscall_filter;            /* enum sandbox_filter (sandbox.h) */
        bool leases;                   /* VMMs may hold policy leases (lease.h) */
        uint64_t lease_max_bytes;      /* largest conversion under a lease */
        uint64_t lease_report_delay_usec; /* reports may wait this long, to go in batches; 0: at once */
        uint64_t poll_usec;            /* the event loop polls up to this long before it sleeps */
        bool ring;                     /* VMMs may set up request rings (reqring.h) */
};

struct daemon {
        struct daemon_config config;
        int argc;                      /* the command line, read again on reload */
        char **argv;
        sd_event *event;
        struct mc_spin spin;           /* the event loop's polling before it sleeps (lib/spin.h) */
        uint64_t ring_round;           /* sessions_ring_run(): the round of turns in progress */

        int vmm_fd;                    /* listening socket, owned */
        sd_event_source *vmm_source;
        bool unlink_vmm_socket;        /* we created it, so we remove it */
        int admin_fd;                  /* listening admin socket, owned */
        sd_event_source *admin_source;
        bool unlink_admin_socket;
        LIST_HEAD(, admin_conn) admin_conns;

        struct session_list sessions;
        struct vm_list vms;
        unsigned n_vms;
        struct domain_list domains;    /* libvirt-registered domains (registry.c) */
        struct discarder *discarder;
        struct persist *persist;
        struct policy_chain *policy;
        sd_event_source *summary_timer;

        uint64_t next_vm_id;
        uint64_t next_decision_id;
        uint64_t next_lease_id;
        uint64_t started_usec;         /* CLOCK_MONOTONIC */
        uint64_t sessions_total;
        uint64_t protocol_errors;
        uint64_t fd_shortage_logged;     /* messages whose fds were lost to EMFILE */
        uint64_t peers_refused;
};

/** daemon_now() - CLOCK_MONOTONIC in microseconds */
uint64_t daemon_now(void);

/** daemon_realtime() - CLOCK_REALTIME in microseconds */
uint64_t daemon_realtime(void);

/** daemon_arm_summary() - make sure the rate-limited summary timer runs */
void daemon_arm_summary(struct daemon *d);

/**
 * daemon_accept() - accept4() one connection on the listening socket of
 * @src, which serves @what ("VMM", "admin")
 *
 * Out of file descriptors (or memory), the connection stays queued and the
 * socket readable: without a pause the handler would spin, and log, until
 * an fd is freed. So the source is rate-limited to one try every 100 ms
 * (one warning), and the pause is lifted by the next connection accepted.
 * Return: the new fd, or -1 (nothing to accept now; logged when unexpected)
 */
int daemon_accept(sd_event_source *src, int listen_fd, const char *what);

/**
 * daemon_bind_socket() - a listening SOCK_SEQPACKET socket at @path, made
 * ready (bound, @mode and @group set, listening) under a temporary name and
 * renamed into place: a client that sees @path can connect, and never
 * finds it with the wrong permissions. A stale socket at @path is replaced.
 * @group: (gid_t) -1 for none
 * Return: the non-blocking fd, or negative errno (logged)
 */
int daemon_bind_socket(const char *path, mode_t mode, gid_t group, const char *what);
