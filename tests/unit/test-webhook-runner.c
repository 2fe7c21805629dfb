/* The delivery workers (webhook-runner) against the real HTTP receiver:
   several threads share one spool, every event is delivered exactly
   once with a signature the receiver verified with Python's hmac, the
   host gets one report per attempt through the notify fd, the workers
   run at the configured niceness, stopping them puts stalled events
   back in the spool, a configuration the engines refuse starts no
   thread, and delivery defers itself while other processes keep every
   CPU busy (real busy-looping children): until they stop, or until the
   events are as old as the deferral allows. One cmocka test per table
   row; each has its own receiver,
   spool and temporary directory. */

#include "pop3-retention-config.h"
#include "retention-settings.h"
#include "webhook-runner.h"
#include "webhook-sign.h"
#include "webhook-spool.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-receiver.h"
#include "test-table.h"

#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef WEBHOOK_RECEIVER
#  define WEBHOOK_RECEIVER "webhook-receiver.py"
#endif

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define PATH_SIZE 512
#define RUN_TIMEOUT_MS 60000
/* events appended per commit while the workers run */
#define LIVE_BATCH 50

enum runner_phase {
	/* everything is spooled before the workers start */
	PHASE_SPOOLED = 0,
	/* batches are committed (and kicked) while the workers run */
	PHASE_LIVE,
	/* the receiver stalls; the runner is destroyed with requests in
	   flight */
	PHASE_STOP_IN_FLIGHT,
	/* no secret: start() must fail and start no thread */
	PHASE_NO_SECRET,
	/* the receiver answers 410: one worker's 410 stops them all, one
	   log line; enable() resumes them */
	PHASE_GONE,
	/* every CPU busy-loops in child processes: nothing is delivered
	   while they run; once they stop, everything is, long before the
	   deferral's bound */
	PHASE_DEFER_CALM,
	/* the children keep running: events go once they are as old as
	   the bound */
	PHASE_DEFER_BOUND,
};

struct runner_case {
	const char *name;
	enum runner_phase phase;
	const char *answers;	/* the receiver's script */
	unsigned int events;
	unsigned int workers;
	unsigned int max_in_flight;
	unsigned int nice;
	int64_t defer_max_ms;
};

static const struct runner_case runner_cases[] = {
	{ "2 workers deliver 3000 spooled events once each",
	  PHASE_SPOOLED, "200", 3000, 2, 8, 5, 0 },
	{ "4 workers, 1 transfer each, events committed while running",
	  PHASE_LIVE, "200", 1000, 4, 4, 0, 0 },
	{ "1 worker at niceness 19",
	  PHASE_SPOOLED, "204", 200, 1, 2, 19, 0 },
	{ "more workers than transfers: one worker per transfer",
	  PHASE_SPOOLED, "200", 100, 8, 2, 3, 0 },
	{ "stopped with stalled requests: every event back in the spool",
	  PHASE_STOP_IN_FLIGHT, "stall5", 20, 2, 4, 0, 0 },
	{ "no secret: start fails, no thread runs",
	  PHASE_NO_SECRET, "200", 5, 2, 4, 0, 0 },
	{ "410 from one worker disables all, logged once; enable resumes",
	  PHASE_GONE, "410", 50, 2, 2, 0, 0 },
	{ "CPUs busy with other work: deferred until they calm down",
	  PHASE_DEFER_CALM, "204", 200, 2, 8, 0, 60000 },
	{ "CPUs busy all along: delivered once the bound is reached",
	  PHASE_DEFER_BOUND, "204", 100, 2, 8, 0, 2000 },
};

struct run {
	size_t idx;
	const struct runner_case *c;
	char dir[PATH_SIZE];
	char spool_dir[PATH_SIZE + 16];
	char receiver_log[PATH_SIZE + 16];
	struct test_receiver receiver;

	struct retention_settings set;
	struct webhook_secrets secrets;
	struct webhook_spool *spool;
	struct webhook_runner *runner;

	unsigned int reports_delivered, reports_other, log_errors, log_gone;
	unsigned int appended;
	/* the busy-looping children of the deferral cases */
	pid_t burners[64];
	unsigned int burner_count;
};

static struct run *current_run;

