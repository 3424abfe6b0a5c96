/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * journal.c - the conversion journal's file format; see journal.h for the
 * format and the contract.
 *
 * Theory of operation. Writing is split so that the expensive part can run
 * off the event loop: mc_journal_encode() frames records into a memory buffer
 * (cheap, any thread), mc_journal_append() writes a whole buffer with
 * pwrite() at the end of file and fdatasync()s it (one sync per batch: group
 * commit). Because the file size is always the end of the valid part, the end
 * of file is where the next record goes; a failed append truncates back so
 * that the invariant survives ENOSPC and EIO.
 *
 * Reading loads the whole file and walks it. Each frame is checked in the
 * order that never trusts an unchecked field: enough bytes for the frame
 * header, a non-zero length (a zero-filled tail would otherwise read as an
 * endless run of empty records, since the CRC32C of nothing is 0), the
 * length cap, the payload inside the file, the CRC, and only then the
 * protobuf decoder. The decoder is given an allocator that notes failed
 * allocations, so running out of memory is reported as -ENOMEM and never
 * taken for corruption (which would make the daemon cut valid records).
 * A caller that decodes the common record itself (a plain change record,
 * mc_journal_decode_change()) takes the checked payload with peek() and
 * consumes it with skip(); next() after peek() does not check the CRC again.
 * The CRC32C is computed with the SSE4.2 crc32 instruction when the CPU has
 * it, with the table otherwise: the same function either way.
 *
 * Compaction writes a complete new file under a temporary name and renames
 * it over the journal: readers see either the old or the new file, never a
 * mix, and a crash at any point leaves a readable journal.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "macro.h"

#define JOURNAL_TMP_INFIX ".tmp."
#define JOURNAL_TMP_RANDOM 6
#define JOURNAL_TMP_TRIES 64

/* CRC32C, reflected polynomial 0x82f63b78: crc32c_table[i] is the CRC of
 * byte i. Generated once, the only global of the module. */
