/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memconv-bench.c - the conversion benchmark: real KVM guests converting
 * memory in a tight loop, in the VMM (the baseline) or through memconvd.
 *
 * Theory of operation. Each VM is its own process (forked by the parent,
 * which only collects results) with a VM of the default type, a guest_memfd
 * RAM slot at GPA 0 (the private backing), a memfd slot at SHARED_ALIAS (the
 * shared backing) and one code page. The guest is two instructions,
 *
 *         1: in $PORT, %al ; jmp 1b
 *
 * so almost no guest instruction runs (they are emulated and slow here):
 * every KVM_RUN is one KVM_EXIT_IO round trip. In the conversion modes each
 * exit stands for one conversion request, whose range the VMM takes from a
 * fixed schedule; the VMM builds the struct kvm_run KVM itself would have
 * produced on a kernel with private memory (KVM_EXIT_HYPERCALL /
 * KVM_HC_MAP_GPA_RANGE for "explicit", KVM_EXIT_MEMORY_FAULT for
 * "implicit", both of which carry their arguments in the run, so no
 * KVM_GET_REGS is needed) and hands it to:
 *
 *  - mode "inline": what QEMU's kvm_convert_memory() does on the vCPU
 *    thread: flip the attribute, then fallocate(PUNCH_HOLE|KEEP_SIZE) the
 *    old backing (guest_memfd when going to shared, the memfd when going to
 *    private), then re-enter;
 *  - mode "daemon": mc_handle_exit() of libmemconv, which asks memconvd,
 *    flips the attribute through our callback, reports Applied and lets
 *    memconvd discard off the vCPU's path;
 *  - mode "lease": as "daemon", with a policy lease (mc_client_set_lease()):
 *    libmemconv flips the attribute on the vCPU thread at once and reports
 *    the conversion to memconvd afterwards, which records and discards it;
 *  - mode "floor": nothing (the raw KVM exit round trip).
 *
 * The attribute flip is the same software stand-in in both modes (this
 * kernel has no KVM_SET_MEMORY_ATTRIBUTES): one byte per page under a
 * mutex. On a kernel with private memory both modes would pay the same
 * ioctl on top.
 *
 * A run is a number of rounds. Round r converts every range of every
 * vCPU's area to private (r even) or to shared (r odd), so every request
 * really changes state. Before the timed part of a round each vCPU
 * populates the backing the round will discard (MADV_POPULATE_WRITE), so
 * the discard costs what it costs on memory a guest has used. A round
 * ends for a vCPU when its conversions are done *and* the discarded
 * backing is really gone (mincore() shows no resident page): memconvd
 * discards asynchronously, and throughput must include that work.
 *
 * Per conversion two times are taken: the vCPU-visible latency (from
 * KVM_RUN returning with the exit to the moment the vCPU may re-enter) and
 * the guest round trip (from one exit to the next: handler + one KVM entry
 * and exit, what a guest timing its request would see).
 *
 * Usage:
 *   memconv-bench pingpong --placement same|cross|free [--iterations N] [--client-poll USEC]
 *   memconv-bench kvm --mode floor|inline|daemon|lease [--socket PATH] [--size BYTES]
 *                 [--vcpus N] [--vms N] [--kind explicit|implicit]
 *                 [--per-round N] [--rounds N] [--placement same|free]
 *                 [--label TEXT] [--client-poll USEC] [--client-ring 0|1]
 * (--client-ring 0: mc_client_set_ring(false), everything on the socket.)
 * Exit status: 0, 1 on failure, 77 when /dev/kvm is not usable.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "memconv.h"

#include "bench-util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096u
#define SHARED_ALIAS 0x80000000ull
#define CODE_GPA 0xC0000000ull
#define GUEST_PORT 0x14
#define MAX_VMS 64
#define MAX_VCPUS 8
#define MAX_ROUNDS 64
#define DRAIN_TIMEOUT_NS 30000000000ull

enum bench_mode { MODE_FLOOR, MODE_INLINE, MODE_DAEMON };

struct options {
        enum bench_mode mode;
        bool lease;             /* mode "lease": MODE_DAEMON with a lease */
        const char *socket;
        uint64_t size;
        unsigned vcpus, vms, per_round, rounds;
        bool implicit;
        int vcpu_cpu; /* -1: not pinned */
        const char *label;
        int client_poll_usec;   /* --client-poll: mc_client_set_poll(); -1: the library's default */
        bool client_ring;       /* --client-ring: mc_client_set_ring() (default on) */
};

