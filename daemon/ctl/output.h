/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * output.h - how memconvctl prints: aligned tables for people, a streaming
 * JSON writer for scripts, and the human formats of sizes, durations,
 * timestamps and protocol enum values.
 *
 * Nothing here knows about sockets or requests. Every printer writes to the
 * FILE it is given; write errors are left in the FILE's error flag and
 * picked up once, by whoever flushes it (ctl_flush_stdout()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"
#include "memconv.pb-c.h"

/* ------------------------------------------------------------------ tables */

/*
 * A table is filled cell by cell, row-major, then printed once: every column
 * as wide as its widest cell (or header), columns two spaces apart, the last
 * column never padded. Cells are copied; control characters in them are
 * replaced by '?' so that a hostile string cannot drive the terminal.
 */
struct table;

/**
 * table_new() - a table with @n_columns columns
 * @headers: @n_columns header strings (borrowed; must outlive the table)
 * @n_columns: 1..64
 * @ret: the new table, owned by the caller (table_free())
 *
 * Return: 0, -EINVAL for a bad column count, -ENOMEM.
 */
int table_new(const char *const *headers, size_t n_columns, struct table **ret);

/** table_free() - free @t and its cells; NULL is fine. Return: NULL */
struct table *table_free(struct table *t);

static inline void table_freep(struct table **t)
{
        table_free(*t);
}
#define _cleanup_table_ _cleanup_(table_freep)

/**
 * table_set_right() - right-align column @col (numbers)
 * Return: 0, or -EINVAL for a column that does not exist.
 */
int table_set_right(struct table *t, size_t col);

/**
 * table_set_min_width() - make column @col at least @width characters wide
 * (used when a stream of tables must line up, as in history --follow)
 * Return: 0, or -EINVAL for a column that does not exist.
 */
int table_set_min_width(struct table *t, size_t col, size_t width);

/**
 * table_add() - append one cell, printf-style, to the current row
 *
 * After the last column the next cell starts a new row.
 * Return: 0, -ENOMEM.
 */
int table_add(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** table_rows() - number of rows begun so far */
size_t table_rows(const struct table *t);

/**
 * table_print() - print @t to @f
 * @legend: print the header line first
 *
 * An unfinished last row is printed with empty cells.
 * Return: 0 (write errors stay in @f's error flag).
 */
int table_print(const struct table *t, FILE *f, bool legend);

/* -------------------------------------------------------------------- JSON */

#define JSON_DEPTH_MAX 16

/*
 * A streaming JSON writer. Values are written as they are given; a value
 * inside an object takes a key, a value at the top level or inside an array
 * takes key NULL. Strings are escaped per RFC 8259 (quote, backslash and
 * every control character; bytes that are not valid UTF-8 become U+FFFD), so
 * the output is always valid JSON. Integers are printed exactly, all 64 bits.
 * Misuse (a key where none belongs, unbalanced ends, more than
 * JSON_DEPTH_MAX levels) is remembered and reported by json_finish().
 */
struct json_writer {
        FILE *f;
        bool pretty;                       /* indent, one member per line */
        bool broken;                       /* misuse seen */
        unsigned depth;
        bool first[JSON_DEPTH_MAX + 1];    /* nothing written yet at this level */
        bool is_array[JSON_DEPTH_MAX + 1];
};

/**
 * json_init() - start a document on @f (borrowed)
 * @pretty: indented over several lines; false gives one line
 */
void json_init(struct json_writer *j, FILE *f, bool pretty);

/** json_object_begin() - open an object (member @key, or NULL) */
void json_object_begin(struct json_writer *j, const char *key);
/** json_object_end() - close the innermost object */
void json_object_end(struct json_writer *j);
/** json_array_begin() - open an array (member @key, or NULL) */
void json_array_begin(struct json_writer *j, const char *key);
/** json_array_end() - close the innermost array */
void json_array_end(struct json_writer *j);

/** json_string() - a string value; @s NULL gives null */
void json_string(struct json_writer *j, const char *key, const char *s);
/** json_u64() - an unsigned integer value */
void json_u64(struct json_writer *j, const char *key, uint64_t v);
/** json_i64() - a signed integer value */
void json_i64(struct json_writer *j, const char *key, int64_t v);
/** json_double() - a number; NaN and infinities give null */
void json_double(struct json_writer *j, const char *key, double v);
/** json_bool() - true or false */
void json_bool(struct json_writer *j, const char *key, bool v);
/** json_null() - null */
void json_null(struct json_writer *j, const char *key);

/**
 * json_finish() - end the document with a newline
 * Return: 0, or -EINVAL if the writer was misused or left unbalanced.
 */
int json_finish(struct json_writer *j);

/**
 * json_escape() - write @s as a quoted, escaped JSON string to @f
 * (exposed for tests and for the Prometheus label writer's sake)
 */
void json_escape(FILE *f, const char *s);

/* ------------------------------------------------------ human value formats */

#define FORMAT_BYTES_MAX 16
#define FORMAT_USEC_MAX 32
#define FORMAT_TIMESTAMP_MAX 40

/**
 * format_bytes() - @v bytes as "0", "512B", "4K", "2M", "1.5G" (IEC units,
 * one decimal, truncated, shown only when the value is not a whole unit)
 * Return: @buf
 */
char *format_bytes(char buf[static FORMAT_BYTES_MAX], uint64_t v);

/**
 * format_usec() - a duration: "850us", "1.5ms", "2.3s", "4min 3s",
 * "2h 5min", "3d 4h"
 * Return: @buf
 */
char *format_usec(char buf[static FORMAT_USEC_MAX], uint64_t usec);

/**
 * format_timestamp() - CLOCK_REALTIME microseconds as local time,
 * "2025-11-21T05:48:12.123"; 0 gives "-"
 * Return: @buf
 */
char *format_timestamp(char buf[static FORMAT_TIMESTAMP_MAX], uint64_t realtime_usec);

/** cc_type_name() - "sev-snp", "tdx", ... ("unknown" for new values) */
const char *cc_type_name(Memconv__CcType t);
/** arch_name() - "x86_64", "arm64", ... */
const char *arch_name(Memconv__Arch a);
/** attribute_name() - "private" or "shared" */
const char *attribute_name(Memconv__Attribute a);
/** change_result_name() - "committed", "rolled-back", "refused", "abandoned" */
const char *change_result_name(Memconv__ChangeResult r);
/** convert_source_name() - "map-gpa-range", "snp-psc", ... as in the daemon's log */
const char *convert_source_name(Memconv__ConvertSource s, bool implicit);
/** finding_kind_name() - "backed-twice", "private-without-gmem", ... */
const char *finding_kind_name(Memconv__CheckFinding__Kind k);
