#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench.py - run the memconvd benchmark suite and report it (tests/bench/run.sh calls this).

Everything is measured in this one run, on this machine, so every ratio compares numbers taken
minutes apart under the same load:

  floor       SOCK_SEQPACKET ping-pong between two processes (same core, cross core, free),
              sleeping and polling before it sleeps (".polled"), and the real KVM_EXIT_IO round
              trip of a two-instruction guest (memconv-bench);
  conversion  the same guests converting in the VMM as QEMU does ("inline", the baseline) and
              through a real memconvd + libmemconv, asking it for each conversion ("memconvd")
              and under a policy lease ("memconvd-lease": libmemconv applies at once and reports
              after; memconvd still records and discards), for 4 KiB / 64 KiB / 2 MiB, 1 and 2
              vCPUs, 1 and 16 VMs, explicit (MAP_GPA_RANGE) and implicit (memory fault), and the
              daemon placed on the vCPU's core or the other one; for 4 KiB with one VM and one
              vCPU also with polling off ("memconvd-nopoll") and without libmemconv's request
              ring ("memconvd-noring"), for comparison;
  range map   lib/rangemap at 10^3..10^6 fragmented ranges against a per-page bitmap;
  journal     conversions/s and latency with the durable journal against --journal=no, when the
              daemon has a journal (else a "not yet measurable" row, never an invented number);
  restart     time from exec to READY=1 (sd_notify) of a memconvd whose state directory holds one VM
              journal of 10^4, 10^5 and 10^6 change records (tests/bench/gen-journal), its RSS
              after the load, and the restored state checked against what the generator expects.

Each conversion configuration runs RUNS times, inline, memconvd and memconvd-lease alternating, each daemon run
on a fresh daemon on a private socket. A row's median is the median of the runs' medians, its p99
the median of the runs' p99s. Rows: name, median, p99, unit, baseline, ratio, target, met.
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

KIB = 1024
MIB = 1024 * 1024
SIZES = {4 * KIB: "4k", 64 * KIB: "64k", 2 * MIB: "2m"}
NOT_MEASURABLE = "not yet measurable: no journal"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# The scheduling policy memconvd runs with: "other" as an ordinary process (the default, and
# the shipped service unit's), "batch" as with CPUSchedulingPolicy=batch (memconvd(8) SCHEDULING).
DAEMON_SCHED = "other"


def sched_prefix():
    return ["chrt", "--batch", "0"] if DAEMON_SCHED == "batch" else []


class Daemon:
    """A memconvd on a private socket in a temporary directory, started fresh per run."""

    def __init__(self, binary, workdir, placement, extra=()):
        self.dir = tempfile.mkdtemp(prefix="memconv-bench.", dir=workdir)
        self.sock = os.path.join(self.dir, "vmm.sock")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w")
        cmd = sched_prefix() + [binary, "--socket", self.sock, "--log-target=stderr"]
        if daemon_supports(binary, "--state-dir"):
            os.mkdir(os.path.join(self.dir, "state"))
            cmd.append("--state-dir=" + os.path.join(self.dir, "state"))
        self.proc = subprocess.Popen(cmd + list(extra), stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(500):
            if os.path.exists(self.sock):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("memconvd exited during startup, see " + self.log.name)
            time.sleep(0.01)
        else:
            raise RuntimeError("memconvd did not create its socket")
        cpu = {"same": "0", "cross": "1"}.get(placement)
        if cpu is not None:
            subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(self.proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1])
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        if rc != 0:
            raise RuntimeError(f"memconvd exited with {rc}, see {self.log.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


_help_cache = {}


def daemon_supports(binary, option):
    """Whether memconvd --help lists @option (the suite runs against older and newer daemons)."""
    if binary not in _help_cache:
        _help_cache[binary] = subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True).stdout
    return option in _help_cache[binary]


