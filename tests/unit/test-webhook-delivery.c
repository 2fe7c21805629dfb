/* The delivery engine against a real HTTP server: webhook-receiver.py
   (python3's http.server) on 127.0.0.1, which answers per request as the
   URL's last path segment says and checks every signature with Python's
   hmac, independently of the C code. The engine is driven by a small
   libevent loop (test-loop.h), through the same interface Dovecot's
   ioloop uses: the core owns no loop. One cmocka test per table row;
   each row has its own receiver, port, spool and temporary directory. */

#define _GNU_SOURCE /* getline(), strdup() */
#include "pop3-retention-config.h"
#include "retention-settings.h"
#include "webhook-delivery.h"
#include "webhook-sign.h"
#include "webhook-spool.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-loop.h"
#include "test-receiver.h"
#include "test-table.h"

#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef WEBHOOK_RECEIVER
#  define WEBHOOK_RECEIVER "webhook-receiver.py"
#endif


/* The Standard Webhooks spec's secret, and a second one for rotation */
#define SECRET1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SECRET1_B64 "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

#define LOG_MAX 128
#define PATH_SIZE 512
#define RUN_TIMEOUT_MS 15000
/* after the expected end, nothing more may happen for this long */
#define SETTLE_MS 200
#define NO_JITTER 200

enum phase {
	PHASE_ONE = 0,
	/* stop the engine after the first failed attempt, start another */
	RESTART_AFTER_FAILURE,
	/* stop it while the first request is in flight, start another */
	RESTART_IN_FLIGHT,
	/* re-enable the endpoint once a 410 disabled it */
	REENABLE_AFTER_410,
};

struct delivery_case {
	const char *name;
	const char *script;	/* the receiver's answers; "@host/answers"
				   puts host in the URL (127.0.0.1 if not) */
	const char *schedule;
	const char *timeout;	/* NULL: the default */
	bool refuse_private;	/* allow_private = no */
	bool two_secrets;
	unsigned int events;
	unsigned int max_in_flight;
	enum phase phase;

	unsigned int requests;	/* seen by the receiver */
	unsigned int delivered, failed, dead;
	unsigned int pending;	/* in the spool at the end */
	bool disabled;
	unsigned int max_connections;	/* 0: unchecked */
	/* between the first two requests; -1: unchecked */
	int64_t min_gap_ms, max_gap_ms;
	const char *log_part;
};

