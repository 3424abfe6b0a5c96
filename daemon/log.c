/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.c - structured logging to the journal or stderr; see log.h.
 *
 * Journal records are sent with sd_journal_sendv() (one datagram to
 * journald, non-blocking in practice). stderr records are written with one
 * write() each, so lines from threads never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"
#include "macro.h"

#define LOG_FIELDS_MAX 32

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_INFO;

/**
 * stderr_is_journal() - whether systemd connected our stderr to journald
 * Return: true if $JOURNAL_STREAM names stderr's device:inode
 */
static bool stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(enum log_target target, int max_level)
{
        if (target == LOG_TARGET_AUTO)
                target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        log_target = target;
        log_max_level = max_level;
}

int log_get_max_level(void)
{
        return log_max_level;
}

int log_parse_level(const char *s)
{
        static const char *const names[] = { "emerg", "alert", "crit", "err",
                                             "warning", "notice", "info", "debug" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0 || (s[0] == (char) ('0' + i) && !s[1]))
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        return -EINVAL;
}

int log_parse_target(const char *s)
{
        if (strcmp(s, "auto") == 0)
                return LOG_TARGET_AUTO;
        if (strcmp(s, "journal") == 0)
                return LOG_TARGET_JOURNAL;
        if (strcmp(s, "stderr") == 0)
                return LOG_TARGET_STDERR;
        return -EINVAL;
}

int log_fields(int level, int error, const char *const *fields, const char *fmt, ...)
{
        char message[512], prio[16], errbuf[32];
        size_t n_fields = 0;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        if (error) {
                size_t l = strlen(message);

                snprintf(message + l, sizeof(message) - l, ": %s", strerror(error));
        }
        while (fields && fields[n_fields] && n_fields < LOG_FIELDS_MAX)
                n_fields++;

        if (log_target == LOG_TARGET_JOURNAL) {
                struct iovec iov[LOG_FIELDS_MAX + 3];
                char msgfield[sizeof(message) + 8];
                size_t k = 0;

                snprintf(msgfield, sizeof(msgfield), "MESSAGE=%s", message);
                snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
                iov[k++] = (struct iovec) { msgfield, strlen(msgfield) };
                iov[k++] = (struct iovec) { prio, strlen(prio) };
                if (error) {
                        snprintf(errbuf, sizeof(errbuf), "ERRNO=%d", error);
                        iov[k++] = (struct iovec) { errbuf, strlen(errbuf) };
                }
                for (size_t i = 0; i < n_fields; i++)
                        iov[k++] = (struct iovec) { (void *) fields[i], strlen(fields[i]) };
                (void) sd_journal_sendv(iov, (int) k);
        } else {
                char line[2048];
                size_t l;

                l = (size_t) snprintf(line, sizeof(line), "<%d>%s", level, message);
                for (size_t i = 0; i < n_fields && l < sizeof(line); i++)
                        l += (size_t) snprintf(line + l, sizeof(line) - l, "%s%s",
                                               i == 0 ? "  " : " ", fields[i]);
                if (error && l < sizeof(line))
                        l += (size_t) snprintf(line + l, sizeof(line) - l, "%sERRNO=%d",
                                               n_fields ? " " : "  ", error);
                if (l >= sizeof(line) - 1)
                        l = sizeof(line) - 2;
                line[l++] = '\n';
                (void) !write(STDERR_FILENO, line, l);
        }
        return -error;
}
