/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * scenario.c - the scenarios memconv-vmm runs, shared by both modes.
 *
 * A scenario is C code running on one vCPU's thread; it drives the guest
 * with commands (g_fill(), g_check(), g_touch(), g_convert()) whose memory
 * accesses are real guest instructions, and inspects the host side (the
 * shared memfd mapping, the attribute record, lseek holes) in between. Every
 * vCPU runs the same scenario at the same time on its own slice of RAM
 * [slice_base, slice_base + slice_size) (>= 4 MiB, 2 MiB aligned), so the
 * vCPUs never convert each other's pages.
 *
 * What the scenarios rely on (memconvd's and QEMU's semantics):
 *  - RAM starts shared; a conversion flips the attribute, then discards the
 *    backing that became stale. Hence a page's inactive side always reads
 *    zero once its discard is done: after to-shared the guest_memfd was
 *    punched, after to-private the shared memfd was.
 *  - In daemon mode discards are asynchronous but ordered: a conversion
 *    overlapping one whose discard is pending waits for it (DESIGN 4.4).
 *    So a scenario that looks at a discarded side first issues another
 *    request on the same range. Inline mode discards synchronously.
 *
 * Each scenario starts with scen_reset(): the whole slice back to shared.
 * Failures are recorded in v->fail (the first one wins) and returned as
 * -EIO; the runner prints them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm-compat.h"

#include "attr.h"
#include "vmm.h"

#define KiB 1024ull
#define MiB (1024ull * 1024ull)
#define PAGE VMM_PAGE_SIZE

#define TRY(expr)                        \
        do {                             \
                int _r = (expr);         \
                if (_r < 0)              \
                        return _r;       \
        } while (0)

/**
 * fail() - record the first failure of this vCPU's scenario
 * @v: the vCPU
 * @fmt: printf format of the reason
 *
 * Return: -EIO
 */
static int __attribute__((format(printf, 2, 3))) fail(struct vcpu *v, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (v->fail[0])
                return -EIO;
        n = snprintf(v->fail, sizeof(v->fail), "vcpu%u: ", v->idx);
        va_start(ap, fmt);
        vsnprintf(v->fail + n, sizeof(v->fail) - (size_t) n, fmt, ap);
        va_end(ap);
        return -EIO;
}

/**
 * pat32() - a byte pattern as the guest's 32-bit word
 * @b: the byte
 *
 * Return: @b in all four bytes
 */
static uint32_t pat32(uint8_t b)
{
        return 0x01010101u * b;
}

/**
 * sample_step() - which words of a range the guest and the host look at
 * @gpa: the range's start
 * @len: its length
 *
 * The guest's instructions are emulated on this machine (about 0.17 us per
 * word written; a dense 2 MiB fill takes 180 ms), so page-aligned ranges
 * are sampled: the words at offsets 0, 1024, 2048 and 3072 of every page.
 * The set depends only on the address, so a range filled one way and
 * checked another (a sub-range, a larger range) always looks at words that
 * were written. Ranges that are not page-aligned are dense (every word).
 * Return: the step in bytes from @gpa, 4 for every word
 */
static uint32_t sample_step(uint64_t gpa, uint64_t len)
{
        return (gpa | len) & (PAGE - 1) ? 4 : 1024;
}

/**
 * cmd() - run one guest command, turning protocol errors into a failure
 * @v: the vCPU
 * @c: CMD_*
 * @args: arguments (borrowed)
 * @n: their number
 * @res: the two result words
 *
 * Return: 0 or -EIO/negative errno (failure recorded)
 */
static int cmd(struct vcpu *v, uint32_t c, const uint32_t *args, unsigned n, uint32_t res[2])
{
        int r = vcpu_command(v, c, args, n, res);

        if (r < 0)
                return fail(v, "guest command %u failed: %s", c, strerror(-r));
        return 0;
}

/**
 * g_fill() - the guest writes @b over [gpa, gpa+len) through @view
 * @v: the vCPU
 * @gpa: RAM address
 * @len: bytes, multiple of 4
 * @b: pattern byte
 * @view: VIEW_PRIVATE or VIEW_SHARED
 *
 * Return: 0 or -EIO (failure recorded)
 */
static int g_fill(struct vcpu *v, uint64_t gpa, uint64_t len, uint8_t b, int view)
{
        uint32_t a[] = { (uint32_t) gpa, (uint32_t) len, pat32(b), (uint32_t) view, sample_step(gpa, len) };
        uint32_t res[2];

        TRY(cmd(v, CMD_FILL, a, ELEMENTS(a), res));
        if (res[0])
                return fail(v, "guest fill 0x%llx+0x%llx (%s view) refused: code %u",
                            (unsigned long long) gpa, (unsigned long long) len,
                            view ? "shared" : "private", res[0]);
        return 0;
}

/**
 * g_check() - the guest verifies [gpa, gpa+len) holds @b through @view
 * @v: the vCPU
 * @gpa: RAM address
 * @len: bytes, multiple of 4
 * @b: expected byte
 * @view: VIEW_PRIVATE or VIEW_SHARED
 * @what: what the check shows, for the failure message
 *
 * Return: 0 or -EIO (failure recorded, with the first mismatch)
 */
static int g_check(struct vcpu *v, uint64_t gpa, uint64_t len, uint8_t b, int view, const char *what)
{
        uint32_t a[] = { (uint32_t) gpa, (uint32_t) len, pat32(b), (uint32_t) view, sample_step(gpa, len) };
        uint32_t res[2];

        TRY(cmd(v, CMD_CHECK, a, ELEMENTS(a), res));
        if (res[0] != CHECK_OK)
                return fail(v, "%s: guest read 0x%08x at 0x%llx (%s view), expected 0x%08x", what, res[1],
                            (unsigned long long) (gpa + res[0]), view ? "shared" : "private", pat32(b));
        return 0;
}

