/* Delivery workers on libevent (see the header). */

#include "pop3-retention-config.h"
#include "webhook-runner.h"
#include "cpu-load.h"

#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One registration of an fd with libevent. A registration whose mask
   changes or that is removed is not freed at once: the engine does that
   from inside the callback of the very event concerned (libcurl often
   switches a socket from write to read while handling it), so it goes to
   the worker's graveyard, which is emptied at the start of the next
   callback, when no dead registration can be running. */
struct runner_fd {
	int fd;
	unsigned int events;
	struct event *ev;
	struct worker *worker;
	struct runner_fd *next;
};

struct worker {
	struct webhook_runner *runner;
	unsigned int index;
	struct event_base *base;
	struct webhook_delivery *engine;
	struct event *timer;
	struct event *wake;
	int wake_fd;
	atomic_bool wake_pending;
	atomic_bool enable_requested;
	atomic_bool stop;
	pthread_t thread;
	bool thread_started;
	struct runner_fd *fds;
	struct runner_fd *graveyard;
	/* batches the host's wake-ups for reports, see queue_push() */
	struct event *notify_timer;
	bool notify_timer_armed;
	/* the engine's counters after its last callback; runner->lock */
	struct webhook_delivery_stats stats;
};

enum queued_kind {
	QUEUED_LOG = 0,
	QUEUED_REPORT,
};

struct queued {
	enum queued_kind kind;
	enum webhook_log_level level;
	/* the log line, or the report's webhook-id */
	char *text;
	char *error;
	struct webhook_delivery_report report;
	struct queued *next;
};

struct webhook_runner {
	void *context;
	void (*log)(void *context, enum webhook_log_level level,
		    const char *line);
	void (*report)(void *context,
		       const struct webhook_delivery_report *report);
	unsigned int worker_count;
	unsigned int nice;
	struct worker *workers;
	bool started;
	/* a 410 seen by one engine disables them all */
	atomic_bool disabled;
	/* deferral under CPU load (cpu-load.h): the engines take events
	   this late; sampled by a thread of its own at the process's
	   priority (a sampler at the workers' niceness would be starved by
	   the very load it is there to see, and notice it late) */
	int64_t defer_max_ms;
	atomic_llong defer_ms;
	int stat_fd;
	pthread_t load_thread;
	bool load_thread_started;
	int load_stop_fd;		/* eventfd: the sampler stops */
	struct cpu_load_sample load_prev;
	bool load_have_prev, load_busy, load_failed;
	/* kicks held back while deferring, passed on by the load timer */
	atomic_bool kick_held;

	pthread_mutex_t lock;
	/* workers that have set their niceness, under lock; start() waits
	   for all of them, so that the niceness holds once it returns */
	pthread_cond_t ready_cond;
	unsigned int ready_count;
	/* the queue for the host, under lock */
	struct queued *head, *tail;
	unsigned int reports_queued;
	unsigned long long reports_dropped;
	bool notify_pending;
	int notify_fd;

	char error[WEBHOOK_RUNNER_ERROR_MAX];
};

/* ---- the queue to the host (any thread) ---- */

/* The worker whose thread this is; NULL in the host's thread. */
static __thread struct worker *current_worker;

/* eventfd reads and writes: a write only fails when the counter would
   overflow, which pending wake-ups cannot do, and a read only when the
   counter is already zero (EAGAIN): both are harmless. */
static void eventfd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* see above */
	}
}

static void eventfd_clear(int fd)
{
	uint64_t value;

	if (read(fd, &value, sizeof(value)) < 0) {
		/* see above */
	}
}

/* Queue q for the host. Log lines of level info and above wake the host
   at once. Reports and debug lines from a worker's own thread wake it
   at most every WEBHOOK_RUNNER_NOTIFY_MSECS: there is one per delivery,
   and waking the host's thread for each would cost it a context switch
   per event. */
static void queue_push(struct webhook_runner *r, struct worker *w,
		       struct queued *q)
{
	bool wake = false, urgent;

