/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * plugin-util.h - small helpers the shipped policy plugins share: parsing
 * setting values and a per-VM table. Internal to plugins/, header-only so
 * each plugin stays one self-contained shared object.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memconv-policy.h"

/** plugin_parse_u64() - a decimal number; Return: 0 or -EINVAL */
static inline int plugin_parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/** plugin_parse_bool() - yes/no/true/false/1/0/on/off; Return: 0 or -EINVAL */
static inline int plugin_parse_bool(const char *s, bool *ret)
{
        if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "on"))
                *ret = true;
        else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "off"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/** plugin_error() - format @err and return @r */
static inline int plugin_error(char *err, size_t len, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline int plugin_error(char *err, size_t len, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
        return r;
}

/* A growable table of per-VM entries of @size bytes, the VM id first. */
struct plugin_vm_table {
        void *entries;
        size_t n, cap, size;
};

/** plugin_vm_find() - the entry of @vm_id, or NULL */
static inline void *plugin_vm_find(struct plugin_vm_table *t, uint64_t vm_id)
{
        for (size_t i = 0; i < t->n; i++) {
                uint64_t *e = (uint64_t *) (void *) ((char *) t->entries + i * t->size);

                if (*e == vm_id)
                        return e;
        }
        return NULL;
}

/** plugin_vm_get() - the entry of @vm_id, created zeroed; NULL on ENOMEM */
static inline void *plugin_vm_get(struct plugin_vm_table *t, uint64_t vm_id)
{
        uint64_t *e = plugin_vm_find(t, vm_id);

        if (e)
                return e;
        if (t->n == t->cap) {
                size_t nc = t->cap ? t->cap * 2 : 8;
                void *ne = realloc(t->entries, nc * t->size);

                if (!ne)
                        return NULL;
                t->entries = ne;
                t->cap = nc;
        }
        e = (uint64_t *) (void *) ((char *) t->entries + t->n++ * t->size);
        memset(e, 0, t->size);
        *e = vm_id;
        return e;
}

/** plugin_vm_drop() - remove the entry of @vm_id */
static inline void plugin_vm_drop(struct plugin_vm_table *t, uint64_t vm_id)
{
        char *e = plugin_vm_find(t, vm_id);

        if (!e)
                return;
        memmove(e, e + t->size, (size_t) ((char *) t->entries + t->n * t->size - (e + t->size)));
        t->n--;
}
