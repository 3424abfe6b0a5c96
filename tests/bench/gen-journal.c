/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gen-journal.c - write a real memconvd journal for one VM with N change
 * records, for the restart benchmark (tests/bench/bench.py, "restart").
 *
 * The file is what memconvd itself would have written for a VM that did N
 * conversions: the same records (daemon/persist.c), encoded and framed by
 * the same code (lib/journal.c: mc_journal_encode(), then
 * mc_journal_rewrite_buffer(), which writes STATE_DIR/vm-ID.journal through
 * a temporary file, fdatasync() and rename() as the daemon does):
 *
 *   JournalVm       the VM's identity (id, uuid, name, TDX, x86_64, token);
 *   JournalRegion   x2: a 1 TiB guest as a VMM lays it out, [0, 2 GiB) and
 *                   [4 GiB, 1026 GiB), private at start (guest_memfd), with
 *                   shared backing;
 *   HistoryRecord   x N: conversions alternating to shared and to private,
 *                   sequence numbers 1..N without gaps, one range each.
 *
 * Conversions. Each range wholly changes state, as the daemon's planner
 * guarantees for a record (already-converted parts are never planned).
 * A to-shared conversion takes a naturally aligned block of 4 KiB * 2^k
 * (k uniform in 0..9: 4 KiB .. 2 MiB) that is wholly private, at a random
 * place: a DMA or bounce buffer. A to-private conversion takes one of the
 * blocks that are shared (a pool of disjoint blocks whose union is the
 * shared memory) and converts it back, wholly or one of its halves (the
 * guest frees part of a buffer); the other half stays in the pool. So the
 * map fragments as N grows: about 0.22 * N private ranges at the end.
 * 4 KiB conversions are implicit (a memory fault) half of the time; one
 * in 1000 conversions is rolled back by the VMM (its record has result
 * ROLLED_BACK and changes nothing), as happens when a VMM fails to apply.
 *
 * Compaction (--compact K): emulates memconvd --journal-compact=K. After
 * every K records the state is encoded as a snapshot record, exactly as
 * queue_snapshot() does (several records when the map is fragmented), and
 * the file becomes that snapshot followed by the records after it. A
 * snapshot record whose payload exceeds MC_JOURNAL_PAYLOAD_MAX
 * cannot be written (mc_journal_encode() says -EMSGSIZE, the daemon logs
 * "compaction postponed" and keeps appending): the generator does the
 * same and counts it. Without --compact (0) the file holds every record,
 * as memconvd does with a --journal-compact above N.
 *
 * The expected state is kept independently of lib/rangemap: a per-page
 * bitmap (1 bit per 4 KiB, 32 MiB for the guest). At the end the
 * generator prints one JSON line: the expected private ranges and bytes,
 * last sequence number and counters, the file size and the number of
 * records in it. --expect FILE also writes every expected private range
 * ("GPA SIZE" in decimal, one a line, ascending) for an exact comparison
 * with `memconvctl ranges VM --private --json`.
 *
 * Usage: gen-journal --state-dir DIR [--records N] [--vm-id ID] [--name NAME]
 *                    [--seed S] [--compact K] [--expect FILE]
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "memconv.pb-c.h"

#include "bench-util.h"

#define PAGE_SHIFT 12
#define GIB (1ull << 30)
#define MAX_ORDER 9             /* 2^9 pages: 2 MiB */
#define ROLLBACK_ONE_IN 1000
#define ATTEMPTS 64             /* tries to find a wholly private block */

/* The guest: two RAM regions, 1 TiB in all, as a VMM lays out x86 RAM around the PCI hole. */
static const struct {
        uint32_t slot;
        uint64_t gpa, size;
} regions[] = {
        { 0, 0, 2 * GIB },
        { 1, 4 * GIB, 1022 * GIB },
};
#define N_REGIONS (sizeof(regions) / sizeof(regions[0]))
#define GUEST_END (4 * GIB + 1022 * GIB)
#define GUEST_PAGES (GUEST_END >> PAGE_SHIFT)

struct block {
        uint64_t page;          /* first page */
        unsigned order;         /* 2^order pages */
};

