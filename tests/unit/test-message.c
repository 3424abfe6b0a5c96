// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test-message.c - CUnit suite for lib/message.c.
 *
 * A struct fixture holds one valid instance of every message type, built by
 * fixture_init() (all fields in storage the fixture owns, so a test changes
 * one field and validates). The type table below is written from the
 * protocol, independently of message.c's own table: for each type, the
 * direction it travels, whether it needs a request id and how many fds it
 * takes. Every refusal is checked for its errno, its wire code and a text
 * that names the offending field or value.
 */
#undef NDEBUG

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "message.h"

#define NAME_BUF 300
#define SYNDROME_BUF 80
#define RANGES_BUF (MC_DECISION_RANGES_MAX + 1)

/**
 * struct fixture - a message of any type with all its storage
 * @m:       the message; its body points into this fixture
 * @ranges:  Decision ranges, @rangep points at them
 * @uuid:    Attach uuid bytes
 * @name:    Attach name
 * @client:  Hello client
 * @syndrome: MemoryFault syndrome bytes
 */
struct fixture {
        Memconv__Message m;
        Memconv__Hello hello;
        Memconv__HelloReply hello_reply;
        Memconv__Attach attach;
        Memconv__AttachReply attach_reply;
        Memconv__Detach detach;
        Memconv__RegisterRegion register_region;
        Memconv__UnregisterRegion unregister_region;
        Memconv__MemoryFault memory_fault;
        Memconv__Convert convert;
        Memconv__Decision decision;
        Memconv__Applied applied;
        Memconv__Reply reply;
        Memconv__LeaseRequest lease_request;
        Memconv__Lease lease;
        Memconv__LeasedApplied leased_applied;
        Memconv__LeaseReturned lease_returned;
        Memconv__Settled settled;
        Memconv__LeasedBatch leased_batch;
        Memconv__LeasedApplied batch[3];
        Memconv__LeasedApplied *batchp[3];
        uint64_t batch_ids[3];
        uint64_t ids[2];
        Memconv__Status status;
        Memconv__Range ranges[RANGES_BUF];
        Memconv__Range *rangep[RANGES_BUF];
        uint8_t uuid[32];
        char name[NAME_BUF];
        char client[NAME_BUF];
        uint8_t syndrome[SYNDROME_BUF];
};

/**
 * struct type_info - what the protocol says about one message type
 * @body:     body case
 * @name:     mc_message_type_name()
 * @dir:      the direction it may travel
 * @needs_id: a request whose id must be non-zero
 * @n_fds:    fds it takes (RegisterRegion as built by fixture_init(): 1)
 */
struct type_info {
        Memconv__Message__BodyCase body;
        const char *name;
        enum mc_msg_direction dir;
        bool needs_id;
        size_t n_fds;
};

static const struct type_info types[] = {
        { MEMCONV__MESSAGE__BODY_HELLO, "hello", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_HELLO_REPLY, "hello-reply", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_ATTACH, "attach", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_ATTACH_REPLY, "attach-reply", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_DETACH, "detach", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_REGISTER_REGION, "register-region", MC_MSG_TO_DAEMON, true, 1 },
        { MEMCONV__MESSAGE__BODY_UNREGISTER_REGION, "unregister-region", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_MEMORY_FAULT, "memory-fault", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_CONVERT, "convert", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_DECISION, "decision", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_APPLIED, "applied", MC_MSG_TO_DAEMON, false, 0 },
        { MEMCONV__MESSAGE__BODY_REPLY, "reply", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_LEASE_REQUEST, "lease-request", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_LEASE, "lease", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_LEASED_APPLIED, "leased-applied", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_LEASE_RETURNED, "lease-returned", MC_MSG_TO_DAEMON, true, 0 },
        { MEMCONV__MESSAGE__BODY_SETTLED, "settled", MC_MSG_TO_CLIENT, false, 0 },
        { MEMCONV__MESSAGE__BODY_LEASED_BATCH, "leased-batch", MC_MSG_TO_DAEMON, true, 0 },
};

/**
 * fixture_init() - fill @f with a valid message of type @body, id 7
 * @f:    the fixture (caller's storage, fully overwritten)
 * @body: which type
 */
