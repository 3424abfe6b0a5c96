// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test-journal.c - CUnit suite for lib/journal.c.
 *
 * Every test works on real files in a private mkdtemp() directory (removed
 * by the suite tear-down). Records are compared by their packed bytes, which
 * protobuf-c produces deterministically, so a round trip is checked field by
 * field without naming every field. Damage is done to the file itself
 * (ftruncate, pwrite of flipped bytes, appended zeros) and the reader must
 * return exactly the records before the damage and name the offset where
 * the valid part ends.
 */
#undef NDEBUG

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "journal.h"
#include "macro.h"

#define N_MANY 100000
#define SENTINEL_PTR ((void *) 0x5a5a5a5a)

static char tmpdir[PATH_MAX];
static int dirfd_ = -EBADF;

/* ------------------------------------------------------------ fixtures */

/**
 * dir_open() - a directory stream over the test directory, from its start
 *
 * The stream works on a dup() of the directory fd, which shares the read
 * position with it and with every earlier stream: rewind, or a second scan
 * would see nothing.
 *
 * Return: the stream (closedir() it), NULL on failure
 */
static DIR *dir_open(void)
{
        int fd = fcntl(dirfd_, F_DUPFD_CLOEXEC, 3);
        DIR *d;

        if (fd < 0)
                return NULL;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return NULL;
        }
        rewinddir(d);
        return d;
}

/**
 * suite_init() - create the private directory
 * Return: 0, or -1 if it could not be created
 */
static int suite_init(void)
{
        const char *base = getenv("TMPDIR");

        snprintf(tmpdir, sizeof(tmpdir), "%s/test-journal.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir))
                return -1;
        dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return dirfd_ < 0 ? -1 : 0;
}

/**
 * suite_cleanup() - remove every file of the private directory, then it
 * Return: 0
 */
static int suite_cleanup(void)
{
        DIR *d = dir_open();
        struct dirent *de;

        while (d && (de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd_, de->d_name, 0) < 0)
                        unlinkat(dirfd_, de->d_name, AT_REMOVEDIR);
        }
        if (d)
                closedir(d);
        dirfd_ = safe_close(dirfd_);
        rmdir(tmpdir);
        return 0;
}

/**
 * file_new() - create (or empty) @name in the test directory
 * @name: file name
 * Return: a read-write fd, owned by the caller
 */
static int file_new(const char *name)
{
        int fd = openat(dirfd_, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        CU_ASSERT_FATAL(fd >= 0);
        return fd;
}

/**
 * file_bytes() - the whole content of @name
 * @name: file name
 * @ret_len: its length
 * Return: malloc()ed copy (NULL if the file does not exist)
 */
static uint8_t *file_bytes(const char *name, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *p;

        if (fd < 0)
                return NULL;
        CU_ASSERT_FATAL(fstat(fd, &st) == 0);
        p = malloc((size_t) st.st_size + 1);
        CU_ASSERT_FATAL(p != NULL);
        CU_ASSERT_FATAL(pread(fd, p, (size_t) st.st_size, 0) == st.st_size);
        *ret_len = (size_t) st.st_size;
        return p;
}

/**
 * file_size() - size of the file behind @fd
 * @fd: borrowed
 * Return: its size
 */
static uint64_t file_size(int fd)
{
        struct stat st;

        CU_ASSERT_FATAL(fstat(fd, &st) == 0);
        return (uint64_t) st.st_size;
}

/**
 * tmp_files() - how many "*.tmp.*" files the test directory holds
 * Return: the count
 */
static int tmp_files(void)
{
        DIR *d = dir_open();
        struct dirent *de;
        int n = 0;

        CU_ASSERT_FATAL(d != NULL);
        while ((de = readdir(d)))
                if (strstr(de->d_name, ".tmp."))
                        n++;
        closedir(d);
        return n;
}

/**
 * struct records - an encoded batch and where each record starts
 * @buf: records as mc_journal_encode() framed them (no header)
 * @len: bytes used
 * @cap: bytes allocated
 * @starts: file offset of each record (header counted)
 * @n: number of records
 */
struct records {
        uint8_t *buf;
        size_t len, cap;
        uint64_t starts[64];
        size_t n;
};

/**
 * records_add() - encode @rec into @rs, remembering its file offset
 * @rs: the batch
 * @rec: the record
 */
static void records_add(struct records *rs, const Memconv__JournalRecord *rec)
{
        CU_ASSERT_FATAL(rs->n < ELEMENTSOF(rs->starts));
        rs->starts[rs->n++] = MC_JOURNAL_HEADER_SIZE + rs->len;
        CU_ASSERT_EQUAL_FATAL(mc_journal_encode(rec, &rs->buf, &rs->len, &rs->cap), 0);
}

/**
 * journal_write() - create @name holding a header and the records of @rs
 * @name: file name
 * @rs: the records
 * Return: read-write fd of the file, owned by the caller
 */
static int journal_write(const char *name, const struct records *rs)
{
        int fd = file_new(name);

        CU_ASSERT_EQUAL_FATAL(mc_journal_header_write(fd), 0);
        CU_ASSERT_EQUAL_FATAL(mc_journal_append(fd, rs->buf, rs->len), 0);
        CU_ASSERT_EQUAL_FATAL(file_size(fd), MC_JOURNAL_HEADER_SIZE + rs->len);
        return fd;
}

/**
 * packed() - @rec packed
 * @rec: any record
 * @ret_len: its length
 * Return: malloc()ed bytes
 */
static uint8_t *packed(const Memconv__JournalRecord *rec, size_t *ret_len)
{
        size_t len = memconv__journal_record__get_packed_size(rec);
        uint8_t *p = malloc(len + 1);

        CU_ASSERT_FATAL(p != NULL);
        CU_ASSERT_EQUAL_FATAL(memconv__journal_record__pack(rec, p), len);
        *ret_len = len;
        return p;
}

/**
 * same_record() - whether @a and @b pack to the same bytes
 * Return: 1 if so
 */
static int same_record(const Memconv__JournalRecord *a, const Memconv__JournalRecord *b)
{
        size_t la, lb;
        _cleanup_free_ uint8_t *pa = packed(a, &la);
        _cleanup_free_ uint8_t *pb = packed(b, &lb);

        return la == lb && memcmp(pa, pb, la) == 0 && a->body_case == b->body_case;
}

/**
 * read_check() - read @fd and compare with @want
 * @fd: the journal
 * @want: the records expected, in order
 * @n: their number
 * @ret_valid_end: where the reader says the valid part ends
 * @ret_reason: its reason (copied into a static buffer), "" if clean
 * Return: mc_journal_reader_tail()'s result (0 clean, 1 invalid tail)
 */
static int read_check(int fd, const Memconv__JournalRecord *const *want, size_t n,
                      uint64_t *ret_valid_end, const char **ret_reason)
{
        static char reason_copy[256];
        struct mc_journal_reader *r = NULL;
        Memconv__JournalRecord *rec;
        const char *reason = NULL;
        size_t got = 0;
        int k, tail;

        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_open(fd, &r, NULL), 0);
        while ((k = mc_journal_reader_next(r, &rec)) == 1) {
                CU_ASSERT_FATAL(got < n);
                CU_ASSERT(same_record(rec, want[got]));
                memconv__journal_record__free_unpacked(rec, NULL);
                got++;
        }
        CU_ASSERT_EQUAL(k, 0);
        CU_ASSERT_EQUAL(got, n);
        tail = mc_journal_reader_tail(r, ret_valid_end, &reason);
        CU_ASSERT(tail == 0 || tail == 1);
        CU_ASSERT((tail == 1) == (reason != NULL));
        snprintf(reason_copy, sizeof(reason_copy), "%s", reason ? reason : "");
        *ret_reason = reason_copy;
        /* sticky end */
        CU_ASSERT_EQUAL(mc_journal_reader_next(r, &rec), 0);
        mc_journal_reader_free(r);
        return tail;
}

