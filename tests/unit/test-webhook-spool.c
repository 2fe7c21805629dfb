/* The durable spool, driven by scripts of operations (one cmocka test
   per script): append/commit/checkout/outcomes, reopen (resume after a
   restart), real crashes (forked children that exit before or after
   commit, one killed with SIGKILL after recording outcomes), repairs
   of segment tails and outcome logs, rotation, dead letters, an
   APPEND_ONLY producer beside the owner, counts; a table of corrupt
   segments, each of which must be quarantined without losing the good
   events before it or in another segment; a table of old-format spool
   files, migrated or quarantined at open; and one producer thread
   against two delivery threads. Each test owns a fresh temporary
   directory. */

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
#include <pthread.h>
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
/* events of the concurrency test */
#define THREAD_EVENTS 20000
#define THREAD_BATCH 500

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
	OP_PRODUCER_APPEND, /* n events through an APPEND_ONLY handle */
	OP_PRODUCER_COMMIT,
	OP_PRODUCER_CLOSE,
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
		{ OP_CRASH_COMMIT, 2, 0, NULL, NULL, 0, E0 },
		/* the parent's own segment goes on working */
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_FILES, 2, 0, "seg", NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(4, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E0 },
		{ OP_CHECKOUT, 3, 0, "evt_4", NULL, 0, E0 },
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
	{ "an APPEND_ONLY producer beside the owner", {
		{ OP_PRODUCER_APPEND, 2, 0, NULL, NULL, 0, E0 },
		{ OP_PRODUCER_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_READ_ONLY, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		{ OP_SLEEP, 0, 1100, NULL, NULL, 0, E0 },
		/* still held by its writer: left alone */
		{ OP_CHECKOUT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_PRODUCER_CLOSE, 0, 0, NULL, NULL, 0, E0 },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		/* a producer starting beside a running owner */
		{ OP_PRODUCER_APPEND, 1, 0, NULL, NULL, 0, E0 },
		{ OP_PRODUCER_COMMIT, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SLEEP, 0, 1100, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E0 },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, NULL, NULL, 0, E0 },
		{ OP_EXPECT_DUE_SOON, 0, 0, NULL, NULL, 0, E0 },
		{ OP_PRODUCER_CLOSE, 0, 0, NULL, NULL, 0, E0 },
		{ OP_SLEEP, 0, 1100, NULL, NULL, 0, E0 },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E0 },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 3, 0, 0) },
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

/* Old-format spool files (one per event in new/): each is migrated at
   open beside a good old file (evt_g, 2 attempts made, next due at
   BASE_MS + 5000), or quarantined with the reason logged. */
struct old_case {
	const char *name;
	const char *file;	/* name in new/ */
	const char *data;	/* NULL: a symbolic link; "" + len 0: empty */
	size_t len;
	bool directory;
	const char *reason;
};

#define HDR(len, sha) \
	"pop3-retention-spool 1\nid evt_c\ncreated 5\nlength " len \
	"\nsha256 " sha "\n\n"
#define GOOD_NAME "5.9.9.0000abcd,0,0"
#define OLD_G_NAME "7.9.9.0000abce,2,1700000005000"
#define OLD_G "pop3-retention-spool 1\nid evt_g\ncreated 7\nlength 7\n" \
	"sha256 " SHA_A1 "\n\n{\"a\":1}"