/*
 * Everything the processes share: a barrier over all vCPU threads of all
 * VMs, and the samples. Lives in a MAP_SHARED anonymous mapping made before
 * fork(); samples[vm][vcpu][round][i].
 */
struct shared {
        pthread_barrier_t barrier;
        int failed;
        uint64_t round_start[MAX_VMS][MAX_VCPUS][MAX_ROUNDS];
        uint64_t round_end[MAX_VMS][MAX_VCPUS][MAX_ROUNDS];
        uint64_t vmm_cpu_ns[MAX_VMS];
        uint64_t poll_hits[MAX_VMS], poll_misses[MAX_VMS], poll_us[MAX_VMS]; /* mc_client_poll_stats() */
        uint64_t ring_requests[MAX_VMS], ring_replies[MAX_VMS]; /* mc_client_ring_stats() */
        uint64_t samples[]; /* lat then rt, see sample_at() */
};

struct vm;

struct vcpu {
        struct vm *vm; /* borrowed */
        unsigned idx;
        int fd;        /* owned */
        struct kvm_run *run;
        pthread_t thread;
};

struct vm {
        const struct options *opt;
        struct shared *sh;
        unsigned idx;
        int kvm_fd, vm_fd, gmem_fd, shm_fd; /* owned */
        size_t run_size;
        uint64_t ram;
        uint8_t *gmem_map, *shm_map, *code; /* owned mappings */
        pthread_mutex_t attr_lock;
        uint8_t *attr;                      /* owned: 1 byte per page, 1 = private */
        mc_client *client;                  /* owned, daemon mode */
        struct vcpu vcpus[MAX_VCPUS];
};

static struct options opt = {
        .mode = MODE_INLINE,
        .size = PAGE,
        .vcpus = 1,
        .vms = 1,
        .per_round = 500,
        .rounds = 4,
        .vcpu_cpu = -1,
        .client_poll_usec = -1,
        .client_ring = true,
        .label = "",
};

/**
 * sample_at() - where sample @i of (@vm, @vcpu, @round) of kind @rt lives
 * Return: a pointer into @sh
 */
static uint64_t *sample_at(struct shared *sh, unsigned rt, unsigned vm, unsigned vcpu, unsigned round,
                           unsigned i)
{
        size_t per_kind = (size_t) opt.vms * opt.vcpus * opt.rounds * opt.per_round;

        return &sh->samples[rt * per_kind +
                            (((size_t) vm * opt.vcpus + vcpu) * opt.rounds + round) * opt.per_round + i];
}

/* ------------------------------------------------------------------ pingpong */

/*
 * pingpong_wait() - with --client-poll USEC, poll @fd for input up to USEC,
 * yielding between polls, as libmemconv and memconvd do before they sleep
 */
static void pingpong_wait(int fd)
{
        uint64_t t0;

        if (opt.client_poll_usec <= 0)
                return;
        t0 = bench_now_ns();
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (poll(&p, 1, 0) != 0 || bench_now_ns() - t0 >= (uint64_t) opt.client_poll_usec * 1000)
                        return;
                sched_yield();
        }
}

/**
 * cmd_pingpong() - SOCK_SEQPACKET round trips of 64 bytes between 2 processes
 * @placement: "same" (both on CPU 0), "cross" (CPU 0 and 1) or "free"
 * @iterations: round trips per round; 5 rounds
 *
 * Return: 0 or 1
 */