static const struct delivery_case delivery_cases[] = {
	{ "200: delivered, signature verified by the receiver",
	  "200", "0s", NULL, false, false, 1, 0, PHASE_ONE,
	  1, 1, 0, 0, 0, false, 1, -1, -1, NULL },
	{ "200 with two secrets (rotation): both signatures verify",
	  "200", "0s", NULL, false, true, 2, 0, PHASE_ONE,
	  2, 2, 0, 0, 0, false, 0, -1, -1, NULL },
	{ "500 then 200: retried after the schedule's 1 s",
	  "500,200", "0s 1s 1s", NULL, false, false, 1, 0, PHASE_ONE,
	  2, 1, 1, 0, 0, false, 0, 950, 2500,
	  "attempt 1 of 3 failed: HTTP 500; next attempt in 1.000 s" },
	{ "503 with Retry-After: 1 beats a 0 s schedule",
	  "503ra1,200", "0s 0s", NULL, false, false, 1, 0, PHASE_ONE,
	  2, 1, 1, 0, 0, false, 0, 950, 2500, "(Retry-After)" },
	{ "429 with a Retry-After HTTP-date",
	  "429radate2,200", "0s 0s", NULL, false, false, 1, 0, PHASE_ONE,
	  2, 1, 1, 0, 0, false, 0, 950, 3500, "HTTP 429" },
	{ "Retry-After on a 500 is not honoured",
	  "500ra5,200", "0s 0s", NULL, false, false, 1, 0, PHASE_ONE,
	  2, 1, 1, 0, 0, false, 0, 0, 900, "HTTP 500" },
	{ "stalled receiver: timeout, then retried",
	  "stall3,200", "0s 0s", "1s", false, false, 1, 0, PHASE_ONE,
	  2, 1, 1, 0, 0, false, 0, 900, 2500, "Timeout was reached" },
	{ "410: endpoint disabled, events stay spooled",
	  "410", "0s 0s", NULL, false, false, 2, 1, PHASE_ONE,
	  1, 0, 0, 0, 2, true, 0, -1, -1, "answered 410 Gone" },
	{ "302 is not followed and counts as a failure",
	  "302", "0s", NULL, false, false, 1, 0, PHASE_ONE,
	  1, 0, 1, 1, 0, false, 0, -1, -1,
	  "HTTP 302 (redirects are not followed)" },
	{ "127.0.0.1 refused without allow_private",
	  "200", "0s", NULL, true, false, 1, 0, PHASE_ONE,
	  0, 0, 1, 1, 0, false, 0, -1, -1,
	  "refused to connect to 127.0.0.1 (loopback address" },
	{ "a name resolving to loopback is refused after resolution",
	  "@localhost/200", "0s", NULL, true, false, 1, 0, PHASE_ONE,
	  0, 0, 1, 1, 0, false, 0, -1, -1, "loopback address" },
	{ "schedule exhausted: dead-lettered",
	  "500", "0s 0s 0s", NULL, false, false, 1, 0, PHASE_ONE,
	  3, 0, 3, 1, 0, false, 0, -1, -1,
	  "attempt 3 of 3 failed: HTTP 500; dead-lettered" },
	{ "keep-alive: one connection for sequential requests",
	  "200", "0s", NULL, false, false, 5, 1, PHASE_ONE,
	  5, 5, 0, 0, 0, false, 1, -1, -1, NULL },
	{ "bounded concurrency: 3 in flight for 6 events",
	  "200", "0s", NULL, false, false, 6, 3, PHASE_ONE,
	  6, 6, 0, 0, 0, false, 3, -1, -1, NULL },
	{ "response body over the cap still counts as delivered",
	  "200big", "0s", NULL, false, false, 1, 0, PHASE_ONE,
	  1, 1, 0, 0, 0, false, 0, -1, -1, NULL },
	{ "restart resumes a retrying event from the spool",
	  "500,200", "0s 1s", NULL, false, false, 1, 0, RESTART_AFTER_FAILURE,
	  2, 1, 1, 0, 0, false, 0, 950, 3000, NULL },
	{ "stop with a request in flight: resent, attempt not counted",
	  "stall2,200", "0s", NULL, false, false, 1, 0, RESTART_IN_FLIGHT,
	  2, 1, 0, 0, 0, false, 0, -1, -1, NULL },
	{ "re-enabled after a 410: the kept events go out",
	  "410,200", "0s", NULL, false, false, 2, 1, REENABLE_AFTER_410,
	  3, 2, 0, 0, 0, false, 0, -1, -1, "re-enabled" },
};

struct run {
	size_t idx;
	const struct delivery_case *c;
	char dir[PATH_SIZE];
	char spool_dir[PATH_SIZE + 16];
	char receiver_log[PATH_SIZE + 16];

	struct test_receiver receiver;

	struct webhook_settings set;
	struct webhook_secrets secrets;
	struct webhook_spool *spool;
	struct webhook_delivery *delivery;

	struct test_loop *loop;
	unsigned int max_in_flight_seen;

	unsigned int n_delivered, n_failed, n_dead, n_disabled;
	char *log[LOG_MAX];
	unsigned int log_count;
};

/* The running test's state, freed by the teardown when the test fails
   half-way (cmocka leaves the test function with a longjmp). */
static struct run *current_run;

/* Every failure names the table row. */
static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

#define RUN_FAIL(r, ...) case_fail((r)->idx, (r)->c->name, __VA_ARGS__)

