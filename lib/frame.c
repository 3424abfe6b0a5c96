/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * frame.c - datagram framing and fd passing; see frame.h for the contract.
 *
 * The receive buffer is exactly MC_FRAME_MAX bytes: the kernel reports a
 * longer datagram with MSG_TRUNC, so an oversized frame is detected without
 * allocating for it or handing a prefix to the decoder.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "frame.h"
#include "macro.h"

#define SCM_PIDFD_ 0x04 /* <linux/socket.h> of 6.5+; Debian 12 lacks it */

void mc_frame_close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

int mc_frame_send(int sock, const Memconv__Message *msg, const int *fds, size_t n_fds)
{
        return mc_frame_send_pb(sock, &msg->base, fds, n_fds);
}

int mc_frame_send_pb(int sock, const ProtobufCMessage *msg, const int *fds, size_t n_fds)
{
        uint8_t buf[MC_FRAME_MAX];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * MC_FRAME_MAX_FDS)];
        } control;
        struct iovec iov;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        size_t len;

        if (n_fds > MC_FRAME_MAX_FDS)
                return -EINVAL;
        len = protobuf_c_message_get_packed_size(msg);
        if (len > sizeof(buf))
                return -EMSGSIZE;
        len = protobuf_c_message_pack(msg, buf);
        iov = (struct iovec) { .iov_base = buf, .iov_len = len };

        if (n_fds > 0) {
                struct cmsghdr *cm;

                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }

        for (;;) {
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

                if (n >= 0)
                        return (size_t) n == len ? 0 : -EIO;
                if (errno != EINTR)
                        return negative_errno();
        }
}

/**
 * frame_take_fds() - collect the fds of every control message of @mh
 * @mh: a received message header
 * @fds: MC_FRAME_MAX_FDS slots to fill
 * @ret_n: how many were filled
 *
 * Every fd found is either stored or closed.
 * Return: 0, -ETOOMANYREFS for a foreign control message or too many fds,
 * or -EMFILE when the kernel could not install every fd that came (the
 * receiver is out of file descriptors: MSG_CTRUNC with room to spare).
 */
static int frame_take_fds(struct msghdr *mh, int fds[MC_FRAME_MAX_FDS], size_t *ret_n)
{
        size_t n = 0;
        int r = 0;

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                size_t k;
                int *p;

                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
                        /* SCM_PIDFD (a socket option we never set) is the other one carrying an fd. */
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_PIDFD_ &&
                            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
                                safe_close(fd);
                        }
                        r = -ETOOMANYREFS;
                        continue;
                }
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                p = (int *) (void *) CMSG_DATA(cm);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, p + i, sizeof(fd));
                        if (n < MC_FRAME_MAX_FDS)
                                fds[n++] = fd;
                        else {
                                safe_close(fd);
                                r = -ETOOMANYREFS;
                        }
                }
        }
        if ((mh->msg_flags & MSG_CTRUNC) && r == 0)
                r = n < MC_FRAME_MAX_FDS ? -EMFILE : -ETOOMANYREFS;
        if (r < 0) {
                mc_frame_close_fds(fds, n);
                return r;
        }
        *ret_n = n;
        return 0;
}

int mc_frame_recv(int sock, int flags, Memconv__Message **ret_msg,
                  int ret_fds[MC_FRAME_MAX_FDS], size_t *ret_n_fds)
{
        return mc_frame_recv_pb(sock, flags, &memconv__message__descriptor, (ProtobufCMessage **) ret_msg,
                                ret_fds, ret_n_fds);
}

/*
 * frame_recv() - mc_frame_recv_pb(); with @salvage, a frame whose fds could
 * not be taken (-ETOOMANYREFS, -EMFILE) is still decoded into *@ret_msg
 * (NULL if it does not decode), so that the receiver can answer its id.
 */
static int frame_recv(int sock, int flags, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg,
                      int ret_fds[MC_FRAME_MAX_FDS], size_t *ret_n_fds, bool salvage)
{
        uint8_t buf[MC_FRAME_MAX];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * MC_FRAME_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        int fds[MC_FRAME_MAX_FDS] = { -EBADF, -EBADF };
        ProtobufCMessage *msg;
        size_t n_fds = 0;
        ssize_t n;
        int r;

        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        r = frame_take_fds(&mh, fds, &n_fds);
        if (r < 0) {
                if (salvage && !(mh.msg_flags & MSG_TRUNC) && n > 0)
                        *ret_msg = protobuf_c_message_unpack(desc, NULL, (size_t) n, buf);
                return r;
        }
        if (mh.msg_flags & MSG_TRUNC) {
                mc_frame_close_fds(fds, n_fds);
                return -EMSGSIZE;
        }
        if (n == 0) {
                mc_frame_close_fds(fds, n_fds);
                return -ECONNRESET;
        }

        msg = protobuf_c_message_unpack(desc, NULL, (size_t) n, buf);
        if (!msg) {
                mc_frame_close_fds(fds, n_fds);
                return -EBADMSG;
        }

        *ret_msg = msg;
        memcpy(ret_fds, fds, sizeof(fds));
        *ret_n_fds = n_fds;
        return 0;
}

int mc_frame_recv_pb(int sock, int flags, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg,
                     int ret_fds[MC_FRAME_MAX_FDS], size_t *ret_n_fds)
{
        return frame_recv(sock, flags, desc, ret_msg, ret_fds, ret_n_fds, false);
}

int mc_frame_recv_salvage(int sock, int flags, Memconv__Message **ret_msg, int ret_fds[MC_FRAME_MAX_FDS],
                          size_t *ret_n_fds)
{
        *ret_msg = NULL;
        return frame_recv(sock, flags, &memconv__message__descriptor, (ProtobufCMessage **) ret_msg, ret_fds,
                          ret_n_fds, true);
}
