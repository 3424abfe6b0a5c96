/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fake-admin.c - a stand-in for memconvd's admin socket, for testing the
 * libvirt hook without the daemon: a real SOCK_SEQPACKET socket speaking
 * the real AdminRequest / AdminReply messages (lib/frame.h).
 *
 *   fake-admin SOCKET LOG MODE
 *
 * Every request received is appended to LOG as one line:
 *   register id=N uuid=U name=NAME cc=CC policy=TEXT   (newlines as \n)
 *   forget id=N spec=S
 *   other id=N body=B
 * and answered according to MODE:
 *   ok        success, with the matching reply body
 *   refuse    CODE_POLICY_REFUSED "register: policy: unknown key 'bogus'"
 *   unknown   CODE_UNKNOWN_VM
 *   busy:N    CODE_BUSY for the first N requests, then success
 *   silent    read requests, never answer
 *   close     close each connection without answering
 *   noaccept  listen, never accept
 *   garbage   answer with a datagram that is not an AdminReply
 * It runs until killed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "macro.h"

static void log_escaped(FILE *f, const char *s)
{
        for (; s && *s; s++) {
                if (*s == '\n')
                        fputs("\\n", f);
                else if (*s == '\\')
                        fputs("\\\\", f);
                else
                        fputc(*s, f);
        }
}

static void log_request(FILE *f, const Memconv__AdminRequest *req)
{
        switch (req->body_case) {
        case MEMCONV__ADMIN_REQUEST__BODY_REGISTER_DOMAIN: {
                const Memconv__RegisterDomainRequest *r = req->register_domain;
                const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&memconv__cc_type__descriptor,
                                                                                  (int) r->cc_type);

                fprintf(f, "register id=%llu uuid=%s name=%s cc=%s policy=", (unsigned long long) req->id, r->uuid,
                        r->name, v ? v->name : "?");
                log_escaped(f, r->policy);
                fputc('\n', f);
                break;
        }
        case MEMCONV__ADMIN_REQUEST__BODY_FORGET:
                fprintf(f, "forget id=%llu spec=%s\n", (unsigned long long) req->id,
                        req->forget->vm ? req->forget->vm->spec : "(none)");
                break;
        default:
                fprintf(f, "other id=%llu body=%d\n", (unsigned long long) req->id, (int) req->body_case);
        }
        fflush(f);
}

static void answer(int fd, const Memconv__AdminRequest *req, const char *mode, unsigned *busy_left)
{
        Memconv__AdminReply reply = MEMCONV__ADMIN_REPLY__INIT;
        Memconv__Status st = MEMCONV__STATUS__INIT;
        Memconv__RegisterDomainReply reg = MEMCONV__REGISTER_DOMAIN_REPLY__INIT;
        Memconv__ForgetReply fg = MEMCONV__FORGET_REPLY__INIT;

        reply.id = req->id;
        reply.status = &st;
        if (strcmp(mode, "refuse") == 0) {
                st.code = MEMCONV__CODE__CODE_POLICY_REFUSED;
                st.errno_value = -EACCES;
                st.message = (char *) "register: policy: unknown key 'bogus'";
        } else if (strcmp(mode, "unknown") == 0) {
                st.code = MEMCONV__CODE__CODE_UNKNOWN_VM;
                st.errno_value = -ESRCH;
                st.message = (char *) "no VM matches";
        } else if (*busy_left > 0) {
                (*busy_left)--;
                st.code = MEMCONV__CODE__CODE_BUSY;
                st.errno_value = -EBUSY;
                st.message = (char *) "forget: VM is attached";
        } else if (req->body_case == MEMCONV__ADMIN_REQUEST__BODY_REGISTER_DOMAIN) {
                reply.body_case = MEMCONV__ADMIN_REPLY__BODY_REGISTER_DOMAIN;
                reply.register_domain = &reg;
        } else if (req->body_case == MEMCONV__ADMIN_REQUEST__BODY_FORGET) {
                reply.body_case = MEMCONV__ADMIN_REPLY__BODY_FORGET;
                reply.forget = &fg;
        } else {
                st.code = MEMCONV__CODE__CODE_PROTOCOL_ERROR;
                st.message = (char *) "unknown admin request";
        }
        (void) mc_frame_send_pb(fd, &reply.base, NULL, 0);
}

int main(int argc, char **argv)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        unsigned busy_left = 0;
        const char *mode;
        FILE *log;
        int lfd;

        if (argc != 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: fake-admin SOCKET LOG MODE\n");
                return 2;
        }
        mode = argv[3];
        if (strncmp(mode, "busy:", 5) == 0)
                busy_left = (unsigned) strtoul(mode + 5, NULL, 10);
        signal(SIGPIPE, SIG_IGN);
        log = fopen(argv[2], "ae");
        if (!log) {
                perror("fake-admin: log");
                return 1;
        }
        strcpy(sa.sun_path, argv[1]);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            listen(lfd, strcmp(mode, "noaccept") == 0 ? 0 : 16) < 0) {
                perror("fake-admin: socket");
                return 1;
        }
        if (strcmp(mode, "noaccept") == 0)
                for (;;)
                        pause();
        for (;;) {
                _cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0)
                        continue;
                for (;;) {
                        ProtobufCMessage *m = NULL;
                        int fds[MC_FRAME_MAX_FDS];
                        size_t n = 0;
                        int r = mc_frame_recv_pb(fd, 0, &memconv__admin_request__descriptor, &m, fds, &n);

                        if (r < 0)
                                break;
                        mc_frame_close_fds(fds, n);
                        log_request(log, (Memconv__AdminRequest *) m);
                        if (strcmp(mode, "garbage") == 0)
                                (void) send(fd, "\xff\xff\xff", 3, MSG_NOSIGNAL);
                        else if (strcmp(mode, "silent") != 0 && strcmp(mode, "close") != 0)
                                answer(fd, (Memconv__AdminRequest *) m, mode, &busy_left);
                        protobuf_c_message_free_unpacked(m, NULL);
                        if (strcmp(mode, "close") == 0)
                                break;
                }
        }
}