static void body_of(size_t idx, unsigned int k, char *buf, size_t size)
{
	/* non-ASCII, so that the bytes are compared, not a re-encoding */
	snprintf(buf, size, "{\"type\":\"message.retrieved\",\"timestamp\":"
		 "\"2026-01-01T00:00:00Z\",\"data\":{\"user\":"
		 "\"j\xc3\xbcrgen\","
		 "\"row\":%zu,\"k\":%u}}", idx, k);
}

/* ---- the host loop ---- */

/* Run the loop until done(r) or max_ms. Returns done(r). */
static bool loop_run(struct run *r, bool (*done)(struct run *r),
		     int64_t max_ms)
{
	struct webhook_delivery_stats stats;
	int64_t end = test_mono_ms() + max_ms, now;

	for (;;) {
		webhook_delivery_get_stats(r->delivery, &stats);
		if (stats.in_flight > r->max_in_flight_seen)
			r->max_in_flight_seen = stats.in_flight;
		if (test_loop_error(r->loop) != NULL)
			RUN_FAIL(r, "loop: %s", test_loop_error(r->loop));
		if (done != NULL && done(r))
			return true;
		now = test_mono_ms();
		if (now >= end)
			return done != NULL ? done(r) : true;
		test_loop_run_once(r->loop, end - now);
	}
}

/* ---- host callbacks ---- */

static void host_log(void *context, enum webhook_log_level level,
		     const char *line)
{
	struct run *r = context;
	static const char *const names[] = {
		"debug", "info", "warning", "error"
	};
	char buf[1200];

	snprintf(buf, sizeof(buf), "%s: %s", names[level], line);
	if (getenv("WEBHOOK_TEST_VERBOSE") != NULL)
		fprintf(stderr, "  [%zu] %s\n", r->idx, buf);
	if (r->log_count < LOG_MAX)
		r->log[r->log_count++] = strdup(buf);
}

static void host_report(void *context,
			const struct webhook_delivery_report *report)
{
	struct run *r = context;

	if (report->webhook_id == NULL || report->attempt == 0)
		RUN_FAIL(r, "report without id or attempt");
	switch (report->outcome) {
	case WEBHOOK_DELIVERY_DELIVERED:
		if (report->error != NULL || report->http_status / 100 != 2)
			RUN_FAIL(r, "delivered report with error/status");
		r->n_delivered++;
		break;
	case WEBHOOK_DELIVERY_FAILED:
		r->n_failed++;
		break;
	case WEBHOOK_DELIVERY_DEAD_LETTERED:
		r->n_failed++;
		r->n_dead++;
		break;
	case WEBHOOK_DELIVERY_DISABLED:
		r->n_disabled++;
		break;
	}
}

static uint32_t host_random(void *context)
{
	(void)context;
	return NO_JITTER;
}

/* ---- the receiver ---- */

static void receiver_start(struct run *r)
{
	char error[256];

	if (test_receiver_start(&r->receiver, WEBHOOK_RECEIVER,
				r->receiver_log, SECRET1,
				r->c->two_secrets ? SECRET2 : NULL, error,
				sizeof(error)) < 0)
		RUN_FAIL(r, "%s", error);
}

/* ---- setup ---- */

static const char *script_answers(const struct delivery_case *c)
{
	const char *slash;

	if (c->script[0] != '@')
		return c->script;
	slash = strchr(c->script, '/');
	return slash == NULL ? "200" : slash + 1;
}