static void fixture_init(struct fixture *f, Memconv__Message__BodyCase body)
{
        static const uint8_t uuid[16] = { 0x6b, 0x1e, 0x3a, 0x90, 0x11, 0x22, 0x43, 0x44,
                                          0x85, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc };

        memset(f, 0, sizeof(*f));
        f->m = (Memconv__Message) MEMCONV__MESSAGE__INIT;
        f->hello = (Memconv__Hello) MEMCONV__HELLO__INIT;
        f->hello_reply = (Memconv__HelloReply) MEMCONV__HELLO_REPLY__INIT;
        f->attach = (Memconv__Attach) MEMCONV__ATTACH__INIT;
        f->attach_reply = (Memconv__AttachReply) MEMCONV__ATTACH_REPLY__INIT;
        f->detach = (Memconv__Detach) MEMCONV__DETACH__INIT;
        f->register_region = (Memconv__RegisterRegion) MEMCONV__REGISTER_REGION__INIT;
        f->unregister_region = (Memconv__UnregisterRegion) MEMCONV__UNREGISTER_REGION__INIT;
        f->memory_fault = (Memconv__MemoryFault) MEMCONV__MEMORY_FAULT__INIT;
        f->convert = (Memconv__Convert) MEMCONV__CONVERT__INIT;
        f->decision = (Memconv__Decision) MEMCONV__DECISION__INIT;
        f->applied = (Memconv__Applied) MEMCONV__APPLIED__INIT;
        f->reply = (Memconv__Reply) MEMCONV__REPLY__INIT;
        f->lease_request = (Memconv__LeaseRequest) MEMCONV__LEASE_REQUEST__INIT;
        f->lease = (Memconv__Lease) MEMCONV__LEASE__INIT;
        f->leased_applied = (Memconv__LeasedApplied) MEMCONV__LEASED_APPLIED__INIT;
        f->lease_returned = (Memconv__LeaseReturned) MEMCONV__LEASE_RETURNED__INIT;
        f->settled = (Memconv__Settled) MEMCONV__SETTLED__INIT;
        f->ids[0] = 1;
        f->ids[1] = 2;
        f->status = (Memconv__Status) MEMCONV__STATUS__INIT;
        for (size_t i = 0; i < RANGES_BUF; i++) {
                f->ranges[i] = (Memconv__Range) MEMCONV__RANGE__INIT;
                f->ranges[i].gpa = 0x100000ULL + 0x2000ULL * i;
                f->ranges[i].size = 0x1000;
                f->rangep[i] = &f->ranges[i];
        }

        f->m.id = 7;
        f->m.body_case = body;
        switch (body) {
        case MEMCONV__MESSAGE__BODY_HELLO:
                strcpy(f->client, "qemu 9.2 / libmemconv 0.1");
                f->hello.version = MEMCONV__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
                f->hello.client = f->client;
                f->m.hello = &f->hello;
                break;
        case MEMCONV__MESSAGE__BODY_HELLO_REPLY:
                f->hello_reply.status = &f->status;
                f->hello_reply.version = 1;
                f->hello_reply.max_frame = 65536;
                f->m.hello_reply = &f->hello_reply;
                break;
        case MEMCONV__MESSAGE__BODY_ATTACH:
                memcpy(f->uuid, uuid, sizeof(uuid));
                f->attach.uuid.data = f->uuid;
                f->attach.uuid.len = 16;
                strcpy(f->name, "vm-1.test_A");
                f->attach.name = f->name;
                f->attach.cc_type = MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP;
                f->attach.arch = MEMCONV__ARCH__ARCH_X86_64;
                f->m.attach = &f->attach;
                break;
        case MEMCONV__MESSAGE__BODY_ATTACH_REPLY:
                f->attach_reply.status = &f->status;
                f->attach_reply.vm_id = 3;
                f->m.attach_reply = &f->attach_reply;
                break;
        case MEMCONV__MESSAGE__BODY_DETACH:
                f->m.detach = &f->detach;
                break;
        case MEMCONV__MESSAGE__BODY_REGISTER_REGION:
                f->register_region.slot = 1;
                f->register_region.gpa = 0x100000000ULL;
                f->register_region.size = 0x40000000ULL;
                f->register_region.guest_memfd_offset = 0x200000;
                f->register_region.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                f->m.register_region = &f->register_region;
                break;
        case MEMCONV__MESSAGE__BODY_UNREGISTER_REGION:
                f->unregister_region.slot = 1;
                f->m.unregister_region = &f->unregister_region;
                break;
        case MEMCONV__MESSAGE__BODY_MEMORY_FAULT:
                f->memory_fault.vcpu = 2;
                f->memory_fault.gpa = 0x100000000ULL;
                f->memory_fault.size = 0x1000;
                f->memory_fault.flags = 1ULL << 3;
                f->memory_fault.syndrome.data = f->syndrome;
                f->memory_fault.syndrome.len = 8;
                f->m.memory_fault = &f->memory_fault;
                break;
        case MEMCONV__MESSAGE__BODY_CONVERT:
                f->convert.vcpu = 0;
                f->convert.gpa = 0x100000000ULL;
                f->convert.size = 0x200000;
                f->convert.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
                f->convert.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_SNP_PSC;
                f->convert.page_size = MEMCONV__PAGE_SIZE__PAGE_SIZE_2M;
                f->m.convert = &f->convert;
                break;
        case MEMCONV__MESSAGE__BODY_DECISION:
                f->decision.status = &f->status;
                f->decision.action = MEMCONV__ACTION__ACTION_APPLY;
                f->decision.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                f->decision.n_ranges = 2;
                f->decision.ranges = f->rangep;
                f->decision.decision_id = 11;
                f->m.decision = &f->decision;
                break;
        case MEMCONV__MESSAGE__BODY_APPLIED:
                f->applied.decision_id = 11;
                f->applied.ok = true;
                f->m.applied = &f->applied;
                break;
        case MEMCONV__MESSAGE__BODY_REPLY:
                f->reply.status = &f->status;
                f->m.reply = &f->reply;
                break;
        case MEMCONV__MESSAGE__BODY_LEASE_REQUEST:
                f->lease_request.want = true;
                f->m.lease_request = &f->lease_request;
                break;
        case MEMCONV__MESSAGE__BODY_LEASE:
                f->lease.lease_id = 3;
                f->lease.implicit = true;
                f->lease.max_bytes = 0x200000;
                f->m.lease = &f->lease;
                break;
        case MEMCONV__MESSAGE__BODY_LEASED_APPLIED:
                f->leased_applied.lease_id = 3;
                f->leased_applied.seq = 1;
                f->leased_applied.gpa = 0x100000000ULL;
                f->leased_applied.size = 0x1000;
                f->leased_applied.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                f->m.leased_applied = &f->leased_applied;
                break;
        case MEMCONV__MESSAGE__BODY_LEASE_RETURNED:
                f->lease_returned.lease_id = 3;
                f->m.lease_returned = &f->lease_returned;
                break;
        case MEMCONV__MESSAGE__BODY_SETTLED:
                f->settled.n_decision_ids = 2;
                f->settled.decision_ids = f->ids;
                f->m.settled = &f->settled;
                break;
        case MEMCONV__MESSAGE__BODY_LEASED_BATCH:
                f->leased_batch = (Memconv__LeasedBatch) MEMCONV__LEASED_BATCH__INIT;
                for (size_t i = 0; i < 3; i++) {
                        f->batch[i] = (Memconv__LeasedApplied) MEMCONV__LEASED_APPLIED__INIT;
                        f->batch[i].lease_id = 3;
                        f->batch[i].seq = i + 1;
                        f->batch[i].gpa = 0x100000000ULL + i * 0x1000;
                        f->batch[i].size = 0x1000;
                        f->batch[i].to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                        f->batchp[i] = &f->batch[i];
                        f->batch_ids[i] = 10 + i;
                }
                f->leased_batch.n_reports = f->leased_batch.n_ids = 3;
                f->leased_batch.reports = f->batchp;
                f->leased_batch.ids = f->batch_ids;
                f->m.leased_batch = &f->leased_batch;
                break;
        default:
                break;
        }
}

