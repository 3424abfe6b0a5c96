/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * frame.h - one protobuf message per SOCK_SEQPACKET datagram, with fds.
 *
 * A frame is one datagram holding one encoded memconv.Message, at most
 * MC_FRAME_MAX bytes, plus at most MC_FRAME_MAX_FDS file descriptors in a
 * single SCM_RIGHTS control message. The size is enforced before decoding:
 * an oversized datagram is seen truncated (MSG_TRUNC) and refused without
 * being parsed. Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned
 * by the caller on success; on every failure they are already closed.
 */
#pragma once

#include <stddef.h>

#include "memconv.pb-c.h"

#define MC_FRAME_MAX (64U * 1024U)
#define MC_FRAME_MAX_FDS 2U

/**
 * mc_frame_send() - encode @msg and send it as one datagram
 * @sock: a connected SOCK_SEQPACKET socket (blocking or not)
 * @msg: the message (borrowed)
 * @fds: fds to pass (borrowed, the kernel duplicates them), or NULL
 * @n_fds: how many, <= MC_FRAME_MAX_FDS
 *
 * Never raises SIGPIPE.
 * Return: 0; -EMSGSIZE if the encoding exceeds MC_FRAME_MAX; -EINVAL for
 * too many fds; -EAGAIN on a full non-blocking socket; -EPIPE /
 * -ECONNRESET when the peer is gone; other negative errno.
 */
int mc_frame_send(int sock, const Memconv__Message *msg, const int *fds, size_t n_fds);

/**
 * mc_frame_recv() - receive and decode one datagram
 * @sock: a SOCK_SEQPACKET socket
 * @flags: extra recvmsg() flags, e.g. MSG_DONTWAIT
 * @ret_msg: the decoded message, owned by the caller
 *           (memconv__message__free_unpacked(msg, NULL))
 * @ret_fds: array of MC_FRAME_MAX_FDS receiving the passed fds, owned by
 *           the caller; unused slots set to -EBADF
 * @ret_n_fds: how many fds arrived
 *
 * Return: 0; -EAGAIN nothing to read (non-blocking); -ECONNRESET the peer
 * closed the connection (or sent an empty datagram); -EMSGSIZE the datagram
 * exceeded MC_FRAME_MAX; -ETOOMANYREFS more than MC_FRAME_MAX_FDS fds or a
 * control message that was not SCM_RIGHTS; -EBADMSG it did not decode.
 * On failure nothing is returned and received fds are closed.
 */
int mc_frame_recv(int sock, int flags, Memconv__Message **ret_msg,
                  int ret_fds[MC_FRAME_MAX_FDS], size_t *ret_n_fds);

/**
 * mc_frame_send_pb() - mc_frame_send() for any protobuf-c message type
 * (the admin protocol's AdminRequest / AdminReply)
 */
int mc_frame_send_pb(int sock, const ProtobufCMessage *msg, const int *fds, size_t n_fds);

/**
 * mc_frame_recv_pb() - mc_frame_recv() decoding as @desc
 * @ret_msg: free with protobuf_c_message_free_unpacked(msg, NULL)
 */
int mc_frame_recv_pb(int sock, int flags, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg,
                     int ret_fds[MC_FRAME_MAX_FDS], size_t *ret_n_fds);

/**
 * mc_frame_recv_salvage() - mc_frame_recv(), but when the fds of a frame
 * could not be taken (-ETOOMANYREFS: too many or a foreign control message;
 * -EMFILE: this process is out of file descriptors) the frame is still
 * decoded into *@ret_msg, NULL when it does not decode; the caller frees
 * it. No fd is kept in that case. Used by memconvd to answer such a request
 * by its id rather than leave the VMM waiting.
 */
int mc_frame_recv_salvage(int sock, int flags, Memconv__Message **ret_msg, int ret_fds[MC_FRAME_MAX_FDS],
                          size_t *ret_n_fds);

/** mc_frame_close_fds() - close @n fds of @fds and set them to -EBADF */
void mc_frame_close_fds(int *fds, size_t n);
