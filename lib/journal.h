/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * journal.h - the on-disk format of memconvd's per-VM conversion journal.
 *
 * File format (all integers little-endian):
 *
 *   offset 0   header, 16 bytes:
 *                magic    8 bytes  "MCJOURN1"
 *                version  u32      1
 *                flags    u32      0 (no flags are defined; a reader refuses
 *                                  a file with any flag set)
 *   offset 16  records, back to back, each:
 *                length   u32      payload length in bytes, 1 .. 1048576
 *                crc      u32      CRC32C (Castagnoli) of the payload
 *                payload  length   one packed memconv.JournalRecord
 *
 * There is no end marker and no index: a journal is read front to back,
 * records are applied in file order. The file grows by appending whole
 * records (many at once: group commit), and is replaced atomically when
 * compacted (a snapshot record followed by the records after it).
 *
 * Torn and corrupt tails. The valid part of a journal is the header followed
 * by the longest run of records that each have a complete 8-byte frame header,
 * a length between 1 and MC_JOURNAL_PAYLOAD_MAX, a payload entirely inside
 * the file, a matching CRC and a payload that decodes as a JournalRecord.
 * The first record that fails any of these ends the valid part; it and
 * everything after it are ignored (a crash during an append leaves such a
 * tail; so does a file system that extended the size but not the data, which
 * shows as a zero-filled tail). The reader reports the offset where the valid
 * part ends and why; the daemon cuts the tail there
 * (mc_journal_truncate_tail()) before appending again, because a record
 * appended after garbage would never be read.
 *
 * Invariant the writer keeps: the file size is the end of the valid part.
 * mc_journal_append() restores the old size when a write or sync fails, so
 * a failed group commit never leaves a half record that later records would
 * hide behind.
 *
 * Contents. The payload is a memconv.JournalRecord (proto/memconv.proto);
 * its body says what happened: a VM record starts a journal, region and
 * change records follow, a snapshot record is the whole state at one point
 * and starts a compacted journal. This module knows the framing only; what a
 * sequence of records means is the daemon's business. A record with no body
 * set is never written (the encoder refuses it) but is returned by the reader
 * as it is: a newer daemon may have written a body this one does not know.
 *
 * Error contract: negative errno; outputs through ret_ pointers, untouched
 * on failure; reterr_ pointers are set only on failure. No logging, no
 * global state. A reader is not thread-safe; the encoder and the fd helpers
 * are pure functions of their arguments and may run on any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memconv.pb-c.h"

#define MC_JOURNAL_MAGIC "MCJOURN1"           /* 8 bytes, no NUL in the file */
#define MC_JOURNAL_VERSION 1U
#define MC_JOURNAL_HEADER_SIZE 16U            /* magic + version + flags */
#define MC_JOURNAL_FRAME_SIZE 8U              /* length + crc before each payload */
#define MC_JOURNAL_PAYLOAD_MAX (1024U * 1024U) /* largest payload, inclusive */

/**
 * mc_crc32c() - CRC32C (Castagnoli, reflected polynomial 0x82f63b78)
 * @crc: 0 to start, or the result of a previous call to continue it
 * @buf: data
 * @len: its length
 *
 * The SSE4.2 crc32 instruction when the CPU has it (checked at run time),
 * mc_crc32c_sw() otherwise; both give the same result for every input. The
 * pre- and post-inversion are done inside, so
 * mc_crc32c(mc_crc32c(0, a, la), b, lb) == CRC32C of a followed by b, and
 * mc_crc32c(0, "123456789", 9) == 0xe3069283.
 *
 * Return: the CRC.
 */
uint32_t mc_crc32c(uint32_t crc, const void *buf, size_t len);

/**
 * mc_crc32c_sw() - mc_crc32c() in software (table-driven), whatever the CPU
 * @crc: as for mc_crc32c()
 * @buf: data
 * @len: its length
 *
 * The fallback of mc_crc32c(), and the reference the tests hold the hardware
 * path to.
 *
 * Return: the CRC.
 */
uint32_t mc_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/**
 * mc_crc32c_hw_available() - whether mc_crc32c() uses a CRC32C instruction
 * Return: true on x86-64 with SSE4.2, false otherwise.
 */