static const uint32_t crc32c_table[256] = {
        0x00000000U, 0xf26b8303U, 0xe13b70f7U, 0x1350f3f4U, 0xc79a971fU, 0x35f1141cU,
        0x26a1e7e8U, 0xd4ca64ebU, 0x8ad958cfU, 0x78b2dbccU, 0x6be22838U, 0x9989ab3bU,
        0x4d43cfd0U, 0xbf284cd3U, 0xac78bf27U, 0x5e133c24U, 0x105ec76fU, 0xe235446cU,
        0xf165b798U, 0x030e349bU, 0xd7c45070U, 0x25afd373U, 0x36ff2087U, 0xc494a384U,
        0x9a879fa0U, 0x68ec1ca3U, 0x7bbcef57U, 0x89d76c54U, 0x5d1d08bfU, 0xaf768bbcU,
        0xbc267848U, 0x4e4dfb4bU, 0x20bd8edeU, 0xd2d60dddU, 0xc186fe29U, 0x33ed7d2aU,
        0xe72719c1U, 0x154c9ac2U, 0x061c6936U, 0xf477ea35U, 0xaa64d611U, 0x580f5512U,
        0x4b5fa6e6U, 0xb93425e5U, 0x6dfe410eU, 0x9f95c20dU, 0x8cc531f9U, 0x7eaeb2faU,
        0x30e349b1U, 0xc288cab2U, 0xd1d83946U, 0x23b3ba45U, 0xf779deaeU, 0x05125dadU,
        0x1642ae59U, 0xe4292d5aU, 0xba3a117eU, 0x4851927dU, 0x5b016189U, 0xa96ae28aU,
        0x7da08661U, 0x8fcb0562U, 0x9c9bf696U, 0x6ef07595U, 0x417b1dbcU, 0xb3109ebfU,
        0xa0406d4bU, 0x522bee48U, 0x86e18aa3U, 0x748a09a0U, 0x67dafa54U, 0x95b17957U,
        0xcba24573U, 0x39c9c670U, 0x2a993584U, 0xd8f2b687U, 0x0c38d26cU, 0xfe53516fU,
        0xed03a29bU, 0x1f682198U, 0x5125dad3U, 0xa34e59d0U, 0xb01eaa24U, 0x42752927U,
        0x96bf4dccU, 0x64d4cecfU, 0x77843d3bU, 0x85efbe38U, 0xdbfc821cU, 0x2997011fU,
        0x3ac7f2ebU, 0xc8ac71e8U, 0x1c661503U, 0xee0d9600U, 0xfd5d65f4U, 0x0f36e6f7U,
        0x61c69362U, 0x93ad1061U, 0x80fde395U, 0x72966096U, 0xa65c047dU, 0x5437877eU,
        0x4767748aU, 0xb50cf789U, 0xeb1fcbadU, 0x197448aeU, 0x0a24bb5aU, 0xf84f3859U,
        0x2c855cb2U, 0xdeeedfb1U, 0xcdbe2c45U, 0x3fd5af46U, 0x7198540dU, 0x83f3d70eU,
        0x90a324faU, 0x62c8a7f9U, 0xb602c312U, 0x44694011U, 0x5739b3e5U, 0xa55230e6U,
        0xfb410cc2U, 0x092a8fc1U, 0x1a7a7c35U, 0xe811ff36U, 0x3cdb9bddU, 0xceb018deU,
        0xdde0eb2aU, 0x2f8b6829U, 0x82f63b78U, 0x709db87bU, 0x63cd4b8fU, 0x91a6c88cU,
        0x456cac67U, 0xb7072f64U, 0xa457dc90U, 0x563c5f93U, 0x082f63b7U, 0xfa44e0b4U,
        0xe9141340U, 0x1b7f9043U, 0xcfb5f4a8U, 0x3dde77abU, 0x2e8e845fU, 0xdce5075cU,
        0x92a8fc17U, 0x60c37f14U, 0x73938ce0U, 0x81f80fe3U, 0x55326b08U, 0xa759e80bU,
        0xb4091bffU, 0x466298fcU, 0x1871a4d8U, 0xea1a27dbU, 0xf94ad42fU, 0x0b21572cU,
        0xdfeb33c7U, 0x2d80b0c4U, 0x3ed04330U, 0xccbbc033U, 0xa24bb5a6U, 0x502036a5U,
        0x4370c551U, 0xb11b4652U, 0x65d122b9U, 0x97baa1baU, 0x84ea524eU, 0x7681d14dU,
        0x2892ed69U, 0xdaf96e6aU, 0xc9a99d9eU, 0x3bc21e9dU, 0xef087a76U, 0x1d63f975U,
        0x0e330a81U, 0xfc588982U, 0xb21572c9U, 0x407ef1caU, 0x532e023eU, 0xa145813dU,
        0x758fe5d6U, 0x87e466d5U, 0x94b49521U, 0x66df1622U, 0x38cc2a06U, 0xcaa7a905U,
        0xd9f75af1U, 0x2b9cd9f2U, 0xff56bd19U, 0x0d3d3e1aU, 0x1e6dcdeeU, 0xec064eedU,
        0xc38d26c4U, 0x31e6a5c7U, 0x22b65633U, 0xd0ddd530U, 0x0417b1dbU, 0xf67c32d8U,
        0xe52cc12cU, 0x1747422fU, 0x49547e0bU, 0xbb3ffd08U, 0xa86f0efcU, 0x5a048dffU,
        0x8ecee914U, 0x7ca56a17U, 0x6ff599e3U, 0x9d9e1ae0U, 0xd3d3e1abU, 0x21b862a8U,
        0x32e8915cU, 0xc083125fU, 0x144976b4U, 0xe622f5b7U, 0xf5720643U, 0x07198540U,
        0x590ab964U, 0xab613a67U, 0xb831c993U, 0x4a5a4a90U, 0x9e902e7bU, 0x6cfbad78U,
        0x7fab5e8cU, 0x8dc0dd8fU, 0xe330a81aU, 0x115b2b19U, 0x020bd8edU, 0xf0605beeU,
        0x24aa3f05U, 0xd6c1bc06U, 0xc5914ff2U, 0x37faccf1U, 0x69e9f0d5U, 0x9b8273d6U,
        0x88d28022U, 0x7ab90321U, 0xae7367caU, 0x5c18e4c9U, 0x4f48173dU, 0xbd23943eU,
        0xf36e6f75U, 0x0105ec76U, 0x12551f82U, 0xe03e9c81U, 0x34f4f86aU, 0xc69f7b69U,
        0xd5cf889dU, 0x27a40b9eU, 0x79b737baU, 0x8bdcb4b9U, 0x988c474dU, 0x6ae7c44eU,
        0xbe2da0a5U, 0x4c4623a6U, 0x5f16d052U, 0xad7d5351U,
};

