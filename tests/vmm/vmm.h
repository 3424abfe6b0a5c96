/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmm.h - the reference VMM (memconv-vmm): shared definitions.
 *
 * Concept. memconv-vmm is a small real VMM: one KVM VM of the default type,
 * real vCPUs (one pthread each) running real 32-bit guest code (guest.S).
 * The convertible guest RAM [0, ram_size) is backed twice, like a
 * confidential VM's memory:
 *
 *   GPA 0 .. ram_size                  slot 0, guest_memfd  "private view"
 *   GPA SHARED_ALIAS .. +ram_size      slot 1, memfd        "shared view"
 *   GPA CODE_GPA .. +code size         slot 2, anonymous    code + stacks
 *
 * The shared alias models the TDX "shared GPA bit" / SEV C-bit: one guest
 * frame N is reached privately at N and shared at SHARED_ALIAS + N. The
 * attribute of frame N (private or shared) lives in the attribute backend
 * (attr.c); conversions go through libmemconv + memconvd (mode "daemon") or
 * are done in the VMM the way QEMU does them (mode "inline", conv.c).
 *
 * The guest is a command interpreter: it reads a command from an I/O port
 * (its arguments from a mailbox page), performs it with real memory
 * accesses and reports two result words. Before each memory access it
 * announces the address and length (PORT_ACCESS); since this kernel cannot
 * fault on a private/shared mismatch, the VMM raises the
 * KVM_EXIT_MEMORY_FAULT KVM would raise. The explicit conversion hypercall
 * (KVM_HC_MAP_GPA_RANGE) is stood in for by an `in` from PORT_HC with the
 * hypercall registers loaded.
 *
 * Why not a real KVM_EXIT_HYPERCALL: on this kernel (6.18, kvm_pvm) the
 * capability is there (KVM_CHECK_EXTENSION(KVM_CAP_EXIT_HYPERCALL) = 1 << 12,
 * KVM_ENABLE_CAP with that mask succeeds), but no guest instruction reaches
 * KVM's hypercall code. Measured with the cap enabled, eax = 12, CPL 0, in
 * 32-bit protected mode and in 64-bit long mode (low and high addresses):
 * `vmmcall` is rewritten in guest memory to `vmcall` (0f 01 c1, KVM's
 * "fix hypercall" quirk) and `vmcall` then spins inside KVM_RUN (rip stays
 * on it; only a signal ends the ioctl: -1/EINTR, KVM_EXIT_INTR) - no exit,
 * not even for an unaligned gpa that KVM would answer in-kernel. With
 * KVM_X86_QUIRK_FIX_HYPERCALL_INSN disabled both instructions raise #UD
 * (KVM_EXIT_SHUTDOWN for this IDT-less guest). `syscall` is an ordinary
 * syscall (goes to LSTAR). So the stand-in stays; a kernel with working
 * hypercalls (the nested guest of KVM-FACTS.md) gives the real exit, which
 * vcpu.c already passes to conv_handle_exit() with the real run.
 *
 * Measured on this machine (kernel 6.18, PVM): a KVM_EXIT_IO round trip
 * costs about 35 us and the guest's instructions are emulated by KVM's
 * instruction emulator (about 0.17 us per word written), which is why
 * arguments travel through a mailbox and large ranges are sampled
 * (scenario.c, sample_step()).
 *
 * With --vm-type sw-protected (KVM_X86_SW_PROTECTED_VM, a kernel with
 * CONFIG_KVM_SW_PROTECTED_VM: the nested guest of tests/kvm/) memory is
 * really private: slot 0 is a guest_memfd slot (flags 0) whose
 * userspace_addr is the shared memfd, as QEMU lays out a confidential VM,
 * and KVM routes an access to GPA N by N's attribute, which the "kvm"
 * attribute backend sets with KVM_SET_MEMORY_ATTRIBUTES. CONVERT is a real
 * `vmmcall` (KVM_CAP_EXIT_HYPERCALL enabled): KVM_EXIT_HYPERCALL, and the
 * guest reads hypercall.ret in eax. A sw-protected guest cannot state an
 * intent in its accesses (KVM takes "private" from the attribute itself),
 * so the views and their announcements stay the guest's way of asking for
 * an implicit conversion; KVM's own KVM_EXIT_MEMORY_FAULT exits come when a
 * conversion races an access (flags 0x8 and 0, scenario "race") and reach
 * conv_handle_exit() with the real run. Raw views (VIEW_RAW) skip the
 * announcement and show what KVM really maps.
 *
 * This header is included by guest.S: the C part is hidden from the
 * assembler.
 */