/* Sample records: storage for the sub-messages, filled by sample_init(). */
struct sample {
        uint8_t uuid[16], token[32];
        Memconv__JournalVm vm;
        Memconv__JournalRegion region;
        Memconv__HistoryRecord change;
        Memconv__RegionInfo reg_info[3];
        Memconv__RegionInfo *reg_ptrs[3];
        Memconv__Range *ranges;
        Memconv__Range **range_ptrs;
        uint64_t hist_buckets[20];
        Memconv__Histogram hist;
        Memconv__ConversionStats stats;
        Memconv__JournalSnapshot snap;
        Memconv__JournalRecord r_vm, r_region, r_change, r_snap, r_detached, r_detached0;
};

/**
 * sample_init() - fill @s with one record of every body type
 * @s: storage
 * @n_ranges: private ranges in the snapshot
 */
static void sample_init(struct sample *s, size_t n_ranges)
{
        memset(s, 0, sizeof(*s));
        for (size_t i = 0; i < sizeof(s->uuid); i++)
                s->uuid[i] = (uint8_t) (0xa0 + i);
        for (size_t i = 0; i < sizeof(s->token); i++)
                s->token[i] = (uint8_t) (i * 37);

        s->vm = (Memconv__JournalVm) MEMCONV__JOURNAL_VM__INIT;
        s->vm.vm_id = 42;
        s->vm.uuid = (ProtobufCBinaryData) { sizeof(s->uuid), s->uuid };
        s->vm.name = (char *) "guest-ä";
        s->vm.cc_type = 2;
        s->vm.arch = 1;
        s->vm.token = (ProtobufCBinaryData) { sizeof(s->token), s->token };
        s->vm.uid = 107;

        s->region = (Memconv__JournalRegion) MEMCONV__JOURNAL_REGION__INIT;
        s->region.slot = 3;
        s->region.gpa = 1ULL << 32;
        s->region.size = 8ULL << 30;
        s->region.has_shared = 1;
        s->region.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        s->region.removed = 0;

        s->change = (Memconv__HistoryRecord) MEMCONV__HISTORY_RECORD__INIT;
        s->change.seq = 1;
        s->change.realtime_usec = 1700000000000000ULL;
        s->change.gpa = 0x1234000;
        s->change.size = 0x200000;
        s->change.from = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        s->change.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        s->change.implicit = 1;
        s->change.source = 1;
        s->change.vcpu = 7;
        s->change.request_id = 99;
        s->change.decision_id = 100;
        s->change.result = MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED;
        s->change.decision_latency_usec = 35;
        s->change.code = 0;

        for (size_t i = 0; i < 3; i++) {
                s->reg_info[i] = (Memconv__RegionInfo) MEMCONV__REGION_INFO__INIT;
                s->reg_info[i].slot = (uint32_t) i;
                s->reg_info[i].gpa = (uint64_t) i << 32;
                s->reg_info[i].size = 1ULL << 30;
                s->reg_info[i].has_shared = i != 1;
                s->reg_ptrs[i] = &s->reg_info[i];
        }
        s->ranges = calloc(n_ranges + 1, sizeof(*s->ranges));
        s->range_ptrs = calloc(n_ranges + 1, sizeof(*s->range_ptrs));
        CU_ASSERT_FATAL(s->ranges && s->range_ptrs);
        for (size_t i = 0; i < n_ranges; i++) {
                s->ranges[i] = (Memconv__Range) MEMCONV__RANGE__INIT;
                s->ranges[i].gpa = 0x100000000ULL + i * 0x3000;
                s->ranges[i].size = 0x1000;
                s->range_ptrs[i] = &s->ranges[i];
        }
        for (size_t i = 0; i < ELEMENTSOF(s->hist_buckets); i++)
                s->hist_buckets[i] = i * i;
        s->hist = (Memconv__Histogram) MEMCONV__HISTOGRAM__INIT;
        s->hist.n_buckets = ELEMENTSOF(s->hist_buckets);
        s->hist.buckets = s->hist_buckets;
        s->hist.count = 2470;
        s->stats = (Memconv__ConversionStats) MEMCONV__CONVERSION_STATS__INIT;
        s->stats.explicit_to_private = 10;
        s->stats.implicit_to_shared = 5;
        s->stats.bytes_to_private = 1ULL << 40;
        s->stats.decision_latency = &s->hist;
        s->snap = (Memconv__JournalSnapshot) MEMCONV__JOURNAL_SNAPSHOT__INIT;
        s->snap.vm = &s->vm;
        s->snap.n_regions = 3;
        s->snap.regions = s->reg_ptrs;
        s->snap.n_private_ranges = n_ranges;
        s->snap.private_ranges = s->range_ptrs;
        s->snap.stats = &s->stats;
        s->snap.last_seq = 123456;

#define REC(field, member, value, ucase)                                     \
        s->field = (Memconv__JournalRecord) MEMCONV__JOURNAL_RECORD__INIT;   \
        s->field.realtime_usec = 1700000000000000ULL + __LINE__;             \
        s->field.body_case = MEMCONV__JOURNAL_RECORD__BODY_##ucase;          \
        s->field.member = (value)
        REC(r_vm, vm, &s->vm, VM);
        REC(r_region, region, &s->region, REGION);
        REC(r_change, change, &s->change, CHANGE);
        REC(r_snap, snapshot, &s->snap, SNAPSHOT);
        REC(r_detached, detached, 1, DETACHED);
        REC(r_detached0, detached, 0, DETACHED);
#undef REC
}

/**
 * sample_done() - free what sample_init() allocated
 * @s: storage
 */
static void sample_done(struct sample *s)
{
        free(s->ranges);
        free(s->range_ptrs);
}

/**
 * five_records() - a journal of five records with a large one in the middle
 * @s: sample storage (initialised here)
 * @rs: the batch to fill
 * @want: the five records, for read_check()
 */
static void five_records(struct sample *s, struct records *rs, const Memconv__JournalRecord *want[5])
{
        sample_init(s, 50);
        want[0] = &s->r_vm;
        want[1] = &s->r_region;
        want[2] = &s->r_snap;
        want[3] = &s->r_change;
        want[4] = &s->r_detached;
        for (size_t i = 0; i < 5; i++)
                records_add(rs, want[i]);
}

/* ------------------------------------------------------------ tests */

static void test_crc32c(void)
{
        uint8_t buf[32];
        const char *s = "123456789";

        CU_ASSERT_EQUAL(mc_crc32c(0, s, 9), 0xe3069283U);
        CU_ASSERT_EQUAL(mc_crc32c(0, "", 0), 0);
        /* RFC 3720 B.4 */
        memset(buf, 0, sizeof(buf));
        CU_ASSERT_EQUAL(mc_crc32c(0, buf, sizeof(buf)), 0x8a9136aaU);
        memset(buf, 0xff, sizeof(buf));
        CU_ASSERT_EQUAL(mc_crc32c(0, buf, sizeof(buf)), 0x62a8ab43U);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) i;
        CU_ASSERT_EQUAL(mc_crc32c(0, buf, sizeof(buf)), 0x46dd794eU);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (31 - i);
        CU_ASSERT_EQUAL(mc_crc32c(0, buf, sizeof(buf)), 0x113fdb5cU);
        /* continuing a CRC equals one pass over the concatenation */
        for (size_t k = 0; k <= 9; k++)
                CU_ASSERT_EQUAL(mc_crc32c(mc_crc32c(0, s, k), s + k, 9 - k), 0xe3069283U);
}

/**
 * test_crc32c_software() - the software path alone on the known vectors:
 * what mc_crc32c() falls back to on a CPU without SSE4.2
 */
