/* The durable spool, driven by scripts of operations (one cmocka test
   per script): append/commit/checkout/outcomes, reopen (resume after a
   restart), real crashes (forked children that exit before or after
   commit, one killed with SIGKILL after recording outcomes), repairs
   of segment tails and outcome logs, rotation, dead letters, ids held
   (an event appended again is skipped while its id is pending or done
   within the recent window, across a reopen too), counts; and a table
   of corrupt segments, each of which must be quarantined without losing
   the good events before it or in another segment. Each test owns a
   fresh temporary directory; the recent window is 0 (done segments go
   at once) unless a script sets it. */

#include "pop3-retention-config.h"
#include "webhook-spool.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


/* created_ms of event k is BASE_MS + k */
#define BASE_MS INT64_C(1700000000000)
/* "now" when a checkout does not say */
#define FAR_MS (BASE_MS + INT64_C(1000000000000))
#define SLOTS 8
#define OPS_MAX 28
#define LOG_MAX 64
#define PATH_SIZE 512

enum op_kind {
	OP_END = 0,
	OP_APPEND,	/* n events (ids evt_<k>, k counting from 1) */
	OP_APPEND_BAD,	/* s: "id", "empty", "large", "time": must fail */
	OP_APPEND_BIG,	/* n events big_<i> of about 60 KB each */
	OP_DRAIN_BIG,	/* check out and deliver n big events */
	OP_COMMIT,
	OP_ABORT,
	OP_CRASH_APPEND, /* a child appends n events and dies uncommitted */
	OP_CRASH_COMMIT, /* a child appends n, commits, dies unclosed */
	OP_KILL_DELIVERED, /* a child owner delivers n, flushes (as the
			      engine does before it waits again) and is
			      SIGKILLed; t != 0: killed before the flush */
	OP_REOPEN,
	OP_FIRST_DELAY,	/* t */
	OP_CHECKOUT,	/* into slot n; s: expected id or NULL (none);
			   t: now (0: far future) */
	OP_ATTEMPTS,	/* slot n has made t attempts */
	OP_DELIVERED,	/* slot n */
	OP_RESCHEDULE,	/* slot n, due BASE_MS + t */
	OP_DEAD,	/* slot n */
	OP_RELEASE,	/* slot n */
	OP_DRAIN,	/* check out and deliver n events, in order */
	OP_SYNC,
	OP_EXPECT,	/* counts e */
	OP_EXPECT_DUE,	/* next due BASE_MS + t, or -1 for t < 0 */
	OP_EXPECT_DUE_SOON, /* next due within 2 s of the wall clock */
	OP_EXPECT_OLDEST, /* oldest created BASE_MS + t, or -1 */
	OP_EXPECT_FILES, /* s: subdirectory of the spool, n files */
	OP_EXPECT_LOG,	/* s appears in a log line */
	OP_EXPECT_DEAD_FILE, /* a dead/ file holds event s, t attempts */
	OP_WRITE_FILE,	/* s: path under the spool; data/len */
	OP_SEG_TAIL,	/* append data/len to the newest segment */
	OP_LOG_TAIL,	/* append data/len to the newest segment's log */
	OP_TAIL_GONE,	/* the last OP_SEG_TAIL's bytes were cut off */
	OP_APPEND_HELD,	/* events evt_1..evt_n again: each is skipped */
	OP_APPEND_NEW,	/* events evt_1..evt_n again: each is appended */
	OP_RECENT,	/* the recent window is t ms (now and at reopens) */
	OP_SLEEP,	/* t milliseconds */
	OP_SECOND_OWNER, /* a second owner open fails with s */
	OP_READ_ONLY,	/* a READ_ONLY open sees counts e */
};

struct expect {
	unsigned int pending, retrying, checked_out, dead, corrupt;
};

struct op {
	enum op_kind kind;
	unsigned int n;
	int64_t t;
	const char *s;
	const char *data;
	size_t len;
	struct expect e;
};

struct spool_case {
	const char *name;
	struct op ops[OPS_MAX];
};

#define E(p, r, c, d, x) { p, r, c, d, x }
#define E0 E(0, 0, 0, 0, 0)
#define STR_LEN(s) s, sizeof(s) - 1

