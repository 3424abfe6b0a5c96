/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-journal.c - the journal reader (lib/journal.c) over hostile files.
 *
 * Input: a whole journal file. It is read twice: as it is, and with every
 * record's CRC recomputed (walking the frames by their length fields), so
 * that the fuzzer, which cannot forge CRC32C, still reaches the record
 * decoder. Invariants of each read:
 *  - next() returns 1 with a record or 0, never an error (no allocation
 *    fails here), and keeps returning 0 once it has;
 *  - offsets only grow, by at least one frame, and stay inside the file;
 *  - tail() reports an end inside [MC_JOURNAL_HEADER_SIZE, size] equal to
 *    the reader's offset, clean exactly when that end is the file's size,
 *    with a reason exactly when it is not;
 *  - peek() gives a payload exactly when next() gives a record or reports
 *    an undecodable one, the payload of that frame; where
 *    mc_journal_decode_change() decodes it, next() gives the same record
 *    (a change, no unknown field, every field equal);
 *  - the valid part is the file's prefix: re-encoding the records read
 *    (mc_journal_encode()) and reading that again yields as many records
 *    and a clean end (when every record has a body and no unknown field).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz-frame-util.h"
#include "fuzz.h"
#include "journal.h"

#define FUZZ_JOURNAL_MAX (4U << 20)