/**
 * g_touch() - the guest reads one word per page of [gpa, gpa+len)
 * @v: the vCPU
 * @gpa: RAM address
 * @len: bytes
 * @view: VIEW_PRIVATE or VIEW_SHARED
 *
 * Return: 0 or -EIO (failure recorded)
 */
static int g_touch(struct vcpu *v, uint64_t gpa, uint64_t len, int view)
{
        uint32_t a[] = { (uint32_t) gpa, (uint32_t) len, (uint32_t) view }, res[2];

        TRY(cmd(v, CMD_TOUCH, a, ELEMENTS(a), res));
        if (res[0])
                return fail(v, "guest touch 0x%llx+0x%llx refused: code %u", (unsigned long long) gpa,
                            (unsigned long long) len, res[0]);
        return 0;
}

/**
 * g_convert_raw() - the guest issues MAP_GPA_RANGE(gpa, npages, attrs)
 * @v: the vCPU
 * @gpa: a0
 * @npages: a1
 * @attrs: a2
 * @ret: what the guest got back in eax
 *
 * Return: 0 or -EIO (failure recorded)
 */
static int g_convert_raw(struct vcpu *v, uint64_t gpa, uint64_t npages, uint32_t attrs, uint32_t *ret)
{
        uint32_t a[] = { (uint32_t) gpa, (uint32_t) npages, attrs, v->vmm->real_hypercall }, res[2];

        TRY(cmd(v, CMD_CONVERT, a, ELEMENTS(a), res));
        *ret = res[0];
        return 0;
}

/**
 * g_convert() - the guest converts [gpa, gpa+size) and expects success
 * @v: the vCPU
 * @gpa: 4 KiB aligned
 * @size: bytes, 4 KiB aligned
 * @to_private: target attribute
 *
 * Uses the 2 MiB page-size hint when the range is 2 MiB aligned.
 * Return: 0 or -EIO (failure recorded)
 */
static int g_convert(struct vcpu *v, uint64_t gpa, uint64_t size, bool to_private)
{
        uint32_t attrs = to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED;
        uint32_t ret;

        if (!((gpa | size) & (2 * MiB - 1)))
                attrs |= KVM_MAP_GPA_RANGE_PAGE_SZ_2M;
        TRY(g_convert_raw(v, gpa, size / PAGE, attrs, &ret));
        if (ret)
                return fail(v, "MAP_GPA_RANGE(0x%llx, %llu pages, %s) returned %d",
                            (unsigned long long) gpa, (unsigned long long) (size / PAGE),
                            to_private ? "private" : "shared", (int) ret);
        return 0;
}

/**
 * expect_private() - the attribute record says @n private pages in the range
 * @v: the vCPU
 * @gpa: start
 * @size: bytes
 * @n: expected private pages
 *
 * Return: 0 or -EIO
 */
static int expect_private(struct vcpu *v, uint64_t gpa, uint64_t size, uint64_t n)
{
        uint64_t got = attr_count_private(v->vmm->attr, gpa, size);

        if (got != n)
                return fail(v, "attributes of 0x%llx+0x%llx: %llu private pages, expected %llu",
                            (unsigned long long) gpa, (unsigned long long) size, (unsigned long long) got,
                            (unsigned long long) n);
        return 0;
}

/**
 * host_shared() - the host's mapping of the shared view at @gpa
 * @v: the vCPU
 * @gpa: RAM address
 *
 * Return: a pointer into vmm->shared_map (owned by the VMM)
 */
static uint8_t *host_shared(struct vcpu *v, uint64_t gpa)
{
        return v->vmm->shared_map + gpa;
}

/**
 * host_check_shared() - the host verifies the shared view holds @b (at
 * the words the guest looks at, sample_step())
 * @v: the vCPU
 * @gpa: start
 * @len: bytes
 * @b: expected byte
 * @what: for the message
 *
 * Return: 0 or -EIO
 */
static int host_check_shared(struct vcpu *v, uint64_t gpa, uint64_t len, uint8_t b, const char *what)
{
        const uint8_t *p = host_shared(v, gpa);
        uint32_t step = sample_step(gpa, len);

        for (uint64_t o = 0; o < len; o += step)
                for (uint64_t i = o; i < o + 4; i++)
                        if (p[i] != b)
                                return fail(v, "%s: host read 0x%02x at shared 0x%llx, expected 0x%02x", what,
                                            p[i], (unsigned long long) (gpa + i), b);
        return 0;
}

/**
 * host_private_invisible() - the host's shared view does not show the
 * guest's private data @priv: it holds zeros (discarded) or, in daemon mode
 * with the discard still pending, @old
 * @v: the vCPU
 * @gpa: start
 * @len: bytes
 * @priv: the byte the guest wrote privately
 * @old: the byte the shared side held before the conversion
 *
 * Return: 0 or -EIO
 */
static int host_private_invisible(struct vcpu *v, uint64_t gpa, uint64_t len, uint8_t priv, uint8_t old)
{
        const uint8_t *p = host_shared(v, gpa);
        bool strict = v->vmm->opt.mode == VMM_MODE_INLINE;
        uint32_t step = sample_step(gpa, len);

        for (uint64_t o = 0; o < len; o += step)
                for (uint64_t i = o; i < o + 4; i++)
                        if (p[i] == priv || (p[i] != 0 && (strict || p[i] != old)))
                                return fail(v, "host sees 0x%02x at shared 0x%llx of a private page (expected 0%s)",
                                            p[i], (unsigned long long) (gpa + i),
                                            strict ? "" : " or the old shared data");
        return 0;
}

/**
 * host_shared_is_hole() - is [gpa, gpa+len) a hole in the shared memfd?
 * @v: the vCPU
 * @gpa: start (== file offset)
 * @len: bytes
 *
 * Return: 1 hole, 0 data somewhere in it, negative errno
 */
