/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * conv.c - where memconv-vmm sends a conversion: memconvd or inline.
 *
 * Every conversion event reaches conv_handle_exit() as a struct kvm_run,
 * exactly as KVM reports it: KVM_EXIT_MEMORY_FAULT (implicit) or
 * KVM_EXIT_HYPERCALL with nr KVM_HC_MAP_GPA_RANGE (explicit). The run is the
 * vCPU's real one when KVM produced the exit, or a local copy filled by
 * vcpu.c for the software backend's stand-ins.
 *
 *  - mode "daemon": mc_handle_exit() of libmemconv asks memconvd, which
 *    validates, plans, calls back attr_apply() on this vCPU thread (through
 *    conv_apply_cb()), and discards the stale backing asynchronously;
 *  - mode "inline": conv_inline() does what QEMU's kvm_convert_memory()
 *    does on the vCPU thread: validate, flip the attribute, then discard the
 *    old backing with fallocate(PUNCH_HOLE|KEEP_SIZE) (guest_memfd when
 *    going to shared, the shared memfd when going to private), re-enter.
 *    It is the baseline the daemon is compared against.
 *
 * Both return an enum mc_exit_action (>= 0) or a negative errno.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "memconv.h"

#include "attr.h"
#include "vmm.h"

/*
 * The vCPU whose exit this thread is handling: libmemconv calls the apply
 * callback on the thread that called mc_handle_exit(), with only the VMM as
 * userdata, and the load test wants to know which vCPU each applied range
 * reached.
 */
static __thread struct vcpu *conv_current;

/**
 * lat_index() - the histogram bucket of @ns (see struct lat_hist)
 * @ns: nanoseconds
 *
 * Return: 0..LAT_BUCKETS-1; values below LAT_SUB have a bucket each
 */
static unsigned lat_index(uint64_t ns)
{
        unsigned e;

        if (ns < LAT_SUB)
                return (unsigned) ns;
        e = 63 - (unsigned) __builtin_clzll(ns); /* >= LAT_SUB_BITS */
        return (e - LAT_SUB_BITS + 1) * LAT_SUB + (unsigned) ((ns >> (e - LAT_SUB_BITS)) & (LAT_SUB - 1));
}

/**
 * lat_add() - record one sample
 * @h: the histogram
 * @ns: nanoseconds
 */
static void lat_add(struct lat_hist *h, uint64_t ns)
{
        h->buckets[lat_index(ns)]++;
        h->count++;
        h->sum_ns += ns;
        if (ns > h->max_ns)
                h->max_ns = ns;
}

/**
 * conv_record_range() - remember one applied range for --applied-out
 * @v: the vCPU
 * @gpa: start
 * @size: bytes
 * @to_private: the attribute applied
 * @implicit: a memory fault rather than MAP_GPA_RANGE
 */
static void conv_record_range(struct vcpu *v, uint64_t gpa, uint64_t size, bool to_private, bool implicit)
{
        if (v->n_applied == v->cap_applied) {
                size_t cap = v->cap_applied ? 2 * v->cap_applied : 1024;
                struct applied_range *a = realloc(v->applied, cap * sizeof(*a));

                if (!a) {
                        /* The record is then incomplete: say so rather than compare half of it. */
                        v->applied_oom = true;
                        return;
                }
                v->applied = a;
                v->cap_applied = cap;
        }
        v->applied[v->n_applied++] = (struct applied_range) {
                .decision = v->counts.applied + 1, /* counted when the exit returns */
                .gpa = gpa, .size = size, .to_private = to_private, .implicit = implicit,
        };
}

/**
 * conv_punch() - discard [off, off+len) of a backing file
 * @fd: guest_memfd or shared memfd (borrowed)
 * @off: file offset, 4 KiB aligned
 * @len: bytes, 4 KiB aligned
 *
 * Return: 0 or the negative errno of fallocate(PUNCH_HOLE|KEEP_SIZE).
 */
int conv_punch(int fd, uint64_t off, uint64_t len)
{
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) < 0)
                return -errno;
        return 0;
}

