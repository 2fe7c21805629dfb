/* Password checks on worker threads. Jobs go to the workers through a
   mutex-protected queue; finished jobs come back on a second list, and
   a byte on a pipe wakes the event loop, which calls each job's done()
   in its own thread. libevent itself is only ever used from the loop's
   thread, so it needs no locking of its own. */

#define _GNU_SOURCE /* pipe2() */

#include "pop3-retention-config.h"
#include "shim-crypt.h"
#include "shim-params.h"
#include "shim-passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#define CRYPT_WORKERS_MAX 16
#define CRYPT_ERROR_MAX 256

enum job_state {
	/* on pool->queue */
	JOB_QUEUED = 0,
	/* a worker has it, on no list */
	JOB_RUNNING,
	/* on pool->finished, waiting for the loop */
	JOB_FINISHED,
};

struct shim_crypt_job {
	struct shim_crypt_pool *pool;
	struct shim_crypt_job *prev, *next;
	enum job_state state;
	/* set by the loop's thread, under the pool's mutex */
	bool cancelled;
	char *stored;
	char *password;
	size_t password_size;
	shim_crypt_done_t *done;
	void *context;
	int result;
	char error[CRYPT_ERROR_MAX];
};

struct job_list {
	struct shim_crypt_job *head, *tail;
	unsigned int count;
};

struct shim_crypt_pool {
	struct event_base *base;
	struct event *notify_event;
	int notify_fds[2];

	pthread_mutex_t mutex;
	pthread_cond_t cond;
	/* under mutex */
	struct job_list queue, finished;
	bool stopping;

	pthread_t threads[CRYPT_WORKERS_MAX];
	unsigned int thread_count;
};

static void job_list_append(struct job_list *list, struct shim_crypt_job *job)
{
	job->next = NULL;
	job->prev = list->tail;
	if (list->tail != NULL)
		list->tail->next = job;
	else
		list->head = job;
	list->tail = job;
	list->count++;
}

static void job_list_remove(struct job_list *list, struct shim_crypt_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		list->head = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	else
		list->tail = job->prev;
	job->prev = job->next = NULL;
	list->count--;
}

static void job_wipe_password(struct shim_crypt_job *job)
{
	if (job->password == NULL)
		return;
	OPENSSL_cleanse(job->password, job->password_size);
	free(job->password);
	job->password = NULL;
}

static void job_free(struct shim_crypt_job **_job)
{
	struct shim_crypt_job *job = *_job;

	*_job = NULL;
	job_wipe_password(job);
	free(job->stored);
	free(job);
}

/* Free every job of list (the pool's mutex held, or no workers left). */
static void job_list_free(struct job_list *list)
{
	struct shim_crypt_job *job;

	while ((job = list->head) != NULL) {
		job_list_remove(list, job);
		job_free(&job);
	}
}

static void pool_notify(struct shim_crypt_pool *pool)
{
	static const char byte = 'x';
	ssize_t ret;

	/* non-blocking: a full pipe already has the loop's attention */
	do {
		ret = write(pool->notify_fds[1], &byte, 1);
	} while (ret < 0 && errno == EINTR);
}

static void worker_run(struct shim_crypt_pool *pool,
		       struct shim_crypt_job *job)
{
	bool notify;

	job->result = shim_passwd_verify(job->stored, job->password,
					 job->error, sizeof(job->error));
	job_wipe_password(job);

	pthread_mutex_lock(&pool->mutex);
	if (job->cancelled) {
		pthread_mutex_unlock(&pool->mutex);
		job_free(&job);
		return;
	}
	job->state = JOB_FINISHED;
	notify = pool->finished.count == 0;
	job_list_append(&pool->finished, job);
	pthread_mutex_unlock(&pool->mutex);
	if (notify)
		pool_notify(pool);
}

static void *worker_main(void *context)
{
	struct shim_crypt_pool *pool = context;
	struct shim_crypt_job *job;

	for (;;) {
		pthread_mutex_lock(&pool->mutex);
		while (!pool->stopping && pool->queue.head == NULL)
			pthread_cond_wait(&pool->cond, &pool->mutex);
		if (pool->stopping) {
			pthread_mutex_unlock(&pool->mutex);
			return NULL;
		}
		job = pool->queue.head;
		job_list_remove(&pool->queue, job);
		job->state = JOB_RUNNING;
		pthread_mutex_unlock(&pool->mutex);
		worker_run(pool, job);
	}
}

/* The loop's side of the pipe: every finished job, in order. */
static void pool_notify_callback(evutil_socket_t fd, short what,
				 void *context)
{
	struct shim_crypt_pool *pool = context;
	struct shim_crypt_job *job;
	struct job_list finished;
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&pool->mutex);
	finished = pool->finished;
	memset(&pool->finished, 0, sizeof(pool->finished));
	pthread_mutex_unlock(&pool->mutex);

	/* done() may cancel other jobs of this list: cancelled is read
	   just before each call (only this thread sets it now) */
	while ((job = finished.head) != NULL) {
		job_list_remove(&finished, job);
		if (!job->cancelled)
			job->done(job->result,
				  job->result < 0 ? job->error : NULL,
				  job->context);
		job_free(&job);
	}
}