static void test_crc32c_software(void)
{
        uint8_t buf[32];
        const char *s = "123456789";

        CU_ASSERT_EQUAL(mc_crc32c_sw(0, s, 9), 0xe3069283U);
        CU_ASSERT_EQUAL(mc_crc32c_sw(0, "", 0), 0);
        memset(buf, 0, sizeof(buf));
        CU_ASSERT_EQUAL(mc_crc32c_sw(0, buf, sizeof(buf)), 0x8a9136aaU);
        memset(buf, 0xff, sizeof(buf));
        CU_ASSERT_EQUAL(mc_crc32c_sw(0, buf, sizeof(buf)), 0x62a8ab43U);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) i;
        CU_ASSERT_EQUAL(mc_crc32c_sw(0, buf, sizeof(buf)), 0x46dd794eU);
        for (size_t k = 0; k <= 9; k++)
                CU_ASSERT_EQUAL(mc_crc32c_sw(mc_crc32c_sw(0, s, k), s + k, 9 - k), 0xe3069283U);
}

/**
 * crc_rand() - xorshift64, a fixed sequence from the seed @state holds
 * @state: the generator's state, not 0
 * Return: the next value
 */
static uint64_t crc_rand(uint64_t *state)
{
        uint64_t x = *state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *state = x;
}

/**
 * crc_check_agree() - mc_crc32c(), mc_crc32c_sw() and (when the CPU has it)
 * mc_crc32c_hw() give the same CRC of @p, from @seed
 * @seed: the CRC to continue
 * @p: data
 * @len: its length
 */
static void crc_check_agree(uint32_t seed, const uint8_t *p, size_t len)
{
        uint32_t sw = mc_crc32c_sw(seed, p, len), hw = ~sw;

        CU_ASSERT_EQUAL(mc_crc32c(seed, p, len), sw);
        if (mc_crc32c_hw_available()) {
                CU_ASSERT_EQUAL(mc_crc32c_hw(seed, p, len, &hw), 0);
                CU_ASSERT_EQUAL(hw, sw);
        } else {
                CU_ASSERT_EQUAL(mc_crc32c_hw(seed, p, len, &hw), -EOPNOTSUPP);
                CU_ASSERT_EQUAL(hw, ~sw);  /* untouched */
        }
}

/**
 * test_crc32c_paths_agree() - the hardware and software paths agree on
 * random data of every length 0..300 at every misalignment 0..15, continued
 * from 0 and from random CRCs, and on large buffers
 */
static void test_crc32c_paths_agree(void)
{
        enum { BIG = (1 << 20) + 37 };
        _cleanup_free_ uint8_t *buf = malloc(BIG + 16);
        uint64_t st = 0x9e3779b97f4a7c15ULL;
        uint32_t v = 0;

        CU_ASSERT_FATAL(buf != NULL);
        for (size_t i = 0; i < BIG + 16; i++)
                buf[i] = (uint8_t) crc_rand(&st);
        for (size_t len = 0; len <= 300; len++)
                for (size_t mis = 0; mis < 16; mis++) {
                        crc_check_agree(0, buf + mis + len, len);
                        crc_check_agree((uint32_t) crc_rand(&st), buf + 2 * mis + len, len);
                }
        for (size_t mis = 0; mis < 8; mis++) {
                crc_check_agree(0, buf + mis, BIG - mis);
                crc_check_agree((uint32_t) crc_rand(&st), buf + mis, 65536 + mis);
        }
        memset(buf, 0, BIG);
        crc_check_agree(0, buf, BIG);
        crc_check_agree(0xffffffffU, buf, BIG);
        crc_check_agree(0, (const uint8_t *) "123456789", 9);
        if (mc_crc32c_hw_available()) {
                CU_ASSERT_EQUAL(mc_crc32c_hw(0, "123456789", 9, &v), 0);
                CU_ASSERT_EQUAL(v, 0xe3069283U);
        }
        CU_ASSERT_EQUAL(mc_crc32c_hw(0, NULL, 1, &v), -EINVAL);
        CU_ASSERT_EQUAL(mc_crc32c_hw(0, "x", 1, NULL), -EINVAL);
}

/**
 * decode_agrees() - mc_journal_decode_change() on @p, held to protobuf-c
 * @p: a payload
 * @len: its length
 *
 * Where the decoder says 1, protobuf-c must decode the same change record
 * without unknown fields; where it says 0, the outputs must be untouched.
 *
 * Return: what mc_journal_decode_change() returned.
 */
static int decode_agrees(const uint8_t *p, size_t len)
{
        Memconv__HistoryRecord c, poison;
        Memconv__JournalRecord mine = MEMCONV__JOURNAL_RECORD__INIT, *rec;
        uint64_t rt = 0x5a5a5a5a5a5a5a5aULL;
        int k;

        memset(&c, 0xa5, sizeof(c));
        poison = c;
        k = mc_journal_decode_change(p, len, &rt, &c);
        CU_ASSERT(k == 0 || k == 1);
        if (k != 1) {
                CU_ASSERT_EQUAL(rt, 0x5a5a5a5a5a5a5a5aULL);
                CU_ASSERT(memcmp(&c, &poison, sizeof(c)) == 0);
                return k;
        }
        rec = memconv__journal_record__unpack(NULL, len, p);
        CU_ASSERT_FATAL(rec != NULL);
        mine.realtime_usec = rt;
        mine.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        mine.change = &c;
        CU_ASSERT_EQUAL(rec->body_case, MEMCONV__JOURNAL_RECORD__BODY_CHANGE);
        CU_ASSERT_EQUAL(rec->base.n_unknown_fields, 0);
        CU_ASSERT_EQUAL(rec->change->base.n_unknown_fields, 0);
        CU_ASSERT_EQUAL(c.base.n_unknown_fields, 0);
        CU_ASSERT(same_record(rec, &mine));
        CU_ASSERT(memcmp(rec->change, &c, sizeof(c)) == 0);
        memconv__journal_record__free_unpacked(rec, NULL);
        return k;
}

/**
 * test_decode_change() - the change decoder agrees with protobuf-c on
 * change records with random field values, on every truncation and every
 * byte value at every position of one, and refuses the other bodies and
 * the forms it leaves to protobuf-c
 */
