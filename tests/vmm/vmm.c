/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmm.c - memconv-vmm: options, VM setup, scenario runner.
 *
 * memconv-vmm is the reference VMM of memconvd (see vmm.h for the guest
 * layout). It creates a VM of the default type with a guest_memfd (flags
 * MMAP|INIT_SHARED where KVM_CAP_GUEST_MEMFD_FLAGS has them) as the private
 * view, a memfd as the shared view at SHARED_ALIAS, a small code slot, and
 * --vcpus vCPUs. Each requested scenario runs on every vCPU at once, one
 * pthread per vCPU, each on its own slice of RAM; a scenario passes when it
 * passed on every vCPU.
 *
 * For the load test (tests/load/) it can also run for a fixed wall time
 * (--seconds), start on a signal (--start-signal), stay attached but idle
 * afterwards so that the daemon can be inspected while the VM is still
 * attached (--hold), and write what every vCPU was answered (--stats-out,
 * --applied-out) to compare with what memconvd recorded.
 *
 * Exit status: 0 all passed, 1 a scenario failed or setup failed, 2 usage,
 * 77 /dev/kvm or guest_memfd unavailable (printed as "SKIP: reason").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "memconv.h"

#include "attr.h"
#include "vmm.h"

#define EXIT_SKIP 77
#define EXIT_USAGE 2
#define SLICE_MIN (4ull << 20) /* per-vCPU slice: selftest needs 2 MiB + 4 KiB, 2 MiB aligned */

/**
 * vmm_now_ns() - CLOCK_MONOTONIC in nanoseconds (one clock for every process
 * on the machine: the load test compares VMMs' windows)
 *
 * Return: the time
 */
uint64_t vmm_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/**
 * vmm_storm_gate() - the storm's start line: wait until every vCPU has set
 * its slice up, then start the timed part together
 * @v: the arriving vCPU
 *
 * Setting up (reset, first fill: the first touch of every page is slow on a
 * loaded machine) is not part of a --seconds run: the deadline counts from
 * here. With --start-signal the last vCPU to arrive prints "vmm: ready" and
 * waits for SIGUSR1 (blocked in every thread) before opening the gate, so
 * that many VMMs can start their timed parts at once.
 */
void vmm_storm_gate(struct vcpu *v)
{
        struct vmm *vmm = v->vmm;
        unsigned gen;
        int sig;

        pthread_mutex_lock(&vmm->gate_lock);
        gen = vmm->gate_generation;
        if (++vmm->gate_arrived < vmm->opt.vcpus) {
                while (gen == vmm->gate_generation)
                        pthread_cond_wait(&vmm->gate_cond, &vmm->gate_lock);
                pthread_mutex_unlock(&vmm->gate_lock);
                return;
        }
        if (vmm->opt.start_signal && !vmm->gate_signalled) {
                sigset_t usr1;

                vmm->gate_signalled = true;
                sigemptyset(&usr1);
                sigaddset(&usr1, SIGUSR1);
                vmm_log(vmm, "vmm: ready (pid %d): send SIGUSR1 to start", (int) getpid());
                sigwait(&usr1, &sig);
        }
        vmm->run_start_ns = vmm_now_ns();
        vmm->deadline_ns = vmm->run_start_ns + (uint64_t) vmm->opt.seconds * 1000000000ull;
        vmm->gate_arrived = 0;
        vmm->gate_generation++;
        pthread_cond_broadcast(&vmm->gate_cond);
        pthread_mutex_unlock(&vmm->gate_lock);
}

/**
 * vmm_storm_end() - a vCPU's storm loop ended: keep the latest time
 * @vmm: the VMM
 */
void vmm_storm_end(struct vmm *vmm)
{
        uint64_t now = vmm_now_ns();

        pthread_mutex_lock(&vmm->gate_lock);
        if (now > vmm->storm_end_ns)
                vmm->storm_end_ns = now;
        pthread_mutex_unlock(&vmm->gate_lock);
}

/**
 * vmm_log() - print one line to stdout, whole, from any thread
 * @vmm: the VMM (for its lock)
 * @fmt: printf format
 */
void vmm_log(struct vmm *vmm, const char *fmt, ...)
{
        va_list ap;

        pthread_mutex_lock(&vmm->log_lock);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        pthread_mutex_unlock(&vmm->log_lock);
}

/**
 * vmm_set_region() - add a memslot with KVM_SET_USER_MEMORY_REGION2
 * @vmm: the VMM
 * @slot: slot number
 * @flags: KVM_MEM_* flags
 * @gpa: guest physical start
 * @size: bytes
 * @hva: the userspace mapping (borrowed, must outlive the VM)
 * @gmem_fd: guest_memfd for KVM_MEM_GUEST_MEMFD slots, else -1
 *
 * Return: 0 or a negative errno
 */
