/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * discard.c - worker threads that punch holes; see discard.h.
 *
 * Two lists under one mutex: `queue` (submitted, FIFO) and `done`
 * (finished, waiting for the loop). Workers sleep on a condition variable;
 * the loop is woken through an eventfd, drains `done` and runs callbacks.
 *
 * Small jobs stay on the loop: a discard of at most DISCARD_INLINE_MAX is
 * queued on the loop's own list (up to DISCARD_INLINE_BUDGET bytes per loop
 * iteration) and punched by a defer source at the end of the iteration,
 * runs of adjacent ones together. A 4 KiB punch costs a few microseconds;
 * handing it to a worker and its completion back cost two thread wake-ups
 * and an eventfd, more than the punch (measured: memconvd's CPU per asked
 * 4 KiB conversion 50-60 -> 38-40 us). Larger jobs, and small ones past
 * the budget, go to the workers.
 *
 * Batching, because a conversion storm submits many small jobs: a worker
 * takes up to DISCARD_BATCH queued jobs at once, punches runs of them that
 * are contiguous in one file with a single fallocate() (a guest converting
 * a buffer page by page), and posts them back together; the eventfd is
 * written only when `done` was empty, since the loop drains all of it.
 * Every job still gets its own result: that of the punch that covered it.
 * Likewise a worker is woken once per event-loop iteration (a defer
 * source), not once per job submitted in it.
 * Nothing but the lists and counters is shared with the workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "discard.h"
#include "macro.h"
#include "vm.h"

struct discarder {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct discard_job *queue_head, *queue_tail;
        struct discard_job *done_head, *done_tail;
        bool stopping;
        pthread_t *threads;
        unsigned n_threads;
        int efd;                   /* eventfd, owned */
        sd_event_source *source;
        sd_event_source *kick;     /* defer: wake a worker once per loop iteration */
        /* Small discards punched on the loop itself (loop thread only) */
        struct discard_job *inline_head, *inline_tail;
        uint64_t inline_bytes;     /* queued there in this loop iteration */
        sd_event_source *inline_run; /* defer: punch them at the end of the iteration */
        unsigned outstanding;      /* handed to the workers, completion not yet run (loop thread only) */
        discard_done_fn done;
        void *userdata;
};

/* Most jobs a worker takes at once. */
#define DISCARD_BATCH 64

/* Discards the loop punches itself: each at most this long, together at most
 * DISCARD_INLINE_BUDGET per loop iteration (some tens of microseconds). */
#define DISCARD_INLINE_MAX (64ULL * 1024ULL)
#define DISCARD_INLINE_BUDGET (256ULL * 1024ULL)

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/**
 * job_append() - append @job to a singly linked FIFO
 */
static void job_append(struct discard_job **head, struct discard_job **tail, struct discard_job *job)
{
        job->next = NULL;
        if (*tail)
                (*tail)->next = job;
        else
                *head = job;
        *tail = job;
}

/**
 * discard_punch_batch() - punch @n jobs, one fallocate() per run of jobs
 * contiguous in one file; each job gets the result of the punch covering it
 */
static void discard_punch_batch(struct discarder *dc, struct discard_job **jobs, size_t n)
{
        for (size_t i = 0; i < n;) {
                struct discard_job *first = jobs[i];
                uint64_t start = now_usec(), end_off = first->offset + first->length;
                size_t k = i + 1;
                int error = 0;

                if (dc->stopping || __atomic_load_n(&first->region->dead, __ATOMIC_ACQUIRE)) {
                        first->error = -ECANCELED;
                        first->start_usec = first->end_usec = start;
                        i++;
                        continue;
                }
                while (k < n && jobs[k]->fd == first->fd && jobs[k]->offset == end_off &&
                       !__atomic_load_n(&jobs[k]->region->dead, __ATOMIC_ACQUIRE)) {
                        end_off += jobs[k]->length;
                        k++;
                }
                if (fallocate(first->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) first->offset,
                              (off_t) (end_off - first->offset)) < 0)
                        error = negative_errno();
                for (; i < k; i++) {
                        jobs[i]->error = error;
                        jobs[i]->start_usec = start;
                        jobs[i]->end_usec = now_usec();
                }
        }
}

/**
 * discard_worker() - thread body: pop, punch, post back
 * @arg: the discarder
 * Return: NULL
 */
static void *discard_worker(void *arg)
{
        struct discarder *dc = arg;

        pthread_mutex_lock(&dc->lock);
        for (;;) {
                struct discard_job *jobs[DISCARD_BATCH];
                uint64_t one = 1;
                bool was_empty;
                size_t n = 0;

                while (!dc->queue_head && !dc->stopping)
                        pthread_cond_wait(&dc->cond, &dc->lock);
                if (!dc->queue_head)
                        break;
                while (dc->queue_head && n < DISCARD_BATCH) {
                        jobs[n++] = dc->queue_head;
                        dc->queue_head = dc->queue_head->next;
                }
                if (!dc->queue_head)
                        dc->queue_tail = NULL;
                pthread_mutex_unlock(&dc->lock);

                discard_punch_batch(dc, jobs, n);

                pthread_mutex_lock(&dc->lock);
                was_empty = !dc->done_head;
                for (size_t i = 0; i < n; i++)
                        job_append(&dc->done_head, &dc->done_tail, jobs[i]);
                if (was_empty)
                        (void) !write(dc->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&dc->lock);
        return NULL;
}

/**
 * discarder_drain() - run the completion callback for every finished job
 */
static void discarder_drain(struct discarder *dc)
{
        struct discard_job *list;

        pthread_mutex_lock(&dc->lock);
        list = dc->done_head;
        dc->done_head = dc->done_tail = NULL;
        pthread_mutex_unlock(&dc->lock);

        while (list) {
                struct discard_job *job = list;

                list = job->next;
                /* Small jobs cancelled by discarder_free() come this way too, uncounted. */
                if (dc->outstanding > 0)
                        dc->outstanding--;
                dc->done(job, dc->userdata);
        }
}

static int discarder_on_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct discarder *dc = userdata;
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        discarder_drain(dc);
        return 0;
}

