/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * harness.h - what the C integration tests share: a real memconvd started
 * on private sockets in a temporary directory, a raw client speaking the
 * VMM protocol frame by frame, an admin-socket client, probes of the
 * daemon's process (open fds, memory, log), and guest_memfd files from
 * /dev/kvm.
 *
 * Usage: harness_setup() in main() (0: ready, 77: skip, 1: failure), the
 * CUnit tests, then return harness_finish(failures), which stops the
 * daemon with SIGTERM, insists on a clean exit, and removes the directory
 * unless something failed (then its log is kept and named).
 *
 * Ownership: every helper returning a Memconv__Message or AdminReply hands
 * it to the caller (free_unpacked); struct vmm owns its socket, its
 * guest_memfd and shared memfd and their mappings until vmm_close().
 */
#pragma once

#undef NDEBUG
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <CUnit/Basic.h>

#include "frame.h"

#define REGION_SIZE (4ULL << 20)
#define REGION_GPA 0x100000000ULL
#define PAGE 4096ULL

extern char tmpdir[256], sock_path[300], log_path[300], admin_path[300];
extern pid_t daemon_pid;
/* daemon_extra_arg - one more option for the next daemon_start() (NULL: none) */
extern const char *daemon_extra_arg;
extern int kvm_fd, vm_fd;
extern bool gmem_mmap;
extern uint64_t last_committed; /* highest decision id seen in a Committed */

struct vmm {
        int sock;
        uint64_t next_id;
        int gmem, shared;
        uint8_t *gmem_map, *shared_map;
        uint8_t uuid[16];
};

/* harness_setup() - open /dev/kvm, make the directory, start memconvd.
 * @need_kvm: skip (77) without a KVM that creates guest_memfd; when false, * kvm_fd/vm_fd stay -1 if it is missing.
 * Return: 0, 77 to skip, 1 on failure. */
int harness_setup(bool need_kvm);
/* harness_finish() - stop the daemon, clean up; Return: the exit status */
int harness_finish(unsigned failures);
/* daemon_alive() - whether memconvd is still running */
bool daemon_alive(void);
/* daemon_rss_kb() - VmRSS of memconvd in KiB, or -1 */
long daemon_rss_kb(void);
/* admin_connect() - a connected admin-socket client (owned by the caller) */
int admin_connect(void);
/* admin_call() - send @req (id set by the caller) and wait up to SETTLE_MS for its reply */
Memconv__AdminReply *admin_call(int sock, const Memconv__AdminRequest *req);
/* admin_show() - the VM @name as `show` reports it (its show->vm and ->stats set), owned by
 * the caller; NULL when the daemon does not answer so */
Memconv__AdminReply *admin_show(const char *name);
/* admin_vm_count() - how many VMs `list` shows (-1 on error) */
long admin_vm_count(void);

/* The daemon process: start, open fds (journals not counted), log lines. */
uint64_t now_ms(void);
int daemon_start(void);
int daemon_fd_count(const char *match);
bool log_contains(const char *a, const char *b);
/* log_count() - how many log lines contain @a (and @b when not NULL) */
int log_count(const char *a, const char *b);
/* The daemon does some of its work (closing fds, logging) after it answers:
 * these wait up to SETTLE_MS for it. The bound only turns a hang into a
 * failure; no test depends on how fast the daemon is. */
#define SETTLE_MS 10000
/* daemon_fd_settle() - wait until at most @want fds match; Return: the count */
int daemon_fd_settle(const char *match, int want);
/* log_wait() - wait until a log line contains @a (and @b when not NULL) */
bool log_wait(const char *a, const char *b);
/* log_wait_count() - wait until at least @n log lines match */
bool log_wait_count(const char *a, const char *b, int n);

/* The raw VMM client: each request helper sets the id, sends, and waits up
 * to SETTLE_MS for the answer (NULL if none); Committed notices are skipped and
 * noted in last_committed. */
int raw_connect(void);
Memconv__Message *recv_msg(int sock);
Memconv__Message *call(struct vmm *v, Memconv__Message *m, const int *fds, size_t n);
Memconv__Code status_code(const Memconv__Status *s);
Memconv__Message *hello(struct vmm *v, uint32_t version);
Memconv__Message *attach_token(struct vmm *v, const char *name, size_t uuid_len, const uint8_t *token);
Memconv__Message *attach(struct vmm *v, const char *name, size_t uuid_len);
Memconv__Message *register_region(struct vmm *v, uint32_t slot, uint64_t gpa, uint64_t size, int gmem, int shared);
Memconv__Message *convert(struct vmm *v, uint64_t gpa, uint64_t size, bool to_private);
Memconv__Message *fault(struct vmm *v, uint64_t gpa, uint64_t flags);
void applied(struct vmm *v, uint64_t decision_id, bool ok);
void expect_decision(Memconv__Message *r, Memconv__Action action, Memconv__Code code, const char *text);
void expect_reply(Memconv__Message *r, Memconv__Code code, const char *text);
/* 1 if every page of [gpa, +size) is already in the state (the probe rolls back). */
bool probe_all(struct vmm *v, uint64_t gpa, uint64_t size, bool private_);

/* Guest memory: guest_memfd from vm_fd, shared memfd, their patterns. */
int gmem_create(uint64_t size);
void fill(uint8_t *p, uint64_t len, uint8_t seed);
bool same(const uint8_t *p, uint64_t len, uint8_t seed);
bool is_hole(int fd, uint64_t off);
void vmm_open(struct vmm *v, uint8_t tag);
void vmm_attach_region(struct vmm *v, const char *name);
void vmm_close(struct vmm *v);
void assert_backing_intact(struct vmm *v, uint8_t tag);