static int cmd_pingpong(const char *placement, unsigned iterations)
{
        const unsigned rounds = 5;
        int sv[2], cpu_a = -1, cpu_b = -1;
        char buf[64] = { 0 };
        uint64_t *v;
        double med, p99;
        pid_t pid;

        if (!strcmp(placement, "same"))
                cpu_a = cpu_b = 0;
        else if (!strcmp(placement, "cross"))
                cpu_a = 0, cpu_b = 1;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return perror("socketpair"), 1;
        pid = fork();
        if (pid < 0)
                return perror("fork"), 1;
        if (pid == 0) {
                close(sv[0]);
                bench_pin(cpu_b);
                for (;;) {
                        pingpong_wait(sv[1]);
                        if (read(sv[1], buf, sizeof(buf)) != (ssize_t) sizeof(buf) ||
                            write(sv[1], buf, sizeof(buf)) != (ssize_t) sizeof(buf))
                                break;
                }
                _exit(0);
        }
        close(sv[1]);
        bench_pin(cpu_a);
        v = calloc((size_t) rounds * iterations, sizeof(*v));
        if (!v)
                return 1;
        for (unsigned i = 0; i < 1000; i++) /* warm up */
                if (write(sv[0], buf, sizeof(buf)) != sizeof(buf) || read(sv[0], buf, sizeof(buf)) != sizeof(buf))
                        return perror("pingpong"), 1;
        for (size_t i = 0; i < (size_t) rounds * iterations; i++) {
                uint64_t t0 = bench_now_ns();

                if (write(sv[0], buf, sizeof(buf)) != sizeof(buf))
                        return perror("pingpong"), 1;
                pingpong_wait(sv[0]);
                if (read(sv[0], buf, sizeof(buf)) != sizeof(buf))
                        return perror("pingpong"), 1;
                v[i] = bench_now_ns() - t0;
        }
        close(sv[0]);
        waitpid(pid, NULL, 0);
        bench_summary(v, rounds, iterations, &med, &p99);
        printf("{\"name\": \"floor.seqpacket.%s%s\", \"unit\": \"us\", \"median\": %.3f, \"p99\": %.3f, "
               "\"samples\": %zu}\n",
               placement, opt.client_poll_usec > 0 ? ".polled" : "", med / 1000.0, p99 / 1000.0,
               (size_t) rounds * iterations);
        free(v);
        return 0;
}

/* ------------------------------------------------------------------ the VM */

/**
 * attr_flip() - the software attribute stand-in, identical in both modes
 * @vm: the VM
 * @gpa: first address (4 KiB aligned)
 * @size: bytes
 * @to_private: new attribute
 *
 * Return: 0 or -EINVAL
 */
static int attr_flip(struct vm *vm, uint64_t gpa, uint64_t size, bool to_private)
{
        if ((gpa | size) & (PAGE - 1) || gpa + size > vm->ram || gpa + size < gpa)
                return -EINVAL;
        pthread_mutex_lock(&vm->attr_lock);
        memset(vm->attr + gpa / PAGE, to_private, size / PAGE);
        pthread_mutex_unlock(&vm->attr_lock);
        return 0;
}

static int apply_cb(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        return attr_flip(userdata, gpa, size, to_private);
}

/**
 * set_slot() - KVM_SET_USER_MEMORY_REGION2
 * Return: 0 or a negative errno
 */
static int set_slot(struct vm *vm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size, void *uaddr,
                    int gmem_fd)
{
        struct kvm_userspace_memory_region2 r = {
                .slot = slot,
                .flags = flags,
                .guest_phys_addr = gpa,
                .memory_size = size,
                .userspace_addr = (uint64_t) (uintptr_t) uaddr,
                .guest_memfd_offset = 0,
                .guest_memfd = gmem_fd >= 0 ? (uint32_t) gmem_fd : 0,
        };

        return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0 ? -errno : 0;
}

/**
 * vm_setup() - create the VM, its backings, slots and vCPUs
 * @vm: zeroed except opt, sh, idx
 *
 * Return: 0, 77 when KVM or guest_memfd is unusable, or a negative errno
 */
