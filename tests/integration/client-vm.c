/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * client-vm.c - see client-vm.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client-vm.h"
#include "harness.h"

int client_vm_setup(struct client_vm *v, const char *conf, const char *name, const char *uuid, uint64_t ram,
                    mc_apply_fn apply)
{
        struct mc_vm_info info = { .name = name, .cc_type = MC_CC_SEV_SNP, .arch = MC_ARCH_X86_64 };
        FILE *f;
        int fd, r;

        memset(v, 0, sizeof(*v));
        v->region = (struct mc_region_info) { .slot = 0, .gpa = 0, .size = ram, .guest_memfd = -1, .shared_fd = -1 };
        snprintf(v->conf_path, sizeof(v->conf_path), "/tmp/memconv-client-conf-XXXXXX");
        fd = mkstemp(v->conf_path);
        f = fd < 0 ? NULL : fdopen(fd, "w");
        if (!f)
                return 1;
        fputs(conf, f);
        if (fclose(f) != 0)
                goto fail;
        setenv("MEMCONV_TEST_CONFIG", v->conf_path, 1);
        r = harness_setup(true);
        if (r != 0) {
                unlink(v->conf_path);
                return r;
        }
        memcpy(info.uuid, uuid, 16);
        v->region.guest_memfd = gmem_create(ram);
        v->region.shared_fd = memfd_create("client-vm-shared", MFD_CLOEXEC);
        if (v->region.guest_memfd < 0 || v->region.shared_fd < 0 || ftruncate(v->region.shared_fd, (off_t) ram) < 0 ||
            mc_client_connect(sock_path, &v->client) < 0 || mc_client_attach(v->client, &info, NULL) < 0 ||
            mc_client_register_region(v->client, &v->region) < 0) {
                fprintf(stderr, "cannot set up a VM on memconvd (log: %s)\n", log_path);
                client_vm_teardown(v);
                return harness_finish(1);
        }
        mc_client_set_apply(v->client, apply, NULL);
        return 0;
fail:
        unlink(v->conf_path);
        return 1;
}

void client_vm_teardown(struct client_vm *v)
{
        v->client = mc_client_free(v->client);
        if (v->region.guest_memfd >= 0)
                close(v->region.guest_memfd);
        if (v->region.shared_fd >= 0)
                close(v->region.shared_fd);
        v->region.guest_memfd = v->region.shared_fd = -1;
        unlink(v->conf_path);
}

bool client_vm_numbers(const char *name, struct client_vm_numbers *ret)
{
        Memconv__AdminReply *r = admin_show(name);

        if (!r)
                return false;
        ret->private_bytes = r->show->vm->private_bytes;
        ret->leased = r->show->vm->stats->leased;
        ret->batches = r->show->vm->stats->leased_batches;
        ret->spurious = r->show->vm->stats->spurious;
        ret->changes = r->show->vm->stats->explicit_to_private + r->show->vm->stats->explicit_to_shared +
                       r->show->vm->stats->implicit_to_private + r->show->vm->stats->implicit_to_shared;
        memconv__admin_reply__free_unpacked(r, NULL);
        return true;
}

bool client_vm_numbers_settle(const char *name, uint64_t changes, struct client_vm_numbers *ret)
{
        for (unsigned i = 0; i < 2000; i++) {
                if (!client_vm_numbers(name, ret))
                        return false;
                if (ret->changes >= changes)
                        break;
                usleep(1000);
        }
        return true;
}

unsigned client_vm_applies;

int client_vm_count_apply(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        __atomic_add_fetch(&client_vm_applies, 1, __ATOMIC_RELAXED);
        return 0;
}

int client_vm_run(struct client_vm *v, const char *suite, const struct client_vm_test *tests, size_t n)
{
        unsigned failures;
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS) {
                client_vm_teardown(v);
                return harness_finish(1);
        }
        s = CU_add_suite(suite, NULL, NULL);
        for (size_t i = 0; s && i < n; i++)
                CU_add_test(s, tests[i].name, tests[i].fn);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() + (s ? 0 : 1);
        CU_cleanup_registry();
        client_vm_teardown(v);
        return harness_finish(failures);
}
