/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vcpu.c - vCPUs of memconv-vmm: setup, the run loop, the command protocol.
 *
 * A vCPU is driven synchronously by the scenario code on its own thread:
 * vcpu_command() writes the arguments into the vCPU's mailbox, hands the
 * guest the command (answering the pending `in PORT_CMD`), then runs
 * KVM_RUN until the guest asks for the next command, and reads the two
 * result words from the mailbox. In between it answers access
 * announcements and hypercall stand-ins.
 *
 * Access announcements (PORT_ACCESS) are where the software attribute
 * backend stands in for KVM's fault on a private/shared mismatch: for every
 * 4 KiB page of the announced range whose recorded attribute differs from
 * the view the guest uses, the VMM fills a *local* struct kvm_run with
 * KVM_EXIT_MEMORY_FAULT {flags = PRIVATE if the access is private, gpa =
 * page, size = 4096} and hands it to conv_handle_exit(), then re-checks.
 * The real run still holds the pending KVM_EXIT_IO and is not touched.
 * The hypercall stand-in (PORT_HC) likewise fills a local run with
 * KVM_EXIT_HYPERCALL / KVM_HC_MAP_GPA_RANGE from the guest's registers and
 * returns hypercall.ret to the guest in eax.
 *
 * Real KVM_EXIT_MEMORY_FAULT / KVM_EXIT_HYPERCALL exits (a kernel with
 * private memory) go to conv_handle_exit() with the real run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-compat.h"
#include "memconv.h"

#include "attr.h"
#include "vmm.h"

/* Refusal codes the guest receives for an announced access. */
#define ACCESS_REFUSED 1  /* the daemon / inline rules refused the conversion */
#define ACCESS_BAD 2      /* the range is not guest RAM */
#define ACCESS_ERROR 3    /* the conversion path failed */
#define ACCESS_MAX_TRIES 16

/**
 * vcpu_init() - create vCPU @idx in 32-bit flat protected mode
 * @vmm: the VMM with vm_fd, code slot and run_size set up (borrowed)
 * @v: zeroed storage to fill; v->fd and v->run are owned by @v afterwards
 * @idx: the vCPU index (KVM vcpu id)
 *
 * CS/DS/ES/SS/FS/GS: base 0, limit 4 GiB, 32-bit; CR0.PE = 1, no paging;
 * EIP at the guest code, ESP at the top of this vCPU's stack page.
 * Return: 0 or a negative errno; on failure @v holds what must be freed
 * with vcpu_destroy().
 */