static int vm_setup(struct vm *vm)
{
        static const uint8_t guest[] = { 0xe4, GUEST_PORT, 0xeb, 0xfc }; /* 1: in $PORT,%al; jmp 1b */
        struct kvm_create_guest_memfd gm = { 0 };
        int r, flags;
        void *p;

        vm->ram = opt.size * opt.per_round * opt.vcpus;
        vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (vm->kvm_fd < 0)
                return 77;
        r = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (r <= 0)
                return 77;
        vm->run_size = (size_t) r;
        vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, (unsigned long) KVM_X86_DEFAULT_VM);
        if (vm->vm_fd < 0)
                return 77;
        flags = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
        gm.size = vm->ram;
        gm.flags = flags > 0 ? (uint64_t) flags & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED) : 0;
        if (!(gm.flags & GUEST_MEMFD_FLAG_MMAP)) {
                fprintf(stderr, "memconv-bench: guest_memfd cannot be mmap'ed here\n");
                return 77;
        }
        vm->gmem_fd = ioctl(vm->vm_fd, KVM_CREATE_GUEST_MEMFD, &gm);
        if (vm->gmem_fd < 0)
                return 77;
        p = mmap(NULL, vm->ram, PROT_READ | PROT_WRITE, MAP_SHARED, vm->gmem_fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        vm->gmem_map = p;
        vm->shm_fd = memfd_create("memconv-bench-shared", MFD_CLOEXEC);
        if (vm->shm_fd < 0 || ftruncate(vm->shm_fd, (off_t) vm->ram) < 0)
                return -errno;
        p = mmap(NULL, vm->ram, PROT_READ | PROT_WRITE, MAP_SHARED, vm->shm_fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        vm->shm_map = p;
        p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return -errno;
        vm->code = p;
        memcpy(vm->code, guest, sizeof(guest));
        if ((r = set_slot(vm, 0, KVM_MEM_GUEST_MEMFD, 0, vm->ram, vm->gmem_map, vm->gmem_fd)) < 0 ||
            (r = set_slot(vm, 1, 0, SHARED_ALIAS, vm->ram, vm->shm_map, -1)) < 0 ||
            (r = set_slot(vm, 2, 0, CODE_GPA, PAGE, vm->code, -1)) < 0)
                return r;
        vm->attr = calloc(vm->ram / PAGE, 1);
        if (!vm->attr)
                return -ENOMEM;
        pthread_mutex_init(&vm->attr_lock, NULL);

        for (unsigned i = 0; i < opt.vcpus; i++) {
                struct vcpu *v = &vm->vcpus[i];
                struct kvm_segment seg = { .limit = 0xffffffff, .present = 1, .db = 1, .s = 1, .g = 1 };
                struct kvm_sregs sregs;
                struct kvm_regs regs = { .rflags = 2, .rip = CODE_GPA };

                v->vm = vm;
                v->idx = i;
                v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long) i);
                if (v->fd < 0)
                        return -errno;
                p = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
                if (p == MAP_FAILED)
                        return -errno;
                v->run = p;
                if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
                        return -errno;
                seg.type = 11;
                seg.selector = 0x08;
                sregs.cs = seg;
                seg.type = 3;
                seg.selector = 0x10;
                sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg;
                sregs.cr0 = (sregs.cr0 | 1) & ~(1ull << 31);
                sregs.cr4 = 0;
                sregs.efer = 0;
                if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
                        return -errno;
        }

        if (opt.mode == MODE_DAEMON) {
                struct mc_vm_info info = { .cc_type = MC_CC_NONE, .arch = MC_ARCH_X86_64 };
                struct mc_region_info region = {
                        .slot = 0, .gpa = 0, .size = vm->ram, .guest_memfd = vm->gmem_fd,
                        .shared_fd = vm->shm_fd, .initial_private = false,
                };
                char name[64];

                snprintf(name, sizeof(name), "bench-%d-%u", (int) getpid(), vm->idx);
                info.name = name;
                for (unsigned i = 0; i < 16; i++)
                        info.uuid[i] = (uint8_t) (getpid() >> (8 * (i % 4))) ^ (uint8_t) (i * 37 + vm->idx);
                info.uuid[6] = (info.uuid[6] & 0x0f) | 0x40;
                info.uuid[8] = (info.uuid[8] & 0x3f) | 0x80;
                r = mc_client_connect(opt.socket, &vm->client);
                if (r < 0)
                        return r;
                mc_client_set_apply(vm->client, apply_cb, vm);
                if (opt.client_poll_usec >= 0 && mc_client_set_poll(vm->client, (unsigned) opt.client_poll_usec) < 0)
                        return -EINVAL;
                if (!opt.client_ring)
                        (void) mc_client_set_ring(vm->client, false);
                r = mc_client_attach(vm->client, &info, NULL);
                if (r < 0)
                        return r;
                r = mc_client_register_region(vm->client, &region);
                if (r < 0)
                        return r;
                if (opt.lease) {
                        struct mc_lease_stats ls = { 0 };

                        r = mc_client_set_lease(vm->client, true);
                        if (r < 0)
                                return r;
                        /* The grant follows the answer: wait for it, reading as a main loop would. */
                        for (unsigned i = 0; i < 5000 && !ls.active; i++) {
                                (void) mc_client_dispatch(vm->client);
                                mc_client_lease_stats(vm->client, &ls);
                                if (!ls.active)
                                        usleep(1000);
                        }
                        if (!ls.active) {
                                fprintf(stderr, "memconv-bench: memconvd granted no lease\n");
                                return -EPERM;
                        }
                }
        }
        return 0;
}