static struct fixture *fx;

static int suite_init(void)
{
        fx = malloc(sizeof(*fx));
        return fx ? 0 : -1;
}

static int suite_cleanup(void)
{
        free(fx);
        fx = NULL;
        return 0;
}

/**
 * check_at() - one assertion reported at the caller's line
 * @ok:   the condition
 * @line: the line of the test that made the check
 * @what: what was checked
 */
static void check_at(bool ok, unsigned line, const char *what)
{
        CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, line, what, __FILE__, "", CU_FALSE);
}

/**
 * expect_ok() - mc_message_validate() must accept
 * @line:  caller's line
 * @m:     message
 * @n_fds: fds that came with it
 * @dir:   direction
 */
static void expect_ok(unsigned line, const Memconv__Message *m, size_t n_fds,
                      enum mc_msg_direction dir)
{
        struct mc_msg_error e;
        int r;

        memset(&e, 0, sizeof(e));
        r = mc_message_validate(m, n_fds, dir, &e);
        check_at(r == 0, line, "mc_message_validate() == 0");
        if (r != 0)
                fprintf(stderr, "\n    line %u: refused with %d: %s\n", line, r, e.text);
}

/**
 * expect_fail() - mc_message_validate() must refuse precisely
 * @line:   caller's line
 * @m:      message
 * @n_fds:  fds that came with it
 * @dir:    direction
 * @error:  expected negative errno
 * @code:   expected wire code
 * @needle: a substring the text must contain (the field or value)
 */
static void expect_fail(unsigned line, const Memconv__Message *m, size_t n_fds,
                        enum mc_msg_direction dir, int error, Memconv__Code code,
                        const char *needle)
{
        struct mc_msg_error e;
        int r;

        memset(&e, 0, sizeof(e));
        e.code = (Memconv__Code) 0x5a5a;
        r = mc_message_validate(m, n_fds, dir, &e);
        check_at(r == error, line, "mc_message_validate() returns the expected errno");
        check_at(e.error == r, line, "ret_err->error equals the return value");
        check_at(e.code == code, line, "ret_err->code is the expected wire code");
        check_at(e.text[0] != '\0', line, "ret_err->text is not empty");
        check_at(strnlen(e.text, sizeof(e.text)) < sizeof(e.text), line,
                 "ret_err->text is NUL-terminated");
        check_at(strstr(e.text, needle) != NULL, line, "ret_err->text names the problem");
        check_at(mc_code_to_errno(e.code) == r, line, "code and errno agree");
        if (r != error || e.code != code || !strstr(e.text, needle))
                fprintf(stderr, "\n    line %u: got %d code %d \"%s\", wanted %d code %d \"%s\"\n",
                        line, r, (int) e.code, e.text, error, (int) code, needle);
}

#define EXPECT_OK(n_fds, dir) expect_ok(__LINE__, &fx->m, (n_fds), (dir))
#define EXPECT_EINVAL(n_fds, needle)                                                        \
        expect_fail(__LINE__, &fx->m, (n_fds), MC_MSG_TO_DAEMON, -EINVAL,                  \
                    MEMCONV__CODE__CODE_INVALID_ARGUMENT, (needle))
