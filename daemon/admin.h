/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * admin.h - the admin socket: inspection and control for memconvctl.
 *
 * Separate from the VMM socket and stricter: only root, memconvd's own uid
 * and members of the admin group may connect (SO_PEERCRED). Requests are
 * AdminRequest messages, validated centrally and dispatched from a table;
 * answers are AdminReply messages with the request's id. A History request
 * with follow set turns the connection into a stream of new records.
 */
#pragma once

#include "daemon.h"

struct vm;

/** admin_listen() - take the socket-activated "admin" fd or bind the socket */
int admin_listen(struct daemon *d, int activated_fd);

/** admin_done() - close every admin connection and the socket */
void admin_done(struct daemon *d);

/** admin_history_appended() - @vm has new history records: feed followers */
void admin_history_appended(struct vm *vm);

/** admin_vm_gone() - @vm is being freed: end its followers' streams */
void admin_vm_gone(struct vm *vm);
