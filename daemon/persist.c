/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * persist.c - the conversion journal and durable acknowledgements; see
 * persist.h for the model.
 *
 * Threads. The loop owns every struct vm_journal and its pending buffer; the
 * journal thread owns the file descriptors (struct jfile.fd) and the files.
 * They meet only in jobs: the loop queues jobs (FIFO, so a VM's appends and
 * rewrites happen in the order they were made), the thread runs them and
 * hands them back through an eventfd, and the loop then sends the
 * acknowledgements the jobs carried, or logs their failure. A job names its
 * VM by id, so a VM forgotten in the meantime is simply not found.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "macro.h"
#include "persist.h"
#include "replay.h"
#include "session.h"
#include "vm.h"

/* The file of one VM, shared with the journal thread. */
struct jfile {
        LIST_ENTRY(jfile) link; /* persist->files, loop side */
        char name[64];       /* "vm-ID.journal" */
        int fd;              /* journal thread's; -EBADF until created */
};

/* The loop's side of one VM's journal. */
struct vm_journal {
        struct jfile *jf;
        uint8_t *buf;        /* encoded records not yet handed to the thread */
        size_t len, cap;
        uint64_t *acks;      /* decision ids to confirm when they are durable */
        size_t n_acks, cap_acks;
        uint64_t *replies;   /* Reapplied requests to answer then */
        size_t n_replies, cap_replies;
        uint64_t since_snapshot;
        uint64_t detach_reply;   /* a Detach to answer (and carry out) once durable */
        bool dirty;
        int lost;                /* negative errno: a write failed since the last full rewrite, so
                                  * not everything this VM did is durable; 0: all of it is */
        uint64_t *lost_acks;     /* decisions whose write failed: confirmed by the next full rewrite */
        size_t n_lost_acks, cap_lost_acks;
        uint64_t recover_usec;   /* when the last rewrite to recover from a failure was queued */
        bool in_flight;          /* an append is with the journal thread: batch up meanwhile */
        uint64_t submit_usec;    /* when the last append was handed to the thread */
        bool in_list;            /* on p->dirty or p->postponed */
        LIST_ENTRY(vm_journal) link;
        struct vm *vm;
};

enum job_kind {
        JOB_APPEND,
        JOB_REWRITE,         /* replace the file with one record (VM or snapshot) */
        JOB_DELETE,
};

struct pjob {
        struct pjob *next;
        enum job_kind kind;
        uint64_t detach_reply;
        uint64_t attach_reply;   /* REWRITE of a new VM: its Attach, answered once durable */
        struct jfile *jf;
        uint64_t vm_id;
        uint8_t *buf;        /* APPEND: records; REWRITE: one encoded record */
        size_t len;
        uint64_t *acks;
        size_t n_acks;
        uint64_t *replies;
        size_t n_replies;
        int error;
};

struct persist {
        struct daemon *daemon;
        struct persist_config cfg;
        int dirfd;                      /* owned */
        sd_event_source *flush_source;  /* defer: end of loop iteration */
        LIST_HEAD(, vm_journal) dirty;
        /* Dirty, but appended less than commit_interval_usec ago: flushed by commit_timer. */
        LIST_HEAD(, vm_journal) postponed;
        sd_event_source *commit_timer;
        uint64_t commit_timer_usec;     /* when it fires; 0: off */

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct pjob *queue, *queue_tail;
        struct pjob *done, *done_tail;
        bool stopping;
        int efd;                        /* owned */
        sd_event_source *done_source;
        unsigned failures_logged;
        LIST_HEAD(, jfile) files;       /* every jfile; freed on delete or at the end */
};

void persist_set_compact(struct persist *p, uint64_t records)
{
        if (p)
                p->cfg.compact_records = records;
}

void persist_set_commit_interval(struct persist *p, uint64_t usec)
{
        if (p)
                p->cfg.commit_interval_usec = usec;
}

bool persist_enabled(const struct persist *p)
{
        return p && p->cfg.state_dir;
}

/* ------------------------------------------------------------------ journal thread */

static void job_push(struct pjob **head, struct pjob **tail, struct pjob *j)
{
        j->next = NULL;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
}

static void job_free(struct pjob *j)
{
        if (!j)
                return;
        free(j->buf);
        free(j->acks);
        free(j->replies);
        free(j);
}

/**
 * job_run() - do one job's I/O (journal thread)
 * Return: 0 or negative errno
 */
static int job_run(struct persist *p, struct pjob *j)
{
        struct jfile *jf = j->jf;
        int fd = -EBADF, r;


        switch (j->kind) {
        case JOB_APPEND:
                if (jf->fd < 0)
                        return -EBADF;
                return mc_journal_append(jf->fd, j->buf, j->len);
        case JOB_REWRITE:
                r = mc_journal_rewrite_buffer(p->dirfd, jf->name, j->buf, j->len, &fd);
                if (fd >= 0) {
                        /* Even when only the directory fsync failed: the new file is in place. */
                        safe_close(jf->fd);
                        jf->fd = fd;
                }
                return r;
        case JOB_DELETE:
                jf->fd = safe_close(jf->fd);
                if (unlinkat(p->dirfd, jf->name, 0) < 0 && errno != ENOENT)
                        return negative_errno();
                (void) fsync(p->dirfd);
                return 0;
        }
        return -EINVAL;
}