/**
 * vcpu_run_once() - one KVM_RUN up to the guest's next `in`
 * Return: the time KVM_RUN returned, or 0 on failure
 */
static uint64_t vcpu_run_once(struct vcpu *v)
{
        for (;;) {
                if (ioctl(v->fd, KVM_RUN, 0) < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        perror("KVM_RUN");
                        return 0;
                }
                if (v->run->exit_reason == KVM_EXIT_IO && v->run->io.port == GUEST_PORT)
                        return bench_now_ns();
                fprintf(stderr, "memconv-bench: unexpected exit %u\n", v->run->exit_reason);
                return 0;
        }
}

/**
 * vcpu_convert() - handle one conversion request, as the mode says
 * @v: the vCPU
 * @gpa: first address
 * @to_private: the requested attribute
 *
 * Return: 0 or a negative errno
 */
static int vcpu_convert(struct vcpu *v, uint64_t gpa, bool to_private)
{
        struct vm *vm = v->vm;
        struct kvm_run local;
        int r;

        if (opt.mode == MODE_FLOOR)
                return 0;
        memset(&local, 0, sizeof(local));
        if (opt.implicit) {
                struct mc_kvm_memory_fault *mf = mc_kvm_run_memory_fault(&local);

                local.exit_reason = KVM_EXIT_MEMORY_FAULT;
                mf->flags = to_private ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0;
                mf->gpa = gpa;
                mf->size = opt.size;
        } else {
                local.exit_reason = KVM_EXIT_HYPERCALL;
                local.hypercall.nr = KVM_HC_MAP_GPA_RANGE;
                local.hypercall.args[0] = gpa;
                local.hypercall.args[1] = opt.size / PAGE;
                local.hypercall.args[2] = (to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : 0) |
                                          (opt.size % (2u << 20) == 0 ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M : 0);
        }
        if (opt.mode == MODE_INLINE) {
                /* QEMU's kvm_convert_memory(): flip, then discard the old backing. */
                r = attr_flip(vm, gpa, opt.size, to_private);
                if (r < 0)
                        return r;
                if (fallocate(to_private ? vm->shm_fd : vm->gmem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              (off_t) gpa, (off_t) opt.size) < 0)
                        return -errno;
                if (!opt.implicit)
                        local.hypercall.ret = 0;
                return 0;
        }
        r = mc_handle_exit(vm->client, v->idx, &local, NULL);
        if (r < 0)
                return r;
        if (r != MC_EXIT_RETRY || (!opt.implicit && local.hypercall.ret))
                return -EPROTO;
        return 0;
}

/**
 * area_resident() - whether any page of [off, off+len) of @map is resident
 * Return: true if some page still is (or mincore failed)
 */
static bool area_resident(uint8_t *map, uint64_t off, uint64_t len, unsigned char *vec)
{
        if (mincore(map + off, len, vec) < 0)
                return true;
        for (uint64_t i = 0; i < len / PAGE; i++)
                if (vec[i] & 1)
                        return true;
        return false;
}

/**
 * vcpu_thread() - the rounds of one vCPU
 * Return: NULL; failures set sh->failed
 */
