/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm.c - VM registry and memory regions; see vm.h for the concepts.
 *
 * Region fds are checked before they are accepted: the guest_memfd must be
 * a KVM guest_memfd (an anon inode named "[kvm-gmem]"), the shared fd must
 * be shared memory (tmpfs/hugetlbfs: a memfd), both large enough for the
 * offsets given, and no guest_memfd may be registered twice, by this VM or
 * any other (DESIGN rule 8).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "admin.h"
#include "convert.h"
#include "discard.h"
#include "log.h"
#include "persist.h"
#include "policy.h"
#include "registry.h"
#include "macro.h"
#include "session.h"
#include "vm.h"

#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6
#define ANON_INODE_FS_MAGIC_ 0x09041934
#define GUEST_MEMFD_MAGIC_ 0x474d454d /* kernels with a guest_memfd filesystem */

struct region *region_ref(struct region *r)
{
        if (r)
                r->refs++;
        return r;
}

struct region *region_unref(struct region *r)
{
        if (!r || --r->refs > 0)
                return NULL;
        safe_close(r->gmem_fd);
        safe_close(r->shared_fd);
        free(r);
        return NULL;
}

/**
 * uuid_format() - lower-case 8-4-4-4-12 form of @uuid into @buf (37 bytes)
 */
static void uuid_format(const uint8_t uuid[16], char buf[37])
{
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;

        for (size_t i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        buf[k++] = '-';
                buf[k++] = hex[uuid[i] >> 4];
                buf[k++] = hex[uuid[i] & 15];
        }
        buf[k] = 0;
}

int vm_new(struct daemon *d, struct session *s, const uint8_t uuid[16], const char *name,
           int cc_type, int arch, uid_t uid, pid_t pid, struct vm **ret)
{
        struct vm *vm;

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->name = strdup(name);
        if (!vm->name || mc_rangemap_new(&vm->attrs) < 0 || mc_rangemap_new(&vm->busy) < 0 ||
            mc_rangemap_new(&vm->discard_failed) < 0 || history_init(&vm->history, d->config.history_records) < 0) {
                history_done(&vm->history);
                mc_rangemap_free(vm->discard_failed);
                mc_rangemap_free(vm->busy);
                mc_rangemap_free(vm->attrs);
                free(vm->name);
                free(vm);
                return -ENOMEM;
        }
        /* The attach token: 16 bytes from the kernel's CSPRNG, without opening a file. */
        if (getrandom(vm->token, sizeof(vm->token), 0) != (ssize_t) sizeof(vm->token)) {
                history_done(&vm->history);
                mc_rangemap_free(vm->discard_failed);
                mc_rangemap_free(vm->busy);
                mc_rangemap_free(vm->attrs);
                free(vm->name);
                free(vm);
                return -EIO;
        }

        vm->daemon = d;
        vm->id = ++d->next_vm_id;
        memcpy(vm->uuid, uuid, 16);
        uuid_format(uuid, vm->uuid_str);
        vm->cc_type = cc_type;
        vm->arch = arch;
        vm->uid = uid;
        vm->pid = pid;
        vm->state = s ? VM_ATTACHED : VM_DETACHED;
        vm->session = s;
        vm->attached_usec = daemon_now();
        vm->attached_realtime_usec = daemon_realtime();
        LIST_INIT(&vm->followers);
        TAILQ_INIT(&vm->delayed);
        TAILQ_INIT(&vm->conversions);
        TAILQ_INIT(&vm->waiting);
        LIST_INSERT_HEAD(&d->vms, vm, link);
        d->n_vms++;
        *ret = vm;
        return 0;
}

struct mc_policy_vm vm_policy_vm(const struct vm *vm)
{
        const struct domain_reg *reg = registry_find(vm->daemon, vm->uuid_str);

        return (struct mc_policy_vm) {
                .vm_id = vm->id,
                .uuid = vm->uuid_str,
                .name = vm->name,
                .cc_type = vm->cc_type,
                .uid = (uint32_t) vm->uid,
                .pid = (int32_t) vm->pid,
                .registered = reg != NULL,
                .registered_name = reg ? reg->name : NULL,
        };
}