#define EXPECT_DECISION_EPROTO(needle)                                                      \
        expect_fail(__LINE__, &fx->m, 0, MC_MSG_TO_CLIENT, -EPROTO,                        \
                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, (needle))

static enum mc_msg_direction other_dir(enum mc_msg_direction d)
{
        return d == MC_MSG_TO_DAEMON ? MC_MSG_TO_CLIENT : MC_MSG_TO_DAEMON;
}

/* ------------------------------------------------------------------ tests */

static void test_type_table(void)
{
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                const struct type_info *t = &types[i];

                fixture_init(fx, t->body);
                CU_ASSERT_STRING_EQUAL(mc_message_type_name(t->body), t->name);
                CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), (int) t->n_fds);
                EXPECT_OK(t->n_fds, t->dir);
                expect_fail(__LINE__, &fx->m, t->n_fds, other_dir(t->dir), -EPROTO,
                            MEMCONV__CODE__CODE_PROTOCOL_ERROR, t->name);
                expect_fail(__LINE__, &fx->m, t->n_fds, other_dir(t->dir), -EPROTO,
                            MEMCONV__CODE__CODE_PROTOCOL_ERROR, "may not be sent");
        }
        CU_ASSERT_STRING_EQUAL(mc_message_type_name(MEMCONV__MESSAGE__BODY__NOT_SET), "unknown");
        CU_ASSERT_STRING_EQUAL(mc_message_type_name((Memconv__Message__BodyCase) 99), "unknown");
}

static void test_request_id(void)
{
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                const struct type_info *t = &types[i];

                fixture_init(fx, t->body);
                fx->m.id = 0;
                if (t->needs_id) {
                        expect_fail(__LINE__, &fx->m, t->n_fds, t->dir, -EPROTO,
                                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, "request id");
                        expect_fail(__LINE__, &fx->m, t->n_fds, t->dir, -EPROTO,
                                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, t->name);
                } else {
                        EXPECT_OK(t->n_fds, t->dir);
                }
                fx->m.id = UINT64_MAX;
                EXPECT_OK(t->n_fds, t->dir);
        }
}

static void test_fd_counts(void)
{
        /* every type refuses one fd more than it takes, and one fewer */
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                const struct type_info *t = &types[i];

                fixture_init(fx, t->body);
                expect_fail(__LINE__, &fx->m, t->n_fds + 1, t->dir, -EBADF,
                            MEMCONV__CODE__CODE_BAD_FD, t->name);
                if (t->n_fds > 0)
                        expect_fail(__LINE__, &fx->m, t->n_fds - 1, t->dir, -EBADF,
                                    MEMCONV__CODE__CODE_BAD_FD, "takes 1 fd(s), 0 came");
        }

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.has_shared = false;
        expect_fail(__LINE__, &fx->m, 2, MC_MSG_TO_DAEMON, -EBADF, MEMCONV__CODE__CODE_BAD_FD,
                    "takes 1 fd(s), 2 came");
        fx->register_region.has_shared = true;
        expect_fail(__LINE__, &fx->m, 1, MC_MSG_TO_DAEMON, -EBADF, MEMCONV__CODE__CODE_BAD_FD,
                    "takes 2 fd(s), 1 came");
        expect_fail(__LINE__, &fx->m, 0, MC_MSG_TO_DAEMON, -EBADF, MEMCONV__CODE__CODE_BAD_FD,
                    "register-region");
        EXPECT_OK(2, MC_MSG_TO_DAEMON);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_CONVERT);
        expect_fail(__LINE__, &fx->m, 1, MC_MSG_TO_DAEMON, -EBADF, MEMCONV__CODE__CODE_BAD_FD,
                    "convert takes 0 fd(s), 1 came");
}

static void test_fds_expected(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), 1);
        fx->register_region.has_shared = true;
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), 2);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_HELLO);
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), 0);
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), 0);

        fixture_init(fx, MEMCONV__MESSAGE__BODY__NOT_SET);
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), -1);
        fx->m.body_case = (Memconv__Message__BodyCase) 99;
        CU_ASSERT_EQUAL(mc_message_fds_expected(&fx->m), -1);
}

static void test_no_body(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY__NOT_SET);
        expect_fail(__LINE__, &fx->m, 0, MC_MSG_TO_DAEMON, -EPROTO,
                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, "without a known body");
        expect_fail(__LINE__, &fx->m, 0, MC_MSG_TO_CLIENT, -EPROTO,
                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, "case 0");
        fx->m.body_case = (Memconv__Message__BodyCase) 99;
        expect_fail(__LINE__, &fx->m, 0, MC_MSG_TO_DAEMON, -EPROTO,
                    MEMCONV__CODE__CODE_PROTOCOL_ERROR, "case 99");
}

static void test_hello(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_HELLO);
        fx->hello.version = 0;
        EXPECT_EINVAL(0, "version");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_HELLO);
        fx->hello.client = NULL;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        memset(fx->client, 'q', MC_CLIENT_NAME_MAX);
        fx->client[MC_CLIENT_NAME_MAX] = '\0';
        fx->hello.client = fx->client;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->client[MC_CLIENT_NAME_MAX] = 'q';
        fx->client[MC_CLIENT_NAME_MAX + 1] = '\0';
        EXPECT_EINVAL(0, "client");
}