int vcpu_init(struct vmm *vmm, struct vcpu *v, unsigned idx)
{
        struct kvm_segment seg = {
                .base = 0,
                .limit = 0xffffffff,
                .present = 1,
                .dpl = 0,
                .db = 1,
                .s = 1,
                .l = 0,
                .g = 1,
        };
        struct kvm_sregs sregs;
        struct kvm_regs regs;
        void *p;

        v->vmm = vmm;
        v->idx = idx;
        v->fd = ioctl(vmm->vm_fd, KVM_CREATE_VCPU, (unsigned long) idx);
        if (v->fd < 0)
                return v->fd = -1, -errno;
        if (fcntl(v->fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        p = mmap(NULL, vmm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        v->run = p;

        if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
                return -errno;
        seg.type = 11; /* code: execute/read, accessed */
        seg.selector = 0x08;
        sregs.cs = seg;
        seg.type = 3; /* data: read/write, accessed */
        seg.selector = 0x10;
        sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg;
        sregs.cr0 |= 1; /* PE */
        sregs.cr0 &= ~(1ull << 31); /* no paging */
        sregs.cr4 = 0;
        sregs.efer = 0;
        if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
                return -errno;

        memset(&regs, 0, sizeof(regs));
        regs.rflags = 2;
        regs.rip = CODE_GPA;
        regs.rsp = CODE_GPA + CODE_SIZE + (uint64_t) (idx + 1) * STACK_SIZE;
        v->mailbox = (volatile uint32_t *) (void *) (vmm->code_map + CODE_SIZE + (size_t) idx * STACK_SIZE);
        if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
                return -errno;
        return 0;
}

/**
 * vcpu_destroy() - unmap the run and close the vCPU fd; accepts half-built
 * @v: the vCPU (its members are released and reset)
 */
void vcpu_destroy(struct vcpu *v)
{
        if (v->run && v->vmm)
                munmap(v->run, v->vmm->run_size);
        v->run = NULL;
        if (v->fd >= 0)
                close(v->fd);
        v->fd = -1;
}

/**
 * vcpu_io_data() - the data bytes of the pending KVM_EXIT_IO
 * @run: the vCPU's run
 *
 * Return: a pointer into @run
 */
static uint32_t *vcpu_io_data(struct kvm_run *run)
{
        return (uint32_t *) (void *) ((uint8_t *) run + run->io.data_offset);
}

/**
 * vcpu_access() - make an announced guest access legal (software stand-in)
 * @v: the vCPU
 * @addr: the guest address about to be accessed (private or shared view)
 * @len: bytes
 *
 * For each page whose attribute does not match the view, raise the memory
 * fault KVM would raise and re-check, until it matches or the conversion
 * path refuses.
 * Return: 0 (go), or an ACCESS_* code for the guest.
 */
static uint32_t vcpu_access(struct vcpu *v, uint32_t addr, uint32_t len)
{
        struct vmm *vmm = v->vmm;
        bool priv = addr < SHARED_ALIAS;
        uint64_t gpa = priv ? addr : (uint64_t) addr - SHARED_ALIAS;
        uint64_t pg, end = gpa + len;

        if (!len || end > vmm->ram_size)
                return ACCESS_BAD;
        for (pg = gpa & ~(uint64_t) (VMM_PAGE_SIZE - 1); pg < end; pg += VMM_PAGE_SIZE) {
                unsigned tries = 0;

                while (attr_is_private(vmm->attr, pg) != priv) {
                        struct kvm_run local;
                        struct mc_kvm_memory_fault *mf;
                        int r;

                        if (++tries > ACCESS_MAX_TRIES) {
                                vmm_log(vmm, "vcpu%u: page 0x%llx still mismatched after %u faults",
                                        v->idx, (unsigned long long) pg, ACCESS_MAX_TRIES);
                                return ACCESS_ERROR;
                        }
                        memset(&local, 0, sizeof(local));
                        local.exit_reason = KVM_EXIT_MEMORY_FAULT;
                        mf = mc_kvm_run_memory_fault(&local);
                        mf->flags = priv ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0;
                        mf->gpa = pg;
                        mf->size = VMM_PAGE_SIZE;
                        r = conv_handle_exit(v, &local);
                        vmm_verbose(vmm, "vcpu%u: memory fault gpa 0x%llx flags 0x%llx -> %d", v->idx,
                                    (unsigned long long) pg, (unsigned long long) mf->flags, r);
                        if (r < 0) {
                                vmm_log(vmm, "vcpu%u: conversion of 0x%llx failed: %s", v->idx,
                                        (unsigned long long) pg, strerror(-r));
                                return ACCESS_ERROR;
                        }
                        if (r != MC_EXIT_RETRY)
                                return ACCESS_REFUSED;
                }
        }
        return 0;
}

/**
 * vcpu_hypercall() - the MAP_GPA_RANGE stand-in from the guest's registers
 * @v: the vCPU, stopped at `in PORT_HC`
 * @ret_val: what the guest receives in eax (hypercall.ret)
 *
 * Return: 0, or a negative errno when the registers could not be read or
 * the conversion path failed (the guest is then not resumed).
 */
static int vcpu_hypercall(struct vcpu *v, uint32_t *ret_val)
{
        struct kvm_regs regs;
        struct kvm_run local;
        int r;

        if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
                return -errno;
        memset(&local, 0, sizeof(local));
        local.exit_reason = KVM_EXIT_HYPERCALL;
        local.hypercall.nr = (uint32_t) regs.rax;
        local.hypercall.args[0] = (uint32_t) regs.rbx;
        local.hypercall.args[1] = (uint32_t) regs.rcx;
        local.hypercall.args[2] = (uint32_t) regs.rdx;
        local.hypercall.ret = (uint64_t) -KVM_ENOSYS;
        r = conv_handle_exit(v, &local);
        vmm_verbose(v->vmm, "vcpu%u: hypercall MAP_GPA_RANGE gpa 0x%llx pages %llu attrs 0x%llx -> %d ret %lld",
                    v->idx, (unsigned long long) local.hypercall.args[0],
                    (unsigned long long) local.hypercall.args[1],
                    (unsigned long long) local.hypercall.args[2], r, (long long) local.hypercall.ret);
        if (r < 0)
                return r;
        if (r == MC_EXIT_STOP_VM)
                return -EPERM;
        *ret_val = (uint32_t) local.hypercall.ret;
        return 0;
}

/**
 * vcpu_fail_exit() - describe an unexpected exit and give up
 * @v: the vCPU
 * @what: a short description
 *
 * Return: -EPROTO
 */
static int vcpu_fail_exit(struct vcpu *v, const char *what)
{
        struct kvm_regs regs;

        if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
                vmm_log(v->vmm, "vcpu%u: %s (exit %u, rip 0x%llx)", v->idx, what, v->run->exit_reason,
                        (unsigned long long) regs.rip);
        else
                vmm_log(v->vmm, "vcpu%u: %s (exit %u)", v->idx, what, v->run->exit_reason);
        return -EPROTO;
}

/**
 * vcpu_handle_io() - answer one KVM_EXIT_IO
 * @v: the vCPU
 * @ret_done: set true when the guest asks for the next command
 *
 * Return: 0 or a negative errno.
 */
static int vcpu_handle_io(struct vcpu *v, bool *ret_done)
{
        struct kvm_run *run = v->run;
        uint32_t *data = vcpu_io_data(run);
        bool in = run->io.direction == KVM_EXIT_IO_IN;
        struct kvm_regs regs;
        int r;

        if (run->io.size != 4 || run->io.count != 1)
                return vcpu_fail_exit(v, "unexpected I/O width");

        switch (run->io.port) {
        case PORT_CMD:
                if (!in)
                        break;
                v->at_prompt = true;
                *ret_done = true;
                return 0;
        case PORT_ACCESS:
                if (!in)
                        break;
                if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
                        return -errno;
                *data = vcpu_access(v, (uint32_t) regs.rbx, (uint32_t) regs.rcx);
                return 0;
        case PORT_HC:
                if (!in)
                        break;
                r = vcpu_hypercall(v, data);
                return r;
        default:
                break;
        }
        return vcpu_fail_exit(v, "unexpected I/O port");
}

/**
 * vcpu_run_until_prompt() - run the guest until it asks for a command
 * @v: the vCPU
 *
 * Return: 0 at the prompt, 1 when the guest halted, or a negative errno.
 */
static int vcpu_run_until_prompt(struct vcpu *v)
{
        for (;;) {
                bool done = false;
                int r = ioctl(v->fd, KVM_RUN, 0);

                if (r < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        if (errno == EFAULT && v->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
                                /* A real KVM memory fault (kernel with private memory). */
                                struct mc_kvm_memory_fault *mf = mc_kvm_run_memory_fault(v->run);

                                atomic_fetch_add(mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE
                                                         ? &v->vmm->stats.real_faults_private
                                                         : &v->vmm->stats.real_faults_shared, 1);
                                v->real_faults++;
                                vmm_verbose(v->vmm, "vcpu%u: KVM_EXIT_MEMORY_FAULT gpa 0x%llx size 0x%llx flags 0x%llx",
                                            v->idx, (unsigned long long) mf->gpa, (unsigned long long) mf->size,
                                            (unsigned long long) mf->flags);
                                r = conv_handle_exit(v, v->run);
                                if (r < 0)
                                        return r;
                                if (r != MC_EXIT_RETRY)
                                        return vcpu_fail_exit(v, "memory fault refused");
                                continue;
                        }
                        r = -errno;
                        vmm_log(v->vmm, "vcpu%u: KVM_RUN: %s", v->idx, strerror(-r));
                        return r;
                }
                switch (v->run->exit_reason) {
                case KVM_EXIT_IO:
                        r = vcpu_handle_io(v, &done);
                        if (r < 0)
                                return r;
                        if (done)
                                return 0;
                        break;
                case KVM_EXIT_HYPERCALL:
                        atomic_fetch_add(&v->vmm->stats.real_hypercalls, 1);
                        r = conv_handle_exit(v, v->run);
                        vmm_verbose(v->vmm, "vcpu%u: KVM_EXIT_HYPERCALL nr %llu gpa 0x%llx pages %llu attrs 0x%llx -> %d, RAX 0x%llx",
                                    v->idx, (unsigned long long) v->run->hypercall.nr,
                                    (unsigned long long) v->run->hypercall.args[0],
                                    (unsigned long long) v->run->hypercall.args[1],
                                    (unsigned long long) v->run->hypercall.args[2], r,
                                    (unsigned long long) v->run->hypercall.ret);
                        if (r < 0)
                                return r;
                        if (r == MC_EXIT_NOT_HANDLED)
                                return vcpu_fail_exit(v, "unknown hypercall");
                        break;
                case KVM_EXIT_HLT:
                        v->halted = true;
                        return 1;
                case KVM_EXIT_SHUTDOWN:
                        return vcpu_fail_exit(v, "guest triple fault");
                case KVM_EXIT_FAIL_ENTRY:
                        return vcpu_fail_exit(v, "entry failed");
                case KVM_EXIT_INTERNAL_ERROR:
                        return vcpu_fail_exit(v, "KVM internal error");
                case KVM_EXIT_MMIO:
                        return vcpu_fail_exit(v, "access outside every memslot");
                default:
                        return vcpu_fail_exit(v, "unexpected exit");
                }
        }
}

/**
 * vcpu_command() - have the guest execute one command
 * @v: the vCPU (used by this thread only)
 * @cmd: CMD_*
 * @args: the arguments (copied to the mailbox)
 * @nargs: their number, <= MB_NARGS
 * @ret_res: the guest's two result words (may be NULL); untouched on failure
 *
 * Return: 0, 1 when the guest halted (CMD_DONE), -EINVAL for too many
 * arguments, or a negative errno.
 */
int vcpu_command(struct vcpu *v, uint32_t cmd, const uint32_t *args, unsigned nargs,
                 uint32_t ret_res[2])
{
        int r;

        if (v->halted)
                return -ESHUTDOWN;
        if (!v->at_prompt) {
                r = vcpu_run_until_prompt(v);
                if (r != 0)
                        return r < 0 ? r : -ESHUTDOWN;
        }
        if (nargs > MB_NARGS)
                return -EINVAL;
        for (unsigned i = 0; i < MB_NARGS; i++)
                v->mailbox[i] = i < nargs ? args[i] : 0;
        v->mailbox[MB_RES_WORD] = 0xdeadbeef;
        v->mailbox[MB_RES_WORD + 1] = 0xdeadbeef;
        *vcpu_io_data(v->run) = cmd;
        v->at_prompt = false;
        r = vcpu_run_until_prompt(v);
        if (r < 0)
                return r;
        if (r == 1)
                return cmd == CMD_DONE ? 1 : -ESHUTDOWN;
        if (v->mailbox[MB_RES_WORD] == 0xdeadbeef)
                return vcpu_fail_exit(v, "guest left no result");
        if (ret_res) {
                ret_res[0] = v->mailbox[MB_RES_WORD];
                ret_res[1] = v->mailbox[MB_RES_WORD + 1];
        }
        return 0;
}
