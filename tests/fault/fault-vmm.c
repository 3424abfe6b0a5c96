/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fault-vmm.c - a VMM that a shell test drives one step at a time, for the
 * fault-injection tests: it stays attached while the test switches a fault
 * on and off, and it can look at its own backing to see what memconvd
 * really punched.
 *
 * It creates a real KVM VM with one 4 MiB guest_memfd (MMAP|INIT_SHARED, so
 * the host can read it) and a shared memfd, attaches through libmemconv and
 * registers both as slot 0 at gpa 0, all shared. Then it reads commands on
 * stdin and answers each with one line on stdout:
 *
 *   convert GPA SIZE private|shared   a MAP_GPA_RANGE request: "ok" (the
 *                                     vCPU may re-enter) or "error ..."
 *   fill gmem|shared GPA SIZE BYTE    write BYTE over the backing: "ok"
 *   expect gmem|shared GPA SIZE BYTE  "ok" if every byte is BYTE, else
 *                                     "mismatch at GPA: 0xNN"
 *   data shared GPA SIZE              "hole" if the memfd holds no pages
 *                                     there (lseek SEEK_DATA), else "data"
 *   detach                            "ok" or "error: MESSAGE"
 *   quit                              exit 0
 *
 * This kernel has no KVM_SET_MEMORY_ATTRIBUTES (DESIGN.md 6): where it is
 * missing the apply callback only accepts, as the reference VMM's tracked
 * backend does. No vCPU runs: the tests that need one use memconv-vmm.
 *
 * Usage: fault-vmm SOCKET NAME; exit 77 without /dev/kvm or an mmap-able
 * guest_memfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "memconv.h"

#define RAM_SIZE (4ULL << 20)

struct fvmm {
        int vm_fd;
        bool attrs_in_kernel;
        int gmem_fd;
        int shared_fd;
        uint8_t *gmem;
        uint8_t *shared;
};

static int apply(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        struct fvmm *v = userdata;
        struct kvm_memory_attributes a = {
                .address = gpa,
                .size = size,
                .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
        };

        if (!v->attrs_in_kernel)
                return 0;
        return ioctl(v->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a) < 0 ? -errno : 0;
}

static int skip(const char *why)
{
        printf("SKIP: %s: %s\n", why, strerror(errno));
        return 77;
}

static int setup(struct fvmm *v, const char *name)
{
        struct kvm_create_guest_memfd gm = { .size = RAM_SIZE };
        char memfd_name[64];
        int kvm, caps;

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return skip("/dev/kvm");
        v->vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
        if (v->vm_fd < 0)
                return skip("KVM_CREATE_VM");
        caps = ioctl(v->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
        if (caps < 0 || (caps & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)) !=
                        (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)) {
                errno = EOPNOTSUPP;
                return skip("guest_memfd without MMAP|INIT_SHARED: its contents cannot be checked");
        }
        gm.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
        v->gmem_fd = ioctl(v->vm_fd, KVM_CREATE_GUEST_MEMFD, &gm);
        if (v->gmem_fd < 0)
                return skip("KVM_CREATE_GUEST_MEMFD");
        v->attrs_in_kernel = ioctl(v->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES) > 0;
        /* Named after the VM, so that a fault can target one VM's shared memory. */
        snprintf(memfd_name, sizeof(memfd_name), "fault-vmm-%s-shared", name);
        v->shared_fd = memfd_create(memfd_name, MFD_CLOEXEC);
        if (v->shared_fd < 0 || ftruncate(v->shared_fd, RAM_SIZE) < 0) {
                perror("shared memfd");
                return 1;
        }
        v->gmem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->gmem_fd, 0);
        v->shared = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->shared_fd, 0);
        if (v->gmem == MAP_FAILED || v->shared == MAP_FAILED) {
                perror("mmap");
                return 1;
        }
        return 0;
}