static void *persist_thread(void *arg)
{
        struct persist *p = arg;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct pjob *j;
                uint64_t one = 1;

                while (!p->queue && !p->stopping)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (!p->queue)
                        break;
                j = p->queue;
                p->queue = j->next;
                if (!p->queue)
                        p->queue_tail = NULL;
                pthread_mutex_unlock(&p->lock);

                j->error = job_run(p, j);

                pthread_mutex_lock(&p->lock);
                job_push(&p->done, &p->done_tail, j);
                (void) !write(p->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void persist_submit(struct persist *p, struct pjob *j)
{
        pthread_mutex_lock(&p->lock);
        job_push(&p->queue, &p->queue_tail, j);
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

static void mark_dirty(struct persist *p, struct vm_journal *j);
static int append_u64(uint64_t **a, size_t *n, size_t *cap, uint64_t v);

/* ------------------------------------------------------------------ completions */

/**
 * vm_by_id() - the VM with daemon id @id, or NULL (it was forgotten)
 */
static struct vm *vm_by_id(struct daemon *d, uint64_t id)
{
        struct vm *vm;

        LIST_FOREACH(vm, &d->vms, link)
                if (vm->id == id)
                        return vm;
        return NULL;
}

/**
 * job_acknowledge() - the job's records are durable (or there is no
 * journal): confirm them to the VM's VMM, if it is still connected
 */
static void job_acknowledge(struct persist *p, uint64_t vm_id, const uint64_t *acks, size_t n_acks,
                            const uint64_t *replies, size_t n_replies, uint64_t detach_reply)
{
        struct vm *vm = vm_by_id(p->daemon, vm_id);
        struct session *s;

        if (!vm || !vm->session)
                return;
        s = vm->session;
        if (n_acks > 0)
                (void) session_send_committed(s, acks, n_acks);
        for (size_t i = 0; i < n_replies; i++)
                (void) session_send_ok(s, replies[i]);
        if (detach_reply) {
                /* Everything the VMM did is durable: now let it go. */
                session_vm_detached(s);
                (void) session_send_ok(s, detach_reply);
        }
}

/**
 * detach_not_durable() - detach @vm's VMM and answer its Detach @reply_id
 * with an error: it must not believe that its last changes are durable
 */
static void detach_not_durable(struct vm *vm, uint64_t reply_id, int error)
{
        struct session *sess = vm->session;
        struct mc_msg_error e;

        session_vm_detached(sess);
        mc_error_set(&e, MEMCONV__CODE__CODE_INTERNAL, error,
                     "detached, but the journal could not be written (%s): the last "
                     "changes are not durable", strerror(-error));
        (void) session_send_error(sess, reply_id, &e);
}

static void persist_drain(struct persist *p)
{
        struct pjob *list;

        pthread_mutex_lock(&p->lock);
        list = p->done;
        p->done = p->done_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        while (list) {
                struct pjob *j = list;

                list = j->next;
                if (j->error < 0) {
                        struct vm *vm = vm_by_id(p->daemon, j->vm_id);

                        /* Not acknowledged: the VMM keeps the decisions and re-sends them after a restart. */
                        if (p->failures_logged++ < 100)
                                log_error_errno(j->error, "Journal %s: %s failed; %zu decision(s) stay unconfirmed",
                                                j->jf->name, j->kind == JOB_APPEND ? "append" :
                                                j->kind == JOB_REWRITE ? "rewrite" : "delete", j->n_acks);
                        if (vm)
                                vm->stats.journal_errors++;
                        if (vm && vm->journal && j->kind != JOB_DELETE) {
                                struct vm_journal *vj = vm->journal;

                                vj->lost = j->error;
                                /* Kept for the rewrite that will make them durable (the VMM keeps
                                 * them meanwhile; should memory run short it still has them). */
                                for (size_t i = 0; i < j->n_acks; i++)
                                        if (append_u64(&vj->lost_acks, &vj->n_lost_acks, &vj->cap_lost_acks,
                                                       j->acks[i]) < 0)
                                                break;
                        }
                        /* A VMM that detaches must not wait forever for durability we cannot give:
                         * it is detached and told that its last changes may be lost. */
                        if (vm && vm->session && j->detach_reply)
                                detach_not_durable(vm, j->detach_reply, j->error);
                        /* The VM works without a journal (as after any write failure), but a
                         * restart would not know it: the log above says so. */
                        if (vm && vm->session && j->attach_reply)
                                (void) session_send_attach_reply(vm->session, j->attach_reply);
                        /* Reapplied requests waiting for this batch get the same answer. */
                        for (size_t i = 0; vm && vm->session && i < j->n_replies; i++) {
                                struct mc_msg_error e;

                                mc_error_set(&e, MEMCONV__CODE__CODE_INTERNAL, j->error,
                                             "the journal could not be written (%s)", strerror(-j->error));
                                (void) session_send_error(vm->session, j->replies[i], &e);
                        }
                } else {
                        struct vm *vm = vm_by_id(p->daemon, j->vm_id);
                        int lost = vm && vm->journal ? vm->journal->lost : 0;

                        /* A rewrite holds the whole state: whatever an earlier failure lost is back. */
                        if (j->kind == JOB_REWRITE && vm && vm->journal) {
                                if (lost < 0)
                                        log_info("Journal %s: VM %s's whole state rewritten: durable again; "
                                                 "%zu decision(s) whose write had failed confirmed",
                                                 j->jf->name, vm->name, j->n_acks);
                                vm->journal->lost = 0;
                        }
                        if (j->kind == JOB_APPEND && j->n_acks > 0)
                                log_debug("Journal %s: append durable; %zu decision(s) confirmed", j->jf->name,
                                          j->n_acks);
                        /* This batch is durable, an earlier one was not: the Detach must say so. */
                        if (vm && vm->session && j->attach_reply)
                                (void) session_send_attach_reply(vm->session, j->attach_reply);
                        job_acknowledge(p, j->vm_id, j->acks, j->n_acks, j->replies, j->n_replies,
                                        lost < 0 ? 0 : j->detach_reply);
                        if (lost < 0 && j->detach_reply && vm->session)
                                detach_not_durable(vm, j->detach_reply, lost);
                }
                if (j->kind == JOB_APPEND) {
                        struct vm *vm = vm_by_id(p->daemon, j->vm_id);

                        /* The next batch goes as soon as this one is done: group commit. */
                        if (vm && vm->journal) {
                                vm->journal->in_flight = false;
                                if (vm->journal->dirty)
                                        mark_dirty(p, vm->journal);
                        }
                }
                if (j->kind == JOB_DELETE) {
                        /* Nothing can reference it any more: its VM is gone. */
                        LIST_REMOVE(j->jf, link);
                        free(j->jf);
                }
                job_free(j);
        }
}

static int persist_on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct persist *p = userdata;
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        persist_drain(p);
        return 0;
}

/* ------------------------------------------------------------------ loop side */

/**
 * vm_journal_get() - @vm's journal state, created on first use
 * Return: it, or NULL on ENOMEM
 */
static struct vm_journal *vm_journal_get(struct vm *vm)
{
        struct vm_journal *j = vm->journal;

        if (j)
                return j;
        j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        j->jf = calloc(1, sizeof(*j->jf));
        if (!j->jf) {
                free(j);
                return NULL;
        }
        snprintf(j->jf->name, sizeof(j->jf->name), "vm-%" PRIu64 ".journal", vm->id);
        j->jf->fd = -EBADF;
        LIST_INSERT_HEAD(&vm->daemon->persist->files, j->jf, link);
        j->vm = vm;
        vm->journal = j;
        return j;
}

/**
 * mark_dirty() - make sure the end-of-iteration flush handles @j
 */
static void mark_dirty(struct persist *p, struct vm_journal *j)
{
        j->dirty = true;
        if (!j->in_list) {
                LIST_INSERT_HEAD(&p->dirty, j, link);
                j->in_list = true;
        }
        (void) sd_event_source_set_enabled(p->flush_source, SD_EVENT_ONESHOT);
}

/**
 * append_u64() - push @v onto a growable array
 * Return: 0 or -ENOMEM
 */
static int append_u64(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                uint64_t *na = realloc(*a, nc * sizeof(uint64_t));

                if (!na)
                        return -ENOMEM;
                *a = na;
                *cap = nc;
        }
        (*a)[(*n)++] = v;
        return 0;
}

/**
 * persist_encode() - add @rec to @vm's pending records
 */
static void persist_encode(struct vm *vm, Memconv__JournalRecord *rec)
{
        struct persist *p = vm->daemon->persist;
        struct vm_journal *j;
        int r;

        if (!persist_enabled(p))
                return;
        j = vm_journal_get(vm);
        if (!j) {
                log_error("VM %s: out of memory: journal record lost", vm->name);
                return;
        }
        rec->realtime_usec = daemon_realtime();
        r = mc_journal_encode(rec, &j->buf, &j->len, &j->cap);
        if (r < 0) {
                log_error_errno(r, "VM %s: cannot encode a journal record", vm->name);
                return;
        }
        j->since_snapshot++;
        mark_dirty(p, j);
}

/**
 * fill_vm_record() - the JournalVm of @vm (pointers into @vm)
 */
static void fill_vm_record(Memconv__JournalVm *m, struct vm *vm)
{
        memconv__journal_vm__init(m);
        m->vm_id = vm->id;
        m->uuid.data = vm->uuid;
        m->uuid.len = sizeof(vm->uuid);
        m->name = vm->name;
        m->cc_type = (Memconv__CcType) vm->cc_type;
        m->arch = (Memconv__Arch) vm->arch;
        m->token.data = vm->token;
        m->token.len = sizeof(vm->token);
        m->uid = (uint32_t) vm->uid;
}

/**
 * queue_rewrite() - replace @vm's journal file by the @n records @recs
 * (encoded now, so later changes to @vm do not leak into it)
 * @attach_reply: an Attach to answer once they are durable, or 0
 * Return: whether the job was queued
 */
static bool queue_rewrite(struct persist *p, struct vm *vm, struct vm_journal *j, Memconv__JournalRecord *recs,
                          size_t n, uint64_t attach_reply)
{
        struct pjob *job = calloc(1, sizeof(*job));
        Memconv__JournalRecord *rec = &recs[0];
        size_t cap = 0;
        int r = 0;

        if (!job) {
                log_error("VM %s: out of memory: journal not rewritten", vm->name);
                return false;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                recs[i].realtime_usec = daemon_realtime();
                r = mc_journal_encode(&recs[i], &job->buf, &job->len, &cap);
        }
        if (r < 0) {
                log_error_errno(r, "VM %s: cannot encode its journal %s", vm->name,
                                rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT ? "snapshot" : "header");
                free(job->buf);
                free(job);
                return false;
        }
        job->kind = JOB_REWRITE;
        job->attach_reply = attach_reply;
        job->jf = j->jf;
        job->vm_id = vm->id;
        if (rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT && j->n_lost_acks > 0) {
                /* The snapshot holds their changes: once it is written they are durable. */
                job->acks = TAKE_PTR(j->lost_acks);
                job->n_acks = j->n_lost_acks;
                j->n_lost_acks = j->cap_lost_acks = 0;
        }
        persist_submit(p, job);
        return true;
}

bool persist_vm_created(struct vm *vm, uint64_t attach_reply)
{
        struct persist *p = vm->daemon->persist;
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalVm m;
        struct vm_journal *j;

        if (!persist_enabled(p) || !(j = vm_journal_get(vm)))
                return false;
        fill_vm_record(&m, vm);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
        rec.vm = &m;
        return queue_rewrite(p, vm, j, &rec, 1, attach_reply);
}

void persist_region(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, bool has_shared,
                    bool initial_private, bool removed)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalRegion m = MEMCONV__JOURNAL_REGION__INIT;

        m.slot = slot;
        m.gpa = gpa;
        m.size = size;
        m.has_shared = has_shared;
        m.initial = initial_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        m.removed = removed;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
        rec.region = &m;
        persist_encode(vm, &rec);
}

