/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-admin.c - the admin protocol's decoders.
 *
 * Input: one admin-socket datagram. It goes through the receive path as an
 * AdminRequest (what memconvd reads from memconvctl and the libvirt hook)
 * and is decoded both as an AdminRequest and as an AdminReply (what
 * memconvctl reads from the daemon). Invariants: the receive path and the
 * decoder agree; a decoded message encodes to exactly its packed size and
 * that encoding decodes again to a message whose encoding is identical
 * (decode(encode(x)) is a fixed point); every string the decoder hands out
 * is NUL-terminated within what it allocated (ASan checks the strlen()s).
 *
 * The admin request handlers themselves (VmSelector parsing, range windows,
 * history limits) live in daemon/admin.c, which needs a running daemon;
 * tests/integration covers them.
 */
#include <string.h>

#include "frame.h"
#include "fuzz-frame-util.h"
#include "fuzz.h"

/**
 * touch_strings() - strlen() every string of a decoded message, recursively
 * @m: a decoded message
 * Return: the sum of the lengths (so the calls are not optimised away)
 */
static size_t touch_strings(const ProtobufCMessage *m)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;
        size_t sum = 0;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *base = (const char *) m + f->offset;

                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        uint32_t qcase;

                        memcpy(&qcase, (const char *) m + f->quantifier_offset, sizeof(qcase));
                        if (qcase != f->id)
                                continue;
                }
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n;
                        void *const *items;

                        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
                                continue;
                        memcpy(&n, (const char *) m + f->quantifier_offset, sizeof(n));
                        memcpy(&items, base, sizeof(items));
                        for (size_t k = 0; k < n; k++) {
                                FUZZ_CHECK(items[k] != NULL);
                                sum += f->type == PROTOBUF_C_TYPE_STRING ? strlen(items[k])
                                                                          : touch_strings(items[k]);
                        }
                } else if (f->type == PROTOBUF_C_TYPE_STRING) {
                        const char *s;

                        memcpy(&s, base, sizeof(s));
                        if (s)
                                sum += strlen(s);
                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                        const ProtobufCMessage *sub;

                        memcpy(&sub, base, sizeof(sub));
                        if (sub)
                                sum += touch_strings(sub);
                }
        }
        return sum;
}

/**
 * fixed_point() - decode(encode(@m)) encodes to the same bytes
 * @m: a decoded message
 */
static void fixed_point(const ProtobufCMessage *m)
{
        size_t len = protobuf_c_message_get_packed_size(m), len2;
        uint8_t *a = malloc(len ? len : 1), *b;
        ProtobufCMessage *again;

        FUZZ_CHECK(a);
        FUZZ_CHECK(protobuf_c_message_pack(m, a) == len);
        again = protobuf_c_message_unpack(m->descriptor, NULL, len, a);
        if (!again) {
                FUZZ_CHECK(fuzz_pb_has_unknown(m)); /* see fuzz-frame-util.h */
                free(a);
                return;
        }
        len2 = protobuf_c_message_get_packed_size(again);
        FUZZ_CHECK(len2 == len);
        b = malloc(len2 ? len2 : 1);
        FUZZ_CHECK(b);
        FUZZ_CHECK(protobuf_c_message_pack(again, b) == len2);
        FUZZ_CHECK(memcmp(a, b, len) == 0);
        (void) touch_strings(again);
        protobuf_c_message_free_unpacked(again, NULL);
        free(a);
        free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ProtobufCMessage *req, *reply;

        if (size > 2 * MC_FRAME_MAX)
                return 0;

        req = protobuf_c_message_unpack(&memconv__admin_request__descriptor, NULL, size, data);
        fuzz_frame_roundtrip(data, size, &memconv__admin_request__descriptor, req != NULL);
        if (req) {
                (void) touch_strings(req);
                fixed_point(req);
                protobuf_c_message_free_unpacked(req, NULL);
        }

        reply = protobuf_c_message_unpack(&memconv__admin_reply__descriptor, NULL, size, data);
        if (reply) {
                (void) touch_strings(reply);
                fixed_point(reply);
                protobuf_c_message_free_unpacked(reply, NULL);
        }
        return 0;
}
