/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-spin.c - lib/spin: the adaptive polling window and the poll itself,
 * on real sockets (no timing is asserted: only what a poll found and how
 * the window moves for given wait lengths).
 */
#define _GNU_SOURCE 1
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spin.h"
#include "test-util.h"

#define US 1000ULL

/* The rule, case by case: (window, largest, wait) -> next window. */
static void test_next(void)
{
        static const struct {
                uint64_t cur, max, idle, next;
        } cases[] = {
                { 0, 0, 1 * US, 0 },                    /* off stays off */
                { 0, 50 * US, 20 * US, MC_SPIN_START_NS }, /* a short wait starts polling */
                { 0, 5 * US, 1 * US, 5 * US },          /* ... never above the largest */
                { 0, 50 * US, 50 * US, MC_SPIN_START_NS }, /* exactly the largest is short */
                { 0, 50 * US, 51 * US, 0 },             /* a long wait: nothing to gain */
                { 10 * US, 50 * US, 15 * US, 20 * US }, /* polled too short: double */
                { 20 * US, 50 * US, 30 * US, 40 * US },
                { 40 * US, 50 * US, 45 * US, 50 * US }, /* doubling stops at the largest */
                { 50 * US, 50 * US, 50 * US, 50 * US }, /* ended within the window: keep */
                { 20 * US, 50 * US, 5 * US, 20 * US },  /* a hit keeps the window */
                { 50 * US, 50 * US, 50 * US + 1, 0 },   /* longer than the largest: drop */
                { 20 * US, 50 * US, 1000000 * US, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t got = mc_spin_next(cases[i].cur, cases[i].max, cases[i].idle);

                if (got != cases[i].next)
                        fprintf(stderr, "case %zu: window %llu, largest %llu, wait %llu: got %llu, want %llu\n", i,
                                (unsigned long long) cases[i].cur, (unsigned long long) cases[i].max,
                                (unsigned long long) cases[i].idle, (unsigned long long) got,
                                (unsigned long long) cases[i].next);
                CU_ASSERT_EQUAL(got, cases[i].next);
        }
}

/* A sequence of waits moves the window; a wait that did not poll is no miss. */
static void test_waited(void)
{
        struct mc_spin s = { 0 };

        mc_spin_set_max(&s, 50 * US);
        mc_spin_waited(&s, 5 * US);
        CU_ASSERT_EQUAL(s.cur_ns, MC_SPIN_START_NS);
        mc_spin_waited(&s, 15 * US);
        CU_ASSERT_EQUAL(s.cur_ns, 20 * US);
        mc_spin_waited(&s, 30 * US);
        mc_spin_waited(&s, 45 * US);
        CU_ASSERT_EQUAL(s.cur_ns, 50 * US);
        mc_spin_waited(&s, 2000 * US);          /* idle: polling stops */
        CU_ASSERT_EQUAL(s.cur_ns, 0);
        CU_ASSERT_EQUAL(s.misses, 0);           /* nothing polled */

        /* A smaller largest window clamps the current one; 0 turns it off. */
        s.cur_ns = 40 * US;
        mc_spin_set_max(&s, 30 * US);
        CU_ASSERT_EQUAL(s.cur_ns, 30 * US);
        mc_spin_set_max(&s, 0);
        CU_ASSERT_EQUAL(s.cur_ns, 0);
        mc_spin_waited(&s, 1 * US);
        CU_ASSERT_EQUAL(s.cur_ns, 0);
        CU_ASSERT_EQUAL(s.hits, 0);
}

/* Data already there: a hit at the first look. A window of 0: no poll at all. */
static void test_poll_ready_and_off(void)
{
        struct mc_spin s = { 0 };
        int sv[2];

        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        mc_spin_set_max(&s, 50 * US);
        CU_ASSERT_FALSE(mc_spin_poll(&s, sv[0], mc_spin_now()));  /* window still 0 */
        CU_ASSERT_EQUAL(s.hits + s.misses, 0);
        CU_ASSERT_EQUAL(s.spin_ns, 0);

        s.cur_ns = 50 * US;
        CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
        CU_ASSERT_TRUE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        CU_ASSERT_EQUAL(s.hits, 1);
        CU_ASSERT_EQUAL(s.misses, 0);

        /* Nothing comes: the window passes (or another thread had the CPU), no hit. */
        {
                char c;

                CU_ASSERT_EQUAL(read(sv[0], &c, 1), 1);
        }
        /* A largest window of 1 s: on a busy machine a yield may let another process run
         * for 50 us, which would be a penalty (test_poll_busy_neighbour) and not what this
         * checks. */
        mc_spin_set_max(&s, 1000000 * US);
        s.cur_ns = 20 * US;
        CU_ASSERT_FALSE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        CU_ASSERT_EQUAL(s.hits, 1);
        CU_ASSERT(s.spin_ns > 0);
        mc_spin_waited(&s, 30 * US);            /* then slept: a miss, and a longer window */
        CU_ASSERT_EQUAL(s.misses, 1);
        CU_ASSERT_EQUAL(s.cur_ns, 40 * US);

        /* A hung-up peer ends the polling too: the caller's recv will tell. */
        close(sv[1]);
        s.cur_ns = 20 * US;
        CU_ASSERT_TRUE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        close(sv[0]);
}

/*
 * pin_first_cpu() - pin this process to the first CPU it may use
 * @old: its affinity before, to restore
 */
static void pin_first_cpu(cpu_set_t *old)
{
        cpu_set_t one;

        CU_ASSERT_FATAL(sched_getaffinity(0, sizeof(*old), old) == 0);
        CPU_ZERO(&one);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
                if (CPU_ISSET(cpu, old)) {
                        CPU_SET(cpu, &one);
                        break;
                }
        CU_ASSERT_FATAL(sched_setaffinity(0, sizeof(one), &one) == 0);
}

/*
 * A peer on the same CPU answers while we poll: sched_yield() lets it run.
 * Both processes are pinned to one CPU and the window is a full second, so
 * a poll that never yielded could still be answered only by preemption.
 */
static void test_poll_peer_same_cpu(void)
{
        struct mc_spin s = { 0 };
        int sv[2], status;
        cpu_set_t old;
        pid_t pid;

        pin_first_cpu(&old);
        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                _exit(write(sv[1], "x", 1) == 1 ? 0 : 1);
        }
        mc_spin_set_max(&s, 1000000 * US);
        s.cur_ns = 1000000 * US;
        for (int tries = 0; tries < 100 && !s.hits; tries++)
                (void) mc_spin_poll(&s, sv[0], mc_spin_now());
        CU_ASSERT_EQUAL(s.hits, 1);
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(sv[0]);
        close(sv[1]);
        CU_ASSERT(sched_setaffinity(0, sizeof(old), &old) == 0);
}