static void test_attach(void)
{
        static const char *const bad_names[] = {
                "", "has space", "a/b", "tab\there", "nl\n", "del\x7f", "high\x80", "quo\"te",
                "back\\slash",
        };

        fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
        fx->attach.uuid.len = 15;
        EXPECT_EINVAL(0, "uuid must be 16 bytes, got 15");
        fx->attach.uuid.len = 17;
        EXPECT_EINVAL(0, "uuid must be 16 bytes, got 17");
        fx->attach.uuid.len = 0;
        EXPECT_EINVAL(0, "uuid");

        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
                fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
                strcpy(fx->name, bad_names[i]);
                EXPECT_EINVAL(0, "name");
        }
        fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
        fx->attach.name = NULL;
        EXPECT_EINVAL(0, "name");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
        memset(fx->name, 'n', MC_NAME_MAX);
        fx->name[MC_NAME_MAX] = '\0';
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->name[MC_NAME_MAX] = 'n';
        fx->name[MC_NAME_MAX + 1] = '\0';
        EXPECT_EINVAL(0, "name");
        strcpy(fx->name, "!~.-_:@x");
        EXPECT_OK(0, MC_MSG_TO_DAEMON);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
        fx->attach.cc_type = (Memconv__CcType) 99;
        EXPECT_EINVAL(0, "cc_type 99");
        fx->attach.cc_type = MEMCONV__CC_TYPE__CC_TYPE_S390_PV;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->attach.cc_type = (Memconv__CcType) 9;
        EXPECT_EINVAL(0, "cc_type 9");
        fx->attach.cc_type = (Memconv__CcType) -1;
        EXPECT_EINVAL(0, "cc_type -1");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_ATTACH);
        fx->attach.arch = (Memconv__Arch) 99;
        EXPECT_EINVAL(0, "arch 99");
        fx->attach.arch = MEMCONV__ARCH__ARCH_S390X;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
}

static void test_register_region(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.gpa = 0x100000800ULL;
        EXPECT_EINVAL(1, "gpa 0x100000800");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.size = 0;
        EXPECT_EINVAL(1, "size 0x0");
        fx->register_region.size = 0x1001;
        EXPECT_EINVAL(1, "size 0x1001");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.gpa = 0xFFFFFFFFFFFFF000ULL;
        fx->register_region.size = 0x2000;
        EXPECT_EINVAL(1, "gpa 0xfffffffffffff000");
        fx->register_region.gpa = 0xFFFFFFFFFFFFD000ULL; /* [.., 2^64 - 4096): the last page excluded */
        EXPECT_OK(1, MC_MSG_TO_DAEMON);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.guest_memfd_offset = 0x200010;
        EXPECT_EINVAL(1, "guest_memfd_offset 0x200010");
        fx->register_region.guest_memfd_offset = 0xFFFFFFFFFFFFF000ULL;
        EXPECT_EINVAL(1, "guest_memfd_offset");
        fx->register_region.guest_memfd_offset = 0;
        EXPECT_OK(1, MC_MSG_TO_DAEMON);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.shared_offset = 0x1000;
        EXPECT_EINVAL(1, "shared_offset set without a shared fd");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.has_shared = true;
        fx->register_region.shared_offset = 0x1000;
        EXPECT_OK(2, MC_MSG_TO_DAEMON);
        fx->register_region.shared_offset = 0;
        EXPECT_OK(2, MC_MSG_TO_DAEMON);
        fx->register_region.shared_offset = 0x1234;
        EXPECT_EINVAL(2, "shared_offset 0x1234");
        fx->register_region.shared_offset = 0xFFFFFFFFFFFFF000ULL;
        EXPECT_EINVAL(2, "shared_offset");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        fx->register_region.initial = (Memconv__Attribute) 99;
        EXPECT_EINVAL(1, "initial attribute 99");
        fx->register_region.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        EXPECT_OK(1, MC_MSG_TO_DAEMON);
}

static void test_memory_fault(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_MEMORY_FAULT);
        fx->memory_fault.syndrome.len = MC_SYNDROME_MAX + 1;
        EXPECT_EINVAL(0, "syndrome of 65 bytes");
        fx->memory_fault.syndrome.len = MC_SYNDROME_MAX;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->memory_fault.syndrome.len = 0;
        fx->memory_fault.syndrome.data = NULL;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        /* flags are copied verbatim and judged by the planner, not here */
        fx->memory_fault.flags = UINT64_MAX;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
}

static void test_convert(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_CONVERT);
        fx->convert.to = (Memconv__Attribute) 2;
        EXPECT_EINVAL(0, "target attribute to=2");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_CONVERT);
        fx->convert.source = (Memconv__ConvertSource) 5;
        EXPECT_EINVAL(0, "source 5");
        fx->convert.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_ARM_RSI;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);

        fixture_init(fx, MEMCONV__MESSAGE__BODY_CONVERT);
        fx->convert.page_size = (Memconv__PageSize) 3;
        EXPECT_EINVAL(0, "page_size hint 3");
        fx->convert.page_size = MEMCONV__PAGE_SIZE__PAGE_SIZE_1G;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
}

