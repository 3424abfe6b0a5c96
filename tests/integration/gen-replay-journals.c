/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gen-replay-journals.c - write random, awkward journals for
 * tests/integration/journal-replay.sh, which replays them with memconvd and
 * with a reference build and compares what each restored.
 *
 * Each VM's file (STATE_DIR/vm-ID.journal, encoded and framed by lib/journal.c
 * as the daemon does) starts with a VM record or, one time in six, a snapshot,
 * and then mixes, in random order:
 *   - change records: committed mostly, also rolled back, refused, abandoned
 *     and result codes this daemon does not know; to private, to shared or an
 *     unknown attribute; valid ranges, and unaligned, empty, overflowing ones;
 *     sequence numbers that follow, jump ahead, repeat or go back;
 *   - region records: registrations that start private or shared (some with
 *     invalid ranges), unregistrations, slots registered again;
 *   - snapshots in the middle, with their SnapshotMore records: as many as
 *     announced, fewer (an incomplete snapshot), more (the excess is ignored),
 *     and none with the old total of 0; SnapshotMore records out of place;
 *   - detached records and a second VM record.
 * Ranges fall in a small space (heavy overlap) or a large one. A region over
 * the whole address space that starts shared (slot 99) follows the first
 * record and comes before the end, so that `memconvctl ranges`, which shows
 * the map inside known regions, shows all of it. A file may end
 * cleanly, torn inside a record, with a zero-filled tail, or with a corrupt
 * record (bad CRC) in its middle, so that the rest is cut off.
 *
 * Usage: gen-replay-journals --state-dir DIR [--vms N] [--records N] [--seed S]
 *        (VM ids 1..N, names replay-1..replay-N; about --records records each)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "memconv.pb-c.h"

#define PAGE 4096ULL

/* One VM's generator. */
struct gen {
        uint64_t s;              /* xorshift64 state, non-zero */
        uint64_t space;          /* pages that ordinary ranges fall in */
        uint64_t seq;            /* the last sequence number written */
        uint8_t *buf;            /* the encoded records */
        size_t len, cap;
        size_t n_records;
};

/**
 * rnd() - the next number of @g's xorshift64 sequence
 * Return: the number
 */
static uint64_t rnd(struct gen *g)
{
        g->s ^= g->s << 13;
        g->s ^= g->s >> 7;
        g->s ^= g->s << 17;
        return g->s;
}

/** pct() - true @p percent of the time */
static bool pct(struct gen *g, unsigned p)
{
        return rnd(g) % 100 < p;
}

/**
 * encode() - append @rec to @g's records; exits on failure
 */
static void encode(struct gen *g, Memconv__JournalRecord *rec)
{
        int r;

        rec->realtime_usec = 1700000000000000ULL + g->n_records;
        r = mc_journal_encode(rec, &g->buf, &g->len, &g->cap);
        if (r < 0) {
                fprintf(stderr, "gen-replay-journals: cannot encode a record: %s\n", strerror(-r));
                exit(1);
        }
        g->n_records++;
}

/**
 * range() - a range for a change, region or snapshot: mostly valid, in
 * @g's space, sometimes one the daemon must skip
 * @gpa: out
 * @size: out
 */
static void range(struct gen *g, uint64_t *gpa, uint64_t *size)
{
        uint64_t a = rnd(g) % g->space, len = 1 + rnd(g) % (pct(g, 10) ? g->space : 16);

        *gpa = a * PAGE;
        *size = len * PAGE;
        switch (rnd(g) % 40) {
        case 0:
                *gpa += 1 + rnd(g) % (PAGE - 1);        /* unaligned start */
                break;
        case 1:
                *size += 512;                           /* unaligned size */
                break;
        case 2:
                *size = 0;                              /* empty */
                break;
        case 3:
                *gpa = UINT64_MAX - (rnd(g) % 4) * PAGE - PAGE + 1;  /* the top; overflows often */
                *gpa &= ~(PAGE - 1);
                break;
        case 4:
                *gpa = 0;                               /* everything */
                *size = g->space * PAGE;
                break;
        default:
                break;
        }
}