uint32_t mc_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        crc = ~crc;
        while (len--)
                crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JOURNAL_HAVE_CRC32C_SSE42 1

/**
 * crc32c_sse42() - the CRC32C update with the SSE4.2 crc32 instruction, which
 * computes exactly this polynomial (reflected 0x82f63b78), 8 bytes at a time
 * @crc: the running CRC, already inverted
 * @p: data (any alignment: loaded with memcpy())
 * @len: its length
 *
 * Only to be called when the CPU has SSE4.2 (mc_crc32c_hw_available()).
 *
 * Return: the updated CRC, still inverted.
 */
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
        uint64_t c = crc;

        for (; len >= 8; p += 8, len -= 8) {
                uint64_t v;

                memcpy(&v, p, sizeof(v));
                c = __builtin_ia32_crc32di(c, v);
        }
        crc = (uint32_t) c;
        if (len >= 4) {
                uint32_t v;

                memcpy(&v, p, sizeof(v));
                crc = __builtin_ia32_crc32si(crc, v);
                p += 4;
                len -= 4;
        }
        while (len--)
                crc = __builtin_ia32_crc32qi(crc, *p++);
        return crc;
}
#endif

bool mc_crc32c_hw_available(void)
{
#ifdef JOURNAL_HAVE_CRC32C_SSE42
        return __builtin_cpu_supports("sse4.2");
#else
        return false;
#endif
}

int mc_crc32c_hw(uint32_t crc, const void *buf, size_t len, uint32_t *ret)
{
        if (!ret || (!buf && len))
                return -EINVAL;
#ifdef JOURNAL_HAVE_CRC32C_SSE42
        if (__builtin_cpu_supports("sse4.2")) {
                *ret = ~crc32c_sse42(~crc, buf, len);
                return 0;
        }
#endif
        return -EOPNOTSUPP;
}

uint32_t mc_crc32c(uint32_t crc, const void *buf, size_t len)
{
#ifdef JOURNAL_HAVE_CRC32C_SSE42
        /* __builtin_cpu_supports() reads what libgcc's constructor found: a load, no cpuid. */
        if (__builtin_cpu_supports("sse4.2"))
                return ~crc32c_sse42(~crc, buf, len);
#endif
        return mc_crc32c_sw(crc, buf, len);
}

/**
 * put_le32() - store @v little-endian at @p
 * @p: 4 bytes of space
 * @v: the value
 */
static void put_le32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = (v >> 24) & 0xff;
}

/**
 * get_le32() - load a little-endian u32 from @p
 * @p: 4 bytes
 * Return: the value
 */
static uint32_t get_le32(const uint8_t *p)
{
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
               (uint32_t) p[3] << 24;
}

/**
 * header_fill() - the file header
 * @p: MC_JOURNAL_HEADER_SIZE bytes to fill
 */
static void header_fill(uint8_t *p)
{
        memcpy(p, MC_JOURNAL_MAGIC, 8);
        put_le32(p + 8, MC_JOURNAL_VERSION);
        put_le32(p + 12, 0);
}

/**
 * pwrite_all() - write all of @buf at @offset, retrying short writes and EINTR
 * @fd: borrowed
 * @buf: data
 * @len: its length
 * @offset: file offset
 *
 * Return: 0, negative errno, -EIO if the kernel keeps writing nothing.
 */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) offset);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

int mc_journal_header_write(int fd)
{
        uint8_t h[MC_JOURNAL_HEADER_SIZE];

        header_fill(h);
        return pwrite_all(fd, h, sizeof(h), 0);
}