static void test_applied(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_APPLIED);
        fx->applied.decision_id = 0;
        EXPECT_EINVAL(0, "decision_id");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_APPLIED);
        fx->applied.ok = true;
        fx->applied.errno_value = -5;
        EXPECT_EINVAL(0, "errno_value -5");
        fx->applied.ok = false;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->applied.errno_value = 5;
        EXPECT_EINVAL(0, "errno_value 5");
        fx->applied.ok = true;
        EXPECT_EINVAL(0, "errno_value 5");
        fx->applied.errno_value = 0;
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
}

static void test_leases(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        fx->leased_applied.seq = 0;
        EXPECT_EINVAL(0, "seq");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        fx->leased_applied.lease_id = 0;
        EXPECT_EINVAL(0, "lease_id");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        fx->leased_applied.gpa = 0x100000800ULL;
        EXPECT_EINVAL(0, "4 KiB aligned");
        fx->leased_applied.gpa = UINT64_MAX - 0xfff;
        fx->leased_applied.size = 0x2000;
        EXPECT_EINVAL(0, "overflow");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        fx->leased_applied.to = 9;
        EXPECT_EINVAL(0, "to=9");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        fx->leased_applied.source = 42;
        EXPECT_EINVAL(0, "source 42");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASE_RETURNED);
        fx->lease_returned.lease_id = 0;
        EXPECT_EINVAL(0, "lease_id 0");

        /* A batch: every report as strict as alone, named by its index; one id per report. */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        EXPECT_OK(0, MC_MSG_TO_DAEMON);
        fx->batch[1].gpa += 0x800;
        EXPECT_EINVAL(0, "report 1: the range must be 4 KiB aligned");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        fx->batch[2].seq = 0;
        EXPECT_EINVAL(0, "report 2: lease_id and seq");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        fx->batch[0].to = 9;
        EXPECT_EINVAL(0, "report 0: unknown attribute");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        fx->batch_ids[1] = 0;
        EXPECT_EINVAL(0, "report 1: id 0");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        fx->leased_batch.n_ids = 2;
        EXPECT_EINVAL(0, "3 reports and 2 ids");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        fx->leased_batch.n_reports = fx->leased_batch.n_ids = 0;
        EXPECT_EINVAL(0, "0 reports and 0 ids");
        {
                /* More than MC_LEASE_BATCH_MAX: refused before any is looked at. */
                Memconv__LeasedApplied **many = calloc(MC_LEASE_BATCH_MAX + 1, sizeof(*many));
                uint64_t *ids = calloc(MC_LEASE_BATCH_MAX + 1, sizeof(*ids));

                CU_ASSERT_FATAL(many && ids);
                for (size_t i = 0; i <= MC_LEASE_BATCH_MAX; i++) {
                        many[i] = &fx->batch[0];
                        ids[i] = i + 1;
                }
                fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
                fx->leased_batch.n_reports = fx->leased_batch.n_ids = MC_LEASE_BATCH_MAX;
                fx->leased_batch.reports = many;
                fx->leased_batch.ids = ids;
                EXPECT_OK(0, MC_MSG_TO_DAEMON);
                fx->leased_batch.n_reports = fx->leased_batch.n_ids = MC_LEASE_BATCH_MAX + 1;
                EXPECT_EINVAL(0, "1025 reports");
                free(many);
                free(ids);
        }

        /* A grant must cover something, in whole pages; a revocation needs only its id. */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_LEASE);
        fx->lease.max_bytes = 0x1800;
        EXPECT_DECISION_EPROTO("grants nothing");
        fx->lease.max_bytes = 0;
        EXPECT_DECISION_EPROTO("grants nothing");
        fx->lease.max_bytes = 0x1000;
        fx->lease.implicit = false;
        EXPECT_DECISION_EPROTO("grants nothing");
        fx->lease.revoked = true;
        EXPECT_OK(0, MC_MSG_TO_CLIENT);
        fx->lease.revoked = false;
        fx->lease.implicit = true;
        fx->lease.report_batch = MC_LEASE_BATCH_MAX;
        fx->lease.report_delay_usec = MC_LEASE_REPORT_DELAY_MAX_USEC;
        EXPECT_OK(0, MC_MSG_TO_CLIENT);
        fx->lease.report_batch = MC_LEASE_BATCH_MAX + 1;
        EXPECT_DECISION_EPROTO("report_batch 1025");
        fx->lease.report_batch = 2;
        fx->lease.report_delay_usec = MC_LEASE_REPORT_DELAY_MAX_USEC + 1;
        EXPECT_DECISION_EPROTO("report_delay_usec 100001");
        fx->lease.report_delay_usec = 0;
        fx->lease.revoked = true;
        fx->lease.lease_id = 0;
        EXPECT_DECISION_EPROTO("lease_id 0");
}