static const struct spool_case spool_cases[] = {
	{ "append, commit, checkout in order, deliver, reopen", {
		{ OP_APPEND, 3, 0, NULL, NULL, 0, E0 },
		/* not committed: invisible */
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* one segment, no outcome log yet */
		{ OP_EXPECT_FILES, 1, 0, "seg", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 0, 0) },
		{ OP_EXPECT_OLDEST, 0, 1, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 2, 0, 0) },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_DELIVERED, 1, 0, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 2, 0, "seg", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_EXPECT_OLDEST, 0, 3, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, NULL, NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		/* all done and no writer: segment and log go */
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 0, 0, "seg", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_OLDEST, 0, -1, NULL, NULL, 0, E0 },
	} },
	{ "abort and destroy discard an uncommitted batch", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_ABORT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, NULL, NULL, 0, E0 },
	} },
	{ "batches larger than the write buffer", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* written out before the commit, then cut off again */
		{ OP_APPEND_BIG, 10, 0, NULL, NULL, 0, E0 },
		{ OP_ABORT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND_BIG, 12, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(14, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(14, 0, 0, 0, 0) },
		{ OP_DRAIN_BIG, 12, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, NULL, NULL, 0, E0 },
	} },
	{ "crash before commit: the cut-off tail is repaired", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* a record cut short, as a crash mid-write leaves it */
		{ OP_SEG_TAIL, 0, 0, NULL,
		  STR_LEN("E evt_99 1700000000099 45 015abd7f5c"), E0 },
		/* uncommitted: may or may not reach the disk */
		{ OP_CRASH_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_LOG, 0, 0, "incomplete record", NULL, 0, E0 },
		{ OP_TAIL_GONE, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "corrupt", NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_4", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, NULL, NULL, 0, E0 },
	} },
	{ "a child commits and exits unclosed: the events survive", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* the owner dies right after a commit */
		{ OP_CRASH_COMMIT, 2, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 1, 0, "seg", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E0 },
		{ OP_CHECKOUT, 3, 0, NULL, NULL, 0, E0 },
	} },
	{ "killed after delivering: nothing is sent twice", {
		{ OP_APPEND, 5, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* no sync() in the child: flush's write(2) alone must do */
		{ OP_KILL_DELIVERED, 3, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_4", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_5", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, NULL, NULL, 0, E0 },
	} },
	{ "checkouts read ahead, and again past what they read", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		/* appended after the read that ended at evt_1 */
		{ OP_APPEND, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_DELIVERED, 1, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_4", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_5", NULL, 0, E0 },
		{ OP_CHECKOUT, 3, 0, NULL, NULL, 0, E0 },
		{ OP_RELEASE, 2, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E0 },
		/* bigger than what one read holds, between small ones */
		{ OP_APPEND_BIG, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_DRAIN_BIG, 3, 0, NULL, NULL, 0, E0 },
	} },
	{ "killed before flushing: those events go out again", {
		{ OP_APPEND, 5, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_KILL_DELIVERED, 2, 0, NULL, NULL, 0, E0 },
		/* the next turn's outcomes are lost with the process */
		{ OP_KILL_DELIVERED, 2, 1, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_4", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_5", NULL, 0, E0 },
		{ OP_CHECKOUT, 3, 0, NULL, NULL, 0, E0 },
	} },
	{ "attempt bookkeeping survives reopen, then dead-letter", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_ATTEMPTS, 0, 0, NULL, NULL, 0, E0 },
		{ OP_RESCHEDULE, 0, 5000, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
		/* evt_2 (never tried) is due first */
		{ OP_EXPECT_DUE, 0, 2, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_EXPECT_DUE, 0, 5000, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, BASE_MS + 4999, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, BASE_MS + 5000, "evt_1", NULL, 0, E0 },
		{ OP_ATTEMPTS, 0, 1, NULL, NULL, 0, E0 },
		{ OP_RESCHEDULE, 0, 9000, NULL, NULL, 0, E0 },
		{ OP_RELEASE, 1, 0, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_DUE, 0, 2, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_ATTEMPTS, 1, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_DUE, 0, 9000, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_ATTEMPTS, 0, 2, NULL, NULL, 0, E0 },
		{ OP_DEAD, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 1, 1, 0) },
		{ OP_EXPECT_DEAD_FILE, 0, 3, "evt_1", NULL, 0, E0 },
	} },
	{ "dead-lettered events stay dead after reopen", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_DEAD, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 1, 0, "dead", NULL, 0, E0 },
		{ OP_EXPECT_DEAD_FILE, 0, 1, "evt_1", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 1, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_2", NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_READ_ONLY, 0, 0, NULL, NULL, 0, E(0, 0, 0, 1, 0) },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 0, 0, "seg", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 1, 0) },
	} },
	{ "first delay of the schedule", {
		{ OP_FIRST_DELAY, 0, 5000, NULL, NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_DUE, 0, 5001, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, BASE_MS + 5000, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, BASE_MS + 5001, "evt_1", NULL, 0, E0 },
		{ OP_RELEASE, 0, 0, NULL, NULL, 0, E0 },
		{ OP_FIRST_DELAY, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_DUE, 0, 1, NULL, NULL, 0, E0 },
	} },
	{ "outcome log: a cut-off last line and garbage", {
		{ OP_APPEND, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_2", NULL, 0, E0 },
		{ OP_RESCHEDULE, 0, 7000, NULL, NULL, 0, E0 },
		{ OP_LOG_TAIL, 0, 0, NULL, STR_LEN("Z 1\nD 99999999999\nD 2"),
		  E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_LOG, 0, 0, "2 unreadable lines", NULL, 0, E0 },
		{ OP_EXPECT_LOG, 0, 0, "truncated last line", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		/* the cut line was removed: this "D 2" is read */
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 1, 0, 0, 0) },
		{ OP_EXPECT_DUE, 0, 7000, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_2", NULL, 0, E0 },
		{ OP_ATTEMPTS, 0, 1, NULL, NULL, 0, E0 },
	} },
	{ "rotation: a full segment is closed, and deleted when done", {
		{ OP_APPEND, WEBHOOK_SPOOL_SEGMENT_EVENTS, 0, NULL, NULL, 0,
		  E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 1, 0, "seg", NULL, 0, E0 },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 2, 0, "seg", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0,
		  E(WEBHOOK_SPOOL_SEGMENT_EVENTS + 1, 0, 0, 0, 0) },
		{ OP_DRAIN, WEBHOOK_SPOOL_SEGMENT_EVENTS + 1, 0, NULL, NULL, 0,
		  E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		/* the first went with its log; the current one stays */
		{ OP_EXPECT_FILES, 2, 0, "seg", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 0, 0, "seg", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
	} },
	{ "an id held pending or in the batch is not appended again", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		/* in the uncommitted batch */
		{ OP_APPEND_HELD, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		/* pending */
		{ OP_APPEND_HELD, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		/* pending after a restart */
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND_HELD, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_DRAIN, 2, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
		/* an aborted batch holds nothing */
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_ABORT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_APPEND_NEW, 1, 3, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
	} },
	{ "a done id is held for the recent window, across a restart", {
		{ OP_RECENT, 0, 3600000, NULL, NULL, 0, E0 },
		{ OP_APPEND, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_2", NULL, 0, E0 },
		{ OP_DEAD, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		/* delivered, dead-lettered, pending: all held */
		{ OP_APPEND_HELD, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 1, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E0 },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		/* done, and kept: its ids are read again at the restart */
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 2, 0, "seg", NULL, 0, E0 },
		{ OP_APPEND_HELD, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 1, 0) },
		/* the window is over: the segment goes, the ids with it */
		{ OP_RECENT, 0, 1, NULL, NULL, 0, E0 },
		{ OP_SLEEP, 0, 20, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 0, 0, "seg", NULL, 0, E0 },
		{ OP_APPEND_NEW, 3, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 1, 0) },
	} },
	{ "one owner at a time; read-only opens beside it", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SECOND_OWNER, 0, 0, "in use by another process", NULL, 0,
		  E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_RESCHEDULE, 0, 10, NULL, NULL, 0, E0 },
		{ OP_READ_ONLY, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
	} },
	{ "invalid appends are refused", {
		{ OP_APPEND_BAD, 0, 0, "id", NULL, 0, E0 },
		{ OP_APPEND_BAD, 0, 0, "empty", NULL, 0, E0 },
		{ OP_APPEND_BAD, 0, 0, "large", NULL, 0, E0 },
		{ OP_APPEND_BAD, 0, 0, "time", NULL, 0, E0 },
		{ OP_EXPECT_FILES, 0, 0, "seg", NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E0 },
	} },
	{ "a full batch is committed automatically", {
		{ OP_APPEND, WEBHOOK_SPOOL_BATCH_MAX + 1, 0, NULL, NULL, 0,
		  E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0,
		  E(WEBHOOK_SPOOL_BATCH_MAX, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0,
		  E(WEBHOOK_SPOOL_BATCH_MAX + 1, 0, 0, 0, 0) },
	} },
};

/* Corrupt segments: a hand-written segment seg/1-1-1.seg holds a good
   record (evt_c), then the case's record, then a good one (evt_d),
   beside a good segment written by the spool (evt_1). The owner must
   keep evt_c and evt_1, and move the bad record and what follows to
   corrupt/ (or cut an incomplete last record off silently). */
struct seg_case {
	const char *name;
	const char *data;	/* after the magic line and evt_c */
	size_t len;
	bool no_magic;		/* data is the whole file */
	const char *reason;	/* logged; NULL: nothing quarantined */
	unsigned int pending;	/* after open, evt_1 included */
	unsigned int corrupt;
};

#define SEG_MAGIC "pop3-retention-segment 1\n"
/* SHA-256 of {"a":1} and {"b":2} (Python hashlib) */
#define SHA_A1 "015abd7f5cc57a2dd94b7590f04ad808" \
	"4273905ee33ec5cebeae62276a97f862"
#define SHA_B2 "0ab1a6d394cd30195f0642b67ae1180c" \
	"375ffadf5dd7f39c390668b5fdb6da93"
#define REC_C "E evt_c 5 7 " SHA_A1 "\n{\"a\":1}\n"
#define REC_D "E evt_d 6 7 " SHA_B2 "\n{\"b\":2}\n"
#define Z64 "00000000000000000000000000000000" \
	"00000000000000000000000000000000"

static const struct seg_case seg_cases[] = {
	{ "well-formed control", STR_LEN(REC_D), false, NULL, 3, 0 },
	{ "unknown record type", STR_LEN("F evt_x 6 7 " SHA_B2
	  "\n{\"b\":2}\n" REC_D), false, "bad record header", 2, 1 },
	{ "id with a dot", STR_LEN("E evt.x 6 7 " SHA_B2 "\n{\"b\":2}\n"
	  REC_D), false, "bad record id", 2, 1 },
	{ "two spaces", STR_LEN("E evt_x  6 7 " SHA_B2 "\n{\"b\":2}\n"
	  REC_D), false, "bad record header", 2, 1 },
	{ "negative creation time", STR_LEN("E evt_x -6 7 " SHA_B2
	  "\n{\"b\":2}\n" REC_D), false, "bad record creation time", 2, 1 },
	{ "zero length", STR_LEN("E evt_x 6 0 " SHA_B2 "\n\n" REC_D), false,
	  "bad record length", 2, 1 },
	{ "length over the limit", STR_LEN("E evt_x 6 65537 " SHA_B2
	  "\n{\"b\":2}\n" REC_D), false, "bad record length", 2, 1 },
	{ "length too short", STR_LEN("E evt_x 6 5 " SHA_B2 "\n{\"b\":2}\n"
	  REC_D), false, "bad record length", 2, 1 },
	{ "length past the end, records after it", STR_LEN("E evt_x 6 900 "
	  SHA_B2 "\n{\"b\":2}\n" REC_D), false, "bad record length", 2, 1 },
	{ "short sha256", STR_LEN("E evt_x 6 7 0ab1a6\n{\"b\":2}\n" REC_D),
	  false, "bad record sha256", 2, 1 },
	{ "body does not match its sha256", STR_LEN("E evt_x 6 7 " SHA_A1
	  "\n{\"b\":2}\n" REC_D), false, "body does not match its sha256",
	  2, 1 },
	{ "binary garbage", STR_LEN("\x00\xff\x01\x02\n" REC_D), false,
	  "bad record header", 2, 1 },
	{ "header line without an end", STR_LEN("E evt_x 6 7 " Z64 Z64 Z64 Z64
	  "\n{\"b\":2}\n" REC_D), false, "record header line too long", 2,
	  1 },
	/* a crash: silently cut off, nothing quarantined */
	{ "incomplete last body", STR_LEN("E evt_x 6 7 " SHA_B2 "\n{\"b\""),
	  false, NULL, 2, 0 },
	{ "incomplete last header line", STR_LEN("E evt_x 6 7 0ab1"), false,
	  NULL, 2, 0 },
	{ "newline missing at the very end", STR_LEN(REC_D "E evt_y 7 7 "
	  SHA_B2 "\n{\"b\":2}"), false, NULL, 3, 0 },
	/* whole files */
	{ "unknown format version", STR_LEN("pop3-retention-segment 2\n"
	  REC_C), true, "not a segment", 1, 1 },
	{ "empty file", "", 0, true, NULL, 1, 0 },
	{ "magic line cut short", STR_LEN("pop3-retention-seg"), true, NULL,
	  1, 0 },
};

struct test_ctx {
	char dir[PATH_SIZE];
	char spool_dir[PATH_SIZE + 16];
	struct webhook_spool *spool;
	int64_t recent_ms;
	struct webhook_spool_event *slots[SLOTS];
	unsigned int next_k;
	char tail_path[PATH_SIZE * 2];	/* of the last OP_SEG_TAIL */
	off_t tail_size;		/* its size before */
	char *log[LOG_MAX];
	unsigned int log_count;
};

/* The context of the running test, freed by the teardown when the test
   fails half-way (cmocka leaves the test function with a longjmp). */
static struct test_ctx *current_ctx;

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

static void test_log(void *context, enum webhook_log_level level,
		     const char *message)
{
	struct test_ctx *ctx = context;

	(void)level;
	if (ctx->log_count < LOG_MAX)
		ctx->log[ctx->log_count++] = strdup(message);
}

static bool log_contains(const struct test_ctx *ctx, const char *part)
{
	unsigned int i;

	for (i = 0; i < ctx->log_count; i++) {
		if (ctx->log[i] != NULL && strstr(ctx->log[i], part) != NULL)
			return true;
	}
	return false;
}

static void body_of(unsigned int k, char *buf, size_t size)
{
	snprintf(buf, size, "{\"type\":\"message.retrieved\",\"n\":%u,"
		 "\"pad\":\"%0*u\"}", k, (int)(k % 50), 0U);
}

static unsigned int count_files(const char *path)
{
	unsigned int count = 0;
	struct dirent *de;
	DIR *dir;

	dir = opendir(path);
	if (dir == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] != '.')
			count++;
	}
	closedir(dir);
	return count;
}