static void *vcpu_thread(void *arg)
{
        struct vcpu *v = arg;
        struct vm *vm = v->vm;
        struct shared *sh = vm->sh;
        uint64_t area = opt.size * opt.per_round, base = area * v->idx;
        unsigned char *vec = malloc(area / PAGE);
        uint64_t t_prev;

        bench_pin(opt.vcpu_cpu);
        t_prev = vcpu_run_once(v); /* first exit: the guest's first `in` */
        if (!t_prev || !vec)
                goto fail;
        for (unsigned r = 0; r < opt.rounds; r++) {
                bool to_private = r % 2 == 0;
                uint8_t *discarded = to_private ? vm->shm_map : vm->gmem_map;
                uint64_t t0;

                if (opt.mode != MODE_FLOOR &&
                    madvise(discarded + base, area, MADV_POPULATE_WRITE) < 0) {
                        for (uint64_t o = 0; o < area; o += PAGE)
                                ((volatile uint8_t *) discarded)[base + o] = 1;
                }
                pthread_barrier_wait(&sh->barrier);
                if (sh->failed)
                        break;
                t0 = bench_now_ns();
                sh->round_start[vm->idx][v->idx][r] = t0;
                t_prev = vcpu_run_once(v); /* an exit taken after the barrier */
                if (!t_prev)
                        goto fail;
                for (unsigned i = 0; i < opt.per_round; i++) {
                        uint64_t t_exit = t_prev, t_done, t_next;
                        int q = vcpu_convert(v, base + (uint64_t) i * opt.size, to_private);

                        t_done = bench_now_ns();
                        if (q < 0) {
                                fprintf(stderr, "memconv-bench: conversion failed: %s\n", strerror(-q));
                                goto fail;
                        }
                        t_next = vcpu_run_once(v);
                        if (!t_next)
                                goto fail;
                        *sample_at(sh, 0, vm->idx, v->idx, r, i) = t_done - t_exit;
                        *sample_at(sh, 1, vm->idx, v->idx, r, i) = t_next - t_exit;
                        t_prev = t_next;
                }
                /* memconvd discards asynchronously: the round ends when the backing is gone.
                 * Polled with a backoff (50 us doubling to 2 ms): with 32 vCPU threads on two
                 * cores, a fixed 100 us poll took much of the CPU the discards it waits for
                 * need, which no real VMM does. */
                if (opt.mode == MODE_DAEMON) {
                        unsigned wait_us = 50;

                        while (area_resident(discarded, base, area, vec)) {
                                if (opt.lease)
                                        (void) mc_client_dispatch(vm->client);
                                if (bench_now_ns() - t0 > DRAIN_TIMEOUT_NS) {
                                        fprintf(stderr, "memconv-bench: discards did not finish\n");
                                        goto fail;
                                }
                                usleep(wait_us);
                                if (wait_us < 2000)
                                        wait_us *= 2;
                        }
                } else if (opt.mode == MODE_INLINE && area_resident(discarded, base, area, vec)) {
                        fprintf(stderr, "memconv-bench: inline discard left resident pages\n");
                        goto fail;
                }
                sh->round_end[vm->idx][v->idx][r] = bench_now_ns();
                pthread_barrier_wait(&sh->barrier);
        }
        free(vec);
        return NULL;
fail:
        /* the others wait at the barrier: end the process, the parent kills the rest */
        sh->failed = 1;
        _exit(1);
}

/**
 * vm_main() - one VM process: set up, run the vCPU threads, tear down
 * Return: the process exit status
 */
static int vm_main(struct shared *sh, unsigned idx)
{
        struct vm vm = { .opt = &opt, .sh = sh, .idx = idx, .kvm_fd = -1, .vm_fd = -1 };
        struct rusage ru0, ru1;
        int r;

        r = vm_setup(&vm);
        if (r != 0) {
                if (r < 0)
                        fprintf(stderr, "memconv-bench: VM setup: %s\n", strerror(-r));
                sh->failed = 1;
                return r == 77 ? 77 : 1;
        }
        getrusage(RUSAGE_SELF, &ru0);
        for (unsigned i = 0; i < opt.vcpus; i++)
                if (pthread_create(&vm.vcpus[i].thread, NULL, vcpu_thread, &vm.vcpus[i]) != 0)
                        return 1;
        for (unsigned i = 0; i < opt.vcpus; i++)
                pthread_join(vm.vcpus[i].thread, NULL);
        getrusage(RUSAGE_SELF, &ru1);
        sh->vmm_cpu_ns[idx] =
                (uint64_t) ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000000ll +
                            (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1000ll);
        if (vm.client) {
                struct mc_poll_stats ps;

                mc_client_poll_stats(vm.client, &ps);
                sh->poll_hits[idx] = ps.hits;
                sh->poll_misses[idx] = ps.misses;
                sh->poll_us[idx] = ps.poll_usec;
                {
                        struct mc_ring_stats rs;

                        mc_client_ring_stats(vm.client, &rs);
                        sh->ring_requests[idx] = rs.requests;
                        sh->ring_replies[idx] = rs.replies;
                }
                mc_client_detach(vm.client);
                mc_client_free(vm.client);
        }
        return sh->failed ? 1 : 0;
}

/**
 * cmd_kvm() - fork one process per VM, wait, print the metric lines
 * Return: the exit status
 */