void persist_change(struct vm *vm, const struct history_record *h)
{
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__HistoryRecord m;

        history_record_to_pb(&m, h);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        rec.change = &m;
        persist_encode(vm, &rec);
}

void persist_detach(struct vm *vm, uint64_t reply_id)
{
        struct persist *p = vm->daemon->persist;
        struct vm_journal *j = vm_journal_get(vm);

        if (!j) {
                session_vm_detached(vm->session);
                (void) session_send_ok(vm->session, reply_id);
                return;
        }
        j->detach_reply = reply_id;
        mark_dirty(p, j);
}

void persist_ack(struct vm *vm, uint64_t decision_id, uint64_t reply_id)
{
        struct persist *p = vm->daemon->persist;
        struct vm_journal *j = vm_journal_get(vm);
        int r = 0;

        if (!j) {
                log_error("VM %s: out of memory: a decision stays unconfirmed", vm->name);
                return;
        }
        if (decision_id)
                r = append_u64(&j->acks, &j->n_acks, &j->cap_acks, decision_id);
        if (r >= 0 && reply_id)
                r = append_u64(&j->replies, &j->n_replies, &j->cap_replies, reply_id);
        if (r < 0)
                log_error("VM %s: out of memory: a decision stays unconfirmed", vm->name);
        mark_dirty(p, j);
}

