/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * registry.c - libvirt-registered domains; see registry.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "memconv.pb-c.h"
#include "registry.h"
#include "vm.h"

#define REGISTRY_FILE "domains.registry"
#define REGISTRY_FILE_MAX (64U << 20)

static void registry_free_one(struct domain_reg *r)
{
        LIST_REMOVE(r, link);
        free(r->name);
        free(r->policy);
        free(r);
}

/* Where registrations are kept: with the journal, in the state directory. */
static bool registry_durable(const struct daemon *d)
{
        return d->config.journal && d->config.state_dir;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/**
 * registry_save() - write every registration to STATE_DIR/domains.registry:
 * a temporary file, synced, renamed over the old one, the directory synced.
 * Runs on the event loop: registrations come once per domain start, and the
 * hook waits for the answer anyway.
 * Return: 0 or negative errno (the old file stays as it was)
 */
static int registry_save(struct daemon *d)
{
        Memconv__DomainRegistrations file = MEMCONV__DOMAIN_REGISTRATIONS__INIT;
        Memconv__RegisterDomainRequest *items = NULL, **ptrs = NULL;
        char path[4096], tmp[4096];
        struct domain_reg *r;
        uint8_t *buf = NULL;
        size_t n = 0, len;
        int fd = -EBADF, dfd = -EBADF, q;

        if (!registry_durable(d))
                return 0;
        LIST_FOREACH(r, &d->domains, link)
                n++;
        items = calloc(n ? n : 1, sizeof(*items));
        ptrs = calloc(n ? n : 1, sizeof(*ptrs));
        if (!items || !ptrs) {
                q = -ENOMEM;
                goto out;
        }
        n = 0;
        LIST_FOREACH(r, &d->domains, link) {
                memconv__register_domain_request__init(&items[n]);
                items[n].uuid = r->uuid;
                items[n].name = r->name;
                items[n].cc_type = (Memconv__CcType) r->cc_type;
                items[n].policy = r->policy;
                ptrs[n] = &items[n];
                n++;
        }
        file.domains = ptrs;
        file.n_domains = n;
        len = memconv__domain_registrations__get_packed_size(&file);
        buf = malloc(len ? len : 1);
        if (!buf) {
                q = -ENOMEM;
                goto out;
        }
        memconv__domain_registrations__pack(&file, buf);

        snprintf(path, sizeof(path), "%s/%s", d->config.state_dir, REGISTRY_FILE);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d->config.state_dir, REGISTRY_FILE);
        if (mkdir(d->config.state_dir, 0700) < 0 && errno != EEXIST) {
                q = negative_errno();
                goto out;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                q = negative_errno();
                goto out;
        }
        q = write_all(fd, buf, len);
        if (q >= 0 && fdatasync(fd) < 0)
                q = negative_errno();
        if (close(fd) < 0 && q >= 0)
                q = negative_errno();
        fd = -EBADF;
        if (q >= 0 && rename(tmp, path) < 0)
                q = negative_errno();
        if (q < 0) {
                (void) unlink(tmp);
                goto out;
        }
        dfd = open(d->config.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void) fsync(dfd);
                close(dfd);
        }
        q = 0;
out:
        free(buf);
        free(ptrs);
        free(items);
        return q;
}

/* Add or replace in memory only; Return: 0 or -ENOMEM */
static int registry_put(struct daemon *d, const char *uuid, const char *name, int cc_type, const char *policy)
{
        struct domain_reg *r = registry_find(d, uuid);
        char *n = strdup(name), *p = strdup(policy ? policy : "");

        if (!n || !p) {
                free(n);
                free(p);
                return -ENOMEM;
        }
        if (!r) {
                r = calloc(1, sizeof(*r));
                if (!r) {
                        free(n);
                        free(p);
                        return -ENOMEM;
                }
                snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
                LIST_INSERT_HEAD(&d->domains, r, link);
        } else {
                free(r->name);
                free(r->policy);
        }
        r->name = n;
        r->policy = p;
        r->cc_type = cc_type;
        return 0;
}