static struct test_ctx *ctx_init(size_t idx, const char *name)
{
	const char *tmpdir = getenv("TMPDIR");
	struct test_ctx *ctx;

	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		case_fail(idx, name, "out of memory");
	current_ctx = ctx;
	snprintf(ctx->dir, sizeof(ctx->dir), "%s/test-webhook-spool.XXXXXX",
		 tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
	if (mkdtemp(ctx->dir) == NULL) {
		ctx->dir[0] = '\0';
		case_fail(idx, name, "mkdtemp: %s", strerror(errno));
	}
	snprintf(ctx->spool_dir, sizeof(ctx->spool_dir), "%s/spool",
		 ctx->dir);
	return ctx;
}

static void ctx_open(size_t idx, const char *name, struct test_ctx *ctx)
{
	ctx->spool = webhook_spool_create(ctx->spool_dir, 0);
	if (ctx->spool == NULL)
		case_fail(idx, name, "webhook_spool_create() failed");
	webhook_spool_set_log(ctx->spool, test_log, ctx);
	webhook_spool_set_recent(ctx->spool, ctx->recent_ms);
	if (webhook_spool_open(ctx->spool) < 0)
		case_fail(idx, name, "open: %s",
			  webhook_spool_error(ctx->spool));
}

static void ctx_reopen(size_t idx, const char *name, struct test_ctx *ctx)
{
	webhook_spool_destroy(&ctx->spool);
	memset(ctx->slots, 0, sizeof(ctx->slots));
	ctx_open(idx, name, ctx);
}

/* Release everything and free ctx. */
static void ctx_free(struct test_ctx *ctx)
{
	unsigned int i;

	current_ctx = NULL;
	webhook_spool_destroy(&ctx->spool);
	for (i = 0; i < ctx->log_count; i++)
		free(ctx->log[i]);
	ctx->log_count = 0;
	if (ctx->dir[0] != '\0')
		(void)test_remove_tree(ctx->dir);
	free(ctx);
}

static int teardown(void **state)
{
	(void)state;
	if (current_ctx != NULL)
		ctx_free(current_ctx);
	return 0;
}

static void check_counts(size_t idx, const char *name, unsigned int step,
			 const struct webhook_spool_counts *got,
			 const struct expect *e)
{
	if (got->pending != e->pending || got->retrying != e->retrying ||
	    got->checked_out != e->checked_out || got->dead != e->dead ||
	    got->corrupt != e->corrupt)
		case_fail(idx, name, "step %u: counts pending %u retrying %u "
			  "checked out %u dead %u corrupt %u, expected "
			  "%u %u %u %u %u", step, got->pending, got->retrying,
			  got->checked_out, got->dead, got->corrupt,
			  e->pending, e->retrying, e->checked_out, e->dead,
			  e->corrupt);
}

static void append_events(size_t idx, const char *name, unsigned int step,
			  struct webhook_spool *spool, unsigned int *next_k,
			  unsigned int count)
{
	char id[32], body[256];
	unsigned int i, k;

	for (i = 0; i < count; i++) {
		k = ++*next_k;
		snprintf(id, sizeof(id), "evt_%u", k);
		body_of(k, body, sizeof(body));
		if (webhook_spool_append(spool, id, body, strlen(body),
					 BASE_MS + k) != 0)
			case_fail(idx, name, "step %u: append %s: %s", step,
				  id, webhook_spool_error(spool));
	}
}

/* Events evt_<first>..evt_<first + count - 1> again: 1 if each must be
   skipped, 0 if each must be appended. */
static void append_again(size_t idx, const char *name, unsigned int step,
			 struct webhook_spool *spool, unsigned int first,
			 unsigned int count, int expected)
{
	char id[32], body[256];
	unsigned int k;
	int ret;

	for (k = first; k < first + count; k++) {
		snprintf(id, sizeof(id), "evt_%u", k);
		body_of(k, body, sizeof(body));
		ret = webhook_spool_append(spool, id, body, strlen(body),
					   BASE_MS + k);
		if (ret != expected)
			case_fail(idx, name, "step %u: append %s again "
				  "returned %d, expected %d (%s)", step, id,
				  ret, expected, webhook_spool_error(spool));
	}
}

static void check_event(size_t idx, const char *name, unsigned int step,
			const struct webhook_spool_event *event,
			const char *expected_id)
{
	char body[256];
	unsigned int k;

	if (strcmp(event->id, expected_id) != 0)
		case_fail(idx, name, "step %u: checked out %s, expected %s",
			  step, event->id, expected_id);
	if (sscanf(event->id, "evt_%u", &k) != 1)
		case_fail(idx, name, "step %u: odd id %s", step, event->id);
	body_of(k, body, sizeof(body));
	/* the exact bytes, as appended */
	if (event->body_len != strlen(body) ||
	    memcmp(event->body, body, event->body_len) != 0 ||
	    event->body[event->body_len] != '\0')
		case_fail(idx, name, "step %u: body of %s differs", step,
			  event->id);
	if (event->created_ms != BASE_MS + k)
		case_fail(idx, name, "step %u: created %" PRId64
			  ", expected %" PRId64, step, event->created_ms,
			  BASE_MS + k);
}

/* The child appends, maybe commits, and dies without closing. */
static void crash_child(size_t idx, const char *name, unsigned int step,
			struct test_ctx *ctx, unsigned int count, bool commit)
{
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		case_fail(idx, name, "fork: %s", strerror(errno));
	if (pid == 0) {
		char id[32], body[256];
		unsigned int i, k;

		/* no cmocka in the child: a failure is its exit status */
		for (i = 0; i < count; i++) {
			k = ctx->next_k + 1 + i;
			snprintf(id, sizeof(id), "evt_%u", k);
			body_of(k, body, sizeof(body));
			if (webhook_spool_append(ctx->spool, id, body,
						 strlen(body),
						 BASE_MS + k) < 0)
				_exit(1);
		}
		if (commit && webhook_spool_commit(ctx->spool) < 0)
			_exit(2);
		/* no destroy, no cleanup */
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		case_fail(idx, name, "step %u: the crashing child failed",
			  step);
	ctx->next_k += count;
}

/* A child owner checks out and delivers count events, flushes unless
   told not to, then is killed with SIGKILL: no destroy, no sync. */
static void kill_delivered(size_t idx, const char *name, unsigned int step,
			   struct test_ctx *ctx, unsigned int count,
			   bool flush)
{
	int fds[2], status;
	char c = 0;
	pid_t pid;

	webhook_spool_destroy(&ctx->spool);
	memset(ctx->slots, 0, sizeof(ctx->slots));
	if (pipe(fds) < 0)
		case_fail(idx, name, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		case_fail(idx, name, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct webhook_spool_event *event;
		struct webhook_spool *spool;
		unsigned int i;

		(void)close(fds[0]);
		spool = webhook_spool_create(ctx->spool_dir, 0);
		if (spool == NULL)
			_exit(1);
		webhook_spool_set_recent(spool, ctx->recent_ms);
		if (webhook_spool_open(spool) < 0)
			_exit(1);
		for (i = 0; i < count; i++) {
			if (webhook_spool_checkout(spool, FAR_MS,
						   &event) != 1 ||
			    webhook_spool_delivered(spool, &event) < 0)
				_exit(2);
		}
		if (flush && webhook_spool_flush(spool) < 0)
			_exit(4);
		c = 'k';
		if (write(fds[1], &c, 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	(void)close(fds[1]);
	if (read(fds[0], &c, 1) != 1 || c != 'k') {
		(void)waitpid(pid, &status, 0);
		case_fail(idx, name, "step %u: the child failed (%d)", step,
			  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	(void)close(fds[0]);
	(void)kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
		case_fail(idx, name, "step %u: the child was not killed",
			  step);
	ctx_open(idx, name, ctx);
}

/* The newest segment of the spool (by its name's numbers), with
   suffix: "<ms>-<pid>-<seq>.seg". */
static void newest_segment(size_t idx, const char *name,
			   struct test_ctx *ctx, const char *suffix,
			   char *path, size_t size)
{
	char seg_dir[PATH_SIZE + 32], best[256] = "";
	int64_t ms, best_ms = -1;
	unsigned long pid, best_pid = 0;
	unsigned int seq, best_seq = 0;
	struct dirent *de;
	int n;
	DIR *dir;

	snprintf(seg_dir, sizeof(seg_dir), "%s/seg", ctx->spool_dir);
	dir = opendir(seg_dir);
	if (dir == NULL)
		case_fail(idx, name, "opendir %s: %s", seg_dir,
			  strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		n = 0;
		if (sscanf(de->d_name, "%" SCNd64 "-%lu-%u.seg%n", &ms, &pid,
			   &seq, &n) != 3 || de->d_name[n] != '\0')
			continue;
		if (ms > best_ms || (ms == best_ms && (pid > best_pid ||
		    (pid == best_pid && seq > best_seq)))) {
			best_ms = ms;
			best_pid = pid;
			best_seq = seq;
			snprintf(best, sizeof(best), "%s", de->d_name);
		}
	}
	closedir(dir);
	if (best[0] == '\0')
		case_fail(idx, name, "no segment in %s", seg_dir);
	best[strlen(best) - 4] = '\0';
	snprintf(path, size, "%s/%s%s", seg_dir, best, suffix);
}

static void write_path(size_t idx, const char *name, const char *path,
		       int flags, const char *data, size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | flags, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		case_fail(idx, name, "writing %s: %s", path, strerror(errno));
}

/* Does a dead/ file hold the event, in the documented format? */
static void check_dead_file(size_t idx, const char *name, unsigned int step,
			    struct test_ctx *ctx, const char *id,
			    unsigned int attempts)
{
	char dead_dir[PATH_SIZE * 2], path[PATH_SIZE * 3], buf[2048];
	char expected[1024], body[256];
	struct dirent *de;
	unsigned int k;
	ssize_t len;
	bool found = false;
	int fd;
	DIR *dir;

	if (sscanf(id, "evt_%u", &k) != 1)
		case_fail(idx, name, "odd id %s", id);
	body_of(k, body, sizeof(body));
	snprintf(expected, sizeof(expected), "id %s\ncreated %" PRId64
		 "\nattempts %u\nlength %zu\n", id, BASE_MS + k, attempts,
		 strlen(body));
	snprintf(dead_dir, sizeof(dead_dir), "%s/dead", ctx->spool_dir);
	dir = opendir(dead_dir);
	while (dir != NULL && !found && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dead_dir, de->d_name);
		fd = open(path, O_RDONLY);
		len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			(void)close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		if (strncmp(buf, "pop3-retention-dead 1\n", 22) == 0 &&
		    strstr(buf, expected) != NULL &&
		    (size_t)len > strlen(body) &&
		    strcmp(buf + len - strlen(body), body) == 0 &&
		    strstr(buf, "\n\n") == buf + len - strlen(body) - 2)
			found = true;
	}
	if (dir != NULL)
		closedir(dir);
	if (!found)
		case_fail(idx, name, "step %u: no dead/ file for %s with %u "
			  "attempts", step, id, attempts);
}

static void read_only_counts(size_t idx, const char *name, unsigned int step,
			     struct test_ctx *ctx, const struct expect *e)
{
	struct webhook_spool_event *event = NULL;
	struct webhook_spool_counts counts;
	struct webhook_spool *other;

	other = webhook_spool_create(ctx->spool_dir, WEBHOOK_SPOOL_READ_ONLY);
	if (other == NULL || webhook_spool_open(other) < 0)
		case_fail(idx, name, "step %u: read-only open: %s", step,
			  other == NULL ? "alloc" :
			  webhook_spool_error(other));
	webhook_spool_counts(other, &counts);
	check_counts(idx, name, step, &counts, e);
	if (webhook_spool_append(other, "evt_1", "{}", 2, 1) != -1 ||
	    webhook_spool_checkout(other, FAR_MS, &event) != -1)
		case_fail(idx, name, "step %u: read-only spool accepted a "
			  "change", step);
	webhook_spool_destroy(&other);
}

static void run_op(size_t idx, const char *name, unsigned int step,
		   struct test_ctx *ctx, const struct op *op)
{
	struct webhook_spool_event *event;
	struct webhook_spool_counts counts;
	struct webhook_spool *other;
	char path[PATH_SIZE * 2], big[WEBHOOK_SPOOL_BODY_MAX + 2], id[32];
	int64_t now, expected;
	struct timespec ts;
	unsigned int i, k;
	struct stat st;
	int ret;

	switch (op->kind) {
	case OP_END:
		break;
	case OP_APPEND:
		append_events(idx, name, step, ctx->spool, &ctx->next_k,
			      op->n);
		break;
	case OP_APPEND_BAD:
		if (strcmp(op->s, "id") == 0)
			ret = webhook_spool_append(ctx->spool, "evt.1", "{}",
						   2, BASE_MS);
		else if (strcmp(op->s, "empty") == 0)
			ret = webhook_spool_append(ctx->spool, "evt_1", "",
						   0, BASE_MS);
		else if (strcmp(op->s, "time") == 0)
			ret = webhook_spool_append(ctx->spool, "evt_1", "{}",
						   2, -1);
		else {
			memset(big, 'x', sizeof(big));
			ret = webhook_spool_append(ctx->spool, "evt_1", big,
						   WEBHOOK_SPOOL_BODY_MAX + 1,
						   BASE_MS);
		}
		if (ret != -1 || webhook_spool_error(ctx->spool)[0] == '\0')
			case_fail(idx, name, "step %u: bad append (%s) "
				  "returned %d", step, op->s, ret);
		break;
	case OP_APPEND_BIG:
		for (i = 0; i < op->n; i++) {
			snprintf(id, sizeof(id), "big_%u", i);
			memset(big, 'a' + (int)(i % 26), sizeof(big));
			/* created long ago: checked out first */
			if (webhook_spool_append(ctx->spool, id, big,
						 60000 + i, 1 + i) < 0)
				case_fail(idx, name, "step %u: append %s: %s",
					  step, id,
					  webhook_spool_error(ctx->spool));
		}
		break;
	case OP_DRAIN_BIG:
		for (i = 0; i < op->n; i++) {
			snprintf(id, sizeof(id), "big_%u", i);
			memset(big, 'a' + (int)(i % 26), sizeof(big));
			if (webhook_spool_checkout(ctx->spool, FAR_MS,
						   &event) != 1 ||
			    strcmp(event->id, id) != 0 ||
			    event->body_len != 60000 + i ||
			    memcmp(event->body, big, event->body_len) != 0 ||
			    event->body[event->body_len] != '\0')
				case_fail(idx, name, "step %u: %s not checked "
					  "out intact", step, id);
			if (webhook_spool_delivered(ctx->spool, &event) < 0)
				case_fail(idx, name, "step %u: delivered: %s",
					  step,
					  webhook_spool_error(ctx->spool));
		}
		break;
	case OP_COMMIT:
		if (webhook_spool_commit(ctx->spool) < 0)
			case_fail(idx, name, "step %u: commit: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_ABORT:
		webhook_spool_abort(ctx->spool);
		break;
	case OP_CRASH_APPEND:
	case OP_CRASH_COMMIT:
		crash_child(idx, name, step, ctx, op->n,
			    op->kind == OP_CRASH_COMMIT);
		break;
	case OP_KILL_DELIVERED:
		kill_delivered(idx, name, step, ctx, op->n, op->t == 0);
		break;
	case OP_REOPEN:
		ctx_reopen(idx, name, ctx);
		break;
	case OP_FIRST_DELAY:
		webhook_spool_set_first_delay(ctx->spool, op->t);
		break;
	case OP_CHECKOUT:
		now = op->t != 0 ? op->t : FAR_MS;
		ret = webhook_spool_checkout(ctx->spool, now,
					     &ctx->slots[op->n]);
		if (op->s == NULL && ret != 0)
			case_fail(idx, name, "step %u: checkout returned %d "
				  "(%s), expected nothing due", step, ret,
				  ret == 1 ? ctx->slots[op->n]->id :
				  webhook_spool_error(ctx->spool));
		if (op->s != NULL && ret != 1)
			case_fail(idx, name, "step %u: checkout returned %d "
				  "(%s), expected %s", step, ret,
				  webhook_spool_error(ctx->spool), op->s);
		if (op->s != NULL)
			check_event(idx, name, step, ctx->slots[op->n], op->s);
		break;
	case OP_ATTEMPTS:
		if (ctx->slots[op->n]->attempts != (unsigned int)op->t)
			case_fail(idx, name, "step %u: %u attempts, expected "
				  "%" PRId64, step,
				  ctx->slots[op->n]->attempts, op->t);
		break;
	case OP_DELIVERED:
		if (webhook_spool_delivered(ctx->spool, &ctx->slots[op->n]) <
		    0 || ctx->slots[op->n] != NULL)
			case_fail(idx, name, "step %u: delivered: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_RESCHEDULE:
		if (webhook_spool_reschedule(ctx->spool, &ctx->slots[op->n],
					     BASE_MS + op->t) < 0 ||
		    ctx->slots[op->n] != NULL)
			case_fail(idx, name, "step %u: reschedule: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_DEAD:
		if (webhook_spool_dead_letter(ctx->spool,
					      &ctx->slots[op->n]) < 0 ||
		    ctx->slots[op->n] != NULL)
			case_fail(idx, name, "step %u: dead letter: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_RELEASE:
		webhook_spool_release(ctx->spool, &ctx->slots[op->n]);
		if (ctx->slots[op->n] != NULL)
			case_fail(idx, name, "step %u: release kept the "
				  "pointer", step);
		break;
	case OP_DRAIN:
		for (i = 0; i < op->n; i++) {
			if (webhook_spool_checkout(ctx->spool, FAR_MS,
						   &event) != 1)
				case_fail(idx, name, "step %u: drain stopped "
					  "after %u: %s", step, i,
					  webhook_spool_error(ctx->spool));
			k = i + 1;
			snprintf(id, sizeof(id), "evt_%u", k);
			check_event(idx, name, step, event, id);
			if (webhook_spool_delivered(ctx->spool, &event) < 0)
				case_fail(idx, name, "step %u: delivered: %s",
					  step,
					  webhook_spool_error(ctx->spool));
		}
		break;
	case OP_SYNC:
		if (webhook_spool_sync(ctx->spool) < 0)
			case_fail(idx, name, "step %u: sync: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_EXPECT:
		webhook_spool_counts(ctx->spool, &counts);
		check_counts(idx, name, step, &counts, &op->e);
		break;
	case OP_EXPECT_DUE:
		expected = op->t < 0 ? -1 : BASE_MS + op->t;
		if (webhook_spool_next_due(ctx->spool) != expected)
			case_fail(idx, name, "step %u: next due %" PRId64
				  ", expected %" PRId64, step,
				  webhook_spool_next_due(ctx->spool),
				  expected);
		break;
	case OP_EXPECT_DUE_SOON:
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		expected = webhook_spool_next_due(ctx->spool);
		if (expected < 0 || expected > now + 2000)
			case_fail(idx, name, "step %u: next due %" PRId64
				  ", expected within 2 s of %" PRId64, step,
				  expected, now);
		break;
	case OP_EXPECT_OLDEST:
		expected = op->t < 0 ? -1 : BASE_MS + op->t;
		webhook_spool_counts(ctx->spool, &counts);
		if (counts.oldest_created_ms != expected)
			case_fail(idx, name, "step %u: oldest %" PRId64
				  ", expected %" PRId64, step,
				  counts.oldest_created_ms, expected);
		break;
	case OP_EXPECT_FILES:
		snprintf(path, sizeof(path), "%s/%s", ctx->spool_dir, op->s);
		if (count_files(path) != op->n)
			case_fail(idx, name, "step %u: %u files in %s, "
				  "expected %u", step, count_files(path),
				  op->s, op->n);
		break;
	case OP_EXPECT_LOG:
		if (!log_contains(ctx, op->s))
			case_fail(idx, name, "step %u: no log line contains "
				  "\"%s\"", step, op->s);
		break;
	case OP_EXPECT_DEAD_FILE:
		check_dead_file(idx, name, step, ctx, op->s,
				(unsigned int)op->t);
		break;
	case OP_WRITE_FILE:
		snprintf(path, sizeof(path), "%s/%s", ctx->spool_dir, op->s);
		write_path(idx, name, path, O_TRUNC, op->data, op->len);
		break;
	case OP_SEG_TAIL:
	case OP_LOG_TAIL:
		newest_segment(idx, name, ctx, op->kind == OP_SEG_TAIL ?
			       ".seg" : ".log", path, sizeof(path));
		if (stat(path, &st) < 0)
			case_fail(idx, name, "stat %s: %s", path,
				  strerror(errno));
		snprintf(ctx->tail_path, sizeof(ctx->tail_path), "%s", path);
		ctx->tail_size = st.st_size;
		write_path(idx, name, path, O_APPEND, op->data, op->len);
		break;
	case OP_TAIL_GONE:
		if (stat(ctx->tail_path, &st) < 0 ||
		    st.st_size != ctx->tail_size)
			case_fail(idx, name, "step %u: %s not cut back to %lld "
				  "bytes", step, ctx->tail_path,
				  (long long)ctx->tail_size);
		break;
	case OP_APPEND_HELD:
		append_again(idx, name, step, ctx->spool, 1, op->n, 1);
		break;
	case OP_APPEND_NEW:
		append_again(idx, name, step, ctx->spool,
			     op->t > 0 ? (unsigned int)op->t : 1, op->n, 0);
		break;
	case OP_RECENT:
		ctx->recent_ms = op->t;
		webhook_spool_set_recent(ctx->spool, op->t);
		break;
	case OP_SLEEP:
		ts.tv_sec = op->t / 1000;
		ts.tv_nsec = (long)(op->t % 1000) * 1000000;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		break;
	case OP_SECOND_OWNER:
		other = webhook_spool_create(ctx->spool_dir, 0);
		if (other == NULL)
			case_fail(idx, name, "alloc");
		ret = webhook_spool_open(other);
		if (ret != -1 ||
		    strstr(webhook_spool_error(other), op->s) == NULL)
			case_fail(idx, name, "step %u: second owner: %d "
				  "\"%s\"", step, ret,
				  webhook_spool_error(other));
		webhook_spool_destroy(&other);
		break;
	case OP_READ_ONLY:
		read_only_counts(idx, name, step, ctx, &op->e);
		break;
	}
}

static void test_spool(void **state)
{
	const struct spool_case *c = *state;
	size_t idx = (size_t)(c - spool_cases);
	struct test_ctx *ctx;
	unsigned int i;

	ctx = ctx_init(idx, c->name);
	ctx_open(idx, c->name, ctx);
	for (i = 0; i < OPS_MAX && c->ops[i].kind != OP_END; i++) {
		run_op(idx, c->name, i, ctx, &c->ops[i]);
		/* each step is a loop turn of the delivery engine, which
		   writes its outcomes before it waits again */
		if (ctx->spool != NULL && webhook_spool_flush(ctx->spool) < 0)
			case_fail(idx, c->name, "step %u: flush: %s", i,
				  webhook_spool_error(ctx->spool));
	}
	ctx_free(ctx);
}

/* Check out every event and deliver it; each must be one of the known
   ones, with its exact body. */
static void drain_known(size_t idx, const char *name, struct test_ctx *ctx,
			unsigned int expected)
{
	struct webhook_spool_event *event;
	unsigned int got = 0;
	char body[256];
	int ret;

	while ((ret = webhook_spool_checkout(ctx->spool, FAR_MS,
					     &event)) == 1) {
		if (strcmp(event->id, "evt_1") == 0)
			check_event(idx, name, 0, event, "evt_1");
		else {
			snprintf(body, sizeof(body), "%s",
				 strcmp(event->id, "evt_c") == 0 ?
				 "{\"a\":1}" : "{\"b\":2}");
			if ((strcmp(event->id, "evt_c") != 0 &&
			     strcmp(event->id, "evt_d") != 0 &&
			     strcmp(event->id, "evt_y") != 0) ||
			    event->body_len != strlen(body) ||
			    memcmp(event->body, body, event->body_len) != 0)
				case_fail(idx, name, "unexpected event %s",
					  event->id);
		}
		if (webhook_spool_delivered(ctx->spool, &event) < 0)
			case_fail(idx, name, "delivered: %s",
				  webhook_spool_error(ctx->spool));
		got++;
	}
	if (ret != 0 || got != expected)
		case_fail(idx, name, "checked out %u events (%d), expected %u",
			  got, ret, expected);
}

static void test_segment(void **state)
{
	const struct seg_case *c = *state;
	size_t idx = (size_t)(c - seg_cases);
	struct webhook_spool_counts counts;
	struct expect e;
	struct test_ctx *ctx;
	char path[PATH_SIZE * 2];
	unsigned int k = 0;
	struct stat st;
	off_t size;

	ctx = ctx_init(idx, c->name);
	ctx_open(idx, c->name, ctx);
	append_events(idx, c->name, 0, ctx->spool, &k, 1);
	if (webhook_spool_commit(ctx->spool) < 0)
		case_fail(idx, c->name, "commit: %s",
			  webhook_spool_error(ctx->spool));
	webhook_spool_destroy(&ctx->spool);
	snprintf(path, sizeof(path), "%s/seg/1-1-1.seg", ctx->spool_dir);
	if (c->no_magic) {
		write_path(idx, c->name, path, O_EXCL, c->data, c->len);
	} else {
		write_path(idx, c->name, path, O_EXCL, STR_LEN(SEG_MAGIC
			   REC_C));
		write_path(idx, c->name, path, O_APPEND, c->data, c->len);
	}
	size = c->no_magic ? (off_t)c->len :
		(off_t)(sizeof(SEG_MAGIC REC_C) - 1 + c->len);
	/* a status command sees the damage and changes nothing */
	memset(&e, 0, sizeof(e));
	e.pending = c->pending;
	e.corrupt = c->corrupt;
	read_only_counts(idx, c->name, 0, ctx, &e);
	if (stat(path, &st) < 0 || st.st_size != size)
		case_fail(idx, c->name, "read-only open changed the segment");

	ctx_open(idx, c->name, ctx);
	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != c->pending || counts.corrupt != c->corrupt)
		case_fail(idx, c->name, "after open: %u pending, %u corrupt, "
			  "expected %u and %u", counts.pending, counts.corrupt,
			  c->pending, c->corrupt);
	if (c->reason != NULL &&
	    (!log_contains(ctx, c->reason) || !log_contains(ctx, "corrupt/")))
		case_fail(idx, c->name, "no log line with \"%s\"", c->reason);
	snprintf(path, sizeof(path), "%s/corrupt", ctx->spool_dir);
	if (count_files(path) != c->corrupt)
		case_fail(idx, c->name, "%u files in corrupt/",
			  count_files(path));
	if (c->reason != NULL && !c->no_magic) {
		/* cut right after evt_c */
		snprintf(path, sizeof(path), "%s/seg/1-1-1.seg",
			 ctx->spool_dir);
		if (stat(path, &st) < 0 ||
		    st.st_size != (off_t)sizeof(SEG_MAGIC REC_C) - 1)
			case_fail(idx, c->name, "segment not cut at the bad "
				  "record");
	}
	/* the good events always come out, whatever the rest is */
	drain_known(idx, c->name, ctx, c->pending);
	/* and nothing comes back after another restart */
	ctx_reopen(idx, c->name, ctx);
	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != 0 || counts.corrupt != c->corrupt)
		case_fail(idx, c->name, "reopened: %u pending, %u corrupt",
			  counts.pending, counts.corrupt);
	if (webhook_spool_sync(ctx->spool) < 0)
		case_fail(idx, c->name, "sync: %s",
			  webhook_spool_error(ctx->spool));
	snprintf(path, sizeof(path), "%s/seg", ctx->spool_dir);
	if (count_files(path) != 0)
		case_fail(idx, c->name, "%u files left in seg/",
			  count_files(path));
	ctx_free(ctx);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE_TEARDOWN("webhook_spool scripts", test_spool,
				     teardown, spool_cases);
	failed += RUN_TABLE_TEARDOWN("webhook_spool corrupt segments",
				     test_segment, teardown, seg_cases);
	return failed == 0 ? 0 : 1;
}