static int host_shared_is_hole(struct vcpu *v, uint64_t gpa, uint64_t len)
{
        off_t d = lseek(v->vmm->shared_fd, (off_t) gpa, SEEK_DATA);

        if (d < 0)
                return errno == ENXIO ? 1 : -errno;
        return (uint64_t) d >= gpa + len;
}

/**
 * scen_reset() - the slice back to shared (explicitly), and wait for its
 * discards (the same request again)
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_reset(struct vcpu *v)
{
        TRY(g_convert(v, v->slice_base, v->slice_size, false));
        TRY(g_convert(v, v->slice_base, v->slice_size, false));
        return expect_private(v, v->slice_base, v->slice_size, 0);
}

/**
 * scen_explicit() - explicit conversions with the MAP_GPA_RANGE stand-in,
 * including refusals that must change nothing
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_explicit(struct vcpu *v)
{
        struct vmm *vmm = v->vmm;
        uint64_t base = v->slice_base, big = base + 2 * MiB;
        const uint64_t outside = (uint64_t) VMM_MAX_RAM_MB * MiB; /* never RAM */
        static const struct {
                uint32_t off, npages, attrs;
                bool outside;
                const char *what;
        } refusals[] = {
                { 1, 1, KVM_MAP_GPA_RANGE_ENCRYPTED, false, "unaligned gpa to private" },
                { 0x800, 1, KVM_MAP_GPA_RANGE_DECRYPTED, false, "unaligned gpa to shared" },
                { 0, 0, KVM_MAP_GPA_RANGE_ENCRYPTED, false, "zero pages" },
                { 0, 1, KVM_MAP_GPA_RANGE_ENCRYPTED, true, "to private outside RAM" },
        };
        uint32_t ret;

        TRY(scen_reset(v));
        TRY(g_fill(v, base, 64 * KiB, 0xa1, VIEW_SHARED));
        TRY(host_check_shared(v, base, 64 * KiB, 0xa1, "guest's shared write"));

        TRY(g_convert(v, base, 64 * KiB, true));
        TRY(expect_private(v, base, 64 * KiB, 16));
        TRY(g_fill(v, base, 64 * KiB, 0xb2, VIEW_PRIVATE));
        TRY(g_check(v, base, 64 * KiB, 0xb2, VIEW_PRIVATE, "private data after to-private"));
        TRY(host_private_invisible(v, base, 64 * KiB, 0xb2, 0xa1));
        if (v->faults_private || v->faults_shared)
                return fail(v, "explicit conversions caused %lu memory faults", v->faults_private + v->faults_shared);

        TRY(g_convert(v, big, 2 * MiB, true));
        TRY(expect_private(v, big, 2 * MiB, 512));

        TRY(g_convert(v, base, 4 * MiB, false));
        TRY(expect_private(v, base, 4 * MiB, 0));
        TRY(g_check(v, base, 64 * KiB, 0, VIEW_SHARED, "shared view after private -> shared (discarded)"));

        for (size_t i = 0; i < ELEMENTS(refusals); i++) {
                uint64_t gpa = (refusals[i].outside ? outside : base) + refusals[i].off;

                TRY(g_fill(v, base, 4 * PAGE, 0xc3, VIEW_SHARED));
                TRY(g_convert_raw(v, gpa, refusals[i].npages, refusals[i].attrs, &ret));
                if (ret == 0)
                        return fail(v, "refusal '%s' (MAP_GPA_RANGE 0x%llx, %u pages) returned 0", refusals[i].what,
                                    (unsigned long long) gpa, refusals[i].npages);
                vmm_verbose(vmm, "vcpu%u: refused as expected: %s -> %d", v->idx, refusals[i].what, (int) ret);
                TRY(expect_private(v, v->slice_base, v->slice_size, 0));
                TRY(g_check(v, base, 4 * PAGE, 0xc3, VIEW_SHARED, "data after a refused conversion"));
        }
        /* to-shared of GPA space that is not RAM: a successful no-op. */
        TRY(g_convert_raw(v, outside, 1, KVM_MAP_GPA_RANGE_DECRYPTED, &ret));
        if (ret)
                return fail(v, "to-shared outside RAM returned %d, expected 0 (no-op)", (int) ret);
        return expect_private(v, v->slice_base, v->slice_size, 0);
}

/**
 * scen_implicit() - conversions by access through the other view
 * (memory-fault events with flags PRIVATE and 0)
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_implicit(struct vcpu *v)
{
        uint64_t a = v->slice_base, b = v->slice_base + 2 * MiB;
        unsigned long fp, fs;

        TRY(scen_reset(v));
        fp = v->faults_private;
        fs = v->faults_shared;
        TRY(g_fill(v, a, 32 * KiB, 0x5a, VIEW_SHARED));
        if (v->faults_private != fp || v->faults_shared != fs)
                return fail(v, "a shared access to shared memory faulted");

        TRY(g_fill(v, a, 32 * KiB, 0x6b, VIEW_PRIVATE));
        if (v->faults_private - fp != 8)
                return fail(v, "private write of 8 shared pages raised %lu private faults", v->faults_private - fp);
        TRY(expect_private(v, a, 32 * KiB, 8));
        TRY(g_check(v, a, 32 * KiB, 0x6b, VIEW_PRIVATE, "private data after implicit to-private"));
        if (v->faults_private - fp != 8)
                return fail(v, "reading private pages privately faulted");

        TRY(g_touch(v, a, 16 * KiB, VIEW_SHARED));
        if (v->faults_shared - fs != 4)
                return fail(v, "shared read of 4 private pages raised %lu shared faults", v->faults_shared - fs);
        TRY(expect_private(v, a, 32 * KiB, 4));
        TRY(g_check(v, a, 16 * KiB, 0, VIEW_SHARED, "shared view after implicit private -> shared"));
        TRY(g_check(v, a + 16 * KiB, 16 * KiB, 0x6b, VIEW_PRIVATE, "private pages left alone"));
        TRY(g_check(v, a, 16 * KiB, 0, VIEW_PRIVATE, "private view after shared -> private (punched)"));
        if (v->faults_private - fp != 12 || v->faults_shared - fs != 4)
                return fail(v, "fault counts %lu/%lu, expected 12 private / 4 shared", v->faults_private - fp,
                            v->faults_shared - fs);

        TRY(g_touch(v, b, 2 * MiB, VIEW_PRIVATE));
        TRY(expect_private(v, b, 2 * MiB, 512));
        TRY(g_touch(v, b, 2 * MiB, VIEW_SHARED));
        TRY(expect_private(v, b, 2 * MiB, 0));
        if (v->faults_private - fp != 12 + 512 || v->faults_shared - fs != 4 + 512)
                return fail(v, "fault counts %lu/%lu after 2 MiB, expected 524 private / 516 shared",
                            v->faults_private - fp, v->faults_shared - fs);
        return 0;
}

/* The ranges of private_mem_conversions_test, relative to a vCPU's base. */
static const struct {
        uint64_t offset, size;
} selftest_ranges[] = {
        { 0, PAGE }, { 0, 2 * MiB }, { PAGE, PAGE }, { PAGE, 2 * MiB }, { 2 * MiB, PAGE },
};
#define SELFTEST_DATA (2 * MiB + PAGE)