struct snap_walk {
        Memconv__Range *ranges;
        Memconv__Range **rp;
        size_t n, cap;
};

static int snap_walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct snap_walk *w = userdata;

        if (!(value & MC_ATTR_PRIVATE))
                return 0;
        if (w->n == w->cap)
                return -ENOBUFS;
        memconv__range__init(&w->ranges[w->n]);
        w->ranges[w->n].gpa = start;
        w->ranges[w->n].size = end - start;
        w->rp[w->n] = &w->ranges[w->n];
        w->n++;
        return 0;
}

/*
 * Private ranges per snapshot record: a Range encodes in at most 26 bytes
 * (two 10-byte varints, their tags, its length), so 32768 of them stay well
 * inside MC_JOURNAL_PAYLOAD_MAX (1 MiB) with the regions and stats.
 */
#define SNAPSHOT_RANGES_PER_RECORD 32768U

/**
 * queue_snapshot() - compact @vm's journal into a snapshot: one
 * JournalSnapshot record, followed by JournalSnapshotMore records when the
 * map has more private ranges than one record holds
 */
static void queue_snapshot(struct persist *p, struct vm *vm, struct vm_journal *j)
{
        Memconv__JournalSnapshot snap = MEMCONV__JOURNAL_SNAPSHOT__INIT;
        Memconv__ConversionStats stats = MEMCONV__CONVERSION_STATS__INIT;
        Memconv__JournalVm m;
        struct snap_walk w = { .cap = mc_rangemap_count(vm->attrs) };
        _cleanup_free_ Memconv__JournalRecord *recs = NULL;
        _cleanup_free_ Memconv__JournalSnapshotMore *more = NULL;
        size_t n_recs;
        _cleanup_free_ Memconv__RegionInfo *regions = NULL;
        _cleanup_free_ Memconv__RegionInfo **regp = NULL;

        w.ranges = calloc(w.cap ? w.cap : 1, sizeof(*w.ranges));
        w.rp = calloc(w.cap ? w.cap : 1, sizeof(*w.rp));
        regions = calloc(vm->n_known ? vm->n_known : 1, sizeof(*regions));
        regp = calloc(vm->n_known ? vm->n_known : 1, sizeof(*regp));
        if (!w.ranges || !w.rp || !regions || !regp ||
            mc_rangemap_walk(vm->attrs, 0, UINT64_MAX, snap_walk_fn, &w) < 0) {
                log_error("VM %s: cannot build a journal snapshot; compaction postponed", vm->name);
                free(w.ranges);
                free(w.rp);
                return;
        }
        for (size_t i = 0; i < vm->n_known; i++) {
                memconv__region_info__init(&regions[i]);
                regions[i].slot = vm->known[i].slot;
                regions[i].gpa = vm->known[i].gpa;
                regions[i].size = vm->known[i].size;
                regions[i].has_shared = vm->known[i].has_shared;
                regp[i] = &regions[i];
        }
        fill_vm_record(&m, vm);
        stats.explicit_to_private = vm->stats.conversions[0][1];
        stats.explicit_to_shared = vm->stats.conversions[0][0];
        stats.implicit_to_private = vm->stats.conversions[1][1];
        stats.implicit_to_shared = vm->stats.conversions[1][0];
        stats.bytes_to_private = vm->stats.bytes_to_private;
        stats.bytes_to_shared = vm->stats.bytes_to_shared;
        stats.rolled_back = vm->stats.rolled_back;
        snap.vm = &m;
        snap.regions = regp;
        snap.n_regions = vm->n_known;
        snap.private_ranges = w.rp;
        snap.n_private_ranges = (w.n < SNAPSHOT_RANGES_PER_RECORD ? w.n : SNAPSHOT_RANGES_PER_RECORD);
        snap.total_private_ranges = w.n;
        snap.stats = &stats;
        snap.last_seq = vm->history.last_seq;
        /* A record holds at most MC_JOURNAL_PAYLOAD_MAX: a fragmented map takes several. */
        n_recs = 1 + (w.n > SNAPSHOT_RANGES_PER_RECORD ?
                      (w.n - SNAPSHOT_RANGES_PER_RECORD + SNAPSHOT_RANGES_PER_RECORD - 1) / SNAPSHOT_RANGES_PER_RECORD : 0);
        recs = calloc(n_recs, sizeof(*recs));
        more = calloc(n_recs, sizeof(*more));
        if (!recs || !more) {
                log_error("VM %s: cannot build a journal snapshot; compaction postponed", vm->name);
                free(w.ranges);
                free(w.rp);
                return;
        }
        memconv__journal_record__init(&recs[0]);
        recs[0].body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT;
        recs[0].snapshot = &snap;
        for (size_t i = 1, off = SNAPSHOT_RANGES_PER_RECORD; i < n_recs; i++, off += SNAPSHOT_RANGES_PER_RECORD) {
                memconv__journal_snapshot_more__init(&more[i]);
                more[i].private_ranges = w.rp + off;
                more[i].n_private_ranges = (w.n - off < SNAPSHOT_RANGES_PER_RECORD ? w.n - off : SNAPSHOT_RANGES_PER_RECORD);
                memconv__journal_record__init(&recs[i]);
                recs[i].body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE;
                recs[i].snapshot_more = &more[i];
        }
        (void) queue_rewrite(p, vm, j, recs, n_recs, 0);
        free(w.ranges);
        free(w.rp);
        j->since_snapshot = 0;
}