/**
 * conv_inline() - convert [gpa, gpa+size) in the VMM, as QEMU does
 * @vmm: the VMM
 * @gpa: first address
 * @size: bytes
 * @to_private: the requested attribute
 *
 * Rules as memconvd applies them (DESIGN section 4): aligned, non-empty,
 * no overflow; to-shared of GPA space that is not RAM is a successful no-op,
 * to-private there is refused; a range partly in RAM is refused. Pages
 * already in the requested state are converted again (QEMU does not skip
 * them); the discard is idempotent.
 * Return: 0, -EINVAL (refused, nothing changed), or the negative errno of
 * the attribute flip (nothing changed) or of the discard (flipped).
 */
static int conv_inline(struct vmm *vmm, uint64_t gpa, uint64_t size, bool to_private)
{
        int r;

        if (!size || (gpa | size) & (VMM_PAGE_SIZE - 1) || gpa + size < gpa)
                return -EINVAL;
        if (gpa >= vmm->ram_size)
                return to_private ? -EINVAL : 0;
        if (gpa + size > vmm->ram_size)
                return -EINVAL;
        r = attr_apply(vmm->attr, gpa, size, to_private);
        if (r < 0)
                return r;
        return conv_punch(to_private ? vmm->shared_fd : vmm->gmem_fd, gpa, size);
}

/**
 * conv_handle_inline() - handle a conversion exit in inline mode
 * @v: the vCPU
 * @run: the exit (borrowed); hypercall.ret is written for hypercalls
 *
 * Return: MC_EXIT_RETRY, MC_EXIT_INJECT_FAULT (refused fault),
 * MC_EXIT_NOT_HANDLED, or a negative errno when an accepted conversion
 * failed half-way.
 */
static int conv_handle_inline(struct vcpu *v, struct kvm_run *run)
{
        struct vmm *vmm = v->vmm;
        int r;

        if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
                struct mc_kvm_memory_fault *mf = mc_kvm_run_memory_fault(run);

                r = conv_inline(vmm, mf->gpa, mf->size, mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE);
                if (r == -EINVAL)
                        return MC_EXIT_INJECT_FAULT;
                return r < 0 ? r : MC_EXIT_RETRY;
        }
        if (run->exit_reason == KVM_EXIT_HYPERCALL && run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
                uint64_t gpa = run->hypercall.args[0], npages = run->hypercall.args[1];
                uint64_t attrs = run->hypercall.args[2];

                if (!npages || npages > (UINT64_MAX >> 12) ||
                    attrs & ~(uint64_t) (KVM_MAP_GPA_RANGE_ENCRYPTED | 0xf) || (attrs & 0xf) > 2)
                        r = -EINVAL;
                else
                        r = conv_inline(vmm, gpa, npages << 12, attrs & KVM_MAP_GPA_RANGE_ENCRYPTED);
                run->hypercall.ret = r ? (uint64_t) -KVM_EINVAL : 0;
                return r == 0 || r == -EINVAL ? MC_EXIT_RETRY : r;
        }
        return MC_EXIT_NOT_HANDLED;
}

/**
 * conv_count() - count how the daemon answered one exit of @v
 * @v: the vCPU
 * @run: the exit, after mc_handle_exit() (hypercall.ret written)
 * @r: mc_handle_exit()'s result
 *
 * An answer "applied" when the callback ran during it and the vCPU may
 * re-enter: that is one committed change on memconvd's side. A retry
 * without callback is a spurious or MMIO no-op answer.
 */
static void conv_count(struct vcpu *v, const struct kvm_run *run, int r)
{
        bool hc = run->exit_reason == KVM_EXIT_HYPERCALL;
        struct vcpu_counts *c = &v->counts;

        if (v->vmm->opt.mode == VMM_MODE_INLINE)
                return;
        c->requests++;
        if (r < 0)
                c->errors++;
        else if (r == MC_EXIT_NOT_HANDLED)
                c->not_handled++;
        else if (r != MC_EXIT_RETRY || (hc && run->hypercall.ret))
                c->refused++;
        else if (v->apply_calls) {
                bool to_private = hc ? run->hypercall.args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED
                                     : mc_kvm_run_memory_fault((struct kvm_run *) run)->flags &
                                               KVM_MEMORY_EXIT_FLAG_PRIVATE;

                c->applied++;
                c->applied_kind[!hc][to_private]++;
        } else
                c->retry++;
        /* A refused or failed answer after callbacks: they were undone (rollback). */
        if (v->apply_calls && (r != MC_EXIT_RETRY || (hc && run->hypercall.ret)))
                c->errors++;
}