/**
 * host_sync_shared() - the selftest's guest_sync_shared: the host verifies
 * the shared data is @expect and writes @next
 * @v: the vCPU
 * @gpa: start
 * @len: bytes
 * @expect: expected byte
 * @next: new byte
 *
 * Return: 0 or -EIO
 */
static int host_sync_shared(struct vcpu *v, uint64_t gpa, uint64_t len, uint8_t expect, uint8_t next)
{
        TRY(host_check_shared(v, gpa, len, expect, "host sync shared"));
        memset(host_shared(v, gpa), next, len);
        return 0;
}

/**
 * selftest_conversions() - guest_test_explicit_conversion()
 * @v: the vCPU
 * @base: this vCPU's data base
 *
 * Differences forced by this machine: the guest picks a view instead of
 * the hardware picking by attribute; the shared side of a private page is
 * discarded by the conversion, so where the selftest's host expects the old
 * shared pattern after private -> shared, zeros are expected here.
 * Return: 0 or -EIO
 */
static int selftest_conversions(struct vcpu *v, uint64_t base)
{
        const uint8_t def_p = 0xaa, init_p = 0xcc;

        TRY(g_fill(v, base, SELFTEST_DATA, def_p, VIEW_SHARED));
        TRY(g_check(v, base, SELFTEST_DATA, def_p, VIEW_SHARED, "shared by default"));
        TRY(host_sync_shared(v, base, SELFTEST_DATA, def_p, init_p));
        TRY(g_check(v, base, SELFTEST_DATA, init_p, VIEW_SHARED, "host's shared write"));

        for (size_t i = 0; i < ELEMENTS(selftest_ranges); i++) {
                uint64_t gpa = base + selftest_ranges[i].offset, size = selftest_ranges[i].size;
                const uint8_t p1 = 0x11, p2 = 0x22, p3 = 0x33, p4 = 0x44;

                TRY(g_fill(v, gpa, size, p1, VIEW_SHARED));
                TRY(g_convert(v, gpa, size, true));
                TRY(expect_private(v, gpa, size, size / PAGE));
                if (size > PAGE) {
                        TRY(g_fill(v, gpa, PAGE, p2, VIEW_PRIVATE));
                        TRY(g_check(v, gpa, PAGE, p2, VIEW_PRIVATE, "private page of a large range"));
                } else {
                        TRY(g_fill(v, gpa, size, p2, VIEW_PRIVATE));
                        TRY(host_private_invisible(v, gpa, size, p2, p1));
                        TRY(g_check(v, gpa, size, p2, VIEW_PRIVATE, "private data"));
                        if (gpa > base)
                                TRY(g_check(v, base, gpa - base, init_p, VIEW_SHARED, "shared data before"));
                        if (gpa + size < base + SELFTEST_DATA)
                                TRY(g_check(v, gpa + size, base + SELFTEST_DATA - gpa - size, init_p,
                                            VIEW_SHARED, "shared data after"));
                        /* Odd pages back to shared: holes in private ranges. */
                        for (uint64_t j = 0; j < size; j += PAGE) {
                                if ((j / PAGE) & 1) {
                                        TRY(g_convert(v, gpa + j, PAGE, false));
                                        TRY(host_sync_shared(v, gpa + j, PAGE, 0, p3));
                                        TRY(g_check(v, gpa + j, PAGE, p3, VIEW_SHARED, "odd page shared"));
                                } else {
                                        TRY(host_private_invisible(v, gpa + j, PAGE, p2, p1));
                                }
                        }
                }
                /* Whole range back to shared; the host verifies and writes p4. */
                TRY(g_convert(v, gpa, size, false));
                TRY(expect_private(v, gpa, size, 0));
                TRY(g_fill(v, gpa, size, p3, VIEW_SHARED));
                TRY(host_sync_shared(v, gpa, size, p3, p4));
                TRY(g_check(v, gpa, size, p4, VIEW_SHARED, "host's write after to-shared"));
                TRY(g_fill(v, gpa, size, init_p, VIEW_SHARED));
                /* Free all private memory: map shared with fallocate. */
                TRY(g_convert(v, base, SELFTEST_DATA, false));
                TRY(conv_punch(v->vmm->gmem_fd, base, SELFTEST_DATA) < 0 ? fail(v, "punch: %m") : 0);
        }
        return 0;
}

/**
 * selftest_punch_hole() - guest_test_punch_hole(), precise and not
 * @v: the vCPU
 * @base: this vCPU's data base
 * @precise: initialise only the tested range
 *
 * Return: 0 or -EIO
 */