/**
 * persist_flush_one() - hand @j's pending records and acks to the thread,
 * or acknowledge at once when there is no journal
 */
static void persist_flush_one(struct persist *p, struct vm_journal *j, bool force)
{
        struct vm *vm = j->vm;
        struct pjob *job;

        if (!persist_enabled(p)) {
                uint64_t detach = j->detach_reply;

                j->dirty = false;
                j->detach_reply = 0;
                job_acknowledge(p, vm->id, j->acks, j->n_acks, j->replies, j->n_replies, detach);
                j->n_acks = j->n_replies = 0;
                return;
        }
        if (j->in_flight && !force)
                return;  /* stays dirty: sent when the append in flight completes */
        if (!force && p->cfg.commit_interval_usec) {
                uint64_t due = j->submit_usec + p->cfg.commit_interval_usec;

                /* Group commit over time too: under a stream of conversions, one write and
                 * one fdatasync per interval instead of one per loop iteration. */
                if (daemon_now() < due) {
                        LIST_INSERT_HEAD(&p->postponed, j, link);
                        j->in_list = true;
                        if (!p->commit_timer_usec || due < p->commit_timer_usec) {
                                p->commit_timer_usec = due;
                                (void) sd_event_source_set_time(p->commit_timer, due);
                                (void) sd_event_source_set_enabled(p->commit_timer, SD_EVENT_ONESHOT);
                        }
                        return;
                }
        }
        j->dirty = false;
        j->submit_usec = daemon_now();
        job = calloc(1, sizeof(*job));
        if (!job) {
                log_error("VM %s: out of memory: journal flush postponed", vm->name);
                j->dirty = true;
                return;
        }
        job->kind = JOB_APPEND;
        job->jf = j->jf;
        job->vm_id = vm->id;
        job->buf = TAKE_PTR(j->buf);
        job->len = j->len;
        job->acks = TAKE_PTR(j->acks);
        job->n_acks = j->n_acks;
        job->replies = TAKE_PTR(j->replies);
        job->n_replies = j->n_replies;
        job->detach_reply = j->detach_reply;
        j->detach_reply = 0;
        j->in_flight = true;
        j->len = j->cap = j->n_acks = j->cap_acks = j->n_replies = j->cap_replies = 0;
        persist_submit(p, job);
        if (p->cfg.compact_records && j->since_snapshot >= p->cfg.compact_records) {
                queue_snapshot(p, vm, j);
        } else if (j->lost < 0 && daemon_now() - j->recover_usec >= 1000000) {
                /*
                 * A write failed earlier (or the file was never created): appending
                 * after a hole leaves the lost records lost. A snapshot of the whole
                 * state, after this append, makes everything durable again and
                 * confirms the decisions whose write failed. At most once a second
                 * while the disk keeps failing.
                 */
                j->recover_usec = daemon_now();
                log_info("Journal %s: rewriting VM %s's whole state to recover from a failed write (%s)",
                         j->jf->name, vm->name, strerror(-j->lost));
                queue_snapshot(p, vm, j);
        }
}

/**
 * persist_flush() - hand every dirty journal's records to the thread
 * @postponed_too: the ones waiting for their commit interval as well (those
 * not due yet are postponed again unless @force)
 * @force: even journals with an append in flight or within their interval
 */
static void persist_flush(struct persist *p, bool postponed_too, bool force)
{
        struct vm_journal *j;

        while (postponed_too && (j = LIST_FIRST(&p->postponed))) {
                LIST_REMOVE(j, link);
                LIST_INSERT_HEAD(&p->dirty, j, link);
        }
        /* Postponed ones go onto p->postponed, not back here. */
        while ((j = LIST_FIRST(&p->dirty))) {
                LIST_REMOVE(j, link);
                j->in_list = false;
                if (j->dirty)
                        persist_flush_one(p, j, force);
        }
}

/** persist_on_flush() - the end of a loop iteration */
static int persist_on_flush(sd_event_source *s, void *userdata)
{
        persist_flush(userdata, false, false);
        return 0;
}

/** persist_on_commit_timer() - the commit interval of postponed journals is over */
static int persist_on_commit_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct persist *p = userdata;

        p->commit_timer_usec = 0;
        persist_flush(p, true, false);
        return 0;
}

/**
 * vm_journal_drop() - free the loop's side of @vm's journal; with
 * @delete_file, the file is deleted after everything queued before
 */
static void vm_journal_drop(struct persist *p, struct vm *vm, bool delete_file)
{
        struct vm_journal *j = vm->journal;

        if (!j)
                return;
        if (j->in_list)
                LIST_REMOVE(j, link);
        if (j->dirty)
                persist_flush_one(p, j, true);
        if (delete_file && persist_enabled(p)) {
                struct pjob *job = calloc(1, sizeof(*job));

                if (job) {
                        job->kind = JOB_DELETE;
                        job->jf = j->jf;
                        job->vm_id = vm->id;
                        persist_submit(p, job);
                } else
                        log_error("VM %s: out of memory: journal %s not deleted", vm->name, j->jf->name);
        }
        free(j->buf);
        free(j->acks);
        free(j->lost_acks);
        free(j->replies);
        free(j);
        vm->journal = NULL;
}