static void test_decision(void)
{
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.action = (Memconv__Action) 99;
        EXPECT_DECISION_EPROTO("unknown action 99");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->ranges[1].gpa += 0x800;
        EXPECT_DECISION_EPROTO("range 1");
        fx->ranges[1].gpa -= 0x800;
        fx->ranges[0].size = 0;
        EXPECT_DECISION_EPROTO("range 0");
        fx->ranges[0].size = 0x1800;
        EXPECT_DECISION_EPROTO("range 0");
        fx->ranges[0].gpa = 0xFFFFFFFFFFFFF000ULL;
        fx->ranges[0].size = 0x1000;
        EXPECT_DECISION_EPROTO("range 0");

        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.n_ranges = 0;
        EXPECT_DECISION_EPROTO("apply without ranges");
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.decision_id = 0;
        EXPECT_DECISION_EPROTO("decision_id");

        /* other actions need neither ranges nor a decision id */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.n_ranges = 0;
        fx->decision.decision_id = 0;
        for (int a = MEMCONV__ACTION__ACTION_RETRY; a <= MEMCONV__ACTION__ACTION_FAIL; a++) {
                if (a == MEMCONV__ACTION__ACTION_APPLY)
                        continue;
                fx->decision.action = (Memconv__Action) a;
                EXPECT_OK(0, MC_MSG_TO_CLIENT);
        }
        fx->decision.action = (Memconv__Action) (MEMCONV__ACTION__ACTION_FAIL + 1);
        EXPECT_DECISION_EPROTO("unknown action 6");

        /* the count limit */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.n_ranges = MC_DECISION_RANGES_MAX;
        EXPECT_OK(0, MC_MSG_TO_CLIENT);
        fx->decision.n_ranges = MC_DECISION_RANGES_MAX + 1;
        EXPECT_DECISION_EPROTO("2049 ranges exceed 2048");
}

/* Cases message.c once accepted against the contract in message.h (fixed; keep them fixed). */
static void test_fixed_bugs(void)
{
        /* "enum fields hold known values": Decision.to was not checked */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_DECISION);
        fx->decision.to = (Memconv__Attribute) 99;
        EXPECT_DECISION_EPROTO("99");

        /* "errno_value ... must be 0 when ok and negative otherwise": !ok with 0 passes */
        fixture_init(fx, MEMCONV__MESSAGE__BODY_APPLIED);
        fx->applied.ok = false;
        fx->applied.errno_value = 0;
        EXPECT_EINVAL(0, "errno_value 0");
}

static void test_code_errno(void)
{
        static const struct {
                Memconv__Code code;
                int error;
                const char *name;
        } expect[] = {
                { MEMCONV__CODE__CODE_OK, 0, "ok" },
                { MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL, "invalid-argument" },
                { MEMCONV__CODE__CODE_OUT_OF_RANGE, -ERANGE, "out-of-range" },
                { MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN, "not-attached" },
                { MEMCONV__CODE__CODE_UNKNOWN_VM, -ESRCH, "unknown-vm" },
                { MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM, "permission-denied" },
                { MEMCONV__CODE__CODE_POLICY_REFUSED, -EACCES, "policy-refused" },
                { MEMCONV__CODE__CODE_BAD_FD, -EBADF, "bad-fd" },
                { MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO, "protocol-error" },
                { MEMCONV__CODE__CODE_EXISTS, -EEXIST, "exists" },
                { MEMCONV__CODE__CODE_NOT_FOUND, -ENOENT, "not-found" },
                { MEMCONV__CODE__CODE_VERSION_MISMATCH, -EPROTONOSUPPORT, "version-mismatch" },
                { MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOSPC, "resource-limit" },
                { MEMCONV__CODE__CODE_INTERNAL, -EIO, "internal" },
                { MEMCONV__CODE__CODE_BUSY, -EBUSY, "busy" },
        };
        const ProtobufCEnumDescriptor *d = &memconv__code__descriptor;

        /* the table above covers every code the protocol defines */
        CU_ASSERT_EQUAL(d->n_values, sizeof(expect) / sizeof(expect[0]));
        for (unsigned i = 0; i < d->n_values; i++) {
                Memconv__Code c = (Memconv__Code) d->values[i].value;
                int error = mc_code_to_errno(c);

                CU_ASSERT_EQUAL(mc_code_from_errno(error), c);
                CU_ASSERT(c == MEMCONV__CODE__CODE_OK ? error == 0 : error < 0);
                CU_ASSERT_STRING_NOT_EQUAL(mc_code_name(c), "unknown");
                for (unsigned j = 0; j < i; j++)
                        CU_ASSERT_NOT_EQUAL(mc_code_to_errno((Memconv__Code) d->values[j].value),
                                            error);
        }
        for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
                CU_ASSERT_EQUAL(mc_code_to_errno(expect[i].code), expect[i].error);
                CU_ASSERT_EQUAL(mc_code_from_errno(expect[i].error), expect[i].code);
                CU_ASSERT_STRING_EQUAL(mc_code_name(expect[i].code), expect[i].name);
        }

        /* errnos without a code of their own */
        CU_ASSERT_EQUAL(mc_code_from_errno(-EMSGSIZE), MEMCONV__CODE__CODE_PROTOCOL_ERROR);
        CU_ASSERT_EQUAL(mc_code_from_errno(-EBADMSG), MEMCONV__CODE__CODE_PROTOCOL_ERROR);
        CU_ASSERT_EQUAL(mc_code_from_errno(-ETOOMANYREFS), MEMCONV__CODE__CODE_PROTOCOL_ERROR);
        CU_ASSERT_EQUAL(mc_code_from_errno(-ENOMEM), MEMCONV__CODE__CODE_RESOURCE_LIMIT);
        CU_ASSERT_EQUAL(mc_code_from_errno(-EMFILE), MEMCONV__CODE__CODE_RESOURCE_LIMIT);
        CU_ASSERT_EQUAL(mc_code_from_errno(-EXDEV), MEMCONV__CODE__CODE_INTERNAL);
        CU_ASSERT_EQUAL(mc_code_from_errno(EINVAL), MEMCONV__CODE__CODE_INTERNAL);
        CU_ASSERT_EQUAL(mc_code_from_errno(INT32_MIN), MEMCONV__CODE__CODE_INTERNAL);

        /* codes from a newer peer */
        CU_ASSERT_EQUAL(mc_code_to_errno((Memconv__Code) 15), -EPROTO);
        CU_ASSERT_EQUAL(mc_code_to_errno((Memconv__Code) -1), -EPROTO);
        CU_ASSERT_STRING_EQUAL(mc_code_name((Memconv__Code) 99), "unknown");
}