/**
 * vm_drop_regions() - let go of every region: queued discards are skipped,
 * fds close as soon as no discard in flight holds them
 */
static void vm_drop_regions(struct vm *vm)
{
        for (size_t i = 0; i < vm->n_regions; i++) {
                __atomic_store_n(&vm->regions[i]->dead, true, __ATOMIC_RELEASE);
                vm->regions[i]->vm = NULL;
                region_unref(vm->regions[i]);
        }
        free(vm->regions);
        free(vm->plan_regions);
        vm->regions = NULL;
        vm->plan_regions = NULL;
        vm->n_regions = 0;
}

void vm_detach(struct vm *vm, const char *why)
{
        if (vm->state == VM_DETACHED)
                return;
        convert_vm_detached(vm);
        lease_session_end(vm);
        vm_drop_regions(vm);
        vm->state = VM_DETACHED;
        vm->session = NULL;
        log_info("VM %s (%s) detached: %s; fds closed, state kept", vm->name, vm->uuid_str, why);
}

void vm_set_identity(struct vm *vm, uint64_t id, const uint8_t *token)
{
        vm->id = id;
        if (id >= vm->daemon->next_vm_id)
                vm->daemon->next_vm_id = id;
        if (token)
                memcpy(vm->token, token, sizeof(vm->token));
}

int vm_known_region_remember(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, bool has_shared)
{
        struct known_region *n;

        vm_known_region_forget(vm, slot);
        n = realloc(vm->known, sizeof(*n) * (vm->n_known + 1));
        if (!n)
                return -ENOMEM;
        vm->known = n;
        n[vm->n_known++] = (struct known_region) { slot, gpa, size, has_shared };
        return 0;
}

void vm_known_region_forget(struct vm *vm, uint32_t slot)
{
        for (size_t i = 0; i < vm->n_known; i++)
                if (vm->known[i].slot == slot) {
                        memmove(vm->known + i, vm->known + i + 1, sizeof(*vm->known) * (vm->n_known - i - 1));
                        vm->n_known--;
                        return;
                }
}

void vm_forget(struct vm *vm)
{
        persist_vm_forgotten(vm);
        policy_chain_vm_gone(vm->daemon->policy, vm->id);
        vm_free(vm);
}

int vm_policy_set(struct vm *vm, const char *plugin, const char *settings, char *err, size_t err_len)
{
        struct mc_policy_setting *sv = NULL;
        struct vm_policy_override *n;
        size_t ns = 0, slot = vm->n_policy;
        char *p, *t;
        int r;

        r = policy_settings_parse(settings, &sv, &ns);
        if (r < 0) {
                snprintf(err, err_len, "settings must be key=value words, got \"%s\"", settings);
                return r;
        }
        r = policy_chain_vm_set(vm->daemon->policy, vm->id, plugin, sv, ns, err, err_len);
        policy_settings_free(sv, ns);
        if (r < 0)
                return r;
        for (size_t i = 0; i < vm->n_policy; i++)
                if (!strcmp(vm->policy[i].plugin, plugin))
                        slot = i;
        p = strdup(plugin);
        t = strdup(settings);
        n = slot == vm->n_policy ? realloc(vm->policy, sizeof(*n) * (vm->n_policy + 1)) : vm->policy;
        if (!p || !t || !n) {
                free(p);
                free(t);
                if (n)
                        vm->policy = n;
                snprintf(err, err_len, "out of memory");
                return -ENOMEM;
        }
        vm->policy = n;
        if (slot == vm->n_policy)
                vm->n_policy++;
        else {
                free(n[slot].plugin);
                free(n[slot].settings);
        }
        n[slot] = (struct vm_policy_override) { p, t };
        log_info("VM %s: policy of %s set to \"%s\"", vm->name, plugin, settings);
        /* Its lease was granted under the old settings: grant anew once it is returned. */
        lease_revoke(vm, "its policy settings changed", 0);
        return 0;
}