static void settings_init(struct run *r)
{
	const struct delivery_case *c = r->c;
	const char *error = NULL, *host = "127.0.0.1", *slash;
	char url[256], host_buf[64];

	if (c->script[0] == '@') {
		slash = strchr(c->script, '/');
		snprintf(host_buf, sizeof(host_buf), "%.*s",
			 (int)(slash - c->script - 1), c->script + 1);
		host = host_buf;
	}
	webhook_settings_init(&r->set);
	/* 0: the engine's default */
	r->set.max_in_flight = c->max_in_flight;
	snprintf(url, sizeof(url), "http://%s:%d/%zu/%s", host, r->receiver.port,
		 r->idx, script_answers(c));
	if (webhook_settings_set(&r->set, "pop3_retention_webhook_url",
				 url) < 0 ||
	    webhook_settings_set(&r->set,
				 "pop3_retention_webhook_retry_schedule",
				 c->schedule) < 0 ||
	    webhook_settings_set(&r->set,
				 "pop3_retention_webhook_allow_private",
				 c->refuse_private ? "no" : "yes") < 0 ||
	    (c->timeout != NULL &&
	     webhook_settings_set(&r->set, "pop3_retention_webhook_timeout",
				  c->timeout) < 0))
		RUN_FAIL(r, "settings: %s", r->set.error);
	memset(&r->secrets, 0, sizeof(r->secrets));
	if (webhook_secret_parse(SECRET1, &r->secrets.secrets[0], &error) < 0 ||
	    (c->two_secrets &&
	     webhook_secret_parse(SECRET2, &r->secrets.secrets[1],
				  &error) < 0))
		RUN_FAIL(r, "secret: %s", error);
	r->secrets.count = c->two_secrets ? 2 : 1;
}

static void spool_open(struct run *r)
{
	r->spool = webhook_spool_create(r->spool_dir, 0);
	if (r->spool == NULL || webhook_spool_open(r->spool) < 0)
		RUN_FAIL(r, "spool: %s", r->spool == NULL ? "alloc" :
			 webhook_spool_error(r->spool));
}

static void engine_start(struct run *r)
{
	struct webhook_delivery_config config;

	memset(&config, 0, sizeof(config));
	config.set = &r->set;
	config.secrets = &r->secrets;
	config.spool = r->spool;
	r->loop = test_loop_create(&config.loop);
	if (r->loop == NULL)
		RUN_FAIL(r, "test_loop_create() failed");
	/* outcomes written at the end of each loop turn, as in the
	   Dovecot service */
	config.turn_end = true;
	config.context = r;
	config.log = host_log;
	config.report = host_report;
	config.random = host_random;
	r->delivery = webhook_delivery_create(&config);
	if (r->delivery == NULL)
		RUN_FAIL(r, "webhook_delivery_create() failed");
	test_loop_set_engine(r->loop, r->delivery);
	if (webhook_delivery_start(r->delivery) < 0)
		RUN_FAIL(r, "start: %s", webhook_delivery_error(r->delivery));
}

static void engine_stop(struct run *r)
{
	webhook_delivery_destroy(&r->delivery);
	if (r->delivery != NULL)
		RUN_FAIL(r, "destroy did not NULL the pointer");
	/* the engine let go of everything it watched */
	if (test_loop_watch_count(r->loop) != 0)
		RUN_FAIL(r, "%u fds still watched after destroy",
			 test_loop_watch_count(r->loop));
	if (test_loop_timer_armed(r->loop))
		RUN_FAIL(r, "timer still armed after destroy");
	if (test_loop_error(r->loop) != NULL)
		RUN_FAIL(r, "loop: %s", test_loop_error(r->loop));
	test_loop_destroy(&r->loop);
}

/* Stop everything, remove the directory, free r. */
static void run_free(struct run *r)
{
	unsigned int i;

	current_run = NULL;
	webhook_delivery_destroy(&r->delivery);
	test_loop_destroy(&r->loop);
	webhook_spool_destroy(&r->spool);
	test_receiver_stop(&r->receiver);
	webhook_secrets_clear(&r->secrets);
	for (i = 0; i < r->log_count; i++)
		free(r->log[i]);
	r->log_count = 0;
	if (r->dir[0] != '\0')
		(void)test_remove_tree(r->dir);
	free(r);
}

static int teardown(void **state)
{
	(void)state;
	if (current_run != NULL)
		run_free(current_run);
	return 0;
}

/* ---- conditions ---- */

static bool final_done(struct run *r)
{
	struct webhook_delivery_stats stats;

	webhook_delivery_get_stats(r->delivery, &stats);
	return stats.in_flight == 0 && r->n_delivered == r->c->delivered &&
		r->n_dead == r->c->dead && stats.disabled == r->c->disabled &&
		r->n_failed >= r->c->failed;
}