struct state {
        uint64_t *bm;           /* 1 = private, per page */
        struct block *pool;     /* the shared blocks, disjoint */
        size_t n_pool, cap_pool;
        uint64_t seq, request_id, decision_id, realtime_usec;
        uint64_t conversions[2][2]; /* [implicit][to_private], committed only */
        uint64_t bytes_to_private, bytes_to_shared, rolled_back;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        return bench_rng(&rng_state);
}

/** bm_set() - give pages [first, first + n) the value @v */
static void bm_set(uint64_t *bm, uint64_t first, uint64_t n, bool v)
{
        while (n > 0) {
                uint64_t b = first & 63, take = 64 - b < n ? 64 - b : n;
                uint64_t mask = (take == 64 ? ~0ull : (1ull << take) - 1) << b;

                if (v)
                        bm[first >> 6] |= mask;
                else
                        bm[first >> 6] &= ~mask;
                first += take;
                n -= take;
        }
}

/** bm_all() - whether every page of [first, first + n) has the value @v */
static bool bm_all(const uint64_t *bm, uint64_t first, uint64_t n, bool v)
{
        while (n > 0) {
                uint64_t b = first & 63, take = 64 - b < n ? 64 - b : n;
                uint64_t mask = (take == 64 ? ~0ull : (1ull << take) - 1) << b;
                uint64_t w = v ? bm[first >> 6] : ~bm[first >> 6];

                if ((w & mask) != mask)
                        return false;
                first += take;
                n -= take;
        }
        return true;
}

typedef int (*run_fn)(uint64_t gpa, uint64_t size, void *userdata);

/**
 * bm_private_runs() - call @fn for each maximal run of private pages, in
 * address order (what mc_rangemap_walk() gives for MC_ATTR_PRIVATE)
 * Return: 0, or the first non-zero value of @fn
 */
static int bm_private_runs(const uint64_t *bm, run_fn fn, void *userdata)
{
        uint64_t words = (GUEST_PAGES + 63) / 64, start = 0;
        bool in = false;
        int r;

        for (uint64_t w = 0; w < words; w++) {
                uint64_t x = bm[w];

                /* Whole words first: most of the guest is long runs. */
                if ((x == ~0ull && in) || (x == 0 && !in))
                        continue;
                for (unsigned b = 0; b < 64; b++) {
                        bool v = (x >> b) & 1;

                        if (v == in)
                                continue;
                        if (v) {
                                start = w * 64 + b;
                        } else {
                                r = fn(start << PAGE_SHIFT, (w * 64 + b - start) << PAGE_SHIFT, userdata);
                                if (r)
                                        return r;
                        }
                        in = v;
                }
        }
        if (in)
                return fn(start << PAGE_SHIFT, (words * 64 - start) << PAGE_SHIFT, userdata);
        return 0;
}