void persist_vm_forgotten(struct vm *vm)
{
        vm_journal_drop(vm->daemon->persist, vm, true);
}

void persist_vm_free(struct vm *vm)
{
        vm_journal_drop(vm->daemon->persist, vm, false);
}

/* ------------------------------------------------------------------ replay */

/*
 * Records are applied in file order: regions, counters, the history ring and
 * its sequence numbers as they come. The attribute map is the exception: its
 * updates (snapshot ranges, regions that start private, committed changes)
 * go through a struct replay_map, which applies those that come in address
 * order at once and collects the others, to apply what they leave in one
 * sweep after the last record (replay.h): that is what makes a long journal
 * quick to replay. Nothing reads the map before replay_map_finish().
 */

/* What replaying one file has seen so far. */
struct load_state {
        uint64_t want_ranges;   /* the snapshot's total_private_ranges */
        uint64_t got_ranges;    /* received so far, in it and its SnapshotMore records */
        uint64_t since_snapshot; /* records after the last snapshot (all, without one) */
        struct replay_map map;  /* the VM's attribute map, being built */
};

/**
 * load_snapshot_ranges() - the private ranges of a snapshot record or one of
 * its SnapshotMore records
 * @ls: the replay; its map gets every valid range
 * @ranges: the ranges (borrowed)
 * @n: how many; all count towards the snapshot's total, valid or not
 */
static void load_snapshot_ranges(struct load_state *ls, Memconv__Range *const *ranges, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (mc_range_valid(ranges[i]->gpa, ranges[i]->size))
                        replay_map_set(&ls->map, ranges[i]->gpa, ranges[i]->gpa + ranges[i]->size, true);
        ls->got_ranges += n;
}

/**
 * load_apply() - apply one journal record to @vm (being rebuilt)
 * @vm: the VM
 * @ls: the replay of its file; its map stands for @vm->attrs until
 *      replay_map_finish()
 * @rec: the record (borrowed)
 */
static void load_apply(struct vm *vm, struct load_state *ls, const Memconv__JournalRecord *rec)
{
        if (rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT)
                ls->since_snapshot = 0;
        else if (rec->body_case != MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE)
                ls->since_snapshot++;
        switch (rec->body_case) {
        case MEMCONV__JOURNAL_RECORD__BODY_REGION: {
                const Memconv__JournalRegion *r = rec->region;

                if (r->removed)
                        vm_known_region_forget(vm, r->slot);
                else
                        (void) vm_known_region_remember(vm, r->slot, r->gpa, r->size, r->has_shared);
                if (!r->removed && r->initial == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE && mc_range_valid(r->gpa, r->size))
                        replay_map_set(&ls->map, r->gpa, r->gpa + r->size, true);
                break;
        }
        case MEMCONV__JOURNAL_RECORD__BODY_CHANGE: {
                const Memconv__HistoryRecord *c = rec->change;
                bool to = c->to == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                struct history_record h = {
                        .realtime_usec = c->realtime_usec,
                        .gpa = c->gpa,
                        .size = c->size,
                        .request_id = c->request_id,
                        .decision_id = c->decision_id,
                        .vcpu = c->vcpu,
                        .decision_latency_usec = (uint32_t) c->decision_latency_usec,
                        .to_private = to,
                        .implicit = c->implicit,
                        .source = (uint8_t) c->source,
                        .result = (uint8_t) c->result,
                };

                if (c->seq > vm->history.last_seq + 1 || c->seq <= vm->history.last_seq)
                        vm->history.last_seq = c->seq - 1;  /* follow the file's numbering */
                history_append(&vm->history, &h);
                if (c->result != MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED || !mc_range_valid(c->gpa, c->size))
                        break;
                replay_map_set(&ls->map, c->gpa, c->gpa + c->size, to);
                vm->stats.conversions[c->implicit][to]++;
                if (to)
                        vm->stats.bytes_to_private += c->size;
                else
                        vm->stats.bytes_to_shared += c->size;
                break;
        }
        case MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT: {
                const Memconv__JournalSnapshot *sn = rec->snapshot;

                replay_map_clear(&ls->map);
                vm->n_known = 0;
                for (size_t i = 0; i < sn->n_regions; i++)
                        (void) vm_known_region_remember(vm, sn->regions[i]->slot, sn->regions[i]->gpa,
                                                        sn->regions[i]->size, sn->regions[i]->has_shared);
                ls->got_ranges = 0;
                ls->want_ranges = sn->total_private_ranges ? sn->total_private_ranges : sn->n_private_ranges;
                load_snapshot_ranges(ls, sn->private_ranges, sn->n_private_ranges);
                if (sn->stats) {
                        vm->stats.conversions[0][1] = sn->stats->explicit_to_private;
                        vm->stats.conversions[0][0] = sn->stats->explicit_to_shared;
                        vm->stats.conversions[1][1] = sn->stats->implicit_to_private;
                        vm->stats.conversions[1][0] = sn->stats->implicit_to_shared;
                        vm->stats.bytes_to_private = sn->stats->bytes_to_private;
                        vm->stats.bytes_to_shared = sn->stats->bytes_to_shared;
                        vm->stats.rolled_back = sn->stats->rolled_back;
                }
                vm->history.last_seq = sn->last_seq;
                break;
        }
        case MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE:
                /* Only right after its snapshot, and never beyond the total it announced. */
                if (ls->got_ranges + rec->snapshot_more->n_private_ranges <= ls->want_ranges)
                        load_snapshot_ranges(ls, rec->snapshot_more->private_ranges,
                                             rec->snapshot_more->n_private_ranges);
                break;
        default:
                break;  /* VM (handled by the caller), detached, or a body from a newer daemon */
        }
}

