/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c - memconvd: startup, the event loop, shutdown.
 *
 * Order (systemd's daemon habits): parse options, set up logging, create
 * the sd-event loop, handle SIGTERM/SIGINT as a clean exit, enable the
 * watchdog if the service manager asked for one, take the VMM socket
 * (socket activation via sd_listen_fds_with_names(), fd named "vmm", or
 * bind our own), drop privileges and install the system call filter
 * (sandbox.c), load the policy chain, start the discard workers and the
 * journal, and only then send READY=1. On the way out: STOPPING=1, close every session
 * (which closes every guest fd), let running discards finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "admin.h"
#include "conffile.h"
#include "convert.h"
#include "daemon.h"
#include "history.h"
#include "lease.h"
#include "message.h"
#include "discard.h"
#include "log.h"
#include "persist.h"
#include "policy.h"
#include "registry.h"
#include "sandbox.h"
#include "macro.h"
#include "session.h"
#include "vm.h"

#define DEFAULT_VMM_SOCKET RUNDIR "/memconvd/vmm.sock"
#define DEFAULT_ADMIN_SOCKET RUNDIR "/memconvd/admin.sock"
#define DEFAULT_STATE_DIR LOCALSTATEDIR "/lib/memconvd"
#define DEFAULT_CONFIG SYSCONFDIR "/memconvd/memconvd.conf"
#define DEFAULT_PLUGIN_DIR PKGLIBDIR "/plugins"
#define DEFAULT_JOURNAL_COMPACT 100000
/* Group commit over time: see the journal benchmark (tests/bench) for the figures. */
#define DEFAULT_JOURNAL_COMMIT_INTERVAL_MS 5
#define DEFAULT_LEASE_MAX_BYTES (1ULL << 30)
#define DEFAULT_LEASE_REPORT_DELAY_USEC 1000
#define DEFAULT_POLL_USEC 50

uint64_t daemon_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

uint64_t daemon_realtime(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static int on_summary_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        struct vm *vm;

        LIST_FOREACH(vm, &d->vms, link)
                convert_log_summary(vm, d->config.summary_interval_usec);
        return 0;
}

int daemon_accept(sd_event_source *src, int listen_fd, const char *what)
{
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        if (sd_event_source_get_ratelimit(src, NULL, NULL) < 0) {
                                log_warning_errno(errno, "Failed to accept a%s %s connection; retrying every 100 ms",
                                                  what[0] == 'a' ? "n" : "", what);
                                (void) sd_event_source_set_ratelimit(src, 100 * 1000, 1);
                        }
                } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a%s %s connection", what[0] == 'a' ? "n" : "",
                                          what);
                return -1;
        }
        if (sd_event_source_get_ratelimit(src, NULL, NULL) >= 0) {
                (void) sd_event_source_set_ratelimit(src, 0, 0);
                log_notice("Accepting %s connections again", what);
        }
        return fd;
}