int mc_journal_header_check(const void *buf, size_t len, const char **reterr_reason)
{
        const uint8_t *p = buf;
        const char *why;
        int r;

        if (len == 0) {
                why = "empty file, no journal header";
                r = -ENODATA;
        } else if (len < MC_JOURNAL_HEADER_SIZE) {
                why = "file shorter than a journal header";
                r = -EBADMSG;
        } else if (memcmp(p, MC_JOURNAL_MAGIC, 8) != 0) {
                why = "not a journal file (bad magic)";
                r = -EBADMSG;
        } else if (get_le32(p + 8) != MC_JOURNAL_VERSION) {
                why = "unsupported journal format version";
                r = -EPROTONOSUPPORT;
        } else if (get_le32(p + 12) != 0) {
                why = "unknown journal header flags";
                r = -EPROTONOSUPPORT;
        } else
                return 0;

        if (reterr_reason)
                *reterr_reason = why;
        return r;
}

int mc_journal_encode(const Memconv__JournalRecord *rec, uint8_t **buf, size_t *len, size_t *cap)
{
        size_t size, need, packed;
        uint8_t *p;

        if (!rec || !buf || !len || !cap || *len > *cap)
                return -EINVAL;
        if (rec->body_case == MEMCONV__JOURNAL_RECORD__BODY__NOT_SET)
                return -EINVAL;
        size = memconv__journal_record__get_packed_size(rec);
        if (size == 0)
                return -EINVAL;
        if (size > MC_JOURNAL_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (*len > SIZE_MAX - MC_JOURNAL_FRAME_SIZE - size)
                return -ENOMEM;
        need = *len + MC_JOURNAL_FRAME_SIZE + size;

        if (need > *cap) {
                size_t ncap = *cap > SIZE_MAX / 2 ? need : *cap * 2;

                if (ncap < need)
                        ncap = need;
                if (ncap < 4096)
                        ncap = 4096;
                p = realloc(*buf, ncap);
                if (!p)
                        return -ENOMEM;
                *buf = p;
                *cap = ncap;
        }

        p = *buf + *len;
        packed = memconv__journal_record__pack(rec, p + MC_JOURNAL_FRAME_SIZE);
        if (packed != size)
                return -EIO; /* protobuf-c disagrees with itself; *len unchanged */
        put_le32(p, (uint32_t) size);
        put_le32(p + 4, mc_crc32c(0, p + MC_JOURNAL_FRAME_SIZE, size));
        *len = need;
        return 0;
}

int mc_journal_append(int fd, const void *buf, size_t len)
{
        struct stat st;
        int r;

        if (len == 0)
                return 0;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size < (off_t) MC_JOURNAL_HEADER_SIZE)
                return -EBADMSG;

        r = pwrite_all(fd, buf, len, (uint64_t) st.st_size);
        if (r == 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r < 0) {
                /* Best effort: drop whatever part reached the file, so the
                 * next append does not land behind a torn record. */
                int saved = errno;

                (void) !ftruncate(fd, st.st_size);
                errno = saved;
                return r;
        }
        return 0;
}

int mc_journal_truncate_tail(int fd, uint64_t valid_end)
{
        struct stat st;

        if (valid_end < MC_JOURNAL_HEADER_SIZE)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (valid_end > (uint64_t) st.st_size)
                return -EINVAL;
        if (ftruncate(fd, (off_t) valid_end) < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/**
 * tmp_name_make() - "@name.tmp.XXXXXX" with a random suffix
 * @name: the journal's name
 * @out: buffer of @size bytes
 * @size: its size, > strlen(@name) + strlen(JOURNAL_TMP_INFIX) + JOURNAL_TMP_RANDOM
 */
static void tmp_name_make(const char *name, char *out, size_t size)
{
        const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz0123456789";
        uint8_t rnd[JOURNAL_TMP_RANDOM];
        char suffix[JOURNAL_TMP_RANDOM + 1];

        if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd)) {
                struct timespec ts;
                uint64_t x;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                x = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t) getpid() << 20 ^
                    (uint64_t) ts.tv_sec;
                for (size_t i = 0; i < sizeof(rnd); i++, x >>= 8)
                        rnd[i] = (uint8_t) x;
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
        suffix[JOURNAL_TMP_RANDOM] = '\0';
        snprintf(out, size, "%s" JOURNAL_TMP_INFIX "%s", name, suffix);
}