/**
 * conv_handle_exit() - route a conversion exit to memconvd or inline
 * @v: the vCPU whose exit it is
 * @run: the vCPU's kvm_run or a local copy (borrowed, updated)
 *
 * Counts and, for 4 KiB requests, times the call.
 * Return: an enum mc_exit_action (>= 0) or a negative errno.
 */
int conv_handle_exit(struct vcpu *v, struct kvm_run *run)
{
        struct vmm *vmm = v->vmm;
        bool is4k = false;
        uint64_t t0;
        int r;

        if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
                struct mc_kvm_memory_fault *mf = mc_kvm_run_memory_fault(run);

                is4k = mf->size == VMM_PAGE_SIZE;
                if (mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) {
                        atomic_fetch_add(&vmm->stats.faults_private, 1);
                        v->faults_private++;
                } else {
                        atomic_fetch_add(&vmm->stats.faults_shared, 1);
                        v->faults_shared++;
                }
        } else if (run->exit_reason == KVM_EXIT_HYPERCALL) {
                is4k = run->hypercall.args[1] == 1;
                atomic_fetch_add(&vmm->stats.hypercalls, 1);
        }

        t0 = vmm_now_ns();
        if (vmm->opt.mode == VMM_MODE_INLINE) {
                r = conv_handle_inline(v, run);
        } else {
                v->apply_calls = 0;
                v->apply_implicit = run->exit_reason == KVM_EXIT_MEMORY_FAULT;
                conv_current = v;
                r = mc_handle_exit(vmm->client, v->idx, run, NULL);
                conv_current = NULL;
        }
        lat_add(&v->lat, vmm_now_ns() - t0);
        conv_count(v, run, r);
        if (is4k && r == MC_EXIT_RETRY &&
            !(run->exit_reason == KVM_EXIT_HYPERCALL && run->hypercall.ret)) {
                atomic_fetch_add(&vmm->stats.conv4k_ns, vmm_now_ns() - t0);
                atomic_fetch_add(&vmm->stats.conv4k_n, 1);
        }
        if (r == MC_EXIT_INJECT_FAULT || r == MC_EXIT_STOP_VM ||
            (run->exit_reason == KVM_EXIT_HYPERCALL && run->hypercall.ret))
                atomic_fetch_add(&vmm->stats.refused, 1);
        return r;
}

/**
 * conv_apply_cb() - libmemconv's attribute callback: the backend's apply
 * @userdata: the struct vmm (borrowed)
 * @gpa: first address
 * @size: bytes
 * @to_private: requested attribute
 *
 * Return: attr_apply()'s result.
 */
static int conv_apply_cb(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        struct vmm *vmm = userdata;
        struct vcpu *v = conv_current;
        int r;

        r = attr_apply(vmm->attr, gpa, size, to_private);
        if (!v || v->vmm != vmm) {
                atomic_fetch_add(&vmm->stray_applies, 1);
                return r;
        }
        v->apply_calls++;
        if (r >= 0) {
                bool implicit = v->apply_implicit;

                v->counts.applied_ranges++;
                v->counts.bytes_to[to_private] += size;
                if (vmm->opt.applied_out)
                        conv_record_range(v, gpa, size, to_private, implicit);
        }
        return r;
}

/**
 * conv_parse_uuid() - parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
 * @s: the text
 * @ret: 16 bytes, untouched on failure
 *
 * Return: 0 or -EINVAL
 */
static int conv_parse_uuid(const char *s, uint8_t ret[16])
{
        uint8_t u[16];
        unsigned i = 0;

        while (*s && i < 32) {
                unsigned x;

                if (*s == '-') {
                        s++;
                        continue;
                }
                if (sscanf(s, "%1x", &x) != 1)
                        return -EINVAL;
                if (i % 2 == 0)
                        u[i / 2] = (uint8_t) (x << 4);
                else
                        u[i / 2] |= (uint8_t) x;
                i++;
                s++;
        }
        if (i != 32 || *s)
                return -EINVAL;
        memcpy(ret, u, 16);
        return 0;
}