void daemon_arm_summary(struct daemon *d)
{
        int enabled = SD_EVENT_OFF;
        uint64_t now;

        if (!d->summary_timer)
                return;
        if (sd_event_source_get_enabled(d->summary_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (sd_event_now(d->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        (void) sd_event_source_set_time(d->summary_timer, now + d->config.summary_interval_usec);
        (void) sd_event_source_set_enabled(d->summary_timer, SD_EVENT_ONESHOT);
}

/**
 * default_admin_socket() - "admin.sock" in the directory of the VMM socket
 * @vmm: the VMM socket path
 *
 * So a daemon started on a private directory keeps both sockets there.
 * Return: a new string, or NULL on ENOMEM
 */
static char *default_admin_socket(const char *vmm)
{
        const char *slash = strrchr(vmm, '/');
        size_t dir = slash ? (size_t) (slash - vmm) : 0;
        char *p = malloc(dir + sizeof("/admin.sock") + 1);

        if (!p)
                return NULL;
        if (slash)
                memcpy(p, vmm, dir);
        else
                p[dir++] = '.';
        strcpy(p + dir, "/admin.sock");
        return p;
}

/**
 * help() - print usage to stdout
 */
static void help(void)
{
        printf("Usage: memconvd [OPTION...]\n\n"
               "Decide, perform and record private/shared memory conversions of confidential VMs.\n\n"
               "  -h --help                  Show this help\n"
               "     --version               Show the version\n"
               "     --config=FILE           Configuration file (default %s)\n"
               "  -s --socket=PATH           VMM socket (default %s)\n"
               "     --admin-socket=PATH     Admin socket for memconvctl\n"
               "                             (default admin.sock beside the VMM socket: %s)\n"
               "     --vmm-group=GROUP       Group whose members may also attach VMMs\n"
               "                             (default: only root and memconvd's own user)\n"
               "     --admin-group=GROUP     Group whose members may also administer memconvd\n"
               "     --discard-threads=N     Discard worker threads (default: one per CPU, at most 4)\n"
               "     --state-dir=DIR         Where VM journals are kept (default %s)\n"
               "     --journal=BOOL          Keep a durable conversion journal (default yes)\n"
               "     --leases=BOOL           Let VMMs that ask hold policy leases (default yes)\n"
               "     --lease-report-delay=USEC\n"
               "                             How long a VMM may hold back leased conversion reports\n"
               "                             to send them in batches (0..100000 us, default %d)\n"
               "     --journal-compact=N     Snapshot a VM's journal after N records (default %d)\n"
               "     --journal-commit-interval=MS\n"
               "                             At least MS ms between two writes of a VM's journal\n"
               "                             (0..1000, default %d)\n"
               "     --history-records=N     History records kept in memory per VM (default %d)\n"
               "     --log-level=LEVEL       err, warning, notice, info (default) or debug\n"
               "     --log-target=TARGET     auto (default), journal or stderr\n"
               "     --summary-interval=MS   Conversion summary interval in ms (default 1000)\n"
               "     --poll=USEC             Poll for the next message up to USEC us before sleeping,\n"
               "                             adapting to the traffic (0..1000000, default %d; 0: never)\n"
               "     --request-ring=BOOL     Let VMMs pass conversion requests in shared memory\n"
               "                             (default yes)\n"
               "     --system-call-filter=MODE\n"
               "                             yes (default): a system call outside the allow-list\n"
               "                             kills the daemon; log: it is logged; no: no filter\n",
               DEFAULT_CONFIG, DEFAULT_VMM_SOCKET, DEFAULT_ADMIN_SOCKET, DEFAULT_STATE_DIR, DEFAULT_JOURNAL_COMPACT,
               DEFAULT_LEASE_REPORT_DELAY_USEC, DEFAULT_JOURNAL_COMMIT_INTERVAL_MS, HISTORY_DEFAULT_CAPACITY,
               DEFAULT_POLL_USEC);
}

/**
 * default_discard_threads() - one discard worker per online CPU, at most 4:
 * a storm of large conversions keeps every core punching, as the vCPU
 * threads of an in-VMM conversion would
 */
static unsigned default_discard_threads(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        return n < 1 ? 1 : n > 4 ? 4 : (unsigned) n;
}

/**
 * parse_argv() - fill @cfg from the command line
 * Return: 1 to run, 0 to exit successfully (help/version), negative errno
 */
static int parse_argv(int argc, char *argv[], struct daemon_config *cfg)
{
        enum { ARG_VERSION = 0x100, ARG_CONFIG, ARG_VMM_GROUP, ARG_ADMIN_SOCKET, ARG_ADMIN_GROUP, ARG_STATE_DIR,
               ARG_JOURNAL, ARG_JOURNAL_COMPACT, ARG_HISTORY_RECORDS, ARG_DISCARD_THREADS, ARG_LOG_LEVEL, ARG_LOG_TARGET,
               ARG_SUMMARY, ARG_SYSCALL_FILTER, ARG_LEASES, ARG_JOURNAL_COMMIT_INTERVAL,
               ARG_LEASE_REPORT_DELAY, ARG_POLL, ARG_REQUEST_RING };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "socket", required_argument, NULL, 's' },
                { "vmm-group", required_argument, NULL, ARG_VMM_GROUP },
                { "admin-socket", required_argument, NULL, ARG_ADMIN_SOCKET },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "journal", required_argument, NULL, ARG_JOURNAL },
                { "journal-compact", required_argument, NULL, ARG_JOURNAL_COMPACT },
                { "journal-commit-interval", required_argument, NULL, ARG_JOURNAL_COMMIT_INTERVAL },
                { "history-records", required_argument, NULL, ARG_HISTORY_RECORDS },
                { "discard-threads", required_argument, NULL, ARG_DISCARD_THREADS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "summary-interval", required_argument, NULL, ARG_SUMMARY },
                { "system-call-filter", required_argument, NULL, ARG_SYSCALL_FILTER },
                { "leases", required_argument, NULL, ARG_LEASES },
                { "lease-report-delay", required_argument, NULL, ARG_LEASE_REPORT_DELAY },
                { "poll", required_argument, NULL, ARG_POLL },
                { "request-ring", required_argument, NULL, ARG_REQUEST_RING },
                {}
        };
        int c;

        optind = 0; /* parsed again on every reload */
        while ((c = getopt_long(argc, argv, "hs:", options, NULL)) >= 0) {
                char *end;
                unsigned long v;

                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("memconvd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_CONFIG:
                        break; /* read before the configuration: see config_path() */
                case 's':
                        free(cfg->vmm_socket_path);
                        cfg->vmm_socket_path = strdup(optarg);
                        if (!cfg->vmm_socket_path)
                                return -ENOMEM;
                        break;
                case ARG_VMM_GROUP:
                case ARG_ADMIN_GROUP: {
                        struct group *g = getgrnam(optarg);

                        if (!g) {
                                fprintf(stderr, "memconvd: unknown group '%s' for --%s\n", optarg,
                                        c == ARG_VMM_GROUP ? "vmm-group" : "admin-group");
                                return -EINVAL;
                        }
                        if (c == ARG_VMM_GROUP)
                                cfg->vmm_group = g->gr_gid;
                        else
                                cfg->admin_group = g->gr_gid;
                        break;
                }
                case ARG_STATE_DIR:
                        free(cfg->state_dir);
                        cfg->state_dir = strdup(optarg);
                        if (!cfg->state_dir)
                                return -ENOMEM;
                        break;
                case ARG_JOURNAL:
                case ARG_LEASES:
                case ARG_REQUEST_RING: {
                        bool *dest = c == ARG_JOURNAL ? &cfg->journal : c == ARG_LEASES ? &cfg->leases : &cfg->ring;

                        if (strcmp(optarg, "yes") == 0 || strcmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0)
                                *dest = true;
                        else if (strcmp(optarg, "no") == 0 || strcmp(optarg, "false") == 0 || strcmp(optarg, "0") == 0)
                                *dest = false;
                        else {
                                fprintf(stderr, "memconvd: --%s takes yes or no, not '%s'\n",
                                        c == ARG_JOURNAL ? "journal" : c == ARG_LEASES ? "leases" : "request-ring",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                }
                case ARG_JOURNAL_COMPACT:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v < 16 || v > 100000000) {
                                fprintf(stderr, "memconvd: --journal-compact takes 16..100000000, not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        cfg->journal_compact = v;
                        break;
                case ARG_JOURNAL_COMMIT_INTERVAL:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || v > 1000) {
                                fprintf(stderr, "memconvd: --journal-commit-interval takes 0..1000 ms, not '%s'\n",
                                        optarg);
                                return -EINVAL;
                        }
                        cfg->journal_commit_interval_usec = v * 1000ULL;
                        break;
                case ARG_LEASE_REPORT_DELAY:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || v > MC_LEASE_REPORT_DELAY_MAX_USEC) {
                                fprintf(stderr, "memconvd: --lease-report-delay takes 0..%d us, not '%s'\n",
                                        MC_LEASE_REPORT_DELAY_MAX_USEC, optarg);
                                return -EINVAL;
                        }
                        cfg->lease_report_delay_usec = v;
                        break;
                case ARG_POLL:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || optarg[0] == '-' || v > MC_SPIN_MAX_USEC_LIMIT) {
                                fprintf(stderr, "memconvd: --poll takes 0..%llu us, not '%s'\n",
                                        MC_SPIN_MAX_USEC_LIMIT, optarg);
                                return -EINVAL;
                        }
                        cfg->poll_usec = v;
                        break;
                case ARG_HISTORY_RECORDS:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v < 16 || v > 10000000) {
                                fprintf(stderr, "memconvd: --history-records takes 16..10000000, not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        cfg->history_records = v;
                        break;
                case ARG_ADMIN_SOCKET:
                        free(cfg->admin_socket_path);
                        cfg->admin_socket_path = strdup(optarg);
                        if (!cfg->admin_socket_path)
                                return -ENOMEM;
                        break;
                case ARG_DISCARD_THREADS:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v < 1 || v > 64) {
                                fprintf(stderr, "memconvd: --discard-threads takes 1..64, not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        cfg->discard_threads = (unsigned) v;
                        break;
                case ARG_LOG_LEVEL:
                        cfg->log_level = log_parse_level(optarg);
                        if (cfg->log_level < 0) {
                                fprintf(stderr, "memconvd: unknown --log-level '%s' (err, warning, notice, info, debug)\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_LOG_TARGET:
                        cfg->log_target = log_parse_target(optarg);
                        if (cfg->log_target < 0) {
                                fprintf(stderr, "memconvd: unknown --log-target '%s' (auto, journal, stderr)\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_SUMMARY:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v < 10 || v > 3600000) {
                                fprintf(stderr, "memconvd: --summary-interval takes 10..3600000 ms, not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        cfg->summary_interval_usec = v * 1000ULL;
                        break;
                case ARG_SYSCALL_FILTER:
                        cfg->syscall_filter = sandbox_filter_from_string(optarg);
                        if (cfg->syscall_filter < 0) {
                                fprintf(stderr, "memconvd: --system-call-filter takes yes, no or log, not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "memconvd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/**
 * mkdir_parents() - create the directories above @path (mode 0755)
 */
static void mkdir_parents(const char *path)
{
        char buf[sizeof(((struct sockaddr_un *) NULL)->sun_path)];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        if (mkdir(buf, 0755) == 0)
                                (void) chmod(buf, 0755); /* not narrowed by our umask */
                        *p = '/';
                }
}

int daemon_bind_socket(const char *path, mode_t mode, gid_t group, const char *what)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        int r;

        /* The temporary name: the same directory, so that rename() is atomic. */
        if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.new", path, (int) getpid()) >= (int) sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "%s socket path %s is too long", what, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create the %s socket", what);
        (void) unlink(sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind the %s socket %s", what, sa.sun_path);
        if (chmod(sa.sun_path, mode) < 0 ||
            (group != (gid_t) -1 && chown(sa.sun_path, (uid_t) -1, group) < 0)) {
                r = log_error_errno(errno, "Failed to set the mode or group of the %s socket %s", what, sa.sun_path);
                (void) unlink(sa.sun_path);
                return r;
        }
        if (listen(fd, SOMAXCONN) < 0 || rename(sa.sun_path, path) < 0) {
                r = log_error_errno(errno, "Failed to listen on the %s socket %s", what, path);
                (void) unlink(sa.sun_path);
                return r;
        }
        return TAKE_FD(fd);
}

/**
 * daemon_listen() - take the socket-activated VMM socket, or bind one
 * Return: 0 or negative errno (logged)
 */
static int daemon_listen(struct daemon *d)
{
        char **names = NULL;
        int n, r, admin_fd = -EBADF;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to read socket-activation fds");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (d->vmm_fd < 0 && names && strcmp(names[i], "vmm") == 0 &&
                    sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0)
                        d->vmm_fd = fd;
                else if (admin_fd < 0 && names && strcmp(names[i], "admin") == 0 &&
                         sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0)
                        admin_fd = fd;
                else {
                        log_warning("Closing unexpected socket-activation fd %d (%s)", fd, names ? names[i] : "?");
                        safe_close(fd);
                }
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        /* The accept loops drain until EAGAIN: passed sockets must not block. */
        if (d->vmm_fd >= 0)
                (void) fcntl(d->vmm_fd, F_SETFL, fcntl(d->vmm_fd, F_GETFL) | O_NONBLOCK);
        if (admin_fd >= 0)
                (void) fcntl(admin_fd, F_SETFL, fcntl(admin_fd, F_GETFL) | O_NONBLOCK);

        /* The admin socket first: once the VMM socket exists (what clients and the tests wait
         * for), both do. */
        if (admin_fd < 0)
                mkdir_parents(d->config.admin_socket_path);
        r = admin_listen(d, admin_fd);
        if (r < 0)
                return r;
        if (d->vmm_fd < 0) {
                mkdir_parents(d->config.vmm_socket_path);
                /* Access is decided by SO_PEERCRED; the mode only keeps strangers from connecting. */
                r = daemon_bind_socket(d->config.vmm_socket_path,
                                       d->config.vmm_group == (gid_t) -1 ? 0600 : 0660, d->config.vmm_group, "VMM");
                if (r < 0)
                        return r;
                d->vmm_fd = r;
                d->unlink_vmm_socket = true;
        }
        r = sd_event_add_io(d->event, &d->vmm_source, d->vmm_fd, EPOLLIN, session_on_listen, d);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the VMM socket");
        (void) sd_event_source_set_description(d->vmm_source, "vmm-listen");
        return 0;
}

/**
 * daemon_done() - tear everything down in dependency order
 */
static void daemon_done(struct daemon *d)
{
        struct session *s;
        struct vm *vm;

        admin_done(d);
        while ((s = LIST_FIRST(&d->sessions)))
                session_free(s);
        d->discarder = discarder_free(d->discarder);
        while ((vm = LIST_FIRST(&d->vms)))
                vm_free(vm);
        d->persist = persist_free(d->persist);
        d->policy = policy_chain_free(d->policy);
        registry_done(d);
        sd_event_source_disable_unref(d->vmm_source);
        sd_event_source_disable_unref(d->summary_timer);
        if (d->vmm_fd >= 0) {
                safe_close(d->vmm_fd);
                if (d->unlink_vmm_socket)
                        (void) unlink(d->config.vmm_socket_path);
        }
        sd_event_unref(d->event);
        config_done(&d->config);
}

/**
 * config_path() - the --config argument, or NULL for the default file
 */
static const char *config_path(int argc, char *argv[])
{
        const char *path = NULL;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--"))
                        break;
                if (!strncmp(argv[i], "--config=", 9))
                        path = argv[i] + 9;
                else if (!strcmp(argv[i], "--config") && i + 1 < argc)
                        path = argv[++i];
        }
        return path;
}

/**
 * daemon_config_read() - defaults, then the configuration files, then the
 * command line (which wins)
 * Return: 1 to run, 0 to exit successfully (help/version), negative errno
 */
static int daemon_config_read(int argc, char *argv[], struct daemon_config *cfg)
{
        const char *path = config_path(argc, argv);
        int r;

        *cfg = (struct daemon_config) {
                .vmm_group = (gid_t) -1,
                .admin_group = (gid_t) -1,
                .journal = true,
                .journal_compact = DEFAULT_JOURNAL_COMPACT,
                .journal_commit_interval_usec = DEFAULT_JOURNAL_COMMIT_INTERVAL_MS * 1000ULL,
                .history_records = HISTORY_DEFAULT_CAPACITY,
                .discard_threads = default_discard_threads(),
                .summary_interval_usec = 1000000,
                .log_level = LOG_INFO,
                .log_target = LOG_TARGET_AUTO,
                .max_vms_per_uid = 256,
                .max_regions_per_vm = 256,
                .max_requests_per_vm = 4096,
                .syscall_filter = SANDBOX_FILTER_YES,
                .leases = true,
                .lease_max_bytes = DEFAULT_LEASE_MAX_BYTES,
                .lease_report_delay_usec = DEFAULT_LEASE_REPORT_DELAY_USEC,
                .poll_usec = DEFAULT_POLL_USEC,
                .ring = true,
        };
        cfg->config_file = strdup(path ? path : DEFAULT_CONFIG);
        if (!cfg->config_file)
                return -ENOMEM;
        r = config_load(cfg, cfg->config_file, path != NULL);
        if (r < 0)
                return r;
        r = parse_argv(argc, argv, cfg);
        if (r <= 0)
                return r;
        if (!cfg->vmm_socket_path && !(cfg->vmm_socket_path = strdup(DEFAULT_VMM_SOCKET)))
                return -ENOMEM;
        if (!cfg->admin_socket_path && !(cfg->admin_socket_path = default_admin_socket(cfg->vmm_socket_path)))
                return -ENOMEM;
        if (!cfg->state_dir && !(cfg->state_dir = strdup(DEFAULT_STATE_DIR)))
                return -ENOMEM;
        if (!cfg->plugin_dir && !(cfg->plugin_dir = strdup(DEFAULT_PLUGIN_DIR)))
                return -ENOMEM;
        return 1;
}

/**
 * daemon_policy_load() - load the configured plugin chain
 * Return: the chain, or NULL (logged)
 */
static struct policy_chain *daemon_policy_load(const struct daemon_config *cfg)
{
        struct policy_chain *c = NULL;
        char err[512] = "";
        int r;

        r = policy_chain_load(cfg->plugin_dir, cfg->plugins, cfg->n_plugins, &c, err, sizeof(err));
        if (r < 0) {
                log_error("Cannot load the policy chain from %s: %s", cfg->plugin_dir, err);
                return NULL;
        }
        if (cfg->n_plugins > 0) {
                char names[512] = "";
                size_t off = 0;

                for (size_t i = 0; i < cfg->n_plugins && off < sizeof(names); i++)
                        off += (size_t) snprintf(names + off, sizeof(names) - off, "%s%s", i ? " " : "",
                                                 cfg->plugins[i].name);
                log_info("Policy chain: %s", names);
        }
        return c;
}

/**
 * daemon_reload() - SIGHUP: read the configuration again and apply what
 * can change while running (policy chain and its settings, log level and
 * target, summary interval, polling window, compaction and commit
 * interval); VMMs stay
 * connected
 */
static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;
        struct daemon_config cfg;
        struct policy_chain *chain;
        struct vm *vm;
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration");
        r = daemon_config_read(d->argc, d->argv, &cfg);
        if (r <= 0) {
                log_error("Reload failed: the configuration has errors (see above); keeping the running one");
                config_done(&cfg);
                (void) sd_notify(false, "READY=1\nSTATUS=Serving VMMs (reload failed)");
                return 0;
        }
        chain = daemon_policy_load(&cfg);
        if (!chain) {
                log_error("Reload failed: keeping the running policy chain");
                config_done(&cfg);
                (void) sd_notify(false, "READY=1\nSTATUS=Serving VMMs (reload failed)");
                return 0;
        }
        policy_chain_free(d->policy);
        d->policy = chain;
        /* Per-VM settings given at run time survive a reload. */
        LIST_FOREACH(vm, &d->vms, link)
                vm_policy_reapply(vm);
        if (strcmp(cfg.vmm_socket_path, d->config.vmm_socket_path) || strcmp(cfg.admin_socket_path, d->config.admin_socket_path) ||
            strcmp(cfg.state_dir, d->config.state_dir) || cfg.journal != d->config.journal ||
            cfg.discard_threads != d->config.discard_threads || cfg.syscall_filter != d->config.syscall_filter)
                log_notice("Reload: socket paths, state directory, journal, discard threads and the system call filter "
                           "change only on restart");
        log_setup(cfg.log_target, cfg.log_level);
        d->config.log_level = cfg.log_level;
        d->config.log_target = cfg.log_target;
        d->config.summary_interval_usec = cfg.summary_interval_usec;
        d->config.history_records = cfg.history_records;
        d->config.require_registration = cfg.require_registration;
        d->config.max_vms_per_uid = cfg.max_vms_per_uid;
        d->config.max_regions_per_vm = cfg.max_regions_per_vm;
        d->config.max_requests_per_vm = cfg.max_requests_per_vm;
        d->config.leases = cfg.leases;
        d->config.lease_max_bytes = cfg.lease_max_bytes;
        d->config.lease_report_delay_usec = cfg.lease_report_delay_usec;
        d->config.poll_usec = cfg.poll_usec;
        mc_spin_set_max(&d->spin, cfg.poll_usec * 1000);
        d->config.ring = cfg.ring;  /* rings set up already stay */
        /* The chain, its settings or the lease settings may have changed: grant anew. */
        lease_revoke_all(d, "the configuration was reloaded");
        persist_set_compact(d->persist, cfg.journal_compact);
        persist_set_commit_interval(d->persist, cfg.journal_commit_interval_usec);
        config_plugins_done(&d->config);
        d->config.plugins = TAKE_PTR(cfg.plugins);
        d->config.n_plugins = cfg.n_plugins;
        cfg.n_plugins = 0;
        config_done(&cfg);
        log_info("Configuration reloaded");
        (void) sd_notify(false, "READY=1\nSTATUS=Serving VMMs");
        return 0;
}

/**
 * daemon_event_loop() - sd_event_loop(), polling before it sleeps
 *
 * When nothing is pending, the loop polls its epoll fd for the adaptive
 * window of lib/spin.h before it blocks: a VMM whose vCPU converts again
 * within the window finds memconvd awake, and no CPU has to be woken to
 * take its message. It does not poll while discard workers have jobs: a
 * worker sharing its core would get the core for a whole time slice at
 * the first yield, and a message arriving meanwhile would wait for that
 * slice instead of waking the loop at once. Only fd and timer events can
 * arrive while it polls (a deferred source would have made
 * sd_event_prepare() return > 0), and each of those makes the epoll fd
 * readable.
 *
 * VMMs' request rings (reqring.h) are read after every wake-up, and the
 * polling ends when one holds an entry. Before it blocks, the loop sets
 * each ring's daemon_sleeping flag and looks at the rings once more, so a
 * VMM either sees the flag and sends RingKick, or its entry is found.
 *
 * Return: the exit code given to sd_event_exit(), or a negative errno
 */
static int daemon_event_loop(struct daemon *d)
{
        int fd = sd_event_get_fd(d->event);
        unsigned unpolled = 0;
        int r, code = 0;

        if (fd < 0)
                return fd;
        while (sd_event_get_state(d->event) != SD_EVENT_FINISHED) {
                bool waited = false;

                r = sd_event_prepare(d->event);
                if (r == 0) {
                        waited = true;
                        uint64_t start = mc_spin_now();
                        bool may_poll = !discarder_busy(d->discarder);
                        bool hit = may_poll && mc_spin_poll_ready(&d->spin, fd, sessions_ring_pending_cb, d, start);
                        bool ring_work = false, flagged = false;

                        if (!hit)
                                ring_work = sessions_ring_pending(d);
                        if (!hit && !ring_work) {
                                /* About to block: tell the rings' VMMs to kick us, then look once
                                 * more: an entry queued before they could see the flag is found
                                 * here. (Never while there is work: every VMM would kick.) */
                                sessions_ring_sleeping(d, true);
                                flagged = true;
                                atomic_thread_fence(memory_order_seq_cst);  /* the flag, then the tails */
                                ring_work = sessions_ring_pending(d);
                        }
                        r = sd_event_wait(d->event, hit || ring_work ? 0 : UINT64_MAX);
                        if (flagged)
                                sessions_ring_sleeping(d, false);
                        if (may_poll && !hit)
                                mc_spin_waited(&d->spin, mc_spin_now() - start);
                }
                if (r > 0)
                        r = sd_event_dispatch(d->event);
                if (r < 0)
                        return r;
                /*
                 * Handling ring entries enables deferred sources (discard kicks), and
                 * while one is pending sd_event_prepare() dispatches it without
                 * polling the epoll fd: rings read after every iteration kept every
                 * socket (VMMs' and the admin socket) unread for seconds under load.
                 * So after an iteration that did not poll, the rings are read only
                 * if the one before did: the epoll fd is polled every few iterations.
                 */
                unpolled = waited ? 0 : unpolled + 1;
                if (unpolled <= 1 && sd_event_get_state(d->event) != SD_EVENT_FINISHED)
                        sessions_ring_run(d);
        }
        r = sd_event_get_exit_code(d->event, &code);
        return r < 0 ? r : code;
}

/*
 * raise_fd_limit() - every attached VM holds its socket, guest_memfd, shared
 * memory fd and journal: the usual soft limit of 1024 runs out near 250 VMs,
 * below VMsPerUID's default. Raise the soft limit to the hard one (what
 * systemd's LimitNOFILE= sets), as daemons holding many fds do.
 */
static void raise_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(errno, "Cannot raise the file descriptor limit");
}

int main(int argc, char *argv[])
{
        struct daemon d = {
                .vmm_fd = -EBADF,
                .admin_fd = -EBADF,
                .argc = argc,
                .argv = argv,
        };
        sigset_t mask;
        int r;

        LIST_INIT(&d.sessions);
        LIST_INIT(&d.vms);
        LIST_INIT(&d.admin_conns);
        LIST_INIT(&d.domains);
        log_setup(LOG_TARGET_AUTO, LOG_INFO); /* configuration errors go somewhere sensible */
        r = daemon_config_read(argc, argv, &d.config);
        if (r <= 0) {
                config_done(&d.config);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        log_setup(d.config.log_target, d.config.log_level);
        umask(0077);
        raise_fd_limit();

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&d.event);
        if (r < 0) {
                log_error_errno(r, "Failed to create the event loop");
                goto finish;
        }
        (void) sd_event_add_signal(d.event, NULL, SIGTERM, NULL, NULL);
        (void) sd_event_add_signal(d.event, NULL, SIGINT, NULL, NULL);
        (void) sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d);
        r = sd_event_set_watchdog(d.event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog");
        d.started_usec = daemon_now();

        /* Bind the sockets and give them their groups while we may; nothing is accepted before the loop runs. */
        r = daemon_listen(&d);
        if (r < 0)
                goto finish;
        /*
         * Privileged set-up ends here. Capabilities, no_new_privs and the filter
         * are per thread and inherited by threads created later: the discard
         * workers, the journal thread and any thread a policy plugin starts.
         * So plugins are loaded sandboxed, as at a reload, and the state
         * directory is opened without privilege.
         */
        r = sandbox_apply(d.config.syscall_filter);
        if (r < 0)
                goto finish;
        d.policy = daemon_policy_load(&d.config);
        if (!d.policy) {
                r = -EINVAL;
                goto finish;
        }
        r = discarder_new(d.event, d.config.discard_threads, convert_discard_done, &d, &d.discarder);
        if (r < 0) {
                log_error_errno(r, "Failed to start discard workers");
                goto finish;
        }
        {
                struct persist_config pc = {
                        .state_dir = d.config.journal ? d.config.state_dir : NULL,
                        .compact_records = d.config.journal_compact,
                        .commit_interval_usec = d.config.journal_commit_interval_usec,
                };
                uint64_t t0 = daemon_now();

                r = persist_new(&d, &pc, &d.persist);
                if (r < 0)
                        goto finish;
                r = persist_load(d.persist);
                if (r < 0)
                        goto finish;
                if (r > 0)
                        log_info("Restored %d VM(s) from %s in %" PRIu64 " ms", r, d.config.state_dir,
                                 (daemon_now() - t0) / 1000);
        }
        r = registry_load(&d);
        if (r < 0)
                goto finish;
        r = sd_event_add_time(d.event, &d.summary_timer, CLOCK_MONOTONIC, 0, 100000, on_summary_timer, &d);
        if (r < 0) {
                log_error_errno(r, "Failed to create the summary timer");
                goto finish;
        }
        (void) sd_event_source_set_enabled(d.summary_timer, SD_EVENT_OFF);

        log_info("memconvd %s listening for VMMs on %s, for administration on %s", PACKAGE_VERSION,
                 d.config.vmm_socket_path, d.config.admin_socket_path);
        (void) sd_notify(false, "READY=1\nSTATUS=Serving VMMs");
        mc_spin_set_max(&d.spin, d.config.poll_usec * 1000);
        r = daemon_event_loop(&d);
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
        if (r < 0)
                log_error_errno(r, "Event loop failed");
        else
                log_info("memconvd stopping");
finish:
        daemon_done(&d);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