static int selftest_punch_hole(struct vcpu *v, uint64_t base, bool precise)
{
        const uint8_t init_p = 0xcc;
        int gmem = v->vmm->gmem_fd;

        TRY(g_convert(v, base, SELFTEST_DATA, true));
        for (size_t i = 0; i < ELEMENTS(selftest_ranges); i++) {
                uint64_t gpa = base + selftest_ranges[i].offset, size = selftest_ranges[i].size;

                if (conv_punch(gmem, base, SELFTEST_DATA) < 0)
                        return fail(v, "punch guest_memfd: %m");
                if (precise) {
                        TRY(g_fill(v, gpa, size, init_p, VIEW_PRIVATE));
                        TRY(g_check(v, gpa, size, init_p, VIEW_PRIVATE, "re-faulted private data"));
                } else {
                        TRY(g_fill(v, base, SELFTEST_DATA, init_p, VIEW_PRIVATE));
                        TRY(g_check(v, base, SELFTEST_DATA, init_p, VIEW_PRIVATE, "re-faulted private data"));
                }
                if (conv_punch(gmem, gpa, size) < 0)
                        return fail(v, "punch guest_memfd: %m");
                TRY(g_check(v, gpa, size, 0, VIEW_PRIVATE, "private data after punch hole"));
        }
        if (v->faults_private || v->faults_shared)
                return fail(v, "punch-hole test raised memory faults");
        return g_convert(v, base, SELFTEST_DATA, false);
}

/**
 * scen_selftest() - private_mem_conversions_test on every vCPU
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_selftest(struct vcpu *v)
{
        unsigned long f0;

        TRY(scen_reset(v));
        f0 = v->faults_private + v->faults_shared;
        TRY(selftest_conversions(v, v->slice_base));
        if (v->faults_private + v->faults_shared != f0)
                return fail(v, "explicit-conversion test raised memory faults");
        v->faults_private = v->faults_shared = 0;
        TRY(selftest_punch_hole(v, v->slice_base, true));
        TRY(selftest_punch_hole(v, v->slice_base, false));
        return expect_private(v, v->slice_base, v->slice_size, 0);
}

/**
 * scen_data() - discards: private -> shared -> private reads zeros; the
 * shared backing of a private range is a hole
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_data(struct vcpu *v)
{
        const uint64_t sizes[] = { 16 * PAGE, 2 * MiB };
        int r;

        TRY(scen_reset(v));
        for (size_t i = 0; i < ELEMENTS(sizes); i++) {
                uint64_t gpa = v->slice_base + (i ? 2 * MiB : 0), size = sizes[i];

                TRY(g_fill(v, gpa, size, 0x3c, VIEW_SHARED));
                r = host_shared_is_hole(v, gpa, size);
                if (r != 0)
                        return fail(v, "shared backing written by the guest is %s",
                                    r > 0 ? "a hole" : strerror(-r));
                TRY(g_convert(v, gpa, size, true));
                TRY(g_convert(v, gpa, size, true)); /* ordered after the discard */
                r = host_shared_is_hole(v, gpa, size);
                if (r != 1)
                        return fail(v, "after to-private the shared backing of 0x%llx+0x%llx is %s",
                                    (unsigned long long) gpa, (unsigned long long) size,
                                    r == 0 ? "still allocated" : strerror(-r));
                TRY(g_fill(v, gpa, size, 0xd7, VIEW_PRIVATE));
                TRY(g_check(v, gpa, size, 0xd7, VIEW_PRIVATE, "private data"));
                TRY(g_convert(v, gpa, size, false));
                TRY(g_convert(v, gpa, size, false)); /* ordered after the discard */
                TRY(g_check(v, gpa, size, 0, VIEW_SHARED, "shared data after private -> shared"));
                TRY(g_convert(v, gpa, size, true));
                TRY(g_check(v, gpa, size, 0, VIEW_PRIVATE, "private data after private -> shared -> private"));
                TRY(g_convert(v, gpa, size, false));
        }
        return expect_private(v, v->slice_base, v->slice_size, 0);
}

/**
 * storm_rand() - xorshift64*
 * @s: state, updated
 *
 * Return: the next number
 */
static uint64_t storm_rand(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545F4914F6CDD1Dull;
}

struct storm {
        uint64_t npages;
        uint8_t *priv; /* owned: expected attribute per page */
        uint8_t *val;  /* owned: expected byte of the page's current side */
};

/**
 * storm_verify() - the guest checks [first, first+n) pages against the
 * model, each page through its current view (no conversions)
 * @v: the vCPU
 * @m: the model
 * @first: first page index in the slice
 * @n: pages
 *
 * Return: 0 or -EIO
 */
static int storm_verify(struct vcpu *v, const struct storm *m, uint64_t first, uint64_t n)
{
        uint64_t p = first, end = first + n;

        while (p < end) {
                uint64_t q = p;

                while (q < end && m->priv[q] == m->priv[p] && m->val[q] == m->val[p])
                        q++;
                if (attr_count_private(v->vmm->attr, v->slice_base + p * PAGE, (q - p) * PAGE) !=
                    (m->priv[p] ? q - p : 0))
                        return fail(v, "attribute record differs from the model at 0x%llx",
                                    (unsigned long long) (v->slice_base + p * PAGE));
                TRY(g_check(v, v->slice_base + p * PAGE, (q - p) * PAGE, m->val[p],
                            m->priv[p] ? VIEW_PRIVATE : VIEW_SHARED, "storm data"));
                p = q;
        }
        return 0;
}

/**
 * storm_more() - whether the storm runs another iteration
 * @vmm: the VMM
 * @it: iterations done
 *
 * Return: true while below --iterations, or before the deadline of
 * --seconds when that was given
 */
