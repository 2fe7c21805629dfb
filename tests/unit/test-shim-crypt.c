/* shim-crypt: checks on worker threads, results in the loop's thread,
   cancellation before, during and after a check, a full queue, and
   destroy with jobs still queued. */

#include "pop3-retention-config.h"
#include "shim-crypt.h"
#include "shim-params.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test-table.h"

#include <crypt.h>
#include <pthread.h>
#include <unistd.h>

#include <event2/event.h>

#define JOBS 100
/* long enough to queue SHIM_CRYPT_QUEUE_MAX jobs behind it, also under
   valgrind */
#define SLOW_ROUNDS 200000
/* jobs the workers may take while the queue fills */
#define SLACK 64

struct result {
	int calls;
	int result;
	bool error;
	bool loop_thread;
};

static pthread_t loop_thread;
static struct event_base *base;
static struct shim_crypt_pool *pool;
static int pending;

static void done(int result, const char *error, void *context)
{
	struct result *res = context;

	res->calls++;
	res->result = result;
	res->error = error != NULL;
	res->loop_thread = pthread_equal(pthread_self(), loop_thread) != 0;
	if (--pending == 0)
		event_base_loopbreak(base);
}

static void timeout_callback(evutil_socket_t fd, short what, void *context)
{
	(void)fd;
	(void)what;
	(void)context;
	event_base_loopbreak(base);
}

/* Run the loop until pending is 0 or secs pass. */
static void loop_run(int secs)
{
	struct timeval tv = { secs, 0 };
	struct event *timeout;

	timeout = evtimer_new(base, timeout_callback, NULL);
	evtimer_add(timeout, &tv);
	if (pending > 0)
		event_base_dispatch(base);
	event_free(timeout);
}

static void hash_make(const char *prefix, unsigned long rounds,
		      const char *password, char *buf, size_t size)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = calloc(1, sizeof(*data));
	const char *hash;

	assert_non_null(data);
	assert_non_null(crypt_gensalt_rn(prefix, rounds, NULL, 0, salt,
					 sizeof(salt)));
	hash = crypt_r(password, salt, data);
	assert_true(hash != NULL && hash[0] != '*');
	snprintf(buf, size, "%s", hash);
	free(data);
}

static int setup(void **state)
{
	char error[256];

	(void)state;
	loop_thread = pthread_self();
	base = event_base_new();
	assert_non_null(base);
	pool = shim_crypt_pool_create(base, SHIM_CRYPT_WORKERS, error,
				      sizeof(error));
	if (pool == NULL)
		fail_msg("pool: %s", error);
	pending = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shim_crypt_pool_destroy(&pool);
	assert_null(pool);
	event_base_free(base);
	return 0;
}

static const struct {
	const char *prefix;
	unsigned long rounds;
} kinds[] = {
	{ "$1$", 0 }, { "$5$", 1000 }, { "$6$", 1000 }, { "$2b$", 4 },
	{ "$y$", 1 },
};

/* 100 checks at once, a fifth of them wrong, one malformed: each
   resolves once, correctly, in the loop's thread. */
static void test_many(void **state)
{
	static struct result results[JOBS];
	char hashes[N_ELEMENTS(kinds)][CRYPT_OUTPUT_SIZE];
	char password[32];
	unsigned int i, k;
	int want;

	(void)state;
	memset(results, 0, sizeof(results));
	for (k = 0; k < N_ELEMENTS(kinds); k++)
		hash_make(kinds[k].prefix, kinds[k].rounds, "pw", hashes[k],
			  sizeof(hashes[k]));
	for (i = 0; i < JOBS; i++) {
		k = i % N_ELEMENTS(kinds);
		snprintf(password, sizeof(password), "%s",
			 i % 5 == 4 ? "wrong" : "pw");
		if (shim_crypt_pool_verify(pool, i == 7 ? "{SSHA}x" : hashes[k],
					   password, done, &results[i]) == NULL)
			fail_msg("job %u: not queued", i);
		/* the pool has its own copy */
		memset(password, 'X', sizeof(password) - 1);
		pending++;
	}
	loop_run(120);
	for (i = 0; i < JOBS; i++) {
		want = i == 7 ? -1 : i % 5 == 4 ? 0 : 1;
		if (results[i].calls != 1 || results[i].result != want ||
		    results[i].error != (want < 0) ||
		    !results[i].loop_thread)
			fail_msg("job %u: %d calls, result %d (want %d), "
				 "error %d, loop thread %d", i,
				 results[i].calls, results[i].result, want,
				 results[i].error, results[i].loop_thread);
	}
}

struct cancel_row {
	const char *name;
	/* sleep this long after queueing the job, then cancel it */
	unsigned int sleep_msecs;
	/* queue a slow job first, so that the cancelled one waits */
	bool behind_slow;
	/* cancel the slow one instead */
	bool cancel_slow;
};

