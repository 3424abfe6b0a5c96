/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-policy.c - policy plugins in a real memconvd, driven through
 * libmemconv (the path a VMM takes) and memconvctl.
 *
 * The daemon runs with a configuration file that loads the shipped
 * explicit-only and rate-limit plugins from the build tree. Each verdict is
 * checked from the VMM's side (the action mc_client_* returns, whether the
 * attribute callback ran) and for "nothing changed" (a probe conversion that
 * must come back spurious), per-VM settings through `memconvctl policy set`,
 * their survival across a SIGHUP reload, a reload with a broken file, and a
 * daemon that refuses to start when a plugin cannot be loaded.
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "kvm-compat.h"
#include "memconv.h"

#define RAM (1ULL << 20)
#define PAGE 4096ULL

static char dir[128], sock[200], conf[200], log_path[200], top[256];
static pid_t daemon_pid = -1;
static mc_client *client;
static unsigned applies;
static int vm_fd = -1;

static int apply_cb(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        applies++;
        return 0;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void write_config(const char *explicit_only_action)
{
        FILE *f = fopen(conf, "we");

        assert(f);
        fprintf(f, "[Policy]\nPluginDirectory=%s/plugins/.libs\nPlugins=explicit-only rate-limit\n\n"
                   "[Plugin explicit-only]\naction=%s\n\n"
                   "[Plugin rate-limit]\nconversions-per-sec=20\nconversions-burst=2\nmode=delay\n",
                top, explicit_only_action);
        fclose(f);
}

static pid_t spawn_daemon(const char *config)
{
        char bin[300], state[200];
        pid_t pid;

        snprintf(bin, sizeof(bin), "%s/memconvd", top);
        snprintf(state, sizeof(state), "%s/state", dir);
        pid = fork();
        if (pid == 0) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                dup2(fd, STDERR_FILENO);
                execl(bin, bin, "--config", config, "--socket", sock, "--state-dir", state, "--log-target=stderr",
                      (char *) NULL);
                _exit(127);
        }
        return pid;
}

static bool log_has(const char *needle)
{
        char line[4096];
        bool found = false;
        FILE *f = fopen(log_path, "re");

        while (f && !found && fgets(line, sizeof(line), f))
                found = strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return found;
}

