/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * client-vm.h - for the CUnit tests that drive a real memconvd through
 * libmemconv itself (test-reconnect, test-batch, test-poll): a configuration
 * file, the daemon, one VM attached with one region, and its figures.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <CUnit/Basic.h>

#include "memconv.h"

struct client_vm {
        char conf_path[64];       /* the daemon's configuration file: rewrite it, then SIGHUP */
        mc_client *client;
        struct mc_region_info region;  /* slot 0 at GPA 0, its fds owned here */
};

/**
 * client_vm_setup() - write @conf to a new configuration file, start memconvd
 * with it (harness_setup()), attach VM @name (@uuid: 16 bytes) with one
 * region of @ram bytes at GPA 0 (a real guest_memfd and memfd), and set
 * @apply as the apply callback
 * Return: 0, or the exit status the test should end with (77: skipped)
 */
int client_vm_setup(struct client_vm *v, const char *conf, const char *name, const char *uuid, uint64_t ram,
                    mc_apply_fn apply);

/** client_vm_teardown() - free the client, close the fds, remove the configuration file */
void client_vm_teardown(struct client_vm *v);

struct client_vm_numbers {
        uint64_t private_bytes, leased, batches, spurious, changes; /* changes: committed conversions */
};

/** client_vm_numbers() - the VM @name's figures as `show` reports them; false if memconvd did not answer */
bool client_vm_numbers(const char *name, struct client_vm_numbers *ret);

/**
 * client_vm_numbers_settle() - client_vm_numbers(), asked again (2 s at most)
 * until @changes conversions are recorded: the last Applied may still be in
 * the request ring, or its change not yet committed, when `show` is answered
 * Return: false if memconvd did not answer
 */
bool client_vm_numbers_settle(const char *name, uint64_t changes, struct client_vm_numbers *ret);

/* client_vm_count_apply() - an apply callback that only counts, in client_vm_applies */
extern unsigned client_vm_applies;
int client_vm_count_apply(void *userdata, uint64_t gpa, uint64_t size, bool to_private);

struct client_vm_test {
        const char *name;
        CU_TestFunc fn;
};

/**
 * client_vm_run() - run @tests as CUnit suite @suite, then tear @v down and
 * stop the daemon
 * Return: the exit status (harness_finish())
 */
int client_vm_run(struct client_vm *v, const char *suite, const struct client_vm_test *tests, size_t n);