static const struct old_case old_cases[] = {
	{ "well-formed control", GOOD_NAME, STR_LEN(HDR("7", SHA_A1)
	  "{\"a\":1}"), false, NULL },
	{ "bad file name", "garbage", STR_LEN("x"), false, "bad file name" },
	{ "name with a bad hex part", "5.9.9.0000abcz,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name" },
	{ "name without the state", "5.9.9.0000abcd",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name" },
	{ "name with a leading zero", "05.9.9.0000abcd,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name" },
	{ "name with an overflowing number",
	  "99999999999999999999.9.9.0000abcd,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name" },
	{ "empty file", GOOD_NAME, "", 0, false, "bad format line" },
	{ "unknown format version", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 2\nid evt_c\n"), false,
	  "bad format line" },
	{ "id with a dot", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt.c\ncreated 5\n"), false,
	  "bad id line" },
	{ "negative creation time", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt_c\ncreated -5\n"), false,
	  "bad created line" },
	{ "zero length", GOOD_NAME, STR_LEN(HDR("0", SHA_A1)), false,
	  "bad length line" },
	{ "length over the limit", GOOD_NAME,
	  STR_LEN(HDR("65537", SHA_A1) "{\"a\":1}"), false,
	  "bad length line" },
	{ "short sha256", GOOD_NAME, STR_LEN(HDR("7", "015abd") "{\"a\":1}"),
	  false, "bad sha256 line" },
	{ "no blank line", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt_c\ncreated 5\nlength 7\n"
		  "sha256 " SHA_A1 "\n{\"a\":1}"), false, "no blank line" },
	{ "truncated body", GOOD_NAME, STR_LEN(HDR("7", SHA_A1) "{\"a\""),
	  false, "truncated" },
	{ "trailing bytes", GOOD_NAME,
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}xx"), false, "trailing bytes" },
	{ "body does not match its checksum", GOOD_NAME,
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":2}"), false, "sha256" },
	{ "symbolic link", GOOD_NAME, NULL, 0, false, "symbolic link" },
	{ "directory", GOOD_NAME, "", 0, true, "not a regular file" },
	{ "binary garbage", GOOD_NAME, "\x00\xff\x01\x02", 4, false,
	  "bad format line" },
};

struct test_ctx {
	char dir[PATH_SIZE];
	char spool_dir[PATH_SIZE + 16];
	struct webhook_spool *spool;
	struct webhook_spool *producer;
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
		 "\"pad\":\"%0*u\"}", k, (int)(k % 50), 0);
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
	webhook_spool_destroy(&ctx->producer);
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
					 BASE_MS + k) < 0)
			case_fail(idx, name, "step %u: append %s: %s", step,
				  id, webhook_spool_error(spool));
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
		if (spool == NULL || webhook_spool_open(spool) < 0)
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