static uint32_t le32(const uint8_t *p)
{
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void put_le32_(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

/**
 * same_change() - whether @rec is the change record mc_journal_decode_change()
 * gave as @realtime_usec and @c
 */
static bool same_change(const Memconv__JournalRecord *rec, uint64_t realtime_usec,
                        const Memconv__HistoryRecord *c)
{
        const Memconv__HistoryRecord *g = rec->change;

        return rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_CHANGE && g &&
               !fuzz_pb_has_unknown(&rec->base) && rec->realtime_usec == realtime_usec &&
               g->seq == c->seq && g->realtime_usec == c->realtime_usec && g->gpa == c->gpa &&
               g->size == c->size && g->from == c->from && g->to == c->to &&
               g->implicit == c->implicit && g->source == c->source && g->vcpu == c->vcpu &&
               g->request_id == c->request_id && g->decision_id == c->decision_id &&
               g->result == c->result && g->decision_latency_usec == c->decision_latency_usec &&
               g->code == c->code && !c->base.unknown_fields && !c->base.n_unknown_fields;
}

/**
 * read_journal() - read @data to its end, checking the reader's invariants
 * @data: a journal file
 * @size: its length
 * @reencode: if not NULL, receives the valid records re-encoded (header
 *            included), owned by the caller; NULL when the header is bad
 * @reencode_len: its length
 * @ret_clean: whether the file ended cleanly after its last record
 * Return: the number of records read, or -1 for a refused header
 */
static long read_journal(const uint8_t *data, size_t size, uint8_t **reencode, size_t *reencode_len,
                         bool *ret_clean)
{
        struct mc_journal_reader *r = NULL;
        const char *why = NULL, *reason = (const char *) 1;
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        uint64_t prev, end = 0;
        long n = 0;
        bool encodable = true;
        int k;

        k = mc_journal_reader_new(data, size, &r, &why);
        if (k < 0) {
                FUZZ_CHECK(k == -ENODATA || k == -EBADMSG || k == -EPROTONOSUPPORT);
                FUZZ_CHECK(r == NULL);
                FUZZ_CHECK(why != NULL || k == -ENODATA);
                FUZZ_CHECK(size >= MC_JOURNAL_HEADER_SIZE || k != -EPROTONOSUPPORT);
                if (reencode)
                        *reencode = NULL;
                return -1;
        }
        FUZZ_CHECK(size >= MC_JOURNAL_HEADER_SIZE);
        FUZZ_CHECK(mc_journal_reader_size(r) == size);
        FUZZ_CHECK(mc_journal_reader_offset(r) == MC_JOURNAL_HEADER_SIZE);
        FUZZ_CHECK(mc_journal_reader_tail(r, NULL, NULL) == -EBUSY);

        prev = MC_JOURNAL_HEADER_SIZE;
        for (;;) {
                Memconv__JournalRecord *rec = NULL;
                Memconv__HistoryRecord fc;
                const void *payload = NULL, *again = NULL;
                size_t plen = 0, again_len = 0;
                uint64_t frt = 0;
                int peeked, fast = 0;

                peeked = mc_journal_reader_peek(r, &payload, &plen);
                FUZZ_CHECK(peeked == 0 || peeked == 1);
                if (peeked) {
                        FUZZ_CHECK(plen >= 1 && plen <= size - prev - MC_JOURNAL_FRAME_SIZE);
                        FUZZ_CHECK(mc_journal_reader_peek(r, &again, &again_len) == 1);
                        FUZZ_CHECK(again == payload && again_len == plen);
                        fast = mc_journal_decode_change(payload, plen, &frt, &fc);
                        FUZZ_CHECK(fast == 0 || fast == 1);
                }
                k = mc_journal_reader_next(r, &rec);
                FUZZ_CHECK(k == 0 || k == 1);
                FUZZ_CHECK(k == 0 || peeked == 1);
                if (k == 0) {
                        FUZZ_CHECK(!fast);
                        break;
                }
                FUZZ_CHECK(rec != NULL);
                FUZZ_CHECK(mc_journal_reader_offset(r) == prev + MC_JOURNAL_FRAME_SIZE + plen);
                if (fast)
                        FUZZ_CHECK(same_change(rec, frt, &fc));
                FUZZ_CHECK(mc_journal_reader_skip(r) == -EINVAL);
                n++;
                FUZZ_CHECK(mc_journal_reader_offset(r) >= prev + MC_JOURNAL_FRAME_SIZE + 1);
                FUZZ_CHECK(mc_journal_reader_offset(r) <= size);
                prev = mc_journal_reader_offset(r);
                /* A record without body is never written; one with unknown fields
                 * may not survive re-encoding (see fuzz-frame-util.h). */
                if (encodable && rec->body_case != MEMCONV__JOURNAL_RECORD__BODY__NOT_SET &&
                    !fuzz_pb_has_unknown(&rec->base)) {
                        int e = mc_journal_encode(rec, &buf, &len, &cap);

                        FUZZ_CHECK(e == 0 || e == -EMSGSIZE);
                        if (e < 0)
                                encodable = false;
                } else
                        encodable = false;
                memconv__journal_record__free_unpacked(rec, NULL);
        }
        FUZZ_CHECK(mc_journal_reader_next(r, &(Memconv__JournalRecord *){ NULL }) == 0);

        k = mc_journal_reader_tail(r, &end, &reason);
        FUZZ_CHECK(k == 0 || k == 1);
        FUZZ_CHECK(end == mc_journal_reader_offset(r));
        FUZZ_CHECK(end >= MC_JOURNAL_HEADER_SIZE && end <= size);
        FUZZ_CHECK((k == 0) == (end == size));
        FUZZ_CHECK((k == 1) == (reason != NULL));
        if (reason)
                FUZZ_CHECK(reason[0] != '\0' && memchr(reason, '\0', 160) != NULL);
        *ret_clean = k == 0;
        mc_journal_reader_free(r);

        if (reencode) {
                *reencode = NULL;
                if (encodable) {
                        uint8_t *file = malloc(MC_JOURNAL_HEADER_SIZE + len);

                        FUZZ_CHECK(file);
                        memcpy(file, data, MC_JOURNAL_HEADER_SIZE);
                        if (len)
                                memcpy(file + MC_JOURNAL_HEADER_SIZE, buf, len);
                        *reencode = file;
                        *reencode_len = MC_JOURNAL_HEADER_SIZE + len;
                }
        }
        free(buf);
        return n;
}

/**
 * fix_crcs() - a copy of @data with the CRC of every complete frame recomputed
 * Return: the copy (owned by the caller), or NULL if nothing would change
 */
static uint8_t *fix_crcs(const uint8_t *data, size_t size)
{
        uint8_t *copy;
        size_t pos = MC_JOURNAL_HEADER_SIZE;
        bool changed = false;

        if (size < MC_JOURNAL_HEADER_SIZE)
                return NULL;
        copy = malloc(size);
        FUZZ_CHECK(copy);
        memcpy(copy, data, size);
        while (size - pos >= MC_JOURNAL_FRAME_SIZE) {
                uint32_t len = le32(copy + pos), crc;

                if (len == 0 || len > size - pos - MC_JOURNAL_FRAME_SIZE)
                        break;
                crc = mc_crc32c(0, copy + pos + MC_JOURNAL_FRAME_SIZE, len);
                if (crc != le32(copy + pos + 4)) {
                        put_le32_(copy + pos + 4, crc);
                        changed = true;
                }
                pos += MC_JOURNAL_FRAME_SIZE + len;
        }
        if (!changed) {
                free(copy);
                return NULL;
        }
        return copy;
}

/**
 * read_and_reread() - read @data, then its re-encoded valid part
 */
static void read_and_reread(const uint8_t *data, size_t size)
{
        uint8_t *again = NULL;
        size_t again_len = 0;
        bool clean;
        long n, m;

        n = read_journal(data, size, &again, &again_len, &clean);
        if (again) {
                m = read_journal(again, again_len, NULL, NULL, &clean);
                FUZZ_CHECK(m == n);
                FUZZ_CHECK(clean);
                free(again);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t *fixed;

        if (size > FUZZ_JOURNAL_MAX)
                return 0;
        read_and_reread(data, size);
        fixed = fix_crcs(data, size);
        if (fixed) {
                read_and_reread(fixed, size);
                free(fixed);
        }
        return 0;
}