static int pool_push(struct state *s, uint64_t page, unsigned order)
{
        if (s->n_pool == s->cap_pool) {
                size_t nc = s->cap_pool ? s->cap_pool * 2 : 4096;
                struct block *p = realloc(s->pool, nc * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                s->pool = p;
                s->cap_pool = nc;
        }
        s->pool[s->n_pool++] = (struct block) { page, order };
        return 0;
}

/** pick_private_block() - a wholly private, naturally aligned block; Return: 0 or -EAGAIN */
static int pick_private_block(const struct state *s, struct block *ret)
{
        for (unsigned a = 0; a < ATTEMPTS; a++) {
                unsigned order = (unsigned) (rng() % (MAX_ORDER + 1));
                uint64_t x = rng() % (GUEST_PAGES - (2 * GIB >> PAGE_SHIFT)), page, blocks;
                size_t i = 0;

                /* Uniform over RAM: skip the hole between the regions. */
                if (x >= regions[0].size >> PAGE_SHIFT) {
                        x -= regions[0].size >> PAGE_SHIFT;
                        i = 1;
                }
                blocks = (regions[i].size >> PAGE_SHIFT) >> order;
                page = (regions[i].gpa >> PAGE_SHIFT) + ((x >> order) % blocks << order);
                if (bm_all(s->bm, page, 1ull << order, true)) {
                        *ret = (struct block) { page, order };
                        return 0;
                }
        }
        return -EAGAIN;
}

static int encode(const Memconv__JournalRecord *rec, uint8_t **buf, size_t *len, size_t *cap)
{
        int r = mc_journal_encode(rec, buf, len, cap);

        if (r < 0)
                fprintf(stderr, "gen-journal: cannot encode a record: %s\n", strerror(-r));
        return r;
}

static void fill_vm(Memconv__JournalVm *m, uint64_t vm_id, const char *name, uint8_t uuid[16],
                    uint8_t token[16])
{
        memconv__journal_vm__init(m);
        m->vm_id = vm_id;
        m->uuid.data = uuid;
        m->uuid.len = 16;
        m->name = (char *) name;
        m->cc_type = MEMCONV__CC_TYPE__CC_TYPE_TDX;
        m->arch = MEMCONV__ARCH__ARCH_X86_64;
        m->token.data = token;
        m->token.len = 16;
        m->uid = 0;
}

struct snap_walk {
        Memconv__Range *ranges;
        Memconv__Range **rp;
        size_t n, cap;
};

static int snap_walk_fn(uint64_t gpa, uint64_t size, void *userdata)
{
        struct snap_walk *w = userdata;

        if (w->n == w->cap) {
                size_t nc = w->cap ? w->cap * 2 : 4096;
                Memconv__Range *r = realloc(w->ranges, nc * sizeof(*r));
                Memconv__Range **rp;

                if (!r)
                        return -ENOMEM;
                w->ranges = r;
                rp = realloc(w->rp, nc * sizeof(*rp));
                if (!rp)
                        return -ENOMEM;
                w->rp = rp;
                w->cap = nc;
        }
        memconv__range__init(&w->ranges[w->n]);
        w->ranges[w->n].gpa = gpa;
        w->ranges[w->n].size = size;
        w->n++;
        return 0;
}

/* As daemon/persist.c: private ranges per snapshot record. */
#define SNAPSHOT_RANGES_PER_RECORD 32768U

/**
 * snapshot() - encode the whole state as queue_snapshot() does: a
 * JournalSnapshot record, then JournalSnapshotMore records of at most
 * SNAPSHOT_RANGES_PER_RECORD ranges each
 * @ret_payload: the largest record's payload size
 * @ret_records: how many records it took
 * Return: 0 with the records appended to @buf; -EMSGSIZE if a record is
 * larger than a record may be; -ENOMEM
 */
static int snapshot(const struct state *s, Memconv__JournalVm *m, uint8_t **buf, size_t *len, size_t *cap,
                    size_t *ret_payload, uint64_t *ret_records)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalSnapshot snap = MEMCONV__JOURNAL_SNAPSHOT__INIT;
        Memconv__ConversionStats stats = MEMCONV__CONVERSION_STATS__INIT;
        Memconv__RegionInfo ri[N_REGIONS], *rip[N_REGIONS];
        struct snap_walk w = {};
        int r;

        r = bm_private_runs(s->bm, snap_walk_fn, &w);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < w.n; i++)
                w.rp[i] = &w.ranges[i];
        for (size_t i = 0; i < N_REGIONS; i++) {
                memconv__region_info__init(&ri[i]);
                ri[i].slot = regions[i].slot;
                ri[i].gpa = regions[i].gpa;
                ri[i].size = regions[i].size;
                ri[i].has_shared = true;
                rip[i] = &ri[i];
        }
        stats.explicit_to_private = s->conversions[0][1];
        stats.explicit_to_shared = s->conversions[0][0];
        stats.implicit_to_private = s->conversions[1][1];
        stats.implicit_to_shared = s->conversions[1][0];
        stats.bytes_to_private = s->bytes_to_private;
        stats.bytes_to_shared = s->bytes_to_shared;
        stats.rolled_back = s->rolled_back;
        snap.vm = m;
        snap.regions = rip;
        snap.n_regions = N_REGIONS;
        snap.private_ranges = w.rp;
        snap.n_private_ranges = w.n < SNAPSHOT_RANGES_PER_RECORD ? w.n : SNAPSHOT_RANGES_PER_RECORD;
        snap.total_private_ranges = w.n;
        snap.stats = &stats;
        snap.last_seq = s->seq;
        rec.realtime_usec = s->realtime_usec;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT;
        rec.snapshot = &snap;
        *ret_payload = memconv__journal_record__get_packed_size(&rec);
        *ret_records = 1;
        r = mc_journal_encode(&rec, buf, len, cap);
        for (size_t off = SNAPSHOT_RANGES_PER_RECORD; r >= 0 && off < w.n; off += SNAPSHOT_RANGES_PER_RECORD) {
                Memconv__JournalRecord more_rec = MEMCONV__JOURNAL_RECORD__INIT;
                Memconv__JournalSnapshotMore more = MEMCONV__JOURNAL_SNAPSHOT_MORE__INIT;
                size_t payload;

                more.private_ranges = w.rp + off;
                more.n_private_ranges = w.n - off < SNAPSHOT_RANGES_PER_RECORD ? w.n - off : SNAPSHOT_RANGES_PER_RECORD;
                more_rec.realtime_usec = s->realtime_usec;
                more_rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE;
                more_rec.snapshot_more = &more;
                payload = memconv__journal_record__get_packed_size(&more_rec);
                if (payload > *ret_payload)
                        *ret_payload = payload;
                r = mc_journal_encode(&more_rec, buf, len, cap);
                ++*ret_records;
        }