/**
 * name_ok() - whether @name can be a journal in a directory, temp name included
 * @name: the file name
 * Return: true if so
 */
static bool name_ok(const char *name)
{
        return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0 &&
               strlen(name) + strlen(JOURNAL_TMP_INFIX) + JOURNAL_TMP_RANDOM <= NAME_MAX;
}

int mc_journal_rewrite_buffer(int dirfd, const char *name, const void *buf, size_t len,
                              int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        uint8_t header[MC_JOURNAL_HEADER_SIZE];
        char tmp[NAME_MAX + 1];
        int r;

        if (!name_ok(name) || (len > 0 && !buf))
                return -EINVAL;

        for (int tries = 0;; tries++) {
                tmp_name_make(name, tmp, sizeof(tmp));
                fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || tries >= JOURNAL_TMP_TRIES)
                        return negative_errno();
        }

        header_fill(header);
        r = pwrite_all(fd, header, sizeof(header), 0);
        if (r == 0)
                r = pwrite_all(fd, buf, len, sizeof(header));
        if (r == 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }

        /* The new file is in place; make the rename itself durable. */
        if (fsync(dirfd) < 0)
                return negative_errno();

        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

int mc_journal_rewrite(int dirfd, const char *name, const Memconv__JournalRecord *const *records,
                       size_t n, int *ret_fd)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        if (!name_ok(name) || (n > 0 && !records))
                return -EINVAL;
        /* Everything that can be refused is refused before a file exists. */
        for (size_t i = 0; i < n; i++) {
                r = mc_journal_encode(records[i], &buf, &len, &cap);
                if (r < 0)
                        return r;
        }
        return mc_journal_rewrite_buffer(dirfd, name, buf, len, ret_fd);
}

/* ------------------------------------------------------------------ reading */

/**
 * struct mc_journal_reader - a journal file in memory, walked front to back
 * @data: the whole file (owned)
 * @size: its length
 * @pos: offset of the next record's frame header
 * @done: next() has returned 0; @pos is the end of the valid part
 * @corrupt: the valid part ended before @size; @reason says why
 * @reason: text for mc_journal_reader_tail()
 */
struct mc_journal_reader {
        uint8_t *data;
        size_t size;
        size_t pos;
        size_t peeked;          /* payload length of the frame at pos whose CRC peek() checked; 0: none */
        bool done;
        bool corrupt;
        char reason[160];
};

struct mc_journal_reader *mc_journal_reader_free(struct mc_journal_reader *r)
{
        if (r) {
                free(r->data);
                free(r);
        }
        return NULL;
}

/**
 * reader_new_take() - a reader over @data, after checking its header
 * @data: the whole file; ownership passes to this function (freed on failure)
 * @size: its length
 * @ret: the reader
 * @reterr_reason: header error text, or NULL
 *
 * Return: 0, mc_journal_header_check()'s errors, -ENOMEM.
 */
static int reader_new_take(uint8_t *data, size_t size, struct mc_journal_reader **ret,
                           const char **reterr_reason)
{
        _cleanup_free_ uint8_t *d = data;
        struct mc_journal_reader *r;
        int k;

        k = mc_journal_header_check(d, size, reterr_reason);
        if (k < 0)
                return k;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->data = TAKE_PTR(d);
        r->size = size;
        r->pos = MC_JOURNAL_HEADER_SIZE;
        *ret = r;
        return 0;
}

int mc_journal_reader_new(const void *data, size_t size, struct mc_journal_reader **ret,
                          const char **reterr_reason)
{
        uint8_t *copy;

        if (!ret || (size > 0 && !data))
                return -EINVAL;
        copy = malloc(size > 0 ? size : 1);
        if (!copy)
                return -ENOMEM;
        if (size > 0)
                memcpy(copy, data, size);
        return reader_new_take(copy, size, ret, reterr_reason);
}

