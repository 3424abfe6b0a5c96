#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hook.sh - memconvd-libvirt-hook end to end, run the way libvirt runs it
# (`HOOK DOMAIN OPERATION SUB-OPERATION EXTRA`, domain XML on stdin), against
# tests/libvirt/fake-admin: a real SOCK_SEQPACKET admin socket speaking the
# real AdminRequest/AdminReply messages, which logs every request it gets.
#
# Checks: what each fixture registers (SEV, SEV-ES, SEV-SNP, TDX, s390-pv,
# plain); release forgets; other operations are ignored without reading
# stdin; bad XML (malformed, no uuid, bad uuid, DOCTYPE, huge, ...) is refused
# with a clear message and nothing is sent; daemon refusals; fail-open and
# fail-closed with no daemon, a silent daemon, a daemon that never accepts,
# one that hangs up, one that answers garbage; the time limit; forget retried
# while busy; configuration errors; the hook never writes to stdout.
#
# Automake test protocol: exit 0 pass, 1 fail, 77 skip.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
HOOK=${HOOK:-$top_builddir/memconvd-libvirt-hook}
FAKE=${FAKE:-$top_builddir/tests/libvirt/fake-admin}
XML=$top_srcdir/tests/libvirt/xml

failures=0
checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$HOOK" ] || die "$HOOK is not built"
[ -x "$FAKE" ] || die "$FAKE is not built"

TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-hook.XXXXXX") || die "mktemp"
SOCK=$TESTDIR/admin.sock
LOG=$TESTDIR/requests.log
CONF=$TESTDIR/libvirt-hook.conf
FAKE_PID=
HOLDER_PID=
cleanup() {
        [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
        [ -n "$HOLDER_PID" ] && kill "$HOLDER_PID" 2>/dev/null && wait "$HOLDER_PID" 2>/dev/null
        [ -n "${KEEP_TESTDIR:-}" ] || rm -rf "$TESTDIR"
}
trap cleanup EXIT
export MEMCONVD_LIBVIRT_HOOK_CONF=$CONF

# conf [KEY=VALUE...]: the hook's configuration, on top of our socket
conf() {
        { echo "# written by hook.sh"; echo "admin-socket = $SOCK"; printf '%s\n' "$@"; } > "$CONF"
}

# start_fake MODE: a fresh fake admin server with an empty request log
start_fake() {
        stop_fake
        rm -f "$SOCK"
        : > "$LOG"
        "$FAKE" "$SOCK" "$LOG" "$1" &
        FAKE_PID=$!
        for _ in $(seq 1 300); do
                [ -S "$SOCK" ] && return 0
                sleep 0.01
        done
        die "fake-admin did not create $SOCK"
}

stop_fake() {
        if [ -n "$FAKE_PID" ]; then
                kill "$FAKE_PID" 2>/dev/null
                wait "$FAKE_PID" 2>/dev/null
                FAKE_PID=
        fi
        rm -f "$SOCK"
        : > "$LOG"
}

# hook STDIN DOMAIN OPERATION SUB-OPERATION: run the hook as libvirt does.
# Sets RC, OUT (stdout), ERR (stderr) and MS (wall-clock milliseconds).
hook() {
        local in=$1 t0 t1
        shift
        t0=$(date +%s%N)
        "$HOOK" "$@" - < "$in" > "$TESTDIR/out" 2> "$TESTDIR/err"
        RC=$?
        t1=$(date +%s%N)
        MS=$(( (t1 - t0) / 1000000 ))
        OUT=$(cat "$TESTDIR/out")
        ERR=$(cat "$TESTDIR/err")
}

# expect_rc N WHAT: the last hook run exited with N and wrote nothing on stdout
expect_rc() {
        checks=$((checks + 1))
        [ "$RC" = "$1" ] || fail "$2: exit status $RC, expected $1 (stderr: $ERR)"
        [ -z "$OUT" ] || fail "$2: the hook wrote to stdout: $OUT"
}

# expect_err TEXT WHAT: stderr of the last run contains TEXT
expect_err() {
        checks=$((checks + 1))
        grep -qF -- "$1" "$TESTDIR/err" || fail "$2: stderr lacks \"$1\"; it was: $ERR"
}

# expect_log WHAT LINE...: the fake server received exactly these requests
expect_log() {
        local what=$1 want got
        shift
        checks=$((checks + 1))
        want=$(printf '%s\n' "$@" | sed '/^$/d')
        got=$(cat "$LOG")
        [ "$got" = "$want" ] || fail "$what: the server received:
$got
expected:
$want"
}

# expect_ms_below N WHAT: the last run took less than N ms
expect_ms_below() {
        checks=$((checks + 1))
        # Generous slack (x3): this proves a bound exists, not a speed; shared CI
        # machines and sanitizer builds are slow.
        [ "$MS" -lt $(( $1 * 3 )) ] || fail "$2: took $MS ms, limit $(( $1 * 3 )) ms"
}

# ---------------------------------------------------------------- registration
conf "timeout-ms = 1000"
start_fake ok

# fixture domain uuid cc policy(escaped as fake-admin logs it)
while IFS='|' read -r fixture domain uuid cc policy; do
        hook "$XML/$fixture.xml" "$domain" prepare begin
        expect_rc 0 "prepare $fixture"
        [ -z "$ERR" ] || fail "prepare $fixture: unexpected stderr: $ERR"
        expect_log "prepare $fixture" "register id=1 uuid=$uuid name=$domain cc=$cc policy=$policy"
        : > "$LOG"
        hook "$XML/$fixture.xml" "$domain" release end
        expect_rc 0 "release $fixture"
        expect_log "release $fixture" "forget id=1 spec=$uuid"
        : > "$LOG"
done <<'EOF'
sev|sev-guest|2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93|CC_TYPE_SEV|implicit-conversions=refuse\n      rate=1000/s
sev-es|sev-es-guest|5c1d9e47-8a2b-4f36-b0c7-1e9d3a6f2b58|CC_TYPE_SEV_ES|implicit-conversions=refuse\n      rate=1000/s
sev-snp|snp-guest|a1b2c3d4-e5f6-4789-9abc-def012345678|CC_TYPE_SEV_SNP|implicit-conversions=allow
tdx|tdx-guest|0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e|CC_TYPE_TDX|implicit-conversions=refuse
s390-pv|pv-guest|4d2f1b6a-7c3e-4e8f-9a0b-1c2d3e4f5a6b|CC_TYPE_S390_PV|
plain|plain-guest|c7a5fdbd-edaf-9455-926a-d65c16db1809|CC_TYPE_NONE|
EOF

# Every other operation: exit 0 at once, send nothing, do not read stdin
# (a stdin that never ends must not hold the hook), ignore the configuration.
mkfifo "$TESTDIR/never"
sleep 60 > "$TESTDIR/never" &
HOLDER_PID=$!
echo "garbage line" > "$TESTDIR/bad.conf"
for op in "start begin" "started begin" "stopped end" "migrate begin" "restore begin" "reconnect begin" \
          "attach begin" "prepare end" "release begin" "shutdown begin" "failed begin"; do
        # shellcheck disable=SC2086
        MEMCONVD_LIBVIRT_HOOK_CONF=$TESTDIR/bad.conf hook "$TESTDIR/never" sev-guest $op
        expect_rc 0 "ignored '$op'"
        expect_ms_below 500 "ignored '$op'"
        [ -z "$ERR" ] || fail "ignored '$op': unexpected stderr: $ERR"
done
expect_log "ignored operations"

# A domain XML that never ends on stdin: bounded by the time limit.
conf "timeout-ms = 300"
hook "$TESTDIR/never" sev-guest prepare begin
expect_rc 1 "stdin never ends"
expect_err "did not arrive on stdin within 300 ms" "stdin never ends"
expect_ms_below 1000 "stdin never ends"
kill "$HOLDER_PID" 2>/dev/null; wait "$HOLDER_PID" 2>/dev/null; HOLDER_PID=
conf "timeout-ms = 1000"

# ---------------------------------------------------------------- bad XML
while IFS='|' read -r fixture domain text; do
        hook "$XML/$fixture.xml" "$domain" prepare begin
        expect_rc 1 "bad XML $fixture"
        expect_err "memconvd-libvirt-hook: domain '$domain': $text" "bad XML $fixture"
        hook "$XML/$fixture.xml" "$domain" release end
        expect_rc 1 "bad XML $fixture (release)"
done <<'EOF'
malformed|broken-guest|the domain XML is not well-formed: line 7: Opening and ending tag mismatch: launchSecurity line 5 and launchSecurty
missing-uuid|nouuid-guest|the domain XML has no <uuid>
bad-uuid|baduuid-guest|the domain's <uuid> "not-a-uuid-at-all" is not a uuid
two-uuids|twouuid-guest|the domain XML has more than one <uuid> (line 4)
unknown-cc|cca-guest|unknown <launchSecurity type='cca'> (line 4); memconvd knows sev, sev-snp, tdx and s390-pv
policy-typo|typo-guest|unknown element <polcy> in memconvd's namespace http://memconvd.org/schemas/domain/1.0 (line 5)
policy-element|elem-guest|the memconvd policy (line 5) must be text; it contains <implicit>
doctype|entity-guest|the domain XML has a DOCTYPE; libvirt never writes one
not-domain|default|the XML document is not a libvirt <domain> (root element <network>)
EOF

: > "$TESTDIR/empty.xml"
hook "$TESTDIR/empty.xml" vm1 prepare begin
expect_rc 1 "empty stdin"
expect_err "the domain XML is empty" "empty stdin"

printf '<domain><name>vm1</name><uuid>2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93</uuid>' > "$TESTDIR/truncated.xml"
hook "$TESTDIR/truncated.xml" vm1 prepare begin
expect_rc 1 "truncated XML"
expect_err "the domain XML is not well-formed: line 1:" "truncated XML"

# The XML names another domain than argv does.
hook "$XML/sev.xml" other-guest prepare begin
expect_rc 1 "name mismatch"
expect_err "called for domain 'other-guest', but the XML on stdin describes 'sev-guest'" "name mismatch"

# Huge: over libvirt's own 10 MiB cap is refused; 3 MiB is fine.
huge() {  # huge FILE BYTES-OF-DESCRIPTION
        { echo "<domain type='kvm'><name>big-guest</name><uuid>d0d1d2d3-e4e5-4f60-8172-8394a5b6c7d8</uuid><description>"
          head -c "$2" /dev/zero | tr '\0' 'x'
          echo "</description></domain>"; } > "$1"
}
huge "$TESTDIR/huge.xml" $((11 * 1024 * 1024))
hook "$TESTDIR/huge.xml" big-guest prepare begin
expect_rc 1 "huge XML"
expect_err "the domain XML on stdin is larger than 10485760 bytes (10 MiB)" "huge XML"
huge "$TESTDIR/large.xml" $((3 * 1024 * 1024))
hook "$TESTDIR/large.xml" big-guest prepare begin
expect_rc 0 "large XML"
expect_log "bad and large XML" "register id=1 uuid=d0d1d2d3-e4e5-4f60-8172-8394a5b6c7d8 name=big-guest cc=CC_TYPE_NONE policy="

# A policy longer than 16 KiB.
{ echo "<domain><name>vm1</name><uuid>2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93</uuid><metadata>"
  echo "<p:policy xmlns:p='http://memconvd.org/schemas/domain/1.0'>"
  head -c 20000 /dev/zero | tr '\0' 'p'
  echo "</p:policy></metadata></domain>"; } > "$TESTDIR/long-policy.xml"
hook "$TESTDIR/long-policy.xml" vm1 prepare begin
expect_rc 1 "long policy"
expect_err "is 20000 bytes long; at most 16384 are allowed" "long policy"

# ---------------------------------------------------------------- daemon refusals
for mode in fail-closed fail-open; do
        conf "timeout-ms = 1000" "on-unavailable = $mode"
        start_fake refuse
        hook "$XML/sev.xml" sev-guest prepare begin
        expect_rc 1 "refused ($mode)"
        expect_err "memconvd refused to register domain 'sev-guest' (2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93): policy: unknown key 'bogus' (policy-refused)." "refused ($mode)"
done

# release of a domain the daemon does not know: done.
start_fake unknown
hook "$XML/tdx.xml" tdx-guest release end
expect_rc 0 "forget unknown"
expect_log "forget unknown" "forget id=1 spec=0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e"

# release while the daemon still sees the VMM attached: retried.
start_fake busy:3
hook "$XML/tdx.xml" tdx-guest release end
expect_rc 0 "forget busy"
expect_log "forget busy" "forget id=1 spec=0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e" \
        "forget id=2 spec=0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e" \
        "forget id=3 spec=0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e" \
        "forget id=4 spec=0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e"
conf "timeout-ms = 400"
start_fake busy:1000
hook "$XML/tdx.xml" tdx-guest release end
expect_rc 1 "forget busy forever"
expect_err "memconvd refused to forget domain 'tdx-guest' (0e7f3c52-9d14-4a8b-b6e2-73c5a1f08d4e): VM is attached (busy)." "forget busy forever"
expect_ms_below 1000 "forget busy forever"

# ---------------------------------------------------------------- daemon unavailable
stop_fake
conf "timeout-ms = 1000"
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 1 "no daemon, fail-closed by default"
expect_err "cannot register domain 'sev-guest' with memconvd: memconvd is not running (nothing listens on $SOCK)" "no daemon"
expect_err "on-unavailable=fail-closed ($CONF): the domain is not started" "no daemon"
hook "$XML/sev.xml" sev-guest release end
expect_rc 1 "no daemon, release, fail-closed"
expect_err "run 'memconvctl forget 2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93' once it is back" "no daemon, release"

conf "timeout-ms = 1000" "on-unavailable = fail-open"
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 0 "no daemon, fail-open"
expect_err "memconvd is not running" "no daemon, fail-open"
expect_err "on-unavailable=fail-open: starting the domain anyway." "no daemon, fail-open"
hook "$XML/sev.xml" sev-guest release end
expect_rc 0 "no daemon, release, fail-open"

# A socket file nobody listens on (a daemon that died).
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1])' "$SOCK" 2>/dev/null
if [ -S "$SOCK" ]; then
        conf "timeout-ms = 1000"
        hook "$XML/plain.xml" plain-guest prepare begin
        expect_rc 1 "stale socket"
        expect_err "memconvd is not running" "stale socket"
        rm -f "$SOCK"