static void __attribute__((format(printf, 2, 3)))
run_fail(struct run *r, const char *fmt, ...)
{
	char msg[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", r->idx, r->c->name, msg);
}

/* ---- host callbacks (called by webhook_runner_drain(), this thread) ---- */

static void host_log(void *context, enum webhook_log_level level,
		     const char *line)
{
	struct run *r = context;

	if (strstr(line, "answered 410 Gone") != NULL) {
		r->log_gone++;
		return;
	}
	if (level >= WEBHOOK_LOG_ERROR) {
		r->log_errors++;
		fprintf(stderr, "case %zu: engine error: %s\n", r->idx, line);
	}
}

static void host_report(void *context,
			const struct webhook_delivery_report *report)
{
	struct run *r = context;

	if (report->outcome == WEBHOOK_DELIVERY_DELIVERED)
		r->reports_delivered++;
	else
		r->reports_other++;
}

/* ---- helpers ---- */

/* The deferral cases need events created now; the others an old date
   (due at once either way). */
static int64_t created_ms(struct run *r)
{
	struct timeval tv;

	if (r->c->defer_max_ms == 0)
		return 1700000000000 + r->appended;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void burners_start(struct run *r)
{
	r->burner_count = test_burners_start(r->burners,
					     N_ELEMENTS(r->burners));
	if (r->burner_count == 0)
		run_fail(r, "no busy-looping child started");
}

static void burners_stop(struct run *r)
{
	test_burners_stop(r->burners, &r->burner_count);
}

static void append_events(struct run *r, unsigned int count)
{
	char id[64], body[256];
	unsigned int i;

	for (i = 0; i < count; i++) {
		r->appended++;
		snprintf(id, sizeof(id), "evt_%zu_%u", r->idx, r->appended);
		snprintf(body, sizeof(body), "{\"type\":\"message.retrieved\","
			 "\"data\":{\"k\":%u}}", r->appended);
		if (webhook_spool_append(r->spool, id, body, strlen(body),
					 created_ms(r)) < 0)
			run_fail(r, "append: %s", webhook_spool_error(r->spool));
	}
	if (webhook_spool_commit(r->spool) < 0)
		run_fail(r, "commit: %s", webhook_spool_error(r->spool));
}

/* Wait for the notify fd (at most wait_ms) and drain it. */
static void host_iteration(struct run *r, int wait_ms)
{
	struct pollfd pfd;

	pfd.fd = webhook_runner_notify_fd(r->runner);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
		run_fail(r, "poll: %s", strerror(errno));
	webhook_runner_drain(r->runner);
}

/* Threads of this process, and how many run at niceness nice. */
static unsigned int threads_count(unsigned int *at_nice_r, int nice)
{
	struct dirent *de;
	unsigned int count = 0;
	char *end;
	long tid;
	DIR *dir;
	int prio;

	*at_nice_r = 0;
	dir = opendir("/proc/self/task");
	if (dir == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		count++;
		errno = 0;
		tid = strtol(de->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || tid <= 0)
			continue;
		prio = getpriority(PRIO_PROCESS, (id_t)tid);
		if (errno == 0 && prio == nice)
			(*at_nice_r)++;
	}
	closedir(dir);
	return count;
}

static void check_receiver_log(struct run *r)
{
	unsigned int count = 0, k;
	unsigned char *seen;
	json_error_t jerr;
	json_t *entry;
	char *line = NULL;
	size_t line_size = 0;
	FILE *f;

	seen = calloc(r->appended + 1, 1);
	assert_non_null(seen);
	f = fopen(r->receiver_log, "r");
	while (f != NULL && getline(&line, &line_size, f) > 0) {
		const char *id;

		entry = json_loads(line, 0, &jerr);
		if (entry == NULL)
			run_fail(r, "receiver log: %s", jerr.text);
		id = json_string_value(json_object_get(entry, "id"));
		if (!json_is_true(json_object_get(entry, "sig_ok")))
			run_fail(r, "request %u: signature not verified", count);
		if (id == NULL || sscanf(id, "evt_%*u_%u", &k) != 1 ||
		    k == 0 || k > r->appended)
			run_fail(r, "request %u: unexpected id %s", count,
				 id == NULL ? "(none)" : id);
		if (seen[k]++ != 0)
			run_fail(r, "event %u was delivered twice", k);
		json_decref(entry);
		count++;
	}
	free(line);
	if (f != NULL)
		fclose(f);
	free(seen);
	if (count != r->appended)
		run_fail(r, "the receiver got %u requests for %u events",
			 count, r->appended);
}

/* ---- the test ---- */

static void runner_setup(struct run *r)
{
	const struct runner_case *c = r->c;
	struct webhook_runner_config config;
	const char *error = NULL;
	char url[256], num[16];

	retention_settings_init(&r->set);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%zu/%s",
		 r->receiver.port, r->idx, c->answers);
	snprintf(num, sizeof(num), "%u", c->max_in_flight);
	if (retention_settings_set(&r->set, "pop3_retention_webhook_url",
				   url) < 0 ||
	    retention_settings_set(&r->set,
				   "pop3_retention_webhook_allow_private",
				   "yes") < 0 ||
	    retention_settings_set(&r->set,
				   "pop3_retention_webhook_retry_schedule",
				   "0s 30s") < 0)
		run_fail(r, "settings: %s", r->set.error);
	memset(&r->secrets, 0, sizeof(r->secrets));
	if (c->phase != PHASE_NO_SECRET) {
		if (webhook_secret_parse(SECRET, &r->secrets.secrets[0],
					 &error) < 0)
			run_fail(r, "secret: %s", error);
		r->secrets.count = 1;
	}

	memset(&config, 0, sizeof(config));
	config.delivery.set = &r->set;
	config.delivery.secrets = &r->secrets;
	config.delivery.spool = r->spool;
	config.delivery.context = r;
	config.delivery.log = host_log;
	config.delivery.report = host_report;
	config.delivery.max_in_flight = c->max_in_flight;
	config.workers = c->workers;
	config.nice = c->nice;
	config.defer_max_ms = c->defer_max_ms;
	r->runner = webhook_runner_create(&config);
	if (r->runner == NULL)
		run_fail(r, "webhook_runner_create() failed");
}

static void run_free(struct run *r)
{
	burners_stop(r);
	webhook_runner_destroy(&r->runner);
	webhook_spool_destroy(&r->spool);
	test_receiver_stop(&r->receiver);
	if (r->dir[0] != '\0')
		(void)test_remove_tree(r->dir);
	free(r);
}

static int teardown(void **state)
{
	(void)state;
	if (current_run != NULL)
		run_free(current_run);
	current_run = NULL;
	return 0;
}

/* Saturate the CPUs, wait for the runner to notice, commit the events
   and check that none goes out for a while; then either stop the load
   (PHASE_DEFER_CALM: they go at once) or keep it (PHASE_DEFER_BOUND:
   they go once defer_max_ms old). Returns with the load stopped. */
static void test_deferral(struct run *r, int64_t end)
{
	const struct runner_case *c = r->c;
	struct webhook_delivery_stats stats;
	int64_t committed, hold_until, stopped;
	unsigned int requests;

	burners_start(r);
	do {
		host_iteration(r, 50);
		webhook_runner_get_stats(r->runner, &stats);
	} while (!stats.deferring && test_mono_ms() < end);
	if (!stats.deferring)
		run_fail(r, "every CPU busy, and delivery was not deferred");
	append_events(r, c->events);
	committed = test_mono_ms();
	webhook_runner_kick(r->runner);
	hold_until = committed + (c->phase == PHASE_DEFER_CALM ? 1500 :
				  c->defer_max_ms - 500);
	while (test_mono_ms() < hold_until)
		host_iteration(r, 50);
	requests = test_receiver_requests(r->receiver_log);
	webhook_runner_get_stats(r->runner, &stats);
	if (requests != 0 || stats.delivered != 0)
		run_fail(r, "%u requests, %llu delivered while deferring",
			 requests, (unsigned long long)stats.delivered);
	if (c->phase == PHASE_DEFER_CALM)
		burners_stop(r);
	stopped = test_mono_ms();
	while (test_mono_ms() < end) {
		host_iteration(r, 20);
		webhook_runner_get_stats(r->runner, &stats);
		if (stats.delivered == c->events)
			break;
	}
	if (stats.delivered != c->events)
		run_fail(r, "%llu of %u delivered",
			 (unsigned long long)stats.delivered, c->events);
	if (c->phase == PHASE_DEFER_CALM && stats.deferring)
		run_fail(r, "still deferring after the load stopped");
	/* calm: well before the bound; bound: not before it (the children
	   still run) */
	if (c->phase == PHASE_DEFER_CALM &&
	    test_mono_ms() - stopped > c->defer_max_ms / 2)
		run_fail(r, "delivered %lld ms after the load stopped",
			 (long long)(test_mono_ms() - stopped));
	if (c->phase == PHASE_DEFER_BOUND &&
	    test_mono_ms() - committed < c->defer_max_ms - 100)
		run_fail(r, "delivered %lld ms after the commit, before the "
			 "bound of %lld ms",
			 (long long)(test_mono_ms() - committed),
			 (long long)c->defer_max_ms);
	burners_stop(r);
}

static void test_runner(void **state)
{
	const struct runner_case *c = *state;
	struct webhook_delivery_stats stats;
	struct webhook_spool_counts counts;
	const char *tmpdir = getenv("TMPDIR");
	unsigned int threads_before, threads_running, at_nice, dummy;
	unsigned int expected_workers;
	char error[256];
	int64_t end;
	int base_nice, want_nice;
	struct run *r;

	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	current_run = r;
	r->idx = (size_t)(c - runner_cases);
	r->c = c;
	snprintf(r->dir, sizeof(r->dir), "%s/test-webhook-runner.XXXXXX",
		 tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
	if (mkdtemp(r->dir) == NULL) {
		r->dir[0] = '\0';
		run_fail(r, "mkdtemp: %s", strerror(errno));
	}
	snprintf(r->spool_dir, sizeof(r->spool_dir), "%s/spool", r->dir);
	snprintf(r->receiver_log, sizeof(r->receiver_log), "%s/requests",
		 r->dir);
	if (test_receiver_start(&r->receiver, WEBHOOK_RECEIVER,
				r->receiver_log, SECRET, NULL, error,
				sizeof(error)) < 0)
		run_fail(r, "%s", error);
	r->spool = webhook_spool_create(r->spool_dir, 0);
	if (r->spool == NULL || webhook_spool_open(r->spool) < 0)
		run_fail(r, "spool: %s", r->spool == NULL ? "alloc" :
			 webhook_spool_error(r->spool));
	if (c->phase != PHASE_LIVE && c->defer_max_ms == 0)
		append_events(r, c->events);
	runner_setup(r);

	errno = 0;
	base_nice = getpriority(PRIO_PROCESS, 0);
	threads_before = threads_count(&dummy, 0);
	if (webhook_runner_start(r->runner) < 0) {
		if (c->phase != PHASE_NO_SECRET)
			run_fail(r, "start: %s",
				 webhook_runner_error(r->runner));
		if (webhook_runner_error(r->runner)[0] == '\0')
			run_fail(r, "start failed without an error text");
		if (threads_count(&dummy, 0) != threads_before)
			run_fail(r, "a failed start left threads running");
		webhook_runner_destroy(&r->runner);
		webhook_spool_counts(r->spool, &counts);
		if (counts.pending != c->events)
			run_fail(r, "%u pending after a failed start, "
				 "expected %u", counts.pending, c->events);
		return;
	}
	if (c->phase == PHASE_NO_SECRET)
		run_fail(r, "start succeeded without a secret");

	/* one thread per worker, at most one per transfer, each at the
	   configured niceness; this thread keeps its own, and so does the
	   CPU load sampler when delivery may defer */
	expected_workers = c->workers < c->max_in_flight ?
		c->workers : c->max_in_flight;
	want_nice = base_nice + (int)c->nice > 19 ? 19 :
		base_nice + (int)c->nice;
	threads_running = threads_count(&at_nice, want_nice);
	if (threads_running != threads_before + expected_workers +
	    (c->defer_max_ms > 0 ? 1 : 0))
		run_fail(r, "%u threads running, expected %u + %u workers "
			 "+ %u sampler", threads_running, threads_before,
			 expected_workers, c->defer_max_ms > 0 ? 1 : 0);
	if (want_nice != base_nice && at_nice != expected_workers)
		run_fail(r, "%u threads at niceness %d, expected %u", at_nice,
			 want_nice, expected_workers);
	if (getpriority(PRIO_PROCESS, 0) != base_nice)
		run_fail(r, "the host thread's niceness changed");

	end = test_mono_ms() + RUN_TIMEOUT_MS;
	if (c->phase == PHASE_STOP_IN_FLIGHT) {
		/* every transfer slot holds a stalled request */
		while (test_receiver_requests(r->receiver_log) <
		       c->max_in_flight && test_mono_ms() < end)
			host_iteration(r, 50);
		webhook_runner_destroy(&r->runner);
		webhook_spool_counts(r->spool, &counts);
		if (counts.pending != c->events || counts.checked_out != 0)
			run_fail(r, "after the stop: %u pending, %u checked "
				 "out; expected %u and 0", counts.pending,
				 counts.checked_out, c->events);
		if (r->reports_delivered != 0)
			run_fail(r, "%u reported delivered",
				 r->reports_delivered);
		return;
	}

	if (c->phase == PHASE_GONE) {
		unsigned int requests;

		while (test_mono_ms() < end) {
			host_iteration(r, 50);
			webhook_runner_get_stats(r->runner, &stats);
			if (stats.disabled && stats.in_flight == 0)
				break;
		}
		/* a request in flight when the first 410 came may still
		   arrive; after that, nothing */
		host_iteration(r, 500);
		requests = test_receiver_requests(r->receiver_log);
		host_iteration(r, 500);
		webhook_runner_get_stats(r->runner, &stats);
		if (!stats.disabled || r->log_gone != 1 ||
		    requests > c->max_in_flight ||
		    test_receiver_requests(r->receiver_log) != requests)
			run_fail(r, "disabled %d, %u log lines, %u then %u "
				 "requests (at most %u expected)",
				 stats.disabled, r->log_gone, requests,
				 test_receiver_requests(r->receiver_log),
				 c->max_in_flight);
		webhook_spool_counts(r->spool, &counts);
		if (counts.pending != c->events)
			run_fail(r, "%u pending, expected %u", counts.pending,
				 c->events);
		webhook_runner_enable(r->runner);
		while (test_receiver_requests(r->receiver_log) == requests &&
		       test_mono_ms() < end)
			host_iteration(r, 50);
		if (test_receiver_requests(r->receiver_log) == requests)
			run_fail(r, "nothing was sent after enable()");
		return;
	}

	if (c->defer_max_ms > 0)
		test_deferral(r, end);

	while (test_mono_ms() < end) {
		if (c->phase == PHASE_LIVE && r->appended < c->events) {
			append_events(r, LIVE_BATCH);
			webhook_runner_kick(r->runner);
		}
		host_iteration(r, 20);
		webhook_runner_get_stats(r->runner, &stats);
		if (r->appended == c->events && stats.delivered == c->events &&
		    stats.in_flight == 0)
			break;
	}
	webhook_runner_get_stats(r->runner, &stats);
	if (stats.delivered != c->events || stats.failed != 0)
		run_fail(r, "%llu delivered, %llu failed; expected %u and 0",
			 (unsigned long long)stats.delivered,
			 (unsigned long long)stats.failed, c->events);
	/* the last reports reach the host through the notify timer, with
	   nothing else happening */
	while (r->reports_delivered < c->events && test_mono_ms() < end)
		host_iteration(r, 50);
	if (r->reports_delivered != c->events)
		run_fail(r, "%u of %u reports reached the host while running",
			 r->reports_delivered, c->events);
	webhook_runner_destroy(&r->runner);
	if (r->reports_delivered != c->events || r->reports_other != 0)
		run_fail(r, "%u delivered and %u other reports; expected %u "
			 "and 0", r->reports_delivered, r->reports_other,
			 c->events);
	if (r->log_errors != 0)
		run_fail(r, "%u error lines", r->log_errors);
	webhook_spool_counts(r->spool, &counts);
	if (counts.pending != 0)
		run_fail(r, "%u still pending", counts.pending);
	check_receiver_log(r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (access(TEST_RECEIVER_PYTHON, X_OK) < 0) {
		fprintf(stderr, "%s not found: skipping\n",
			TEST_RECEIVER_PYTHON);
		return 77;
	}
	return RUN_TABLE_TEARDOWN("webhook runner", test_runner, teardown,
				  runner_cases) == 0 ? 0 : 1;
}
