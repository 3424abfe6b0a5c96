/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz.h - what every fuzz target of tests/fuzz shares.
 *
 * A target is one LLVMFuzzerTestOneInput() over untrusted bytes. It is
 * built twice: with clang and libFuzzer by tests/fuzz/run.sh (coverage
 * guided, ASan+UBSan), and with the ordinary compiler against fuzz-main.c,
 * a replay driver that runs every file of the target's corpus through it,
 * so that `make check` replays the corpora on every build (like systemd's
 * src/fuzz). A target never leaks, never keeps state that changes the
 * outcome of a later input, and calls FUZZ_CHECK() for every invariant it
 * knows: a violated invariant aborts, which libFuzzer reports as a crash
 * with the input that caused it.
 *
 * Targets: fuzz-message (VMM frames + mc_message_validate()), fuzz-admin
 * (AdminRequest / AdminReply), fuzz-journal (journal reader), fuzz-planner
 * (rangemap + planner as an operation sequence), fuzz-config (memconvd.conf
 * through daemon/conffile.c), and tests/libvirt/fuzz-domain-xml (the
 * libvirt hook's XML input). Not fuzzed on its own: daemon/admin.c's
 * VmSelector parsing, which only a running daemon reaches (fuzz-admin
 * covers the frames that carry it).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(expr)                                                                        \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, \
                                #expr);                                                         \
                        abort();                                                                \
                }                                                                               \
        } while (0)