static void producer_open(size_t idx, const char *name, struct test_ctx *ctx)
{
	if (ctx->producer != NULL)
		return;
	ctx->producer = webhook_spool_create(ctx->spool_dir,
					     WEBHOOK_SPOOL_APPEND_ONLY);
	if (ctx->producer == NULL || webhook_spool_open(ctx->producer) < 0)
		case_fail(idx, name, "producer open: %s",
			  ctx->producer == NULL ? "alloc" :
			  webhook_spool_error(ctx->producer));
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
	case OP_PRODUCER_APPEND:
		producer_open(idx, name, ctx);
		append_events(idx, name, step, ctx->producer, &ctx->next_k,
			      op->n);
		break;
	case OP_PRODUCER_COMMIT:
		producer_open(idx, name, ctx);
		if (webhook_spool_commit(ctx->producer) < 0)
			case_fail(idx, name, "step %u: producer commit: %s",
				  step, webhook_spool_error(ctx->producer));
		break;
	case OP_PRODUCER_CLOSE:
		webhook_spool_destroy(&ctx->producer);
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

static void check_migrated(size_t idx, const struct old_case *c,
			   struct test_ctx *ctx)
{
	struct webhook_spool_counts counts;
	struct webhook_spool_event *event = NULL, *g = NULL;
	char path[PATH_SIZE * 2];
	unsigned int expected = c->reason == NULL ? 2 : 1;
	struct stat st;

	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != expected || counts.retrying != 1 ||
	    counts.corrupt != (c->reason == NULL ? 0 : 1) ||
	    counts.unindexed != 0)
		case_fail(idx, c->name, "%u pending, %u retrying, %u corrupt, "
			  "%u unindexed", counts.pending, counts.retrying,
			  counts.corrupt, counts.unindexed);
	snprintf(path, sizeof(path), "%s/new", ctx->spool_dir);
	if (lstat(path, &st) == 0)
		case_fail(idx, c->name, "new/ is still there");
	snprintf(path, sizeof(path), "%s/tmp", ctx->spool_dir);
	if (lstat(path, &st) == 0)
		case_fail(idx, c->name, "tmp/ is still there");
	if (c->reason == NULL) {
		if (webhook_spool_checkout(ctx->spool, BASE_MS, &event) != 1 ||
		    strcmp(event->id, "evt_c") != 0 ||
		    event->created_ms != 5 || event->attempts != 0 ||
		    event->body_len != 7 ||
		    memcmp(event->body, "{\"a\":1}", 8) != 0)
			case_fail(idx, c->name, "evt_c not migrated");
	}
	/* evt_g kept its attempts and due time */
	if (webhook_spool_checkout(ctx->spool, BASE_MS + 4999, &g) != 0 ||
	    webhook_spool_next_due(ctx->spool) != BASE_MS + 5000 ||
	    webhook_spool_checkout(ctx->spool, BASE_MS + 5000, &g) != 1 ||
	    strcmp(g->id, "evt_g") != 0 || g->attempts != 2 ||
	    g->created_ms != 7 || memcmp(g->body, "{\"a\":1}", 8) != 0)
		case_fail(idx, c->name, "evt_g not migrated with its state");
	webhook_spool_release(ctx->spool, &g);
	if (event != NULL)
		webhook_spool_release(ctx->spool, &event);
}

static void test_old_format(void **state)
{
	const struct old_case *c = *state;
	size_t idx = (size_t)(c - old_cases);
	struct test_ctx *ctx;
	char path[PATH_SIZE * 2];

	ctx = ctx_init(idx, c->name);
	(void)mkdir(ctx->spool_dir, 0700);
	snprintf(path, sizeof(path), "%s/new", ctx->spool_dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/tmp", ctx->spool_dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/tmp/" GOOD_NAME, ctx->spool_dir);
	write_path(idx, c->name, path, O_EXCL, STR_LEN("pop3-retention"));
	snprintf(path, sizeof(path), "%s/new/" OLD_G_NAME, ctx->spool_dir);
	write_path(idx, c->name, path, O_EXCL, STR_LEN(OLD_G));
	snprintf(path, sizeof(path), "%s/new/%s", ctx->spool_dir, c->file);
	if (c->directory) {
		if (mkdir(path, 0700) < 0)
			case_fail(idx, c->name, "mkdir: %s", strerror(errno));
	} else if (c->data == NULL) {
		if (symlink("/etc/passwd", path) < 0)
			case_fail(idx, c->name, "symlink: %s",
				  strerror(errno));
	} else {
		write_path(idx, c->name, path, O_EXCL, c->data, c->len);
	}
	ctx_open(idx, c->name, ctx);
	if (!log_contains(ctx, "migrated 1") &&
	    !log_contains(ctx, "migrated 2"))
		case_fail(idx, c->name, "no migration logged");
	if (c->reason != NULL &&
	    (!log_contains(ctx, c->reason) ||
	     !log_contains(ctx, "moved to corrupt/")))
		case_fail(idx, c->name, "no log line with \"%s\"", c->reason);
	check_migrated(idx, c, ctx);
	/* the migration is durable, and done once */
	ctx_reopen(idx, c->name, ctx);
	check_migrated(idx, c, ctx);
	ctx_free(ctx);
}

/* One producer thread, two delivery threads, one spool. */
struct thread_ctx {
	struct webhook_spool *spool;
	unsigned char *seen;		/* per event: times delivered */
	unsigned int delivered;		/* atomic */
	unsigned int producer_done;	/* atomic */
	time_t deadline;		/* give up (lost events) */
	char error[256];
};

