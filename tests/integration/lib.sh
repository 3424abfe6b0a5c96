# lib.sh - shared by the integration tests: a real memconvd on a private
# socket in a temporary directory, and helpers to check its log.
# Automake test protocol: exit 0 pass, 1 fail, 77 skip.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
MEMCONVD=$top_builddir/memconvd
# The Python checks import tests/integration/vmmstate.py: no __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
VMM=$top_builddir/tests/vmm/memconv-vmm

fail() { echo "FAIL: $*" >&2; [ -n "${DAEMON_LOG:-}" ] && [ -f "$DAEMON_LOG" ] && { echo "--- daemon log (last 40 lines):" >&2; tail -n 40 "$DAEMON_LOG" >&2; }; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# refuse_option OPTION RANGE_TEXT BAD...: memconvd --OPTION=BAD exits with
# status 1, says "--OPTION takes RANGE_TEXT, not 'BAD'", and binds nothing
refuse_option() {
        local opt=$1 range=$2 dir out bad
        shift 2
        dir=$(mktemp -d "${TMPDIR:-/tmp}/memconv-bad.XXXXXX")
        for bad in "$@"; do
                out=$(timeout 10 "$MEMCONVD" --config /dev/null --socket "$dir/bad.sock" --"$opt"="$bad" 2>&1)
                [ $? = 1 ] || { rm -rf "$dir"; fail "--$opt='$bad' did not make memconvd exit with status 1"; }
                grep -qF -- "--$opt takes $range, not '$bad'" <<<"$out" ||
                        { rm -rf "$dir"; fail "no clear error for --$opt='$bad': $out"; }
                [ ! -e "$dir/bad.sock" ] || { rm -rf "$dir"; fail "memconvd bound its socket despite --$opt='$bad'"; }
        done
        rm -rf "$dir"
}

# refuse_key SECTION KEY=VALUE ERROR: a configuration file with that line
# makes memconvd exit with status 1, saying "FILE:2: KEY=VALUE ERROR", and
# binds nothing
refuse_key() {
        local dir out
        dir=$(mktemp -d "${TMPDIR:-/tmp}/memconv-bad.XXXXXX")
        printf '[%s]\n%s\n' "$1" "$2" > "$dir/bad.conf"
        out=$(timeout 10 "$MEMCONVD" --config "$dir/bad.conf" --socket "$dir/bad.sock" --log-target=stderr 2>&1)
        [ $? = 1 ] || { rm -rf "$dir"; fail "$2 did not make memconvd exit with status 1"; }
        grep -qF "$dir/bad.conf:2: $2 $3" <<<"$out" || { rm -rf "$dir"; fail "no clear error for $2: $out"; }
        [ ! -e "$dir/bad.sock" ] || { rm -rf "$dir"; fail "memconvd bound its socket despite $2"; }
        rm -rf "$dir"
}

need_kvm() {
        [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm not available"
}

# start_daemon [extra memconvd options...]
# With MEMCONVD_VALGRIND=1 the daemon runs under valgrind (memcheck; its
# system-call filter off, as valgrind makes system calls of its own):
# stop_daemon then fails on any error or definite leak valgrind reports.
start_daemon() {
        local wrap=() tries=300
        TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-it.XXXXXX")
        SOCK=$TESTDIR/vmm.sock
        DAEMON_LOG=$TESTDIR/daemon.log
        if [ "${MEMCONVD_VALGRIND:-0}" = 1 ]; then
                wrap=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
                      --log-file="$TESTDIR/valgrind.log")
                set -- --system-call-filter=no "$@"
                tries=6000
                echo "(memconvd runs under valgrind)"
        fi
        "${wrap[@]}" "$MEMCONVD" --socket "$SOCK" --state-dir "$TESTDIR/state" --log-target=stderr --log-level=debug "$@" 2>"$DAEMON_LOG" &
        DAEMON_PID=$!
        trap 'stop_daemon_quiet' EXIT
        for _ in $(seq 1 "$tries"); do
                [ -S "$SOCK" ] && return 0
                kill -0 "$DAEMON_PID" 2>/dev/null || fail "memconvd exited during startup"
                sleep 0.01
        done
        fail "memconvd did not create $SOCK"
}

stop_daemon_quiet() {
        [ -n "${DAEMON_PID:-}" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
        [ -n "${KEEP_TESTDIR:-}" ] || rm -rf "${TESTDIR:-/nonexistent}"
}

# stop_daemon: SIGTERM must end it cleanly, with exit status 0.
stop_daemon() {
        kill -TERM "$DAEMON_PID" || fail "memconvd is not running"
        wait "$DAEMON_PID"; rc=$?
        DAEMON_PID=
        if [ -s "$TESTDIR/valgrind.log" ]; then
                cat "$TESTDIR/valgrind.log" >&2
                fail "valgrind found errors in memconvd"
        fi
        [ "$rc" = 0 ] || fail "memconvd exited with status $rc on SIGTERM"
        grep -q "memconvd stopping" "$DAEMON_LOG" || fail "no clean-shutdown record in the log"
}

# log_has PATTERN...: one log line matching every pattern (fixed strings)
log_has() {
        awk -v n=$# 'BEGIN { for (i = 1; i <= n; i++) p[i] = ARGV[i]; ARGC = 1 }
                     { ok = 1; for (i = 1; i <= n; i++) if (index($0, p[i]) == 0) { ok = 0; break } }
                     ok { found = 1; exit } END { exit !found }' "$@" < "$DAEMON_LOG"
}

# log_count PATTERN: how many log lines contain PATTERN
log_count() { grep -cF -- "$1" "$DAEMON_LOG" || true; }

# run_vmm NAME [vmm options...]: run the reference VMM against the daemon
run_vmm() {
        local name=$1; shift
        "$VMM" --socket "$SOCK" --name "$name" "$@" > "$TESTDIR/$name.out" 2>&1
        local rc=$?
        if [ "$rc" = 77 ]; then cat "$TESTDIR/$name.out"; skip "the reference VMM cannot run here"; fi
        [ "$rc" = 0 ] || { cat "$TESTDIR/$name.out" >&2; fail "VMM $name exited with $rc"; }
        grep -E '^vmm: [0-9]+ passed, 0 failed' "$TESTDIR/$name.out" > /dev/null || { cat "$TESTDIR/$name.out" >&2; fail "VMM $name did not report success"; }
}