#ifndef VMM_H
#define VMM_H

/* Guest physical layout. */
#define SHARED_ALIAS 0x80000000
#define CODE_GPA 0xC0000000
#define CODE_SIZE 0x10000 /* code; the vCPU stacks follow */
#define STACK_SIZE 0x1000 /* per vCPU */
#define VMM_PAGE_SIZE 4096
#define VMM_MAX_RAM_MB 1024 /* RAM must stay below SHARED_ALIAS */

/*
 * I/O ports between guest and VMM (all 32-bit `in`, each one KVM_EXIT_IO).
 * An exit costs about 35 us on this machine, so a command's arguments and
 * results travel through a per-vCPU mailbox instead of one port access per
 * word: the bottom of the vCPU's stack page (the guest never pushes), at
 * MB_*(%esp) for the guest and vcpu_mailbox() for the VMM. `in PORT_CMD`
 * both says "results are in the mailbox, give me the next command" and
 * returns that command.
 */
#define PORT_CMD 0x10    /* in: next command (CMD_*); args in the mailbox */
#define PORT_ACCESS 0x13 /* in: ebx = address, ecx = length about to be accessed; 0 = go */
#define PORT_HC 0x14     /* in: eax = nr, ebx/ecx/edx = args; eax <- hypercall.ret */

#define MB_NARGS 6
#define MB_ARG(i) (-STACK_SIZE + 4 * (i))  /* relative to the guest's esp */
#define MB_RES(i) (-STACK_SIZE + 32 + 4 * (i))
#define MB_RES_WORD 8 /* MB_RES(0) as a word index from MB_ARG(0) */

/* Guest commands: arguments, results. */
#define CMD_FILL 1    /* gpa, len, pattern32, view -> 0|err, 0 */
#define CMD_CHECK 2   /* gpa, len, pattern32, view -> off of mismatch|~0, found */
#define CMD_CONVERT 3 /* gpa, npages, attrs, vmmcall -> ret, 0 */
#define CMD_TOUCH 4   /* gpa, len, view -> 0|err, xor of words read */
#define CMD_DONE 5    /* -> the guest halts */
#define CMD_READLOOP 6 /* gpa, len, passes, view -> 0, xor of words read (never announced) */

/*
 * Views: bit 0 selects the shared alias, bit 1 "raw": no announcement, so
 * the VMM makes nothing legal first. On a VM with private memory (the kvm
 * backend) a raw access to GPA N reaches whatever KVM's attribute of N says
 * (guest_memfd when private, the shared memfd when shared): raw reads show
 * KVM's real attributes.
 */
#define VIEW_PRIVATE 0
#define VIEW_SHARED 1
#define VIEW_RAW 2

#define CHECK_OK 0xFFFFFFFF

#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#ifndef __ASSEMBLER__

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;
struct attr;
struct mc_client;

/* The VM type: KVM_X86_DEFAULT_VM, or KVM_X86_SW_PROTECTED_VM (private memory). */
enum vmm_vm_type {
        VMM_VM_DEFAULT,
        VMM_VM_SW_PROTECTED,
};

enum vmm_mode {
        VMM_MODE_DAEMON,
        VMM_MODE_INLINE,
};

