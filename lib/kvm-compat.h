/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm-compat.h - the KVM uapi that memconvd needs and older <linux/kvm.h>
 * (Debian 12 ships 6.1 headers) lacks: guest_memfd, memory attributes, the
 * memory-fault exit, KVM_SET_USER_MEMORY_REGION2, and the MAP_GPA_RANGE
 * attribute bits. Each block is compiled only when configure found the
 * system header without it (HAVE_DECL_* from config.h), so a newer system
 * header always wins. Values are the kernel's ABI and never change.
 *
 * struct kvm_run.memory_fault cannot be added to an existing struct, so it
 * is reached through mc_kvm_run_memory_fault(), which uses the real member
 * when the header has it and otherwise the same bytes of the exit union.
 *
 * Internal header: includes config.h, never installed.
 */
#pragma once

#include "config.h"

#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <stddef.h>

#if !HAVE_DECL_KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
        __u64 size;
        __u64 flags;
        __u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif

#if !HAVE_DECL_KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
        __u32 slot;
        __u32 flags;
        __u64 guest_phys_addr;
        __u64 memory_size;
        __u64 userspace_addr;
        __u64 guest_memfd_offset;
        __u32 guest_memfd;
        __u32 pad1;
        __u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD (1UL << 2)
#endif

#if !HAVE_DECL_KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
        __u64 address;
        __u64 size;
        __u64 attributes;
        __u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#endif

#ifndef KVM_MEMORY_ATTRIBUTE_PRIVATE
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
#endif

#if !HAVE_DECL_KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif

#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif
#ifndef KVM_X86_DEFAULT_VM
#define KVM_X86_DEFAULT_VM 0
#endif
#ifndef KVM_X86_SW_PROTECTED_VM
#define KVM_X86_SW_PROTECTED_VM 1
#endif

#if !HAVE_DECL_KVM_CAP_EXIT_HYPERCALL
#define KVM_CAP_EXIT_HYPERCALL 201
#endif
#ifndef KVM_HC_MAP_GPA_RANGE
#define KVM_HC_MAP_GPA_RANGE 12
#endif
#ifndef KVM_MAP_GPA_RANGE_PAGE_SZ_4K
#define KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0
#define KVM_MAP_GPA_RANGE_PAGE_SZ_2M (1 << 0)
#define KVM_MAP_GPA_RANGE_PAGE_SZ_1G (1 << 1)
#endif
#ifndef KVM_MAP_GPA_RANGE_ENCRYPTED
#define KVM_MAP_GPA_RANGE_ENCRYPTED (1 << 4)
#define KVM_MAP_GPA_RANGE_DECRYPTED (0 << 4)
#endif

/* Layout of run->memory_fault (kernel 6.8+), identical in every header. */
struct mc_kvm_memory_fault {
        __u64 flags;
        __u64 gpa;
        __u64 size;
};

/**
 * mc_kvm_run_memory_fault() - the memory-fault exit data of @run
 * @run: a vCPU's mapped struct kvm_run
 *
 * Return: a pointer into @run (not owned) valid while @run is mapped.
 */
static inline struct mc_kvm_memory_fault *mc_kvm_run_memory_fault(struct kvm_run *run)
{
#ifdef HAVE_STRUCT_KVM_RUN_MEMORY_FAULT
        return (struct mc_kvm_memory_fault *) (void *) &run->memory_fault;
#else
        /* The exit union starts with 'hw'; memory_fault sits at its start. */
        return (struct mc_kvm_memory_fault *) (void *) &run->hw;
#endif
}
