/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal-sink.c - stands in for journald's native socket in a private mount
 * namespace, so tests can check what memconvd really sends to the journal.
 *
 * Binds a SOCK_DGRAM socket at PATH and writes each datagram (journald's
 * native protocol: KEY=VALUE lines; memconvd never sends binary fields) as
 * one line to OUT, fields separated by " | ". Exits on SIGTERM.
 *
 * Usage: journal-sink PATH OUT
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t done;

static void on_term(int sig)
{
        done = 1;
}

int main(int argc, char *argv[])
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        static char buf[256 * 1024];
        struct sigaction act = { .sa_handler = on_term };
        FILE *out;
        int fd;

        if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: journal-sink PATH OUT\n");
                return 2;
        }
        sigaction(SIGTERM, &act, NULL);
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                perror("journal-sink: bind");
                return 1;
        }
        out = fopen(argv[2], "we");
        if (!out)
                return 1;
        while (!done) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("journal-sink: recv");
                        return 1;
                }
                for (ssize_t i = 0; i < n; i++)
                        if (buf[i] == '\n')
                                buf[i] = i == n - 1 ? 0 : '\x1f';
                buf[n] = 0;
                for (char *p = buf; *p; p++)
                        if (*p == '\x1f')
                                fputs(" | ", out);
                        else
                                fputc(*p, out);
                fputc('\n', out);
                fflush(out);
        }
        fclose(out);
        unlink(argv[1]);
        return 0;
}
