/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memconv-policy.h - the ABI of memconvd policy plugins.
 *
 * A plugin is a shared object that memconvd loads with dlopen() from its
 * plugin directory. It exports exactly one symbol, MC_POLICY_ENTRY
 * ("memconv_policy_plugin_v1"), a function returning a pointer to a
 * constant struct mc_policy_plugin. memconvd checks that the struct's
 * abi_version equals MC_POLICY_ABI_VERSION and that its size is at least
 * what this header declares, and refuses to start otherwise: there is no
 * other way in, so every entry point is typed by this header.
 *
 * Every call happens on memconvd's event-loop thread: a plugin needs no
 * locking, and must not block (no I/O in check()).
 *
 * The chain: for every conversion that would change memory (requests that
 * are spurious, refused as invalid, or MMIO no-ops never reach plugins),
 * memconvd asks each loaded plugin in configured order. The first verdict
 * other than ALLOW decides; DELAY makes the vCPU wait and the request is
 * asked again after the delay.
 */
#ifndef MEMCONV_POLICY_H
#define MEMCONV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MC_POLICY_ABI_VERSION 1U
#define MC_POLICY_ENTRY "memconv_policy_plugin_v1"

/* What a plugin is asked about. All pointers are valid for the call only. */
struct mc_policy_request {
        uint64_t vm_id;
        const char *vm_name;
        const char *vm_uuid;        /* 36-character form */
        int cc_type;                /* enum mc_cc_type of memconv.h */
        bool implicit;              /* a memory fault, not the guest's explicit request */
        bool to_private;
        uint64_t gpa;
        uint64_t size;              /* bytes that would really change */
        uint32_t vcpu;
        int source;                 /* enum mc_convert_source (explicit requests) */
        uint64_t fault_flags;       /* KVM's flags (implicit) */
        uint64_t now_usec;          /* CLOCK_MONOTONIC */
};

enum mc_policy_verdict {
        MC_POLICY_ALLOW = 0,
        MC_POLICY_REFUSE = 1,       /* the request fails; the guest sees an error */
        MC_POLICY_INJECT_FAULT = 2, /* refused; the VMM injects a fault into the guest */
        MC_POLICY_STOP_VM = 3,      /* refused; the VMM stops the VM */
        MC_POLICY_DELAY = 4,        /* ask again after delay_usec; the vCPU waits */
};

struct mc_policy_result {
        enum mc_policy_verdict verdict;
        uint64_t delay_usec;        /* DELAY: how long, > 0 */
        char reason[128];           /* logged and sent to the VMM when not ALLOW */
};

/* A VM, as attach() and label() see it. All pointers are valid for the call only. */
struct mc_policy_vm {
        uint64_t vm_id;             /* 0 in attach(): not created yet */
        const char *uuid;           /* 36-character form */
        const char *name;           /* what the VMM calls it */
        int cc_type;                /* enum mc_cc_type of memconv.h */
        uint32_t uid;               /* the VMM's credentials */
        int32_t pid;
        bool registered;            /* libvirt's hook registered this uuid */
        const char *registered_name; /* the registered domain's name, or NULL */
};

/* One "key=value" setting. */
struct mc_policy_setting {
        const char *key;
        const char *value;
};

/*
 * The terms of a lease (memconv-protocol(7), LEASES): conversions the VMM may
 * apply on the vCPU thread without asking first, reporting each afterwards.
 * lease() receives the terms the plugins before it left and may only narrow
 * them. Every reported conversion is still passed to check() when it
 * arrives; a verdict other than ALLOW there revokes the lease.
 */
struct mc_policy_lease {
        bool implicit;              /* memory faults may be converted under it */
        bool explicit_;             /* explicit requests may */
        uint64_t max_bytes;         /* largest single conversion */
        uint64_t conversions_per_sec; /* token bucket; 0 = unlimited */
        uint64_t conversions_burst;
        uint64_t bytes_per_sec;     /* 0 = unlimited */
        uint64_t bytes_burst;
};

struct mc_policy_plugin {
        uint32_t abi_version;       /* MC_POLICY_ABI_VERSION */
        uint32_t size;              /* sizeof(struct mc_policy_plugin) */
        const char *name;           /* must equal the name it is configured under */

        /**
         * init() - set the plugin up from its configuration section
         * @settings: @n settings (borrowed)
         * @ret_state: the plugin's state, passed to every other call
         * @err: room for a message that says what is wrong (file/key are added)
         * Return: 0, or a negative errno (memconvd then refuses to start or reload)
         */
        int (*init)(const struct mc_policy_setting *settings, size_t n, void **ret_state,
                    char *err, size_t err_len);

        /** done() - free @state; called at shutdown and before a reload */
        void (*done)(void *state);

        /**
         * vm_set() - per-VM settings (memconvctl policy set, libvirt metadata);
         * replaces what was set for @vm_id before; n == 0 clears them
         * Return: 0 or negative errno with @err filled (nothing changed)
         */
        int (*vm_set)(void *state, uint64_t vm_id, const struct mc_policy_setting *settings, size_t n,
                      char *err, size_t err_len);

        /** check() - decide one request; must fill @res */
        void (*check)(void *state, const struct mc_policy_request *req, struct mc_policy_result *res);

        /** vm_gone() - forget @vm_id (it was forgotten by the operator) */
        void (*vm_gone)(void *state, uint64_t vm_id);

        /**
         * describe() - the effective policy of @vm_id as "key=value ..." text,
         * plus counters the plugin keeps (for memconvctl policy show / stats)
         */
        void (*describe)(void *state, uint64_t vm_id, char *buf, size_t len);

        /*
         * Optional entry points, appended in memconvd 0.2 without changing
         * the ABI version: memconvd uses one only when @size covers it and
         * it is not NULL. A plugin built against the original header (size
         * MC_POLICY_PLUGIN_SIZE_V1_0) keeps loading.
         */

        /**
         * attach() - may a new instance of this VM attach? (a VMM resuming
         * its VM with the attach token is not asked again)
         * @err: why not, sent to the VMM and logged
         * Return: 0 to allow, or a negative errno to refuse (nothing is created)
         */
        int (*attach)(void *state, const struct mc_policy_vm *vm, char *err, size_t err_len);

        /**
         * label() - a few words that name @vm for memconvctl list (e.g. its
         * libvirt domain and that domain's state); leave @buf empty for none.
         * The first plugin in the chain with a label wins.
         */
        void (*label)(void *state, const struct mc_policy_vm *vm, char *buf, size_t len);

        /**
         * lease() - may @vm hold a lease, and on which terms? Narrow @lease
         * (never widen it). A plugin without this entry point never lets a
         * VM hold a lease: it sees every conversion before it happens.
         * @err: why not, when refusing (shown by memconvctl show)
         * Return: 0 to allow the (narrowed) terms, or a negative errno to refuse
         */
        int (*lease)(void *state, const struct mc_policy_vm *vm, struct mc_policy_lease *lease, char *err,
                     size_t err_len);
};

/* The size of struct mc_policy_plugin before the optional entry points. */
#define MC_POLICY_PLUGIN_SIZE_V1_0 offsetof(struct mc_policy_plugin, attach)

typedef const struct mc_policy_plugin *(*mc_policy_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