/** fill_vm() - the JournalVm of one VM (pointers to the caller's buffers) */
static void fill_vm(Memconv__JournalVm *m, uint64_t vm_id, char *name, uint8_t *uuid, uint8_t *token)
{
        memconv__journal_vm__init(m);
        m->vm_id = vm_id;
        m->uuid.data = uuid;
        m->uuid.len = 16;
        m->name = name;
        m->cc_type = MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP;
        m->arch = MEMCONV__ARCH__ARCH_X86_64;
        m->token.data = token;
        m->token.len = 16;
}

/** gen_change() - a change record: results, attributes, ranges and sequence numbers of every kind */
static void gen_change(struct gen *g)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__HistoryRecord c = MEMCONV__HISTORY_RECORD__INIT;
        unsigned k = rnd(g) % 100;

        if (k < 90)
                c.seq = g->seq + 1;
        else if (k < 94)
                c.seq = g->seq + 2 + rnd(g) % 100;              /* a gap */
        else if (k < 98)
                c.seq = g->seq > 5 ? g->seq - rnd(g) % 5 : 1;   /* again, or back */
        else
                c.seq = rnd(g) % 3;                             /* 0, 1 or 2 */
        g->seq = c.seq;
        range(g, &c.gpa, &c.size);
        k = rnd(g) % 100;
        c.to = k < 48 ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE :
               k < 97 ? MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED : (Memconv__Attribute) (2 + k % 3);
        c.from = c.to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE ? MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED :
                 MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        k = rnd(g) % 100;
        c.result = k < 82 ? MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED :
                   k < 90 ? MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ROLLED_BACK :
                   k < 95 ? MEMCONV__CHANGE_RESULT__CHANGE_RESULT_REFUSED :
                   k < 99 ? MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ABANDONED : (Memconv__ChangeResult) 9;
        c.implicit = pct(g, 30);
        c.source = (Memconv__ConvertSource) (rnd(g) % 5);
        c.vcpu = (uint32_t) rnd(g) % 8;
        c.request_id = rnd(g) % 1000000;
        c.decision_id = rnd(g) % 1000000;
        c.decision_latency_usec = pct(g, 5) ? rnd(g) : rnd(g) % 5000;  /* sometimes beyond 32 bits */
        c.realtime_usec = 1700000000000000ULL + rnd(g) % 1000000000;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        rec.change = &c;
        encode(g, &rec);
}

/** gen_region() - a region record: a registration (@removed false) or an unregistration */
static void gen_region(struct gen *g, bool removed)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalRegion m = MEMCONV__JOURNAL_REGION__INIT;

        m.slot = (uint32_t) (rnd(g) % 6);
        range(g, &m.gpa, &m.size);
        m.has_shared = pct(g, 50);
        m.initial = pct(g, 60) ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        m.removed = removed;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
        rec.region = &m;
        encode(g, &rec);
}

/**
 * observer() - a region record for slot 99 over the whole address space,
 * starting shared: it changes no attribute, but makes `memconvctl ranges`,
 * which shows the map inside known regions only, show all of it (the test
 * writes one after the first record and one before the end; a snapshot in
 * between drops the first, damage at the end may cut the second)
 */
static void observer(struct gen *g)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalRegion m = MEMCONV__JOURNAL_REGION__INIT;

        m.slot = 99;
        m.gpa = 0;
        m.size = UINT64_MAX - PAGE + 1;
        m.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
        rec.region = &m;
        encode(g, &rec);
}

/**
 * gen_ranges() - @n random ranges in @r, pointed to by @rp
 */
static void gen_ranges(struct gen *g, Memconv__Range *r, Memconv__Range **rp, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                memconv__range__init(&r[i]);
                range(g, &r[i].gpa, &r[i].size);
                rp[i] = &r[i];
        }
}

/**
 * gen_snapshot_more() - a SnapshotMore record of @n (<= 40) ranges
 */
static void gen_snapshot_more(struct gen *g, size_t n)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalSnapshotMore more = MEMCONV__JOURNAL_SNAPSHOT_MORE__INIT;
        Memconv__Range r[40], *rp[40];

        more.n_private_ranges = n;
        gen_ranges(g, r, rp, more.n_private_ranges);
        more.private_ranges = rp;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE;
        rec.snapshot_more = &more;
        encode(g, &rec);
}

