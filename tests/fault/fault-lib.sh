# fault-lib.sh - for the fault-injection tests, sourced after
# tests/integration/lib.sh: a real memconvd with tests/fault/fault-inject.so
# preloaded (into memconvd only), faults switched on and off at run time by
# flag files, and tests/fault/fault-vmm driven one command at a time.

FAULT_SO=$top_builddir/tests/fault/.libs/fault-inject.so
FAULT_VMM=$top_builddir/tests/fault/fault-vmm
CTL=$top_builddir/memconvctl
[ -f "$FAULT_SO" ] || fail "$FAULT_SO is not built (make check builds it)"
[ -x "$FAULT_VMM" ] || fail "$FAULT_VMM is not built (make check builds it)"

# fault_setup KIND=MODE...: a test directory; KIND is JOURNAL or FALLOCATE
# (see fault-inject.c), each active while $TESTDIR/fault-KIND exists
fault_setup() {
        TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-fault.XXXXXX")
        SOCK=$TESTDIR/vmm.sock
        ADMIN=$TESTDIR/admin.sock
        DAEMON_LOG=$TESTDIR/daemon.log
        # A sanitizer build's runtime must come first in the preload list.
        local asan
        asan=$(ldd "$MEMCONVD" 2>/dev/null | awk '/libasan/ { print $3 }')
        FAULT_ENV=(LD_PRELOAD="${asan:+$asan:}$FAULT_SO")
        for kv in "$@"; do
                FAULT_ENV+=("MEMCONV_FAULT_${kv%%=*}=${kv#*=}" "MEMCONV_FAULT_${kv%%=*}_FLAG=$TESTDIR/fault-${kv%%=*}")
        done
        trap 'fvmm_stop_quiet; stop_daemon_quiet' EXIT
}

# fault_on KIND [MATCH]: switch KIND on; with MATCH (FALLOCATE only), only on
# files whose path contains it (fault-vmm's shared memfd is fault-vmm-NAME-shared)
fault_on() { printf '%s' "${2:-}" > "$TESTDIR/fault-$1"; }
fault_off() { rm -f "$TESTDIR/fault-$1"; }

# fault_start_daemon [memconvd options]: start (or restart) memconvd in $TESTDIR
fault_start_daemon() {
        local started
        echo "--- memconvd starts" >> "$DAEMON_LOG"
        started=$(log_count "listening for VMMs")
        env "${FAULT_ENV[@]}" "$MEMCONVD" --config /dev/null --socket "$SOCK" --state-dir "$TESTDIR/state" \
                --log-target=stderr --log-level=debug "$@" 2>>"$DAEMON_LOG" &
        DAEMON_PID=$!
        for _ in $(seq 1 1000); do
                # Its own sockets, not those a previous run may have left behind.
                [ "$(log_count "listening for VMMs")" -gt "$started" ] && [ -S "$SOCK" ] && [ -S "$ADMIN" ] && return 0
                kill -0 "$DAEMON_PID" 2>/dev/null || fail "memconvd exited during startup"
                sleep 0.01
        done
        fail "memconvd did not create $SOCK"
}

# wait_for WHAT COMMAND...: until COMMAND succeeds; 10 s turn a hang into a failure
wait_for() {
        local what=$1 deadline=$((SECONDS + 10)); shift
        until "$@" > /dev/null 2>&1; do
                [ "$SECONDS" -le "$deadline" ] || fail "timed out waiting: $what"
                sleep 0.02
        done
}

ctl() { "$CTL" --admin-socket "$ADMIN" "$@"; }

# stat_of VM FIELD: one counter of `memconvctl stats VM --json`
stat_of() {
        ctl stats "$1" --json | grep -o "\"$2\": *[0-9]*" | head -n 1 | grep -o '[0-9]*$'
}

