/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-frame-util.h - put fuzz input through the real receive path.
 *
 * The bytes are sent as one datagram on a SOCK_SEQPACKET socketpair and
 * read back with mc_frame_recv_pb(), exactly as memconvd reads a peer;
 * the result must agree with decoding the bytes directly.
 *
 * Also fuzz_pb_has_unknown(): protobuf-c keeps fields it does not know and
 * encodes them again, but it accepts field number 0 when the tag is a
 * non-minimal varint (0x82 0x00) and refuses it in the minimal form its
 * encoder writes (0x02): a message with unknown fields may therefore not
 * decode after a re-encoding. memconvd never re-encodes what a peer sent,
 * so the round-trip checks only insist on it for messages without unknown
 * fields.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string.h>

#include "frame.h"
#include "fuzz.h"

/**
 * fuzz_pb_has_unknown() - whether @m or any message inside it kept unknown fields
 * @m: a decoded message
 */
static inline bool fuzz_pb_has_unknown(const ProtobufCMessage *m)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;

        if (m->n_unknown_fields)
                return true;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *base = (const char *) m + f->offset;

                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        uint32_t qcase;

                        memcpy(&qcase, (const char *) m + f->quantifier_offset, sizeof(qcase));
                        if (qcase != f->id)
                                continue;
                }
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n;
                        ProtobufCMessage *const *items;

                        memcpy(&n, (const char *) m + f->quantifier_offset, sizeof(n));
                        memcpy(&items, base, sizeof(items));
                        for (size_t k = 0; k < n; k++)
                                if (items[k] && fuzz_pb_has_unknown(items[k]))
                                        return true;
                } else {
                        const ProtobufCMessage *sub;

                        memcpy(&sub, base, sizeof(sub));
                        if (sub && fuzz_pb_has_unknown(sub))
                                return true;
                }
        }
        return false;
}

/**
 * fuzz_frame_roundtrip() - deliver @data as a datagram and receive it
 * @data: the bytes
 * @size: their length
 * @desc: the message type the receiver decodes
 * @decodes: whether protobuf_c_message_unpack() accepted @data
 */
static inline void fuzz_frame_roundtrip(const uint8_t *data, size_t size,
                                        const ProtobufCMessageDescriptor *desc, bool decodes)
{
        static int sp[2] = { -1, -1 };
        ProtobufCMessage *m = NULL;
        int fds[MC_FRAME_MAX_FDS];
        size_t n_fds = 7;
        int r;

        if (sp[0] < 0) {
                int sndbuf = 4 * MC_FRAME_MAX;

                FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
                (void) setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        }
        if (send(sp[0], data, size, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t) size)
                return; /* larger than the socket takes: nothing to compare */
        r = mc_frame_recv_pb(sp[1], MSG_DONTWAIT, desc, &m, fds, &n_fds);
        if (size == 0)
                FUZZ_CHECK(r == -ECONNRESET);
        else if (size > MC_FRAME_MAX)
                FUZZ_CHECK(r == -EMSGSIZE);
        else if (decodes) {
                FUZZ_CHECK(r == 0 && m && n_fds == 0);
                FUZZ_CHECK(protobuf_c_message_get_packed_size(m) <= MC_FRAME_MAX * 2);
        } else
                FUZZ_CHECK(r == -EBADMSG);
        if (r == 0)
                protobuf_c_message_free_unpacked(m, NULL);
}