/* memconvctl ARGS; Return: its exit status, output in @out */
static int ctl(char *out, size_t len, const char *args)
{
        char cmd[1024];
        FILE *p;
        size_t n;
        int st;

        snprintf(cmd, sizeof(cmd), "%s/memconvctl --admin-socket %s/admin.sock %s 2>&1", top, dir, args);
        p = popen(cmd, "r");
        assert(p);
        n = fread(out, 1, len - 1, p);
        out[n] = 0;
        st = pclose(p);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A spurious answer (RETRY without the callback) proves @gpa is in state @private_. */
static bool is_state(uint64_t gpa, bool private_)
{
        unsigned before = applies;
        int r = mc_client_convert(client, 0, gpa, PAGE, private_, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);

        return r == MC_EXIT_RETRY && applies == before;
}

static void test_explicit_only(void)
{
        struct mc_exit_result res;
        unsigned before = applies;
        char out[4096];

        /* An implicit conversion: refused with the configured action, nothing applied. */
        CU_ASSERT_EQUAL(mc_client_fault(client, 0, 0, PAGE, 1ULL << 3, NULL, 0, &res), MC_EXIT_INJECT_FAULT);
        CU_ASSERT_EQUAL(applies, before);
        CU_ASSERT_EQUAL(res.error, -EACCES);
        CU_ASSERT_PTR_NOT_NULL(strstr(res.message, "explicit-only"));
        CU_ASSERT(is_state(0, false));
        CU_ASSERT(log_has("MEMCONV_CODE=policy-refused"));
        /* The guest's explicit request is allowed. */
        CU_ASSERT_EQUAL(mc_client_convert(client, 0, 0, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL),
                        MC_EXIT_RETRY);
        CU_ASSERT_EQUAL(applies, before + 1);

        /* Per VM: stop the VM instead, then not enforce at all. */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol explicit-only action=stop-vm"), 0);
        CU_ASSERT_EQUAL(mc_client_fault(client, 0, 0, PAGE, 0, NULL, 0, &res), MC_EXIT_STOP_VM);
        CU_ASSERT(is_state(0, true));
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol explicit-only enforce=no"), 0);
        before = applies;
        CU_ASSERT_EQUAL(mc_client_fault(client, 0, 0, PAGE, 0, NULL, 0, &res), MC_EXIT_RETRY);
        CU_ASSERT_EQUAL(applies, before + 1);
        CU_ASSERT(is_state(0, false));

        /* A setting the plugin rejects: exit 1, the plugin's reason, nothing changed. */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol explicit-only action=explode"), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "explode"));
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol no-such-plugin x=1"), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "no-such-plugin"));
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy show pol"), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "enforce=no"));
        CU_ASSERT_PTR_NULL(strstr(out, "explode"));
}

static void test_rate_limit(void)
{
        uint64_t t0, elapsed;
        char out[4096];
        int r;

        /* Burst 2 at 20/s: the third conversion in a row waits ~50 ms for a token. */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol rate-limit conversions-per-sec=20 conversions-burst=2"), 0);
        t0 = now_ms();
        for (unsigned i = 0; i < 3; i++) {
                r = mc_client_convert(client, 0, (8 + i) * PAGE, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                      MC_PAGE_4K, NULL);
                CU_ASSERT_EQUAL(r, MC_EXIT_RETRY);
        }
        elapsed = now_ms() - t0;
        printf("\n  three conversions with a burst of two took %llu ms\n", (unsigned long long) elapsed);
        CU_ASSERT(elapsed >= 25);  /* a delay happened (the timer cannot fire early) */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy show pol"), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "delayed=1"));
        CU_ASSERT(is_state(10 * PAGE, true));

        /* Refuse instead: the request fails with -EACCES and changes nothing. */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out),
                            "policy set pol rate-limit conversions-per-sec=1 conversions-burst=1 mode=refuse"), 0);
        CU_ASSERT_EQUAL(mc_client_convert(client, 0, 12 * PAGE, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                          MC_PAGE_4K, NULL), MC_EXIT_RETRY);
        r = mc_client_convert(client, 0, 13 * PAGE, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);
        CU_ASSERT_EQUAL(r, -EACCES);
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol rate-limit"), 0);  /* back to the defaults */
        CU_ASSERT(is_state(13 * PAGE, false));

        /* The policy's work shows in the stats: explicit-only refused two
         * faults, rate-limit delayed one request and refused one. */
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "show pol"), 0);
        if (!strstr(out, "3 refused, 1 delayed"))
                printf("\n  show pol said:\n%s", out);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 refused, 1 delayed"));
        {
                static char prom[1 << 16];

                CU_ASSERT_EQUAL(ctl(prom, sizeof(prom), "stats --prometheus"), 0);
                CU_ASSERT_PTR_NOT_NULL(strstr(prom, "memconvd_policy_refused_total{vm=\"pol\""));
                CU_ASSERT_PTR_NOT_NULL(strstr(prom, "memconvd_policy_delayed_total{vm=\"pol\""));
                CU_ASSERT_PTR_NOT_NULL(strstr(prom, "memconvd_daemon_policy_refused_total 3\n"));
        }
}

static void test_reload(void)
{
        struct mc_exit_result res;
        char out[4096], bad[256];
        FILE *f;

        /* A new configuration: the chain is reloaded, VMMs stay, per-VM settings survive. */
        write_config("refuse");
        CU_ASSERT_EQUAL(kill(daemon_pid, SIGHUP), 0);
        for (int i = 0; i < 200 && !log_has("Configuration reloaded"); i++)
                usleep(10000);
        CU_ASSERT(log_has("Configuration reloaded"));
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy show pol"), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "enforce=no action=refuse"));
        CU_ASSERT_EQUAL(ctl(out, sizeof(out), "policy set pol explicit-only"), 0);  /* back to the file's */
        CU_ASSERT(mc_client_fault(client, 0, 20 * PAGE, PAGE, 1ULL << 3, NULL, 0, &res) < 0);
        CU_ASSERT_EQUAL(res.error, -EACCES);

        /* A broken file: the reload is refused and the running policy stays. */
        snprintf(bad, sizeof(bad), "%s", conf);
        f = fopen(bad, "ae");
        assert(f);
        fprintf(f, "[Plugin rate-limit]\nbogus-key=1\n");
        fclose(f);
        CU_ASSERT_EQUAL(kill(daemon_pid, SIGHUP), 0);
        for (int i = 0; i < 200 && !log_has("Reload failed"); i++)
                usleep(10000);
        CU_ASSERT(log_has("Reload failed"));
        CU_ASSERT(mc_client_fault(client, 0, 20 * PAGE, PAGE, 1ULL << 3, NULL, 0, &res) < 0);
        CU_ASSERT(is_state(0, false));  /* the VMM is still served */
}

