/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * message.h - the one place that decides whether a decoded frame is
 * acceptable, before any handler sees it.
 *
 * mc_message_validate() checks, from a table indexed by message type:
 * that the type may travel in this direction, that requests carry a
 * non-zero id, that enum fields hold known values, that strings and byte
 * fields have legal lengths and characters, that numeric geometry cannot
 * overflow, and that exactly the fds the type takes came with it. It does
 * not know any VM state: range checks against regions belong to the planner.
 *
 * Also: the mapping between wire result codes and errno values, and a
 * helper to fill a Status.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memconv.pb-c.h"

enum mc_msg_direction {
        MC_MSG_TO_DAEMON, /* sent by a VMM */
        MC_MSG_TO_CLIENT, /* sent by memconvd */
};

#define MC_NAME_MAX 255
#define MC_CLIENT_NAME_MAX 256
#define MC_SYNDROME_MAX 64
#define MC_DECISION_RANGES_MAX 2048
#define MC_STATUS_TEXT_MAX 160
/* Most reports in one LeasedBatch (a lease's report_batch): well inside a 64 KiB frame. */
#define MC_LEASE_BATCH_MAX 1024
/* Longest a lease lets a report wait before it is sent (report_delay_usec). */
#define MC_LEASE_REPORT_DELAY_MAX_USEC 100000

/* A refusal: the wire code, the matching -errno and a precise text. */
struct mc_msg_error {
        Memconv__Code code;
        int error;
        char text[MC_STATUS_TEXT_MAX];
};

/**
 * mc_message_validate() - check a decoded message before it is handled
 * @m: the message (borrowed)
 * @n_fds: how many fds came with it
 * @dir: which way it travelled
 * @ret_err: on failure, why (must not be NULL)
 *
 * Return: 0 if acceptable; otherwise the negative errno also stored in
 * @ret_err->error (-EPROTO wrong direction/unknown type, -EINVAL bad field,
 * -EBADF wrong number of fds).
 */
int mc_message_validate(const Memconv__Message *m, size_t n_fds, enum mc_msg_direction dir,
                        struct mc_msg_error *ret_err);

/**
 * mc_message_fds_expected() - how many fds a message of this type carries
 * Return: the count, or -1 for a type that is not a request.
 */
int mc_message_fds_expected(const Memconv__Message *m);

/** mc_message_type_name() - the body's name for logs, "unknown" if none */
const char *mc_message_type_name(Memconv__Message__BodyCase c);

/** mc_error_set() - fill @e (printf-style text) and return @error */
int mc_error_set(struct mc_msg_error *e, Memconv__Code code, int error, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/** mc_code_from_errno() - the wire code that best describes -errno @error */
Memconv__Code mc_code_from_errno(int error);

/** mc_code_to_errno() - the -errno a wire code stands for (0 for OK) */
int mc_code_to_errno(Memconv__Code code);

/** mc_code_name() - short name of a code, e.g. "invalid-argument" */
const char *mc_code_name(Memconv__Code code);

/** mc_range_valid() - page aligned, non-empty, no 64-bit overflow */
bool mc_range_valid(uint64_t start, uint64_t size);