	pthread_mutex_lock(&r->lock);
	if (q->kind == QUEUED_REPORT &&
	    r->reports_queued >= WEBHOOK_RUNNER_REPORTS_MAX) {
		r->reports_dropped++;
		pthread_mutex_unlock(&r->lock);
		free(q->text);
		free(q->error);
		free(q);
		return;
	}
	if (q->kind == QUEUED_REPORT)
		r->reports_queued++;
	if (r->tail == NULL)
		r->head = q;
	else
		r->tail->next = q;
	r->tail = q;
	urgent = (q->kind == QUEUED_LOG && q->level >= WEBHOOK_LOG_INFO) ||
		w == NULL || current_worker != w;
	if (!r->notify_pending && urgent) {
		r->notify_pending = true;
		wake = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (wake)
		eventfd_signal(r->notify_fd);
	else if (!urgent && !w->notify_timer_armed) {
		/* this worker's thread: its own base */
		struct timeval tv = {
			.tv_sec = 0,
			.tv_usec = WEBHOOK_RUNNER_NOTIFY_MSECS * 1000
		};

		w->notify_timer_armed = true;
		(void)evtimer_add(w->notify_timer, &tv);
	}
}

static void notify_timer_cb(evutil_socket_t fd, short what, void *context)
{
	struct worker *w = context;
	struct webhook_runner *r = w->runner;
	bool wake = false;

	(void)fd;
	(void)what;
	w->notify_timer_armed = false;
	pthread_mutex_lock(&r->lock);
	if (r->head != NULL && !r->notify_pending) {
		r->notify_pending = true;
		wake = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (wake)
		eventfd_signal(r->notify_fd);
}

static void __attribute__((format(printf, 3, 4)))
runner_log(struct webhook_runner *r, enum webhook_log_level level,
	   const char *fmt, ...);

static void queue_log(struct webhook_runner *r, struct worker *w,
		      enum webhook_log_level level, const char *line)
{
	struct queued *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return;
	q->kind = QUEUED_LOG;
	q->level = level;
	q->text = strdup(line);
	if (q->text == NULL) {
		free(q);
		return;
	}
	queue_push(r, w, q);
}

static void runner_log(struct webhook_runner *r, enum webhook_log_level level,
		       const char *fmt, ...)
{
	va_list args;
	char line[512];

	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	queue_log(r, NULL, level, line);
}

/* engine callbacks: in a worker thread */
static void worker_log(void *context, enum webhook_log_level level,
		       const char *line)
{
	struct worker *w = context;

	queue_log(w->runner, w, level, line);
}

static void worker_report(void *context,
			  const struct webhook_delivery_report *report)
{
	struct worker *w = context;
	struct queued *q;

	if (w->runner->report == NULL)
		return;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return;
	q->kind = QUEUED_REPORT;
	q->report = *report;
	q->text = strdup(report->webhook_id);
	q->error = report->error == NULL ? NULL : strdup(report->error);
	if (q->text == NULL || (report->error != NULL && q->error == NULL)) {
		free(q->text);
		free(q->error);
		free(q);
		return;
	}
	queue_push(w->runner, w, q);
}

int webhook_runner_notify_fd(const struct webhook_runner *runner)
{
	return runner->notify_fd;
}

void webhook_runner_drain(struct webhook_runner *r)
{
	struct queued *q, *next;
	unsigned long long dropped;

	eventfd_clear(r->notify_fd);
	pthread_mutex_lock(&r->lock);
	q = r->head;
	r->head = r->tail = NULL;
	r->reports_queued = 0;
	dropped = r->reports_dropped;
	r->reports_dropped = 0;
	r->notify_pending = false;
	pthread_mutex_unlock(&r->lock);

	for (; q != NULL; q = next) {
		next = q->next;
		if (q->kind == QUEUED_LOG) {
			if (r->log != NULL)
				r->log(r->context, q->level, q->text);
		} else {
			q->report.webhook_id = q->text;
			q->report.error = q->error;
			r->report(r->context, &q->report);
		}
		free(q->text);
		free(q->error);
		free(q);
	}
	if (dropped > 0 && r->log != NULL) {
		char line[128];

		snprintf(line, sizeof(line), "%llu delivery reports were not "
			 "passed on (the queue to the service was full)",
			 dropped);
		r->log(r->context, WEBHOOK_LOG_WARNING, line);
	}
}

/* ---- the engine's loop on libevent (worker thread; before the thread
   starts and after it ended, the host's) ---- */

static void graveyard_empty(struct worker *w)
{
	struct runner_fd *f;

	while ((f = w->graveyard) != NULL) {
		w->graveyard = f->next;
		event_free(f->ev);
		free(f);
	}
}

static void stats_publish(struct worker *w)
{
	struct webhook_delivery_stats stats;

	webhook_delivery_get_stats(w->engine, &stats);
	pthread_mutex_lock(&w->runner->lock);
	w->stats = stats;
	pthread_mutex_unlock(&w->runner->lock);
}

static void fd_cb(evutil_socket_t fd, short what, void *context)
{
	struct runner_fd *f = context;
	struct worker *w = f->worker;
	unsigned int events = 0;

	graveyard_empty(w);
	if ((what & EV_READ) != 0)
		events |= WEBHOOK_IO_READ;
	if ((what & EV_WRITE) != 0)
		events |= WEBHOOK_IO_WRITE;
	webhook_delivery_fd_ready(w->engine, (int)fd, events);
	stats_publish(w);
}

static void timer_cb(evutil_socket_t fd, short what, void *context)
{
	struct worker *w = context;

	(void)fd;
	(void)what;
	graveyard_empty(w);
	webhook_delivery_timer_expired(w->engine);
	stats_publish(w);
}

static void wake_cb(evutil_socket_t fd, short what, void *context)
{
	struct worker *w = context;

	(void)what;
	graveyard_empty(w);
	eventfd_clear((int)fd);
	atomic_store(&w->wake_pending, false);
	if (atomic_load(&w->stop)) {
		event_base_loopbreak(w->base);
		return;
	}
	if (atomic_exchange(&w->enable_requested, false))
		webhook_delivery_enable(w->engine);
	webhook_delivery_kick(w->engine);
	stats_publish(w);
}

static void worker_wake(struct worker *w);

/* Every CPU_LOAD_SAMPLE_MSECS (the sampler thread): defer delivery
   while the CPUs are busy with other work, resume when they calm
   down. */
static void load_sample(struct webhook_runner *r)
{
	struct cpu_load_sample cur;
	unsigned int i;
	bool busy;

	if (cpu_load_sample(r->stat_fd, &cur) < 0) {
		if (!r->load_failed) {
			r->load_failed = true;
			runner_log(r, WEBHOOK_LOG_WARNING, "webhook delivery: "
				   "cannot read the CPU load (/proc/stat): %s; "
				   "delivery is never deferred",
				   strerror(errno));
		}
		if (r->load_busy) {
			r->load_busy = false;
			atomic_store(&r->defer_ms, 0);
			for (i = 0; i < r->worker_count; i++)
				worker_wake(&r->workers[i]);
		}
		return;
	}
	if (r->load_have_prev) {
		busy = cpu_load_busy(&r->load_prev, &cur, r->load_busy);
		if (busy != r->load_busy) {
			r->load_busy = busy;
			atomic_store(&r->defer_ms, busy ? r->defer_max_ms : 0);
			runner_log(r, WEBHOOK_LOG_DEBUG, busy ?
				   "webhook delivery deferred: the CPUs are "
				   "busy with other work" :
				   "webhook delivery resumed: the CPUs are "
				   "no longer busy");
			if (!busy) {
				for (i = 0; i < r->worker_count; i++)
					worker_wake(&r->workers[i]);
			}
		}
	}
	r->load_prev = cur;
	r->load_have_prev = true;
	if (r->load_busy && atomic_exchange(&r->kick_held, false)) {
		/* new events: the engines arm their timers for the end of
		   the deferral (at most one wake-up per sample) */
		for (i = 0; i < r->worker_count; i++)
			worker_wake(&r->workers[i]);
	}
}

static void *load_thread_main(void *context)
{
	struct webhook_runner *r = context;
	struct pollfd pfd = { .fd = r->load_stop_fd, .events = POLLIN };
	unsigned int i;
	int ret;

	for (;;) {
		ret = poll(&pfd, 1, CPU_LOAD_SAMPLE_MSECS);
		if (ret > 0)
			break;
		if (ret < 0 && errno != EINTR) {
			runner_log(r, WEBHOOK_LOG_ERROR, "webhook delivery: "
				   "the CPU load sampler failed: poll(): %s; "
				   "delivery is no longer deferred",
				   strerror(errno));
			atomic_store(&r->defer_ms, 0);
			for (i = 0; i < r->worker_count; i++)
				worker_wake(&r->workers[i]);
			break;
		}
		if (ret == 0)
			load_sample(r);
	}
	return NULL;
}

static int loop_fd_watch(void *context, int fd, unsigned int events)
{
	struct worker *w = context;
	struct runner_fd **fp, *f;
	short what = EV_PERSIST;

	for (fp = &w->fds; *fp != NULL; fp = &(*fp)->next) {
		if ((*fp)->fd == fd)
			break;
	}
	f = *fp;
	if (f != NULL && f->events == events)
		return 0;
	if (f != NULL) {
		/* unlink into the graveyard; see struct runner_fd */
		*fp = f->next;
		event_del(f->ev);
		f->next = w->graveyard;
		w->graveyard = f;
	}
	if (events == 0)
		return 0;

	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	if ((events & WEBHOOK_IO_READ) != 0)
		what |= EV_READ;
	if ((events & WEBHOOK_IO_WRITE) != 0)
		what |= EV_WRITE;
	f->fd = fd;
	f->events = events;
	f->worker = w;
	f->ev = event_new(w->base, fd, what, fd_cb, f);
	if (f->ev == NULL || event_add(f->ev, NULL) < 0) {
		if (f->ev != NULL)
			event_free(f->ev);
		free(f);
		return -1;
	}
	f->next = w->fds;
	w->fds = f;
	return 0;
}

static int loop_timer_set(void *context, long msecs)
{
	struct worker *w = context;
	struct timeval tv;

	if (msecs < 0)
		return event_del(w->timer) < 0 ? -1 : 0;
	tv.tv_sec = msecs / 1000;
	tv.tv_usec = (msecs % 1000) * 1000;
	/* 0 runs from the loop, not from here: libevent only calls back
	   from its dispatch */
	return evtimer_add(w->timer, &tv) < 0 ? -1 : 0;
}

/* ---- threads ---- */

static void *worker_main(void *context)
{
	struct worker *w = context;
	struct webhook_runner *r = w->runner;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int prio, ret;

	current_worker = w;
	if (r->nice > 0) {
		/* Linux: the niceness of this thread only; added to the
		   process's, at most 19 */
		errno = 0;
		prio = getpriority(PRIO_PROCESS, (id_t)tid);
		if (errno == 0 && prio < 19) {
			prio = prio + (int)r->nice > 19 ? 19 :
				prio + (int)r->nice;
			if (setpriority(PRIO_PROCESS, (id_t)tid, prio) < 0) {
				runner_log(r, WEBHOOK_LOG_WARNING, "delivery "
					   "worker %u: setpriority(%d) failed: "
					   "%s", w->index, prio,
					   strerror(errno));
			}
		}
	}
	pthread_mutex_lock(&r->lock);
	r->ready_count++;
	pthread_cond_broadcast(&r->ready_cond);
	pthread_mutex_unlock(&r->lock);
	/* one turn at a time: the engine writes the outcomes of all the
	   responses of a turn with one write() per segment */
	for (;;) {
		ret = event_base_loop(w->base, EVLOOP_ONCE);
		webhook_delivery_turn_end(w->engine);
		if (ret < 0) {
			runner_log(r, WEBHOOK_LOG_ERROR, "delivery worker %u: "
				   "the event loop failed", w->index);
			break;
		}
		if (ret > 0 || event_base_got_break(w->base) ||
		    event_base_got_exit(w->base))
			break;
	}
	return NULL;
}

static void worker_wake(struct worker *w)
{
	if (!atomic_exchange(&w->wake_pending, true))
		eventfd_signal(w->wake_fd);
}

/* libcurl moves a socket between read and write interest around every
   request; with the changelist, the del/add pairs of one loop iteration
   become one epoll_ctl() (libcurl never dup()s its sockets, the case the
   changelist gets wrong). */
static struct event_base *base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/* ---- the host's API ---- */

struct webhook_runner *
webhook_runner_create(const struct webhook_runner_config *config)
{
	struct webhook_delivery_config dconfig;
	struct webhook_runner *r;
	unsigned int i, workers, per_worker, total;

	workers = config->workers == 0 ? 1 : config->workers;
	if (workers > WEBHOOK_RUNNER_WORKERS_MAX)
		workers = WEBHOOK_RUNNER_WORKERS_MAX;
	total = config->delivery.max_in_flight == 0 ?
		WEBHOOK_DELIVERY_DEFAULT_IN_FLIGHT :
		config->delivery.max_in_flight;
	if (total < workers)
		workers = total;
	per_worker = (total + workers - 1) / workers;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->context = config->delivery.context;
	r->log = config->delivery.log;
	r->report = config->delivery.report;
	r->nice = config->nice > 19 ? 19 : config->nice;
	atomic_init(&r->disabled, false);
	atomic_init(&r->defer_ms, 0);
	atomic_init(&r->kick_held, false);
	r->defer_max_ms = config->defer_max_ms < 0 ? 0 : config->defer_max_ms;
	r->stat_fd = -1;
	r->load_stop_fd = -1;
	r->notify_fd = -1;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		return NULL;
	}
	if (pthread_cond_init(&r->ready_cond, NULL) != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	r->workers = calloc(workers, sizeof(*r->workers));
	if (r->workers == NULL) {
		pthread_cond_destroy(&r->ready_cond);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	r->worker_count = workers;
	for (i = 0; i < workers; i++)
		r->workers[i].wake_fd = -1;
	r->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->notify_fd == -1)
		goto fail;

	for (i = 0; i < workers; i++) {
		struct worker *w = &r->workers[i];

		w->runner = r;
		w->index = i;
		w->base = base_new();
		w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->base == NULL || w->wake_fd == -1)
			goto fail;
		w->timer = evtimer_new(w->base, timer_cb, w);
		w->notify_timer = evtimer_new(w->base, notify_timer_cb, w);
		w->wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST,
				    wake_cb, w);
		if (w->timer == NULL || w->wake == NULL ||
		    w->notify_timer == NULL ||
		    event_add(w->wake, NULL) < 0)
			goto fail;

		dconfig = config->delivery;
		dconfig.loop.context = w;
		dconfig.loop.fd_watch = loop_fd_watch;
		dconfig.loop.timer_set = loop_timer_set;
		dconfig.context = w;
		dconfig.log = worker_log;
		dconfig.report = worker_report;
		dconfig.random = NULL;
		dconfig.max_in_flight = per_worker;
		dconfig.shared_disabled = &r->disabled;
		dconfig.defer_ms = &r->defer_ms;
		dconfig.turn_end = true;
		w->engine = webhook_delivery_create(&dconfig);
		if (w->engine == NULL)
			goto fail;
	}
	if (r->defer_max_ms > 0) {
		/* a missing /proc/stat is logged by the first sample */
		r->stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
		r->load_stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->load_stop_fd < 0)
			goto fail;
	}
	return r;