fi

# A daemon that reads the request and never answers: the time limit holds.
for mode in fail-closed fail-open; do
        conf "timeout-ms = 1500" "on-unavailable = $mode"
        start_fake silent
        hook "$XML/sev-snp.xml" snp-guest prepare begin
        expect_rc "$([ $mode = fail-open ] && echo 0 || echo 1)" "silent daemon ($mode)"
        expect_err "memconvd did not answer on $SOCK in time (timeout-ms=1500)" "silent daemon ($mode)"
        expect_ms_below 2000 "silent daemon ($mode)"
        checks=$((checks + 1))
        [ "$MS" -ge 1400 ] || fail "silent daemon ($mode): gave up after $MS ms, before its 1500 ms"
        expect_log "silent daemon ($mode)" \
                "register id=1 uuid=a1b2c3d4-e5f6-4789-9abc-def012345678 name=snp-guest cc=CC_TYPE_SEV_SNP policy=implicit-conversions=allow"
done

# The default limit is 2 s in all.
conf
start_fake silent
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 1 "silent daemon, default timeout"
expect_err "(timeout-ms=2000)" "silent daemon, default timeout"
checks=$((checks + 1))
[ "$MS" -ge 1900 ] && [ "$MS" -lt 2500 ] || fail "silent daemon, default timeout: took $MS ms, expected about 2000"