static bool storm_more(struct vmm *vmm, unsigned long it)
{
        if (vmm->opt.seconds)
                return vmm_now_ns() < vmm->deadline_ns;
        return it < vmm->opt.iterations;
}

/**
 * storm_run() - the storm on one vCPU with an allocated model
 * @v: the vCPU
 * @m: the model (pages of the slice)
 *
 * Return: 0 or -EIO
 */
static int storm_run(struct vcpu *v, struct storm *m)
{
        uint64_t seed = (v->vmm->opt.seed + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t) v->idx << 32 | 1);
        int r;

        r = scen_reset(v);
        if (r >= 0)
                r = g_fill(v, v->slice_base, v->slice_size, 0x01, VIEW_SHARED);
        /* Every vCPU arrives, failed or not: the others wait for it. */
        vmm_storm_gate(v);
        if (r < 0)
                return r;
        memset(m->priv, 0, m->npages);
        memset(m->val, 0x01, m->npages);

        /* --seconds: a fixed wall time (the load test); else --iterations. */
        for (unsigned long it = 0; storm_more(v->vmm, it); it++) {
                uint64_t npg = 1ull << (storm_rand(&seed) % 10); /* 4 KiB .. 2 MiB */
                uint64_t first = storm_rand(&seed) % (m->npages / npg) * npg;
                uint64_t gpa = v->slice_base + first * PAGE, size = npg * PAGE;
                unsigned op = (unsigned) (storm_rand(&seed) % 10);
                bool to_priv = storm_rand(&seed) & 1;
                uint8_t b = (uint8_t) (storm_rand(&seed) % 255 + 1);

                if (op < 4) { /* explicit conversion */
                        TRY(g_convert(v, gpa, size, to_priv));
                } else if (op < 7) { /* write through a view: implicit conversion */
                        TRY(g_fill(v, gpa, size, b, to_priv ? VIEW_PRIVATE : VIEW_SHARED));
                } else { /* read through a view: implicit conversion, then verify */
                        TRY(g_touch(v, gpa, size, to_priv ? VIEW_PRIVATE : VIEW_SHARED));
                }
                for (uint64_t p = first; p < first + npg; p++) {
                        if (m->priv[p] != to_priv) {
                                m->priv[p] = to_priv;
                                m->val[p] = 0; /* the other side was discarded */
                        }
                        if (op >= 4 && op < 7)
                                m->val[p] = b;
                }
                TRY(storm_verify(v, m, first, npg));
                if (it % 256 == 255)
                        TRY(storm_verify(v, m, 0, m->npages));
        }
        vmm_storm_end(v->vmm);
        TRY(storm_verify(v, m, 0, m->npages));
        /* No reset: the random final state is what --state-out and recovery tests compare. */
        return 0;
}

/**
 * scen_storm() - random conversions of 4K..2M aligned ranges with data checks
 * @v: the vCPU
 *
 * Return: 0 or -EIO / -ENOMEM
 */
static int scen_storm(struct vcpu *v)
{
        struct storm m = { .npages = v->slice_size / PAGE };
        int r;

        m.priv = malloc(m.npages);
        m.val = malloc(m.npages);
        if (!m.priv || !m.val)
                r = -ENOMEM;
        else
                r = storm_run(v, &m);
        free(m.priv);
        free(m.val);
        return r;
}

/**
 * demo_say() - one line of the demo
 * @v: the vCPU
 * @fmt: printf format
 */
#define demo_say(v, ...) vmm_log((v)->vmm, "demo: " __VA_ARGS__)

/**
 * scen_demo() - a short readable run (vCPU 0 only)
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_demo(struct vcpu *v)
{
        uint64_t a = v->slice_base, b = v->slice_base + 2 * MiB;
        unsigned long fp, fs;
        uint32_t ret;

        if (v->idx != 0)
                return 0;
        TRY(scen_reset(v));
        TRY(g_fill(v, a, 4 * PAGE, 0x11, VIEW_SHARED));
        demo_say(v, "guest wrote 0x11 to 4 pages at 0x%llx through the shared view (RAM starts shared: no conversion)",
                 (unsigned long long) a);
        TRY(g_convert(v, a, 4 * PAGE, true));
        demo_say(v, "guest called MAP_GPA_RANGE(0x%llx, 4 pages, private): ret 0, %llu pages now private",
                 (unsigned long long) a, (unsigned long long) attr_count_private(v->vmm->attr, a, 4 * PAGE));
        TRY(g_fill(v, a, 4 * PAGE, 0x22, VIEW_PRIVATE));
        TRY(g_convert(v, a, 4 * PAGE, true));
        demo_say(v, "guest wrote 0x22 privately; the host's shared view reads 0x%02x there (old shared pages discarded)",
                 *host_shared(v, a));
        fs = v->faults_shared;
        TRY(g_check(v, a + PAGE, PAGE, 0, VIEW_SHARED, "demo"));
        demo_say(v, "guest read page 0x%llx through the shared view: %lu memory fault (flags 0), converted to shared, it reads zeros",
                 (unsigned long long) (a + PAGE), v->faults_shared - fs);
        fp = v->faults_private;
        TRY(g_fill(v, b, 2 * MiB, 0x33, VIEW_PRIVATE));
        demo_say(v, "guest wrote 2 MiB at 0x%llx through the private view: %lu memory faults (flags PRIVATE), now private",
                 (unsigned long long) b, v->faults_private - fp);
        TRY(g_convert(v, b, 2 * MiB, false));
        demo_say(v, "guest called MAP_GPA_RANGE(0x%llx, 512 pages, shared, 2M hint): ret 0", (unsigned long long) b);
        TRY(g_convert_raw(v, a + 1, 1, KVM_MAP_GPA_RANGE_ENCRYPTED, &ret));
        demo_say(v, "guest called MAP_GPA_RANGE(0x%llx, 1 page, private): refused, ret %d; nothing changed",
                 (unsigned long long) (a + 1), (int) ret);
        if (!ret)
                return fail(v, "unaligned MAP_GPA_RANGE succeeded");
        return scen_reset(v);
}

/**
 * g_readloop() - the guest reads one word per page of [gpa, gpa+len),
 * @passes times, never announced (CMD_READLOOP)
 * @v: the vCPU
 * @gpa: RAM address
 * @len: bytes
 * @passes: how many times
 * @view: VIEW_* (RAW is implied)
 *
 * Return: 0 or -EIO (failure recorded)
 */