bool mc_crc32c_hw_available(void);

/**
 * mc_crc32c_hw() - mc_crc32c() with the CPU's CRC32C instruction only
 * @crc: as for mc_crc32c()
 * @buf: data
 * @len: its length
 * @ret: the CRC; untouched on failure
 *
 * Return: 0, -EOPNOTSUPP if the CPU (or this build) has no such instruction,
 * -EINVAL if @ret is NULL or @buf is NULL with a non-zero @len.
 */
int mc_crc32c_hw(uint32_t crc, const void *buf, size_t len, uint32_t *ret);

/**
 * mc_journal_header_write() - write the 16-byte file header at offset 0
 * @fd: the journal file, writable, borrowed. Not O_APPEND (Linux pwrite()
 *      ignores the offset there), unless the file is empty.
 *
 * pwrite() only, no sync. A new journal is better created with
 * mc_journal_rewrite(), which writes header and first records into a new
 * file and renames it into place, so a journal never exists without its
 * header.
 *
 * Return: 0, or negative errno (-EIO for a write that stays short).
 */
int mc_journal_header_write(int fd);

/**
 * mc_journal_header_check() - check a file header
 * @buf: the first bytes of the file
 * @len: how many there are (the whole file may be passed)
 * @reterr_reason: if not NULL, set on failure to a static string saying why
 *
 * Return: 0 if @buf starts with a valid header; -ENODATA if @len is 0 (an
 * empty file: a journal whose creation did not finish); -EBADMSG if it is
 * shorter than a header or the magic is wrong; -EPROTONOSUPPORT for another
 * version or unknown flags.
 */
int mc_journal_header_check(const void *buf, size_t len, const char **reterr_reason);

/**
 * mc_journal_encode() - append one framed record to a growable buffer
 * @rec: the record (borrowed); its body must be set
 * @buf: in/out, the buffer (malloc()ed, owned by the caller; may be NULL
 *       when @cap is 0); reallocated as needed
 * @len: in/out, bytes used in @buf; the frame is appended at @len
 * @cap: in/out, bytes allocated for @buf
 *
 * For group commit: encode every record of a batch into one buffer, then
 * write it with one mc_journal_append(). Reset @len to 0 to reuse the buffer.
 * The buffer holds records only, never the file header.
 *
 * Return: 0; -EINVAL if the body is not set; -EMSGSIZE if the payload would
 * exceed MC_JOURNAL_PAYLOAD_MAX (checked before anything is allocated);
 * -ENOMEM. On failure @buf, @len, @cap and the buffer's contents are
 * unchanged.
 */
int mc_journal_encode(const Memconv__JournalRecord *rec, uint8_t **buf, size_t *len, size_t *cap);

/**
 * mc_journal_append() - durably append encoded records (group commit)
 * @fd: the journal, opened read-write or write-only, borrowed; its size must
 *      be the end of its valid part (see the invariant above)
 * @buf: records from mc_journal_encode()
 * @len: their length in bytes
 *
 * Writes @buf at the current end of file (fstat(), then pwrite() until
 * everything is written), then fdatasync(). If a write or the sync fails, the
 * file is truncated back to its old size (best effort) so no partial record
 * stays behind, and the error is returned: nothing of @buf may be treated as
 * committed. Blocks for the duration of the sync: call it from a writer
 * thread, never from the event loop.
 *
 * Return: 0 once the records are on stable storage (also for @len 0, which
 * does nothing); -EBADMSG if the file is shorter than a journal header;
 * other negative errno.
 */
int mc_journal_append(int fd, const void *buf, size_t len);

/**
 * mc_journal_truncate_tail() - cut a torn or corrupt tail
 * @fd: the journal, writable, borrowed
 * @valid_end: from mc_journal_reader_tail()
 *
 * ftruncate() to @valid_end, then fsync().
 *
 * Return: 0; -EINVAL if @valid_end is inside the header or beyond the end
 * of the file (truncate never extends); other negative errno.
 */
int mc_journal_truncate_tail(int fd, uint64_t valid_end);