static void test_load_failure(void)
{
        char path[200];
        FILE *f;
        int st;
        pid_t pid;

        /* A plugin that is not there: the daemon does not start, and says why. */
        snprintf(path, sizeof(path), "%s/missing.conf", dir);
        f = fopen(path, "we");
        assert(f);
        fprintf(f, "[Policy]\nPluginDirectory=%s/plugins/.libs\nPlugins=no-such-plugin\n", top);
        fclose(f);
        pid = spawn_daemon(path);
        CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        CU_ASSERT(log_has("plugin no-such-plugin"));
        /* Settings for a plugin that is not listed: a typo, refused. */
        f = fopen(path, "we");
        assert(f);
        fprintf(f, "[Policy]\nPluginDirectory=%s/plugins/.libs\nPlugins=rate-limit\n[Plugin rate-limt]\nmode=delay\n", top);
        fclose(f);
        pid = spawn_daemon(path);
        CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        CU_ASSERT(log_has("[Plugin rate-limt] has settings, but Plugins= does not list"));
}

int main(void)
{
        struct kvm_create_guest_memfd g = { .size = RAM };
        struct mc_vm_info info = { .name = "pol", .cc_type = MC_CC_SW_PROTECTED, .arch = MC_ARCH_X86_64 };
        struct mc_region_info ri = { .slot = 0, .gpa = 0, .size = RAM };
        const char *tb = getenv("top_builddir");
        CU_pSuite s;
        unsigned failures;
        int kvm, st;

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0) {
                printf("SKIP: /dev/kvm not available\n");
                return 77;
        }
        vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
        ri.guest_memfd = vm_fd < 0 ? -1 : ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
        if (ri.guest_memfd < 0) {
                printf("SKIP: no guest_memfd\n");
                return 77;
        }
        ri.shared_fd = memfd_create("pol-shared", MFD_CLOEXEC);
        if (ri.shared_fd < 0 || ftruncate(ri.shared_fd, RAM) < 0)
                return 1;
        if (!realpath(tb ? tb : ".", top))
                return 1;
        snprintf(dir, sizeof(dir), "/tmp/memconv-policy-XXXXXX");
        if (!mkdtemp(dir))
                return 1;
        snprintf(sock, sizeof(sock), "%s/vmm.sock", dir);
        snprintf(conf, sizeof(conf), "%s/memconvd.conf", dir);
        snprintf(log_path, sizeof(log_path), "%s/daemon.log", dir);
        write_config("inject-fault");
        daemon_pid = spawn_daemon(conf);
        for (int i = 0; i < 300 && mc_client_connect(sock, &client) < 0; i++)
                usleep(10000);
        if (!client || mc_client_attach(client, &info, NULL) < 0 || mc_client_register_region(client, &ri) < 0) {
                fprintf(stderr, "cannot set up a VM on memconvd (log: %s)\n", log_path);
                kill(daemon_pid, SIGTERM);
                return 1;
        }
        mc_client_set_apply(client, apply_cb, NULL);

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("policy", NULL, NULL);
        CU_add_test(s, "explicit-only: actions, per-VM settings, refusals", test_explicit_only);
        CU_add_test(s, "rate-limit: delay and refuse", test_rate_limit);
        CU_add_test(s, "SIGHUP reload keeps VMMs and per-VM settings", test_reload);
        CU_add_test(s, "a plugin that cannot load stops start-up", test_load_failure);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();

        mc_client_free(client);
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, &st, 0);
        if (failures) {
                fprintf(stderr, "daemon log kept in %s\n", log_path);
                return 1;
        }
        {
                char cmd[300];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void) !system(cmd);
        }
        return 0;
}