static int g_readloop(struct vcpu *v, uint64_t gpa, uint64_t len, uint32_t passes, int view)
{
        uint32_t a[] = { (uint32_t) gpa, (uint32_t) len, passes, (uint32_t) view }, res[2];

        return cmd(v, CMD_READLOOP, a, ELEMENTS(a), res);
}

#define RACE_PAGES 16

/**
 * scen_race() - conversions racing accesses: KVM's own memory faults
 * @v: the vCPU
 *
 * vCPU 0 converts a window of RACE_PAGES pages of its slice private and
 * back (--iterations times, MAP_GPA_RANGE), while every other vCPU reads
 * the window with raw accesses. On a VM with private memory KVM decides
 * "private" from the attribute when a fault starts; when the attribute
 * changed before the fault completes it exits with KVM_EXIT_MEMORY_FAULT
 * (flags 0x8 or 0), which goes to memconvd with the real run like any
 * memory fault. Afterwards vCPU 0 checks with raw accesses that KVM's
 * attributes are those the VMM recorded: shared (the guest writes reach the
 * host's shared memfd), then private (the guest reads the punched
 * guest_memfd's zeros, not the shared data).
 * Return: 0 or -EIO
 */
static int scen_race(struct vcpu *v)
{
        struct vmm *vmm = v->vmm;
        uint64_t w = vmm->vcpus[0].slice_base, wlen = RACE_PAGES * PAGE;
        unsigned long n = vmm->opt.iterations, reads = 0;

        if (attr_kind(vmm->attr) != ATTR_KVM)
                return fail(v, "the race scenario needs private memory (--vm-type sw-protected)");
        if (vmm->opt.vcpus < 2)
                return fail(v, "the race scenario needs --vcpus 2 or more");
        if (v->idx != 0) {
                while (!atomic_load(&vmm->race_stop)) {
                        TRY(g_readloop(v, w, wlen, 4, VIEW_PRIVATE | VIEW_RAW));
                        reads++;
                }
                vmm_log(vmm, "race: vcpu%u: %lu read loops, %lu real memory faults", v->idx, reads,
                        v->real_faults);
                atomic_fetch_add(&vmm->race_readers_done, 1);
                return 0;
        }
        TRY(scen_reset(v));
        TRY(g_fill(v, w, wlen, 0x11, VIEW_SHARED));
        for (unsigned long i = 0; i < n; i++) {
                int r1 = g_convert(v, w, wlen, true);
                int r2 = r1 < 0 ? r1 : g_convert(v, w, wlen, false);

                if (r2 < 0) {
                        atomic_store(&vmm->race_stop, true);
                        return r2;
                }
        }
        atomic_store(&vmm->race_stop, true);
        while (atomic_load(&vmm->race_readers_done) < vmm->opt.vcpus - 1) {
                struct timespec ts = { 0, 1000000 };

                nanosleep(&ts, NULL);
        }
        vmm_log(vmm, "race: vcpu0: %lu x 2 conversions of %u pages; real memory faults: flags 0x8 %lu, flags 0 %lu",
                n, RACE_PAGES, atomic_load(&vmm->stats.real_faults_private),
                atomic_load(&vmm->stats.real_faults_shared));
        /* Quiet now: KVM's attributes must be what the VMM recorded. */
        TRY(g_convert(v, w, wlen, false));
        TRY(g_convert(v, w, wlen, false)); /* ordered after its discard */
        TRY(expect_private(v, w, wlen, 0));
        TRY(g_fill(v, w, wlen, 0x44, VIEW_PRIVATE | VIEW_RAW));
        TRY(host_check_shared(v, w, wlen, 0x44, "raw write to a shared window (KVM maps the shared memfd)"));
        TRY(g_convert(v, w, wlen, true));
        TRY(expect_private(v, w, wlen, RACE_PAGES));
        TRY(g_check(v, w, wlen, 0, VIEW_PRIVATE | VIEW_RAW, "raw read of a private window (KVM maps guest_memfd)"));
        TRY(g_convert(v, w, wlen, false));
        if (!atomic_load(&vmm->stats.real_faults_private) && !atomic_load(&vmm->stats.real_faults_shared))
                return fail(v, "no KVM_EXIT_MEMORY_FAULT in %lu racing conversions", 2 * n);
        return 0;
}

/**
 * scen_private() - what a VM with private memory really maps: raw views
 * @v: the vCPU
 *
 * Private data never reaches the shared side: after to-private the guest's
 * private writes are not visible through the shared alias nor in the
 * host's mapping (the shared backing was discarded: zeros); a raw access
 * to GPA N reaches guest_memfd. After to-shared and back the guest reads
 * zeros where memconvd discarded. Refused conversions (an unaligned
 * address - KVM refuses it itself -, a range past RAM, to-private outside
 * RAM - memconvd refuses those) return non-zero in RAX and leave both the
 * record and KVM's real attributes (seen through raw reads) unchanged.
 * Return: 0 or -EIO
 */