/**
 * mc_journal_rewrite() - atomically replace a journal by header + @records
 * @dirfd: the directory holding the journal (an open directory fd, not
 *         AT_FDCWD), borrowed
 * @name: the journal's file name in @dirfd (no '/')
 * @records: the records of the new journal, in order (borrowed)
 * @n: how many; 0 writes a header-only journal
 * @ret_fd: if not NULL, receives a read-write, close-on-exec fd of the new
 *          file, owned by the caller, ready for mc_journal_append()
 *
 * Encodes everything first (so a bad record fails before any file is
 * touched), writes header and records to "@name.tmp.XXXXXX" (mode 0600,
 * O_EXCL, O_CLOEXEC), fdatasync()s it, renames it over @name and fsync()s
 * @dirfd.
 * Used for compaction (a snapshot record + the records after it) and to
 * create a journal (a VM record). An fd open on the old file still refers to
 * the old, now unlinked, file: switch appends to @ret_fd.
 *
 * On any failure before the rename, @name is untouched and the temporary
 * file is removed. If only the final directory fsync() fails, @name already
 * holds the new content (the rename may not be durable yet) and the error is
 * returned. A crash can still leave a "*.tmp.*" file behind: the daemon
 * removes those at startup.
 *
 * Return: 0; -EINVAL for a bad @name or a record without body; -EMSGSIZE for
 * a record too large; other negative errno.
 */
int mc_journal_rewrite(int dirfd, const char *name, const Memconv__JournalRecord *const *records,
                       size_t n, int *ret_fd);

/**
 * mc_journal_rewrite_buffer() - mc_journal_rewrite() with records already encoded
 * @dirfd: as for mc_journal_rewrite()
 * @name: as for mc_journal_rewrite()
 * @buf: framed records from mc_journal_encode() (borrowed; no file header:
 *       it is written here), or NULL if @len is 0
 * @len: their length
 * @ret_fd: as for mc_journal_rewrite()
 *
 * For the daemon's compaction: the event loop encodes the snapshot record
 * (and any records after it) while it owns the VM's state, and the journal
 * thread calls this with the bytes only. @buf is written as it is, not
 * checked: pass only what mc_journal_encode() produced.
 *
 * Return: as mc_journal_rewrite() (-EINVAL for a bad @name); the same
 * guarantees on failure.
 */
int mc_journal_rewrite_buffer(int dirfd, const char *name, const void *buf, size_t len,
                              int *ret_fd);

/*
 * Reading. A reader holds a whole journal in memory and hands out its
 * records in file order; at the first invalid record it stops and remembers
 * where the valid part ends and why.
 */
struct mc_journal_reader;

/**
 * mc_journal_reader_open() - read a journal file and check its header
 * @fd: the journal, readable, borrowed; read with pread() from offset 0 to
 *      end of file (the file offset is not used or moved)
 * @ret: the reader, owned by the caller (mc_journal_reader_free())
 * @reterr_reason: if not NULL, set on a header error to a static string
 *
 * Return: 0; the errors of mc_journal_header_check() (-ENODATA, -EBADMSG,
 * -EPROTONOSUPPORT); -EBADFD if @fd is not a regular file; -ENOMEM; read
 * errors (-EBADF for a write-only fd).
 */
int mc_journal_reader_open(int fd, struct mc_journal_reader **ret, const char **reterr_reason);

/**
 * mc_journal_reader_new() - mc_journal_reader_open() over bytes in memory
 * @data: a whole journal file (copied; the caller keeps ownership)
 * @size: its length
 * @ret: the reader, owned by the caller
 * @reterr_reason: as for mc_journal_reader_open()
 *
 * For tools and the fuzzer. Return: as mc_journal_reader_open().
 */
int mc_journal_reader_new(const void *data, size_t size, struct mc_journal_reader **ret,
                          const char **reterr_reason);

/**
 * mc_journal_reader_next() - the next record, in file order
 * @r: the reader
 * @ret: the record, owned by the caller
 *       (memconv__journal_record__free_unpacked(rec, NULL))
 *
 * Return: 1 with a record; 0 at the end of the valid part, cleanly or at a
 * torn or corrupt tail (mc_journal_reader_tail() tells which), and on every
 * later call; -ENOMEM if decoding ran out of memory (the reader does not
 * advance: the same record can be retried, it is not mistaken for
 * corruption).
 */