/* Conversion counters, updated by every vCPU thread (conv.c). */
struct vmm_stats {
        atomic_ulong faults_private; /* memory-fault events with FLAG_PRIVATE */
        atomic_ulong faults_shared;  /* memory-fault events with flags 0 */
        atomic_ulong hypercalls;     /* MAP_GPA_RANGE stand-ins */
        atomic_ulong refused;        /* requests refused */
        atomic_ulong conv4k_n;       /* timed 4 KiB conversions */
        atomic_ulong conv4k_ns;      /* their total duration */
        /* exits KVM itself produced (a VM type with private memory) */
        atomic_ulong real_faults_private; /* KVM_EXIT_MEMORY_FAULT, flags 0x8 */
        atomic_ulong real_faults_shared;  /* KVM_EXIT_MEMORY_FAULT, flags 0 */
        atomic_ulong real_hypercalls;     /* KVM_EXIT_HYPERCALL (vmmcall) */
};

struct vmm;

/*
 * Latency histogram of vCPU-visible conversion time (conv_handle_exit(),
 * exit handed over to re-entry allowed), in nanoseconds: log-linear, 16
 * sub-buckets per power of two, so a percentile read from it is within
 * 1/16 of the true value. Per vCPU (no sharing), merged when written.
 */
#define LAT_SUB_BITS 4
#define LAT_SUB (1u << LAT_SUB_BITS)
#define LAT_BUCKETS (64 * LAT_SUB)

struct lat_hist {
        uint64_t buckets[LAT_BUCKETS];
        uint64_t count, sum_ns, max_ns;
};

/* One range a decision made this vCPU apply (--applied-out). */
struct applied_range {
        uint64_t decision;   /* this vCPU's n-th applied decision, from 1 */
        uint64_t gpa, size;
        bool to_private, implicit;
};

/*
 * What the daemon answered this vCPU, counted by the vCPU's own thread in
 * daemon mode: the VMM side of the load test's exactly-once proof
 * (tests/load/), compared with memconvd's per-VM counters and history.
 */
struct vcpu_counts {
        uint64_t requests;          /* conversion exits handed to libmemconv */
        uint64_t applied;           /* answers that made the callback apply ranges */
        uint64_t applied_kind[2][2]; /* [implicit][to_private] of those */
        uint64_t applied_ranges;
        uint64_t bytes_to[2];       /* [to_private] applied bytes */
        uint64_t retry;             /* retry without applying (spurious, MMIO no-op) */
        uint64_t refused;           /* refused (inject fault, stop, hypercall error) */
        uint64_t not_handled;
        uint64_t errors;            /* negative return: connection or apply failure */
};

/* One vCPU: its fd, its mapped kvm_run, and the command it is executing. */
struct vcpu {
        struct vmm *vmm;     /* borrowed */
        unsigned idx;
        int fd;              /* owned, O_CLOEXEC */
        struct kvm_run *run; /* owned mapping of run_size bytes */
        bool at_prompt;      /* the guest waits in `in PORT_CMD` */
        bool halted;
        volatile uint32_t *mailbox; /* in vmm->code_map: args at 0, results at 8 */
        /* per-vCPU counters for scenarios */
        unsigned long faults_private, faults_shared;
        unsigned long real_faults; /* of which KVM produced */
        /* scenario scratch */
        uint64_t slice_base, slice_size;
        char fail[256]; /* "" while passing */
        /* --stats-out / --applied-out: only this vCPU's thread writes them */
        struct vcpu_counts counts;
        struct lat_hist lat;
        unsigned apply_calls;          /* callbacks during the current exit */
        bool apply_implicit;           /* the current exit is a memory fault */
        struct applied_range *applied; /* owned, when --applied-out */
        size_t n_applied, cap_applied;
        bool applied_oom;
};