static void thread_error(struct thread_ctx *t, const char *what,
			 struct webhook_spool *spool)
{
	if (t->error[0] == '\0')
		snprintf(t->error, sizeof(t->error), "%s: %s", what,
			 webhook_spool_error(spool));
}

static void *producer_thread(void *context)
{
	struct thread_ctx *t = context;
	char id[32], body[256];
	unsigned int k;

	for (k = 1; k <= THREAD_EVENTS; k++) {
		snprintf(id, sizeof(id), "evt_%u", k);
		body_of(k, body, sizeof(body));
		if (webhook_spool_append(t->spool, id, body, strlen(body),
					 BASE_MS + k) < 0) {
			thread_error(t, "append", t->spool);
			break;
		}
		if ((k % THREAD_BATCH == 0 || k == THREAD_EVENTS) &&
		    webhook_spool_commit(t->spool) < 0) {
			thread_error(t, "commit", t->spool);
			break;
		}
	}
	__atomic_store_n(&t->producer_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *delivery_thread(void *context)
{
	struct thread_ctx *t = context;
	struct webhook_spool_event *event;
	char body[256];
	unsigned int k, n = 0;
	int ret;

	while (__atomic_load_n(&t->delivered, __ATOMIC_SEQ_CST) <
	       THREAD_EVENTS && t->error[0] == '\0') {
		ret = webhook_spool_checkout(t->spool, FAR_MS, &event);
		if (ret < 0) {
			thread_error(t, "checkout", t->spool);
			break;
		}
		if (ret == 0) {
			if (time(NULL) > t->deadline) {
				snprintf(t->error, sizeof(t->error), "timed "
					 "out with %u of %u delivered",
					 __atomic_load_n(&t->delivered,
							 __ATOMIC_SEQ_CST),
					 THREAD_EVENTS);
				break;
			}
			sched_yield();
			continue;
		}
		if (sscanf(event->id, "evt_%u", &k) != 1 || k == 0 ||
		    k > THREAD_EVENTS) {
			thread_error(t, "odd id", t->spool);
			break;
		}
		body_of(k, body, sizeof(body));
		if (event->body_len != strlen(body) ||
		    memcmp(event->body, body, event->body_len) != 0) {
			snprintf(t->error, sizeof(t->error), "body of %s "
				 "differs", event->id);
			break;
		}
		__atomic_add_fetch(&t->seen[k], 1, __ATOMIC_SEQ_CST);
		if (webhook_spool_delivered(t->spool, &event) < 0) {
			thread_error(t, "delivered", t->spool);
			break;
		}
		__atomic_add_fetch(&t->delivered, 1, __ATOMIC_SEQ_CST);
		if (++n % 1000 == 0 && webhook_spool_sync(t->spool) < 0) {
			thread_error(t, "sync", t->spool);
			break;
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	static const char *name = "producer thread, two delivery threads";
	struct webhook_spool_counts counts;
	pthread_t producer, delivery[2];
	struct thread_ctx t;
	struct test_ctx *ctx;
	unsigned int k, i;

	(void)state;
	ctx = ctx_init(0, name);
	ctx_open(0, name, ctx);
	memset(&t, 0, sizeof(t));
	t.spool = ctx->spool;
	t.deadline = time(NULL) + 120;
	t.seen = calloc(THREAD_EVENTS + 1, 1);
	if (t.seen == NULL)
		case_fail(0, name, "out of memory");
	if (pthread_create(&producer, NULL, producer_thread, &t) != 0)
		case_fail(0, name, "pthread_create failed");
	for (i = 0; i < 2; i++) {
		if (pthread_create(&delivery[i], NULL, delivery_thread,
				   &t) != 0)
			case_fail(0, name, "pthread_create failed");
	}
	(void)pthread_join(producer, NULL);
	for (i = 0; i < 2; i++)
		(void)pthread_join(delivery[i], NULL);
	if (t.error[0] != '\0') {
		free(t.seen);
		case_fail(0, name, "%s", t.error);
	}
	for (k = 1; k <= THREAD_EVENTS; k++) {
		if (t.seen[k] != 1) {
			i = t.seen[k];
			free(t.seen);
			case_fail(0, name, "evt_%u delivered %u times", k, i);
		}
	}
	free(t.seen);
	if (webhook_spool_sync(ctx->spool) < 0)
		case_fail(0, name, "sync: %s",
			  webhook_spool_error(ctx->spool));
	ctx_reopen(0, name, ctx);
	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != 0)
		case_fail(0, name, "%u pending after reopen", counts.pending);
	ctx_free(ctx);
}

/* ---- rendering at checkout (webhook_spool_set_render) ---- */

static bool render_fails;

/* "R:" bodies become "<rendered>" and the rest in upper case; "FAIL"
   bodies fail while render_fails; anything else is sent as stored. */
static int test_render_fn(void *context, const unsigned char *stored,
			  size_t stored_len, unsigned char **body_r,
			  size_t *body_len_r, const char **error_r)
{
	static const char tag[] = "<rendered>";
	unsigned char *body;
	size_t i;

	if (context != &render_fails)
		return -1;
	if (stored_len >= 4 && memcmp(stored, "FAIL", 4) == 0 &&
	    render_fails) {
		*error_r = "test render failure";
		return -1;
	}
	if (stored_len < 2 || memcmp(stored, "R:", 2) != 0)
		return 0;
	body = malloc(sizeof(tag) - 1 + stored_len - 2 + 1);
	if (body == NULL)
		return -1;
	memcpy(body, tag, sizeof(tag) - 1);
	for (i = 2; i < stored_len; i++) {
		unsigned char c = stored[i];

		body[sizeof(tag) - 1 + i - 2] =
			c >= 'a' && c <= 'z' ? (unsigned char)(c - 32) : c;
	}
	*body_len_r = sizeof(tag) - 1 + stored_len - 2;
	body[*body_len_r] = '\0';
	*body_r = body;
	return 1;
}

static void expect_body(const char *name, const struct webhook_spool_event *ev,
			const char *id, const char *body)
{
	if (ev == NULL || strcmp(ev->id, id) != 0)
		case_fail(0, name, "checked out %s, expected %s",
			  ev == NULL ? "nothing" : ev->id, id);
	if (ev->body_len != strlen(body) ||
	    memcmp(ev->body, body, ev->body_len) != 0 ||
	    ev->body[ev->body_len] != '\0')
		case_fail(0, name, "%s: body \"%.*s\", expected \"%s\"", id,
			  (int)ev->body_len, (const char *)ev->body, body);
}

static bool dead_file_contains(struct test_ctx *ctx, const char *needle)
{
	char path[PATH_SIZE * 2], buf[4096];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/dead", ctx->spool_dir);
	dir = opendir(path);
	if (dir == NULL)
		return false;
	while (!found && (d = readdir(dir)) != NULL) {
		FILE *f;
		size_t n;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/dead/%s", ctx->spool_dir,
			 d->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		(void)fclose(f);
		found = strstr(buf, needle) != NULL;
	}
	(void)closedir(dir);
	return found;
}

static void test_render(void **state)
{
	static const char *name = "stored bodies rendered at checkout";
	static const char *const bodies[] = { "R:abc", "{\"json\":1}",
					      "FAIL:x" };
	struct webhook_spool_event *a = NULL, *b = NULL, *c = NULL;
	struct webhook_spool_counts counts;
	struct test_ctx *ctx;
	char id[16];
	unsigned int i;
	int ret;

	(void)state;
	ctx = ctx_init(0, name);
	ctx_open(0, name, ctx);
	webhook_spool_set_render(ctx->spool, test_render_fn, &render_fails);
	render_fails = true;
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "evt_%u", i + 1);
		if (webhook_spool_append(ctx->spool, id, bodies[i],
					 strlen(bodies[i]), BASE_MS + i) < 0)
			case_fail(0, name, "append: %s",
				  webhook_spool_error(ctx->spool));
	}
	if (webhook_spool_commit(ctx->spool) < 0)
		case_fail(0, name, "commit: %s",
			  webhook_spool_error(ctx->spool));

	if (webhook_spool_checkout(ctx->spool, FAR_MS, &a) != 1)
		case_fail(0, name, "first checkout failed");
	expect_body(name, a, "evt_1", "<rendered>ABC");
	if (webhook_spool_checkout(ctx->spool, FAR_MS, &b) != 1)
		case_fail(0, name, "second checkout failed");
	expect_body(name, b, "evt_2", "{\"json\":1}");
	/* a body that cannot be rendered stays, and is tried later */
	ret = webhook_spool_checkout(ctx->spool, FAR_MS, &c);
	if (ret != -1 || c != NULL)
		case_fail(0, name, "unrenderable checkout returned %d", ret);
	if (strstr(webhook_spool_error(ctx->spool), "evt_3") == NULL ||
	    strstr(webhook_spool_error(ctx->spool),
		   "test render failure") == NULL)
		case_fail(0, name, "error \"%s\" names neither the event nor "
			  "the reason", webhook_spool_error(ctx->spool));
	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != 3 || counts.checked_out != 2)
		case_fail(0, name, "%u pending, %u checked out after the "
			  "failed render", counts.pending, counts.checked_out);
	if (webhook_spool_checkout(ctx->spool, FAR_MS, &c) != 0)
		case_fail(0, name, "the failed event is due at once again");

	/* the dead letter holds the body that would have been sent */
	if (webhook_spool_dead_letter(ctx->spool, &a) < 0)
		case_fail(0, name, "dead letter: %s",
			  webhook_spool_error(ctx->spool));
	if (!dead_file_contains(ctx, "<rendered>ABC"))
		case_fail(0, name, "no dead letter with the rendered body");
	if (webhook_spool_delivered(ctx->spool, &b) < 0)
		case_fail(0, name, "delivered: %s",
			  webhook_spool_error(ctx->spool));

	render_fails = false;
	if (webhook_spool_checkout(ctx->spool, FAR_MS + 60000, &c) != 1)
		case_fail(0, name, "the failed event did not come back: %s",
			  webhook_spool_error(ctx->spool));
	expect_body(name, c, "evt_3", "FAIL:x");
	if (webhook_spool_delivered(ctx->spool, &c) < 0)
		case_fail(0, name, "delivered: %s",
			  webhook_spool_error(ctx->spool));
	webhook_spool_counts(ctx->spool, &counts);
	if (counts.pending != 0 || counts.dead != 1)
		case_fail(0, name, "%u pending, %u dead at the end",
			  counts.pending, counts.dead);
	ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest threads[] = {
		cmocka_unit_test_teardown(test_threads, teardown),
	};
	const struct CMUnitTest render[] = {
		cmocka_unit_test_teardown(test_render, teardown),
	};
	int failed = 0;

	failed += RUN_TABLE_TEARDOWN("webhook_spool scripts", test_spool,
				     teardown, spool_cases);
	failed += RUN_TABLE_TEARDOWN("webhook_spool corrupt segments",
				     test_segment, teardown, seg_cases);
	failed += RUN_TABLE_TEARDOWN("webhook_spool old format",
				     test_old_format, teardown, old_cases);
	failed += cmocka_run_group_tests_name("webhook_spool threads",
					      threads, NULL, NULL);
	failed += cmocka_run_group_tests_name("webhook_spool render",
					      render, NULL, NULL);
	return failed == 0 ? 0 : 1;
}