static void test_decode_change(void)
{
        struct sample s;
        Memconv__HistoryRecord c = MEMCONV__HISTORY_RECORD__INIT;
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        const Memconv__JournalRecord *others[] = { &s.r_vm, &s.r_region, &s.r_snap, &s.r_detached };
        uint64_t st = 0x2545f4914f6cdd1dULL, rt;
        size_t len;
        uint8_t *p;

        sample_init(&s, 3);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        rec.change = &c;
        for (int i = 0; i < 2000; i++) {
                /* every width of varint: from 0 to all 64 bits */
                uint64_t *u64[] = { &c.seq, &c.realtime_usec, &c.gpa, &c.size, &c.request_id,
                                    &c.decision_id, &c.decision_latency_usec, &rec.realtime_usec };

                for (size_t f = 0; f < ELEMENTSOF(u64); f++) {
                        unsigned shift = (unsigned) (crc_rand(&st) % 65);  /* 64: the value 0 */
                        uint64_t v = crc_rand(&st);

                        *u64[f] = shift == 64 ? 0 : v >> shift;
                }
                c.from = (Memconv__Attribute) (int32_t) (crc_rand(&st) % 4) - 1;
                c.to = (Memconv__Attribute) (int32_t) crc_rand(&st);
                c.implicit = crc_rand(&st) & 1;
                c.source = (Memconv__ConvertSource) (int32_t) (crc_rand(&st) % 5);
                c.vcpu = (uint32_t) crc_rand(&st);
                c.result = (Memconv__ChangeResult) (int32_t) (crc_rand(&st) % 4);
                c.code = (Memconv__Code) (int32_t) (crc_rand(&st) % 3);
                p = packed(&rec, &len);
                CU_ASSERT_EQUAL(decode_agrees(p, len), 1);
                if (i < 20)
                        for (size_t cut = 0; cut < len; cut++)
                                (void) decode_agrees(p, cut);
                if (i < 5)
                        for (size_t at = 0; at < len; at++) {
                                uint8_t was = p[at];

                                for (unsigned b = 0; b < 256; b++) {
                                        p[at] = (uint8_t) b;
                                        (void) decode_agrees(p, len);
                                }
                                p[at] = was;
                        }
                free(p);
        }
        /* an empty change body is still a change */
        c = (Memconv__HistoryRecord) MEMCONV__HISTORY_RECORD__INIT;
        rec.realtime_usec = 0;
        p = packed(&rec, &len);
        CU_ASSERT_EQUAL(decode_agrees(p, len), 1);
        free(p);
        for (size_t i = 0; i < ELEMENTSOF(others); i++) {
                p = packed(others[i], &len);
                CU_ASSERT_EQUAL(decode_agrees(p, len), 0);
                free(p);
        }

        /* forms left to protobuf-c, valid or not */
        {
                static const struct {
                        const char *what;
                        size_t len;
                        uint8_t bytes[24];
                } cases[] = {
                        { "empty payload", 0, { 0 } },
                        { "realtime only", 2, { 0x08, 0x01 } },
                        { "change twice (merged)", 8, { 0x62, 0x02, 0x08, 0x01, 0x62, 0x02, 0x08, 0x02 } },
                        { "realtime twice", 6, { 0x08, 0x01, 0x08, 0x02, 0x62, 0x00 } },
                        { "field twice in change", 6, { 0x62, 0x04, 0x08, 0x01, 0x08, 0x02 } },
                        { "unknown field in record", 4, { 0x62, 0x00, 0x78, 0x01 } },
                        { "unknown field in change", 4, { 0x62, 0x02, 0x78, 0x01 } },
                        { "field 0 in change", 4, { 0x62, 0x02, 0x00, 0x01 } },
                        { "wrong wire type in change", 7, { 0x62, 0x05, 0x19, 1, 2, 3, 4 } },
                        { "realtime as length", 4, { 0x0a, 0x00, 0x62, 0x00 } },
                        { "change as varint", 2, { 0x60, 0x01 } },
                        { "6-byte length prefix", 8, { 0x62, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 } },
                        { "11-byte varint", 14, { 0x62, 0x0c, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                  0xff, 0xff, 0xff, 0xff, 0x01 } },
                        { "10-byte bool", 13, { 0x62, 0x0b, 0x38, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                                0x80, 0x80, 0x80, 0x02 } },
                        { "6-byte tag", 8, { 0x62, 0x06, 0x88, 0x80, 0x80, 0x80, 0x80, 0x00 } },
                        { "change past the end", 4, { 0x62, 0x05, 0x08, 0x01 } },
                        { "truncated varint", 4, { 0x62, 0x02, 0x08, 0x81 } },
                        { "vm body", 2, { 0x52, 0x00 } },
                        { "detached body", 2, { 0x70, 0x01 } },
                };

                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        int k = decode_agrees(cases[i].bytes, cases[i].len);

                        if (k != 0)
                                fprintf(stderr, "decode_change accepted: %s\n", cases[i].what);
                        CU_ASSERT_EQUAL(k, 0);
                }
        }
        /* non-canonical but within protobuf-c's limits: decoded, the same */
        {
                static const uint8_t ok[] = { 0x88, 0x80, 0x00, 0x05, 0xe2, 0x80, 0x00, 0x05,
                                              0x98, 0x80, 0x80, 0x00, 0x07 };

                CU_ASSERT_EQUAL(decode_agrees(ok, 13), 1);
        }
        CU_ASSERT_EQUAL(mc_journal_decode_change(NULL, 1, &rt, &c), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_decode_change("", 0, NULL, &c), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_decode_change("", 0, &rt, NULL), -EINVAL);
        sample_done(&s);
}

/**
 * test_peek_skip() - peek() and skip() walk a journal as next() does, never
 * give a payload next() would report, and next() after peek() decodes it
 */
static void test_peek_skip(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[5];
        struct mc_journal_reader *r = NULL;
        Memconv__JournalRecord *rec;
        _cleanup_free_ uint8_t *file = NULL;
        const void *payload, *again;
        size_t plen, again_len, n = 0, flen;
        uint64_t off;

        five_records(&s, &rs, want);  /* initialises @s */
        flen = MC_JOURNAL_HEADER_SIZE + rs.len;
        file = calloc(1, flen);
        CU_ASSERT_FATAL(file != NULL);
        {
                int fd = file_new("peek");
                size_t hl;
                _cleanup_free_ uint8_t *hdr = NULL;

                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_EQUAL_FATAL(mc_journal_header_write(fd), 0);
                close(fd);
                hdr = file_bytes("peek", &hl);
                CU_ASSERT_EQUAL_FATAL(hl, MC_JOURNAL_HEADER_SIZE);
                memcpy(file, hdr, hl);
        }
        memcpy(file + MC_JOURNAL_HEADER_SIZE, rs.buf, rs.len);

        /* alternately skip and next() */
        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_new(file, flen, &r, NULL), 0);
        CU_ASSERT_EQUAL(mc_journal_reader_skip(r), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_reader_peek(NULL, &payload, &plen), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_reader_peek(r, NULL, &plen), -EINVAL);
        for (;;) {
                off = mc_journal_reader_offset(r);
                if (mc_journal_reader_peek(r, &payload, &plen) != 1)
                        break;
                CU_ASSERT_EQUAL(mc_journal_reader_peek(r, &again, &again_len), 1);
                CU_ASSERT(again == payload && again_len == plen);
                CU_ASSERT_EQUAL(mc_journal_reader_offset(r), off);
                if (n % 2) {
                        CU_ASSERT_EQUAL(mc_journal_reader_skip(r), 0);
                        CU_ASSERT_EQUAL(mc_journal_reader_skip(r), -EINVAL);
                } else {
                        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_next(r, &rec), 1);
                        CU_ASSERT(same_record(rec, want[n]));
                        memconv__journal_record__free_unpacked(rec, NULL);
                        CU_ASSERT_EQUAL(mc_journal_reader_skip(r), -EINVAL);
                }
                CU_ASSERT_EQUAL(mc_journal_reader_offset(r), off + MC_JOURNAL_FRAME_SIZE + plen);
                n++;
        }
        CU_ASSERT_EQUAL(n, 5);
        CU_ASSERT_EQUAL(mc_journal_reader_next(r, &rec), 0);
        CU_ASSERT_EQUAL(mc_journal_reader_tail(r, NULL, NULL), 0);
        CU_ASSERT_EQUAL(mc_journal_reader_peek(r, &payload, &plen), 0);
        mc_journal_reader_free(r);

        /* a bad CRC in the third record: peek() gives nothing, next() reports it */
        {
                size_t third = MC_JOURNAL_HEADER_SIZE;

                for (int i = 0; i < 2; i++)
                        third += MC_JOURNAL_FRAME_SIZE + (file[third] | file[third + 1] << 8 |
                                                          file[third + 2] << 16 | (size_t) file[third + 3] << 24);
                file[third + MC_JOURNAL_FRAME_SIZE] ^= 0x40;
                CU_ASSERT_EQUAL_FATAL(mc_journal_reader_new(file, flen, &r, NULL), 0);
                n = 0;
                while (mc_journal_reader_peek(r, &payload, &plen) == 1) {
                        CU_ASSERT_EQUAL(mc_journal_reader_skip(r), 0);
                        n++;
                }
                CU_ASSERT_EQUAL(n, 2);
                CU_ASSERT_EQUAL(mc_journal_reader_offset(r), third);
                CU_ASSERT_EQUAL(mc_journal_reader_next(r, &rec), 0);
                CU_ASSERT_EQUAL(mc_journal_reader_tail(r, &off, NULL), 1);
                CU_ASSERT_EQUAL(off, third);
                mc_journal_reader_free(r);
        }
        free(rs.buf);
        sample_done(&s);
}