static bool first_failure(struct run *r)
{
	struct webhook_delivery_stats stats;

	webhook_delivery_get_stats(r->delivery, &stats);
	return stats.in_flight == 0 && r->n_failed >= 1;
}

static unsigned int receiver_requests(const struct run *r)
{
	return test_receiver_requests(r->receiver_log);
}

static bool first_request_in_flight(struct run *r)
{
	struct webhook_delivery_stats stats;

	webhook_delivery_get_stats(r->delivery, &stats);
	return stats.in_flight == 1 && receiver_requests(r) == 1;
}

static bool disabled_done(struct run *r)
{
	struct webhook_delivery_stats stats;

	webhook_delivery_get_stats(r->delivery, &stats);
	return stats.in_flight == 0 && stats.disabled;
}

/* Stop the engine and start another on the spool reopened from disk,
   as a restarted service would; the event must be pending with
   `attempts` attempts recorded. */
static void restart(struct run *r, unsigned int retrying)
{
	struct webhook_spool_counts counts;

	engine_stop(r);
	webhook_spool_destroy(&r->spool);
	spool_open(r);
	webhook_spool_counts(r->spool, &counts);
	if (counts.pending != r->c->events || counts.retrying != retrying)
		RUN_FAIL(r, "after the restart: %u pending, %u retrying, "
			 "expected %u, %u", counts.pending, counts.retrying,
			 r->c->events, retrying);
	engine_start(r);
}

/* ---- checks ---- */

static unsigned int log_count_containing(const struct run *r,
					 const char *part)
{
	unsigned int i, count = 0;

	for (i = 0; i < r->log_count; i++) {
		if (strstr(r->log[i], part) != NULL)
			count++;
	}
	return count;
}

static void check_log(struct run *r)
{
	const struct delivery_case *c = r->c;
	unsigned int i, failures;

	if (c->log_part != NULL && log_count_containing(r, c->log_part) == 0)
		RUN_FAIL(r, "no log line contains \"%s\"", c->log_part);
	/* one line per failed attempt */
	failures = 0;
	for (i = 0; i < r->log_count; i++) {
		if (strstr(r->log[i], " failed: ") != NULL &&
		    strstr(r->log[i], "attempt ") != NULL)
			failures++;
	}
	if (failures != c->failed)
		RUN_FAIL(r, "%u failure log lines, expected %u", failures,
			 c->failed);
	if (c->disabled && log_count_containing(r, "410 Gone") != 1)
		RUN_FAIL(r, "%u lines about 410, expected exactly one",
			 log_count_containing(r, "410 Gone"));
	/* never a secret, a signature or a body */
	if (log_count_containing(r, SECRET1_B64) != 0 ||
	    log_count_containing(r, SECRET2_B64) != 0 ||
	    log_count_containing(r, "v1,") != 0 ||
	    log_count_containing(r, "message.retrieved") != 0)
		RUN_FAIL(r, "a log line leaks a secret, signature or body");
}

