/* The durable spool, driven by scripts of operations (one cmocka test
   per script): append/commit/checkout/outcome, reopen (resume after a
   restart), a real crash between write and rename (a forked child that
   exits without committing), attempt bookkeeping across reopens,
   import from an outbox, counts; and a table of corrupt files, each of
   which must be quarantined without blocking a good neighbour. Each
   test owns a fresh temporary directory. */

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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


/* created_ms of event k is BASE_MS + k */
#define BASE_MS INT64_C(1700000000000)
/* "now" when a checkout does not say */
#define FAR_MS (BASE_MS + INT64_C(1000000000000))
#define SLOTS 8
#define OPS_MAX 24
#define LOG_MAX 64
#define PATH_SIZE 512

enum op_kind {
	OP_END = 0,
	OP_APPEND,	/* n events (ids evt_<k>, k counting from 1) */
	OP_APPEND_BAD,	/* s: "id", "empty", "large": must fail */
	OP_COMMIT,
	OP_ABORT,
	OP_CRASH_APPEND, /* a child appends n events and dies uncommitted */
	OP_REOPEN,
	OP_FIRST_DELAY,	/* t */
	OP_CHECKOUT,	/* into slot n; s: expected id or NULL (none);
			   t: now (0: far future) */
	OP_ATTEMPTS,	/* slot n has made t attempts */
	OP_DELIVERED,	/* slot n */
	OP_RESCHEDULE,	/* slot n, due BASE_MS + t */
	OP_DEAD,	/* slot n */
	OP_RELEASE,	/* slot n */
	OP_SYNC,
	OP_EXPECT,	/* counts e */
	OP_EXPECT_DUE,	/* next due BASE_MS + t, or -1 for t < 0 */
	OP_EXPECT_OLDEST, /* oldest created BASE_MS + t, or -1 */
	OP_EXPECT_FILES, /* s: subdirectory of the spool, n files */
	OP_EXPECT_LOG,	/* s appears in a log line */
	OP_WRITE_FILE,	/* s: path under the test dir; data/len */
	OP_OUTBOX_APPEND, /* n events into the outbox (APPEND_ONLY) */
	OP_OUTBOX_COMMIT,
	OP_IMPORT,	/* n events imported; t: 1 if the call must fail */
	OP_SECOND_OWNER, /* a second owner open fails with s */
	OP_READ_ONLY,	/* a READ_ONLY open sees counts e */
	OP_SHM_OUTBOX,	/* put the outbox on /dev/shm (skip if same fs) */
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
#define STR_LEN(s) s, sizeof(s) - 1

static const struct spool_case spool_cases[] = {
	{ "append, commit, checkout in order, deliver, reopen", {
		{ OP_APPEND, 3, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		/* not committed: invisible */
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 3, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 3, 0, "new", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 0, 0) },
		{ OP_EXPECT_OLDEST, 0, 1, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 2, 0, 0) },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_DELIVERED, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_EXPECT_OLDEST, 0, 3, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_3", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_DELIVERED, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_OLDEST, 0, -1, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "abort and destroy discard an uncommitted batch", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_ABORT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "crash between write and rename: tmp/ cleaned, nothing sent", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CRASH_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 2, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		/* a half-written file too */
		{ OP_WRITE_FILE, 0, 0, "spool/tmp/1.1.1.0000000a,0,0",
		  STR_LEN("pop3-retention-spool 1\nid evt_x\ncr"),
		  E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_LOG, 0, 0, "removed 3 uncommitted", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "attempt bookkeeping survives reopen, then dead-letter", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_ATTEMPTS, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_RESCHEDULE, 0, 5000, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
		/* evt_2 (never tried) is due first */
		{ OP_EXPECT_DUE, 0, 2, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_DUE, 0, 5000, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, BASE_MS + 4999, NULL, NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, BASE_MS + 5000, "evt_1", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_ATTEMPTS, 0, 1, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_RESCHEDULE, 0, 9000, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_RELEASE, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_ATTEMPTS, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_ATTEMPTS, 0, 2, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_DEAD, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(1, 0, 1, 1, 0) },
	} },
	{ "dead-lettered events stay dead after reopen", {
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_DEAD, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_SYNC, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 1, 0) },
		{ OP_EXPECT_FILES, 1, 0, "dead", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_READ_ONLY, 0, 0, NULL, NULL, 0, E(0, 0, 0, 1, 0) },
	} },
	{ "first delay of the schedule", {
		{ OP_FIRST_DELAY, 0, 5000, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_APPEND, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_DUE, 0, 5001, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, BASE_MS + 5000, NULL, NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, BASE_MS + 5001, "evt_1", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_RELEASE, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_FIRST_DELAY, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_DUE, 0, 1, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "import from an outbox, skipping its tmp/", {
		{ OP_OUTBOX_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		/* uncommitted outbox files are not imported */
		{ OP_IMPORT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 2, 0, "outbox/tmp", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_OUTBOX_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_OUTBOX_APPEND, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_IMPORT, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "outbox/new", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 1, 0, "outbox/tmp", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(2, 0, 0, 0, 0) },
		{ OP_OUTBOX_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_IMPORT, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E(0, 0, 0, 0, 0) },
		/* importing again is a no-op */
		{ OP_IMPORT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(3, 0, 3, 0, 0) },
	} },
	{ "import quarantines a corrupt outbox file, imports the rest", {
		{ OP_OUTBOX_APPEND, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_OUTBOX_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_WRITE_FILE, 0, 0, "outbox/new/5.5.5.00000005,0,0",
		  STR_LEN("pop3-retention-spool 1\nid evt_bad\n"),
		  E(0, 0, 0, 0, 0) },
		{ OP_WRITE_FILE, 0, 0, "outbox/new/not-a-spool-name", "x", 1,
		  E(0, 0, 0, 0, 0) },
		{ OP_IMPORT, 1, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 2, 0, "outbox/corrupt", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_LOG, 0, 0, "bad created line", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_LOG, 0, 0, "bad file name", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "import across filesystems (outbox on /dev/shm)", {
		{ OP_SHM_OUTBOX, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_OUTBOX_APPEND, 3, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_OUTBOX_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_IMPORT, 3, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "outbox/new", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 3, 0, "new", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_REOPEN, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 1, 0, "evt_2", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 2, 0, "evt_3", NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "missing outbox is empty", {
		{ OP_IMPORT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "one owner at a time; read-only opens beside it", {
		{ OP_APPEND, 2, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_SECOND_OWNER, 0, 0, "in use by another process", NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_CHECKOUT, 0, 0, "evt_1", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_RESCHEDULE, 0, 10, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_READ_ONLY, 0, 0, NULL, NULL, 0, E(2, 1, 0, 0, 0) },
	} },
	{ "invalid appends are refused", {
		{ OP_APPEND_BAD, 0, 0, "id", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_APPEND_BAD, 0, 0, "empty", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_APPEND_BAD, 0, 0, "large", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_APPEND_BAD, 0, 0, "time", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 0, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
	} },
	{ "a full batch is committed automatically", {
		{ OP_APPEND, WEBHOOK_SPOOL_BATCH_MAX + 1, 0, NULL, NULL, 0,
		  E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0,
		  E(WEBHOOK_SPOOL_BATCH_MAX, 0, 0, 0, 0) },
		{ OP_EXPECT_FILES, 1, 0, "tmp", NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_COMMIT, 0, 0, NULL, NULL, 0, E(0, 0, 0, 0, 0) },
		{ OP_EXPECT, 0, 0, NULL, NULL, 0,
		  E(WEBHOOK_SPOOL_BATCH_MAX + 1, 0, 0, 0, 0) },
	} },
};

/* Corrupt files: each is written into new/ beside one good event; the
   spool must quarantine it (at open, or at checkout for what only the
   body reveals), log the reason, and still deliver the good one. */
struct corrupt_case {
	const char *name;
	const char *file;	/* name in new/ */
	const char *data;	/* NULL: a symbolic link; "" + len 0: empty */
	size_t len;
	bool directory;
	const char *reason;
	bool at_checkout;
};

#define HDR(len, sha) \
	"pop3-retention-spool 1\nid evt_c\ncreated 5\nlength " len \
	"\nsha256 " sha "\n\n"
/* SHA-256 of {"a":1} (Python hashlib) */
#define SHA_A1 "015abd7f5cc57a2dd94b7590f04ad808" \
	"4273905ee33ec5cebeae62276a97f862"
#define GOOD_NAME "5.9.9.0000abcd,0,0"

static const struct corrupt_case corrupt_cases[] = {
	{ "well-formed control", GOOD_NAME, STR_LEN(HDR("7", SHA_A1)
	  "{\"a\":1}"), false, NULL, false },
	{ "bad file name", "garbage", STR_LEN("x"), false, "bad file name",
	  false },
	{ "name with a bad hex part", "5.9.9.0000abcz,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name",
	  false },
	{ "name without the state", "5.9.9.0000abcd",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name",
	  false },
	{ "name with a leading zero", "05.9.9.0000abcd,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name",
	  false },
	{ "name with an overflowing number",
	  "99999999999999999999.9.9.0000abcd,0,0",
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}"), false, "bad file name",
	  false },
	{ "empty file", GOOD_NAME, "", 0, false, "bad format line", false },
	{ "unknown format version", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 2\nid evt_c\n"), false,
	  "bad format line", false },
	{ "id with a dot", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt.c\ncreated 5\n"), false,
	  "bad id line", false },
	{ "negative creation time", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt_c\ncreated -5\n"), false,
	  "bad created line", false },
	{ "zero length", GOOD_NAME, STR_LEN(HDR("0", SHA_A1)), false,
	  "bad length line", false },
	{ "length over the limit", GOOD_NAME,
	  STR_LEN(HDR("65537", SHA_A1) "{\"a\":1}"), false,
	  "bad length line", false },
	{ "short sha256", GOOD_NAME, STR_LEN(HDR("7", "015abd") "{\"a\":1}"),
	  false, "bad sha256 line", false },
	{ "no blank line", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt_c\ncreated 5\nlength 7\n"
		  "sha256 " SHA_A1 "\n{\"a\":1}"), false,
	  "no blank line", false },
	{ "truncated body", GOOD_NAME, STR_LEN(HDR("7", SHA_A1) "{\"a\""),
	  false, "truncated", false },
	{ "truncated header", GOOD_NAME,
	  STR_LEN("pop3-retention-spool 1\nid evt_c\ncreated 5\nleng"),
	  false, "bad length line", false },
	{ "trailing bytes", GOOD_NAME,
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":1}xx"), false, "trailing bytes",
	  false },
	{ "body does not match its checksum", GOOD_NAME,
	  STR_LEN(HDR("7", SHA_A1) "{\"a\":2}"), false, "sha256", true },
	{ "symbolic link", GOOD_NAME, NULL, 0, false, "symbolic link",
	  false },
	{ "directory", GOOD_NAME, "", 0, true, "not a regular file", false },
	{ "binary garbage", GOOD_NAME, "\x00\xff\x01\x02", 4, false,
	  "bad format line", false },
};

struct test_ctx {
	char dir[PATH_SIZE];
	char spool_dir[PATH_SIZE + 16];
	char outbox_dir[PATH_SIZE + 16];
	char shm_dir[PATH_SIZE];
	struct webhook_spool *spool;
	struct webhook_spool *outbox;
	struct webhook_spool_event *slots[SLOTS];
	unsigned int next_k, next_outbox_k;
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

static int remove_tree(const char *path)
{
	char sub[PATH_SIZE * 2];
	struct dirent *de;
	struct stat st;
	DIR *dir;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	dir = opendir(path);
	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		(void)remove_tree(sub);
	}
	closedir(dir);
	return rmdir(path);
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
	snprintf(ctx->outbox_dir, sizeof(ctx->outbox_dir), "%s/outbox",
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

/* Release everything and free ctx. */
static void ctx_free(struct test_ctx *ctx)
{
	unsigned int i;

	current_ctx = NULL;
	webhook_spool_destroy(&ctx->outbox);
	webhook_spool_destroy(&ctx->spool);
	for (i = 0; i < ctx->log_count; i++)
		free(ctx->log[i]);
	ctx->log_count = 0;
	if (ctx->dir[0] != '\0')
		(void)remove_tree(ctx->dir);
	if (ctx->shm_dir[0] != '\0')
		(void)remove_tree(ctx->shm_dir);
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

static void crash_append(size_t idx, const char *name, unsigned int step,
			 struct test_ctx *ctx, unsigned int count)
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
		/* dies before commit: no destroy, no cleanup */
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		case_fail(idx, name, "step %u: the crashing child failed",
			  step);
	ctx->next_k += count;
}

static void write_file(size_t idx, const char *name, struct test_ctx *ctx,
		       const struct op *op)
{
	char path[PATH_SIZE * 2], parent[PATH_SIZE * 2], *slash;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ctx->dir, op->s);
	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	*slash = '\0';
	/* e.g. outbox/new before the outbox exists */
	slash = strrchr(parent, '/');
	*slash = '\0';
	(void)mkdir(parent, 0700);
	*slash = '/';
	(void)mkdir(parent, 0700);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, op->data, op->len) != (ssize_t)op->len ||
	    close(fd) < 0)
		case_fail(idx, name, "writing %s: %s", path, strerror(errno));
}

static void open_outbox(size_t idx, const char *name, struct test_ctx *ctx)
{
	if (ctx->outbox != NULL)
		return;
	ctx->outbox = webhook_spool_create(ctx->outbox_dir,
					   WEBHOOK_SPOOL_APPEND_ONLY);
	if (ctx->outbox == NULL || webhook_spool_open(ctx->outbox) < 0)
		case_fail(idx, name, "outbox open: %s",
			  ctx->outbox == NULL ? "alloc" :
			  webhook_spool_error(ctx->outbox));
}

static void shm_outbox(size_t idx, const char *name, struct test_ctx *ctx)
{
	struct stat st_shm, st_dir;

	snprintf(ctx->shm_dir, sizeof(ctx->shm_dir),
		 "/dev/shm/test-webhook-spool.XXXXXX");
	if (stat("/dev/shm", &st_shm) < 0 || stat(ctx->dir, &st_dir) < 0 ||
	    st_shm.st_dev == st_dir.st_dev ||
	    mkdtemp(ctx->shm_dir) == NULL) {
		/* the teardown cleans up */
		ctx->shm_dir[0] = '\0';
		skip();
	}
	snprintf(ctx->outbox_dir, sizeof(ctx->outbox_dir), "%s/outbox",
		 ctx->shm_dir);
	/* "outbox/..." paths of the script now point there */
	{
		char link_path[PATH_SIZE * 2];

		snprintf(link_path, sizeof(link_path), "%s/outbox", ctx->dir);
		if (symlink(ctx->outbox_dir, link_path) < 0)
			case_fail(idx, name, "symlink: %s", strerror(errno));
	}
}

static void run_op(size_t idx, const char *name, unsigned int step,
		   struct test_ctx *ctx, const struct op *op)
{
	struct webhook_spool_counts counts;
	struct webhook_spool *other;
	char path[PATH_SIZE * 2], big[WEBHOOK_SPOOL_BODY_MAX + 2];
	unsigned int imported = 0;
	int64_t now, expected;
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
	case OP_COMMIT:
		if (webhook_spool_commit(ctx->spool) < 0)
			case_fail(idx, name, "step %u: commit: %s", step,
				  webhook_spool_error(ctx->spool));
		break;
	case OP_ABORT:
		webhook_spool_abort(ctx->spool);
		break;
	case OP_CRASH_APPEND:
		crash_append(idx, name, step, ctx, op->n);
		break;
	case OP_REOPEN:
		webhook_spool_destroy(&ctx->spool);
		memset(ctx->slots, 0, sizeof(ctx->slots));
		ctx_open(idx, name, ctx);
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
	case OP_EXPECT_OLDEST:
		expected = op->t < 0 ? -1 : BASE_MS + op->t;
		webhook_spool_counts(ctx->spool, &counts);
		if (counts.oldest_created_ms != expected)
			case_fail(idx, name, "step %u: oldest %" PRId64
				  ", expected %" PRId64, step,
				  counts.oldest_created_ms, expected);
		break;
	case OP_EXPECT_FILES:
		if (strncmp(op->s, "outbox", 6) == 0)
			snprintf(path, sizeof(path), "%s%s", ctx->outbox_dir,
				 op->s + 6);
		else
			snprintf(path, sizeof(path), "%s/%s", ctx->spool_dir,
				 op->s);
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
	case OP_WRITE_FILE:
		write_file(idx, name, ctx, op);
		break;
	case OP_OUTBOX_APPEND:
		open_outbox(idx, name, ctx);
		append_events(idx, name, step, ctx->outbox, &ctx->next_k,
			      op->n);
		break;
	case OP_OUTBOX_COMMIT:
		open_outbox(idx, name, ctx);
		if (webhook_spool_commit(ctx->outbox) < 0)
			case_fail(idx, name, "step %u: outbox commit: %s",
				  step, webhook_spool_error(ctx->outbox));
		break;
	case OP_IMPORT:
		ret = webhook_spool_import_dir(ctx->spool, ctx->outbox_dir,
					       &imported);
		if (ret != (op->t != 0 ? -1 : 0) || imported != op->n)
			case_fail(idx, name, "step %u: import returned %d "
				  "with %u events (%s), expected %u", step,
				  ret, imported,
				  webhook_spool_error(ctx->spool), op->n);
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
		other = webhook_spool_create(ctx->spool_dir,
					     WEBHOOK_SPOOL_READ_ONLY);
		if (other == NULL || webhook_spool_open(other) < 0)
			case_fail(idx, name, "step %u: read-only open: %s",
				  step, other == NULL ? "alloc" :
				  webhook_spool_error(other));
		webhook_spool_counts(other, &counts);
		check_counts(idx, name, step, &counts, &op->e);
		if (webhook_spool_append(other, "evt_1", "{}", 2, 1) != -1 ||
		    webhook_spool_checkout(other, FAR_MS,
					   &ctx->slots[SLOTS - 1]) != -1)
			case_fail(idx, name, "step %u: read-only spool "
				  "accepted a change", step);
		webhook_spool_destroy(&other);
		break;
	case OP_SHM_OUTBOX:
		shm_outbox(idx, name, ctx);
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
	for (i = 0; i < OPS_MAX && c->ops[i].kind != OP_END; i++)
		run_op(idx, c->name, i, ctx, &c->ops[i]);
	ctx_free(ctx);
}

/* webhook_spool_read_file() applies the same checks to a single file,
   body included. */
static void check_read_file(size_t idx, const struct corrupt_case *c,
			    const char *path)
{
	char id[WEBHOOK_SPOOL_ID_MAX], error[256] = "";
	unsigned char *body = NULL;
	size_t body_len = 0;
	int64_t created = 0;
	int ret;

	ret = webhook_spool_read_file(path, id, &body, &body_len, &created,
				      error, sizeof(error));
	if (c->reason == NULL) {
		if (ret != 1 || strcmp(id, "evt_c") != 0 || created != 5 ||
		    body_len != 7 || memcmp(body, "{\"a\":1}", 8) != 0)
			case_fail(idx, c->name, "read_file: %d (%s)", ret,
				  error);
		free(body);
		body = NULL;
		/* a file that vanished (delivered meanwhile) */
		ret = webhook_spool_read_file("/nonexistent/new/1.1.1."
					      "00000001,0,0", id, &body,
					      &body_len, &created, error,
					      sizeof(error));
		if (ret != 0)
			case_fail(idx, c->name, "read_file of a missing "
				  "file returned %d", ret);
	} else if (ret != -1 || error[0] == '\0') {
		case_fail(idx, c->name, "read_file returned %d, expected -1",
			  ret);
	} else if (strstr(c->file, ".") != NULL && c->data != NULL &&
		   strstr(c->reason, "name") == NULL &&
		   strstr(error, c->reason) == NULL) {
		case_fail(idx, c->name, "read_file error \"%s\" does not "
			  "mention \"%s\"", error, c->reason);
	}
	free(body);
}

static void test_corrupt(void **state)
{
	const struct corrupt_case *c = *state;
	size_t idx = (size_t)(c - corrupt_cases);
	struct webhook_spool_event *event = NULL, *second = NULL;
	struct webhook_spool_counts counts;
	struct test_ctx *ctx;
	char path[PATH_SIZE * 2];
	unsigned int k = 0;
	int fd, ret;

	ctx = ctx_init(idx, c->name);
	ctx_open(idx, c->name, ctx);
	append_events(idx, c->name, 0, ctx->spool, &k, 1);
	if (webhook_spool_commit(ctx->spool) < 0)
		case_fail(idx, c->name, "commit: %s",
			  webhook_spool_error(ctx->spool));
	snprintf(path, sizeof(path), "%s/new/%s", ctx->spool_dir, c->file);
	if (c->directory) {
		if (mkdir(path, 0700) < 0)
			case_fail(idx, c->name, "mkdir: %s", strerror(errno));
	} else if (c->data == NULL) {
		if (symlink("/etc/passwd", path) < 0)
			case_fail(idx, c->name, "symlink: %s",
				  strerror(errno));
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, c->data, c->len) != (ssize_t)c->len ||
		    close(fd) < 0)
			case_fail(idx, c->name, "write: %s", strerror(errno));
	}
	check_read_file(idx, c, path);
	/* a restart finds it */
	webhook_spool_destroy(&ctx->spool);
	ctx_open(idx, c->name, ctx);
	webhook_spool_counts(ctx->spool, &counts);
	if (c->reason == NULL || c->at_checkout) {
		if (counts.pending != 2 || counts.corrupt != 0)
			case_fail(idx, c->name, "after open: %u pending, %u "
				  "corrupt, expected 2 and 0", counts.pending,
				  counts.corrupt);
	} else if (counts.pending != 1 || counts.corrupt != 1) {
		case_fail(idx, c->name, "after open: %u pending, %u corrupt, "
			  "expected 1 and 1", counts.pending, counts.corrupt);
	}
	/* the good event always comes out, whatever the other file is */
	ret = webhook_spool_checkout(ctx->spool, FAR_MS, &event);
	if (ret != 1)
		case_fail(idx, c->name, "checkout returned %d (%s)", ret,
			  webhook_spool_error(ctx->spool));
	if (c->reason == NULL && strcmp(event->id, "evt_c") == 0) {
		/* the control file sorts first (created 5): swap */
		second = event;
		event = NULL;
		if (webhook_spool_checkout(ctx->spool, FAR_MS, &event) != 1)
			case_fail(idx, c->name, "second checkout failed");
	}
	check_event(idx, c->name, 0, event, "evt_1");
	if (webhook_spool_delivered(ctx->spool, &event) < 0)
		case_fail(idx, c->name, "delivered: %s",
			  webhook_spool_error(ctx->spool));
	if (second == NULL) {
		ret = webhook_spool_checkout(ctx->spool, FAR_MS, &second);
		if (c->reason == NULL && ret != 1)
			case_fail(idx, c->name, "control file not delivered");
		if (c->reason != NULL && ret != 0)
			case_fail(idx, c->name, "corrupt file checked out "
				  "(%d)", ret);
	}
	if (second != NULL)
		webhook_spool_release(ctx->spool, &second);
	webhook_spool_counts(ctx->spool, &counts);
	if (c->reason == NULL) {
		if (counts.pending != 1 || counts.corrupt != 0)
			case_fail(idx, c->name, "control: %u pending, %u "
				  "corrupt", counts.pending, counts.corrupt);
	} else {
		if (counts.pending != 0 || counts.corrupt != 1)
			case_fail(idx, c->name, "end: %u pending, %u corrupt, "
				  "expected 0 and 1", counts.pending,
				  counts.corrupt);
		if (!log_contains(ctx, c->reason) ||
		    !log_contains(ctx, "moved to corrupt/"))
			case_fail(idx, c->name, "no log line with \"%s\"",
				  c->reason);
		snprintf(path, sizeof(path), "%s/corrupt", ctx->spool_dir);
		if (count_files(path) != 1)
			case_fail(idx, c->name, "%u files in corrupt/",
				  count_files(path));
		/* and it stays out after another restart */
		webhook_spool_destroy(&ctx->spool);
		ctx_open(idx, c->name, ctx);
		webhook_spool_counts(ctx->spool, &counts);
		if (counts.pending != 0 || counts.corrupt != 1)
			case_fail(idx, c->name, "reopened: %u pending, %u "
				  "corrupt", counts.pending, counts.corrupt);
	}
	ctx_free(ctx);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE_TEARDOWN("webhook_spool scripts", test_spool,
				     teardown, spool_cases);
	failed += RUN_TABLE_TEARDOWN("webhook_spool corrupt files",
				     test_corrupt, teardown, corrupt_cases);
	return failed == 0 ? 0 : 1;
}
