/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - memconvd's logging: structured records to the systemd journal,
 * or the same records as one line each on stderr where no journal runs.
 *
 * A record is a human message plus KEY=VALUE fields (journal field names:
 * upper case, MEMCONV_ prefix for ours). On stderr a record reads
 *   <PRIORITY>MESSAGE  KEY=VALUE KEY=VALUE ...
 * so tests and operators can grep fields in either place. Records below the
 * configured level are dropped before anything is formatted.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

enum log_target {
        LOG_TARGET_AUTO,    /* journal if stderr is connected to it, else stderr */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
};

/* Message ids (sd-id128) of the records operators may filter on. */
#define MEMCONV_MESSAGE_CHANGE "4b0c5f1e8a6d4c2f9e37b1d05a8c6e21"
#define MEMCONV_MESSAGE_SUMMARY "9d2e6a4c1b7f4e80a5c3d6b9e1f24a57"
#define MEMCONV_MESSAGE_REFUSED "c7a1e3f5d9b24c6e8a0f2b4d6c8e1a35"

/** log_setup() - choose target and maximum level (LOG_ERR..LOG_DEBUG) */
void log_setup(enum log_target target, int max_level);

/** log_get_max_level() - the configured maximum level */
int log_get_max_level(void);

/** log_parse_level() - "debug", "info", ... or 0-7; Return: level or -EINVAL */
int log_parse_level(const char *s);

/** log_parse_target() - "auto", "journal", "stderr"; Return: target or -EINVAL */
int log_parse_target(const char *s);

/**
 * log_fields() - emit one structured record
 * @level: syslog priority
 * @error: errno (positive or negative) to add as ERRNO=, 0 for none
 * @fields: NULL-terminated array of "KEY=VALUE" strings, or NULL
 * @fmt: printf format of MESSAGE; "%m" is not supported, use @error
 *
 * Return: -abs(@error), so "return log_fields(...)" forwards the error.
 */
int log_fields(int level, int error, const char *const *fields, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#define log_full(level, error, ...) \
        ({ int _l = (level); _l <= log_get_max_level() ? log_fields(_l, (error), NULL, __VA_ARGS__) : -abs(error); })
#define log_debug(...) log_full(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_ERR, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_full(LOG_DEBUG, (e), __VA_ARGS__)