static void check_requests(struct run *r)
{
	const struct delivery_case *c = r->c;
	char prefix[64], body[512], path[128];
	unsigned int count = 0, k, conns[64], conn_count = 0, i;
	double times[2] = { 0, 0 };
	json_t *entry;
	json_error_t jerr;
	char *line = NULL;
	size_t line_size = 0;
	FILE *f;
	int64_t gap;

	snprintf(prefix, sizeof(prefix), "evt_%zu_", r->idx);
	snprintf(path, sizeof(path), "/%zu/%s", r->idx, script_answers(c));
	f = fopen(r->receiver_log, "r");
	while (f != NULL && getline(&line, &line_size, f) > 0) {
		const char *id, *rpath, *rbody;
		unsigned int conn;

		entry = json_loads(line, 0, &jerr);
		if (entry == NULL)
			RUN_FAIL(r, "receiver log: %s", jerr.text);
		id = json_string_value(json_object_get(entry, "id"));
		rpath = json_string_value(json_object_get(entry, "path"));
		rbody = json_string_value(json_object_get(entry, "body"));
		conn = (unsigned int)json_integer_value(
			json_object_get(entry, "conn"));
		if (rpath == NULL || strcmp(rpath, path) != 0)
			RUN_FAIL(r, "request %u to %s, expected %s", count,
				 rpath == NULL ? "?" : rpath, path);
		if (strcmp(json_string_value(json_object_get(entry, "method")),
			   "POST") != 0)
			RUN_FAIL(r, "request %u is not a POST", count);
		if (!json_is_true(json_object_get(entry, "sig_ok")))
			RUN_FAIL(r, "request %u: the receiver could not "
				 "verify the signature", count);
		if (!json_is_true(json_object_get(entry, "ts_ok")))
			RUN_FAIL(r, "request %u: webhook-timestamp is off",
				 count);
		if (strcmp(json_string_value(json_object_get(entry,
				"content_type")), "application/json") != 0)
			RUN_FAIL(r, "request %u: wrong Content-Type", count);
		if (id == NULL || strncmp(id, prefix, strlen(prefix)) != 0 ||
		    sscanf(id + strlen(prefix), "%u", &k) != 1)
			RUN_FAIL(r, "request %u: webhook-id %s", count,
				 id == NULL ? "?" : id);
		body_of(r->idx, k, body, sizeof(body));
		if (rbody == NULL || strcmp(rbody, body) != 0)
			RUN_FAIL(r, "request %u: body differs: %s", count,
				 rbody == NULL ? "?" : rbody);
		for (i = 0; i < conn_count && conns[i] != conn; i++)
			;
		if (i == conn_count && conn_count < N_ELEMENTS(conns))
			conns[conn_count++] = conn;
		if (count < 2)
			times[count] = json_real_value(
				json_object_get(entry, "time"));
		json_decref(entry);
		count++;
	}
	free(line);
	if (f != NULL)
		fclose(f);
	if (count != c->requests)
		RUN_FAIL(r, "the receiver saw %u requests, expected %u", count,
			 c->requests);
	if (c->max_connections > 0 && conn_count > c->max_connections)
		RUN_FAIL(r, "%u connections, expected at most %u", conn_count,
			 c->max_connections);
	if (c->min_gap_ms >= 0 && count >= 2) {
		gap = (int64_t)((times[1] - times[0]) * 1000);
		if (gap < c->min_gap_ms || gap > c->max_gap_ms)
			RUN_FAIL(r, "%" PRId64 " ms between the first two "
				 "requests, expected %" PRId64 "..%" PRId64,
				 gap, c->min_gap_ms, c->max_gap_ms);
	}
}

static void check_spool_after(struct run *r)
{
	struct webhook_spool_counts counts;

	/* from disk, as a restarted service would see it */
	webhook_spool_destroy(&r->spool);
	spool_open(r);
	webhook_spool_counts(r->spool, &counts);
	if (counts.pending != r->c->pending || counts.dead != r->c->dead ||
	    counts.corrupt != 0)
		RUN_FAIL(r, "spool after: %u pending, %u dead, %u corrupt; "
			 "expected %u, %u, 0", counts.pending, counts.dead,
			 counts.corrupt, r->c->pending, r->c->dead);
}