static void test_header(void)
{
        static const uint8_t want[MC_JOURNAL_HEADER_SIZE] = {
                'M', 'C', 'J', 'O', 'U', 'R', 'N', '1', 1, 0, 0, 0, 0, 0, 0, 0,
        };
        _cleanup_close_ int fd = file_new("header");
        struct mc_journal_reader *r = NULL;
        Memconv__JournalRecord *rec = SENTINEL_PTR;
        uint8_t got[MC_JOURNAL_HEADER_SIZE + 1];
        uint64_t end = 0;
        const char *reason = SENTINEL_PTR;

        CU_ASSERT_EQUAL(mc_journal_header_write(fd), 0);
        CU_ASSERT_EQUAL(pread(fd, got, sizeof(got), 0), MC_JOURNAL_HEADER_SIZE);
        CU_ASSERT_EQUAL(memcmp(got, want, sizeof(want)), 0);
        CU_ASSERT_EQUAL(mc_journal_header_check(got, MC_JOURNAL_HEADER_SIZE, NULL), 0);

        /* a header-only journal: no records, clean end right after the header */
        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_open(fd, &r, NULL), 0);
        CU_ASSERT_EQUAL(mc_journal_reader_tail(r, &end, &reason), -EBUSY);
        CU_ASSERT_EQUAL(end, 0);
        CU_ASSERT_EQUAL(mc_journal_reader_offset(r), MC_JOURNAL_HEADER_SIZE);
        CU_ASSERT_EQUAL(mc_journal_reader_next(r, &rec), 0);
        CU_ASSERT_PTR_EQUAL(rec, SENTINEL_PTR);
        CU_ASSERT_EQUAL(mc_journal_reader_tail(r, &end, &reason), 0);
        CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE);
        CU_ASSERT_PTR_NULL(reason);
        CU_ASSERT_EQUAL(mc_journal_reader_size(r), MC_JOURNAL_HEADER_SIZE);
        CU_ASSERT_PTR_NULL(mc_journal_reader_free(r));
        CU_ASSERT_PTR_NULL(mc_journal_reader_free(NULL));
}

static void test_bad_header(void)
{
        static const struct {
                const char *bytes;
                size_t len;
                int err;
        } cases[] = {
                { "", 0, -ENODATA },
                { "MCJOURN1\1\0\0", 11, -EBADMSG },
                { "MCJOURN2\1\0\0\0\0\0\0\0", 16, -EBADMSG },
                { "mcjourn1\1\0\0\0\0\0\0\0", 16, -EBADMSG },
                { "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, -EBADMSG },
                { "MCJOURN1\2\0\0\0\0\0\0\0", 16, -EPROTONOSUPPORT },
                { "MCJOURN1\0\0\0\0\0\0\0\0", 16, -EPROTONOSUPPORT },
                { "MCJOURN1\1\0\0\1\0\0\0\0", 16, -EPROTONOSUPPORT },
                { "MCJOURN1\1\0\0\0\1\0\0\0", 16, -EPROTONOSUPPORT },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_close_ int fd = file_new("badheader");
                struct mc_journal_reader *r = SENTINEL_PTR;
                const char *reason = NULL;

                CU_ASSERT_EQUAL(mc_journal_header_check(cases[i].bytes, cases[i].len, &reason),
                                cases[i].err);
                CU_ASSERT_PTR_NOT_NULL(reason);

                CU_ASSERT_FATAL(pwrite(fd, cases[i].bytes, cases[i].len, 0) == (ssize_t) cases[i].len);
                reason = NULL;
                CU_ASSERT_EQUAL(mc_journal_reader_open(fd, &r, &reason), cases[i].err);
                CU_ASSERT_PTR_EQUAL(r, SENTINEL_PTR);
                CU_ASSERT_PTR_NOT_NULL(reason);
                reason = NULL;
                CU_ASSERT_EQUAL(mc_journal_reader_new(cases[i].bytes, cases[i].len, &r, &reason),
                                cases[i].err);
                CU_ASSERT_PTR_EQUAL(r, SENTINEL_PTR);
                CU_ASSERT_PTR_NOT_NULL(reason);
        }

        /* not a regular file; not readable */
        {
                int p[2];
                struct mc_journal_reader *r = SENTINEL_PTR;
                _cleanup_close_ int wfd = -EBADF;

                CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
                CU_ASSERT_EQUAL(mc_journal_reader_open(p[0], &r, NULL), -EBADFD);
                close(p[0]);
                close(p[1]);
                close(file_new("wronly"));
                wfd = openat(dirfd_, "wronly", O_WRONLY | O_CLOEXEC);
                CU_ASSERT_FATAL(wfd >= 0);
                CU_ASSERT_EQUAL(mc_journal_header_write(wfd), 0);
                CU_ASSERT_EQUAL(mc_journal_reader_open(wfd, &r, NULL), -EBADF);
                CU_ASSERT_PTR_EQUAL(r, SENTINEL_PTR);
        }
}

static void test_roundtrip(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[6];
        _cleanup_close_ int fd = -EBADF;
        struct mc_journal_reader *r = NULL;
        Memconv__JournalRecord *rec;
        uint64_t end;
        const char *reason;

        sample_init(&s, 5000);
        want[0] = &s.r_vm;
        want[1] = &s.r_region;
        want[2] = &s.r_change;
        want[3] = &s.r_snap;
        want[4] = &s.r_detached;
        want[5] = &s.r_detached0;
        for (size_t i = 0; i < 6; i++)
                records_add(&rs, want[i]);
        fd = journal_write("roundtrip", &rs);

        CU_ASSERT_EQUAL(read_check(fd, want, 6, &end, &reason), 0);
        CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + rs.len);
        CU_ASSERT_STRING_EQUAL(reason, "");

        /* and some fields by name, in case packing hid a loss */
        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_open(fd, &r, NULL), 0);
        for (size_t i = 0; i < 6; i++) {
                CU_ASSERT_EQUAL(mc_journal_reader_offset(r), rs.starts[i]);
                CU_ASSERT_EQUAL_FATAL(mc_journal_reader_next(r, &rec), 1);
                CU_ASSERT_EQUAL(rec->realtime_usec, want[i]->realtime_usec);
                CU_ASSERT_EQUAL(rec->body_case, want[i]->body_case);
                switch (rec->body_case) {
                case MEMCONV__JOURNAL_RECORD__BODY_VM:
                        CU_ASSERT_EQUAL(rec->vm->vm_id, 42);
                        CU_ASSERT_STRING_EQUAL(rec->vm->name, "guest-ä");
                        CU_ASSERT_EQUAL(rec->vm->token.len, 32);
                        CU_ASSERT_EQUAL(memcmp(rec->vm->uuid.data, s.uuid, 16), 0);
                        break;
                case MEMCONV__JOURNAL_RECORD__BODY_REGION:
                        CU_ASSERT_EQUAL(rec->region->size, 8ULL << 30);
                        CU_ASSERT_EQUAL(rec->region->initial, MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE);
                        break;
                case MEMCONV__JOURNAL_RECORD__BODY_CHANGE:
                        CU_ASSERT_EQUAL(rec->change->seq, 1);
                        CU_ASSERT_EQUAL(rec->change->vcpu, 7);
                        CU_ASSERT_EQUAL(rec->change->decision_latency_usec, 35);
                        break;
                case MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT:
                        CU_ASSERT_EQUAL_FATAL(rec->snapshot->n_private_ranges, 5000);
                        CU_ASSERT_EQUAL(rec->snapshot->private_ranges[4999]->gpa,
                                        0x100000000ULL + 4999 * 0x3000);
                        CU_ASSERT_EQUAL(rec->snapshot->n_regions, 3);
                        CU_ASSERT_EQUAL(rec->snapshot->last_seq, 123456);
                        CU_ASSERT_EQUAL(rec->snapshot->stats->decision_latency->buckets[19], 361);
                        break;
                case MEMCONV__JOURNAL_RECORD__BODY_DETACHED:
                        CU_ASSERT_EQUAL(rec->detached, i == 4);
                        break;
                default:
                        CU_FAIL("unexpected body");
                }
                memconv__journal_record__free_unpacked(rec, NULL);
        }
        CU_ASSERT_EQUAL(mc_journal_reader_next(r, &rec), 0);
        mc_journal_reader_free(r);

        /* the same bytes through the in-memory reader */
        {
                size_t len;
                _cleanup_free_ uint8_t *bytes = file_bytes("roundtrip", &len);
                size_t n = 0;

                CU_ASSERT_EQUAL_FATAL(mc_journal_reader_new(bytes, len, &r, NULL), 0);
                while (mc_journal_reader_next(r, &rec) == 1) {
                        CU_ASSERT(n < 6 && same_record(rec, want[n]));
                        memconv__journal_record__free_unpacked(rec, NULL);
                        n++;
                }
                CU_ASSERT_EQUAL(n, 6);
                CU_ASSERT_EQUAL(mc_journal_reader_tail(r, NULL, NULL), 0);
                mc_journal_reader_free(r);
        }

        free(rs.buf);
        sample_done(&s);
}

