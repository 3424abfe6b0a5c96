#!/bin/bash
# memconvd out of file descriptors: every attached VM holds a socket, its
# guest_memfd, its shared fd and its journal, so a host with many VMs can
# reach RLIMIT_NOFILE. accept() then fails with EMFILE while the connection
# stays queued and the listening socket stays readable: the daemon must
# pause (one warning per shortage), not spin on it (it was found logging the
# same warning ~150000 times a second and burning a core), and it must accept
# again once attached VMMs leave. A message whose fds the kernel could not
# install is answered by its id with a resource-limit error, not dropped
# (its VMM used to wait forever).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge 1024 ] || skip "hard RLIMIT_NOFILE $hard is too low to restore"
# No journal: a VM then costs exactly its socket and its two region fds, so
# the connections that keep coming must end at accept().
# memconvd raises its soft limit to the hard one: lower both (root can
# raise the hard limit again for the VMMs).
[ "$(id -u)" = 0 ] || skip "lowering and restoring the hard fd limit needs root"
ulimit -Sn 40
ulimit -Hn 40
start_daemon --journal=no
ulimit -Hn "$hard"
ulimit -Sn 1024

N=24
pids=()
# --hold VMMs wait forever: end them whatever happens.
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null; done; stop_daemon_quiet' EXIT
for i in $(seq 1 $N); do
        "$VMM" --socket "$SOCK" --name fd$i --scenario storm --iterations 5 --seed $i --hold \
                > "$TESTDIR/fd$i.out" 2>&1 &
        pids+=($!)
done
for _ in $(seq 1 1000); do
        log_has "Failed to accept a VMM connection" && break
        kill -0 "$DAEMON_PID" 2> /dev/null || fail "memconvd died"
        sleep 0.01
done
log_has "Failed to accept a VMM connection" || fail "$N VMMs never exhausted memconvd's 40 fds"
# Give a spinning accept loop time to show itself; nothing is timed.
sleep 1
# A VMM whose region fds were lost to the shortage is refused by id (and
# leaves, freeing fds), so accept may fail, succeed and fail again; but never
# twice in a row without a successful accept between.
n=$(log_count "Failed to accept a VMM connection")
awk '/Failed to accept a VMM connection/ { if (pending) bad = 1; pending = 1 }
     /Accepting VMM connections again/ { pending = 0 } END { exit bad }' "$DAEMON_LOG" ||
        fail "the fd shortage was logged again without an accept in between: a spinning accept loop"
refused=$(grep -l "out of file descriptors" "$TESTDIR"/fd*.out 2> /dev/null | wc -l)

# End every VMM: memconvd closes their sessions and fds. The connection that
# accept() failed on is still queued (even from a dead client), so the next
# accept must succeed.
got_in=$(grep -c "attached by pid" "$DAEMON_LOG")
for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
for _ in $(seq 1 1000); do
        log_has "Accepting VMM connections again" && break
        kill -0 "$DAEMON_PID" 2> /dev/null || fail "memconvd died"
        sleep 0.01
done
log_has "Accepting VMM connections again" || fail "memconvd did not accept again after fds were freed"
echo "fd shortage logged $n time(s); $got_in VMs attached; $refused VMM(s) refused by id when their fds were lost"
stop_daemon
echo "PASS"