/**
 * discarder_on_kick() - wake a worker for the jobs queued in this loop iteration
 */
static int discarder_on_kick(sd_event_source *s, void *userdata)
{
        struct discarder *dc = userdata;

        pthread_mutex_lock(&dc->lock);
        pthread_cond_signal(&dc->cond);
        pthread_mutex_unlock(&dc->lock);
        return 0;
}

/**
 * discarder_on_inline() - punch the small discards queued in this loop
 * iteration, runs of adjacent ones together, and complete them
 */
static int discarder_on_inline(sd_event_source *s, void *userdata)
{
        struct discarder *dc = userdata;
        struct discard_job *list = dc->inline_head;

        /* Taken whole first: a completion callback may submit again, onto a fresh list (and a
         * fresh budget), which the next pass punches. */
        dc->inline_head = dc->inline_tail = NULL;
        dc->inline_bytes = 0;
        while (list) {
                struct discard_job *jobs[DISCARD_BATCH];
                size_t n = 0;

                while (list && n < DISCARD_BATCH) {
                        jobs[n++] = list;
                        list = list->next;
                }
                discard_punch_batch(dc, jobs, n);
                for (size_t i = 0; i < n; i++)
                        dc->done(jobs[i], dc->userdata);
        }
        return 0;
}

int discarder_new(sd_event *event, unsigned threads, discard_done_fn done, void *userdata,
                  struct discarder **ret)
{
        struct discarder *dc;
        int r;

        if (threads == 0 || !done)
                return -EINVAL;
        dc = calloc(1, sizeof(*dc));
        if (!dc)
                return -ENOMEM;
        pthread_mutex_init(&dc->lock, NULL);
        pthread_cond_init(&dc->cond, NULL);
        dc->done = done;
        dc->userdata = userdata;
        dc->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (dc->efd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(event, &dc->source, dc->efd, EPOLLIN, discarder_on_event, dc);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(dc->source, "discard-completions");
        r = sd_event_add_defer(event, &dc->kick, discarder_on_kick, dc);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(dc->kick, SD_EVENT_OFF);
        (void) sd_event_source_set_description(dc->kick, "discard-kick");
        r = sd_event_add_defer(event, &dc->inline_run, discarder_on_inline, dc);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(dc->inline_run, SD_EVENT_OFF);
        (void) sd_event_source_set_description(dc->inline_run, "discard-inline");
        dc->threads = calloc(threads, sizeof(pthread_t));
        if (!dc->threads) {
                r = -ENOMEM;
                goto fail;
        }
        for (; dc->n_threads < threads; dc->n_threads++) {
                r = -pthread_create(&dc->threads[dc->n_threads], NULL, discard_worker, dc);
                if (r < 0)
                        goto fail;
        }
        *ret = dc;
        return 0;
fail:
        discarder_free(dc);
        return r;
}

void discarder_submit(struct discarder *dc, struct discard_job *job)
{
        if (job->length <= DISCARD_INLINE_MAX && dc->inline_bytes + job->length <= DISCARD_INLINE_BUDGET &&
            sd_event_source_set_enabled(dc->inline_run, SD_EVENT_ONESHOT) >= 0) {
                dc->inline_bytes += job->length;
                job_append(&dc->inline_head, &dc->inline_tail, job);
                return;
        }
        dc->outstanding++;
        pthread_mutex_lock(&dc->lock);
        job_append(&dc->queue_head, &dc->queue_tail, job);
        pthread_mutex_unlock(&dc->lock);
        /* The worker is woken at the end of this loop iteration, for every job queued in it. */
        if (sd_event_source_set_enabled(dc->kick, SD_EVENT_ONESHOT) < 0)
                (void) discarder_on_kick(dc->kick, dc);
}

bool discarder_busy(const struct discarder *dc)
{
        return dc && dc->outstanding > 0;
}

/* jobs_cancel() - move every job of the FIFO @head/@tail to the done list, as -ECANCELED */
static void jobs_cancel(struct discarder *dc, struct discard_job **head, struct discard_job **tail)
{
        while (*head) {
                struct discard_job *job = *head;

                *head = job->next;
                job->error = -ECANCELED;
                job_append(&dc->done_head, &dc->done_tail, job);
        }
        *tail = NULL;
}

struct discarder *discarder_free(struct discarder *dc)
{
        if (!dc)
                return NULL;
        pthread_mutex_lock(&dc->lock);
        dc->stopping = true;
        pthread_cond_broadcast(&dc->cond);
        pthread_mutex_unlock(&dc->lock);
        for (unsigned i = 0; i < dc->n_threads; i++)
                pthread_join(dc->threads[i], NULL);
        /* Workers are gone: whatever is still queued, on the loop's list or theirs, is cancelled. */
        jobs_cancel(dc, &dc->inline_head, &dc->inline_tail);
        jobs_cancel(dc, &dc->queue_head, &dc->queue_tail);
        discarder_drain(dc);
        sd_event_source_disable_unref(dc->kick);
        sd_event_source_disable_unref(dc->inline_run);
        sd_event_source_disable_unref(dc->source);
        safe_close(dc->efd);
        free(dc->threads);
        pthread_cond_destroy(&dc->cond);
        pthread_mutex_destroy(&dc->lock);
        free(dc);
        return NULL;
}