void vm_policy_reapply(struct vm *vm)
{
        for (size_t i = 0; i < vm->n_policy; i++) {
                struct mc_policy_setting *sv = NULL;
                char err[256] = "";
                size_t ns = 0;

                if (policy_settings_parse(vm->policy[i].settings, &sv, &ns) < 0 ||
                    policy_chain_vm_set(vm->daemon->policy, vm->id, vm->policy[i].plugin, sv, ns, err, sizeof(err)) < 0)
                        log_warning("VM %s: its %s settings \"%s\" no longer apply: %s", vm->name, vm->policy[i].plugin,
                                    vm->policy[i].settings, err[0] ? err : "invalid");
                policy_settings_free(sv, ns);
        }
}

void vm_free(struct vm *vm)
{
        if (!vm)
                return;
        vm_detach(vm, "daemon shutting down");
        lease_session_end(vm);
        admin_vm_gone(vm);
        persist_vm_free(vm);
        convert_vm_free(vm);
        LIST_REMOVE(vm, link);
        vm->daemon->n_vms--;
        mc_rangemap_free(vm->attrs);
        mc_rangemap_free(vm->busy);
        mc_rangemap_free(vm->discard_failed);
        history_done(&vm->history);
        for (size_t i = 0; i < vm->n_policy; i++) {
                free(vm->policy[i].plugin);
                free(vm->policy[i].settings);
        }
        free(vm->policy);
        free(vm->known);
        free(vm->name);
        free(vm);
}

struct vm *vm_find_uuid(struct daemon *d, const uint8_t uuid[16], bool attached)
{
        struct vm *vm;

        /* Newest first: vm_new() inserts at the head. */
        LIST_FOREACH(vm, &d->vms, link)
                if (memcmp(vm->uuid, uuid, 16) == 0 && (vm->state == VM_ATTACHED) == attached)
                        return vm;
        return NULL;
}

struct region *vm_region_find(struct vm *vm, uint64_t gpa)
{
        size_t lo = 0, hi = vm->n_regions;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                struct region *r = vm->regions[mid];

                if (gpa < r->gpa)
                        hi = mid;
                else if (gpa - r->gpa >= r->size)
                        lo = mid + 1;
                else
                        return r;
        }
        return NULL;
}

struct mc_plan_ctx vm_plan_ctx(const struct vm *vm)
{
        return (struct mc_plan_ctx) {
                .regions = vm->plan_regions,
                .n_regions = vm->n_regions,
                .attrs = vm->attrs,
                .busy = vm->busy,
        };
}

/**
 * fd_fs_type() - the filesystem magic of the file behind @fd
 * Return: 0 with @ret set, or negative errno
 */
static int fd_fs_type(int fd, long *ret)
{
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return negative_errno();
        *ret = (long) sf.f_type;
        return 0;
}

/**
 * fd_is_guest_memfd() - whether @fd is a KVM guest_memfd
 * Return: true if the kernel calls it one
 */
static bool fd_is_guest_memfd(int fd)
{
        char path[64], target[64];
        long type;
        ssize_t n;

        if (fd_fs_type(fd, &type) < 0)
                return false;
        if ((unsigned long) type == GUEST_MEMFD_MAGIC_)
                return true;
        if ((unsigned long) type != ANON_INODE_FS_MAGIC_)
                return false;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        return strcmp(target, "anon_inode:[kvm-gmem]") == 0;
}

/**
 * region_check_fds() - validate the fds of a new region
 * Return: 0 or -EBADF / -EEXIST with @err filled
 */
static int region_check_fds(struct vm *vm, int gmem_fd, uint64_t gmem_offset, int shared_fd,
                            uint64_t shared_offset, uint64_t size, struct stat *ret_gmem,
                            struct mc_msg_error *err)
{
        struct vm *other;
        struct stat st;
        long type;

