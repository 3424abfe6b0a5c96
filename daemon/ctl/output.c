/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * output.c - tables, JSON and human value formats for memconvctl; see
 * output.h.
 *
 * Tables keep their cells until printed, because a column's width is that
 * of its widest cell. The JSON writer streams: it keeps only one "first
 * member?" flag per nesting level, so a document of any size costs the same
 * memory. Widths are counted in characters (UTF-8 continuation bytes do not
 * count); names on the wire are printable ASCII anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"

#define TABLE_COLUMNS_MAX 64
#define TABLE_GAP "  "

struct table {
        const char *const *headers;  /* borrowed */
        size_t n_columns;
        bool right[TABLE_COLUMNS_MAX];
        size_t min_width[TABLE_COLUMNS_MAX];
        char **cells;                /* owned, row-major, n_cells used */
        size_t n_cells;
        size_t allocated;
};

int table_new(const char *const *headers, size_t n_columns, struct table **ret)
{
        struct table *t;

        if (n_columns == 0 || n_columns > TABLE_COLUMNS_MAX || !headers)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->headers = headers;
        t->n_columns = n_columns;
        *ret = t;
        return 0;
}

struct table *table_free(struct table *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_set_right(struct table *t, size_t col)
{
        if (col >= t->n_columns)
                return -EINVAL;
        t->right[col] = true;
        return 0;
}

int table_set_min_width(struct table *t, size_t col, size_t width)
{
        if (col >= t->n_columns)
                return -EINVAL;
        t->min_width[col] = width;
        return 0;
}

/**
 * sanitize() - replace control characters in @s by '?', in place
 * @s: a NUL-terminated string (borrowed)
 */
static void sanitize(char *s)
{
        for (unsigned char *p = (unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
}

int table_add(struct table *t, const char *fmt, ...)
{
        va_list ap;
        char *cell;
        int n;

        if (t->n_cells == t->allocated) {
                size_t m = t->allocated ? t->allocated * 2 : 64;
                char **c = realloc(t->cells, m * sizeof(*c));

                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = m;
        }
        va_start(ap, fmt);
        n = vasprintf(&cell, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        sanitize(cell);
        t->cells[t->n_cells++] = cell;
        return 0;
}

size_t table_rows(const struct table *t)
{
        return (t->n_cells + t->n_columns - 1) / t->n_columns;
}

/**
 * text_width() - display width of @s in characters
 * Return: the number of bytes that are not UTF-8 continuation bytes
 */
static size_t text_width(const char *s)
{
        size_t w = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if ((*p & 0xc0) != 0x80)
                        w++;
        return w;
}

/**
 * table_print_row() - print one row of cells
 * @t: the table
 * @f: where to
 * @cells: n_columns strings (NULL prints as empty)
 * @widths: the column widths
 */
static void table_print_row(const struct table *t, FILE *f, const char *const *cells, const size_t *widths)
{
        for (size_t c = 0; c < t->n_columns; c++) {
                const char *s = cells[c] ? cells[c] : "";
                size_t w = text_width(s);
                size_t pad = widths[c] > w ? widths[c] - w : 0;
                bool last = c + 1 == t->n_columns;

                if (c > 0)
                        fputs(TABLE_GAP, f);
                if (t->right[c])
                        fprintf(f, "%*s%s", (int) pad, "", s);
                else if (last)
                        fputs(s, f);
                else
                        fprintf(f, "%s%*s", s, (int) pad, "");
        }
        fputc('\n', f);
}

int table_print(const struct table *t, FILE *f, bool legend)
{
        size_t widths[TABLE_COLUMNS_MAX] = { 0 };
        const char *row[TABLE_COLUMNS_MAX];
        size_t rows = table_rows(t);

        for (size_t c = 0; c < t->n_columns; c++) {
                widths[c] = t->min_width[c];
                if (legend && text_width(t->headers[c]) > widths[c])
                        widths[c] = text_width(t->headers[c]);
        }
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t w = text_width(t->cells[i]);

                if (w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }

        if (legend)
                table_print_row(t, f, t->headers, widths);
        for (size_t r = 0; r < rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        size_t i = r * t->n_columns + c;

                        row[c] = i < t->n_cells ? t->cells[i] : NULL;
                }
                table_print_row(t, f, row, widths);
        }
        return 0;
}

/* -------------------------------------------------------------------- JSON */

void json_init(struct json_writer *j, FILE *f, bool pretty)
{
        *j = (struct json_writer) { .f = f, .pretty = pretty };
        j->first[0] = true;
}

/**
 * utf8_sequence_length() - length of the valid UTF-8 sequence at @p
 * @p: the first byte of a sequence (>= 0x80)
 *
 * Rejects overlong forms, surrogates and code points above U+10FFFF.
 * Return: 2..4, or 0 if the bytes at @p are not valid UTF-8.
 */
static size_t utf8_sequence_length(const unsigned char *p)
{
        uint32_t cp;
        size_t n;

        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                n = 2, cp = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                n = 3, cp = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                n = 4, cp = p[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)  /* also stops at the NUL */
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

void json_escape(FILE *f, const char *s)
{
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                unsigned char c = *p;

                if (c >= 0x80) {
                        size_t n = utf8_sequence_length(p);

                        if (n == 0) {
                                fputs("\\ufffd", f);
                                p++;
                        } else {
                                fwrite(p, 1, n, f);
                                p += n;
                        }
                        continue;
                }
                switch (c) {
                case '"':  fputs("\\\"", f); break;
                case '\\': fputs("\\\\", f); break;
                case '\b': fputs("\\b", f); break;
                case '\f': fputs("\\f", f); break;
                case '\n': fputs("\\n", f); break;
                case '\r': fputs("\\r", f); break;
                case '\t': fputs("\\t", f); break;
                default:
                        if (c < 0x20 || c == 0x7f)
                                fprintf(f, "\\u%04x", c);
                        else
                                fputc(c, f);
                }
                p++;
        }
        fputc('"', f);
}

/**
 * json_indent() - newline and indentation for the current depth (pretty only)
 */
static void json_indent(struct json_writer *j)
{
        if (!j->pretty)
                return;
        fputc('\n', j->f);
        for (unsigned i = 0; i < j->depth; i++)
                fputs("  ", j->f);
}

/**
 * json_value_prefix() - the separator, indentation and key before a value
 * @key: the member name inside an object; NULL at top level or in an array
 *
 * Marks the writer broken when @key does not fit where the value goes.
 */
static void json_value_prefix(struct json_writer *j, const char *key)
{
        bool in_object = j->depth > 0 && !j->is_array[j->depth];

        if (j->depth == 0 && !j->first[0])
                j->broken = true;  /* a second top-level value */
        if (in_object != (key != NULL))
                j->broken = true;
        if (!j->first[j->depth])
                fputc(',', j->f);
        j->first[j->depth] = false;
        if (j->depth > 0)
                json_indent(j);
        if (key) {
                json_escape(j->f, key);
                fputs(j->pretty ? ": " : ":", j->f);
        }
}

/**
 * json_open() - open an object or array
 * @open: '{' or '['
 */
static void json_open(struct json_writer *j, const char *key, char open)
{
        json_value_prefix(j, key);
        fputc(open, j->f);
        if (j->depth >= JSON_DEPTH_MAX) {
                j->broken = true;
                return;
        }
        j->depth++;
        j->first[j->depth] = true;
        j->is_array[j->depth] = open == '[';
}

/**
 * json_close() - close the innermost container, which must be @array or not
 */
static void json_close(struct json_writer *j, bool array)
{
        bool empty;

        if (j->depth == 0 || j->is_array[j->depth] != array) {
                j->broken = true;
                return;
        }
        empty = j->first[j->depth];
        j->depth--;
        if (!empty)
                json_indent(j);
        fputc(array ? ']' : '}', j->f);
}

void json_object_begin(struct json_writer *j, const char *key)
{
        json_open(j, key, '{');
}

void json_object_end(struct json_writer *j)
{
        json_close(j, false);
}

void json_array_begin(struct json_writer *j, const char *key)
{
        json_open(j, key, '[');
}

void json_array_end(struct json_writer *j)
{
        json_close(j, true);
}

void json_string(struct json_writer *j, const char *key, const char *s)
{
        json_value_prefix(j, key);
        if (s)
                json_escape(j->f, s);
        else
                fputs("null", j->f);
}

void json_u64(struct json_writer *j, const char *key, uint64_t v)
{
        json_value_prefix(j, key);
        fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json_writer *j, const char *key, int64_t v)
{
        json_value_prefix(j, key);
        fprintf(j->f, "%" PRIi64, v);
}

void json_double(struct json_writer *j, const char *key, double v)
{
        json_value_prefix(j, key);
        if (isfinite(v))
                fprintf(j->f, "%.17g", v);
        else
                fputs("null", j->f);
}

void json_bool(struct json_writer *j, const char *key, bool v)
{
        json_value_prefix(j, key);
        fputs(v ? "true" : "false", j->f);
}

void json_null(struct json_writer *j, const char *key)
{
        json_value_prefix(j, key);
        fputs("null", j->f);
}

int json_finish(struct json_writer *j)
{
        fputc('\n', j->f);
        if (j->broken || j->depth != 0 || j->first[0])
                return -EINVAL;
        return 0;
}

/* ------------------------------------------------------ human value formats */

char *format_bytes(char buf[static FORMAT_BYTES_MAX], uint64_t v)
{
        static const char units[] = "BKMGTPE";
        unsigned k = 0;
        uint64_t whole, rest, tenths;

        if (v == 0) {
                snprintf(buf, FORMAT_BYTES_MAX, "0");
                return buf;
        }
        while (k + 1 < sizeof(units) - 1 && (v >> (10 * (k + 1))) > 0)
                k++;
        whole = v >> (10 * k);
        rest = v & ((UINT64_C(1) << (10 * k)) - 1);  /* k = 0: mask 0 */
        if (rest == 0) {
                snprintf(buf, FORMAT_BYTES_MAX, "%u%c", (unsigned) whole, units[k]);  /* whole < 1024 */
                return buf;
        }
        tenths = (rest * 10) >> (10 * k);  /* rest < 2^60, so rest * 10 fits */
        snprintf(buf, FORMAT_BYTES_MAX, "%u.%u%c", (unsigned) whole, (unsigned) tenths, units[k]);
        return buf;
}

/**
 * format_decimal() - @v / @unit with one truncated decimal, dropped if zero
 * @suffix: the unit's name
 * Return: @buf
 */
static char *format_decimal(char buf[static FORMAT_USEC_MAX], uint64_t v, uint64_t unit, const char *suffix)
{
        uint64_t tenths = (v % unit) * 10 / unit;

        if (tenths == 0)
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 "%s", v / unit, suffix);
        else
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 ".%" PRIu64 "%s", v / unit, tenths, suffix);
        return buf;
}

char *format_usec(char buf[static FORMAT_USEC_MAX], uint64_t usec)
{
        const uint64_t ms = 1000, s = 1000 * ms, min = 60 * s, h = 60 * min, d = 24 * h;

        if (usec < ms)
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 "us", usec);
        else if (usec < s)
                format_decimal(buf, usec, ms, "ms");
        else if (usec < min)
                format_decimal(buf, usec, s, "s");
        else if (usec < h)
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 "min %" PRIu64 "s", usec / min, usec % min / s);
        else if (usec < d)
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 "h %" PRIu64 "min", usec / h, usec % h / min);
        else
                snprintf(buf, FORMAT_USEC_MAX, "%" PRIu64 "d %" PRIu64 "h", usec / d, usec % d / h);
        return buf;
}