fail:
	webhook_runner_destroy(&r);
	return NULL;
}

const char *webhook_runner_error(const struct webhook_runner *runner)
{
	return runner->error;
}

int webhook_runner_start(struct webhook_runner *r)
{
	sigset_t all, old;
	unsigned int i;
	int err = 0;

	/* engines first, in this thread: a bad URL or secret stops
	   everything before any thread runs */
	for (i = 0; i < r->worker_count; i++) {
		if (webhook_delivery_start(r->workers[i].engine) < 0) {
			snprintf(r->error, sizeof(r->error), "%s",
				 webhook_delivery_error(r->workers[i].engine));
			return -1;
		}
	}
	/* The workers block every signal (they inherit the mask): the
	   host's handlers run in the host's thread only. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < r->worker_count; i++) {
		struct worker *w = &r->workers[i];

		err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err != 0) {
			snprintf(r->error, sizeof(r->error),
				 "pthread_create() failed: %s",
				 strerror(err));
			break;
		}
		w->thread_started = true;
	}
	if (err == 0 && r->load_stop_fd >= 0) {
		err = pthread_create(&r->load_thread, NULL, load_thread_main,
				     r);
		if (err != 0) {
			snprintf(r->error, sizeof(r->error),
				 "pthread_create() failed: %s",
				 strerror(err));
		} else {
			r->load_thread_started = true;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&r->lock);
	while (r->ready_count < i)
		pthread_cond_wait(&r->ready_cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (err != 0)
		return -1;
	r->started = true;
	return 0;
}

void webhook_runner_destroy(struct webhook_runner **_runner)
{
	struct webhook_runner *r = *_runner;
	struct runner_fd *f;
	unsigned int i;

	if (r == NULL)
		return;
	*_runner = NULL;
	/* the sampler first: it wakes the workers */
	if (r->load_thread_started) {
		eventfd_signal(r->load_stop_fd);
		(void)pthread_join(r->load_thread, NULL);
		r->load_thread_started = false;
	}
	for (i = 0; i < r->worker_count; i++) {
		struct worker *w = &r->workers[i];

		if (!w->thread_started)
			continue;
		atomic_store(&w->stop, true);
		atomic_store(&w->wake_pending, false);
		worker_wake(w);
	}
	for (i = 0; i < r->worker_count; i++) {
		struct worker *w = &r->workers[i];

		if (w->thread_started)
			(void)pthread_join(w->thread, NULL);
		w->thread_started = false;
	}
	/* the threads are gone: the engines' loops are this thread's */
	if (r->load_stop_fd != -1)
		close(r->load_stop_fd);
	if (r->stat_fd != -1)
		close(r->stat_fd);
	for (i = 0; i < r->worker_count; i++) {
		struct worker *w = &r->workers[i];

		webhook_delivery_destroy(&w->engine);
		graveyard_empty(w);
		while ((f = w->fds) != NULL) {
			w->fds = f->next;
			event_free(f->ev);
			free(f);
		}
		if (w->timer != NULL)
			event_free(w->timer);
		if (w->notify_timer != NULL)
			event_free(w->notify_timer);
		if (w->wake != NULL)
			event_free(w->wake);
		if (w->base != NULL)
			event_base_free(w->base);
		if (w->wake_fd != -1)
			close(w->wake_fd);
	}
	if (r->notify_fd != -1) {
		webhook_runner_drain(r);
		close(r->notify_fd);
	}
	free(r->workers);
	pthread_cond_destroy(&r->ready_cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void webhook_runner_kick(struct webhook_runner *r)
{
	unsigned int i;

	if (!r->started)
		return;
	/* deferring: the new events are not due before the end of the
	   deferral, which wakes the workers; the load timer passes the kick
	   on within CPU_LOAD_SAMPLE_MSECS so that they arm their timers for
	   the bound (a wake-up per commit would cost a context switch each,
	   on busy CPUs) */
	if (atomic_load(&r->defer_ms) > 0) {
		atomic_store(&r->kick_held, true);
		return;
	}
	for (i = 0; i < r->worker_count; i++)
		worker_wake(&r->workers[i]);
}

void webhook_runner_enable(struct webhook_runner *r)
{
	unsigned int i;

	if (!r->started)
		return;
	for (i = 0; i < r->worker_count; i++) {
		atomic_store(&r->workers[i].enable_requested, true);
		worker_wake(&r->workers[i]);
	}
}

bool webhook_runner_deferring(struct webhook_runner *r)
{
	return atomic_load(&r->defer_ms) > 0;
}

void webhook_runner_get_stats(struct webhook_runner *r,
			      struct webhook_delivery_stats *stats_r)
{
	unsigned int i;

	memset(stats_r, 0, sizeof(*stats_r));
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->worker_count; i++) {
		const struct webhook_delivery_stats *s = &r->workers[i].stats;

		stats_r->delivered += s->delivered;
		stats_r->failed += s->failed;
		stats_r->dead_lettered += s->dead_lettered;
		stats_r->in_flight += s->in_flight;
		if (s->disabled)
			stats_r->disabled = true;
	}
	stats_r->deferring = atomic_load(&r->defer_ms) > 0;
	pthread_mutex_unlock(&r->lock);
}