/**
 * vm_record_of_size() - a VM record whose payload is exactly @size bytes
 * @rec: the record to fill
 * @vm: its body
 * @name: buffer of at least @size bytes for the name
 * @size: the wanted payload size
 */
static void vm_record_of_size(Memconv__JournalRecord *rec, Memconv__JournalVm *vm, char *name,
                              size_t size)
{
        size_t l = size - 16;

        *vm = (Memconv__JournalVm) MEMCONV__JOURNAL_VM__INIT;
        *rec = (Memconv__JournalRecord) MEMCONV__JOURNAL_RECORD__INIT;
        rec->body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
        rec->vm = vm;
        vm->name = name;
        for (int i = 0; i < 8; i++) {
                size_t got;

                memset(name, 'n', l);
                name[l] = '\0';
                got = memconv__journal_record__get_packed_size(rec);
                if (got == size)
                        return;
                l += size - got;
        }
        CU_FAIL_FATAL("could not size the record");
}

static void test_encode_limits(void)
{
        struct sample s;
        Memconv__JournalRecord empty = MEMCONV__JOURNAL_RECORD__INIT, big;
        Memconv__JournalVm vm;
        _cleanup_free_ char *name = malloc(MC_JOURNAL_PAYLOAD_MAX + 2);
        uint8_t *buf = NULL, *buf0;
        size_t len = 0, cap = 0, len0, cap0;
        _cleanup_free_ uint8_t *copy = NULL;

        CU_ASSERT_FATAL(name != NULL);
        sample_init(&s, 100000); /* ~1.7 MiB of ranges */
        CU_ASSERT_EQUAL_FATAL(mc_journal_encode(&s.r_change, &buf, &len, &cap), 0);
        CU_ASSERT(len > MC_JOURNAL_FRAME_SIZE && cap >= len);
        buf0 = buf, len0 = len, cap0 = cap;
        copy = malloc(len);
        memcpy(copy, buf, len);

        /* refusals leave the buffer alone */
        CU_ASSERT_EQUAL(mc_journal_encode(&empty, &buf, &len, &cap), -EINVAL);
        empty.realtime_usec = 5; /* packs to something, still no body */
        CU_ASSERT_EQUAL(mc_journal_encode(&empty, &buf, &len, &cap), -EINVAL);
        CU_ASSERT(memconv__journal_record__get_packed_size(&s.r_snap) > MC_JOURNAL_PAYLOAD_MAX);
        CU_ASSERT_EQUAL(mc_journal_encode(&s.r_snap, &buf, &len, &cap), -EMSGSIZE);
        CU_ASSERT(buf == buf0 && len == len0 && cap == cap0);
        CU_ASSERT_EQUAL(memcmp(buf, copy, len), 0);

        /* the limit is inclusive */
        vm_record_of_size(&big, &vm, name, MC_JOURNAL_PAYLOAD_MAX + 1);
        CU_ASSERT_EQUAL(mc_journal_encode(&big, &buf, &len, &cap), -EMSGSIZE);
        CU_ASSERT(buf == buf0 && len == len0 && cap == cap0);
        vm_record_of_size(&big, &vm, name, MC_JOURNAL_PAYLOAD_MAX);
        CU_ASSERT_EQUAL_FATAL(mc_journal_encode(&big, &buf, &len, &cap), 0);
        CU_ASSERT_EQUAL(len, len0 + MC_JOURNAL_FRAME_SIZE + MC_JOURNAL_PAYLOAD_MAX);
        CU_ASSERT_EQUAL(memcmp(buf, copy, len0), 0);
        {
                const Memconv__JournalRecord *want[] = { &s.r_change, &big };
                _cleanup_close_ int fd = file_new("limits");
                uint64_t end;
                const char *reason;

                CU_ASSERT_EQUAL(mc_journal_header_write(fd), 0);
                CU_ASSERT_EQUAL(mc_journal_append(fd, buf, len), 0);
                CU_ASSERT_EQUAL(read_check(fd, want, 2, &end, &reason), 0);
                CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + len);

                /* a length field one above the limit is refused by the reader */
                {
                        uint8_t l[4] = { 0x01, 0x00, 0x10, 0x00 }; /* 1 MiB + 1 */

                        CU_ASSERT_FATAL(pwrite(fd, l, 4, MC_JOURNAL_HEADER_SIZE + len0) == 4);
                        CU_ASSERT_EQUAL(read_check(fd, want, 1, &end, &reason), 1);
                        CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + len0);
                        CU_ASSERT_PTR_NOT_NULL(strstr(reason, "exceeds maximum"));
                }
        }
        free(buf);
        sample_done(&s);
}

/**
 * now_sec() - CLOCK_MONOTONIC in seconds
 * Return: the time
 */
static double now_sec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void test_many(void)
{
        struct sample s;
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0, n = 0;
        _cleanup_close_ int fd = file_new("many");
        struct mc_journal_reader *r = NULL;
        Memconv__JournalRecord *rec;
        double t0, t1, t2, t3;
        uint64_t end;
        int k;

        sample_init(&s, 0);
        t0 = now_sec();
        for (uint64_t seq = 1; seq <= N_MANY; seq++) {
                s.change.seq = seq;
                s.change.gpa = seq << 12;
                s.r_change.realtime_usec = 1700000000000000ULL + seq;
                CU_ASSERT_EQUAL_FATAL(mc_journal_encode(&s.r_change, &buf, &len, &cap), 0);
        }
        t1 = now_sec();
        CU_ASSERT_EQUAL_FATAL(mc_journal_header_write(fd), 0);
        CU_ASSERT_EQUAL_FATAL(mc_journal_append(fd, buf, len), 0);
        t2 = now_sec();

        CU_ASSERT_EQUAL_FATAL(mc_journal_reader_open(fd, &r, NULL), 0);
        while ((k = mc_journal_reader_next(r, &rec)) == 1) {
                n++;
                if (rec->body_case != MEMCONV__JOURNAL_RECORD__BODY_CHANGE || rec->change->seq != n ||
                    rec->change->gpa != n << 12) {
                        CU_FAIL("record out of order or damaged");
                        memconv__journal_record__free_unpacked(rec, NULL);
                        break;
                }
                memconv__journal_record__free_unpacked(rec, NULL);
        }
        t3 = now_sec();
        CU_ASSERT_EQUAL(k, 0);
        CU_ASSERT_EQUAL(n, N_MANY);
        CU_ASSERT_EQUAL(mc_journal_reader_tail(r, &end, NULL), 0);
        CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + len);
        mc_journal_reader_free(r);

        printf("\n    %d change records, %zu bytes (%.1f per record)\n"
               "    encode %.0f records/s (%.0f MB/s); one append+fdatasync %.1f ms;"
               " read+decode %.0f records/s (%.0f MB/s)\n    ",
               N_MANY, len, (double) len / N_MANY, N_MANY / (t1 - t0), len / (t1 - t0) / 1e6,
               (t2 - t1) * 1e3, N_MANY / (t3 - t2), len / (t3 - t2) / 1e6);
        free(buf);
        sample_done(&s);
}