static int cmd_kvm(void)
{
        size_t per_kind = (size_t) opt.vms * opt.vcpus * opt.rounds * opt.per_round;
        size_t sh_size = sizeof(struct shared) + 2 * per_kind * sizeof(uint64_t);
        static const char *mode_names[] = { "floor", "inline", "daemon" };
        pthread_barrierattr_t ba;
        struct shared *sh;
        pid_t pids[MAX_VMS];
        int status = 0;
        double cpu_ns = 0, med, p99, tmed;
        uint64_t poll_hits = 0, poll_misses = 0, poll_us = 0, ring_requests = 0, ring_replies = 0;
        uint64_t tput_u[MAX_ROUNDS], total;
        unsigned npairs;

        sh = mmap(NULL, sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED)
                return perror("mmap"), 1;
        pthread_barrierattr_init(&ba);
        pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
        pthread_barrier_init(&sh->barrier, &ba, opt.vms * opt.vcpus);
        for (unsigned m = 0; m < opt.vms; m++) {
                pids[m] = fork();
                if (pids[m] < 0)
                        return perror("fork"), 1;
                if (pids[m] == 0)
                        _exit(vm_main(sh, m));
        }
        for (unsigned done = 0; done < opt.vms;) {
                int st;
                pid_t p = waitpid(-1, &st, 0);

                if (p < 0)
                        break;
                done++;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        if (!status)
                                status = WIFEXITED(st) && WEXITSTATUS(st) == 77 ? 77 : 1;
                        for (unsigned m = 0; m < opt.vms; m++)
                                kill(pids[m], SIGKILL);
                }
        }
        if (status)
                return status;

        /*
         * The two directions cost differently (punching guest_memfd is not
         * punching a memfd), so a round pair (to private, then to shared) is
         * the unit: its throughput, and per range the mean of its two
         * conversions. p99 is over single conversions.
         */
        npairs = opt.rounds / 2;
        for (unsigned r = 0; r < npairs; r++) {
                uint64_t s = UINT64_MAX, e = 0, busy = 0;

                for (unsigned h = 0; h < 2; h++) {
                        s = UINT64_MAX, e = 0;
                        for (unsigned m = 0; m < opt.vms; m++)
                                for (unsigned c = 0; c < opt.vcpus; c++) {
                                        if (sh->round_start[m][c][2 * r + h] < s)
                                                s = sh->round_start[m][c][2 * r + h];
                                        if (sh->round_end[m][c][2 * r + h] > e)
                                                e = sh->round_end[m][c][2 * r + h];
                                }
                        busy += e - s;
                }
                tput_u[r] = (uint64_t) (2.0 * opt.vms * opt.vcpus * opt.per_round / ((double) busy / 1e9));
        }
        for (unsigned m = 0; m < opt.vms; m++) {
                cpu_ns += (double) sh->vmm_cpu_ns[m];
                poll_hits += sh->poll_hits[m];
                poll_misses += sh->poll_misses[m];
                poll_us += sh->poll_us[m];
                ring_requests += sh->ring_requests[m];
                ring_replies += sh->ring_replies[m];
        }
        total = (uint64_t) opt.vms * opt.vcpus * opt.per_round * opt.rounds;

        for (unsigned k = 0; k < 2; k++) {
                uint64_t *all = malloc(per_kind * sizeof(*all)), *pair = malloc(per_kind / 2 * sizeof(*pair));
                uint64_t *dir[2];
                size_t n = 0, np = 0, nd[2] = { 0, 0 };

                dir[0] = malloc(per_kind / 2 * sizeof(uint64_t));
                dir[1] = malloc(per_kind / 2 * sizeof(uint64_t));
                if (!all || !pair || !dir[0] || !dir[1])
                        return 1;
                for (unsigned r = 0; r < npairs; r++)
                        for (unsigned m = 0; m < opt.vms; m++)
                                for (unsigned c = 0; c < opt.vcpus; c++)
                                        for (unsigned i = 0; i < opt.per_round; i++) {
                                                uint64_t a = *sample_at(sh, k, m, c, 2 * r, i);
                                                uint64_t b = *sample_at(sh, k, m, c, 2 * r + 1, i);

                                                all[n++] = a;
                                                all[n++] = b;
                                                dir[0][nd[0]++] = a;
                                                dir[1][nd[1]++] = b;
                                                pair[np++] = (a + b) / 2;
                                        }
                med = (double) bench_quantile(pair, np, 0.5);
                p99 = (double) bench_quantile(all, n, 0.99);
                printf("{\"name\": \"%s\", \"metric\": \"%s\", \"mode\": \"%s\", \"unit\": \"us\", "
                       "\"median\": %.3f, \"p99\": %.3f, \"median_to_private\": %.3f, \"median_to_shared\": %.3f, "
                       "\"samples\": %zu}\n",
                       opt.label, k == 0 ? "latency" : "roundtrip", mode_names[opt.mode], med / 1000.0, p99 / 1000.0,
                       (double) bench_quantile(dir[0], nd[0], 0.5) / 1000.0,
                       (double) bench_quantile(dir[1], nd[1], 0.5) / 1000.0, n);
                free(all);
                free(pair);
                free(dir[0]);
                free(dir[1]);
        }
        tmed = (double) bench_quantile(tput_u, npairs, 0.5);
        printf("{\"name\": \"%s\", \"metric\": \"throughput\", \"mode\": \"%s\", \"unit\": \"conv/s\", "
               "\"median\": %.1f, \"p99\": null, \"samples\": %u, \"conversions\": %llu, \"vmm_cpu_us_per_conv\": %.3f, "
               "\"client_poll_hits\": %llu, \"client_poll_misses\": %llu, \"client_poll_us_per_conv\": %.3f, "
               "\"ring_requests\": %llu, \"ring_replies\": %llu}\n",
               opt.label, mode_names[opt.mode], tmed, npairs, (unsigned long long) total,
               cpu_ns / (double) total / 1000.0, (unsigned long long) poll_hits, (unsigned long long) poll_misses,
               (double) poll_us / (double) total, (unsigned long long) ring_requests,
               (unsigned long long) ring_replies);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "mode", required_argument, NULL, 'm' },     { "socket", required_argument, NULL, 's' },
                { "size", required_argument, NULL, 'z' },     { "vcpus", required_argument, NULL, 'c' },
                { "vms", required_argument, NULL, 'n' },      { "kind", required_argument, NULL, 'k' },
                { "per-round", required_argument, NULL, 'p' }, { "rounds", required_argument, NULL, 'r' },
                { "placement", required_argument, NULL, 'P' }, { "iterations", required_argument, NULL, 'i' },
                { "label", required_argument, NULL, 'l' },     { "client-poll", required_argument, NULL, 'C' },
                { "client-ring", required_argument, NULL, 'R' },
                {}
        };
        const char *placement = "free";
        unsigned iterations = 20000;
        int c;

        if (argc < 2) {
                fprintf(stderr, "usage: memconv-bench pingpong|kvm [options] (see the source header)\n");
                return 1;
        }
        while ((c = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        opt.lease = !strcmp(optarg, "lease");
                        opt.mode = !strcmp(optarg, "floor") ? MODE_FLOOR :
                                   !strcmp(optarg, "daemon") || opt.lease ? MODE_DAEMON : MODE_INLINE;
                        break;
                case 's': opt.socket = optarg; break;
                case 'z': opt.size = strtoull(optarg, NULL, 0); break;
                case 'c': opt.vcpus = (unsigned) atoi(optarg); break;
                case 'n': opt.vms = (unsigned) atoi(optarg); break;
                case 'k': opt.implicit = !strcmp(optarg, "implicit"); break;
                case 'p': opt.per_round = (unsigned) atoi(optarg); break;
                case 'r': opt.rounds = (unsigned) atoi(optarg); break;
                case 'P': placement = optarg; break;
                case 'i': iterations = (unsigned) atoi(optarg); break;
                case 'l': opt.label = optarg; break;
                case 'C': opt.client_poll_usec = atoi(optarg); break;
                case 'R': opt.client_ring = atoi(optarg) != 0; break;
                default: return 1;
                }
        }
        if (!strcmp(argv[1], "pingpong"))
                return cmd_pingpong(placement, iterations);
        if (strcmp(argv[1], "kvm") != 0) {
                fprintf(stderr, "memconv-bench: unknown command %s\n", argv[1]);
                return 1;
        }
        if (!strcmp(placement, "same") || !strcmp(placement, "cross"))
                opt.vcpu_cpu = 0;
        if (!opt.vcpus || opt.vcpus > MAX_VCPUS || !opt.vms || opt.vms > MAX_VMS || !opt.rounds ||
            opt.rounds > MAX_ROUNDS || opt.rounds % 2 || !opt.per_round || !opt.size || opt.size % PAGE) {
                fprintf(stderr, "memconv-bench: bad options\n");
                return 1;
        }
        if (opt.mode == MODE_DAEMON && !opt.socket) {
                fprintf(stderr, "memconv-bench: --mode daemon and lease need --socket\n");
                return 1;
        }
        return cmd_kvm();
}