static void test_delivery(void **state)
{
	const struct delivery_case *c = *state;
	struct webhook_delivery_stats stats;
	const char *tmpdir = getenv("TMPDIR");
	char id[64], body[512];
	struct run *r;
	unsigned int k;

	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	current_run = r;
	r->idx = (size_t)(c - delivery_cases);
	r->c = c;
	snprintf(r->dir, sizeof(r->dir), "%s/test-webhook-delivery.XXXXXX",
		 tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
	if (mkdtemp(r->dir) == NULL) {
		r->dir[0] = '\0';
		RUN_FAIL(r, "mkdtemp: %s", strerror(errno));
	}
	snprintf(r->spool_dir, sizeof(r->spool_dir), "%s/spool", r->dir);
	snprintf(r->receiver_log, sizeof(r->receiver_log), "%s/requests",
		 r->dir);

	receiver_start(r);
	settings_init(r);
	spool_open(r);
	for (k = 1; k <= c->events; k++) {
		snprintf(id, sizeof(id), "evt_%zu_%u", r->idx, k);
		body_of(r->idx, k, body, sizeof(body));
		if (webhook_spool_append(r->spool, id, body, strlen(body),
					 (int64_t)time(NULL) * 1000 + k) < 0)
			RUN_FAIL(r, "append: %s",
				 webhook_spool_error(r->spool));
	}
	if (webhook_spool_commit(r->spool) < 0)
		RUN_FAIL(r, "commit: %s", webhook_spool_error(r->spool));

	engine_start(r);
	switch (c->phase) {
	case PHASE_ONE:
		break;
	case RESTART_AFTER_FAILURE:
		if (!loop_run(r, first_failure, RUN_TIMEOUT_MS))
			RUN_FAIL(r, "no failed attempt before the restart");
		restart(r, 1);
		break;
	case RESTART_IN_FLIGHT:
		if (!loop_run(r, first_request_in_flight, RUN_TIMEOUT_MS))
			RUN_FAIL(r, "no request in flight before the restart");
		restart(r, 0);
		break;
	case REENABLE_AFTER_410:
		if (!loop_run(r, disabled_done, RUN_TIMEOUT_MS))
			RUN_FAIL(r, "the endpoint was not disabled");
		(void)loop_run(r, NULL, SETTLE_MS);
		if (receiver_requests(r) != 1)
			RUN_FAIL(r, "%u requests while disabled, expected 1",
				 receiver_requests(r));
		webhook_delivery_enable(r->delivery);
		break;
	}
	if (!loop_run(r, final_done, RUN_TIMEOUT_MS))
		RUN_FAIL(r, "timed out: %u delivered, %u failed, %u dead, "
			 "%u disabled reports", r->n_delivered, r->n_failed,
			 r->n_dead, r->n_disabled);
	/* nothing else may happen: no redirect followed, no send after a
	   410, no extra attempt */
	(void)loop_run(r, NULL, SETTLE_MS);
	webhook_delivery_get_stats(r->delivery, &stats);
	if (r->n_delivered != c->delivered || r->n_failed != c->failed ||
	    r->n_dead != c->dead || stats.disabled != c->disabled)
		RUN_FAIL(r, "reports: %u delivered, %u failed, %u dead, "
			 "disabled %d; expected %u, %u, %u, %d",
			 r->n_delivered, r->n_failed, r->n_dead,
			 stats.disabled, c->delivered, c->failed, c->dead,
			 c->disabled);
	if (c->phase == PHASE_ONE && (stats.delivered != c->delivered ||
			    stats.failed != c->failed ||
			    stats.dead_lettered != c->dead))
		RUN_FAIL(r, "stats: %" PRIu64 " delivered, %" PRIu64
			 " failed, %" PRIu64 " dead", stats.delivered,
			 stats.failed, stats.dead_lettered);
	if (webhook_delivery_is_disabled(r->delivery) != c->disabled)
		RUN_FAIL(r, "webhook_delivery_is_disabled() disagrees");
	if (c->max_in_flight > 0 && r->max_in_flight_seen > c->max_in_flight)
		RUN_FAIL(r, "%u transfers in flight, at most %u allowed",
			 r->max_in_flight_seen, c->max_in_flight);
	engine_stop(r);
	check_spool_after(r);
	check_log(r);
	check_requests(r);
	run_free(r);
}

int main(void)
{
	/* a receiver that dies must not kill the test with SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	if (access(TEST_RECEIVER_PYTHON, X_OK) < 0) {
		fprintf(stderr, "%s not found: skipping\n",
			TEST_RECEIVER_PYTHON);
		return 77;
	}
	return RUN_TABLE_TEARDOWN("webhook delivery", test_delivery, teardown,
				  delivery_cases) == 0 ? 0 : 1;
}