/**
 * gen_snapshot() - a snapshot record and the SnapshotMore records after it
 * @vm: the VM's identity
 */
static void gen_snapshot(struct gen *g, Memconv__JournalVm *vm)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalSnapshot snap = MEMCONV__JOURNAL_SNAPSHOT__INIT;
        Memconv__ConversionStats stats = MEMCONV__CONVERSION_STATS__INIT;
        Memconv__RegionInfo regions[4], *regp[4];
        Memconv__Range r[50], *rp[50];
        size_t n_more = rnd(g) % 4, more[3], sum = 0;
        unsigned k = rnd(g) % 100;

        for (size_t i = 0; i < n_more; i++)
                sum += more[i] = rnd(g) % 41;

        snap.vm = vm;
        snap.n_regions = rnd(g) % 5;
        for (size_t i = 0; i < snap.n_regions; i++) {
                memconv__region_info__init(&regions[i]);
                regions[i].slot = (uint32_t) (rnd(g) % 6);
                range(g, &regions[i].gpa, &regions[i].size);
                regions[i].has_shared = pct(g, 50);
                regp[i] = &regions[i];
        }
        snap.regions = regp;
        snap.n_private_ranges = rnd(g) % 51;
        gen_ranges(g, r, rp, snap.n_private_ranges);
        snap.private_ranges = rp;
        if (pct(g, 80)) {
                stats.explicit_to_private = rnd(g) % 1000;
                stats.explicit_to_shared = rnd(g) % 1000;
                stats.implicit_to_private = rnd(g) % 1000;
                stats.implicit_to_shared = rnd(g) % 1000;
                stats.bytes_to_private = rnd(g) % (1ULL << 40);
                stats.bytes_to_shared = rnd(g) % (1ULL << 40);
                stats.rolled_back = rnd(g) % 100;
                snap.stats = &stats;
        }
        g->seq = pct(g, 80) ? g->seq : rnd(g) % (g->seq + 10);
        snap.last_seq = g->seq;
        /* The total it announces: 0 (the old form: only its own ranges), exactly its
         * own and its SnapshotMore records', fewer (the excess is ignored), or more
         * (an incomplete snapshot). */
        if (k < 25)
                snap.total_private_ranges = 0;
        else if (k < 75)
                snap.total_private_ranges = snap.n_private_ranges + sum;
        else if (k < 88)
                snap.total_private_ranges = snap.n_private_ranges + sum - rnd(g) % (sum + 1);
        else
                snap.total_private_ranges = snap.n_private_ranges + sum + 1 + rnd(g) % 40;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT;
        rec.snapshot = &snap;
        encode(g, &rec);
        for (size_t i = 0; i < n_more; i++)
                gen_snapshot_more(g, more[i]);
}

/**
 * write_vm() - write the journal of VM @id into @dirfd
 * Return: 0, or -errno
 */
