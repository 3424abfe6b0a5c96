/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hook-admin.c - a deadline-bounded admin call; see hook-admin.h.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include "frame.h"
#include "hook-admin.h"
#include "macro.h"

uint64_t hook_now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/**
 * remaining_usec() - time left until @deadline_usec, 0 when it has passed
 */
static uint64_t remaining_usec(uint64_t deadline_usec)
{
        uint64_t now = hook_now_usec();

        return deadline_usec > now ? deadline_usec - now : 0;
}

static void reply_freep(Memconv__AdminReply **r)
{
        if (*r)
                protobuf_c_message_free_unpacked(&(*r)->base, NULL);
}

int hook_admin_call(const char *socket_path, uint64_t deadline_usec, const Memconv__AdminRequest *req,
                    Memconv__AdminReply **ret_reply)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(reply_freep) Memconv__AdminReply *reply = NULL;
        size_t len = strlen(socket_path);
        uint64_t left;
        struct timeval tv;
        int fds[MC_FRAME_MAX_FDS];
        size_t n_fds = 0;
        int r;

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, socket_path, len);

        left = remaining_usec(deadline_usec);
        if (left == 0)
                return -ETIMEDOUT;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* Bounds connect() (a full backlog) and send() alike. */
        tv = (struct timeval) { .tv_sec = (time_t) (left / 1000000ULL), .tv_usec = (suseconds_t) (left % 1000000ULL) };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0) {
                r = negative_errno();
                return r == -EAGAIN || r == -EINPROGRESS || r == -EINTR ? -ETIMEDOUT : r;
        }

        r = mc_frame_send_pb(fd, &req->base, NULL, 0);
        if (r == -EAGAIN)
                return -ETIMEDOUT;
        if (r == -EPIPE)
                return -ECONNRESET;
        if (r < 0)
                return r;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t ms;

                left = remaining_usec(deadline_usec);
                if (left == 0)
                        return -ETIMEDOUT;
                ms = (left + 999) / 1000;
                r = poll(&p, 1, (int) (ms > 60000 ? 60000 : ms));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        continue;  /* the loop head decides whether time is up */

                r = mc_frame_recv_pb(fd, MSG_DONTWAIT, &memconv__admin_reply__descriptor, (ProtobufCMessage **) &reply,
                                     fds, &n_fds);
                if (r == -EAGAIN)
                        continue;
                if (r == -EPIPE)
                        return -ECONNRESET;
                if (r < 0)
                        return r;
                mc_frame_close_fds(fds, n_fds);
                if (reply->id != req->id)
                        return -EPROTO;
                *ret_reply = TAKE_PTR(reply);
                return 0;
        }
}