int mc_journal_reader_open(int fd, struct mc_journal_reader **ret, const char **reterr_reason)
{
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0, cap;
        struct stat st;

        if (!ret)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* One byte more than the size, so that the common case ends with a
         * single read returning 0; the file may still have grown. */
        cap = (size_t) st.st_size + 1;
        if (cap < 4096)
                cap = 4096;
        data = malloc(cap);
        if (!data)
                return -ENOMEM;

        for (;;) {
                ssize_t n;

                if (size == cap) {
                        uint8_t *p;

                        if (cap > SIZE_MAX / 2)
                                return -EFBIG;
                        p = realloc(data, cap * 2);
                        if (!p)
                                return -ENOMEM;
                        data = p;
                        cap *= 2;
                }
                n = pread(fd, data + size, cap - size, (off_t) size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }

        return reader_new_take(TAKE_PTR(data), size, ret, reterr_reason);
}

/**
 * struct alloc_watch - allocator state for one decode
 * @failed: an allocation failed (the decode's NULL means -ENOMEM)
 */
struct alloc_watch {
        bool failed;
};

/**
 * watch_alloc() - malloc() that notes its failures in @userdata
 * @userdata: the struct alloc_watch of the decode
 * @size: bytes wanted
 * Return: the memory (freed with free(), so records may be freed with the
 * default allocator), or NULL
 */
static void *watch_alloc(void *userdata, size_t size)
{
        void *p = malloc(size);

        if (!p && size > 0)
                ((struct alloc_watch *) userdata)->failed = true;
        return p;
}

/**
 * watch_free() - free() for the decode's allocator
 * @userdata: unused
 * @p: memory from watch_alloc()
 */
static void watch_free(void *userdata _unused_, void *p)
{
        free(p);
}

/**
 * reader_stop() - end the valid part at @r->pos
 * @r: the reader
 * @corrupt: whether bytes follow that are not a valid record
 * @fmt: printf format of the reason (when @corrupt)
 *
 * Return: 0, for next() to return.
 */
__attribute__((format(printf, 3, 4)))
static int reader_stop(struct mc_journal_reader *r, bool corrupt, const char *fmt, ...)
{
        r->done = true;
        r->corrupt = corrupt;
        if (corrupt) {
                va_list ap;

                va_start(ap, fmt);
                vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
                va_end(ap);
        }
        return 0;
}

int mc_journal_reader_next(struct mc_journal_reader *r, Memconv__JournalRecord **ret)
{
        struct alloc_watch watch = { .failed = false };
        ProtobufCAllocator allocator = {
                .alloc = watch_alloc,
                .free = watch_free,
                .allocator_data = &watch,
        };
        Memconv__JournalRecord *rec;
        const uint8_t *p;
        size_t left;
        uint32_t len, crc, crc_calc;
        uint64_t off;

        if (!r || !ret)
                return -EINVAL;
        if (r->done)
                return 0;

        off = r->pos;
        left = r->size - r->pos;
        p = r->data + r->pos;
        if (left == 0)
                return reader_stop(r, false, "%s", "");
        if (left < MC_JOURNAL_FRAME_SIZE)
                return reader_stop(r, true, "short record header (%zu bytes) at offset %" PRIu64,
                                   left, off);
        len = get_le32(p);
        crc = get_le32(p + 4);
        if (r->peeked) {
                /* mc_journal_reader_peek() checked this frame already. */
                len = (uint32_t) r->peeked;
                goto decode;
        }
        if (len == 0) {
                bool zeros = true;

                for (size_t i = 0; i < left && zeros; i++)
                        zeros = p[i] == 0;
                return reader_stop(r, true, "%s at offset %" PRIu64,
                                   zeros ? "zero-filled tail" : "zero-length record", off);
        }
        if (len > MC_JOURNAL_PAYLOAD_MAX)
                return reader_stop(r, true,
                                   "record length %" PRIu32 " exceeds maximum %u at offset %"
                                   PRIu64, len, MC_JOURNAL_PAYLOAD_MAX, off);
        if (len > left - MC_JOURNAL_FRAME_SIZE)
                return reader_stop(r, true,
                                   "record length %" PRIu32 " runs past end of file"
                                   " (%zu bytes left) at offset %" PRIu64,
                                   len, left - MC_JOURNAL_FRAME_SIZE, off);
        crc_calc = mc_crc32c(0, p + MC_JOURNAL_FRAME_SIZE, len);
        if (crc_calc != crc)
                return reader_stop(r, true,
                                   "CRC mismatch at offset %" PRIu64 " (stored 0x%08" PRIx32
                                   ", computed 0x%08" PRIx32 ")",
                                   off, crc, crc_calc);

decode:
        rec = memconv__journal_record__unpack(&allocator, len, p + MC_JOURNAL_FRAME_SIZE);
        if (!rec) {
                if (watch.failed)
                        return -ENOMEM;
                return reader_stop(r, true,
                                   "undecodable record (%" PRIu32 " bytes) at offset %" PRIu64,
                                   len, off);
        }

        r->pos += MC_JOURNAL_FRAME_SIZE + len;
        r->peeked = 0;
        *ret = rec;
        return 1;
}

int mc_journal_reader_peek(struct mc_journal_reader *r, const void **ret_payload, size_t *ret_len)
{
        const uint8_t *p;
        size_t left;
        uint32_t len;

        if (!r || !ret_payload || !ret_len)
                return -EINVAL;
        if (r->done)
                return 0;
        p = r->data + r->pos;
        if (!r->peeked) {
                /* The checks of mc_journal_reader_next(), in its order; anything it would
                 * report (the end of file too) is left to it. */
                left = r->size - r->pos;
                if (left < MC_JOURNAL_FRAME_SIZE)
                        return 0;
                len = get_le32(p);
                if (len == 0 || len > MC_JOURNAL_PAYLOAD_MAX || len > left - MC_JOURNAL_FRAME_SIZE)
                        return 0;
                if (mc_crc32c(0, p + MC_JOURNAL_FRAME_SIZE, len) != get_le32(p + 4))
                        return 0;
                r->peeked = len;
        }
        *ret_payload = p + MC_JOURNAL_FRAME_SIZE;
        *ret_len = r->peeked;
        return 1;
}

int mc_journal_reader_skip(struct mc_journal_reader *r)
{
        if (!r || !r->peeked)
                return -EINVAL;
        r->pos += MC_JOURNAL_FRAME_SIZE + r->peeked;
        r->peeked = 0;
        return 0;
}

/**
 * pb_varint() - decode a protobuf varint as protobuf-c does
 * @p: its first byte
 * @left: bytes available at @p
 * @max: the most bytes protobuf-c accepts for it (PB_TAG_MAX, ...)
 * @ret: the value, truncated to 64 bits as protobuf-c does; untouched on failure
 *
 * Return: the number of bytes used, 0 if there is no complete varint of at
 * most @max bytes at @p.
 */
static size_t pb_varint(const uint8_t *p, size_t left, size_t max, uint64_t *ret)
{
        uint64_t v = 0;

        for (size_t i = 0; i < max && i < left; i++) {
                v |= (uint64_t) (p[i] & 0x7f) << (7 * i);
                if (!(p[i] & 0x80)) {
                        *ret = v;
                        return i + 1;
                }
        }
        return 0;
}

#define PB_TAG(field, wire) ((uint64_t) (field) << 3 | (wire))
#define PB_WIRE_VARINT 0U
#define PB_WIRE_LEN 2U
#define PB_TAG_MAX 5U           /* protobuf-c's limits, in bytes: a tag, */
#define PB_PREFIX_MAX 5U        /* a length prefix, */
#define PB_VARINT_MAX 10U       /* a varint value */

/**
 * decode_history_fields() - the fields of a HistoryRecord, all varints
 * @p: its encoding
 * @len: the length of @p
 * @c: receives the fields, initialised by the caller
 *
 * Return: true if @p holds only known fields, each a varint, each at most
 * once; false otherwise (@c is then partly filled).
 */
static bool decode_history_fields(const uint8_t *p, size_t len, Memconv__HistoryRecord *c)
{
        const uint8_t *end = p + len;
        uint32_t seen = 0;

        while (p < end) {
                uint64_t tag, v;
                uint32_t f;
                size_t k;

                k = pb_varint(p, (size_t) (end - p), PB_TAG_MAX, &tag);
                if (!k || (tag & 7) != PB_WIRE_VARINT || tag >> 3 < 1 || tag >> 3 > 14)
                        return false;
                f = (uint32_t) (tag >> 3);
                if (seen & (1U << f))
                        return false;  /* protobuf-c keeps the last: leave it to it */
                seen |= 1U << f;
                p += k;
                k = pb_varint(p, (size_t) (end - p), PB_VARINT_MAX, &v);
                if (!k)
                        return false;
                p += k;
                switch (f) {
                case 1: c->seq = v; break;
                case 2: c->realtime_usec = v; break;
                case 3: c->gpa = v; break;
                case 4: c->size = v; break;
                /* enums and uint32: protobuf-c keeps the low 32 bits */
                case 5: c->from = (Memconv__Attribute) (int32_t) (uint32_t) v; break;
                case 6: c->to = (Memconv__Attribute) (int32_t) (uint32_t) v; break;
                case 7:
                        /* protobuf-c's bool is "any bit set", bits past 64 included */
                        if (k == PB_VARINT_MAX)
                                return false;
                        c->implicit = v != 0;
                        break;
                case 8: c->source = (Memconv__ConvertSource) (int32_t) (uint32_t) v; break;
                case 9: c->vcpu = (uint32_t) v; break;
                case 10: c->request_id = v; break;
                case 11: c->decision_id = v; break;
                case 12: c->result = (Memconv__ChangeResult) (int32_t) (uint32_t) v; break;
                case 13: c->decision_latency_usec = v; break;
                case 14: c->code = (Memconv__Code) (int32_t) (uint32_t) v; break;
                }
        }
        return true;
}

int mc_journal_decode_change(const void *payload, size_t len, uint64_t *ret_realtime_usec,
                             Memconv__HistoryRecord *ret_change)
{
        const uint8_t *p = payload, *end;
        Memconv__HistoryRecord c = MEMCONV__HISTORY_RECORD__INIT;
        uint64_t realtime = 0;
        bool seen_realtime = false, seen_change = false;

        if ((!payload && len) || !ret_realtime_usec || !ret_change)
                return -EINVAL;
        end = p + len;
        while (p < end) {
                uint64_t tag, v;
                size_t k;

                k = pb_varint(p, (size_t) (end - p), PB_TAG_MAX, &tag);
                if (!k)
                        return 0;
                p += k;
                if (tag == PB_TAG(1, PB_WIRE_VARINT) && !seen_realtime) {
                        k = pb_varint(p, (size_t) (end - p), PB_VARINT_MAX, &v);
                        if (!k)
                                return 0;
                        p += k;
                        realtime = v;
                        seen_realtime = true;
                } else if (tag == PB_TAG(12, PB_WIRE_LEN) && !seen_change) {
                        k = pb_varint(p, (size_t) (end - p), PB_PREFIX_MAX, &v);
                        if (!k || v > (uint64_t) (end - p) - k)
                                return 0;
                        p += k;
                        if (!decode_history_fields(p, (size_t) v, &c))
                                return 0;
                        p += v;
                        seen_change = true;
                } else
                        return 0;
        }
        if (!seen_change)
                return 0;
        *ret_realtime_usec = realtime;
        *ret_change = c;
        return 1;
}

int mc_journal_reader_tail(const struct mc_journal_reader *r, uint64_t *ret_valid_end,
                           const char **ret_reason)
{
        if (!r)
                return -EINVAL;
        if (!r->done)
                return -EBUSY;
        if (ret_valid_end)
                *ret_valid_end = r->pos;
        if (ret_reason)
                *ret_reason = r->corrupt ? r->reason : NULL;
        return r->corrupt ? 1 : 0;
}

uint64_t mc_journal_reader_offset(const struct mc_journal_reader *r)
{
        return r->pos;
}

uint64_t mc_journal_reader_size(const struct mc_journal_reader *r)
{
        return r->size;
}