static int write_vm(int dirfd, uint64_t id, uint64_t seed, size_t records)
{
        struct gen g = { .s = seed * 0x9e3779b97f4a7c15ULL + id };
        uint8_t uuid[16], token[16];
        char name[32], file[64];
        Memconv__JournalVm vm;
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        unsigned snapshots;
        size_t n;
        int fd = -EBADF, r;

        if (!g.s)
                g.s = 1;
        for (int i = 0; i < 8; i++)
                rnd(&g);
        g.space = pct(&g, 50) ? 64 : 1ULL << 20;
        for (size_t i = 0; i < 16; i++) {
                uuid[i] = (uint8_t) rnd(&g);
                token[i] = (uint8_t) rnd(&g);
        }
        snprintf(name, sizeof(name), "replay-%" PRIu64, id);
        snprintf(file, sizeof(file), "vm-%" PRIu64 ".journal", id);
        fill_vm(&vm, id, name, uuid, token);

        if (pct(&g, 16))
                gen_snapshot(&g, &vm);
        else {
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
                rec.vm = &vm;
                encode(&g, &rec);
        }
        observer(&g);
        n = records / 2 + rnd(&g) % (records + 1);
        /* Half the VMs have no snapshot after the first record, the others a few. */
        snapshots = pct(&g, 50) ? 0 : 1 + rnd(&g) % 8;
        while (g.n_records < n) {
                unsigned k = rnd(&g) % 1000;

                if (k < 820)
                        gen_change(&g);
                else if (k < 920)
                        gen_region(&g, false);
                else if (k < 960)
                        gen_region(&g, true);
                else if (k < 960 + snapshots)
                        gen_snapshot(&g, &vm);
                else if (k < 970)
                        gen_snapshot_more(&g, rnd(&g) % 41);  /* out of place, or after a snapshot's own */
                else if (k < 990) {
                        Memconv__JournalRecord d = MEMCONV__JOURNAL_RECORD__INIT;

                        d.body_case = MEMCONV__JOURNAL_RECORD__BODY_DETACHED;
                        d.detached = true;
                        encode(&g, &d);
                } else {
                        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
                        rec.vm = &vm;
                        encode(&g, &rec);
                }
        }

        observer(&g);
        r = mc_journal_rewrite_buffer(dirfd, file, g.buf, g.len, &fd);
        if (r < 0)
                goto out;
        /* The end of the file: clean mostly, else one of the damages a crash or a disk leaves. */
        switch (rnd(&g) % 10) {
        case 0: {       /* torn: the start of one more record */
                uint8_t extra[64];

                for (size_t i = 0; i < sizeof(extra); i++)
                        extra[i] = (uint8_t) rnd(&g);
                extra[0] = 200;  /* its length: more than what follows */
                extra[1] = extra[2] = extra[3] = 0;
                if (pwrite(fd, extra, 8 + rnd(&g) % 40, (off_t) (MC_JOURNAL_HEADER_SIZE + g.len)) < 0)
                        r = -errno;
                break;
        }
        case 1: {       /* a zero-filled tail */
                static const uint8_t zeros[4096];

                if (pwrite(fd, zeros, 1 + rnd(&g) % sizeof(zeros), (off_t) (MC_JOURNAL_HEADER_SIZE + g.len)) < 0)
                        r = -errno;
                break;
        }
        case 2: {       /* a flipped byte somewhere in the records: the rest is cut off there */
                uint8_t b;
                off_t at = (off_t) (MC_JOURNAL_HEADER_SIZE + g.len / 2 + rnd(&g) % (g.len / 2 + 1));

                if (at >= (off_t) (MC_JOURNAL_HEADER_SIZE + g.len))
                        break;
                if (pread(fd, &b, 1, at) != 1)
                        r = -EIO;
                b ^= 0x40;
                if (r >= 0 && pwrite(fd, &b, 1, at) != 1)
                        r = -EIO;
                break;
        }
        default:
                break;
        }
out:
        if (fd >= 0)
                close(fd);
        free(g.buf);
        return r;
}

/** main() - write the journals of --vms VMs into --state-dir; exit 0, 1 on failure, 2 usage */
int main(int argc, char *argv[])
{
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "vms", required_argument, NULL, 'n' },
                { "records", required_argument, NULL, 'r' },
                { "seed", required_argument, NULL, 's' },
                {}
        };
        const char *dir = NULL;
        uint64_t vms = 40, records = 2000, seed = 1;
        int c, dirfd;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'n':
                        vms = strtoull(optarg, NULL, 0);
                        break;
                case 'r':
                        records = strtoull(optarg, NULL, 0);
                        break;
                case 's':
                        seed = strtoull(optarg, NULL, 0);
                        break;
                default:
                        return 2;
                }
        if (!dir) {
                fprintf(stderr, "usage: gen-replay-journals --state-dir DIR [--vms N] [--records N] [--seed S]\n");
                return 2;
        }
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                perror("gen-replay-journals: open the state directory");
                return 1;
        }
        for (uint64_t id = 1; id <= vms; id++) {
                int r = write_vm(dirfd, id, seed, records);

                if (r < 0) {
                        fprintf(stderr, "gen-replay-journals: VM %" PRIu64 ": %s\n", id, strerror(-r));
                        return 1;
                }
        }
        close(dirfd);
        return 0;
}
