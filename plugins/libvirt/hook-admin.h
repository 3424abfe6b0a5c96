/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hook-admin.h - one admin request to memconvd and its reply, bounded by a
 * deadline: the only place the libvirt hook touches a socket.
 *
 * libvirt waits for its hooks with the domain's lock held, so nothing here
 * may block past the deadline: connect() and send() are bounded by
 * SO_SNDTIMEO (which also bounds connect() on a Unix socket whose backlog
 * is full), the reply by poll(). The socket is SOCK_CLOEXEC and is closed
 * before returning.
 */
#pragma once

#include <stdint.h>

#include "memconv.pb-c.h"

/** hook_now_usec() - CLOCK_MONOTONIC in microseconds */
uint64_t hook_now_usec(void);

/**
 * hook_admin_call() - send @req on a new connection to @socket_path and
 * wait for the AdminReply with the same id
 * @socket_path: memconvd's admin socket (borrowed)
 * @deadline_usec: CLOCK_MONOTONIC time by which it is over
 * @req: the request (borrowed); its id must be non-zero
 * @ret_reply: on success, the reply, owned by the caller
 *             (protobuf_c_message_free_unpacked()); its status may be a
 *             refusal: the caller decides what that means
 *
 * Return: 0; -ETIMEDOUT the deadline passed (no daemon answering);
 * -ENOENT / -ECONNREFUSED nobody listens at @socket_path; -ECONNRESET the
 * daemon closed the connection without answering; -EBADMSG / -EMSGSIZE the
 * answer could not be decoded; -EPROTO it answered another request;
 * -ENAMETOOLONG the path does not fit a sockaddr_un; other negative errno.
 */
int hook_admin_call(const char *socket_path, uint64_t deadline_usec, const Memconv__AdminRequest *req,
                    Memconv__AdminReply **ret_reply);