/**
 * pb_fields_flat() - whether an unpacked message of type @desc owns no
 * memory but itself and its unknown fields, its oneof members aside
 * @desc: a message descriptor
 * Return: true if none of its fields outside a oneof is repeated, a string,
 * bytes or a message
 */
static bool pb_fields_flat(const ProtobufCMessageDescriptor *desc)
{
        for (unsigned i = 0; i < desc->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &desc->fields[i];

                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_STRING ||
                    f->type == PROTOBUF_C_TYPE_BYTES || f->type == PROTOBUF_C_TYPE_MESSAGE)
                        return false;
        }
        return true;
}

/**
 * load_record_free() - free a record the journal reader decoded
 * @rec: the record, owned
 * @flat_changes: pb_fields_flat() holds for JournalRecord and HistoryRecord
 *
 * What memconv__journal_record__free_unpacked() does, without its walk over
 * the descriptors for the common record, a change with no unknown field:
 * that walk is a tenth of the time a long journal takes to replay. Such a
 * record is then two allocations, itself and its HistoryRecord, and the
 * reader decodes with malloc() (journal.h), so free() is the way to release
 * them. Should a field that owns memory be added to either message, the
 * check of @flat_changes sends every record the generic way again.
 */
static void load_record_free(Memconv__JournalRecord *rec, bool flat_changes)
{
        if (flat_changes && rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_CHANGE &&
            !rec->base.unknown_fields && !rec->change->base.unknown_fields) {
                free(rec->change);
                free(rec);
                return;
        }
        memconv__journal_record__free_unpacked(rec, NULL);
}

/**
 * load_next() - the next record of a journal being replayed
 * @rd: the reader
 * @fast: storage for a record decoded here, owned by the caller
 * @fast_change: storage for its change body, owned by the caller
 * @ret: the record: @fast (borrowed; valid until the next call) or one from
 *       mc_journal_reader_next() (owned: load_record_free())
 *
 * Most of a long journal is plain change records: those are decoded by
 * mc_journal_decode_change() into @fast, without protobuf-c's generic unpack
 * (two allocations and a descriptor walk each); every other record, and
 * anything the reader has to report, goes through mc_journal_reader_next().
 * The result is the same record either way.
 *
 * Return: as mc_journal_reader_next().
 */
static int load_next(struct mc_journal_reader *rd, Memconv__JournalRecord *fast,
                     Memconv__HistoryRecord *fast_change, Memconv__JournalRecord **ret)
{
        const void *payload;
        uint64_t realtime_usec;
        size_t len;

        if (mc_journal_reader_peek(rd, &payload, &len) == 1 &&
            mc_journal_decode_change(payload, len, &realtime_usec, fast_change) == 1) {
                memconv__journal_record__init(fast);
                fast->realtime_usec = realtime_usec;
                fast->body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
                fast->change = fast_change;
                (void) mc_journal_reader_skip(rd);
                *ret = fast;
                return 1;
        }
        return mc_journal_reader_next(rd, ret);
}

/**
 * load_one() - rebuild the VM journaled in file @name
 * Return: 1 loaded, 0 skipped (logged), negative errno
 */
