/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attr.h - memory-attribute backends of memconv-vmm.
 *
 * One interface, two backends:
 *  - "kvm": KVM_SET_MEMORY_ATTRIBUTES on the VM fd, for kernels and VM
 *    types that support KVM_MEMORY_ATTRIBUTE_PRIVATE; a mirror of every
 *    applied attribute is kept, since KVM has no "get" ioctl;
 *  - "software": this kernel cannot hold private memory, so the record of
 *    attributes is the attribute state; the VMM checks guest accesses
 *    against it.
 * Both keep one byte per 4 KiB page of [0, ram_size) under a mutex, so any
 * vCPU thread may call any function at any time.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum attr_kind {
        ATTR_KVM,
        ATTR_SOFTWARE,
};

struct attr;

int attr_new(int vm_fd, uint64_t ram_size, struct attr **ret);
struct attr *attr_free(struct attr *a);
enum attr_kind attr_kind(const struct attr *a);
const char *attr_describe(const struct attr *a);
int attr_apply(struct attr *a, uint64_t gpa, uint64_t size, bool to_private);
bool attr_is_private(struct attr *a, uint64_t gpa);
uint64_t attr_count_private(struct attr *a, uint64_t gpa, uint64_t size);
int attr_dump(struct attr *a, FILE *f);
