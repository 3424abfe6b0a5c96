#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""load.py - a bounded load run of memconvd, then proof that nothing was lost or duplicated.

tests/load/run.sh calls this (and tests/integration/load-small.sh, a CI-sized run). It

  1. starts a real memconvd on private sockets in a temporary directory;
  2. starts --vms reference VMMs (tests/vmm/memconv-vmm), each a real KVM VM with --vcpus real
     vCPU threads running the "storm" scenario (random explicit and implicit conversions of 4 KiB
     .. 2 MiB ranges with data checks); they attach, then all start on one SIGUSR1 and convert for
     --seconds of wall time;
  3. measures: conversions committed per second (the daemon's counters over the run), the
     vCPU-visible conversion latency (exit handed to libmemconv until the vCPU may re-enter,
     merged from every VMM's histogram: p50/p99/p99.9/max), the daemon's CPU time (utime+stime,
     /proc/PID/stat) per conversion, and its memory (VmRSS sampled during the run, VmHWM);
  4. proves, with every VMM still attached but idle (--hold), for every VM:
       - exactly once: what each VMM's vCPUs were answered (applied decisions by kind and
         direction, bytes, plain retries, refusals) equals what memconvd counted for the VM;
         no rollback, no abandoned decision, no stray apply, no error; and, per vCPU, the
         sequence of ranges the vCPU applied (grouped by decision) equals the sequence of
         committed records in memconvd's history for that vCPU (the whole sequence when the
         history ring holds it, else the part the ring holds: a suffix); decision ids unique;
       - consistent state: `memconvctl check VM` finds no problem, and the VMM's own view of
         its attributes (--state-out) equals memconvd's map (`memconvctl ranges VM --json`);
     then releases the VMMs (each must pass its own data checks and exit 0), checks each detached
     cleanly, stops the daemon (SIGTERM must give status 0), and scans its log.
  5. prints a table and writes the results as JSON (--output).

Exit status: 0 every check passed, 1 a check failed (each failure printed), 2 usage, 77 the
machine cannot run it (no /dev/kvm, no guest_memfd). Timings are reported, never asserted.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

EXIT_SKIP = 77
PAGE = 4096
KINDS = ("explicit_to_private", "explicit_to_shared", "implicit_to_private", "implicit_to_shared")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Skip(Exception):
    pass


class Failed(Exception):
    pass