static const struct cancel_row cancel_rows[] = {
	{ "cancel while queued", 0, true, false },
	{ "cancel at once", 0, false, false },
	{ "cancel while running", 30, false, true },
	{ "cancel after the result, before the loop", 2000, false, false },
};

static void test_cancel(void **state)
{
	const struct cancel_row *r = *state;
	unsigned int i = (unsigned int)(r - cancel_rows);
	struct result slow_res, res, after_res;
	struct shim_crypt_job *slow = NULL, *job;
	char slow_hash[CRYPT_OUTPUT_SIZE], hash[CRYPT_OUTPUT_SIZE];

	setup(NULL);
	memset(&slow_res, 0, sizeof(slow_res));
	memset(&res, 0, sizeof(res));
	memset(&after_res, 0, sizeof(after_res));
	hash_make("$6$", SLOW_ROUNDS, "pw", slow_hash, sizeof(slow_hash));
	hash_make("$5$", 1000, "pw", hash, sizeof(hash));
	if (r->behind_slow || r->cancel_slow) {
		/* both workers busy */
		slow = shim_crypt_pool_verify(pool, slow_hash, "pw", done,
					      &slow_res);
		assert_non_null(shim_crypt_pool_verify(pool, slow_hash, "x",
						       done, &after_res));
		pending += 2;
	}
	job = shim_crypt_pool_verify(pool, hash,
				     "pw", done, &res);
	assert_non_null(job);
	pending++;
	usleep(r->sleep_msecs * 1000);
	shim_crypt_job_cancel(r->cancel_slow ? slow : job);
	pending--;
	/* a job queued after the cancel still runs, behind it */
	loop_run(120);
	if (r->cancel_slow && (slow_res.calls != 0 || res.calls != 1))
		fail_msg("row %u (%s): cancelled called %d, other %d", i,
			 r->name, slow_res.calls, res.calls);
	if (!r->cancel_slow && res.calls != 0)
		fail_msg("row %u (%s): cancelled job called", i, r->name);
	if (r->behind_slow && (slow_res.calls != 1 || slow_res.result != 1 ||
			       after_res.calls != 1 || after_res.result != 0))
		fail_msg("row %u (%s): others not done", i, r->name);
	/* nothing more arrives */
	pending = 1;
	loop_run(1);
	if (res.calls + slow_res.calls + after_res.calls !=
	    (r->behind_slow ? 2 : r->cancel_slow ? 2 : 0))
		fail_msg("row %u (%s): late calls", i, r->name);
	teardown(NULL);
}

/* SHIM_CRYPT_QUEUE_MAX jobs wait: the next is refused; destroy frees
   every queued one and waits for the running ones. */
static void test_queue_full(void **state)
{
	struct result *results;
	char slow_hash[CRYPT_OUTPUT_SIZE];
	unsigned int i, queued = 0;

	(void)state;
	setup(NULL);
	results = calloc(SHIM_CRYPT_QUEUE_MAX + SLACK, sizeof(*results));
	assert_non_null(results);
	hash_make("$6$", SLOW_ROUNDS, "pw", slow_hash, sizeof(slow_hash));
	for (i = 0; i < SHIM_CRYPT_QUEUE_MAX + SLACK; i++) {
		if (shim_crypt_pool_verify(pool, slow_hash, "pw", done,
					   &results[i]) == NULL)
			break;
		queued++;
	}
	/* the workers took a few of them (SHIM_CRYPT_WORKERS, unless this
	   thread was kept from running for a whole slow check) */
	if (queued < SHIM_CRYPT_QUEUE_MAX ||
	    queued >= SHIM_CRYPT_QUEUE_MAX + SLACK)
		fail_msg("%u jobs queued", queued);
	assert_null(shim_crypt_pool_verify(pool, slow_hash, "pw", done,
					   &results[0]));
	teardown(NULL);
	for (i = 0; i < queued; i++) {
		if (results[i].calls != 0)
			fail_msg("job %u called after destroy", i);
	}
	free(results);
}

static void test_create_errors(void **state)
{
	struct event_base *b = event_base_new();
	char error[256];

	(void)state;
	assert_null(shim_crypt_pool_create(b, 0, error, sizeof(error)));
	assert_non_null(strstr(error, "from 1 to 16"));
	assert_null(shim_crypt_pool_create(b, 17, error, sizeof(error)));
	event_base_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_create_errors),
	};
	int failed;

	failed = RUN_TABLE("shim-crypt cancel", test_cancel, cancel_rows);
	failed += cmocka_run_group_tests_name("shim-crypt", tests, NULL,
					      NULL);
	return failed == 0 ? 0 : 1;
}