# fvmm_started NAME: check fault-vmm NAME's first line ($FVMM_REPLY): ready, or a skip
fvmm_started() {
        case $FVMM_REPLY in
        ready*) ;;
        SKIP*) skip "fault-vmm: $FVMM_REPLY" ;;
        *) fail "fault-vmm $1: $FVMM_REPLY" ;;
        esac
}

# fvmm_io WFD RFD WHO COMMAND...: one command to a fault-vmm; the answer is in $FVMM_REPLY
fvmm_io() {
        local w=$1 r=$2 who=$3
        shift 3
        echo "$*" >&"$w" || fail "$who is gone (sending: $*)"
        read -r -t 10 FVMM_REPLY <&"$r" || fail "$who did not answer: $*"
}

# fvmm_start NAME: run fault-vmm as a coprocess, attached as VM NAME
fvmm_start() {
        coproc FVMM { "$FAULT_VMM" "$SOCK" "$1" 2>"$TESTDIR/fvmm-$1.err"; }
        FVMM_P=$FVMM_PID
        if ! read -r -t 10 FVMM_REPLY <&"${FVMM[0]}"; then
                wait "$FVMM_P"; local rc=$?
                [ "$rc" = 77 ] && skip "fault-vmm cannot run here: $(cat "$TESTDIR/fvmm-$1.err")"
                cat "$TESTDIR/fvmm-$1.err" >&2
                fail "fault-vmm $1 did not start (exit $rc)"
        fi
        fvmm_started "$1"
}

# fvmm COMMAND...: one command; the answer is in $FVMM_REPLY
fvmm() { fvmm_io "${FVMM[1]}" "${FVMM[0]}" fault-vmm "$@"; }

# fvmm_ok COMMAND...: one command that must answer "ok"
fvmm_ok() {
        fvmm "$@"
        [ "$FVMM_REPLY" = ok ] || fail "fault-vmm: $*: $FVMM_REPLY"
}

fvmm_quit() {
        echo quit >&"${FVMM[1]}"
        wait "$FVMM_P" || fail "fault-vmm exited with $?"
        FVMM_P=
}

# fvmm2_start NAME: a second fault-vmm at the same time, on fifos (bash runs
# one coprocess at a time); fvmm2 / fvmm2_ok / fvmm2_quit talk to it
fvmm2_start() {
        rm -f "$TESTDIR/fvmm2.in" "$TESTDIR/fvmm2.out"
        mkfifo "$TESTDIR/fvmm2.in" "$TESTDIR/fvmm2.out" || fail "mkfifo"
        "$FAULT_VMM" "$SOCK" "$1" < "$TESTDIR/fvmm2.in" > "$TESTDIR/fvmm2.out" 2>"$TESTDIR/fvmm-$1.err" &
        FVMM2_P=$!
        exec {FVMM2_W}>"$TESTDIR/fvmm2.in" {FVMM2_R}<"$TESTDIR/fvmm2.out"
        read -r -t 10 FVMM_REPLY <&"$FVMM2_R" || fail "fault-vmm $1 did not start: $(cat "$TESTDIR/fvmm-$1.err")"
        fvmm_started "$1"
}
fvmm2() { fvmm_io "$FVMM2_W" "$FVMM2_R" "the second fault-vmm" "$@"; }
fvmm2_ok() {
        fvmm2 "$@"
        [ "$FVMM_REPLY" = ok ] || fail "fault-vmm (second): $*: $FVMM_REPLY"
}
fvmm2_quit() {
        echo quit >&"$FVMM2_W"
        wait "$FVMM2_P" || fail "the second fault-vmm exited with $?"
        exec {FVMM2_W}>&- {FVMM2_R}<&-
        FVMM2_P=
}

fvmm_stop_quiet() {
        [ -n "${FVMM_P:-}" ] && kill "$FVMM_P" 2>/dev/null && wait "$FVMM_P" 2>/dev/null
        [ -n "${FVMM2_P:-}" ] && kill "$FVMM2_P" 2>/dev/null && wait "$FVMM2_P" 2>/dev/null
        return 0
}