static int scen_private(struct vcpu *v)
{
        struct vmm *vmm = v->vmm;
        uint64_t base = v->slice_base, len = 8 * PAGE;
        const uint64_t outside = (uint64_t) VMM_MAX_RAM_MB * MiB;
        uint32_t ret;

        if (attr_kind(vmm->attr) != ATTR_KVM)
                return fail(v, "the private scenario needs private memory (--vm-type sw-protected)");
        TRY(scen_reset(v));
        TRY(g_fill(v, base, len, 0x21, VIEW_SHARED));
        TRY(g_convert(v, base, len, true));
        TRY(g_convert(v, base, len, true)); /* ordered after the discard */
        TRY(g_fill(v, base, len, 0x9e, VIEW_PRIVATE));
        TRY(g_check(v, base, len, 0x9e, VIEW_PRIVATE | VIEW_RAW, "raw read of private data"));
        TRY(g_check(v, base, len, 0, VIEW_SHARED | VIEW_RAW, "shared alias of private data (discarded)"));
        TRY(host_private_invisible(v, base, len, 0x9e, 0));

        /* Refusals: nothing changes, in the record nor in KVM. */
        TRY(g_convert_raw(v, base + 0x800, 1, KVM_MAP_GPA_RANGE_DECRYPTED, &ret));
        vmm_log(vmm, "private: vcpu%u: MAP_GPA_RANGE(unaligned 0x%llx, 1, shared): RAX 0x%x", v->idx,
                (unsigned long long) (base + 0x800), ret);
        if (!ret)
                return fail(v, "unaligned MAP_GPA_RANGE returned 0");
        TRY(g_convert_raw(v, outside, 1, KVM_MAP_GPA_RANGE_ENCRYPTED, &ret));
        vmm_log(vmm, "private: vcpu%u: MAP_GPA_RANGE(0x%llx outside RAM, 1, private): RAX 0x%x", v->idx,
                (unsigned long long) outside, ret);
        if (!ret)
                return fail(v, "to-private outside RAM returned 0");
        if (v->idx == vmm->opt.vcpus - 1) {
                TRY(g_convert_raw(v, vmm->ram_size - PAGE, 2, KVM_MAP_GPA_RANGE_ENCRYPTED, &ret));
                vmm_log(vmm, "private: vcpu%u: MAP_GPA_RANGE(0x%llx, 2 pages past RAM, private): RAX 0x%x", v->idx,
                        (unsigned long long) (vmm->ram_size - PAGE), ret);
                if (!ret)
                        return fail(v, "to-private past the end of RAM returned 0");
                TRY(expect_private(v, vmm->ram_size - PAGE, PAGE, 0));
                TRY(g_fill(v, vmm->ram_size - PAGE, PAGE, 0x5c, VIEW_PRIVATE | VIEW_RAW));
                if (host_shared(v, vmm->ram_size - PAGE)[0] != 0x5c)
                        return fail(v, "the last page of RAM is private in KVM after a refused conversion");
        }
        TRY(expect_private(v, base, len, len / PAGE));
        TRY(g_check(v, base, len, 0x9e, VIEW_PRIVATE | VIEW_RAW, "private data after refusals"));

        /* To shared and back: zeros where memconvd discarded. */
        TRY(g_convert(v, base, len, false));
        TRY(g_convert(v, base, len, false));
        TRY(g_check(v, base, len, 0, VIEW_PRIVATE | VIEW_RAW, "raw read after to-shared (shared side was discarded)"));
        TRY(g_fill(v, base, len, 0x37, VIEW_SHARED));
        TRY(g_convert(v, base, len, true));
        TRY(g_convert(v, base, len, true));
        TRY(g_check(v, base, len, 0, VIEW_PRIVATE | VIEW_RAW, "raw read after shared -> private (guest_memfd punched)"));
        TRY(g_check(v, base, len, 0, VIEW_SHARED | VIEW_RAW, "shared alias after to-private (discarded)"));
        TRY(g_convert(v, base, len, false));
        return expect_private(v, v->slice_base, v->slice_size, 0);
}

/**
 * scen_bench() - time explicit 4 KiB conversions, guest exit to re-entry
 * @v: the vCPU
 *
 * Return: 0 or -EIO
 */
static int scen_bench(struct vcpu *v)
{
        unsigned long n = v->vmm->opt.iterations;
        struct timespec t0, t1;
        double ns;

        TRY(scen_reset(v));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned long i = 0; i < n; i++) {
                uint64_t gpa = v->slice_base + (i % 256) * PAGE;

                TRY(g_fill(v, gpa, PAGE, 0x5e, VIEW_SHARED));
                TRY(g_convert(v, gpa, PAGE, true));
                TRY(g_convert(v, gpa, PAGE, false));
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns = (double) (t1.tv_sec - t0.tv_sec) * 1e9 + (double) (t1.tv_nsec - t0.tv_nsec);
        vmm_log(v->vmm, "bench: vcpu%u: %lu x (4 KiB fill + to-private + to-shared): %.1f us per iteration",
                v->idx, n, ns / (double) n / 1000.0);
        return scen_reset(v);
}

const struct scenario scenarios[] = {
        { "explicit", scen_explicit, true, "MAP_GPA_RANGE conversions and refusals" },
        { "implicit", scen_implicit, true, "conversions by memory faults (flags PRIVATE and 0)" },
        { "selftest", scen_selftest, true, "private_mem_conversions_test's scenarios" },
        { "data", scen_data, true, "discarded backings read as zeros / are holes" },
        { "storm", scen_storm, true, "random conversions with data checks (--iterations or --seconds, --seed)" },
        { "demo", scen_demo, true, "a short readable run" },
        { "bench", scen_bench, false, "time 4 KiB explicit conversions (--iterations)" },
        { "race", scen_race, false, "conversions racing raw reads: KVM's own memory faults (--vcpus >= 2)" },
        { "private", scen_private, false, "raw views: private data unseen, zeros after discards, refusals" },
        {}
};

/**
 * scenario_find() - look a scenario up by name
 * @name: the name
 *
 * Return: the scenario (static), or NULL
 */
const struct scenario *scenario_find(const char *name)
{
        for (const struct scenario *s = scenarios; s->name; s++)
                if (!strcmp(s->name, name))
                        return s;
        return NULL;
}