static int load_one(struct persist *p, const char *name)
{
        _cleanup_close_ int fd = -EBADF;
        struct mc_journal_reader *rd = NULL;
        Memconv__JournalRecord *rec = NULL, fast;
        Memconv__HistoryRecord fast_change;
        const Memconv__JournalVm *id;
        const char *reason = NULL;
        uint64_t records = 0, valid_end;
        struct load_state ls = { 0 };
        struct vm *vm = NULL;
        bool flat_changes = pb_fields_flat(&memconv__journal_record__descriptor) &&
                            pb_fields_flat(&memconv__history_record__descriptor);
        int r;

        fd = openat(p->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return log_warning_errno(errno, "Journal %s: cannot open; skipped", name), 0;
        r = mc_journal_reader_open(fd, &rd, &reason);
        if (r < 0)
                return log_warning_errno(r, "Journal %s: %s; skipped", name, reason ? reason : "unreadable"), 0;
        r = mc_journal_reader_next(rd, &rec);
        if (r <= 0 || (rec->body_case != MEMCONV__JOURNAL_RECORD__BODY_VM &&
                       rec->body_case != MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT)) {
                log_warning("Journal %s: does not start with a VM or snapshot record; skipped", name);
                if (r > 0)
                        memconv__journal_record__free_unpacked(rec, NULL);
                mc_journal_reader_free(rd);
                return 0;
        }
        id = rec->body_case == MEMCONV__JOURNAL_RECORD__BODY_VM ? rec->vm : rec->snapshot->vm;
        if (!id || id->uuid.len != 16 || !id->name || id->vm_id == 0) {
                log_warning("Journal %s: its first record does not identify a VM; skipped", name);
                memconv__journal_record__free_unpacked(rec, NULL);
                mc_journal_reader_free(rd);
                return 0;
        }
        r = vm_new(p->daemon, NULL, id->uuid.data, id->name, id->cc_type, id->arch, id->uid, 0, &vm);
        if (r < 0) {
                memconv__journal_record__free_unpacked(rec, NULL);
                mc_journal_reader_free(rd);
                return log_error_errno(r, "Journal %s: cannot rebuild its VM", name);
        }
        vm_set_identity(vm, id->vm_id, id->token.len == 16 ? id->token.data : NULL);
        replay_map_init(&ls.map, vm->attrs);
        for (;;) {
                load_apply(vm, &ls, rec);
                records++;
                if (rec != &fast)
                        load_record_free(rec, flat_changes);
                r = load_next(rd, &fast, &fast_change, &rec);
                if (r <= 0)
                        break;
        }
        if (mc_journal_reader_tail(rd, &valid_end, &reason) > 0) {
                log_warning("Journal %s: %s; the %" PRIu64 " record(s) before it are kept and the tail is cut off",
                            name, reason, records);
                r = mc_journal_truncate_tail(fd, valid_end);
                if (r < 0)
                        log_error_errno(r, "Journal %s: cannot cut the bad tail", name);
                vm->stats.journal_errors++;
        }
        /* The file's bytes are no longer needed: free them before the map is built. */
        mc_journal_reader_free(rd);
        replay_map_finish(&ls.map);
        if (ls.got_ranges != ls.want_ranges) {
                /* Only damage inside the snapshot does this: what follows it was cut off. */
                log_error("Journal %s: its snapshot is incomplete (%" PRIu64 " of %" PRIu64 " private ranges): "
                          "VM %s's map lacks the rest", name, ls.got_ranges, ls.want_ranges, vm->name);
                vm->stats.journal_errors++;
        }

        /* Hand the fd to the journal thread's side: appends continue in this file. */
        {
                struct vm_journal *j = vm_journal_get(vm);

                if (j) {
                        j->jf->fd = TAKE_FD(fd);
                        j->since_snapshot = ls.since_snapshot;
                        /* A long journal is compacted now, on the journal thread (READY does not
                         * wait for it), so that the next start replays a snapshot, not it all. */
                        if (p->cfg.compact_records && j->since_snapshot >= p->cfg.compact_records) {
                                log_info("Journal %s: %" PRIu64 " records since its last snapshot; compacting it",
                                         name, j->since_snapshot);
                                queue_snapshot(p, vm, j);
                        }
                }
        }
        log_info("VM %s (%s, id %" PRIu64 ") restored from %s: %" PRIu64 " records, %" PRIu64 " private bytes, "
                 "history up to #%" PRIu64, vm->name, vm->uuid_str, vm->id, name, records,
                 mc_rangemap_bytes(vm->attrs, 0, UINT64_MAX, MC_ATTR_PRIVATE), vm->history.last_seq);
        return 1;
}

int persist_load(struct persist *p)
{
        _cleanup_close_ int dfd = -EBADF;
        struct dirent *de;
        DIR *dir;
        int n = 0;

        if (!persist_enabled(p))
                return 0;
        dfd = fcntl(p->dirfd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return log_error_errno(errno, "Cannot read the state directory %s", p->cfg.state_dir);
        dir = fdopendir(TAKE_FD(dfd));
        if (!dir)
                return log_error_errno(errno, "Cannot read the state directory %s", p->cfg.state_dir);
        while ((de = readdir(dir))) {
                size_t l = strlen(de->d_name);

                if (strstr(de->d_name, ".tmp.")) {
                        /* A compaction or creation a crash interrupted: the old file is intact. */
                        log_notice("Removing %s/%s left by an interrupted journal rewrite", p->cfg.state_dir, de->d_name);
                        (void) unlinkat(p->dirfd, de->d_name, 0);
                        continue;
                }
                if (strncmp(de->d_name, "vm-", 3) != 0 || l < 12 || strcmp(de->d_name + l - 8, ".journal") != 0)
                        continue;
                if (load_one(p, de->d_name) > 0)
                        n++;
        }
        closedir(dir);
        return n;
}

/* ------------------------------------------------------------------ setup */

int persist_new(struct daemon *d, const struct persist_config *cfg, struct persist **ret)
{
        struct persist *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return log_error_errno(-ENOMEM, "Out of memory");
        p->daemon = d;
        p->cfg = *cfg;
        p->dirfd = -EBADF;
        p->efd = -EBADF;
        LIST_INIT(&p->dirty);
        LIST_INIT(&p->postponed);
        LIST_INIT(&p->files);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        d->persist = p;

        r = sd_event_add_defer(d->event, &p->flush_source, persist_on_flush, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(p->flush_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(p->flush_source, "journal-flush");
        /* After every other event of the iteration: one flush per wake-up. */
        (void) sd_event_source_set_priority(p->flush_source, SD_EVENT_PRIORITY_IDLE);
        r = sd_event_add_time(d->event, &p->commit_timer, CLOCK_MONOTONIC, 0, 0, persist_on_commit_timer, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(p->commit_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(p->commit_timer, "journal-commit-interval");

        if (cfg->state_dir) {
                (void) mkdir(cfg->state_dir, 0700);
                p->dirfd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (p->dirfd < 0) {
                        r = log_error_errno(errno, "Cannot open the state directory %s", cfg->state_dir);
                        goto fail;
                }
                p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (p->efd < 0) {
                        r = negative_errno();
                        goto fail;
                }
                r = sd_event_add_io(d->event, &p->done_source, p->efd, EPOLLIN, persist_on_done, p);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_description(p->done_source, "journal-done");
                r = -pthread_create(&p->thread, NULL, persist_thread, p);
                if (r < 0)
                        goto fail;
                p->thread_started = true;
        }
        *ret = p;
        return 0;
fail:
        log_error_errno(r, "Cannot set up the conversion journal");
        persist_free(p);
        d->persist = NULL;
        return r;
}

struct persist *persist_free(struct persist *p)
{
        struct jfile *jf;

        if (!p)
                return NULL;
        /* Whatever is pending goes to disk (and its VMMs are told) before we stop. */
        persist_flush(p, true, true);
        if (p->thread_started) {
                pthread_mutex_lock(&p->lock);
                p->stopping = true;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
                pthread_join(p->thread, NULL);
        }
        persist_drain(p);
        while ((jf = LIST_FIRST(&p->files))) {
                LIST_REMOVE(jf, link);
                safe_close(jf->fd);
                free(jf);
        }
        sd_event_source_disable_unref(p->flush_source);
        sd_event_source_disable_unref(p->commit_timer);
        sd_event_source_disable_unref(p->done_source);
        safe_close(p->efd);
        safe_close(p->dirfd);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}
