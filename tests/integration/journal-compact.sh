#!/bin/bash
# A long journal of a fragmented VM: 500,000 change records over a 1 TiB
# guest, leaving about 110,000 private ranges (written by tests/bench/
# gen-journal with the daemon's own encoder, which also says what the map
# must be). memconvd compacts it at start-up: the snapshot does not fit one
# journal record (1 MiB), so it spans several, and the next start replays a
# few records instead of half a million, into exactly the same map. A file
# damaged inside its snapshot is reported as an incomplete snapshot, loudly.
. "${top_srcdir:-.}/tests/integration/lib.sh"
GEN=$top_builddir/tests/bench/gen-journal
CTL=$top_builddir/memconvctl
[ -x "$GEN" ] || fail "tests/bench/gen-journal was not built"
command -v python3 > /dev/null || skip "python3 is needed to compare the maps"
T=$(mktemp -d "${TMPDIR:-/tmp}/memconv-compact.XXXXXX")
trap 'stop_daemon_quiet; rm -rf "$T"' EXIT
mkdir "$T/state"
"$GEN" --state-dir "$T/state" --records 500000 --expect "$T/expect" > "$T/gen.json" || fail "gen-journal failed"
want=$(wc -l < "$T/expect")
full=$(stat -c %s "$T/state/vm-1.journal")
[ "$want" -gt 65536 ] || fail "only $want private ranges: the snapshot would fit one record"
echo "generated: $full bytes, $want private ranges"

# same_map: memconvd's map of the VM equals what the generator wrote
same_map() {
        "$CTL" --admin-socket "$T/admin.sock" --json ranges bench-restart --private > "$T/ranges.json" ||
                fail "memconvctl ranges failed"
        python3 - "$T/ranges.json" "$T/expect" <<'PY' || fail "the restored map differs from the generator's"
import json, sys
got = [(r["gpa"], r["size"]) for r in json.load(open(sys.argv[1]))["ranges"] if r["attribute"] == "private"]
want = [tuple(int(v) for v in l.split()) for l in open(sys.argv[2])]
print("map: %d private ranges restored, %d expected" % (len(got), len(want)))
sys.exit(got != want)
PY
}
up() {
        start_daemon --state-dir "$T/state" --admin-socket "$T/admin.sock" "$@"
        trap 'stop_daemon_quiet; rm -rf "$T"' EXIT
        for _ in $(seq 1000); do "$CTL" --admin-socket "$T/admin.sock" status > /dev/null 2>&1 && return; sleep 0.01; done
        fail "memconvd did not answer"
}

# 1. The first start replays everything and compacts the file on the journal thread.
up
log_has "Journal vm-1.journal: 500003 records since its last snapshot; compacting it" || fail "no compaction at start-up"
same_map
for _ in $(seq 1000); do
        [ "$(stat -c %s "$T/state/vm-1.journal")" -lt $(( full / 5 )) ] && break
        sleep 0.01
done
small=$(stat -c %s "$T/state/vm-1.journal")
[ "$small" -lt $(( full / 5 )) ] || fail "the journal was not compacted ($small bytes)"
stop_daemon

# 2. The next start replays the snapshot: a few records, the same map.
up
records=$(sed -n 's/^.*restored from vm-1.journal: \([0-9]*\) records.*$/\1/p' "$DAEMON_LOG")
echo "compacted: $small bytes; the next start replayed $records records"
[ -n "$records" ] && [ "$records" -ge 2 ] && [ "$records" -le 8 ] ||
        fail "expected a snapshot of several records, replayed '$records'"
same_map
! log_has "snapshot is incomplete" || fail "a complete snapshot was reported incomplete"
stop_daemon

# 3. Damage inside the snapshot (its file cut in the middle): reported, not silent.
truncate -s $(( small / 2 )) "$T/state/vm-1.journal"
up
log_has "Journal vm-1.journal: its snapshot is incomplete" || fail "a cut snapshot was not reported"
log_has "Journal vm-1.journal:" "the tail is cut off" || fail "the damaged tail was not reported"
stop_daemon
echo "PASS"