int registry_set(struct daemon *d, const char *uuid, const char *name, int cc_type, const char *policy)
{
        struct domain_reg *r = registry_find(d, uuid);
        struct domain_reg old = { 0 };
        int q;

        if (r) {
                /* Keep the old contents until the new ones are on disk. */
                old = *r;
                r->name = r->policy = NULL;
        }
        q = registry_put(d, uuid, name, cc_type, policy);
        if (q >= 0)
                q = registry_save(d);
        if (q < 0) {
                r = registry_find(d, uuid);
                if (r && old.name) {
                        free(r->name);
                        free(r->policy);
                        r->name = old.name;
                        r->policy = old.policy;
                        r->cc_type = old.cc_type;
                } else if (r) {
                        registry_free_one(r);
                }
                return q;
        }
        free(old.name);
        free(old.policy);
        return 0;
}

int registry_load(struct daemon *d)
{
        Memconv__DomainRegistrations *file;
        char path[4096];
        uint8_t *buf = NULL;
        size_t n = 0;
        struct stat st;
        int fd, loaded = 0;

        if (!registry_durable(d))
                return 0;
        snprintf(path, sizeof(path), "%s/%s", d->config.state_dir, REGISTRY_FILE);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_warning_errno(errno, "Cannot open %s; no registration restored", path), 0;
        if (fstat(fd, &st) < 0 || st.st_size > REGISTRY_FILE_MAX || !(buf = malloc((size_t) st.st_size + 1))) {
                log_warning("Cannot read %s (too large or unreadable); no registration restored", path);
                close(fd);
                free(buf);
                return 0;
        }
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        close(fd);
        file = memconv__domain_registrations__unpack(NULL, n, buf);
        free(buf);
        if (!file) {
                log_warning("%s is damaged (not a memconv.DomainRegistrations); no registration restored", path);
                return 0;
        }
        for (size_t i = 0; i < file->n_domains; i++) {
                const Memconv__RegisterDomainRequest *rq = file->domains[i];

                if (!rq->uuid || strlen(rq->uuid) != 36 || !rq->name || !*rq->name) {
                        log_warning("%s: registration %zu is malformed; skipped", path, i);
                        continue;
                }
                if (registry_put(d, rq->uuid, rq->name, rq->cc_type, rq->policy) < 0) {
                        memconv__domain_registrations__free_unpacked(file, NULL);
                        return log_error_errno(-ENOMEM, "Out of memory restoring registrations");
                }
                loaded++;
        }
        memconv__domain_registrations__free_unpacked(file, NULL);
        if (loaded > 0)
                log_info("Restored %d libvirt domain registration(s) from %s", loaded, path);
        return loaded;
}

struct domain_reg *registry_find(struct daemon *d, const char *uuid)
{
        struct domain_reg *r;

        LIST_FOREACH(r, &d->domains, link)
                if (!strcmp(r->uuid, uuid))
                        return r;
        return NULL;
}

int registry_drop(struct daemon *d, const char *uuid)
{
        struct domain_reg *r = registry_find(d, uuid);
        int q;

        if (!r)
                return 0;
        LIST_REMOVE(r, link);
        q = registry_save(d);
        if (q < 0) {
                LIST_INSERT_HEAD(&d->domains, r, link);
                return q;
        }
        free(r->name);
        free(r->policy);
        free(r);
        return 1;
}

void registry_done(struct daemon *d)
{
        while (!LIST_EMPTY(&d->domains))
                registry_free_one(LIST_FIRST(&d->domains));
}

void registry_apply_policy(struct vm *vm, const struct domain_reg *reg)
{
        char *copy = strdup(reg->policy), *save = NULL;

        if (!copy) {
                log_error("VM %s: out of memory applying its libvirt policy", vm->name);
                return;
        }
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *plugin = line, *settings, err[256] = "";

                while (*plugin == ' ' || *plugin == '\t')
                        plugin++;
                if (!*plugin || *plugin == '#')
                        continue;
                settings = plugin + strcspn(plugin, " \t");
                if (*settings)
                        *settings++ = 0;
                if (vm_policy_set(vm, plugin, settings, err, sizeof(err)) < 0)
                        log_warning("VM %s: policy line from its domain XML ignored: %s %s: %s", vm->name, plugin,
                                    settings, err);
        }
        free(copy);
}
