#ifndef WEBHOOK_BACKOFF_H
#define WEBHOOK_BACKOFF_H

/* When to try a webhook again: the settings' retry schedule (the delay
   before each attempt; after the last attempt the event is dead-lettered)
   with jitter, and the receiver's Retry-After. Pure functions: the random
   value and the current time are parameters, so tests are deterministic. */

#include <stdint.h>
#include <time.h>

/* Jitter: a delay d becomes d * (1 + j) with j uniform in
   [-JITTER, +JITTER] per mille, so that receivers recovering from an
   outage are not hit by every sender at the same instant. */
#define WEBHOOK_BACKOFF_JITTER_PERMILLE 200
/* A Retry-After is followed up to this many seconds (a day: more than
   the longest step of the default schedule); larger values are capped. */
#define WEBHOOK_RETRY_AFTER_MAX_SECS (24 * 3600)
/* Longest Retry-After header value considered (an IMF-fixdate has 29
   characters). */
#define WEBHOOK_RETRY_AFTER_VALUE_MAX 64

/* delay_ms with jitter from `random` (any 32-bit value, e.g. from a
   PRNG): never negative, within +-WEBHOOK_BACKOFF_JITTER_PERMILLE per
   mille of delay_ms, and 0 for 0. A negative delay_ms is treated as 0. */
int64_t webhook_backoff_jitter(int64_t delay_ms, uint32_t random);

/* The delay before the next attempt of an event that has failed
   `attempts_done` times (>= 1), under a schedule of `count` delays in
   seconds (schedule[i] is the delay before attempt i + 1). retry_after_ms
   is the receiver's Retry-After in milliseconds, or -1 for none; it wins
   when it is longer than the jittered delay.
   Returns 1 and the delay in *delay_ms_r, or 0 when the schedule is
   exhausted (attempts_done >= count: dead-letter the event). */
int webhook_backoff_next(const unsigned int *schedule, unsigned int count,
			 unsigned int attempts_done, int64_t retry_after_ms,
			 uint32_t random, int64_t *delay_ms_r);

/* Parse an HTTP-date (RFC 9110 section 5.6.7): the IMF-fixdate
   "Sun, 06 Nov 1994 08:49:37 GMT" and, as recipients must, the obsolete
   RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
   ("Sun Nov  6 08:49:37 1994") forms; an RFC 850 year 70-99 is 19xx,
   00-69 is 20xx. Strict: exact separators, valid field ranges (the day
   name is not checked against the date), nothing after the date.
   Returns 0 and the Unix time in *time_r, or -1. */
int webhook_http_date_parse(const char *value, time_t *time_r);

/* Parse a Retry-After header value (delta-seconds or an HTTP-date;
   surrounding spaces and tabs allowed) received at `now`. Returns 0 and
   the delay in whole seconds in *delay_secs_r: a date in the past gives
   0, anything above WEBHOOK_RETRY_AFTER_MAX_SECS is capped (a huge
   number of seconds included). Returns -1 for anything else (empty,
   negative, fractional, garbage), which the caller ignores. */
int webhook_retry_after_parse(const char *value, time_t now,
			      int64_t *delay_secs_r);

#endif