int mc_journal_reader_next(struct mc_journal_reader *r, Memconv__JournalRecord **ret);

/**
 * mc_journal_reader_peek() - the next record's payload, checked but not decoded
 * @r: the reader
 * @ret_payload: the payload (framing, length cap and CRC checked), valid
 *               until the reader is freed; untouched unless 1 is returned
 * @ret_len: its length
 *
 * For a caller that decodes some records itself (mc_journal_decode_change()):
 * the record is not consumed; mc_journal_reader_skip() consumes it, or
 * mc_journal_reader_next() decodes it as usual (without checking its CRC
 * again). Calling peek() again before either returns the same payload.
 *
 * Return: 1 with the payload; 0 if there is none to give (the end, or a frame
 * that mc_journal_reader_next() will report as a bad tail): call
 * mc_journal_reader_next(); -EINVAL if an argument is NULL.
 */
int mc_journal_reader_peek(struct mc_journal_reader *r, const void **ret_payload, size_t *ret_len);

/**
 * mc_journal_reader_skip() - consume the record mc_journal_reader_peek() gave
 * @r: the reader
 *
 * Return: 0; -EINVAL if peek() has not returned 1 since the last record was
 * consumed.
 */
int mc_journal_reader_skip(struct mc_journal_reader *r);

/**
 * mc_journal_decode_change() - decode a plain change record without protobuf-c
 * @payload: a record's payload (mc_journal_reader_peek())
 * @len: its length
 * @ret_realtime_usec: the JournalRecord's realtime_usec; untouched unless 1
 * @ret_change: its HistoryRecord (no unknown fields, owns no memory);
 *              untouched unless 1
 *
 * A plain change record is a JournalRecord with a change body and at most
 * realtime_usec besides, whose fields (and the HistoryRecord's) are each
 * known, each encoded with their wire type, each present at most once: what
 * mc_journal_encode() writes for a change. For those, the result equals what
 * memconv__journal_record__unpack() gives, at a fraction of the cost (no
 * allocation, no descriptor walk). Anything else, valid or not, is left to
 * the generic decoder (mc_journal_reader_next()). Every read is bounded by
 * @len.
 *
 * Return: 1 decoded; 0 not a plain change record; -EINVAL if @payload is
 * NULL with a non-zero @len or an output is NULL.
 */
int mc_journal_decode_change(const void *payload, size_t len, uint64_t *ret_realtime_usec,
                             Memconv__HistoryRecord *ret_change);

/**
 * mc_journal_reader_tail() - where the valid part ends, once next() said 0
 * @r: the reader
 * @ret_valid_end: if not NULL, the file offset just after the last valid
 *                 record (MC_JOURNAL_HEADER_SIZE if there is none)
 * @ret_reason: if not NULL, NULL after a clean end; otherwise why the tail
 *              is invalid, e.g. "CRC mismatch at offset 1234 (stored
 *              0x..., computed 0x...)"; valid until the reader is freed
 *
 * Return: 0 if the file ended cleanly at the last record, 1 if there is an
 * invalid tail of mc_journal_reader_size() - valid_end bytes, -EBUSY if
 * mc_journal_reader_next() has not returned 0 yet.
 */
int mc_journal_reader_tail(const struct mc_journal_reader *r, uint64_t *ret_valid_end,
                           const char **ret_reason);

/**
 * mc_journal_reader_offset() - file offset of the next record to read
 * (the end of the last record returned; MC_JOURNAL_HEADER_SIZE at first)
 */
uint64_t mc_journal_reader_offset(const struct mc_journal_reader *r);

/** mc_journal_reader_size() - size of the file the reader holds */
uint64_t mc_journal_reader_size(const struct mc_journal_reader *r);

/**
 * mc_journal_reader_free() - free a reader; accepts NULL
 * Return: NULL
 */
struct mc_journal_reader *mc_journal_reader_free(struct mc_journal_reader *r);

static inline void mc_journal_reader_freep(struct mc_journal_reader **r)
{
        mc_journal_reader_free(*r);
}