def find_binary(top, *candidates):
    for c in candidates:
        p = os.path.join(top, c)
        if os.access(p, os.X_OK):
            return p
    raise Failed("none of %s is built under %s" % (", ".join(candidates), top))


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid):
    """{tid: utime+stime} of every thread of @pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            out[int(tid)] = proc_cpu_seconds_path("/proc/%d/task/%s/stat" % (pid, tid))
        except OSError:
            pass
    return out


def proc_cpu_seconds_path(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


def host_cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def wait_for(cond, deadline_s, what, alive=None):
    """Poll cond() until true; a generous deadline only turns a hang into a failure."""
    end = time.monotonic() + deadline_s
    while True:
        if cond():
            return
        if alive:
            alive()
        if time.monotonic() > end:
            raise Failed("timed out after %.0f s waiting for %s" % (deadline_s, what))
        time.sleep(0.05)


def percentile(buckets, count, maximum, pct):
    """Upper bound of the histogram bucket holding the pct-th percentile, capped at the max."""
    if count == 0:
        return 0
    rank = count * pct / 100.0
    seen = 0
    for lo, hi, n in buckets:
        seen += n
        if seen >= rank:
            return min(hi, maximum)
    return maximum


def coalesce(ranges):
    """[(start, end, attr)] sorted, adjacent ranges of one attribute merged."""
    out = []
    for s, e, a in sorted(ranges):
        if out and out[-1][1] == s and out[-1][2] == a:
            out[-1] = (out[-1][0], e, a)
        else:
            out.append((s, e, a))
    return out


class Run:
    def __init__(self, args):
        self.args = args
        self.top = os.path.abspath(args.top)
        self.memconvd = find_binary(self.top, "memconvd", "daemon/memconvd")
        self.memconvctl = find_binary(self.top, "memconvctl", "daemon/ctl/memconvctl")
        self.vmm = find_binary(self.top, "tests/vmm/memconv-vmm")
        self.dir = tempfile.mkdtemp(prefix="memconv-load.", dir=args.workdir)
        self.sock = os.path.join(self.dir, "vmm.sock")
        self.admin = os.path.join(self.dir, "admin.sock")
        self.daemon_log = os.path.join(self.dir, "daemon.log")
        self.daemon = None
        self.vmms = []  # dicts: name, proc, out, state, stats, applied
        self.failures = []
        self.checks = 0
        self.results = {"command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                        "vms": args.vms, "vcpus_per_vm": args.vcpus, "seconds": args.seconds,
                        "mem_mb_per_vm": args.mem_mb, "lease": args.lease}

    # ---------------------------------------------------------------- checks

    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures.append(what)
            log("FAIL: " + what)
        return ok

    # ---------------------------------------------------------------- processes

    def ctl(self, *argv, json_out=True, ok_codes=(0,)):
        cmd = [self.memconvctl, "--admin-socket", self.admin] + list(argv) + (["--json"] if json_out else [])
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if p.returncode not in ok_codes:
            raise Failed("%s: exit %d: %s" % (" ".join(cmd[3:]), p.returncode, p.stderr.strip() or p.stdout.strip()))
        return (json.loads(p.stdout) if json_out else p.stdout), p.returncode

    def daemon_alive(self):
        if self.daemon.poll() is not None:
            raise Failed("memconvd exited with status %d during the run" % self.daemon.returncode)

    def start_daemon(self):
        conf = os.path.join(self.dir, "memconvd.conf")
        with open(conf, "w") as f:
            # The defaults, made explicit so that the run does not depend on the host's config,
            # and raised where --vms needs it.
            f.write("[Limits]\nVMsPerUID=%d\n" % max(256, self.args.vms))
        os.mkdir(os.path.join(self.dir, "state"))
        cmd = [self.memconvd, "--config", conf, "--socket", self.sock, "--state-dir",
               os.path.join(self.dir, "state"), "--log-target=stderr", "--log-level=" + self.args.log_level]
        if self.args.history_records:
            cmd.append("--history-records=%d" % self.args.history_records)
        cmd += self.args.daemon_arg
        self.results["daemon_command"] = " ".join(cmd)
        self.daemon = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.daemon_log, "w"))
        wait_for(lambda: os.path.exists(self.sock) and os.path.exists(self.admin), 10, "memconvd's sockets",
                 self.daemon_alive)

    def vmm_output(self, v):
        with open(v["out"]) as f:
            return f.read()

    def vmm_alive(self):
        self.daemon_alive()
        for v in self.vmms:
            rc = v["proc"].poll()
            if rc is None or v.get("released"):
                continue
            out = self.vmm_output(v)
            if rc == EXIT_SKIP:
                raise Skip(out.strip().splitlines()[0] if out.strip() else "the reference VMM cannot run here")
            raise Failed("VMM %s exited with status %d before it was released:\n%s" % (v["name"], rc, out[-2000:]))

    def start_vmms(self):
        a = self.args
        for i in range(a.vms):
            name = "load-%03d" % i
            base = os.path.join(self.dir, name)
            v = {"name": name, "out": base + ".out", "state": base + ".state", "stats": base + ".stats.json",
                 "applied": base + ".applied"}
            cmd = [self.vmm, "--socket", self.sock, "--name", name, "--vcpus", str(a.vcpus),
                   "--mem-mb", str(a.mem_mb), "--scenario", "storm", "--seconds", str(a.seconds),
                   "--seed", str(a.seed + i), "--start-signal", "--hold", "--state-out", v["state"],
                   "--stats-out", v["stats"], "--applied-out", v["applied"]]
            if a.lease:
                cmd.append("--lease")
            if i == 0:
                self.results["vmm_command"] = " ".join(cmd)
            v["proc"] = subprocess.Popen(cmd, stdout=open(v["out"], "w"), stderr=subprocess.STDOUT)
            self.vmms.append(v)

    def all_say(self, text):
        return all(text in self.vmm_output(v) for v in self.vmms)

    def signal_vmms(self):
        for v in self.vmms:
            if v["proc"].poll() is None:
                v["proc"].send_signal(signal.SIGUSR1)

    def cleanup(self):
        for v in self.vmms:
            if v["proc"].poll() is None:
                v["proc"].kill()
                v["proc"].wait()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---------------------------------------------------------------- the run

    def sample(self, pid, totals=None, cpu=None):
        """One point of the time series: monotonic ns, committed conversions, daemon CPU s, RSS."""
        t = time.monotonic_ns()
        admin_ms = None
        if totals is None:
            totals, _ = self.daemon_totals()
            admin_ms = (time.monotonic_ns() - t) / 1e6
        return {"t_ns": t, "admin_ms": admin_ms, "conversions": sum(totals[k] for k in KINDS),
                "cpu_s": proc_cpu_seconds(pid) if cpu is None else cpu,
                "rss_kib": proc_memory_kib(pid).get("VmRSS", 0)}

    def daemon_totals(self):
        st, _ = self.ctl("status")
        return st["totals"], st

    def run(self):
        a = self.args
        self.start_daemon()
        pid = self.daemon.pid
        mem0 = proc_memory_kib(pid)
        self.start_vmms()
        log("load: %d VMMs x %d vCPUs starting (%s)" % (a.vms, a.vcpus, self.dir))
        # Ready: attached, and every vCPU has set its slice up (the first touch of guest memory is
        # slow with hundreds of vCPUs on two cores; it is not part of the timed run).
        wait_for(lambda: self.all_say("vmm: ready"), 60 + a.vms * a.vcpus * 1.0, "every VMM to set up",
                 self.vmm_alive)
        st, _ = self.ctl("status")
        self.check(st["vms_attached"] == a.vms, "memconvd has %d VMs attached, expected %d" % (st["vms_attached"], a.vms))

        # The measured window: from one SIGUSR1 to every VMM until every VMM holds.
        tot0, _ = self.daemon_totals()
        cpu0 = proc_cpu_seconds(pid)
        thr0 = thread_cpu_seconds(pid)
        host0 = host_cpu_busy()
        t0 = time.monotonic()
        self.signal_vmms()
        log("load: converting for %d s" % a.seconds)
        rss_peak = 0
        end = t0 + a.seconds * 3 + 120  # a hang becomes a failure, nothing more
        self.series = [self.sample(pid, tot0, cpu0)]
        next_sample = t0 + 1
        while not self.all_say("vmm: holding"):
            self.vmm_alive()
            now = time.monotonic()
            if now >= next_sample:
                self.series.append(self.sample(pid))
                next_sample += 1
            rss_peak = max(rss_peak, self.series[-1]["rss_kib"])
            if now > end:
                raise Failed("timed out waiting for every VMM to finish its storm")
            time.sleep(0.1)
        t1 = time.monotonic()
        cpu1 = proc_cpu_seconds(pid)
        thr1 = thread_cpu_seconds(pid)
        host1 = host_cpu_busy()
        # Which thread does the work: the event loop (the main thread) or the workers
        # (discards, journal).
        self.results["daemon_thread_cpu_seconds"] = {
            ("main" if tid == pid else "thread-%d" % i): round(thr1[tid] - thr0.get(tid, 0), 3)
            for i, tid in enumerate(sorted(thr1))}
        tot1, _ = self.daemon_totals()
        mem1 = proc_memory_kib(pid)
        rss_peak = max(rss_peak, mem1.get("VmRSS", 0))
        log("load: every VMM holds; checking")

        # Discards finish off the vCPUs' path: wait until nothing is in flight anywhere.
        def quiet():
            s, _ = self.ctl("stats")
            return all(vm["in_flight"] == 0 and vm["waiting"] == 0 for vm in s["vms"])
        wait_for(quiet, 30, "memconvd to finish every VM's discards", self.vmm_alive)
        if a.corrupt:
            self.corrupt(a.corrupt)
        stats, _ = self.ctl("stats")
        self.verify(stats)
        self.measure(t0, t1, cpu0, cpu1, tot0, tot1, mem0, mem1, rss_peak, host0, host1)

        # Release: each VMM detaches and must pass its own data checks.
        for v in self.vmms:
            v["released"] = True
        self.signal_vmms()
        for v in self.vmms:
            try:
                rc = v["proc"].wait(60)
            except subprocess.TimeoutExpired:
                raise Failed("VMM %s did not exit after SIGUSR1" % v["name"])
            out = self.vmm_output(v)
            self.check(rc == 0 and "vmm: 1 passed, 0 failed" in out and "PASS storm" in out,
                       "VMM %s: exit %d, storm %s" % (v["name"], rc, "passed" if "PASS storm" in out else
                                                      "FAILED: " + out[-1500:]))
        wait_for(lambda: self.ctl("status")[0]["vms_attached"] == 0, 10, "every VM to detach", self.daemon_alive)
        st, _ = self.ctl("status")
        self.check(st["protocol_errors"] == 0, "memconvd counted %d protocol errors" % st["protocol_errors"])
        self.check(st["peers_refused"] == 0, "memconvd refused %d peers" % st["peers_refused"])
        self.daemon.send_signal(signal.SIGTERM)
        try:
            rc = self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            raise Failed("memconvd did not stop on SIGTERM")
        self.check(rc == 0, "memconvd exited with status %d on SIGTERM" % rc)
        self.scan_log()

    # ---------------------------------------------------------------- proof

    def corrupt(self, what):
        """Self-test of the checker: alter VM 0's side of the record; the run must then fail."""
        v = self.vmms[0]
        if what == "state":  # one page of the VMM's attribute view flipped
            with open(v["state"]) as f:
                lines = f.read().splitlines()
            gpa, size, attr = lines[0].split()
            lines[0:1] = ["%s 0x1000 %s" % (gpa, "shared" if attr == "private" else "private")] + \
                ([] if int(size, 16) == 0x1000 else ["0x%x 0x%x %s" % (int(gpa, 16) + 0x1000, int(size, 16) - 0x1000, attr)])
            with open(v["state"], "w") as f:
                f.write("\n".join(lines) + "\n")
        elif what == "applied":  # one decision delivered twice to vCPU 0 (--lease: one never reported)
            with open(v["applied"]) as f:
                lines = f.read().splitlines()
            last = [l for l in lines if l.startswith("0 ")][-1]
            extra = last
            if self.args.lease:
                # Under the lease a second apply of the same range changes no page, which the
                # proof rightly accepts: record one that memconvd never heard of instead.
                f = last.split()
                f[4] = "shared" if f[4] == "private" else "private"
                extra = " ".join(f)
            lines.insert(lines.index(last) + 1, extra)
            with open(v["applied"], "w") as f:
                f.write("\n".join(lines) + "\n")
        elif what == "stats":  # one applied decision more than the daemon committed
            with open(v["stats"]) as f:
                st = json.load(f)
            st["vcpu"][0]["applied"] += 1
            st["vcpu"][0]["implicit_to_private"] += 1
            with open(v["stats"], "w") as f:
                json.dump(st, f)
        log("load: --corrupt %s: altered %s's record; this run must fail" % (what, v["name"]))

    def verify(self, stats):
        by_name = {vm["name"]: vm for vm in stats["vms"]}
        seen_decisions = {}
        history_complete = 0
        compared = 0
        for v in self.vmms:
            name = v["name"]
            vm = by_name.get(name)
            if not self.check(vm is not None, "memconvd does not know VM %s" % name):
                continue
            self.check(vm["state"] == "attached", "%s is %s while its VMM holds" % (name, vm["state"]))
            with open(v["stats"]) as f:
                vs = json.load(f)
            v["vmm_stats"] = vs
            ds = vm["stats"]
            cpus = vs["vcpu"]

            # Nothing went wrong on either side.
            self.check(vs["stray_applies"] == 0, "%s: %d apply callbacks outside a vCPU's exit" % (name, vs["stray_applies"]))
            for c in cpus:
                self.check(c["errors"] == 0, "%s vCPU %d: %d failed requests" % (name, c["idx"], c["errors"]))
                self.check(c["applied_log_complete"], "%s vCPU %d: applied log incomplete (out of memory)" % (name, c["idx"]))
            for k in ("rolled_back", "abandoned", "discard_errors", "journal_errors", "reapplied", "not_handled"):
                self.check(ds.get(k, 0) == 0, "%s: memconvd counted %s = %d" % (name, k, ds.get(k, 0)))

            # Exactly once, counted: the VMM's answers equal the daemon's records.
            def vsum(key):
                return sum(c[key] for c in cpus)
            refused = ds["refused"] + ds.get("policy_refused", 0)
            self.check(vsum("refused") == refused, "%s: VMM saw %d refusals, memconvd %d" % (name, vsum("refused"), refused))
            committed = sum(ds[k] for k in KINDS)
            answers = committed + ds["spurious"] + ds["mmio_noop"] + refused + ds["not_handled"] + ds["rolled_back"]
            self.check(vsum("requests") == answers,
                       "%s: VMM sent %d requests, memconvd answered %d" % (name, vsum("requests"), answers))
            if not self.args.lease:
                for k in KINDS + ("bytes_to_private", "bytes_to_shared"):
                    self.check(vsum(k) == ds[k], "%s: %s: VMM applied %d, memconvd committed %d" % (name, k, vsum(k), ds[k]))
                self.check(vsum("retry") == ds["spurious"] + ds["mmio_noop"],
                           "%s: VMM got %d plain retries, memconvd answered %d spurious + %d MMIO no-op"
                           % (name, vsum("retry"), ds["spurious"], ds["mmio_noop"]))
                self.check(vsum("applied") == committed, "%s: VMM applied %d decisions, memconvd committed %d"
                           % (name, vsum("applied"), committed))
            else:
                # Under the lease the VMM applies a whole request, pages already in that state
                # included: memconvd records the pages that change, and counts a report that
                # changes none as spurious. What changed is checked page by page below.
                self.check(ds.get("leased", 0) > 0, "%s: no conversion went under the lease" % name)
                self.check(vsum("applied") + vsum("retry") == committed + ds["spurious"] + ds["mmio_noop"],
                           "%s: VMM applied %d and retried %d, memconvd committed %d, %d spurious, %d MMIO no-op"
                           % (name, vsum("applied"), vsum("retry"), committed, ds["spurious"], ds["mmio_noop"]))
                for k in KINDS:
                    self.check(vsum(k) >= ds[k], "%s: %s: VMM applied %d, memconvd committed more (%d)"
                               % (name, k, vsum(k), ds[k]))

            # Exactly once, per vCPU and in order: the VMM's applied ranges against the history.
            complete, n = self.verify_history(name, v, vs, seen_decisions, ds)
            history_complete += complete
            compared += n

            # Consistent state while attached and idle.
            _, rc = self.ctl("check", name, json_out=False, ok_codes=(0, 1))
            self.check(rc == 0, "%s: memconvctl check found problems" % name)
            self.verify_ranges(name, v, vs)
        self.results["history_records_compared"] = compared
        self.results["vms_with_complete_history"] = history_complete
        if self.args.require_full_history:
            self.check(history_complete == len(self.vmms), "the history ring of %d VMs did not hold the whole run "
                       "(--history-records)" % (len(self.vmms) - history_complete))

    @staticmethod
    def changed_runs(vmm_seq):
        """The VMM's applied ranges per vCPU, replayed page by page from all-shared (the storm's
        vCPUs each convert their own slice): for each applied range, the maximal runs of pages it
        really changed, in address order: what memconvd records, one history record per run."""
        private = set()
        out = {}
        for cpu, seq in vmm_seq.items():
            runs = out.setdefault(cpu, [])
            for dec, gpa, size, to, kind in seq:
                want = to == "private"
                start = None
                for p in range(gpa // PAGE, (gpa + size) // PAGE + 1):
                    changes = p < (gpa + size) // PAGE and (p in private) != want
                    if changes and start is None:
                        start = p
                    elif not changes and start is not None:
                        runs.append((dec, start * PAGE, (p - start) * PAGE, to, kind))
                        start = None
                    if changes:
                        (private.add if want else private.discard)(p)
        return out

    def verify_history(self, name, v, vs, seen_decisions, ds):
        hist, _ = self.ctl("history", name)
        recs = hist["records"]
        seqs = [r["seq"] for r in recs]
        if recs:
            self.check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "%s: history seqs are not contiguous" % name)
        # Every record is a committed change here (no refusal, no rollback): the last seq counts them all.
        self.check(all(r["result"] == "committed" for r in recs), "%s: history has records that are not committed" % name)
        complete = bool(not recs or seqs[0] == 1)

        vmm_seq = {c["idx"]: [] for c in vs["vcpu"]}
        with open(v["applied"]) as f:
            for line in f:
                cpu, dec, gpa, size, to, kind = line.split()
                vmm_seq[int(cpu)].append((int(dec), int(gpa, 16), int(size, 16), to, kind))
        last = seqs[-1] if seqs else 0
        if self.args.lease:
            # Compare what really changed: replayed from the VMM's record, against the history.
            vmm_seq = self.changed_runs(vmm_seq)
            total = sum(len(s) for s in vmm_seq.values())
            for to in ("private", "shared"):
                b = sum(r[2] for s in vmm_seq.values() for r in s if r[3] == to)
                self.check(b == ds["bytes_to_" + to], "%s: the VMM changed %d bytes to %s, memconvd recorded %d"
                           % (name, b, to, ds["bytes_to_" + to]))
            self.check(last == total, "%s: memconvd recorded %d changed ranges, the VMM's record changes %d"
                       % (name, last, total))
        else:
            total_ranges = sum(c["applied_ranges"] for c in vs["vcpu"])
            self.check(last == total_ranges, "%s: memconvd recorded %d changed ranges, the VMM applied %d"
                       % (name, last, total_ranges))
        d_seq = {}
        twice = []
        for r in recs:
            d_seq.setdefault(r["vcpu"], []).append(r)
            if r["decision_id"] == 0:
                continue  # applied under the lease: no decision
            # A decision id is the daemon's, across VMs: one decision, one VM, one vCPU.
            prev = seen_decisions.setdefault(r["decision_id"], (name, r["vcpu"]))
            if prev != (name, r["vcpu"]):
                twice.append("decision %d: %s vCPU %d and %s vCPU %d" % (r["decision_id"], prev[0], prev[1], name,
                                                                          r["vcpu"]))
        self.check(not twice, "%s: decisions that reached two vCPUs: %s" % (name, twice[:5]))
        self.check(set(d_seq) <= set(vmm_seq), "%s: history names vCPUs %s the VMM does not have" % (name, sorted(d_seq)))
        for cpu, mine in vmm_seq.items():
            theirs = d_seq.get(cpu, [])
            what = "%s vCPU %d" % (name, cpu)
            if complete:
                if not self.check(len(theirs) == len(mine), "%s: history has %d ranges, the vCPU applied %d"
                                  % (what, len(theirs), len(mine))):
                    continue
            elif not self.check(len(theirs) <= len(mine), "%s: history has %d ranges, the vCPU applied only %d"
                                % (what, len(theirs), len(mine))):
                continue
            tail = mine[len(mine) - len(theirs):]
            dec_map, back = {}, {}
            for i, (r, m) in enumerate(zip(theirs, tail)):
                kind = "implicit" if r["kind"] == "implicit" else "explicit"
                if (r["gpa"], r["size"], r["to"], kind) != m[1:]:
                    self.check(False, "%s: change %d of the history (seq %d: 0x%x+0x%x %s %s) is not what the vCPU "
                               "applied (0x%x+0x%x %s %s)" % (what, i, r["seq"], r["gpa"], r["size"], r["to"], kind,
                                                             m[1], m[2], m[3], m[4]))
                    break
                # One decision = one vCPU answer: the grouping must agree both ways (a leased
                # conversion has none; its answer is its own).
                if r["decision_id"] and (dec_map.setdefault(r["decision_id"], m[0]) != m[0] or
                                         back.setdefault(m[0], r["decision_id"]) != r["decision_id"]):
                    self.check(False, "%s: decision %d's ranges and the vCPU's answer %d do not match up"
                               % (what, r["decision_id"], m[0]))
                    break
            else:
                self.checks += 1
        return complete, len(recs)

    def verify_ranges(self, name, v, vs):
        ranges, _ = self.ctl("ranges", name)
        theirs = coalesce((r["gpa"], r["gpa"] + r["size"], r["attribute"]) for r in ranges["ranges"])
        mine = []
        with open(v["state"]) as f:
            for line in f:
                gpa, size, attr = line.split()
                mine.append((int(gpa, 16), int(gpa, 16) + int(size, 16), attr))
        mine = coalesce(mine)
        self.check(mine and mine[0][0] == 0 and mine[-1][1] == vs["ram_bytes"],
                   "%s: the VMM's state file does not cover its RAM" % name)
        if theirs != mine:
            diff = [r for r in mine if r not in theirs][:3]
            self.check(False, "%s: memconvd's map (%d ranges) differs from the VMM's attributes (%d ranges), e.g. %s"
                       % (name, len(theirs), len(mine), diff))
        else:
            self.checks += 1
        v["ranges"] = len(theirs)

    def scan_log(self):
        by_level = {}
        notable = []
        attached = detached = 0
        with open(self.daemon_log, errors="replace") as f:
            for line in f:
                lvl = int(line[1]) if line.startswith("<") and line[1:2].isdigit() else 6
                by_level[lvl] = by_level.get(lvl, 0) + 1
                if lvl <= 4 and len(notable) < 20:
                    notable.append(line.rstrip()[:300])
                if "attached by pid" in line:
                    attached += 1
                if "detached: the VMM detached" in line:
                    detached += 1
        names = {0: "emerg", 1: "alert", 2: "crit", 3: "err", 4: "warning", 5: "notice", 6: "info", 7: "debug"}
        self.results["daemon_log_lines"] = {names[k]: n for k, n in sorted(by_level.items())}
        self.results["daemon_log_warnings"] = notable
        self.check(attached == len(self.vmms), "%d attaches in the log, expected %d" % (attached, len(self.vmms)))
        self.check(detached == len(self.vmms), "%d clean detaches in the log, expected %d" % (detached, len(self.vmms)))
        errors = sum(n for k, n in by_level.items() if k <= 3)
        self.check(errors == 0, "memconvd logged %d errors: %s" % (errors, notable[:5]))
        if by_level.get(4):
            log("load: memconvd logged %d warnings, e.g. %s" % (by_level[4], notable[:3]))

    # ---------------------------------------------------------------- figures

    def measure(self, t0, t1, cpu0, cpu1, tot0, tot1, mem0, mem1, rss_peak, host0, host1):
        wall = t1 - t0
        committed = sum(tot1[k] - tot0[k] for k in KINDS)
        requests = committed + sum(tot1[k] - tot0[k] for k in ("spurious", "mmio_noop", "refused", "not_handled"))
        byts = (tot1["bytes_to_private"] - tot0["bytes_to_private"]) + (tot1["bytes_to_shared"] - tot0["bytes_to_shared"])
        cpu = cpu1 - cpu0
        buckets, count, total, mx = {}, 0, 0, 0
        starts, ends, storm_ends = [], [], []
        for v in self.vmms:
            lat = v["vmm_stats"]["latency_ns"]
            for lo, hi, n in lat["buckets"]:
                buckets[(lo, hi)] = buckets.get((lo, hi), 0) + n
            count += lat["count"]
            total += lat["sum"]
            mx = max(mx, lat["max"])
            starts.append(v["vmm_stats"]["run_start_ns"])
            ends.append(v["vmm_stats"]["run_end_ns"])
            storm_ends.append(v["vmm_stats"]["storm_end_ns"])
        bl = sorted((lo, hi, n) for (lo, hi), n in buckets.items())
        # Steady state: the samples taken while every VMM was in its timed part.
        lo_t, hi_t = max(starts), min(storm_ends)
        inside = [p for p in self.series if lo_t <= p["t_ns"] <= hi_t]
        steady = None
        if len(inside) >= 2:
            a_, b_ = inside[0], inside[-1]
            dt = (b_["t_ns"] - a_["t_ns"]) / 1e9
            dc = b_["conversions"] - a_["conversions"]
            steady = {"seconds": round(dt, 2), "conversions": dc, "conversions_per_second": round(dc / dt, 1),
                      "daemon_cpu_percent_of_one_core": round(100 * (b_["cpu_s"] - a_["cpu_s"]) / dt, 1),
                      "daemon_cpu_usec_per_conversion": round((b_["cpu_s"] - a_["cpu_s"]) * 1e6 / dc, 2) if dc else None}
        # How long `memconvctl status` took to answer while the VMMs converted (spawn included).
        admin = sorted(p["admin_ms"] for p in inside if p.get("admin_ms") is not None)
        hb, ht = host1[0] - host0[0], host1[1] - host0[1]
        dl = tot1.get("decision_latency", {})
        # The timed part: from the first VMM's start line to the last vCPU's last storm iteration.
        # No conversion happens outside it (set-up is before the start sample, the final checks
        # after it convert nothing), so the daemon's counter delta belongs to it.
        timed = (max(storm_ends) - min(starts)) / 1e9 if starts else wall
        self.results.update({
            "wall_seconds": round(wall, 3),
            "timed_seconds": round(timed, 3),
            "vmm_run_spread_seconds": round((max(starts) - min(starts)) / 1e9, 3) if starts else 0,
            "conversions": committed,
            "conversions_per_second": round(committed / timed, 1),
            "requests": requests,
            "requests_per_second": round(requests / timed, 1),
            "bytes_converted": byts,
            "latency_usec": {
                "samples": count,
                "mean": round(total / count / 1000, 1) if count else 0,
                "p50": round(percentile(bl, count, mx, 50) / 1000, 1),
                "p99": round(percentile(bl, count, mx, 99) / 1000, 1),
                "p99.9": round(percentile(bl, count, mx, 99.9) / 1000, 1),
                "max": round(mx / 1000, 1),
                "resolution": "upper bound of a log-linear bucket (16 per power of two, within 6.25%)",
            },
            "daemon_decision_latency_usec": {"p50": dl.get("p50_usec"), "p99": dl.get("p99_usec"),
                                             "max": dl.get("max_usec"),
                                             "note": "whole daemon lifetime, power-of-two buckets"},
            "daemon_cpu_seconds": round(cpu, 3),
            "daemon_cpu_percent_of_one_core": round(100 * cpu / timed, 1),
            "daemon_cpu_usec_per_conversion": round(cpu * 1e6 / committed, 2) if committed else None,
            "daemon_cpu_usec_per_request": round(cpu * 1e6 / requests, 2) if requests else None,
            "host_cpu_busy_percent": round(100 * hb / ht, 1) if ht else None,
            "daemon_rss_kib": {"before": mem0.get("VmRSS"), "peak_sampled": rss_peak, "end": mem1.get("VmRSS"),
                               "hwm": mem1.get("VmHWM")},
            "daemon_threads": mem1.get("Threads"),
            "steady_state": steady,
            "admin_status_msec": {"samples": len(admin),
                                  "p50": round(admin[len(admin) // 2], 1) if admin else None,
                                  "max": round(admin[-1], 1) if admin else None},
            "series": [{"t": round((p["t_ns"] - self.series[0]["t_ns"]) / 1e9, 2), "conversions": p["conversions"],
                        "daemon_cpu_s": round(p["cpu_s"], 3), "daemon_rss_kib": p["rss_kib"]} for p in self.series],
        })

    def report(self):
        r = self.results
        lines = [
            ("VMs x vCPUs", "%d x %d (%d vCPU threads, %d MiB RAM each)" % (r["vms"], r["vcpus_per_vm"],
                                                                           r["vms"] * r["vcpus_per_vm"], r["mem_mb_per_vm"])),
        ]
        if "wall_seconds" in r:
            lat = r["latency_usec"]
            rss = r["daemon_rss_kib"]
            lines += [
                ("timed part", "%.1f s (storm %d s per VMM, starts spread over %.2f s; %.1f s until all held)"
                 % (r["timed_seconds"], r["seconds"], r["vmm_run_spread_seconds"], r["wall_seconds"])),
                ("conversions committed", "%d (%.1f MiB)" % (r["conversions"], r["bytes_converted"] / 2**20)),
                ("conversions/s", "%.0f over the timed part; %s" % (r["conversions_per_second"],
                 "%.0f in steady state (%.0f s while every VMM converted; daemon %.1f%% of a core, %.1f us/conversion)"
                 % (r["steady_state"]["conversions_per_second"], r["steady_state"]["seconds"],
                    r["steady_state"]["daemon_cpu_percent_of_one_core"],
                    r["steady_state"]["daemon_cpu_usec_per_conversion"] or 0)
                 if r["steady_state"] else "no steady-state window (run too short)")),
                ("requests/s", "%.0f (conversions + spurious/refused answers)" % r["requests_per_second"]),
                ("vCPU latency p50", "%.1f us" % lat["p50"]),
                ("vCPU latency p99", "%.1f us" % lat["p99"]),
                ("vCPU latency p99.9/max", "%.1f / %.1f us (mean %.1f, %d samples)"
                 % (lat["p99.9"], lat["max"], lat["mean"], lat["samples"])),
                ("daemon decision p50/p99", "%s / %s us (in-daemon, power-of-two buckets)"
                 % (r["daemon_decision_latency_usec"]["p50"], r["daemon_decision_latency_usec"]["p99"])),
                ("daemon CPU", "%.2f s = %.1f%% of one core; %.1f us per conversion"
                 % (r["daemon_cpu_seconds"], r["daemon_cpu_percent_of_one_core"],
                    r["daemon_cpu_usec_per_conversion"] or 0)),
                ("daemon CPU by thread", ", ".join("%s %.2f s" % kv for kv in r.get("daemon_thread_cpu_seconds", {}).items())),
                ("admin answer p50/max", "%s / %s ms (`memconvctl status`, spawn included, %d samples while "
                 "every VMM converted)" % (r["admin_status_msec"]["p50"], r["admin_status_msec"]["max"],
                                          r["admin_status_msec"]["samples"])),
                ("host CPU busy", "%s%%" % r["host_cpu_busy_percent"]),
                ("daemon RSS", "%d KiB before, %d KiB peak sampled, %d KiB at end; VmHWM %d KiB"
                 % (rss["before"], rss["peak_sampled"], rss["end"], rss["hwm"])),
            ]
        if "history_records_compared" in r:
            lines.append(("history compared", "%d records; %d of %d VMs' histories complete"
                          % (r["history_records_compared"], r["vms_with_complete_history"], r["vms"])))
        if "daemon_log_lines" in r:
            lines.append(("daemon log", ", ".join("%s %d" % kv for kv in r["daemon_log_lines"].items())))
        lines.append(("checks", "%d run, %d failed" % (self.checks, len(self.failures))))
        w = max(len(k) for k, _ in lines)
        print("memconvd load run")
        for k, val in lines:
            print("  %-*s  %s" % (w, k, val))
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description="A bounded load run of memconvd with proof of consistency.")
    p.add_argument("--top", default=os.environ.get("top_builddir", "."), help="the build tree (default .)")
    p.add_argument("--vms", type=int, default=64)
    p.add_argument("--vcpus", type=int, default=4, help="vCPUs per VM (default 4)")
    p.add_argument("--seconds", type=int, default=30, help="storm wall time (default 30)")
    p.add_argument("--mem-mb", type=int, default=0, help="RAM per VM (default 4 per vCPU, at least 8)")
    p.add_argument("--seed", type=int, default=1, help="VM i uses seed + i")
    p.add_argument("--history-records", type=int, default=0,
                   help="memconvd --history-records (default: memconvd's); the exact per-vCPU comparison "
                        "covers what the ring holds")
    p.add_argument("--require-full-history", action="store_true",
                   help="fail unless every VM's history holds the whole run")
    p.add_argument("--log-level", default="info", help="memconvd --log-level (default info)")
    p.add_argument("--daemon-arg", action="append", default=[], help="extra memconvd option (repeatable)")
    p.add_argument("--lease", action="store_true",
                   help="the VMMs convert under a policy lease (memconv-vmm --lease): libmemconv applies "
                        "and reports afterwards; the proof then compares pages changed, not decisions")
    p.add_argument("--output", default=None, help="results JSON (default build/load-results.json)")
    p.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"), help="where the temporary directory goes")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (daemon log, VMM files)")
    p.add_argument("--corrupt", choices=("state", "applied", "stats"),
                   help="self-test: alter VM 0's state file, applied log or counters before the proof; "
                        "the run must then fail")
    a = p.parse_args()
    if a.vms < 1 or a.vcpus < 1 or a.vcpus > 64 or a.seconds < 1:
        p.error("--vms, --vcpus (1..64) and --seconds must be positive")
    if not a.mem_mb:
        a.mem_mb = max(8, 4 * a.vcpus)
    if a.output is None:
        a.output = os.path.join(a.top, "build", "load-results.json")
    if not (os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)):
        print("SKIP: /dev/kvm not available")
        return EXIT_SKIP

    try:
        run = Run(a)
    except Failed as e:
        print("FAIL: %s" % e)
        return 1
    rc = 0
    try:
        run.run()
    except Skip as e:
        print("SKIP: %s" % e)
        rc = EXIT_SKIP
    except (Failed, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        run.failures.append("%s: %s" % (type(e).__name__, e))
        log("FAIL: %s" % e)
        a.keep = True
    finally:
        if run.failures:
            a.keep = True
        run.cleanup()
    if rc == EXIT_SKIP:
        return rc
    run.results["checks"] = run.checks
    run.results["failures"] = run.failures
    run.results["passed"] = not run.failures
    run.report()
    if a.keep:
        print("  files kept in %s" % run.dir)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(run.results, f, indent=2)
        f.write("\n")
    print("results: %s" % a.output)
    if run.failures:
        print("FAIL: %d check(s) failed" % len(run.failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