# A daemon that never accepts: the first connection waits in the backlog,
# the next one's connect() blocks; both end in time.
conf "timeout-ms = 500"
start_fake noaccept
for i in 1 2 3; do
        hook "$XML/sev.xml" sev-guest prepare begin
        expect_rc 1 "daemon never accepts ($i)"
        expect_err "memconvd did not answer on $SOCK in time" "daemon never accepts ($i)"
        expect_ms_below 1200 "daemon never accepts ($i)"
done

# A daemon that hangs up, and one that answers garbage.
conf "timeout-ms = 1000"
start_fake close
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 1 "daemon hangs up"
expect_err "memconvd closed the connection on $SOCK without answering" "daemon hangs up"
start_fake garbage
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 1 "garbage answer"
expect_err "talking to $SOCK failed: Bad message" "garbage answer"
conf "timeout-ms = 1000" "on-unavailable = fail-open"
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 0 "garbage answer, fail-open"
stop_fake

# ---------------------------------------------------------------- configuration
start_fake ok
while IFS='|' read -r line text; do
        printf '# test\n%s\n' "$line" > "$CONF"
        hook "$XML/sev.xml" sev-guest prepare begin
        expect_rc 1 "config '$line'"
        expect_err "memconvd-libvirt-hook: $CONF:2: $text" "config '$line'"
        expect_err "domain 'sev-guest' is not started" "config '$line'"
done <<'EOF'
on-unavailble = fail-open|unknown key "on-unavailble"
on-unavailable = open|on-unavailable must be fail-closed or fail-open, not "open"
timeout-ms = 0|timeout-ms must be a number of milliseconds from 1 to 30000, not "0"
timeout-ms = 2s|timeout-ms must be a number of milliseconds from 1 to 30000, not "2s"
admin-socket = run/admin.sock|admin-socket must be an absolute path
just some words|expected KEY=VALUE
EOF
printf 'timeout-ms=100\ntimeout-ms=200\n' > "$CONF"
hook "$XML/sev.xml" sev-guest prepare begin
expect_rc 1 "config key twice"
expect_err "$CONF:2: timeout-ms is set twice" "config key twice"
expect_log "configuration errors"

# Blanks, comments and CRLF are fine.
printf '  # comment\r\n\r\nadmin-socket=%s\r\n\ttimeout-ms =  800 \r\non-unavailable=fail-closed\r\n' "$SOCK" > "$CONF"
hook "$XML/plain.xml" plain-guest prepare begin
expect_rc 0 "config with blanks and CRLF"

# ---------------------------------------------------------------- usage
hook /dev/null
expect_rc 2 "no arguments"
expect_err "expected DOMAIN OPERATION SUB-OPERATION" "no arguments"
"$HOOK" --help > "$TESTDIR/out" 2>&1
checks=$((checks + 1))
grep -q "^Usage: memconvd-libvirt-hook DOMAIN OPERATION SUB-OPERATION" "$TESTDIR/out" || fail "--help: $(cat "$TESTDIR/out")"

if [ "$failures" -gt 0 ]; then
        echo "hook.sh: $failures of $checks checks failed"
        exit 1
fi
echo "hook.sh: all $checks checks passed"
exit 0