static void test_torn_tail(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF;
        uint64_t last, full;
        size_t checked = 0;

        /* the last record is the big one, so there are many cut points */
        sample_init(&s, 50);
        want[0] = &s.r_vm;
        want[1] = &s.r_region;
        want[2] = &s.r_change;
        want[3] = &s.r_detached;
        want[4] = &s.r_snap;
        for (size_t i = 0; i < 5; i++)
                records_add(&rs, want[i]);
        fd = journal_write("torn", &rs);
        last = rs.starts[4];
        full = MC_JOURNAL_HEADER_SIZE + rs.len;
        CU_ASSERT_FATAL(full - last > 500);

        for (uint64_t size = full - 1; size >= last; size--) {
                uint64_t end = 0;
                const char *reason;
                int tail;

                CU_ASSERT_FATAL(ftruncate(fd, (off_t) size) == 0);
                tail = read_check(fd, want, 4, &end, &reason);
                CU_ASSERT_EQUAL(end, last);
                if (size == last) {
                        CU_ASSERT_EQUAL(tail, 0); /* cut exactly between records: clean */
                } else {
                        CU_ASSERT_EQUAL(tail, 1);
                        CU_ASSERT(strstr(reason, size - last < MC_JOURNAL_FRAME_SIZE
                                                         ? "short record header"
                                                         : "runs past end of file") != NULL);
                }
                checked++;
        }
        CU_ASSERT_EQUAL(checked, full - last);

        free(rs.buf);
        sample_done(&s);
}

static void test_bit_flips(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF;
        uint64_t mid, mid_len;
        size_t flips = 0;

        five_records(&s, &rs, want);
        fd = journal_write("flips", &rs);
        mid = rs.starts[2];
        mid_len = rs.starts[3] - mid - MC_JOURNAL_FRAME_SIZE;

        /* every bit of the length and crc fields, bits spread over the payload */
        for (uint64_t off = mid; off < rs.starts[3]; off++) {
                for (int bit = 0; bit < 8; bit++) {
                        uint8_t orig, flipped;
                        uint64_t end = 0;
                        const char *reason;
                        int tail;

                        if (off >= mid + MC_JOURNAL_FRAME_SIZE && (off - mid) % 7 != 0)
                                continue;
                        CU_ASSERT_FATAL(pread(fd, &orig, 1, (off_t) off) == 1);
                        flipped = orig ^ (uint8_t) (1U << bit);
                        CU_ASSERT_FATAL(pwrite(fd, &flipped, 1, (off_t) off) == 1);

                        tail = read_check(fd, want, 2, &end, &reason);
                        CU_ASSERT_EQUAL(tail, 1);
                        CU_ASSERT_EQUAL(end, mid);
                        if (off >= mid + 4) { /* crc or payload */
                                CU_ASSERT(strstr(reason, "CRC mismatch at offset") != NULL);
                        } else { /* length: now past EOF, above the cap, or the CRC is off */
                                CU_ASSERT(strstr(reason, "length") != NULL ||
                                          strstr(reason, "CRC mismatch at offset") != NULL);
                        }

                        CU_ASSERT_FATAL(pwrite(fd, &orig, 1, (off_t) off) == 1);
                        flips++;
                }
        }
        CU_ASSERT(flips >= 64 + mid_len / 7 * 8);

        /* repaired: everything reads again */
        {
                uint64_t end;
                const char *reason;

                CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 0);
                CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + rs.len);
        }

        free(rs.buf);
        sample_done(&s);
}

static void test_zero_and_garbage_tail(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF;
        uint8_t junk[4096] = { 0 };
        uint64_t full, end;
        const char *reason;

        five_records(&s, &rs, want);
        fd = journal_write("zeros", &rs);
        full = MC_JOURNAL_HEADER_SIZE + rs.len;

        /* a file system that extended the size but not the data */
        CU_ASSERT_FATAL(pwrite(fd, junk, sizeof(junk), (off_t) full) == sizeof(junk));
        CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 1);
        CU_ASSERT_EQUAL(end, full);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, "zero-filled tail"));

        /* a zero length followed by something else */
        junk[100] = 1;
        CU_ASSERT_FATAL(pwrite(fd, junk, sizeof(junk), (off_t) full) == sizeof(junk));
        CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 1);
        CU_ASSERT_EQUAL(end, full);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, "zero-length record"));

        /* a frame whose CRC matches but whose payload is not a JournalRecord */
        {
                uint8_t frame[8 + 3] = { 3, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff };
                uint32_t crc = mc_crc32c(0, frame + 8, 3);

                frame[4] = crc & 0xff;
                frame[5] = (crc >> 8) & 0xff;
                frame[6] = (crc >> 16) & 0xff;
                frame[7] = crc >> 24;
                CU_ASSERT_FATAL(ftruncate(fd, (off_t) full) == 0);
                CU_ASSERT_FATAL(pwrite(fd, frame, sizeof(frame), (off_t) full) == sizeof(frame));
                CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 1);
                CU_ASSERT_EQUAL(end, full);
                CU_ASSERT_PTR_NOT_NULL(strstr(reason, "undecodable record"));
        }

        free(rs.buf);
        sample_done(&s);
}

static void test_truncate_then_append(void)
{
        struct sample s;
        struct records rs = { 0 }, more = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF;
        uint64_t end, full;
        const char *reason;

        sample_init(&s, 10);
        want[0] = &s.r_vm;
        want[1] = &s.r_region;
        want[2] = &s.r_change;
        want[3] = &s.r_snap;
        want[4] = &s.r_detached;
        for (size_t i = 0; i < 4; i++)
                records_add(&rs, want[i]);
        fd = journal_write("trunc", &rs);
        full = MC_JOURNAL_HEADER_SIZE + rs.len;
        /* crash in the middle of appending the fourth record */
        CU_ASSERT_FATAL(ftruncate(fd, (off_t) (rs.starts[3] + 20)) == 0);
        CU_ASSERT_EQUAL(read_check(fd, want, 3, &end, &reason), 1);
        CU_ASSERT_EQUAL(end, rs.starts[3]);

        /* refusals: inside the header, beyond the end; the file is unchanged */
        CU_ASSERT_EQUAL(mc_journal_truncate_tail(fd, MC_JOURNAL_HEADER_SIZE - 1), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_truncate_tail(fd, full), -EINVAL);
        CU_ASSERT_EQUAL(file_size(fd), rs.starts[3] + 20);

        CU_ASSERT_EQUAL(mc_journal_truncate_tail(fd, end), 0);
        CU_ASSERT_EQUAL(file_size(fd), rs.starts[3]);
        records_add(&more, want[3]);
        records_add(&more, want[4]);
        CU_ASSERT_EQUAL(mc_journal_append(fd, more.buf, more.len), 0);
        CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 0);
        CU_ASSERT_EQUAL(end, rs.starts[3] + more.len);
        CU_ASSERT_EQUAL(end, file_size(fd));

        /* truncating to the header leaves an empty, valid journal */
        CU_ASSERT_EQUAL(mc_journal_truncate_tail(fd, MC_JOURNAL_HEADER_SIZE), 0);
        CU_ASSERT_EQUAL(read_check(fd, want, 0, &end, &reason), 0);
        CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE);

        free(rs.buf);
        free(more.buf);
        sample_done(&s);
}

