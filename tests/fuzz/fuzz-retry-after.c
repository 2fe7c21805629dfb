/* libFuzzer target: the Retry-After parser (webhook-backoff.c), the real
   webhook_retry_after_parse() and webhook_http_date_parse(), and the
   backoff that uses its result.

   Input: a header value. Invariants: a parsed delay is within
   0..WEBHOOK_RETRY_AFTER_MAX_SECS; a date that parses gives the same
   delay whatever spaces and tabs surround it; a parsed HTTP-date
   written back as an IMF-fixdate parses to the same time. */

#include "pop3-retention-config.h"
#include "webhook-backoff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-12-07T00:00:00Z: fixed, so that a run is reproducible */
#define NOW ((time_t)1796601600)

static void check_fixdate(time_t t)
{
	static const char days[][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
					"Fri", "Sat" };
	static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May",
					  "Jun", "Jul", "Aug", "Sep", "Oct",
					  "Nov", "Dec" };
	char buf[64];
	struct tm tm;
	time_t t2;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0)
		return;
	snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (webhook_http_date_parse(buf, &t2) < 0 || t2 != t)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned int schedule[] = { 0, 5, 300 };
	char *value, *padded;
	int64_t delay, delay2, next;
	time_t t;
	int ret;

	value = malloc(size + 1);
	padded = malloc(size + 3);
	if (value == NULL || padded == NULL)
		abort();
	memcpy(value, data, size);
	value[size] = '\0';

	ret = webhook_retry_after_parse(value, NOW, &delay);
	if (ret == 0) {
		if (delay < 0 || delay > WEBHOOK_RETRY_AFTER_MAX_SECS)
			abort();
		/* the delay as the engine uses it */
		if (webhook_backoff_next(schedule, 3, 1, delay * 1000,
					 (uint32_t)size * 2654435761U,
					 &next) != 1 || next < delay * 1000)
			abort();
	}
	if (webhook_http_date_parse(value, &t) == 0) {
		check_fixdate(t);
		/* the same date as a header value, padded */
		snprintf(padded, size + 3, " %s\t", value);
		if (strlen(value) + 2 <= WEBHOOK_RETRY_AFTER_VALUE_MAX) {
			if (webhook_retry_after_parse(padded, NOW,
						      &delay2) < 0)
				abort();
			if (delay2 != (t <= NOW ? 0 :
				       t - NOW > WEBHOOK_RETRY_AFTER_MAX_SECS ?
				       WEBHOOK_RETRY_AFTER_MAX_SECS : t - NOW))
				abort();
		}
	}
	free(padded);
	free(value);
	return 0;
}