/*
 * A busy thread on the same CPU (not a peer that answers): the first yield
 * hands it a whole time slice, far more than the window. Polling stops and
 * skips the next wait, then the next two after another such yield.
 */
static void test_poll_busy_neighbour(void)
{
        struct mc_spin s = { 0 };
        int sv[2], ready[2], status;
        cpu_set_t old;
        pid_t pid;
        char c;

        pin_first_cpu(&old);
        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        CU_ASSERT_FATAL(pipe(ready) == 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                (void) !write(ready[1], "r", 1);
                for (volatile unsigned long n = 0;; n++)
                        ;
        }
        CU_ASSERT_EQUAL(read(ready[0], &c, 1), 1);

        /* The scheduler may run us on a while before the neighbour is due a whole slice. */
        mc_spin_set_max(&s, 100 * US);
        for (unsigned tries = 0; tries < 10000 && s.penalties < 1; tries++) {
                s.cur_ns = 100 * US;
                CU_ASSERT_FALSE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        }
        printf("\n    polled %llu us with a busy neighbour; penalties %llu, skip %u\n",
               (unsigned long long) (s.spin_ns / US), (unsigned long long) s.penalties, s.skip);
        CU_ASSERT_EQUAL(s.penalties, 1);
        CU_ASSERT_EQUAL(s.skip, 1);
        CU_ASSERT_EQUAL(s.cur_ns, 0);
        /* The next wait does not poll, even with a window. */
        s.cur_ns = 100 * US;
        CU_ASSERT_FALSE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        CU_ASSERT_EQUAL(s.skip, 0);
        CU_ASSERT_FALSE(s.polled);
        /* Another such yield: the next two waits do not poll. */
        for (unsigned tries = 0; tries < 10000 && s.penalties < 2; tries++) {
                s.cur_ns = 100 * US;
                CU_ASSERT_FALSE(mc_spin_poll(&s, sv[0], mc_spin_now()));
        }
        CU_ASSERT_EQUAL(s.penalties, 2);
        CU_ASSERT_EQUAL(s.skip, 2);
        CU_ASSERT_EQUAL(s.hits, 0);

        kill(pid, SIGKILL);
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        close(ready[0]);
        close(ready[1]);
        close(sv[0]);
        close(sv[1]);
        CU_ASSERT(sched_setaffinity(0, sizeof(old), &old) == 0);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "the window's grow/shrink rule", test_next },
                { "waits move the window and count misses", test_waited },
                { "poll: data ready, window 0, nothing, hang-up", test_poll_ready_and_off },
                { "poll: a peer on the same CPU answers", test_poll_peer_same_cpu },
                { "poll: a busy neighbour stops polling for a while", test_poll_busy_neighbour },
        };

        return mc_test_run("spin", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