out:
        free(w.ranges);
        free(w.rp);
        return r;
}

/**
 * convert_one() - choose the next conversion, apply it to the model and
 * fill @c with its record
 */
static int convert_one(struct state *s, bool to_private, Memconv__HistoryRecord *c)
{
        struct block b;
        bool implicit, rolled_back = rng() % ROLLBACK_ONE_IN == 0;
        uint64_t gpa, size;

        if (to_private) {
                size_t i;

                if (s->n_pool == 0)
                        return -EAGAIN;
                i = rng() % s->n_pool;
                b = s->pool[i];
                s->pool[i] = s->pool[--s->n_pool];
                if (b.order > 0 && rng() % 2) {
                        /* Half of it: the other half stays shared. */
                        uint64_t half = 1ull << (b.order - 1);
                        bool upper = rng() % 2;

                        if (pool_push(s, b.page + (upper ? 0 : half), b.order - 1) < 0)
                                return -ENOMEM;
                        b.page += upper ? half : 0;
                        b.order--;
                }
                if (rolled_back && pool_push(s, b.page, b.order) < 0)
                        return -ENOMEM;
        } else {
                if (pick_private_block(s, &b) < 0)
                        return -EAGAIN;
                if (!rolled_back && pool_push(s, b.page, b.order) < 0)
                        return -ENOMEM;
        }
        gpa = b.page << PAGE_SHIFT;
        size = 1ull << (b.order + PAGE_SHIFT);
        implicit = b.order == 0 && rng() % 2;
        if (rolled_back) {
                s->rolled_back++;
        } else {
                bm_set(s->bm, b.page, 1ull << b.order, to_private);
                s->conversions[implicit][to_private]++;
                if (to_private)
                        s->bytes_to_private += size;
                else
                        s->bytes_to_shared += size;
        }

        s->seq++;
        s->realtime_usec += 20 + rng() % 80;
        memconv__history_record__init(c);
        c->seq = s->seq;
        c->realtime_usec = s->realtime_usec;
        c->gpa = gpa;
        c->size = size;
        c->from = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED : MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        c->to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        c->implicit = implicit;
        c->source = implicit ? MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_UNSPECIFIED
                             : MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_TDX_MAPGPA;
        c->vcpu = (uint32_t) (rng() % 64);
        c->request_id = ++s->request_id;
        c->decision_id = ++s->decision_id;
        c->result = rolled_back ? MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ROLLED_BACK
                                : MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED;
        c->decision_latency_usec = 2 + rng() % 30;
        return 0;
}

struct expect {
        FILE *f;
        uint64_t ranges, bytes;
};

static int expect_fn(uint64_t gpa, uint64_t size, void *userdata)
{
        struct expect *e = userdata;

        e->ranges++;
        e->bytes += size;
        if (e->f && fprintf(e->f, "%" PRIu64 " %" PRIu64 "\n", gpa, size) < 0)
                return -EIO;
        return 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: gen-journal --state-dir DIR [--records N] [--vm-id ID] [--name NAME] [--seed S]\n"
                        "                   [--compact K] [--expect FILE]\n");
}