static int vmm_set_region(struct vmm *vmm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
                          void *hva, int gmem_fd)
{
        struct kvm_userspace_memory_region2 r = {
                .slot = slot,
                .flags = flags,
                .guest_phys_addr = gpa,
                .memory_size = size,
                .userspace_addr = (uint64_t) (uintptr_t) hva,
                .guest_memfd_offset = 0,
                .guest_memfd = gmem_fd >= 0 ? (uint32_t) gmem_fd : 0,
        };

        if (ioctl(vmm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0)
                return -errno;
        return 0;
}

/**
 * vmm_setup() - create the VM, backings, memslots, vCPUs and the attribute
 * backend; all owned by @vmm afterwards (vmm_teardown())
 * @vmm: zeroed VMM with options set, fds -1
 * @ret_skip: set to a reason when the machine lacks /dev/kvm or guest_memfd
 *
 * Return: 0, or a negative errno (the function logged what failed).
 */
static int vmm_setup(struct vmm *vmm, const char **ret_skip)
{
        struct kvm_create_guest_memfd gm = { 0 };
        int r, flags_cap;
        void *p;

        vmm->ram_size = (uint64_t) vmm->opt.mem_mb << 20;
        vmm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (vmm->kvm_fd < 0) {
                *ret_skip = "/dev/kvm is not available";
                return -errno;
        }
        r = ioctl(vmm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (r <= 0) {
                vmm_log(vmm, "KVM_GET_VCPU_MMAP_SIZE: %m");
                return -EIO;
        }
        vmm->run_size = (size_t) r;
        if (vmm->opt.vm_type == VMM_VM_SW_PROTECTED) {
                r = ioctl(vmm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
                if (r < 0 || !(r & (1 << KVM_X86_SW_PROTECTED_VM))) {
                        vmm_log(vmm, "KVM_CAP_VM_TYPES = 0x%x: no KVM_X86_SW_PROTECTED_VM "
                                "(CONFIG_KVM_SW_PROTECTED_VM)", r);
                        *ret_skip = "this kernel cannot create sw-protected VMs";
                        return -EOPNOTSUPP;
                }
        }
        vmm->vm_fd = ioctl(vmm->kvm_fd, KVM_CREATE_VM,
                           (unsigned long) (vmm->opt.vm_type == VMM_VM_SW_PROTECTED ? KVM_X86_SW_PROTECTED_VM
                                                                                   : KVM_X86_DEFAULT_VM));
        if (vmm->vm_fd < 0) {
                r = -errno;
                *ret_skip = "KVM_CREATE_VM failed";
                return r;
        }
        if (vmm->opt.vm_type == VMM_VM_SW_PROTECTED) {
                struct kvm_enable_cap cap = {
                        .cap = KVM_CAP_EXIT_HYPERCALL,
                        .args = { 1ull << KVM_HC_MAP_GPA_RANGE },
                };

                r = ioctl(vmm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
                if (r > 0 && (r & (1 << KVM_HC_MAP_GPA_RANGE)) && ioctl(vmm->vm_fd, KVM_ENABLE_CAP, &cap) == 0)
                        vmm->real_hypercall = true;
                else
                        vmm_log(vmm, "KVM_CAP_EXIT_HYPERCALL(MAP_GPA_RANGE) unavailable (%d, %m): "
                                "the guest uses the I/O-port stand-in", r);
        }
        if (ioctl(vmm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0 ||
            ioctl(vmm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) <= 0) {
                *ret_skip = "guest_memfd (KVM_CAP_GUEST_MEMFD, KVM_CAP_USER_MEMORY2) unavailable";
                return -EOPNOTSUPP;
        }
        flags_cap = ioctl(vmm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
        /* A sw-protected VM's guest_memfd is private only: flags 0 (6.12
         * refuses MMAP and INIT_SHARED; 7.3 accepts MMAP but it SIGBUSes). */
        if (flags_cap > 0 && vmm->opt.vm_type == VMM_VM_DEFAULT)
                vmm->gmem_flags = (uint64_t) flags_cap & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
        gm.size = vmm->ram_size;
        gm.flags = vmm->gmem_flags;
        vmm->gmem_fd = ioctl(vmm->vm_fd, KVM_CREATE_GUEST_MEMFD, &gm);
        if (vmm->gmem_fd < 0) {
                r = -errno;
                vmm_log(vmm, "KVM_CREATE_GUEST_MEMFD(flags 0x%llx): %s", (unsigned long long) gm.flags,
                        strerror(-r));
                *ret_skip = "KVM_CREATE_GUEST_MEMFD failed";
                return r;
        }
        /* KVM creates the guest_memfd without O_CLOEXEC. */
        if (fcntl(vmm->gmem_fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;

        vmm->shared_fd = memfd_create("memconv-vmm-shared", MFD_CLOEXEC);
        if (vmm->shared_fd < 0 || ftruncate(vmm->shared_fd, (off_t) vmm->ram_size) < 0) {
                r = -errno;
                vmm_log(vmm, "shared memfd: %s", strerror(-r));
                return r;
        }
        p = mmap(NULL, vmm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, vmm->shared_fd, 0);
        if (p == MAP_FAILED) {
                r = -errno;
                vmm_log(vmm, "mmap shared memfd: %s", strerror(-r));
                return r;
        }
        vmm->shared_map = p;

        if (vmm->gmem_flags & GUEST_MEMFD_FLAG_MMAP) {
                p = mmap(NULL, vmm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, vmm->gmem_fd, 0);
                if (p == MAP_FAILED) {
                        r = -errno;
                        vmm_log(vmm, "mmap guest_memfd: %s", strerror(-r));
                        return r;
                }
                vmm->gmem_map = p;
        }

        /* Slot 0: the private view. Without MMAP the slot's shared pages
         * come from the shared memfd, as in a real confidential VM. */
        r = vmm_set_region(vmm, 0, KVM_MEM_GUEST_MEMFD, 0, vmm->ram_size,
                           vmm->gmem_map ? vmm->gmem_map : vmm->shared_map, vmm->gmem_fd);
        if (r < 0) {
                vmm_log(vmm, "KVM_SET_USER_MEMORY_REGION2(guest_memfd slot): %s", strerror(-r));
                *ret_skip = "a guest_memfd memslot is refused";
                return r;
        }
        r = vmm_set_region(vmm, 1, 0, SHARED_ALIAS, vmm->ram_size, vmm->shared_map, -1);
        if (r < 0) {
                vmm_log(vmm, "KVM_SET_USER_MEMORY_REGION2(shared slot): %s", strerror(-r));
                return r;
        }

        vmm->code_size = CODE_SIZE + (size_t) vmm->opt.vcpus * STACK_SIZE;
        p = mmap(NULL, vmm->code_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return -errno;
        vmm->code_map = p;
        memcpy(vmm->code_map, vmm_guest_start, (size_t) (vmm_guest_end - vmm_guest_start));
        r = vmm_set_region(vmm, 2, 0, CODE_GPA, vmm->code_size, vmm->code_map, -1);
        if (r < 0) {
                vmm_log(vmm, "KVM_SET_USER_MEMORY_REGION2(code slot): %s", strerror(-r));
                return r;
        }

        r = attr_new(vmm->vm_fd, vmm->ram_size, &vmm->attr);
        if (r < 0)
                return r;

        vmm->vcpus = calloc(vmm->opt.vcpus, sizeof(*vmm->vcpus));
        if (!vmm->vcpus)
                return -ENOMEM;
        for (unsigned i = 0; i < vmm->opt.vcpus; i++)
                vmm->vcpus[i].fd = -1;
        for (unsigned i = 0; i < vmm->opt.vcpus; i++) {
                struct vcpu *v = &vmm->vcpus[i];

                r = vcpu_init(vmm, v, i);
                if (r < 0) {
                        vmm_log(vmm, "vCPU %u: %s", i, strerror(-r));
                        return r;
                }
                v->slice_size = (vmm->ram_size / vmm->opt.vcpus) & ~((2ull << 20) - 1);
                v->slice_base = (uint64_t) i * v->slice_size;
        }
        return 0;
}

/**
 * vmm_teardown() - release everything vmm_setup() built; accepts half-built
 * @vmm: the VMM
 */
static void vmm_teardown(struct vmm *vmm)
{
        conv_teardown(vmm);
        if (vmm->vcpus)
                for (unsigned i = 0; i < vmm->opt.vcpus; i++) {
                        vcpu_destroy(&vmm->vcpus[i]);
                        free(vmm->vcpus[i].applied);
                        vmm->vcpus[i].applied = NULL;
                }
        free(vmm->vcpus);
        vmm->vcpus = NULL;
        vmm->attr = attr_free(vmm->attr);
        if (vmm->code_map)
                munmap(vmm->code_map, vmm->code_size);
        if (vmm->gmem_map)
                munmap(vmm->gmem_map, vmm->ram_size);
        if (vmm->shared_map)
                munmap(vmm->shared_map, vmm->ram_size);
        if (vmm->shared_fd >= 0)
                close(vmm->shared_fd);
        if (vmm->gmem_fd >= 0)
                close(vmm->gmem_fd);
        if (vmm->vm_fd >= 0)
                close(vmm->vm_fd);
        if (vmm->kvm_fd >= 0)
                close(vmm->kvm_fd);
        vmm->code_map = vmm->gmem_map = vmm->shared_map = NULL;
        vmm->shared_fd = vmm->gmem_fd = vmm->vm_fd = vmm->kvm_fd = -1;
}

struct vmm_thread {
        struct vcpu *v;
        const struct scenario *sc;
        pthread_t tid;
        int r;
};

/**
 * vmm_thread_main() - run one scenario on one vCPU
 * @arg: the struct vmm_thread (borrowed)
 *
 * Return: NULL; the result is in the struct vmm_thread and v->fail.
 */
static void *vmm_thread_main(void *arg)
{
        struct vmm_thread *t = arg;

        t->v->fail[0] = '\0';
        t->r = t->sc->fn(t->v);
        if (t->r < 0 && !t->v->fail[0])
                snprintf(t->v->fail, sizeof(t->v->fail), "vcpu%u: %s", t->v->idx, strerror(-t->r));
        return NULL;
}

/**
 * vmm_run_scenario() - run @sc on every vCPU in parallel and print the result
 * @vmm: the VMM
 * @sc: the scenario
 *
 * Return: true if it passed on every vCPU
 */
static bool vmm_run_scenario(struct vmm *vmm, const struct scenario *sc)
{
        unsigned n = vmm->opt.vcpus;
        struct vmm_thread *t = calloc(n, sizeof(*t));
        bool ok = true;

        if (!t) {
                printf("FAIL %s: out of memory\n", sc->name);
                return false;
        }
        atomic_store(&vmm->race_stop, false);
        atomic_store(&vmm->race_readers_done, 0);
        vmm->gate_arrived = 0;
        for (unsigned i = 0; i < n; i++) {
                t[i].v = &vmm->vcpus[i];
                t[i].sc = sc;
                if (pthread_create(&t[i].tid, NULL, vmm_thread_main, &t[i]) != 0) {
                        /* Run it here instead: still one vCPU per thread at a time. */
                        vmm_thread_main(&t[i]);
                        t[i].tid = 0;
                }
        }
        for (unsigned i = 0; i < n; i++)
                if (t[i].tid)
                        pthread_join(t[i].tid, NULL);
        for (unsigned i = 0; i < n && ok; i++) {
                if (t[i].r < 0 || vmm->vcpus[i].fail[0]) {
                        vmm_log(vmm, "FAIL %s: %s", sc->name, vmm->vcpus[i].fail);
                        ok = false;
                }
        }
        if (ok)
                vmm_log(vmm, "PASS %s", sc->name);
        free(t);
        return ok;
}

/**
 * vmm_write_stats() - the --stats-out JSON document
 * @vmm: the VMM, scenarios finished
 * @f: the stream
 *
 * Per vCPU what it was answered (struct vcpu_counts), and the merged
 * latency histogram as [lower_ns, upper_ns, count] for every non-empty
 * bucket (a sample s of a bucket has lower <= s < upper).
 */
static void vmm_write_stats(struct vmm *vmm, FILE *f)
{
        uint64_t count = 0, sum = 0, max = 0;
        bool first = true;

        fprintf(f, "{\n  \"name\": \"%s\",\n  \"pid\": %d,\n  \"mode\": \"%s\",\n  \"vcpus\": %u,\n"
                "  \"ram_bytes\": %llu,\n  \"run_start_ns\": %llu,\n  \"run_end_ns\": %llu,\n"
                "  \"storm_end_ns\": %llu,\n  \"stray_applies\": %lu,\n  \"vcpu\": [\n",
                vmm->opt.name, (int) getpid(), vmm->opt.mode == VMM_MODE_INLINE ? "inline" : "daemon",
                vmm->opt.vcpus, (unsigned long long) vmm->ram_size, (unsigned long long) vmm->run_start_ns,
                (unsigned long long) vmm->run_end_ns, (unsigned long long) vmm->storm_end_ns,
                atomic_load(&vmm->stray_applies));
        for (unsigned i = 0; i < vmm->opt.vcpus; i++) {
                const struct vcpu *v = &vmm->vcpus[i];
                const struct vcpu_counts *c = &v->counts;

                fprintf(f, "    {\"idx\": %u, \"requests\": %llu, \"applied\": %llu, \"applied_ranges\": %llu, "
                        "\"explicit_to_private\": %llu, \"explicit_to_shared\": %llu, "
                        "\"implicit_to_private\": %llu, \"implicit_to_shared\": %llu, "
                        "\"bytes_to_private\": %llu, \"bytes_to_shared\": %llu, \"retry\": %llu, "
                        "\"refused\": %llu, \"not_handled\": %llu, \"errors\": %llu, "
                        "\"applied_log_complete\": %s}%s\n",
                        i, (unsigned long long) c->requests, (unsigned long long) c->applied,
                        (unsigned long long) c->applied_ranges, (unsigned long long) c->applied_kind[0][1],
                        (unsigned long long) c->applied_kind[0][0], (unsigned long long) c->applied_kind[1][1],
                        (unsigned long long) c->applied_kind[1][0], (unsigned long long) c->bytes_to[1],
                        (unsigned long long) c->bytes_to[0], (unsigned long long) c->retry,
                        (unsigned long long) c->refused, (unsigned long long) c->not_handled,
                        (unsigned long long) c->errors, v->applied_oom ? "false" : "true",
                        i + 1 < vmm->opt.vcpus ? "," : "");
                count += v->lat.count;
                sum += v->lat.sum_ns;
                if (v->lat.max_ns > max)
                        max = v->lat.max_ns;
        }
        fprintf(f, "  ],\n  \"latency_ns\": {\"count\": %llu, \"sum\": %llu, \"max\": %llu, \"buckets\": [",
                (unsigned long long) count, (unsigned long long) sum, (unsigned long long) max);
        for (unsigned b = 0; b < LAT_BUCKETS; b++) {
                uint64_t n = 0, lo, hi;

                for (unsigned i = 0; i < vmm->opt.vcpus; i++)
                        n += vmm->vcpus[i].lat.buckets[b];
                if (!n)
                        continue;
                if (b < LAT_SUB) {
                        lo = b;
                        hi = b + 1;
                } else {
                        unsigned e = b / LAT_SUB + LAT_SUB_BITS - 1;

                        lo = (uint64_t) (LAT_SUB + b % LAT_SUB) << (e - LAT_SUB_BITS);
                        hi = lo + (1ull << (e - LAT_SUB_BITS));
                }
                fprintf(f, "%s[%llu, %llu, %llu]", first ? "" : ", ", (unsigned long long) lo,
                        (unsigned long long) hi, (unsigned long long) n);
                first = false;
        }
        fprintf(f, "]}\n}\n");
}

/**
 * vmm_write_applied() - the --applied-out lines, vCPU by vCPU, in order
 * @vmm: the VMM, scenarios finished
 * @f: the stream
 */
static void vmm_write_applied(struct vmm *vmm, FILE *f)
{
        for (unsigned i = 0; i < vmm->opt.vcpus; i++) {
                const struct vcpu *v = &vmm->vcpus[i];

                for (size_t k = 0; k < v->n_applied; k++)
                        fprintf(f, "%u %llu 0x%llx 0x%llx %s %s\n", i, (unsigned long long) v->applied[k].decision,
                                (unsigned long long) v->applied[k].gpa, (unsigned long long) v->applied[k].size,
                                v->applied[k].to_private ? "private" : "shared",
                                v->applied[k].implicit ? "implicit" : "explicit");
        }
}

/**
 * vmm_write_file() - write @path with @fn, complaining on failure
 * @vmm: the VMM
 * @path: the file
 * @fn: what writes it
 *
 * Return: 0 or a negative errno (printed)
 */
static int vmm_write_file(struct vmm *vmm, const char *path, void (*fn)(struct vmm *, FILE *))
{
        FILE *f = fopen(path, "we");
        int r = 0;

        if (!f) {
                r = -errno;
        } else {
                fn(vmm, f);
                if (ferror(f))
                        r = -EIO;
                if (fclose(f) != 0 && r == 0)
                        r = -errno;
        }
        if (r < 0)
                printf("vmm: cannot write %s: %s\n", path, strerror(-r));
        return r;
}

/**
 * vmm_usage() - print --help
 * @f: stream
 */
static void vmm_usage(FILE *f)
{
        fprintf(f,
                "Usage: memconv-vmm [OPTIONS]\n"
                "Run real KVM guests that convert memory between private and shared.\n\n"
                "  --mode daemon|inline   convert through memconvd (default) or in the VMM\n"
                "  --vm-type default|sw-protected\n"
                "                         KVM_X86_DEFAULT_VM (default) or KVM_X86_SW_PROTECTED_VM:\n"
                "                         real private memory, real memory-fault and hypercall exits\n"
                "  --socket PATH          memconvd VMM socket (default %s)\n"
                "  --uuid UUID            VM uuid (default: random)\n"
                "  --name NAME            VM name (default memconv-vmm)\n"
                "  --scenario NAME        run a scenario; repeatable; 'all' (default all)\n"
                "  --vcpus N              vCPUs, one thread each (default 1)\n"
                "  --mem-mb N             convertible RAM in MiB, even, >= 4 per vCPU\n"
                "                         (default max(8, 4 * vcpus))\n"
                "  --iterations N         storm iterations per vCPU (default 2000)\n"
                "  --seed N               storm random seed (default 1)\n"
                "  --seconds N            storm: run for N seconds of wall time (after its\n"
                "                         set-up) instead of --iterations\n"
                "  --state-out FILE       write the final attributes as 'gpa size private|shared'\n"
                "  --stats-out FILE       write what each vCPU was answered (daemon mode) and the\n"
                "                         latency histogram of conversions as JSON\n"
                "  --applied-out FILE     write every range a decision applied: 'vcpu decision gpa\n"
                "                         size private|shared explicit|implicit', in order\n"
                "  --start-signal         print 'vmm: ready' and wait for SIGUSR1 before the\n"
                "                         scenarios (a first storm: after every vCPU set its\n"
                "                         slice up; --seconds counts from there)\n"
                "  --hold                 after the scenarios (guests halted, files written), print\n"
                "                         'vmm: holding' and stay attached until SIGUSR1\n"
                "  --lease                daemon mode: ask memconvd for a policy lease and convert\n"
                "                         under it when it covers a request; prints 'vmm: lease:'\n"
                "                         counters at the end\n"
                "  --verbose              one line per conversion event\n"
                "  --help                 this text\n\n"
                "Scenarios:\n",
                MC_DEFAULT_SOCKET);
        for (const struct scenario *s = scenarios; s->name; s++)
                fprintf(f, "  %-10s %s%s\n", s->name, s->summary, s->in_all ? "" : " (not in 'all')");
        fprintf(f, "\nExit status: 0 all passed, 1 failure, 2 usage error, 77 skipped (no /dev/kvm\n"
                   "or guest_memfd).\n");
}

/**
 * vmm_parse_ulong() - parse a decimal option value
 * @s: text
 * @min: smallest accepted
 * @max: largest accepted
 * @ret: the value, untouched on failure
 *
 * Return: 0 or -EINVAL
 */
static int vmm_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || end == s || *end || v < min || v > max || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

/**
 * main() - parse options, set the VM up, run the scenarios, print the summary
 * @argc: argument count
 * @argv: arguments
 *
 * Return: 0 all passed, 1 failure, 2 usage error, 77 skipped
 */
int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "mode", required_argument, NULL, 'm' },
                { "vm-type", required_argument, NULL, 't' },
                { "socket", required_argument, NULL, 'S' },
                { "uuid", required_argument, NULL, 'u' },
                { "name", required_argument, NULL, 'n' },
                { "scenario", required_argument, NULL, 's' },
                { "vcpus", required_argument, NULL, 'c' },
                { "mem-mb", required_argument, NULL, 'M' },
                { "iterations", required_argument, NULL, 'i' },
                { "seed", required_argument, NULL, 'r' },
                { "state-out", required_argument, NULL, 'o' },
                { "seconds", required_argument, NULL, 'T' },
                { "stats-out", required_argument, NULL, 'O' },
                { "applied-out", required_argument, NULL, 'A' },
                { "start-signal", no_argument, NULL, 'W' },
                { "hold", no_argument, NULL, 'H' },
                { "lease", no_argument, NULL, 'L' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const struct scenario *sel[64];
        unsigned nsel = 0, passed = 0, failed = 0;
        const char *skip = NULL;
        struct vmm vmm = {
                .opt = {
                        .mode = VMM_MODE_DAEMON,
                        .socket_path = MC_DEFAULT_SOCKET,
                        .name = "memconv-vmm",
                        .vcpus = 1,
                        .iterations = 2000,
                        .seed = 1,
                },
                .kvm_fd = -1, .vm_fd = -1, .gmem_fd = -1, .shared_fd = -1,
        };
        unsigned long val;
        sigset_t usr1;
        int c, r, sig;

        pthread_mutex_init(&vmm.log_lock, NULL);
        pthread_mutex_init(&vmm.gate_lock, NULL);
        pthread_cond_init(&vmm.gate_cond, NULL);
        while ((c = getopt_long(argc, argv, "hv", opts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        if (!strcmp(optarg, "daemon"))
                                vmm.opt.mode = VMM_MODE_DAEMON;
                        else if (!strcmp(optarg, "inline"))
                                vmm.opt.mode = VMM_MODE_INLINE;
                        else {
                                fprintf(stderr, "memconv-vmm: unknown mode '%s' (daemon or inline)\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 't':
                        if (!strcmp(optarg, "default"))
                                vmm.opt.vm_type = VMM_VM_DEFAULT;
                        else if (!strcmp(optarg, "sw-protected"))
                                vmm.opt.vm_type = VMM_VM_SW_PROTECTED;
                        else {
                                fprintf(stderr, "memconv-vmm: unknown VM type '%s' (default or sw-protected)\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'S':
                        vmm.opt.socket_path = optarg;
                        break;
                case 'u':
                        vmm.opt.uuid = optarg;
                        break;
                case 'n':
                        vmm.opt.name = optarg;
                        break;
                case 's':
                        if (!strcmp(optarg, "all")) {
                                for (const struct scenario *s = scenarios; s->name; s++)
                                        if (s->in_all && nsel < ELEMENTS(sel))
                                                sel[nsel++] = s;
                                break;
                        }
                        if (!scenario_find(optarg)) {
                                fprintf(stderr, "memconv-vmm: unknown scenario '%s' (see --help)\n", optarg);
                                return EXIT_USAGE;
                        }
                        if (nsel >= ELEMENTS(sel)) {
                                fprintf(stderr, "memconv-vmm: too many --scenario options\n");
                                return EXIT_USAGE;
                        }
                        sel[nsel++] = scenario_find(optarg);
                        break;
                case 'c':
                        if (vmm_parse_ulong(optarg, 1, 64, &val) < 0) {
                                fprintf(stderr, "memconv-vmm: --vcpus wants 1..64\n");
                                return EXIT_USAGE;
                        }
                        vmm.opt.vcpus = (unsigned) val;
                        break;
                case 'M':
                        if (vmm_parse_ulong(optarg, 2, VMM_MAX_RAM_MB, &val) < 0 || val % 2) {
                                fprintf(stderr, "memconv-vmm: --mem-mb wants an even number 2..%u\n",
                                        VMM_MAX_RAM_MB);
                                return EXIT_USAGE;
                        }
                        vmm.opt.mem_mb = (unsigned) val;
                        break;
                case 'i':
                        if (vmm_parse_ulong(optarg, 1, 100000000, &vmm.opt.iterations) < 0) {
                                fprintf(stderr, "memconv-vmm: --iterations wants a positive number\n");
                                return EXIT_USAGE;
                        }
                        break;
                case 'r':
                        if (vmm_parse_ulong(optarg, 0, ~0ul, &vmm.opt.seed) < 0) {
                                fprintf(stderr, "memconv-vmm: --seed wants a number\n");
                                return EXIT_USAGE;
                        }
                        break;
                case 'o':
                        vmm.opt.state_out = optarg;
                        break;
                case 'T':
                        if (vmm_parse_ulong(optarg, 1, 86400, &vmm.opt.seconds) < 0) {
                                fprintf(stderr, "memconv-vmm: --seconds wants 1..86400\n");
                                return EXIT_USAGE;
                        }
                        break;
                case 'O':
                        vmm.opt.stats_out = optarg;
                        break;
                case 'A':
                        vmm.opt.applied_out = optarg;
                        break;
                case 'W':
                        vmm.opt.start_signal = true;
                        break;
                case 'H':
                        vmm.opt.hold = true;
                        break;
                case 'L':
                        vmm.opt.lease = true;
                        break;
                case 'v':
                        vmm.opt.verbose = true;
                        break;
                case 'h':
                        vmm_usage(stdout);
                        return 0;
                default:
                        vmm_usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "memconv-vmm: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (!vmm.opt.mem_mb)
                vmm.opt.mem_mb = vmm.opt.vcpus * 4 > 8 ? vmm.opt.vcpus * 4 : 8;
        if (((uint64_t) vmm.opt.mem_mb << 20) / vmm.opt.vcpus < SLICE_MIN) {
                fprintf(stderr, "memconv-vmm: --mem-mb %u is too small for %u vCPUs (at least %u)\n",
                        vmm.opt.mem_mb, vmm.opt.vcpus, vmm.opt.vcpus * 4);
                return EXIT_USAGE;
        }
        if (nsel == 0)
                for (const struct scenario *s = scenarios; s->name; s++)
                        if (s->in_all)
                                sel[nsel++] = s;

        /* Before any thread exists, so that every thread inherits the mask:
         * SIGUSR1 is taken only by sigwait() in this thread. */
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        if ((vmm.opt.start_signal || vmm.opt.hold) && pthread_sigmask(SIG_BLOCK, &usr1, NULL) != 0) {
                printf("vmm: cannot block SIGUSR1\n");
                return 1;
        }

        r = vmm_setup(&vmm, &skip);
        if (r < 0) {
                vmm_teardown(&vmm);
                if (skip) {
                        printf("SKIP: %s (%s)\n", skip, strerror(-r));
                        printf("vmm: 0 passed, 0 failed, %u skipped\n", nsel);
                        return EXIT_SKIP;
                }
                printf("vmm: setup failed: %s\n", strerror(-r));
                printf("vmm: 0 passed, %u failed\n", nsel);
                return 1;
        }
        printf("attribute backend: %s\n", attr_describe(vmm.attr));
        printf("mode: %s, %u vCPU(s), %u MiB RAM, guest_memfd flags 0x%llx, VM type %s%s\n",
               vmm.opt.mode == VMM_MODE_INLINE ? "inline" : "daemon", vmm.opt.vcpus, vmm.opt.mem_mb,
               (unsigned long long) vmm.gmem_flags,
               vmm.opt.vm_type == VMM_VM_SW_PROTECTED ? "sw-protected" : "default",
               vmm.real_hypercall ? ", MAP_GPA_RANGE by vmmcall" : "");
        fflush(stdout);
        r = conv_setup(&vmm);
        if (r < 0) {
                printf("vmm: cannot use memconvd at %s: %s (start it, or use --mode inline)\n",
                       vmm.opt.socket_path, strerror(-r));
                vmm_teardown(&vmm);
                printf("vmm: 0 passed, %u failed\n", nsel);
                return 1;
        }

        /* A storm that runs first waits at its own start line, after its
         * set-up (vmm_storm_gate()); anything else waits here. */
        if (vmm.opt.start_signal && strcmp(sel[0]->name, "storm") != 0) {
                printf("vmm: ready (pid %d): send SIGUSR1 to start\n", (int) getpid());
                fflush(stdout);
                sigwait(&usr1, &sig);
                vmm.gate_signalled = true;
        }
        vmm.run_start_ns = vmm_now_ns(); /* the storm's gate moves it to its timed part */
        for (unsigned i = 0; i < nsel; i++) {
                if (vmm_run_scenario(&vmm, sel[i]))
                        passed++;
                else
                        failed++;
        }
        vmm.run_end_ns = vmm_now_ns();

        /* Let every guest halt: the end of its command loop. */
        for (unsigned i = 0; i < vmm.opt.vcpus; i++) {
                r = vcpu_command(&vmm.vcpus[i], CMD_DONE, NULL, 0, NULL);
                if (r != 1 && !failed) {
                        printf("vmm: vCPU %u did not halt on DONE: %s\n", i, r < 0 ? strerror(-r) : "no");
                        failed++;
                }
        }

        if (vmm.opt.verbose) {
                unsigned long n = atomic_load(&vmm.stats.conv4k_n);

                printf("vmm: %lu private faults, %lu shared faults, %lu hypercalls, %lu refused",
                       atomic_load(&vmm.stats.faults_private), atomic_load(&vmm.stats.faults_shared),
                       atomic_load(&vmm.stats.hypercalls), atomic_load(&vmm.stats.refused));
                if (n)
                        printf(", 4 KiB conversion %.1f us mean over %lu",
                               (double) atomic_load(&vmm.stats.conv4k_ns) / (double) n / 1000.0, n);
                printf("\n");
        }
        if (vmm.opt.vm_type == VMM_VM_SW_PROTECTED)
                printf("vmm: real KVM exits: memory fault flags 0x8: %lu, flags 0x0: %lu, hypercall: %lu\n",
                       atomic_load(&vmm.stats.real_faults_private), atomic_load(&vmm.stats.real_faults_shared),
                       atomic_load(&vmm.stats.real_hypercalls));
        if (vmm.opt.state_out) {
                FILE *f = fopen(vmm.opt.state_out, "we");

                r = f ? attr_dump(vmm.attr, f) : -errno;
                if (f && fclose(f) != 0 && r == 0)
                        r = -errno;
                if (r < 0) {
                        printf("vmm: cannot write %s: %s\n", vmm.opt.state_out, strerror(-r));
                        failed++;
                }
        }
        if (vmm.opt.stats_out && vmm_write_file(&vmm, vmm.opt.stats_out, vmm_write_stats) < 0)
                failed++;
        if (vmm.opt.applied_out && vmm_write_file(&vmm, vmm.opt.applied_out, vmm_write_applied) < 0)
                failed++;
        if (vmm.opt.hold) {
                /* Idle and attached: the daemon's view can be checked against ours. */
                printf("vmm: holding (pid %d): send SIGUSR1 to detach\n", (int) getpid());
                fflush(stdout);
                sigwait(&usr1, &sig);
        }
        vmm_teardown(&vmm);
        printf("vmm: %u passed, %u failed\n", passed, failed);
        return failed ? 1 : 0;
}
