/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * example-vmm.c - the smallest VMM integration of libmemconv, as shown in
 * README.md and libmemconv(3). Built and run by `make check`
 * (tests/integration/example.sh), so the example cannot rot.
 *
 * It creates a KVM VM with one guest_memfd-backed region and a shared memfd,
 * hands both to memconvd, and handles exits the way a vCPU loop does. This
 * host's KVM cannot produce KVM_EXIT_HYPERCALL(MAP_GPA_RANGE) for its VM
 * type, so main() feeds handle_exit() two exits exactly as KVM would fill
 * them on SEV-SNP/TDX/sw-protected VMs; vcpu_loop() shows the real loop.
 *
 * Usage: example-vmm SOCKET
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memconv.h>

#ifndef KVM_CREATE_GUEST_MEMFD /* Debian 12's headers predate guest_memfd */
struct kvm_create_guest_memfd { __u64 size, flags, reserved[6]; };
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
struct kvm_memory_attributes { __u64 address, size, attributes, flags; };
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
#endif

#define RAM_SIZE (2UL << 20)

struct vmm {
        int vm_fd;
        int attrs_in_kernel; /* 0: this kernel has no KVM_SET_MEMORY_ATTRIBUTES */
};

/* memconvd decided; we apply. Called on the vCPU thread. */
static int apply_attributes(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        struct vmm *vmm = userdata;
        struct kvm_memory_attributes a = {
                .address = gpa,
                .size = size,
                .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
        };

        if (!vmm->attrs_in_kernel) {
                printf("apply: [0x%lx, 0x%lx) -> %s (recorded by the VMM only)\n", (unsigned long) gpa,
                       (unsigned long) (gpa + size), to_private ? "private" : "shared");
                return 0;
        }
        return ioctl(vmm->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a) < 0 ? -errno : 0;
}

/* What a vCPU thread does after every KVM_RUN. Returns 0 to re-enter. */
static int handle_exit(mc_client *c, unsigned vcpu, struct kvm_run *run)
{
        struct mc_exit_result res;
        int r = mc_handle_exit(c, vcpu, run, &res);

        switch (r) {
        case MC_EXIT_RETRY:
                return 0;                 /* re-enter; hypercall.ret is already written */
        case MC_EXIT_NOT_HANDLED:
                return 1;                 /* not a conversion: the VMM's own exit handling */
        case MC_EXIT_INJECT_FAULT:
        case MC_EXIT_STOP_VM:
                fprintf(stderr, "memconvd refused: %s\n", res.message);
                return -EPERM;
        default:
                fprintf(stderr, "conversion failed: %s %s\n", strerror(-r), res.message);
                return r;
        }
}

/* The real loop: KVM_RUN, then let libmemconv look at the exit. */
__attribute__((unused)) static int vcpu_loop(mc_client *c, unsigned vcpu, int vcpu_fd, struct kvm_run *run)
{
        for (;;) {
                int r = ioctl(vcpu_fd, KVM_RUN, 0);

                if (r < 0 && errno != EFAULT)  /* EFAULT comes with KVM_EXIT_MEMORY_FAULT */
                        return -errno;
                r = handle_exit(c, vcpu, run);
                if (r < 0)
                        return r;
                /* r == 1: KVM_EXIT_IO, KVM_EXIT_MMIO, ... handled here as usual */
        }
}

int main(int argc, char *argv[])
{
        struct kvm_create_guest_memfd gm = { .size = RAM_SIZE };
        struct vmm vmm = { 0 };
        struct mc_vm_info info = { .name = "example", .cc_type = MC_CC_SW_PROTECTED, .arch = MC_ARCH_X86_64 };
        struct mc_region_info region = { .slot = 0, .gpa = 0, .size = RAM_SIZE, .shared_offset = 0 };
        struct kvm_run run;
        mc_client *c = NULL;
        uint64_t vm_id;
        int kvm, r;

        if (argc != 2) {
                fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
                return 2;
        }
        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0) {
                printf("SKIP: /dev/kvm: %s\n", strerror(errno));
                return 77;
        }
        vmm.vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
        region.guest_memfd = vmm.vm_fd < 0 ? -1 : ioctl(vmm.vm_fd, KVM_CREATE_GUEST_MEMFD, &gm);
        if (region.guest_memfd < 0) {
                printf("SKIP: no guest_memfd: %s\n", strerror(errno));
                return 77;
        }
        vmm.attrs_in_kernel = ioctl(vmm.vm_fd, KVM_CHECK_EXTENSION, 233 /* KVM_CAP_MEMORY_ATTRIBUTES */) > 0;
        region.shared_fd = memfd_create("guest-shared", MFD_CLOEXEC);
        if (region.shared_fd < 0 || ftruncate(region.shared_fd, RAM_SIZE) < 0)
                return 1;

        /* 1. connect, 2. attach, 3. register memory, 4. give the apply callback */
        r = mc_client_connect(argv[1], &c);
        if (r < 0) {
                fprintf(stderr, "connect: %s\n", strerror(-r));
                return 1;
        }
        memcpy(info.uuid, "example-vm-uuid!", 16);
        r = mc_client_attach(c, &info, &vm_id);
        if (r >= 0)
                r = mc_client_register_region(c, &region);
        if (r < 0) {
                fprintf(stderr, "attach/register: %s\n", strerror(-r));
                return 1;
        }
        mc_client_set_apply(c, apply_attributes, &vmm);
        printf("attached as VM %lu\n", (unsigned long) vm_id);

        /* The guest asks for 16 pages at 1 MiB to become private (MAP_GPA_RANGE) ... */
        memset(&run, 0, sizeof(run));
        run.exit_reason = KVM_EXIT_HYPERCALL;
        run.hypercall.nr = 12;                       /* KVM_HC_MAP_GPA_RANGE */
        run.hypercall.args[0] = 0x100000;            /* gpa */
        run.hypercall.args[1] = 16;                  /* pages */
        run.hypercall.args[2] = 1 << 4;              /* KVM_MAP_GPA_RANGE_ENCRYPTED */
        r = handle_exit(c, 0, &run);
        printf("to private: handle_exit %d, guest sees %ld\n", r, (long) run.hypercall.ret);
        if (r != 0 || run.hypercall.ret != 0)
                return 1;
        /* ... and then outside its RAM, which memconvd refuses: the guest gets -EINVAL. */
        run.hypercall.args[0] = 0x40000000;
        r = handle_exit(c, 0, &run);
        printf("outside RAM: handle_exit %d, guest sees %ld\n", r, (long) run.hypercall.ret);
        if (r != 0 || (long) run.hypercall.ret != -EINVAL)
                return 1;

        mc_client_free(c);
        return 0;
}