char *format_timestamp(char buf[static FORMAT_TIMESTAMP_MAX], uint64_t realtime_usec)
{
        time_t sec = (time_t) (realtime_usec / 1000000);
        struct tm tm;
        size_t n;

        if (realtime_usec == 0 || !localtime_r(&sec, &tm)) {
                snprintf(buf, FORMAT_TIMESTAMP_MAX, "-");
                return buf;
        }
        n = strftime(buf, FORMAT_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, FORMAT_TIMESTAMP_MAX - n, ".%03u", (unsigned) (realtime_usec % 1000000 / 1000));
        return buf;
}

const char *cc_type_name(Memconv__CcType t)
{
        static const char *const names[] = {
                [MEMCONV__CC_TYPE__CC_TYPE_NONE] = "none",
                [MEMCONV__CC_TYPE__CC_TYPE_SEV] = "sev",
                [MEMCONV__CC_TYPE__CC_TYPE_SEV_ES] = "sev-es",
                [MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP] = "sev-snp",
                [MEMCONV__CC_TYPE__CC_TYPE_TDX] = "tdx",
                [MEMCONV__CC_TYPE__CC_TYPE_ARM_CCA] = "arm-cca",
                [MEMCONV__CC_TYPE__CC_TYPE_PKVM] = "pkvm",
                [MEMCONV__CC_TYPE__CC_TYPE_SW_PROTECTED] = "sw-protected",
                [MEMCONV__CC_TYPE__CC_TYPE_S390_PV] = "s390-pv",
        };

        return (unsigned) t < ELEMENTSOF(names) && names[t] ? names[t] : "unknown";
}