        if (!fd_is_guest_memfd(gmem_fd))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: the first fd is not a KVM guest_memfd");
        if (fstat(gmem_fd, &st) < 0)
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: cannot stat the guest_memfd");
        if ((uint64_t) st.st_size < gmem_offset || (uint64_t) st.st_size - gmem_offset < size)
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: guest_memfd of %" PRIu64 " bytes is smaller than offset 0x%"
                                    PRIx64 " + size 0x%" PRIx64, (uint64_t) st.st_size, gmem_offset, size);
        LIST_FOREACH(other, &vm->daemon->vms, link)
                for (size_t i = 0; i < other->n_regions; i++)
                        if (other->regions[i]->gmem_dev == st.st_dev &&
                            other->regions[i]->gmem_ino == st.st_ino)
                                return mc_error_set(err, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                                    "register-region: this guest_memfd is already registered%s",
                                                    other == vm ? " by this VM" : " by another VM");
        *ret_gmem = st;

        if (shared_fd < 0)
                return 0;
        if (fd_fs_type(shared_fd, &type) < 0 ||
            ((unsigned long) type != TMPFS_MAGIC_ && (unsigned long) type != HUGETLBFS_MAGIC_))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: the shared fd is not shared memory (memfd, tmpfs or hugetlbfs)");
        if (fstat(shared_fd, &st) < 0 || !S_ISREG(st.st_mode))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: the shared fd is not a regular shared-memory file");
        if ((uint64_t) st.st_size < shared_offset || (uint64_t) st.st_size - shared_offset < size)
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "register-region: shared memory of %" PRIu64 " bytes is smaller than offset 0x%"
                                    PRIx64 " + size 0x%" PRIx64, (uint64_t) st.st_size, shared_offset, size);
        return 0;
}

int vm_region_add(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, int gmem_fd,
                  uint64_t gmem_offset, int shared_fd, uint64_t shared_offset,
                  bool initial_private, struct mc_msg_error *err)
{
        _cleanup_free_ struct mc_plan_region *cand = NULL;
        struct region **regions;
        struct mc_plan_region *plan;
        struct region *r;
        struct stat st = {};
        bool known = false;
        size_t pos;
        int q;

        for (size_t i = 0; i < vm->n_regions; i++)
                if (vm->regions[i]->slot == slot)
                        return mc_error_set(err, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                            "register-region: slot %" PRIu32 " is already registered", slot);

        cand = malloc(sizeof(*cand) * (vm->n_regions + 1));
        if (!cand)
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        if (vm->n_regions > 0)
                memcpy(cand, vm->plan_regions, sizeof(*cand) * vm->n_regions);
        cand[vm->n_regions] = (struct mc_plan_region) { gpa, size };
        q = mc_plan_regions_check(cand, vm->n_regions + 1);
        if (q == -EEXIST)
                return mc_error_set(err, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                    "register-region: [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps a registered region",
                                    gpa, gpa + size);
        if (q < 0)
                return mc_error_set(err, MEMCONV__CODE__CODE_INVALID_ARGUMENT, q,
                                    "register-region: invalid geometry gpa 0x%" PRIx64 " size 0x%" PRIx64, gpa, size);

        q = region_check_fds(vm, gmem_fd, gmem_offset, shared_fd, shared_offset, size, &st, err);
        if (q < 0)
                return q;

        /* Allocate everything before changing anything. */
        r = calloc(1, sizeof(*r));
        regions = realloc(vm->regions, sizeof(*regions) * (vm->n_regions + 1));
        if (regions)
                vm->regions = regions;
        plan = realloc(vm->plan_regions, sizeof(*plan) * (vm->n_regions + 1));
        if (plan)
                vm->plan_regions = plan;
        if (!r || !regions || !plan) {
                free(r);
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < vm->n_known; i++)
                if (vm->known[i].slot == slot && vm->known[i].gpa == gpa && vm->known[i].size == size)
                        known = true;
        /* A region this VM had before (a resumed VMM): its attributes are what we recorded. */
        if (!known && initial_private && mc_rangemap_set(vm->attrs, gpa, gpa + size, MC_ATTR_PRIVATE) < 0) {
                free(r);
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        }
        /* Clearing can split a stale range that reaches beyond the region on both sides. */
        if (!known && !initial_private && mc_rangemap_set(vm->attrs, gpa, gpa + size, MC_ATTR_SHARED) < 0) {
                free(r);
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        }
        if (!known) {
                if (vm_known_region_remember(vm, slot, gpa, size, shared_fd >= 0) < 0) {
                        free(r);
                        return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
                }
                persist_region(vm, slot, gpa, size, shared_fd >= 0, initial_private, false);
        }

        *r = (struct region) {
                .refs = 1,
                .vm = vm,
                .slot = slot,
                .gpa = gpa,
                .size = size,
                .gmem_fd = gmem_fd,
                .gmem_offset = gmem_offset,
                .gmem_dev = st.st_dev,
                .gmem_ino = st.st_ino,
                .shared_fd = shared_fd,
                .shared_offset = shared_offset,
        };
        for (pos = 0; pos < vm->n_regions && vm->regions[pos]->gpa < gpa; pos++)
                ;
        memmove(vm->regions + pos + 1, vm->regions + pos, sizeof(*regions) * (vm->n_regions - pos));
        memmove(vm->plan_regions + pos + 1, vm->plan_regions + pos, sizeof(*plan) * (vm->n_regions - pos));
        vm->regions[pos] = r;
        vm->plan_regions[pos] = (struct mc_plan_region) { gpa, size };
        vm->n_regions++;

        log_info("VM %s: region slot %" PRIu32 " [0x%" PRIx64 ", 0x%" PRIx64 ") registered, %s, %s",
                 vm->name, slot, gpa, gpa + size,
                 known ? "attributes as recorded" : initial_private ? "private" : "shared",
                 shared_fd >= 0 ? "with shared memory" : "guest_memfd only");
        return 0;
}

