/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * registry.h - domains that libvirt announced (memconvd-libvirt-hook at
 * "prepare begin"): their uuid, name, confidential-computing type and the
 * policy text from their domain XML. With [Policy] RequireRegistration=yes
 * only a registered uuid may attach a new VM, and its policy lines
 * ("PLUGIN key=value ...") become the VM's policy settings.
 * With the journal on, every change is written to STATE_DIR/domains.registry
 * before it is answered, and start-up restores them: a domain libvirt
 * prepared before a daemon restart can still attach after it. (A VM that
 * keeps running across a restart resumes with its attach token anyway.)
 */
#pragma once

#include "daemon.h"

struct domain_reg {
        LIST_ENTRY(domain_reg) link;
        char uuid[37];
        char *name;
        int cc_type;
        char *policy;
};

/**
 * registry_set() - add or replace the registration of @uuid, durably
 * Return: 0, or negative errno (-ENOMEM, or the state file could not be
 * written): then nothing changed
 */
int registry_set(struct daemon *d, const char *uuid, const char *name, int cc_type, const char *policy);

/** registry_find() - the registration of @uuid (36-char form), or NULL */
struct domain_reg *registry_find(struct daemon *d, const char *uuid);

/**
 * registry_drop() - remove the registration of @uuid, durably
 * Return: 1 removed, 0 there was none, negative errno (the state file could
 * not be written: nothing changed)
 */
int registry_drop(struct daemon *d, const char *uuid);

/**
 * registry_load() - restore the registrations saved in the state directory;
 * a missing file is no registration, a damaged one is logged and ignored
 * Return: how many were restored, or -ENOMEM
 */
int registry_load(struct daemon *d);

/** registry_done() - free every registration */
void registry_done(struct daemon *d);

/**
 * registry_apply_policy() - give @vm the policy lines of its registration
 * (one "PLUGIN key=value ..." per line); a line that does not apply is
 * logged and skipped
 */
struct vm;
void registry_apply_policy(struct vm *vm, const struct domain_reg *reg);
