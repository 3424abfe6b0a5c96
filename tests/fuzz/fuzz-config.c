/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-config.c - memconvd.conf (daemon/conffile.c) from untrusted bytes.
 *
 * The input is written to a memfd and read through /proc/self/fd/N by
 * config_load(), exactly as the daemon reads its file. Checked: the
 * result is 0 or one of the documented errors; on success every numeric
 * key is inside the range memconvd.conf(5) gives it, every plugin has a
 * plain name and its settings have keys; on failure nothing leaks (ASan).
 * The corpus: the shipped example, every key, and the edge cases of the
 * format (sections, comments, quoting, continuation-free long lines).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conffile.h"
#include "fuzz.h"
#include "log.h"
#include "policy.h"
#include "sandbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static bool quiet;
        struct daemon_config cfg = {
                .vmm_group = (gid_t) -1,
                .admin_group = (gid_t) -1,
                .journal = true,
                .journal_compact = 4096,
                .history_records = 4096,
                .discard_threads = 1,
                .summary_interval_usec = 1000000,
                .log_level = 6,
                .max_vms_per_uid = 256,
                .max_regions_per_vm = 256,
                .max_requests_per_vm = 4096,
                .syscall_filter = SANDBOX_FILTER_YES,
        };
        char path[64];
        size_t off = 0;
        int fd, r;

        if (!quiet) {
                /* Every refusal is logged at LOG_ERR: keep the fuzzer's output readable. */
                log_setup(LOG_TARGET_STDERR, 0);
                quiet = true;
        }
        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
        while (off < size) {
                ssize_t n = write(fd, data + off, size - off);

                FUZZ_CHECK(n > 0);
                off += (size_t) n;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = config_load(&cfg, path, true);
        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM || r == -ENOENT || r == -E2BIG);
        if (r == 0) {
                FUZZ_CHECK(cfg.discard_threads >= 1 && cfg.discard_threads <= 64);
                FUZZ_CHECK(cfg.summary_interval_usec >= 10000 && cfg.summary_interval_usec <= 3600000000ULL);
                FUZZ_CHECK(cfg.journal_compact >= 16 && cfg.journal_compact <= 100000000);
                FUZZ_CHECK(cfg.history_records >= 16 && cfg.history_records <= 10000000);
                FUZZ_CHECK(cfg.max_vms_per_uid >= 1 && cfg.max_regions_per_vm >= 1 && cfg.max_requests_per_vm >= 1);
                FUZZ_CHECK(cfg.log_level >= 0 && cfg.log_level <= 7);
                for (size_t i = 0; i < cfg.n_plugins; i++) {
                        const struct policy_plugin_config *p = &cfg.plugins[i];

                        FUZZ_CHECK(p->name && p->name[0] && !strchr(p->name, '/'));
                        for (size_t k = 0; k < p->n_settings; k++)
                                FUZZ_CHECK(p->settings[k].key && p->settings[k].key[0] && p->settings[k].value);
                }
        }
        config_done(&cfg);
        close(fd);
        return 0;
}