int vm_region_remove(struct vm *vm, uint32_t slot, struct mc_msg_error *err)
{
        for (size_t i = 0; i < vm->n_regions; i++) {
                struct region *r = vm->regions[i];

                if (r->slot != slot)
                        continue;
                if (mc_rangemap_any(vm->busy, r->gpa, r->gpa + r->size))
                        return mc_error_set(err, MEMCONV__CODE__CODE_BUSY, -EBUSY,
                                            "unregister-region: slot %" PRIu32 " has a conversion in flight", slot);
                (void) mc_rangemap_set(vm->attrs, r->gpa, r->gpa + r->size, 0);
                vm_known_region_forget(vm, slot);
                persist_region(vm, slot, r->gpa, r->size, r->shared_fd >= 0, false, true);
                memmove(vm->regions + i, vm->regions + i + 1, sizeof(*vm->regions) * (vm->n_regions - i - 1));
                memmove(vm->plan_regions + i, vm->plan_regions + i + 1,
                        sizeof(*vm->plan_regions) * (vm->n_regions - i - 1));
                vm->n_regions--;
                __atomic_store_n(&r->dead, true, __ATOMIC_RELEASE);
                r->vm = NULL;
                region_unref(r);
                log_info("VM %s: region slot %" PRIu32 " unregistered, fds closed", vm->name, slot);
                return 0;
        }
        return mc_error_set(err, MEMCONV__CODE__CODE_NOT_FOUND, -ENOENT,
                            "unregister-region: no region with slot %" PRIu32, slot);
}

uint64_t vm_private_bytes(struct vm *vm)
{
        uint64_t total = 0;

        /* Known regions: the live ones, and those of a detached VM, whose map is kept. */
        for (size_t i = 0; i < vm->n_known; i++)
                total += mc_rangemap_bytes(vm->attrs, vm->known[i].gpa, vm->known[i].gpa + vm->known[i].size,
                                           MC_ATTR_PRIVATE);
        return total;
}
