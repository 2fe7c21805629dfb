/* Retry timing: the schedule's arithmetic, jitter bounds, Retry-After in
   all its forms (delta-seconds, IMF-fixdate, the obsolete RFC 850 and
   asctime dates) and its invalid, huge and negative values. Epoch values
   of dates were computed with Python's calendar.timegm. One cmocka test
   per table row. */

#include "pop3-retention-config.h"
#include "webhook-backoff.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* random % 401 == 200: no jitter; 0: -20 %; 400: +20 % */
#define NO_JITTER 200
#define JITTER_MIN 0
#define JITTER_MAX 400
#define DAY WEBHOOK_RETRY_AFTER_MAX_SECS
/* Sun, 06 Nov 1994 08:49:37 GMT */
#define RFC_DATE 784111777

/* DESIGN.md's default: 0s 5s 5m 30m 2h 5h 10h 10h */
#define DEFAULT_SCHEDULE \
	{ 0, 5, 300, 1800, 7200, 18000, 36000, 36000 }, 8

struct next_case {
	const char *name;
	unsigned int schedule[8];
	unsigned int count;
	unsigned int attempts_done;
	int64_t retry_after_ms;
	uint32_t random;
	int ret;
	int64_t delay_ms;
};

static const struct next_case next_cases[] = {
	{ "first retry after one failure", DEFAULT_SCHEDULE, 1, -1,
	  NO_JITTER, 1, 5000 },
	{ "third attempt", DEFAULT_SCHEDULE, 2, -1, NO_JITTER, 1, 300000 },
	{ "last attempt", DEFAULT_SCHEDULE, 7, -1, NO_JITTER, 1, 36000000 },
	{ "schedule exhausted", DEFAULT_SCHEDULE, 8, -1, NO_JITTER, 0, 0 },
	{ "far past the schedule", DEFAULT_SCHEDULE, 1000, -1, NO_JITTER, 0,
	  0 },
	{ "attempt 0 uses the first delay", DEFAULT_SCHEDULE, 0, -1,
	  NO_JITTER, 1, 0 },
	{ "jitter low end (-20 %)", DEFAULT_SCHEDULE, 1, -1, JITTER_MIN, 1,
	  4000 },
	{ "jitter high end (+20 %)", DEFAULT_SCHEDULE, 1, -1, JITTER_MAX, 1,
	  6000 },
	{ "jitter wraps modulo 401", DEFAULT_SCHEDULE, 1, -1, 401 + 400, 1,
	  6000 },
	{ "jitter on 10 hours", DEFAULT_SCHEDULE, 6, -1, 300, 1,
	  36000000 + 3600000 },
	{ "zero delay stays zero under jitter", { 0, 0, 0 }, 3, 1, -1,
	  JITTER_MAX, 1, 0 },
	{ "Retry-After longer than the step wins", { 0, 1, 1 }, 3, 1, 5000,
	  NO_JITTER, 1, 5000 },
	{ "Retry-After shorter than the step loses", { 0, 10, 10 }, 3, 1,
	  500, NO_JITTER, 1, 10000 },
	{ "Retry-After 0 does not shorten", { 0, 2 }, 2, 1, 0, NO_JITTER, 1,
	  2000 },
	{ "Retry-After beats a low jitter", { 0, 10 }, 2, 1, 9000,
	  JITTER_MIN, 1, 9000 },
	{ "Retry-After does not revive an exhausted schedule", { 0, 1 }, 2,
	  2, 5000, NO_JITTER, 0, 0 },
	{ "empty schedule", { 0 }, 0, 1, -1, NO_JITTER, 0, 0 },
	{ "single attempt", { 0 }, 1, 1, -1, NO_JITTER, 0, 0 },
};

struct jitter_case {
	const char *name;
	int64_t delay_ms;
};

static const struct jitter_case jitter_cases[] = {
	{ "0", 0 },
	{ "negative", -5000 },
	{ "1 ms", 1 },
	{ "999 ms", 999 },
	{ "1 s", 1000 },
	{ "5 s", 5000 },
	{ "5 min", 300000 },
	{ "10 h", 36000000 },
	{ "the longest schedule step", (int64_t)UINT32_MAX * 1000 },
};

struct retry_after_case {
	const char *name;
	const char *value;
	int64_t now;
	int ret;
	int64_t delay_secs;
};