static int pool_start_threads(struct shim_crypt_pool *pool,
			      unsigned int workers, char *error,
			      size_t error_size)
{
	sigset_t all, old;
	int ret = 0;

	/* signals are the loop's: workers never take one */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; pool->thread_count < workers; pool->thread_count++) {
		ret = pthread_create(&pool->threads[pool->thread_count], NULL,
				     worker_main, pool);
		if (ret != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		snprintf(error, error_size, "pthread_create() failed: %s",
			 strerror(ret));
		return -1;
	}
	return 0;
}

static int pool_init_notify(struct shim_crypt_pool *pool, char *error,
			    size_t error_size)
{
	if (pipe2(pool->notify_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(error, error_size, "pipe2() failed: %s",
			 strerror(errno));
		return -1;
	}
	pool->notify_event = event_new(pool->base, pool->notify_fds[0],
				       EV_READ | EV_PERSIST,
				       pool_notify_callback, pool);
	if (pool->notify_event == NULL ||
	    event_add(pool->notify_event, NULL) < 0) {
		snprintf(error, error_size, "event_new() failed");
		return -1;
	}
	return 0;
}

struct shim_crypt_pool *shim_crypt_pool_create(struct event_base *base,
					       unsigned int workers,
					       char *error,
					       size_t error_size)
{
	struct shim_crypt_pool *pool;

	if (workers < 1 || workers > CRYPT_WORKERS_MAX) {
		snprintf(error, error_size,
			 "crypt workers: %u is not from 1 to %d", workers,
			 CRYPT_WORKERS_MAX);
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	pool->base = base;
	pool->notify_fds[0] = pool->notify_fds[1] = -1;
	/* OpenSSL's one-time set-up (of the digest that checks use) here,
	   before there is any worker to race with */
	(void)shim_passwd_verify("{PLAIN}x", "x", error, error_size);
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->cond, NULL);
	if (pool_init_notify(pool, error, error_size) < 0 ||
	    pool_start_threads(pool, workers, error, error_size) < 0) {
		shim_crypt_pool_destroy(&pool);
		return NULL;
	}
	return pool;
}

void shim_crypt_pool_destroy(struct shim_crypt_pool **_pool)
{
	struct shim_crypt_pool *pool = *_pool;
	unsigned int i;

	if (pool == NULL)
		return;
	*_pool = NULL;

	pthread_mutex_lock(&pool->mutex);
	pool->stopping = true;
	job_list_free(&pool->queue);
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->mutex);
	/* a running job finishes onto pool->finished (or frees itself if
	   it was cancelled) */
	for (i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	job_list_free(&pool->finished);

	if (pool->notify_event != NULL)
		event_free(pool->notify_event);
	for (i = 0; i < 2; i++) {
		if (pool->notify_fds[i] != -1)
			close(pool->notify_fds[i]);
	}
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->mutex);
	free(pool);
}

static struct shim_crypt_job *job_new(const char *stored,
				      const char *password,
				      shim_crypt_done_t *done, void *context)
{
	struct shim_crypt_job *job;

	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return NULL;
	job->password_size = strlen(password) + 1;
	job->stored = strdup(stored);
	job->password = malloc(job->password_size);
	if (job->stored == NULL || job->password == NULL) {
		free(job->stored);
		free(job->password);
		free(job);
		return NULL;
	}
	memcpy(job->password, password, job->password_size);
	job->done = done;
	job->context = context;
	return job;
}

struct shim_crypt_job *shim_crypt_pool_verify(struct shim_crypt_pool *pool,
					      const char *stored,
					      const char *password,
					      shim_crypt_done_t *done,
					      void *context)
{
	struct shim_crypt_job *job;

	job = job_new(stored, password, done, context);
	if (job == NULL)
		return NULL;
	job->pool = pool;
	pthread_mutex_lock(&pool->mutex);
	if (pool->queue.count >= SHIM_CRYPT_QUEUE_MAX || pool->stopping) {
		pthread_mutex_unlock(&pool->mutex);
		job_free(&job);
		return NULL;
	}
	job->state = JOB_QUEUED;
	job_list_append(&pool->queue, job);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->mutex);
	return job;
}

void shim_crypt_job_cancel(struct shim_crypt_job *job)
{
	struct shim_crypt_pool *pool = job->pool;
	bool free_now = false;

	pthread_mutex_lock(&pool->mutex);
	switch (job->state) {
	case JOB_QUEUED:
		job_list_remove(&pool->queue, job);
		free_now = true;
		break;
	case JOB_RUNNING:
		/* the worker frees it when it is done */
	case JOB_FINISHED:
		/* the loop frees it, after the other finished jobs */
		job->cancelled = true;
		break;
	}
	pthread_mutex_unlock(&pool->mutex);
	if (free_now)
		job_free(&job);
}