/**
 * conv_lease_reader() - with --lease, handle memconvd's messages nobody
 * waits for (grants, revocations, settled notices), as a VMM's main loop
 * would: poll the client's fd, then mc_client_dispatch()
 * @arg: the struct vmm
 * Return: NULL
 */
static void *conv_lease_reader(void *arg)
{
        struct vmm *vmm = arg;

        while (!atomic_load(&vmm->lease_stop)) {
                struct pollfd p = { .fd = mc_client_fd(vmm->client), .events = POLLIN };

                /* The fd changes when the library reconnects: poll briefly, look again. */
                if (poll(&p, 1, 50) > 0 && mc_client_dispatch(vmm->client) < 0)
                        usleep(10000);
        }
        return NULL;
}

/**
 * conv_setup() - prepare the conversion path of the chosen mode
 * @vmm: the VMM, with VM, backings and attribute backend set up
 *
 * Daemon mode: connect (vmm->client owned by @vmm afterwards), attach the VM
 * with --uuid or a random one, register RAM as region slot 0 (initially
 * shared; the library passes copies of the fds), install the callback.
 * Return: 0 or a negative errno (the caller logs it).
 */
int conv_setup(struct vmm *vmm)
{
        struct mc_vm_info info = {
                .name = vmm->opt.name,
                .cc_type = attr_kind(vmm->attr) == ATTR_KVM ? MC_CC_SW_PROTECTED : MC_CC_NONE,
                .arch = MC_ARCH_X86_64,
        };
        struct mc_region_info region = {
                .slot = 0,
                .gpa = 0,
                .size = vmm->ram_size,
                .guest_memfd = vmm->gmem_fd,
                .guest_memfd_offset = 0,
                .shared_fd = vmm->shared_fd,
                .shared_offset = 0,
                .initial_private = false,
        };
        mc_client *c = NULL;
        int r;

        if (vmm->opt.mode == VMM_MODE_INLINE)
                return 0;

        if (vmm->opt.uuid) {
                r = conv_parse_uuid(vmm->opt.uuid, info.uuid);
                if (r < 0)
                        return r;
        } else {
                if (getrandom(info.uuid, sizeof(info.uuid), 0) != sizeof(info.uuid))
                        return -EIO;
                info.uuid[6] = (info.uuid[6] & 0x0f) | 0x40; /* version 4 */
                info.uuid[8] = (info.uuid[8] & 0x3f) | 0x80;
        }

        r = mc_client_connect(vmm->opt.socket_path, &c);
        if (r < 0)
                return r;
        mc_client_set_apply(c, conv_apply_cb, vmm);
        r = mc_client_attach(c, &info, NULL);
        if (r >= 0)
                r = mc_client_register_region(c, &region);
        if (r < 0) {
                mc_client_free(c);
                return r;
        }
        vmm->client = c;
        if (vmm->opt.lease) {
                r = mc_client_set_lease(c, true);
                if (r < 0) {
                        vmm->client = mc_client_free(c);
                        return r;
                }
                r = -pthread_create(&vmm->lease_thread, NULL, conv_lease_reader, vmm);
                if (r < 0) {
                        vmm->client = mc_client_free(c);
                        return r;
                }
                vmm->lease_thread_started = true;
        }
        return 0;
}

/**
 * conv_teardown() - detach from memconvd and free the client (if any)
 * @vmm: the VMM; vmm->client is freed and cleared
 */
void conv_teardown(struct vmm *vmm)
{
        if (vmm->lease_thread_started) {
                struct mc_lease_stats ls = { 0 };

                atomic_store(&vmm->lease_stop, true);
                pthread_join(vmm->lease_thread, NULL);
                vmm->lease_thread_started = false;
                mc_client_lease_stats(vmm->client, &ls);
                printf("vmm: lease: %" PRIu64 " leased, %" PRIu64 " asked, %" PRIu64 " granted, %" PRIu64
                       " revoked\n", ls.leased, ls.asked, ls.grants, ls.revocations);
        }
        if (vmm->client) {
                mc_client_detach(vmm->client);
                vmm->client = mc_client_free(vmm->client);
        }
}