static void test_range_valid(void)
{
        const uint64_t top = UINT64_MAX - 4095; /* 0xfffffffffffff000, the last page */

        CU_ASSERT_TRUE(mc_range_valid(0, 4096));
        CU_ASSERT_TRUE(mc_range_valid(4096, 8192));
        CU_ASSERT_FALSE(mc_range_valid(0, 0));
        CU_ASSERT_FALSE(mc_range_valid(4096, 0));
        CU_ASSERT_FALSE(mc_range_valid(1, 4096));
        CU_ASSERT_FALSE(mc_range_valid(2048, 4096));
        CU_ASSERT_FALSE(mc_range_valid(4096, 1));
        CU_ASSERT_FALSE(mc_range_valid(4096, 4095));
        CU_ASSERT_FALSE(mc_range_valid(4096, 4097));
        CU_ASSERT_FALSE(mc_range_valid(UINT64_MAX, 4096));
        /* the exclusive end must be representable: the last page itself is refused */
        CU_ASSERT_EQUAL(top, 0xFFFFFFFFFFFFF000ULL);
        CU_ASSERT_FALSE(mc_range_valid(top, 4096));
        CU_ASSERT_TRUE(mc_range_valid(top - 4096, 4096));
        CU_ASSERT_FALSE(mc_range_valid(top - 4096, 8192));
        CU_ASSERT_TRUE(mc_range_valid(0, top));
        CU_ASSERT_FALSE(mc_range_valid(4096, top));
        CU_ASSERT_FALSE(mc_range_valid(8192, top)); /* wraps to 4096, below the start */
        CU_ASSERT_FALSE(mc_range_valid(top, top));
}

static void test_error_set(void)
{
        struct mc_msg_error e;
        char longer[2 * MC_STATUS_TEXT_MAX];

        memset(&e, 0, sizeof(e));
        CU_ASSERT_EQUAL(mc_error_set(&e, MEMCONV__CODE__CODE_BUSY, -EBUSY, "slot %d busy", 4), -EBUSY);
        CU_ASSERT_EQUAL(e.code, MEMCONV__CODE__CODE_BUSY);
        CU_ASSERT_EQUAL(e.error, -EBUSY);
        CU_ASSERT_STRING_EQUAL(e.text, "slot 4 busy");

        memset(longer, 'x', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = '\0';
        CU_ASSERT_EQUAL(mc_error_set(&e, MEMCONV__CODE__CODE_INTERNAL, -EIO, "%s", longer), -EIO);
        CU_ASSERT_EQUAL(strlen(e.text), MC_STATUS_TEXT_MAX - 1);
        CU_ASSERT_EQUAL(strncmp(e.text, longer, MC_STATUS_TEXT_MAX - 1), 0);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "every type: valid one way, -EPROTO the other", test_type_table },
                { "request id 0: -EPROTO where needed", test_request_id },
                { "wrong fd counts: -EBADF", test_fd_counts },
                { "mc_message_fds_expected()", test_fds_expected },
                { "no body / unknown body: -EPROTO", test_no_body },
                { "hello fields", test_hello },
                { "attach fields", test_attach },
                { "register-region geometry", test_register_region },
                { "memory-fault syndrome", test_memory_fault },
                { "convert enums", test_convert },
                { "applied fields", test_applied },
                { "decision fields", test_decision },
                { "lease messages", test_leases },
                { "fixed bugs stay fixed", test_fixed_bugs },
                { "code <-> errno mapping", test_code_errno },
                { "mc_range_valid() edges", test_range_valid },
                { "mc_error_set()", test_error_set },
        };

        return mc_test_run("message", suite_init, suite_cleanup, tests, sizeof(tests) / sizeof(tests[0]));
}