static void test_append_failure(void)
{
        struct sample s;
        struct records rs = { 0 }, more = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF;
        struct rlimit old, lim;
        void (*old_handler)(int);
        uint64_t size, end;
        const char *reason;
        int k;

        five_records(&s, &rs, want);
        fd = journal_write("appendfail", &rs);
        size = file_size(fd);
        records_add(&more, &s.r_snap);
        records_add(&more, &s.r_change);

        /* The file may grow by only 100 bytes: the write stops in the middle of
         * the first record and fails with EFBIG; append must cut the partial
         * record off again. */
        CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
        old_handler = signal(SIGXFSZ, SIG_IGN);
        lim = old;
        lim.rlim_cur = size + 100;
        CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        k = mc_journal_append(fd, more.buf, more.len);
        CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &old) == 0);
        signal(SIGXFSZ, old_handler);
        CU_ASSERT_EQUAL(k, -EFBIG);
        CU_ASSERT_EQUAL(file_size(fd), size);
        CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 0);

        /* a later append lands right after the valid records */
        CU_ASSERT_EQUAL(mc_journal_append(fd, more.buf, more.len), 0);
        {
                const Memconv__JournalRecord *all[7] = { want[0], want[1], want[2], want[3],
                                                         want[4], &s.r_snap, &s.r_change };

                CU_ASSERT_EQUAL(read_check(fd, all, 7, &end, &reason), 0);
        }
        CU_ASSERT_EQUAL(mc_journal_append(fd, more.buf, 0), 0);

        /* not a journal: shorter than a header */
        {
                _cleanup_close_ int efd = file_new("appendempty");

                CU_ASSERT_EQUAL(mc_journal_append(efd, more.buf, more.len), -EBADMSG);
                CU_ASSERT_EQUAL(file_size(efd), 0);
        }

        free(rs.buf);
        free(more.buf);
        sample_done(&s);
}

static void test_rewrite(void)
{
        struct sample s;
        struct records rs = { 0 };
        const Memconv__JournalRecord *want[5];
        _cleanup_close_ int fd = -EBADF, nfd = -EBADF;
        _cleanup_free_ uint8_t *before = NULL;
        size_t before_len, after_len;
        uint64_t end;
        const char *reason;

        five_records(&s, &rs, want);
        fd = journal_write("rw", &rs);
        before = file_bytes("rw", &before_len);
        CU_ASSERT_FATAL(before != NULL);

        /* a record too large: refused before any file exists */
        {
                struct sample big;
                const Memconv__JournalRecord *recs[2];

                sample_init(&big, 100000);
                recs[0] = &big.r_change;
                recs[1] = &big.r_snap;
                CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "rw", recs, 2, &nfd), -EMSGSIZE);
                CU_ASSERT_EQUAL(nfd, -EBADF);
                sample_done(&big);
        }
        {
                _cleanup_free_ uint8_t *after = file_bytes("rw", &after_len);

                CU_ASSERT_EQUAL_FATAL(after_len, before_len);
                CU_ASSERT_EQUAL(memcmp(after, before, before_len), 0);
        }
        CU_ASSERT_EQUAL(tmp_files(), 0);

        /* a failure after the temp file was written and synced: the rename
         * (over a directory) fails, and the temp file must go */
        CU_ASSERT_FATAL(mkdirat(dirfd_, "rwdir", 0700) == 0);
        CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "rwdir", want, 5, &nfd), -EISDIR);
        CU_ASSERT_EQUAL(nfd, -EBADF);
        CU_ASSERT_EQUAL(tmp_files(), 0);

        /* bad names */
        CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "a/b", want, 5, NULL), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "", want, 5, NULL), -EINVAL);
        CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "..", want, 5, NULL), -EINVAL);
        CU_ASSERT_EQUAL(tmp_files(), 0);

        /* compaction: [snapshot, change] replaces the five records */
        {
                const Memconv__JournalRecord *compact[3] = { &s.r_snap, &s.r_change, &s.r_detached };
                struct records tail = { 0 };

                CU_ASSERT_EQUAL_FATAL(mc_journal_rewrite(dirfd_, "rw", compact, 2, &nfd), 0);
                CU_ASSERT_FATAL(nfd >= 0);
                CU_ASSERT_EQUAL(fcntl(nfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
                CU_ASSERT_EQUAL(tmp_files(), 0);
                /* the old fd still reads the old (unlinked) file */
                CU_ASSERT_EQUAL(read_check(fd, want, 5, &end, &reason), 0);
                /* appends through the new fd go to the new file */
                records_add(&tail, &s.r_detached);
                CU_ASSERT_EQUAL(mc_journal_append(nfd, tail.buf, tail.len), 0);
                fd = safe_close(fd);
                fd = openat(dirfd_, "rw", O_RDONLY | O_CLOEXEC);
                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_EQUAL(read_check(fd, compact, 3, &end, &reason), 0);
                CU_ASSERT_EQUAL(end, file_size(fd));
                free(tail.buf);
        }

        /* the journal thread's form: bytes encoded elsewhere */
        {
                const Memconv__JournalRecord *compact[2] = { &s.r_snap, &s.r_region };
                struct records enc = { 0 };
                _cleanup_close_ int bfd = -EBADF;

                records_add(&enc, compact[0]);
                records_add(&enc, compact[1]);
                CU_ASSERT_EQUAL(mc_journal_rewrite_buffer(dirfd_, "rwdir", enc.buf, enc.len, &bfd),
                                -EISDIR);
                CU_ASSERT_EQUAL(bfd, -EBADF);
                CU_ASSERT_EQUAL(mc_journal_rewrite_buffer(dirfd_, "a/b", enc.buf, enc.len, NULL),
                                -EINVAL);
                CU_ASSERT_EQUAL(tmp_files(), 0);
                CU_ASSERT_EQUAL_FATAL(mc_journal_rewrite_buffer(dirfd_, "rw", enc.buf, enc.len,
                                                                &bfd), 0);
                CU_ASSERT_FATAL(bfd >= 0);
                CU_ASSERT_EQUAL(read_check(bfd, compact, 2, &end, &reason), 0);
                CU_ASSERT_EQUAL(end, MC_JOURNAL_HEADER_SIZE + enc.len);
                fd = safe_close(fd);
                fd = openat(dirfd_, "rw", O_RDONLY | O_CLOEXEC);
                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_EQUAL(read_check(fd, compact, 2, &end, &reason), 0);
                free(enc.buf);
        }

        /* creation of a new journal, and a header-only one */
        {
                const Memconv__JournalRecord *first[1] = { &s.r_vm };
                _cleanup_close_ int cfd = -EBADF;
                struct stat st;

                CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "created", first, 1, NULL), 0);
                cfd = openat(dirfd_, "created", O_RDONLY | O_CLOEXEC);
                CU_ASSERT_FATAL(cfd >= 0);
                CU_ASSERT_FATAL(fstat(cfd, &st) == 0);
                CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
                CU_ASSERT_EQUAL(read_check(cfd, first, 1, &end, &reason), 0);
                cfd = safe_close(cfd);

                CU_ASSERT_EQUAL(mc_journal_rewrite(dirfd_, "created", NULL, 0, NULL), 0);
                cfd = openat(dirfd_, "created", O_RDONLY | O_CLOEXEC);
                CU_ASSERT_FATAL(cfd >= 0);
                CU_ASSERT_EQUAL(file_size(cfd), MC_JOURNAL_HEADER_SIZE);
                CU_ASSERT_EQUAL(read_check(cfd, first, 0, &end, &reason), 0);
        }
        CU_ASSERT_EQUAL(tmp_files(), 0);

        free(rs.buf);
        sample_done(&s);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "crc32c vectors", test_crc32c },
                { "crc32c software path vectors", test_crc32c_software },
                { "crc32c hardware and software paths agree", test_crc32c_paths_agree },
                { "change decoder agrees with protobuf-c", test_decode_change },
                { "peek/skip walk as next() does", test_peek_skip },
                { "header write/check, empty journal", test_header },
                { "bad headers refused", test_bad_header },
                { "round trip of every body type", test_roundtrip },
                { "encode refusals and the 1 MiB limit", test_encode_limits },
                { "1e5 records in one append", test_many },
                { "torn tail at every byte", test_torn_tail },
                { "bit flips in a middle record", test_bit_flips },
                { "zero-filled and undecodable tails", test_zero_and_garbage_tail },
                { "truncate_tail then append", test_truncate_then_append },
                { "failed append leaves no partial record", test_append_failure },
                { "rewrite: atomic, failures leave no trace", test_rewrite },
        };

        return mc_test_run("journal", suite_init, suite_cleanup, tests, ELEMENTSOF(tests));
}