static const struct retry_after_case retry_after_cases[] = {
	{ "delta-seconds", "120", 0, 0, 120 },
	{ "zero", "0", 0, 0, 0 },
	{ "leading zeros", "007", 0, 0, 7 },
	{ "surrounding spaces and tabs", " \t30 \t", 0, 0, 30 },
	{ "exactly the cap", "86400", 0, 0, DAY },
	{ "one over the cap", "86401", 0, 0, DAY },
	{ "huge number is capped", "99999999999999999999999999999", 0, 0,
	  DAY },
	{ "empty", "", 0, -1, 0 },
	{ "only spaces", "   ", 0, -1, 0 },
	{ "negative", "-5", 0, -1, 0 },
	{ "plus sign", "+5", 0, -1, 0 },
	{ "fraction", "1.5", 0, -1, 0 },
	{ "unit", "5s", 0, -1, 0 },
	{ "hex", "0x10", 0, -1, 0 },
	{ "two numbers", "5 6", 0, -1, 0 },
	{ "garbage", "soon", 0, -1, 0 },
	{ "longer than the buffer",
	  "                                                                "
	  "  5", 0, -1, 0 },
	{ "IMF-fixdate 60 s ahead", "Sun, 06 Nov 1994 08:49:37 GMT",
	  RFC_DATE - 60, 0, 60 },
	{ "IMF-fixdate now", "Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE, 0,
	  0 },
	{ "IMF-fixdate in the past", "Sun, 06 Nov 1994 08:49:37 GMT",
	  RFC_DATE + 3600, 0, 0 },
	{ "IMF-fixdate far ahead is capped", "Fri, 31 Dec 9999 23:59:59 GMT",
	  RFC_DATE, 0, DAY },
	{ "IMF-fixdate with spaces around", "  Sun, 06 Nov 1994 08:49:37 GMT ",
	  RFC_DATE - 1, 0, 1 },
	{ "RFC 850 date", "Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE - 60,
	  0, 60 },
	{ "asctime date", "Sun Nov  6 08:49:37 1994", RFC_DATE - 60, 0, 60 },
	{ "not GMT", "Sun, 06 Nov 1994 08:49:37 UTC", 0, -1, 0 },
	{ "lower-case day name", "sun, 06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "one-digit day in IMF-fixdate", "Sun, 6 Nov 1994 08:49:37 GMT", 0,
	  -1, 0 },
	{ "31 February", "Thu, 31 Feb 1994 08:49:37 GMT", 0, -1, 0 },
	{ "hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", 0, -1, 0 },
	{ "minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", 0, -1, 0 },
	{ "trailing garbage", "Sun, 06 Nov 1994 08:49:37 GMT x", 0, -1, 0 },
	{ "no day name", "06 Nov 1994 08:49:37 GMT", 0, -1, 0 },
	{ "bad month", "Sun, 06 Nox 1994 08:49:37 GMT", 0, -1, 0 },
	{ "ISO 8601 is not an HTTP-date", "1994-11-06T08:49:37Z", 0, -1, 0 },
};

struct date_case {
	const char *name;
	const char *value;
	int ret;
	int64_t time;
};

static const struct date_case date_cases[] = {
	{ "RFC 9110 example", "Sun, 06 Nov 1994 08:49:37 GMT", 0, RFC_DATE },
	{ "epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0, 0 },
	{ "Y2K", "Sat, 01 Jan 2000 00:00:00 GMT", 0, 946684800 },
	{ "leap day", "Thu, 29 Feb 2024 00:00:00 GMT", 0, 1709164800 },
	{ "29 February of a common year", "Wed, 29 Feb 2023 00:00:00 GMT", -1,
	  0 },
	{ "29 February 2100 (not leap)", "Mon, 29 Feb 2100 00:00:00 GMT", -1,
	  0 },
	{ "1 March 2100", "Mon, 01 Mar 2100 00:00:00 GMT", 0, 4107542400 },
	{ "after 2038", "Tue, 19 Jan 2038 03:14:08 GMT", 0, 2147483648 },
	{ "leap second", "Sat, 01 Jan 2000 00:00:60 GMT", 0, 946684860 },
	{ "RFC 850, 19xx", "Sunday, 06-Nov-94 08:49:37 GMT", 0, RFC_DATE },
	{ "RFC 850, 20xx", "Tuesday, 01-Jan-30 00:00:00 GMT", 0,
	  1893456000 },
	{ "RFC 850 with a short day name", "Sun, 06-Nov-94 08:49:37 GMT", -1,
	  0 },
	{ "asctime, one-digit day", "Sun Nov  6 08:49:37 1994", 0,
	  RFC_DATE },
	{ "asctime, two-digit day", "Sat Jan 01 00:00:00 2000", 0,
	  946684800 },
	{ "asctime without the padding space", "Sun Nov 6 08:49:37 1994", -1,
	  0 },
	{ "empty", "", -1, 0 },
};

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

static void test_next(void **state)
{
	const struct next_case *c = *state;
	size_t idx = (size_t)(c - next_cases);
	int64_t delay = -12345;
	int ret;

	ret = webhook_backoff_next(c->schedule, c->count, c->attempts_done,
				   c->retry_after_ms, c->random, &delay);
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d", ret,
			  c->ret);
	if (ret == 1 && delay != c->delay_ms)
		case_fail(idx, c->name, "delay %" PRId64 " ms, expected %"
			  PRId64, delay, c->delay_ms);
}