def run_lines(cmd):
    """Run a benchmark program; return its metric lines as dicts."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode == 77:
        raise SystemExit("SKIP: " + " ".join(cmd) + ": /dev/kvm or guest_memfd not usable here\n"
                         + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(" ".join(cmd) + f" failed ({p.returncode}):\n" + p.stderr)
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


RESTART_TARGET_S = 1.0
RESTART_DEFAULT_COMPACT = 100000  # memconvd's default --journal-compact (DEFAULT_JOURNAL_COMPACT)
READY_DEADLINE_S = 120  # turns a hang into a failure; never a measurement limit


def quantile(values, q):
    """Nearest-rank quantile (as bench-util.h's bench_quantile())."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[min(len(v), max(1, math.ceil(q * len(v)))) - 1]


class ReadyDaemon:
    """A memconvd started on @state_dir, timed from exec to its sd_notify("READY=1").

    READY=1 comes once persist_load() has replayed every journal (daemon/main.c), so this is the
    restart time a service manager (Type=notify) sees. The notification socket is ours: an
    AF_UNIX datagram socket in a private directory, passed as NOTIFY_SOCKET.
    """

    def __init__(self, binary, state_dir, workdir, extra=()):
        self.dir = tempfile.mkdtemp(prefix="memconv-restart.", dir=workdir)
        self.sock = os.path.join(self.dir, "vmm.sock")
        self.admin = os.path.join(self.dir, "admin.sock")
        notify_path = os.path.join(self.dir, "notify")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            ns.bind(notify_path)
            env = dict(os.environ, NOTIFY_SOCKET=notify_path)
            cmd = sched_prefix() + [binary, "--socket", self.sock, "--admin-socket", self.admin,
                                    "--state-dir=" + state_dir, "--log-target=stderr"] + list(extra)
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
            while True:
                left = t0 + READY_DEADLINE_S - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError(f"memconvd sent no READY=1 in {READY_DEADLINE_S} s, see {self.log.name}")
                ns.settimeout(min(left, 0.2))
                try:
                    msg = ns.recv(4096)
                except socket.timeout:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"memconvd exited ({self.proc.returncode}) before READY=1, "
                                           f"see {self.log.name}")
                    continue
                if b"READY=1" in msg.split(b"\n"):
                    self.ready_s = time.monotonic() - t0
                    break
        finally:
            ns.close()
        self.mem = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "VmHWM"):
                    self.mem[key] = int(line.split()[1])
        self.load_ms = None
        self.log.flush()
        with open(self.log.name) as f:
            for line in f:  # "Restored 1 VM(s) from DIR in N ms": persist_load() alone
                if "Restored " in line and line.rstrip().endswith(" ms"):
                    self.load_ms = int(line.split()[-2])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        if rc != 0:
            raise RuntimeError(f"memconvd exited with {rc}, see {self.log.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


class Suite:
    def __init__(self, args):
        self.a = args
        # A snapshot of the binaries: the build tree may be rebuilt while the suite runs.
        self.snap = tempfile.mkdtemp(prefix="memconv-bench-bin.", dir=args.workdir)
        for src in ("tests/bench/memconv-bench", "tests/bench/bench-rangemap", "memconvd",
                    ".libs/libmemconv.so.0", "memconvctl", "tests/bench/gen-journal"):
            path = os.path.realpath(os.path.join(args.top, src))
            if src in ("memconvctl", "tests/bench/gen-journal") and not os.path.exists(path):
                continue  # only the restart section needs them; it says so if they are missing
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":  # a libtool wrapper script: take the real program
                    d, b = os.path.split(path)
                    path = os.path.join(d, ".libs", b)
            shutil.copy(path, self.snap)
        os.environ["LD_LIBRARY_PATH"] = self.snap + ":" + os.environ.get("LD_LIBRARY_PATH", "")
        self.bench = os.path.join(self.snap, "memconv-bench")
        self.rangemap = os.path.join(self.snap, "bench-rangemap")
        self.daemon = os.path.join(self.snap, "memconvd")
        self.ctl = os.path.join(self.snap, "memconvctl")
        self.gen_journal = os.path.join(self.snap, "gen-journal")
        self.rows = []
        self.raw = []
        self.gen_cache = {}  # restart: state directory -> what gen-journal wrote there
        # Lease mode needs a daemon that grants leases (memconvd 0.2).
        self.a.lease = not args.no_lease and daemon_supports(self.daemon, "--leases")

    def row(self, name, median, p99, unit, baseline=None, ratio=None, target=None, met=None, **extra):
        r = {"name": name, "median": median, "p99": p99, "unit": unit, "baseline": baseline,
             "ratio": ratio, "target": target, "met": met}
        r.update(extra)
        self.rows.append(r)
        return r

    def compare(self, name, value, p99, unit, base_name, base_value, target=None, cmp=None, **extra):
        ratio = value / base_value if value is not None and base_value else None
        met = None
        if target is not None and ratio is not None:
            met = ratio <= target if cmp == "<=" else ratio >= target
        return self.row(name, value, p99, unit, base_name, ratio,
                        f"ratio {cmp} {target}" if target is not None else None, met, **extra)

    # ------------------------------------------------------------------ floor
    def floor(self):
        log("floor: SOCK_SEQPACKET ping-pong")
        for placement in ("same", "cross", "free"):
            runs = []
            for _ in range(self.a.runs):
                runs += run_lines([self.bench, "pingpong", "--placement", placement,
                                   "--iterations", str(self.a.scale(4000))])
            self.raw += runs
            self.row(f"floor.seqpacket.{placement}", med(r["median"] for r in runs),
                     med(r["p99"] for r in runs), "us")
            # The same with both sides polling before they sleep (memconvd(8), POLLING).
            runs = []
            for _ in range(self.a.runs):
                runs += run_lines([self.bench, "pingpong", "--placement", placement,
                                   "--iterations", str(self.a.scale(4000)), "--client-poll", "50"])
            self.raw += runs
            self.row(f"floor.seqpacket.{placement}.polled", med(r["median"] for r in runs),
                     med(r["p99"] for r in runs), "us")
        log("floor: KVM_EXIT_IO round trip")
        for placement in ("free", "same"):
            runs = []
            for _ in range(self.a.runs):
                runs += run_lines([self.bench, "kvm", "--mode", "floor", "--per-round",
                                   str(self.a.scale(1000)), "--rounds", "4", "--placement", placement,
                                   "--label", f"floor.kvm_exit_io.{placement}"])
            self.raw += runs
            rt = [r for r in runs if r["metric"] == "roundtrip"]
            self.row(f"floor.kvm_exit_io.{placement}", med(r["median"] for r in rt),
                     med(r["p99"] for r in rt), "us")

    # ------------------------------------------------------------------ conversions
    def conversion_configs(self):
        cfgs = []
        for vms in (1, 16):
            for vcpus in (1, 2):
                for size in (4 * KIB, 64 * KIB, 2 * MIB):
                    cfgs.append(("explicit", size, vcpus, vms, "free"))
                cfgs.append(("implicit", 4 * KIB, vcpus, vms, "free"))
        for size in (4 * KIB, 2 * MIB):
            for placement in ("same", "cross"):
                cfgs.append(("explicit", size, 1, 1, placement))
        return cfgs

    def per_round(self, size, vms):
        base = {4 * KIB: 1000, 64 * KIB: 300, 2 * MIB: 24}[size]
        if vms > 1:
            base = max(4, base // 5)
        return self.a.scale(base)

    def one_conversion_run(self, mode, kind, size, vcpus, vms, placement, label, daemon_extra=()):
        bench_extra = []
        if mode == "nopoll":
            # memconvd and libmemconv without polling before they sleep, for comparison
            mode, daemon_extra, bench_extra = "daemon", tuple(daemon_extra) + ("--poll=0",), ["--client-poll", "0"]
        elif mode == "noring":
            # libmemconv without its request ring: every message on the socket, for comparison
            mode, bench_extra = "daemon", ["--client-ring", "0"]
        cmd = [self.bench, "kvm", "--mode", mode, "--kind", kind, "--size", str(size),
               "--vcpus", str(vcpus), "--vms", str(vms), "--per-round", str(self.per_round(size, vms)),
               "--rounds", "6", "--placement", placement, "--label", label] + bench_extra
        if mode == "inline":
            lines = run_lines(cmd)
            extra = {}
        else:
            d = Daemon(self.daemon, self.a.workdir, placement, daemon_extra)
            try:
                cpu0 = d.cpu_seconds()
                lines = run_lines(cmd + ["--socket", d.sock])
                cpu1 = d.cpu_seconds()
                mem = d.memory_kib()
            finally:
                d.stop()
            conv = next(r for r in lines if r["metric"] == "throughput")["conversions"]
            extra = {"daemon_cpu_us_per_conv": (cpu1 - cpu0) * 1e6 / conv,
                     "daemon_rss_kib": mem.get("VmRSS"), "daemon_hwm_kib": mem.get("VmHWM")}
        for r in lines:
            r["run_mode"] = mode
            r.update(extra)
        self.raw += lines
        return {r["metric"]: r for r in lines}, extra

    def conversions(self):
        for kind, size, vcpus, vms, placement in self.conversion_configs():
            label = f"conv.{kind}.{SIZES[size]}.{vms}vm.{vcpus}vcpu.{placement}"
            log(f"conversion: {label}")
            modes = ("inline", "daemon", "lease") if self.a.lease else ("inline", "daemon")
            if kind == "explicit" and size == 4 * KIB and vms == 1 and vcpus == 1:
                modes += ("nopoll", "noring")
            res = {m: [] for m in modes}
            extras = {m: [] for m in modes}
            for _ in range(self.a.runs):
                for mode in modes:
                    lines, extra = self.one_conversion_run(mode, kind, size, vcpus, vms, placement, label)
                    res[mode].append(lines)
                    extras[mode].append(extra)

            def agg(mode, metric, field="median"):
                return med(r[metric][field] for r in res[mode])

            # The targets: 4 KiB <= 1.3x and 2 MiB <= 0.2x through the daemon; under a
            # lease (the stretch) 4 KiB <= 1.0x. Both modes are held to the 2-vCPU throughput one.
            lat_target = {"daemon": {4 * KIB: 1.3, 2 * MIB: 0.2}.get(size),
                          "lease": {4 * KIB: 1.0, 2 * MIB: 0.2}.get(size),
                          "nopoll": None, "noring": None}
            base_lat = {}
            for metric, unit in (("latency", "us"), ("roundtrip", "us")):
                base = f"{label}.inline.{metric}"
                base_lat[metric] = base
                self.row(base, agg("inline", metric), agg("inline", metric, "p99"), unit,
                         to_private=agg("inline", metric, "median_to_private"),
                         to_shared=agg("inline", metric, "median_to_shared"))
            base = f"{label}.inline.throughput"
            self.row(base, agg("inline", "throughput"), None, "conv/s")
            base_cpu = f"{label}.inline.vmm_cpu"
            self.row(base_cpu, agg("inline", "throughput", "vmm_cpu_us_per_conv"), None, "us/conv")
            for mode in modes[1:]:
                name = {"daemon": "memconvd", "lease": "memconvd-lease", "nopoll": "memconvd-nopoll",
                        "noring": "memconvd-noring"}[mode]
                for metric, unit in (("latency", "us"), ("roundtrip", "us")):
                    self.compare(f"{label}.{name}.{metric}", agg(mode, metric),
                                 agg(mode, metric, "p99"), unit, base_lat[metric], agg("inline", metric),
                                 lat_target[mode] if metric == "latency" else None, "<=",
                                 to_private=agg(mode, metric, "median_to_private"),
                                 to_shared=agg(mode, metric, "median_to_shared"))
                floor = next((r["median"] for r in self.rows if r["name"] == f"floor.seqpacket.{placement}"), None)
                polled = next((r["median"] for r in self.rows
                               if r["name"] == f"floor.seqpacket.{placement}.polled"), None)
                if mode == "daemon" and size == 4 * KIB and floor is not None:
                    # Informational: the bare socket round trip of this placement, measured in this
                    # run, against inline. An asked conversion cannot cost less than this; with
                    # polling (the default) the polled round trip is the floor.
                    self.compare(f"{label}.{name}.seqpacket_floor", floor, None, "us", base_lat["latency"],
                                 agg("inline", "latency"))
                    if polled is not None:
                        self.compare(f"{label}.{name}.seqpacket_floor_polled", polled, None, "us",
                                     base_lat["latency"], agg("inline", "latency"))
                if mode == "nopoll":
                    # Informational: polling's effect, in this run.
                    self.compare(f"{label}.{name}.latency_vs_polling", agg(mode, "latency"), None, "us",
                                 f"{label}.memconvd.latency", agg("daemon", "latency"))
                if mode == "noring":
                    # Informational: the request ring's effect, in this run.
                    self.compare(f"{label}.{name}.latency_vs_ring", agg(mode, "latency"), None, "us",
                                 f"{label}.memconvd.latency", agg("daemon", "latency"))
                self.compare(f"{label}.{name}.throughput", agg(mode, "throughput"), None, "conv/s",
                             base, agg("inline", "throughput"), 1.0 if vcpus == 2 else None, ">=")
                self.compare(f"{label}.{name}.vmm_cpu", agg(mode, "throughput", "vmm_cpu_us_per_conv"),
                             None, "us/conv", base_cpu, agg("inline", "throughput", "vmm_cpu_us_per_conv"))
                self.row(f"{label}.{name}.daemon_cpu", med(e["daemon_cpu_us_per_conv"] for e in extras[mode]),
                         None, "us/conv")
                self.row(f"{label}.{name}.daemon_rss", med(e["daemon_rss_kib"] for e in extras[mode]), None,
                         "KiB", hwm_kib=max(e["daemon_hwm_kib"] or 0 for e in extras[mode]))

    # ------------------------------------------------------------------ range map
    def rangemap_curve(self):
        log("range map: 10^3 .. 10^6 ranges")
        lines = run_lines([self.rangemap, str(self.a.rangemap_max)])
        self.raw += lines
        by = {r["name"]: r for r in lines}
        ns = []
        n = 1000
        while n <= self.a.rangemap_max:
            ns.append(n)
            n *= 10
        for n in ns:
            for op in ("lookup", "update"):
                b = by[f"bitmap.n{n}.{op}"]
                self.row(f"bitmap.n{n}.{op}", b["median"], b["p99"], "ns")
                r = by[f"rangemap.n{n}.{op}"]
                self.compare(f"rangemap.n{n}.{op}", r["median"], r["p99"], "ns", f"bitmap.n{n}.{op}",
                             b["median"])
            for op in ("lookup_hot", "insert"):
                r = by[f"rangemap.n{n}.{op}"]
                self.row(f"rangemap.n{n}.{op}", r["median"], r["p99"], "ns")
            b = by[f"bitmap.n{n}.bytes_per_range"]
            self.row(f"bitmap.n{n}.bytes_per_range", b["median"], None, "B",
                     note="1 TiB guest: 32 MiB whatever the number of ranges")
            r = by[f"rangemap.n{n}.bytes_per_range"]
            row = self.compare(f"rangemap.n{n}.bytes_per_range", r["median"], None, "B",
                               f"bitmap.n{n}.bytes_per_range", b["median"],
                               heap_bytes_per_range=r["heap_bytes_per_range"])
            row["target"] = "<= 64 B"
            row["met"] = r["median"] <= 64
            row = self.row(f"rangemap.n{n}.heap_bytes_per_range", r["heap_bytes_per_range"], None, "B",
                           target="<= 64 B", met=r["heap_bytes_per_range"] <= 64,
                           note="malloc's view (mallinfo2), allocator overhead included")
        if len(ns) >= 2:
            lo, hi = ns[0], ns[-1]
            log_ratio = math.log2(hi) / math.log2(lo)
            for op in ("lookup_hot", "lookup", "update"):
                g = by[f"rangemap.n{hi}.{op}"]["median"] / by[f"rangemap.n{lo}.{op}"]["median"]
                # O(log n) would grow by log2(hi)/log2(lo) (2.0 for 10^3 -> 10^6); allow 2x for
                # constant factors. O(n) would grow 1000x.
                self.row(f"rangemap.{op}.growth_n{lo}_to_n{hi}", g, None, "x",
                         target=f"<= {2 * log_ratio:.1f} (O(log n): {log_ratio:.1f})"
                         if op == "lookup_hot" else None,
                         met=(g <= 2 * log_ratio) if op == "lookup_hot" else None)

    # ------------------------------------------------------------------ journal, restart
    def journal(self):
        if not daemon_supports(self.daemon, "--journal="):
            self.row("journal.durable.throughput", None, None, "conv/s", "journal.disabled.throughput",
                     None, "loss <= 10%", None, status=NOT_MEASURABLE)
        else:
            for vcpus in (1, 2):
                label = f"journal.explicit.4k.1vm.{vcpus}vcpu"
                log(f"journal: {label}, durable vs --journal=no")
                # "every": a write and fdatasync per loop iteration (--journal-commit-interval=0),
                # what the daemon did before the commit interval; the default batches over 2 ms.
                variants = {"no": ("--journal=no",), "yes": ("--journal=yes",)}
                if daemon_supports(self.daemon, "--journal-commit-interval="):
                    variants["every"] = ("--journal=yes", "--journal-commit-interval=0")
                res = {j: [] for j in variants}
                for _ in range(self.a.runs):
                    for j, extra in variants.items():
                        lines, _ = self.one_conversion_run("daemon", "explicit", 4 * KIB, vcpus, 1, "free",
                                                           f"{label}.{j}", extra)
                        res[j].append(lines)
                t = {j: med(r["throughput"]["median"] for r in res[j]) for j in res}
                lat = {j: med(r["latency"]["median"] for r in res[j]) for j in res}
                self.row(f"{label}.disabled.throughput", t["no"], None, "conv/s")
                self.compare(f"{label}.durable.throughput", t["yes"], None, "conv/s",
                             f"{label}.disabled.throughput", t["no"], 0.9, ">=")
                if "every" in t:
                    self.compare(f"{label}.durable_commit_every_iteration.throughput", t["every"], None, "conv/s",
                                 f"{label}.disabled.throughput", t["no"])
                self.row(f"{label}.disabled.latency", lat["no"], med(r["latency"]["p99"] for r in res["no"]), "us")
                self.compare(f"{label}.durable.latency", lat["yes"], med(r["latency"]["p99"] for r in res["yes"]),
                             "us", f"{label}.disabled.latency", lat["no"])


    def restart(self):
        if not (os.path.exists(self.gen_journal) and os.path.exists(self.ctl)):
            self.row("restart.n1000000.ready", None, None, "s", None, None, f"<= {RESTART_TARGET_S:g} s", None,
                     status="not measurable: tests/bench/gen-journal or memconvctl not built")
            return
        top = tempfile.mkdtemp(prefix="memconv-bench-restart.", dir=self.a.workdir)
        try:
            for n in self.a.restart_records:
                self.restart_one(top, n)
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def restart_one(self, top, n):
        # What memconvd leaves with --journal-compact above n: every record (the common case of
        # the table). Then, at the largest n, what it leaves with its default --journal-compact.
        cases = [("", (), None)]
        if n == max(self.a.restart_records):
            cases.append(("compact_max", ("--journal-compact=100000000",), None))
            cases.append(("written_compact_default", (), RESTART_DEFAULT_COMPACT))
        for suffix, daemon_extra, gen_compact in cases:
            label = f"restart.n{n}" + (f".{suffix}" if suffix else "")
            state = os.path.join(top, f"state-{n}-{gen_compact or 0}")
            expect = state + ".expect"
            if not os.path.isdir(state):
                os.mkdir(state)
                log(f"restart: generating a journal of {n} change records"
                    + (f" as --journal-compact={gen_compact} leaves it" if gen_compact else ""))
                cmd = [self.gen_journal, "--state-dir", state, "--records", str(n), "--expect", expect]
                if gen_compact:
                    cmd += ["--compact", str(gen_compact)]
                gen = run_lines(cmd)[0]
                self.raw.append(dict(gen, label=label))
                self.gen_cache[state] = gen
            gen = self.gen_cache[state]
            journal = gen["file"]
            log(f"restart: {label}: {gen['file_records']} records in {gen['file_bytes']} B, "
                f"{self.a.runs} starts")
            runs = []
            # memconvd compacts a long journal right after replaying it: every start gets the
            # generated file afresh, or the later starts would time the compacted one.
            run_state = state + ".run"
            for i in range(self.a.runs):
                shutil.rmtree(run_state, ignore_errors=True)
                os.mkdir(run_state)
                run_journal = os.path.join(run_state, os.path.basename(journal))
                shutil.copyfile(journal, run_journal)
                os.chmod(run_journal, 0o600)
                before = os.stat(run_journal)
                d = ReadyDaemon(self.daemon, run_state, self.a.workdir, daemon_extra)
                try:
                    if i == 0:
                        self.restart_verify(d, gen, expect)
                finally:
                    d.stop()
                after = os.stat(run_journal)
                runs.append({"label": label, "run": i, "ready_s": d.ready_s, "load_ms": d.load_ms,
                             "rss_kib": d.mem.get("VmRSS"), "hwm_kib": d.mem.get("VmHWM"),
                             "journal_rewritten": (before.st_size, before.st_mtime_ns, before.st_ino)
                             != (after.st_size, after.st_mtime_ns, after.st_ino)})
            if not suffix and n == max(self.a.restart_records):
                self.restart_after_compaction(label, run_state, gen, expect)
            self.raw += runs
            ready = [r["ready_s"] for r in runs]
            median = med(ready)
            target = RESTART_TARGET_S if n == 1000000 else None
            extra = {"load_ms": med(r["load_ms"] for r in runs), "records_in_file": gen["file_records"],
                     "change_records": n, "private_ranges": gen["private_ranges"],
                     "journal_bytes": gen["file_bytes"], "daemon_args": list(daemon_extra),
                     "rewritten_at_start": any(r["journal_rewritten"] for r in runs),
                     "ratio_of": f"the {RESTART_TARGET_S:g} s target", "verified": True}
            if gen_compact:
                extra.update(generated_with_compact=gen_compact, snapshots=gen["snapshots"],
                             snapshots_too_large=gen["snapshots_too_large"],
                             largest_snapshot_payload=gen["largest_snapshot_payload"])
            self.row(f"{label}.ready", median, quantile(ready, 0.99), "s", None,
                     median / RESTART_TARGET_S, f"<= {RESTART_TARGET_S:g} s" if target else None,
                     median <= target if target else None, **extra)
            self.row(f"{label}.rss", med(r["rss_kib"] for r in runs), None, "KiB",
                     hwm_kib=max(r["hwm_kib"] or 0 for r in runs), note="VmRSS once READY; VmHWM in the JSON")
            self.row(f"{label}.journal_bytes", gen["file_bytes"], None, "B", records=gen["file_records"],
                     final_snapshot_payload=gen["final_snapshot_payload"], payload_max=gen["payload_max"])
            if gen_compact:
                self.row(f"{label}.snapshots_written", gen["snapshots"], None, "", target=None,
                         too_large=gen["snapshots_too_large"],
                         note=f"compactions a daemon with --journal-compact={gen_compact} could write; "
                              f"too_large: snapshot over the {gen['payload_max']} B record maximum")

    def restart_after_compaction(self, label, run_state, gen, expect):
        """The starts after the first: memconvd compacted the journal at its first start (on the
        journal thread, after READY), so a restart then replays the snapshot."""
        journal = os.path.join(run_state, os.path.basename(gen["file"]))
        full = os.stat(journal).st_size
        if full >= gen["file_bytes"]:
            # The last timed start may have been stopped before its compaction was written.
            d = ReadyDaemon(self.daemon, run_state, self.a.workdir)
            deadline = time.monotonic() + 60
            while os.stat(journal).st_size >= gen["file_bytes"] and time.monotonic() < deadline:
                time.sleep(0.05)
            d.stop()
        size = os.stat(journal).st_size
        runs = []
        for i in range(self.a.runs):
            d = ReadyDaemon(self.daemon, run_state, self.a.workdir)
            try:
                if i == 0:
                    self.restart_verify(d, dict(gen, compact=1), expect)
            finally:
                d.stop()
            runs.append({"label": label + ".after_startup_compaction", "run": i, "ready_s": d.ready_s,
                         "load_ms": d.load_ms, "rss_kib": d.mem.get("VmRSS"), "hwm_kib": d.mem.get("VmHWM")})
        self.raw += runs
        ready = [r["ready_s"] for r in runs]
        median = med(ready)
        self.row(f"{label}.after_startup_compaction.ready", median, quantile(ready, 0.99), "s", None,
                 median / RESTART_TARGET_S, f"<= {RESTART_TARGET_S:g} s", median <= RESTART_TARGET_S,
                 journal_bytes=size, private_ranges=gen["private_ranges"],
                 load_ms=med(r["load_ms"] for r in runs),
                 note="the same VM once its first start compacted the journal into a snapshot")

    def restart_verify(self, d, gen, expect):
        """The restored VM must be the one the generator wrote: map, bytes, counters, last seq."""
        def ctl(*args):
            p = subprocess.run([self.ctl, "--admin-socket", d.admin, "--json"] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"memconvctl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
            return json.loads(p.stdout)

        vm = str(gen["vm_id"])
        show = ctl("show", vm)
        got = {"name": show["name"], "state": show["state"], "private_ranges": show["private_ranges"],
               "private_bytes": show["private_bytes"],
               "shared_bytes": show["shared_bytes"]}
        want = {"name": gen["vm_name"], "state": "detached", "private_ranges": gen["private_ranges"],
                "private_bytes": gen["private_bytes"], "shared_bytes": gen["ram_bytes"] - gen["private_bytes"]}
        for k in ("explicit_to_private", "explicit_to_shared", "implicit_to_private", "implicit_to_shared",
                  "bytes_to_private", "bytes_to_shared"):
            got[k] = show["stats"][k]
            want[k] = gen[k]
        hist = ctl("history", vm, "--since", str(gen["last_seq"] - 1))["records"]
        # A file that ends with its snapshot (compacted exactly at the last record) leaves the
        # history ring empty: there is then no record whose seq could be compared.
        if hist or not (gen.get("compact") and gen["change_records"] % gen["compact"] == 0):
            got["last_seq"] = hist[-1]["seq"] if hist else None
            want["last_seq"] = gen["last_seq"]
        with open(expect) as f:
            want_ranges = [tuple(int(x) for x in line.split()) for line in f]
        got_ranges = [(r["gpa"], r["size"]) for r in ctl("ranges", vm, "--private")["ranges"]
                      if r["attribute"] == "private"]
        if got != want or got_ranges != want_ranges:
            diff = {k: (got[k], want[k]) for k in got if got[k] != want[k]}
            bad = next((i for i, (a, b) in enumerate(zip(got_ranges, want_ranges)) if a != b),
                       min(len(got_ranges), len(want_ranges)))
            raise RuntimeError(f"restart: the restored VM differs from the journal written: {diff}; "
                               f"{len(got_ranges)} private ranges against {len(want_ranges)}, first "
                               f"difference at index {bad}; daemon log {d.log.name}")
        # Not compared: rolled_back. A replay counts it only from snapshots (load_apply()).
        self.raw.append({"label": "restart.verify", "vm": gen["file"], "ok": True,
                         "private_ranges": len(got_ranges), "rolled_back_written": gen["rolled_back"],
                         "rolled_back_restored": show["stats"]["rolled_back"]})


def machine_info():
    info = {"hostname": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    info["loadavg_start"] = os.getloadavg()
    return info


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits + 1}g}"


def print_table(rows, out):
    head = ("name", "median", "p99", "unit", "baseline", "ratio", "target", "met")
    cells = []
    for r in rows:
        base = r["baseline"] or "-"
        if r["baseline"]:  # the table shows the baseline relative to the row's own name
            a, b = r["name"].split("."), r["baseline"].split(".")
            while len(a) > 1 and len(b) > 1 and a[0] == b[0]:
                a, b = a[1:], b[1:]
            base = ".".join(b)
        if r.get("status"):
            cells.append((r["name"], r["status"], "", r["unit"], base, "-", r["target"] or "-", "-"))
            continue
        cells.append((r["name"], fmt(r["median"]), fmt(r["p99"]), r["unit"], base,
                      fmt(r["ratio"]) if r["ratio"] is not None else "-", r["target"] or "-",
                      fmt(r["met"]) if r["met"] is not None else "-"))
    widths = [max(len(str(c[i])) for c in cells + [head]) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line, file=out)
    print("-" * len(line), file=out)
    for c in cells:
        print("  ".join(str(x).ljust(w) for x, w in zip(c, widths)), file=out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", default=".", help="the build tree (memconvd, tests/bench/*)")
    ap.add_argument("--output", default="build/bench-results.json")
    ap.add_argument("--table", default=None, help="also write the table here")
    ap.add_argument("--runs", type=int, default=5, help="runs per configuration (default 5)")
    ap.add_argument("--quick", action="store_true", help="fewer samples, for a smoke test")
    ap.add_argument("--only", default="floor,conversions,rangemap,journal,restart")
    ap.add_argument("--no-lease", action="store_true",
                    help="do not measure the lease mode (memconvd-lease rows)")
    ap.add_argument("--daemon-sched", choices=("batch", "other"), default="other",
                    help="memconvd's scheduling policy: other (default: an ordinary process, as the shipped "
                         "service unit runs it) or batch (chrt --batch 0, as CPUSchedulingPolicy=batch)")
    ap.add_argument("--rangemap-max", type=int, default=1000000)
    ap.add_argument("--restart-records", default="10000,100000,1000000",
                    help="journal sizes (change records) of the restart section")
    args = ap.parse_args()
    factor = 0.2 if args.quick else 1.0
    args.scale = lambda n: max(2, int(n * factor))
    args.workdir = os.environ.get("TMPDIR", "/tmp")
    args.restart_records = [int(x) for x in args.restart_records.split(",")]
    if not (os.access("/dev/kvm", os.R_OK | os.W_OK)):
        print("SKIP: /dev/kvm not available", file=sys.stderr)
        return 77

    global DAEMON_SCHED
    DAEMON_SCHED = args.daemon_sched
    s = Suite(args)
    t0 = time.time()
    parts = args.only.split(",")
    info = machine_info()
    if "floor" in parts:
        s.floor()
    if "conversions" in parts:
        s.conversions()
    if "rangemap" in parts:
        s.rangemap_curve()
    if "journal" in parts:
        s.journal()
    if "restart" in parts:
        s.restart()
    info["loadavg_end"] = os.getloadavg()
    shutil.rmtree(s.snap, ignore_errors=True)
    info["duration_s"] = round(time.time() - t0, 1)

    try:
        commit = subprocess.run(["git", "-C", args.top, "describe", "--always", "--dirty"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        commit = ""
    result = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "commit": commit, "machine": info, "runs": args.runs, "quick": args.quick,
              "daemon_sched": args.daemon_sched,
              "rows": s.rows, "raw": s.raw}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"memconvd benchmark, {result['date']}, {info.get('cpu', '?')}, {info['cpus']} CPUs, "
          f"kernel {info['kernel']}, load {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}, "
          f"{info['duration_s']} s, commit {commit}, memconvd scheduling {args.daemon_sched}")
    print_table(s.rows, sys.stdout)
    if args.table:
        with open(args.table, "w") as f:
            print_table(s.rows, f)
    targets = [r for r in s.rows if r["met"] is not None]
    print(f"\ntargets met: {sum(1 for r in targets if r['met'])} of {len(targets)}; "
          f"not measurable: {sum(1 for r in s.rows if r.get('status'))}; results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