const char *arch_name(Memconv__Arch a)
{
        static const char *const names[] = {
                [MEMCONV__ARCH__ARCH_UNSPECIFIED] = "unspecified",
                [MEMCONV__ARCH__ARCH_X86_64] = "x86_64",
                [MEMCONV__ARCH__ARCH_ARM64] = "arm64",
                [MEMCONV__ARCH__ARCH_RISCV64] = "riscv64",
                [MEMCONV__ARCH__ARCH_S390X] = "s390x",
        };

        return (unsigned) a < ELEMENTSOF(names) && names[a] ? names[a] : "unknown";
}

const char *attribute_name(Memconv__Attribute a)
{
        switch (a) {
        case MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED:
                return "shared";
        case MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE:
                return "private";
        default:
                return "unknown";
        }
}

const char *change_result_name(Memconv__ChangeResult r)
{
        static const char *const names[] = {
                [MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED] = "committed",
                [MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ROLLED_BACK] = "rolled-back",
                [MEMCONV__CHANGE_RESULT__CHANGE_RESULT_REFUSED] = "refused",
                [MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ABANDONED] = "abandoned",
        };

        return (unsigned) r < ELEMENTSOF(names) && names[r] ? names[r] : "unknown";
}

const char *convert_source_name(Memconv__ConvertSource s, bool implicit)
{
        static const char *const names[] = {
                [MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_UNSPECIFIED] = "unspecified",
                [MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE] = "map-gpa-range",
                [MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_SNP_PSC] = "snp-psc",
                [MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_TDX_MAPGPA] = "tdx-mapgpa",
                [MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_ARM_RSI] = "arm-rsi",
        };

        /* The daemon's log names the source of an implicit change the same way. */
        if (implicit)
                return "memory-fault";
        return (unsigned) s < ELEMENTSOF(names) && names[s] ? names[s] : "unknown";
}

const char *finding_kind_name(Memconv__CheckFinding__Kind k)
{
        static const char *const names[] = {
                [MEMCONV__CHECK_FINDING__KIND__KIND_BACKED_TWICE] = "backed-twice",
                [MEMCONV__CHECK_FINDING__KIND__KIND_PRIVATE_WITHOUT_GMEM] = "private-without-gmem",
                [MEMCONV__CHECK_FINDING__KIND__KIND_DISCARD_FAILED] = "discard-failed",
                [MEMCONV__CHECK_FINDING__KIND__KIND_UNCHECKABLE] = "uncheckable",
        };

        return (unsigned) k < ELEMENTSOF(names) && names[k] ? names[k] : "unknown";
}
