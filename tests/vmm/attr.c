/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attr.c - memory-attribute backends of memconv-vmm (see attr.h).
 *
 * Theory of operation. Every 4 KiB frame of guest RAM is private or shared.
 * KVM keeps that attribute where the VM type supports it (the "kvm"
 * backend) but offers no way to read it back, so a VMM must remember what
 * it applied; on kernels/VM types without KVM_MEMORY_ATTRIBUTE_PRIVATE the
 * remembered record *is* the attribute (the "software" backend), and the
 * VMM itself raises the memory-fault events KVM would raise on a mismatch
 * (vcpu.c). The record is one byte per page, protected by a mutex; it is
 * only changed by attr_apply(), after the kernel (kvm backend) accepted
 * the change, so the record never claims what KVM does not hold.
 *
 * Frames outside [0, ram_size) are not recorded: the kvm backend still
 * passes them to KVM (which accepts attributes for GPA without a memslot),
 * the software backend ignores them.
 */
#include "attr.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-compat.h"

#define ATTR_PAGE_SHIFT 12

struct attr {
        enum attr_kind kind;
        int vm_fd;          /* borrowed; used by the kvm backend */
        uint64_t npages;    /* pages of [0, ram_size) */
        pthread_mutex_t lock;
        uint8_t *priv;      /* owned: 1 = private, per page */
};

/**
 * attr_kvm_supported() - does KVM hold private attributes for this VM?
 * @vm_fd: the VM (borrowed)
 *
 * Return: true when KVM_CAP_MEMORY_ATTRIBUTES has KVM_MEMORY_ATTRIBUTE_PRIVATE.
 */
static bool attr_kvm_supported(int vm_fd)
{
        int r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);

        return r > 0 && (r & KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

/**
 * attr_new() - create the attribute backend for a VM, everything shared
 * @vm_fd: the VM fd, borrowed (must outlive the backend)
 * @ram_size: bytes of convertible RAM at GPA 0, 4 KiB aligned
 * @ret: the new backend, owned by the caller (attr_free())
 *
 * Chooses "kvm" when KVM supports private attributes for this VM, else
 * "software".
 * Return: 0, -EINVAL for a bad size, -ENOMEM.
 */
int attr_new(int vm_fd, uint64_t ram_size, struct attr **ret)
{
        struct attr *a;

        if (!ram_size || ram_size & ((1u << ATTR_PAGE_SHIFT) - 1))
                return -EINVAL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->npages = ram_size >> ATTR_PAGE_SHIFT;
        a->priv = calloc(a->npages, 1);
        if (!a->priv) {
                free(a);
                return -ENOMEM;
        }
        a->vm_fd = vm_fd;
        a->kind = attr_kvm_supported(vm_fd) ? ATTR_KVM : ATTR_SOFTWARE;
        pthread_mutex_init(&a->lock, NULL);
        *ret = a;
        return 0;
}

/**
 * attr_free() - free a backend; accepts NULL
 * @a: the backend (owned, freed)
 *
 * Return: NULL
 */
struct attr *attr_free(struct attr *a)
{
        if (!a)
                return NULL;
        pthread_mutex_destroy(&a->lock);
        free(a->priv);
        free(a);
        return NULL;
}

/**
 * attr_kind() - which backend this is
 * @a: the backend
 *
 * Return: ATTR_KVM or ATTR_SOFTWARE
 */
enum attr_kind attr_kind(const struct attr *a)
{
        return a->kind;
}

/**
 * attr_describe() - the backend's name as printed by the VMM
 * @a: the backend
 *
 * Return: a static string
 */
const char *attr_describe(const struct attr *a)
{
        return a->kind == ATTR_KVM
                ? "kvm (KVM_SET_MEMORY_ATTRIBUTES)"
                : "software (KVM_SET_MEMORY_ATTRIBUTES unsupported by this kernel)";
}

/**
 * attr_apply() - set the attribute of [gpa, gpa+size)
 * @a: the backend
 * @gpa: first address, 4 KiB aligned
 * @size: bytes, 4 KiB aligned, > 0
 * @to_private: private (true) or shared (false)
 *
 * The kvm backend calls KVM_SET_MEMORY_ATTRIBUTES first and updates its
 * mirror only on success. Safe from any thread.
 * Return: 0, -EINVAL for a misaligned/empty/overflowing range, or the
 * ioctl's negative errno (nothing recorded then).
 */
int attr_apply(struct attr *a, uint64_t gpa, uint64_t size, bool to_private)
{
        uint64_t first, last, end;

        if (!size || (gpa | size) & ((1u << ATTR_PAGE_SHIFT) - 1) || gpa + size < gpa)
                return -EINVAL;

        pthread_mutex_lock(&a->lock);
        if (a->kind == ATTR_KVM) {
                struct kvm_memory_attributes ma = {
                        .address = gpa,
                        .size = size,
                        .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
                };

                if (ioctl(a->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &ma) < 0) {
                        int r = -errno;

                        pthread_mutex_unlock(&a->lock);
                        return r;
                }
        }
        first = gpa >> ATTR_PAGE_SHIFT;
        end = (gpa + size) >> ATTR_PAGE_SHIFT;
        last = end < a->npages ? end : a->npages;
        if (first < last)
                memset(a->priv + first, to_private, last - first);
        pthread_mutex_unlock(&a->lock);
        return 0;
}

/**
 * attr_is_private() - the recorded attribute of the page holding @gpa
 * @a: the backend
 * @gpa: any address; outside RAM is reported shared
 *
 * Return: true if private
 */
bool attr_is_private(struct attr *a, uint64_t gpa)
{
        uint64_t pg = gpa >> ATTR_PAGE_SHIFT;
        bool p;

        if (pg >= a->npages)
                return false;
        pthread_mutex_lock(&a->lock);
        p = a->priv[pg];
        pthread_mutex_unlock(&a->lock);
        return p;
}

/**
 * attr_count_private() - private pages in [gpa, gpa+size) (RAM part only)
 * @a: the backend
 * @gpa: first address
 * @size: bytes
 *
 * Return: the number of private 4 KiB pages
 */
uint64_t attr_count_private(struct attr *a, uint64_t gpa, uint64_t size)
{
        uint64_t pg, end = (gpa + size + (1u << ATTR_PAGE_SHIFT) - 1) >> ATTR_PAGE_SHIFT;
        uint64_t n = 0;

        if (end > a->npages)
                end = a->npages;
        pthread_mutex_lock(&a->lock);
        for (pg = gpa >> ATTR_PAGE_SHIFT; pg < end; pg++)
                n += a->priv[pg];
        pthread_mutex_unlock(&a->lock);
        return n;
}

/**
 * attr_dump() - write the record as coalesced "gpa size private|shared" lines
 * @a: the backend
 * @f: the stream (borrowed)
 *
 * Return: 0, or -EIO when writing failed.
 */
int attr_dump(struct attr *a, FILE *f)
{
        uint64_t pg = 0, start;

        pthread_mutex_lock(&a->lock);
        while (pg < a->npages) {
                uint8_t v = a->priv[pg];

                start = pg;
                while (pg < a->npages && a->priv[pg] == v)
                        pg++;
                fprintf(f, "0x%llx 0x%llx %s\n", (unsigned long long) (start << ATTR_PAGE_SHIFT),
                        (unsigned long long) ((pg - start) << ATTR_PAGE_SHIFT),
                        v ? "private" : "shared");
        }
        pthread_mutex_unlock(&a->lock);
        return ferror(f) ? -EIO : 0;
}