static void test_jitter(void **state)
{
	static const uint32_t extra[] = {
		401, 1000, 65535, 0x7fffffffU, 0x80000000U, UINT32_MAX
	};
	const struct jitter_case *c = *state;
	size_t idx = (size_t)(c - jitter_cases);
	int64_t base = c->delay_ms < 0 ? 0 : c->delay_ms;
	int64_t lo = base - base * WEBHOOK_BACKOFF_JITTER_PERMILLE / 1000;
	int64_t hi = base + base * WEBHOOK_BACKOFF_JITTER_PERMILLE / 1000;
	int64_t d, min = INT64_MAX, max = INT64_MIN;
	uint32_t r;
	size_t i;

	for (r = 0; r < 2 * WEBHOOK_BACKOFF_JITTER_PERMILLE + 1 +
	     N_ELEMENTS(extra); r++) {
		uint32_t random = r <= 2 * WEBHOOK_BACKOFF_JITTER_PERMILLE ?
			r : extra[r - 2 * WEBHOOK_BACKOFF_JITTER_PERMILLE - 1];

		d = webhook_backoff_jitter(c->delay_ms, random);
		if (d < 0)
			case_fail(idx, c->name, "negative delay %" PRId64
				  " for random %" PRIu32, d, random);
		if (d < lo || d > hi)
			case_fail(idx, c->name, "%" PRId64 " outside [%"
				  PRId64 ", %" PRId64 "] for random %" PRIu32,
				  d, lo, hi, random);
		if (d != webhook_backoff_jitter(c->delay_ms, random))
			case_fail(idx, c->name, "not deterministic");
		if (d < min)
			min = d;
		if (d > max)
			max = d;
	}
	/* the whole range is reached, so the jitter really spreads */
	if (min != lo || max != hi)
		case_fail(idx, c->name, "range [%" PRId64 ", %" PRId64
			  "], expected [%" PRId64 ", %" PRId64 "]", min, max,
			  lo, hi);
	for (i = 0; i < N_ELEMENTS(extra); i++) {
		if (webhook_backoff_jitter(c->delay_ms, extra[i]) !=
		    webhook_backoff_jitter(c->delay_ms, extra[i] % 401))
			case_fail(idx, c->name, "random %" PRIu32 " is not "
				  "reduced modulo 401", extra[i]);
	}
}

static void test_retry_after(void **state)
{
	const struct retry_after_case *c = *state;
	size_t idx = (size_t)(c - retry_after_cases);
	int64_t delay = -12345;
	int ret;

	ret = webhook_retry_after_parse(c->value, (time_t)c->now, &delay);
	if (ret != c->ret)
		case_fail(idx, c->name, "\"%s\": returned %d, expected %d",
			  c->value, ret, c->ret);
	if (ret == 0 && delay != c->delay_secs)
		case_fail(idx, c->name, "\"%s\": %" PRId64 " s, expected %"
			  PRId64, c->value, delay, c->delay_secs);
	if (ret == 0 && (delay < 0 || delay > WEBHOOK_RETRY_AFTER_MAX_SECS))
		case_fail(idx, c->name, "delay %" PRId64 " out of bounds",
			  delay);
}

static void test_date(void **state)
{
	const struct date_case *c = *state;
	size_t idx = (size_t)(c - date_cases);
	time_t t = 12345;
	int ret;

	ret = webhook_http_date_parse(c->value, &t);
	if (ret != c->ret)
		case_fail(idx, c->name, "\"%s\": returned %d, expected %d",
			  c->value, ret, c->ret);
	if (ret == 0 && (int64_t)t != c->time)
		case_fail(idx, c->name, "\"%s\": %" PRId64 ", expected %"
			  PRId64, c->value, (int64_t)t, c->time);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE("webhook_backoff_next", test_next, next_cases);
	failed += RUN_TABLE("webhook_backoff_jitter", test_jitter,
			    jitter_cases);
	failed += RUN_TABLE("webhook_retry_after_parse", test_retry_after,
			    retry_after_cases);
	failed += RUN_TABLE("webhook_http_date_parse", test_date, date_cases);
	return failed == 0 ? 0 : 1;
}