int main(int argc, char *argv[])
{
        static const struct option longopts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "records", required_argument, NULL, 'n' },
                { "vm-id", required_argument, NULL, 'i' },
                { "name", required_argument, NULL, 'N' },
                { "seed", required_argument, NULL, 's' },
                { "compact", required_argument, NULL, 'c' },
                { "expect", required_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *state_dir = NULL, *name = "bench-restart", *expect_path = NULL;
        uint64_t records = 1000000, vm_id = 1, compact = 0, since = 0, file_records = 0;
        uint64_t snapshots = 0, snapshots_too_large = 0, t0 = bench_now_ns(), t_write;
        size_t len = 0, cap = 0, snap_payload = 0, largest_snap = 0;
        struct state s = {};
        struct expect e = {};
        uint8_t uuid[16], token[16], *buf = NULL;
        char file[64];
        Memconv__JournalVm vm;
        struct timespec now;
        int c, r, dirfd;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'd': state_dir = optarg; break;
                case 'n': records = strtoull(optarg, NULL, 0); break;
                case 'i': vm_id = strtoull(optarg, NULL, 0); break;
                case 'N': name = optarg; break;
                case 's': rng_state = strtoull(optarg, NULL, 0) | 1; break;
                case 'c': compact = strtoull(optarg, NULL, 0); break;
                case 'e': expect_path = optarg; break;
                case 'h': usage(); return 0;
                default: usage(); return 1;
                }
        }
        if (!state_dir || optind != argc || records == 0 || vm_id == 0) {
                usage();
                return 1;
        }
        if (compact && compact < 16) {
                fprintf(stderr, "gen-journal: --compact takes 16.. as memconvd does, or 0 for none\n");
                return 1;
        }
        dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                fprintf(stderr, "gen-journal: %s: %s\n", state_dir, strerror(errno));
                return 1;
        }
        s.bm = calloc((GUEST_PAGES + 63) / 64, sizeof(uint64_t));
        if (!s.bm)
                return 1;
        for (size_t i = 0; i < 16; i++) {
                uuid[i] = (uint8_t) rng();
                token[i] = (uint8_t) rng();
        }
        uuid[6] = (uuid[6] & 0x0f) | 0x40; /* a version 4 uuid, as libvirt would give */
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        clock_gettime(CLOCK_REALTIME, &now);
        /* The conversions happened over the last minutes, ~60 us apart. */
        s.realtime_usec = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000 - records * 60;

        /* The VM record starts the journal (persist_vm_created()). */
        fill_vm(&vm, vm_id, name, uuid, token);
        {
                Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;

                rec.realtime_usec = s.realtime_usec;
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
                rec.vm = &vm;
                if (encode(&rec, &buf, &len, &cap) < 0)
                        return 1;
                file_records++;
        }
        /* Its regions, as the VMM registers them (persist_region()): private at start. */
        for (size_t i = 0; i < N_REGIONS; i++) {
                Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
                Memconv__JournalRegion m = MEMCONV__JOURNAL_REGION__INIT;

                m.slot = regions[i].slot;
                m.gpa = regions[i].gpa;
                m.size = regions[i].size;
                m.has_shared = true;
                m.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                rec.realtime_usec = s.realtime_usec;
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
                rec.region = &m;
                if (encode(&rec, &buf, &len, &cap) < 0)
                        return 1;
                bm_set(s.bm, regions[i].gpa >> PAGE_SHIFT, regions[i].size >> PAGE_SHIFT, true);
                file_records++;
                since++;
        }
        /* The conversions (persist_change()), shared and private in turn. */
        for (uint64_t i = 0; i < records; i++) {
                Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
                Memconv__HistoryRecord h;

                r = convert_one(&s, i % 2 == 1, &h);
                if (r < 0) {
                        fprintf(stderr, "gen-journal: cannot choose conversion %" PRIu64 ": %s\n", i + 1,
                                strerror(-r));
                        return 1;
                }
                rec.realtime_usec = h.realtime_usec;
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
                rec.change = &h;
                if (encode(&rec, &buf, &len, &cap) < 0)
                        return 1;
                file_records++;
                if (compact && ++since >= compact) {
                        /* The daemon's compaction: the file becomes the snapshot, if it can be written. */
                        size_t slen = 0, scap = 0;
                        uint8_t *sbuf = NULL;
                        uint64_t snap_records = 0;

                        r = snapshot(&s, &vm, &sbuf, &slen, &scap, &snap_payload, &snap_records);
                        if (snap_payload > largest_snap)
                                largest_snap = snap_payload;
                        if (r == 0) {
                                free(buf);
                                buf = sbuf;
                                len = slen;
                                cap = scap;
                                file_records = snap_records;
                                snapshots++;
                        } else if (r == -EMSGSIZE) {
                                snapshots_too_large++;
                        } else {
                                fprintf(stderr, "gen-journal: cannot build a snapshot: %s\n", strerror(-r));
                                return 1;
                        }
                        since = 0;
                }
        }
        /* Whether this state could be compacted at all: the size of its snapshot. */
        {
                size_t slen = 0, scap = 0;
                uint8_t *sbuf = NULL;
                uint64_t snap_records = 0;

                r = snapshot(&s, &vm, &sbuf, &slen, &scap, &snap_payload, &snap_records);
                free(sbuf);
                if (r < 0 && r != -EMSGSIZE) {
                        fprintf(stderr, "gen-journal: cannot build a snapshot: %s\n", strerror(-r));
                        return 1;
                }
        }

        t_write = bench_now_ns();
        snprintf(file, sizeof(file), "vm-%" PRIu64 ".journal", vm_id);
        r = mc_journal_rewrite_buffer(dirfd, file, buf, len, NULL);
        if (r < 0) {
                fprintf(stderr, "gen-journal: cannot write %s/%s: %s\n", state_dir, file, strerror(-r));
                return 1;
        }
        t_write = bench_now_ns() - t_write;

        if (expect_path) {
                e.f = fopen(expect_path, "we");
                if (!e.f) {
                        fprintf(stderr, "gen-journal: %s: %s\n", expect_path, strerror(errno));
                        return 1;
                }
        }
        r = bm_private_runs(s.bm, expect_fn, &e);
        if (e.f && (fclose(e.f) != 0 || r < 0)) {
                fprintf(stderr, "gen-journal: cannot write %s\n", expect_path);
                return 1;
        }

        printf("{\"name\": \"gen-journal\", \"file\": \"%s/%s\", \"vm_id\": %" PRIu64 ", \"vm_name\": \"%s\", "
               "\"change_records\": %" PRIu64 ", \"file_records\": %" PRIu64 ", \"file_bytes\": %zu, "
               "\"compact\": %" PRIu64 ", \"snapshots\": %" PRIu64 ", \"snapshots_too_large\": %" PRIu64 ", "
               "\"largest_snapshot_payload\": %zu, \"final_snapshot_payload\": %zu, \"payload_max\": %u, "
               "\"private_ranges\": %" PRIu64 ", \"private_bytes\": %" PRIu64 ", \"ram_bytes\": %" PRIu64 ", "
               "\"last_seq\": %" PRIu64 ", \"explicit_to_private\": %" PRIu64 ", \"explicit_to_shared\": %" PRIu64 ", "
               "\"implicit_to_private\": %" PRIu64 ", \"implicit_to_shared\": %" PRIu64 ", "
               "\"bytes_to_private\": %" PRIu64 ", \"bytes_to_shared\": %" PRIu64 ", \"rolled_back\": %" PRIu64 ", "
               "\"generate_s\": %.3f, \"write_s\": %.3f}\n",
               state_dir, file, vm_id, name, records, file_records, MC_JOURNAL_HEADER_SIZE + len, compact,
               snapshots, snapshots_too_large, largest_snap, snap_payload, MC_JOURNAL_PAYLOAD_MAX, e.ranges,
               e.bytes, (uint64_t) (GUEST_END - 2 * GIB), s.seq, s.conversions[0][1], s.conversions[0][0],
               s.conversions[1][1], s.conversions[1][0], s.bytes_to_private, s.bytes_to_shared, s.rolled_back,
               (double) (bench_now_ns() - t0 - t_write) / 1e9, (double) t_write / 1e9);
        free(buf);
        free(s.bm);
        free(s.pool);
        close(dirfd);
        return 0;
}
