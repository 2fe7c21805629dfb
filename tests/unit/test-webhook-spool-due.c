/* webhook_spool: when an event read from a segment is first due. The
   record's creation time comes from disk (the SHA-256 covers the body,
   not the header line), so any value up to INT64_MAX is read; the
   first delay added to it saturates instead of overflowing (found by
   tests/fuzz/fuzz-spool). */

#include "pop3-retention-config.h"
#include "webhook-spool.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "test-table.h"

struct due_case {
	const char *name;
	const char *created;		/* the header line's creation time */
	int64_t first_delay_ms;
	bool delay_before_open;
	int64_t due_ms;			/* webhook_spool_next_due() */
};

static const struct due_case due_cases[] = {
	{ "ordinary time, delay set after open", "1765000000000", 5000,
	  false, 1765000005000 },
	{ "ordinary time, delay set before open", "1765000000000", 5000,
	  true, 1765000005000 },
	{ "INT64_MAX, no delay", "9223372036854775807", 0, false, INT64_MAX },
	{ "INT64_MAX, delay set after open", "9223372036854775807", 5000,
	  false, INT64_MAX },
	{ "INT64_MAX, delay set before open", "9223372036854775807", 5000,
	  true, INT64_MAX },
	{ "5000 ms short of INT64_MAX: fits", "9223372036854770807", 5000,
	  true, INT64_MAX },
	{ "4999 ms short of INT64_MAX: saturates", "9223372036854770808",
	  5000, true, INT64_MAX },
	{ "largest delay on a large time", "9000000000000000000",
	  (int64_t)UINT32_MAX * 1000, false,
	  9000000000000000000 + (int64_t)UINT32_MAX * 1000 },
};

#define SEG_MAGIC "pop3-retention-segment 1\n"
/* SHA-256 of {"a":1} (Python hashlib) */
#define SHA_A1 "015abd7f5cc57a2dd94b7590f04ad808" \
	"4273905ee33ec5cebeae62276a97f862"

static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("row %zu (%s): %s", idx, name, msg);
}

static void write_segment(size_t idx, const char *name, const char *dir,
			  const char *created)
{
	static const char *const subdirs[] = { "seg", "dead", "corrupt" };
	char path[256], text[512];
	unsigned int i;
	int fd, len;

	if (mkdir(dir, 0700) < 0)
		case_fail(idx, name, "mkdir %s failed", dir);
	for (i = 0; i < N_ELEMENTS(subdirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		if (mkdir(path, 0700) < 0)
			case_fail(idx, name, "mkdir %s failed", path);
	}
	snprintf(path, sizeof(path), "%s/seg/1-1-1.seg", dir);
	len = snprintf(text, sizeof(text), SEG_MAGIC "E evt_a %s 7 " SHA_A1
		       "\n{\"a\":1}\n", created);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) < 0)
		case_fail(idx, name, "writing %s failed", path);
}

static void test_due(void **state)
{
	const struct due_case *c = *state;
	size_t idx = (size_t)(c - due_cases);
	struct webhook_spool_event *event;
	struct webhook_spool *spool;
	char top[] = "/tmp/test-spool-due.XXXXXX", dir[64];
	int64_t due;

	if (mkdtemp(top) == NULL)
		case_fail(idx, c->name, "mkdtemp failed");
	snprintf(dir, sizeof(dir), "%s/spool", top);
	write_segment(idx, c->name, dir, c->created);
	spool = webhook_spool_create(dir, 0);
	if (spool == NULL)
		case_fail(idx, c->name, "create failed");
	if (c->delay_before_open)
		webhook_spool_set_first_delay(spool, c->first_delay_ms);
	if (webhook_spool_open(spool) < 0)
		case_fail(idx, c->name, "open: %s", webhook_spool_error(spool));
	if (!c->delay_before_open)
		webhook_spool_set_first_delay(spool, c->first_delay_ms);
	due = webhook_spool_next_due(spool);
	if (due != c->due_ms)
		case_fail(idx, c->name, "due at %lld, expected %lld",
			  (long long)due, (long long)c->due_ms);
	/* not before it is due, and then with the time as written */
	if (c->due_ms > 0 &&
	    webhook_spool_checkout(spool, c->due_ms - 1, &event) != 0)
		case_fail(idx, c->name, "checked out before it was due");
	if (webhook_spool_checkout(spool, c->due_ms, &event) != 1 ||
	    strcmp(event->id, "evt_a") != 0 ||
	    event->created_ms != strtoll(c->created, NULL, 10))
		case_fail(idx, c->name, "not checked out when due");
	webhook_spool_release(spool, &event);
	webhook_spool_destroy(&spool);
	(void)test_remove_tree(top);
}

int main(void)
{
	return RUN_TABLE("webhook_spool first due", test_due, due_cases) == 0 ?
		0 : 1;
}