struct vmm_options {
        enum vmm_mode mode;
        enum vmm_vm_type vm_type;
        const char *socket_path;
        const char *uuid;
        const char *name;
        unsigned vcpus;
        unsigned mem_mb;
        unsigned long iterations;
        unsigned long seed;
        bool verbose;
        const char *state_out;
        unsigned long seconds;   /* storm: run this long instead of --iterations (0: off) */
        bool start_signal;       /* attached, then wait for SIGUSR1 before the scenarios */
        bool hold;               /* after the scenarios, stay attached until SIGUSR1 */
        const char *stats_out;   /* JSON: per-vCPU counts and latency */
        const char *applied_out; /* every applied range, per vCPU, in order */
        bool lease;              /* daemon mode: ask memconvd for a policy lease */
};

struct vmm {
        struct vmm_options opt;
        int kvm_fd;        /* owned */
        int vm_fd;         /* owned */
        int gmem_fd;       /* owned: guest_memfd, the private backing */
        int shared_fd;     /* owned: memfd, the shared backing */
        uint64_t ram_size;
        uint64_t gmem_flags;
        bool real_hypercall; /* KVM_CAP_EXIT_HYPERCALL enabled: the guest uses vmmcall */
        uint8_t *gmem_map;   /* owned mapping of the guest_memfd, or NULL */
        uint8_t *shared_map; /* owned mapping of the memfd */
        uint8_t *code_map;   /* owned anonymous mapping */
        size_t code_size;
        size_t run_size;
        struct attr *attr;         /* owned */
        struct mc_client *client;  /* owned, daemon mode */
        pthread_t lease_thread;    /* --lease: reads memconvd's messages while vCPUs are busy or idle */
        bool lease_thread_started;
        atomic_bool lease_stop;
        struct vcpu *vcpus;        /* owned array of opt.vcpus */
        struct vmm_stats stats;
        atomic_uint race_readers_done; /* scenario "race": readers that stopped */
        atomic_bool race_stop;         /* scenario "race": the converter is done */
        uint64_t deadline_ns;          /* --seconds: when the storm stops (monotonic) */
        uint64_t run_start_ns, run_end_ns; /* the scenarios (or the storm's timed part), monotonic */
        uint64_t storm_end_ns;         /* the last vCPU's storm loop ended, monotonic */
        /* The storm's start gate: every vCPU set up, then the timed part (vmm_storm_gate()). */
        pthread_mutex_t gate_lock;
        pthread_cond_t gate_cond;
        unsigned gate_arrived;
        unsigned gate_generation;
        bool gate_signalled;           /* --start-signal: SIGUSR1 was waited for once */
        atomic_ulong stray_applies;    /* apply callbacks outside any vCPU's exit */
        pthread_mutex_t log_lock;
};

/* vmm.c */
uint64_t vmm_now_ns(void);
void vmm_storm_gate(struct vcpu *v);
void vmm_storm_end(struct vmm *vmm);
void vmm_log(struct vmm *vmm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define vmm_verbose(vmm, ...)                    \
        do {                                     \
                if ((vmm)->opt.verbose)          \
                        vmm_log((vmm), __VA_ARGS__); \
        } while (0)

/* vcpu.c */
int vcpu_init(struct vmm *vmm, struct vcpu *v, unsigned idx);
void vcpu_destroy(struct vcpu *v);
int vcpu_command(struct vcpu *v, uint32_t cmd, const uint32_t *args, unsigned nargs,
                 uint32_t ret_res[2]);

/* conv.c */
int conv_setup(struct vmm *vmm);
void conv_teardown(struct vmm *vmm);
int conv_handle_exit(struct vcpu *v, struct kvm_run *run);
int conv_punch(int fd, uint64_t off, uint64_t len);

/* scenario.c */
typedef int (*scenario_fn)(struct vcpu *v);
struct scenario {
        const char *name;
        scenario_fn fn;
        bool in_all;
        const char *summary;
};
extern const struct scenario scenarios[];
const struct scenario *scenario_find(const char *name);

/* guest.S */
extern const unsigned char vmm_guest_start[], vmm_guest_end[];

#endif /* __ASSEMBLER__ */
#endif