/** side() - the mapping @name names, NULL for a bad name or range */
static uint8_t *side(struct fvmm *v, const char *name, uint64_t gpa, uint64_t size)
{
        if (gpa > RAM_SIZE || size > RAM_SIZE - gpa)
                return NULL;
        if (strcmp(name, "gmem") == 0)
                return v->gmem;
        if (strcmp(name, "shared") == 0)
                return v->shared;
        return NULL;
}

static void command(mc_client *c, struct fvmm *v, const char *line)
{
        char verb[16], what[16];
        uint64_t gpa, size;
        unsigned byte;
        uint8_t *p;
        int r;

        if (sscanf(line, "convert %" SCNi64 " %" SCNi64 " %15s", &gpa, &size, what) == 3) {
                struct mc_exit_result res;

                r = mc_client_convert(c, 0, gpa, size, strcmp(what, "private") == 0,
                                      MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, &res);
                if (r == MC_EXIT_RETRY)
                        printf("ok\n");
                else
                        printf("error %d: %s\n", r, r < 0 ? strerror(-r) : res.message);
        } else if (sscanf(line, "%15s %15s %" SCNi64 " %" SCNi64 " %i", verb, what, &gpa, &size, &byte) == 5 &&
                   (strcmp(verb, "fill") == 0 || strcmp(verb, "expect") == 0) &&
                   (p = side(v, what, gpa, size))) {
                if (verb[0] == 'f') {
                        memset(p + gpa, (int) byte, size);
                        printf("ok\n");
                        return;
                }
                for (uint64_t i = 0; i < size; i++)
                        if (p[gpa + i] != (uint8_t) byte) {
                                printf("mismatch at 0x%" PRIx64 ": 0x%02x\n", gpa + i, p[gpa + i]);
                                return;
                        }
                printf("ok\n");
        } else if (sscanf(line, "data shared %" SCNi64 " %" SCNi64, &gpa, &size) == 2) {
                off_t o = lseek(v->shared_fd, (off_t) gpa, SEEK_DATA);

                printf("%s\n", (o < 0 && errno == ENXIO) || (o >= 0 && (uint64_t) o >= gpa + size) ? "hole" : "data");
        } else if (strcmp(line, "detach") == 0) {
                r = mc_client_detach(c);
                if (r < 0)
                        printf("error: %s\n", strerror(-r));
                else
                        printf("ok\n");
        } else
                printf("bad command: %s\n", line);
}

int main(int argc, char *argv[])
{
        struct fvmm v = { .vm_fd = -1, .gmem_fd = -1, .shared_fd = -1 };
        struct mc_vm_info info = { .cc_type = MC_CC_SW_PROTECTED, .arch = MC_ARCH_X86_64 };
        struct mc_region_info region = { .slot = 0, .gpa = 0, .size = RAM_SIZE };
        mc_client *c = NULL;
        char line[256];
        uint64_t vm_id;
        int r;

        if (argc != 3) {
                fprintf(stderr, "usage: %s SOCKET NAME\n", argv[0]);
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = setup(&v, argv[2]);
        if (r != 0)
                return r;
        info.name = argv[2];
        /* The uuid is the name, padded: each test VM is told apart by name. */
        memset(info.uuid, 0, sizeof(info.uuid));
        memcpy(info.uuid, argv[2], strnlen(argv[2], sizeof(info.uuid)));
        region.guest_memfd = v.gmem_fd;
        region.shared_fd = v.shared_fd;
        r = mc_client_connect(argv[1], &c);
        if (r >= 0)
                r = mc_client_attach(c, &info, &vm_id);
        if (r >= 0)
                r = mc_client_register_region(c, &region);
        if (r < 0) {
                fprintf(stderr, "connect/attach/register: %s\n", strerror(-r));
                return 1;
        }
        mc_client_set_apply(c, apply, &v);
        printf("ready %" PRIu64 "\n", vm_id);

        while (fgets(line, sizeof(line), stdin)) {
                line[strcspn(line, "\n")] = '\0';
                if (strcmp(line, "quit") == 0)
                        break;
                command(c, &v, line);
        }
        mc_client_free(c);
        return 0;
}
