/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-message.c - the VMM protocol's decoder and central validator.
 *
 * Input: one datagram as a VMM (or the daemon) would send it. The bytes go
 * through the receive path (fuzz_frame_roundtrip()) and are decoded as a
 * memconv.Message; mc_message_validate() then judges the message in both
 * directions with 0, 1 and 2 fds. Invariants:
 *  - a refusal's errno, wire code and text agree (mc_code_to_errno(code)
 *    == errno, the text is a non-empty C string);
 *  - no message is acceptable in both directions;
 *  - an accepted message has a body, exactly mc_message_fds_expected()
 *    fds, a non-zero id when it is a request, and the properties the
 *    handlers rely on without checking again (the per-type checks below);
 *  - encoding the decoded message and decoding it again gives a message
 *    that is judged the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "frame.h"
#include "fuzz-frame-util.h"
#include "fuzz.h"
#include "message.h"

/**
 * check_accepted() - what a handler may assume of an accepted message
 * @m: a message mc_message_validate() accepted
 * @dir: its direction
 */
static void check_accepted(const Memconv__Message *m, enum mc_msg_direction dir)
{
        FUZZ_CHECK(m->body_case != MEMCONV__MESSAGE__BODY__NOT_SET);
        FUZZ_CHECK(m->hello != NULL); /* the oneof's pointer, whichever member */
        FUZZ_CHECK(strcmp(mc_message_type_name(m->body_case), "unknown") != 0);

        switch (m->body_case) {
        case MEMCONV__MESSAGE__BODY_HELLO:
                FUZZ_CHECK(dir == MC_MSG_TO_DAEMON && m->id != 0 && m->hello->version != 0);
                break;
        case MEMCONV__MESSAGE__BODY_ATTACH:
                FUZZ_CHECK(m->attach->uuid.len == 16 && m->attach->uuid.data);
                FUZZ_CHECK(m->attach->token.len == 0 || m->attach->token.len == 16);
                FUZZ_CHECK(m->attach->name && strlen(m->attach->name) >= 1 &&
                           strlen(m->attach->name) <= MC_NAME_MAX && !strchr(m->attach->name, '/'));
                FUZZ_CHECK(protobuf_c_enum_descriptor_get_value(&memconv__cc_type__descriptor,
                                                                m->attach->cc_type) != NULL);
                break;
        case MEMCONV__MESSAGE__BODY_REGISTER_REGION:
                FUZZ_CHECK(mc_range_valid(m->register_region->gpa, m->register_region->size));
                FUZZ_CHECK(m->register_region->has_shared || m->register_region->shared_offset == 0);
                break;
        case MEMCONV__MESSAGE__BODY_CONVERT:
                FUZZ_CHECK(m->convert->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED ||
                           m->convert->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE);
                break;
        case MEMCONV__MESSAGE__BODY_APPLIED:
                FUZZ_CHECK(m->applied->decision_id != 0);
                FUZZ_CHECK(m->applied->ok ? m->applied->errno_value == 0 : m->applied->errno_value < 0);
                break;
        case MEMCONV__MESSAGE__BODY_REAPPLIED:
                FUZZ_CHECK(m->reapplied->n_ranges >= 1 && m->reapplied->n_ranges <= MC_DECISION_RANGES_MAX);
                for (size_t i = 0; i < m->reapplied->n_ranges; i++)
                        FUZZ_CHECK(m->reapplied->ranges[i] &&
                                   mc_range_valid(m->reapplied->ranges[i]->gpa, m->reapplied->ranges[i]->size));
                break;
        case MEMCONV__MESSAGE__BODY_LEASED_APPLIED:
                FUZZ_CHECK(m->leased_applied->lease_id != 0 && m->leased_applied->seq != 0);
                FUZZ_CHECK(mc_range_valid(m->leased_applied->gpa, m->leased_applied->size));
                FUZZ_CHECK(m->leased_applied->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED ||
                           m->leased_applied->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE);
                break;
        case MEMCONV__MESSAGE__BODY_LEASE:
                /* libmemconv relies on a grant covering something, in whole pages. */
                FUZZ_CHECK(m->lease->lease_id != 0);
                FUZZ_CHECK(m->lease->revoked || (m->lease->max_bytes != 0 && m->lease->max_bytes % 4096 == 0 &&
                                                 (m->lease->implicit || m->lease->explicit_)));
                break;
        case MEMCONV__MESSAGE__BODY_LEASE_RETURNED:
                FUZZ_CHECK(m->lease_returned->lease_id != 0);
                break;
        case MEMCONV__MESSAGE__BODY_DECISION:
                FUZZ_CHECK(m->decision->n_ranges <= MC_DECISION_RANGES_MAX);
                for (size_t i = 0; i < m->decision->n_ranges; i++)
                        FUZZ_CHECK(m->decision->ranges[i] &&
                                   mc_range_valid(m->decision->ranges[i]->gpa, m->decision->ranges[i]->size));
                break;
        default:
                break;
        }
}

/**
 * judge() - validate @m every way; results[dir][n_fds] receives the verdicts
 * @m: a decoded message
 * @results: 2 x 3 return values of mc_message_validate()
 */
static void judge(const Memconv__Message *m, int results[2][3])
{
        bool ok[2] = { false, false };

        for (int dir = 0; dir < 2; dir++)
                for (size_t n = 0; n <= 2; n++) {
                        struct mc_msg_error e;
                        int r;

                        memset(&e, 0x5a, sizeof(e));
                        r = mc_message_validate(m, n, (enum mc_msg_direction) dir, &e);
                        results[dir][n] = r;
                        FUZZ_CHECK(r <= 0);
                        if (r < 0) {
                                FUZZ_CHECK(e.error == r);
                                FUZZ_CHECK(mc_code_to_errno(e.code) == r);
                                FUZZ_CHECK(memchr(e.text, '\0', sizeof(e.text)) != NULL);
                                FUZZ_CHECK(e.text[0] != '\0');
                                continue;
                        }
                        ok[dir] = true;
                        FUZZ_CHECK(mc_message_fds_expected(m) == (int) n);
                        check_accepted(m, (enum mc_msg_direction) dir);
                }
        FUZZ_CHECK(!(ok[0] && ok[1]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Memconv__Message *m, *again;
        int first[2][3], second[2][3];
        uint8_t *buf;
        size_t len;

        if (size > 2 * MC_FRAME_MAX)
                return 0;
        m = memconv__message__unpack(NULL, size, data);
        fuzz_frame_roundtrip(data, size, &memconv__message__descriptor, m != NULL);
        if (!m)
                return 0;

        (void) mc_message_fds_expected(m);
        judge(m, first);

        len = memconv__message__get_packed_size(m);
        buf = malloc(len ? len : 1);
        FUZZ_CHECK(buf);
        FUZZ_CHECK(memconv__message__pack(m, buf) == len);
        again = memconv__message__unpack(NULL, len, buf);
        if (!again) {
                FUZZ_CHECK(fuzz_pb_has_unknown(&m->base)); /* see fuzz-frame-util.h */
                goto out;
        }
        FUZZ_CHECK(again->body_case == m->body_case && again->id == m->id);
        judge(again, second);
        FUZZ_CHECK(memcmp(first, second, sizeof(first)) == 0);

        memconv__message__free_unpacked(again, NULL);
out:
        memconv__message__free_unpacked(m, NULL);
        free(buf);
        return 0;
}
