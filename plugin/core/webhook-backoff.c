/* Retry timing. The schedule comes from the settings (Svix's by
   default); jitter spreads retries of many events that failed together;
   Retry-After is the receiver's explicit wish and is never shortened,
   only capped so that a hostile or broken receiver cannot park events
   for years. */

#include "pop3-retention-config.h"
#include "webhook-backoff.h"

#include <stdbool.h>
#include <string.h>

#define SECS_PER_DAY 86400

int64_t webhook_backoff_jitter(int64_t delay_ms, uint32_t random)
{
	const uint32_t span = 2 * WEBHOOK_BACKOFF_JITTER_PERMILLE + 1;
	int64_t permille;

	if (delay_ms <= 0)
		return 0;
	/* (the modulo bias of a 32-bit value over 401 is negligible) */
	permille = (int64_t)(random % span) - WEBHOOK_BACKOFF_JITTER_PERMILLE;
	/* delay_ms is at most a schedule step (unsigned int seconds) or a
	   capped Retry-After, so the product cannot overflow */
	return delay_ms + delay_ms * permille / 1000;
}

int webhook_backoff_next(const unsigned int *schedule, unsigned int count,
			 unsigned int attempts_done, int64_t retry_after_ms,
			 uint32_t random, int64_t *delay_ms_r)
{
	int64_t delay;

	if (attempts_done >= count)
		return 0;
	delay = webhook_backoff_jitter((int64_t)schedule[attempts_done] * 1000,
				       random);
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	*delay_ms_r = delay;
	return 1;
}

static const char *const day_names[] = {
	"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"
};
static const char *const day_names_long[] = {
	"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
	"Sunday"
};
static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

struct http_date {
	int year, month, day, hour, min, sec;
};

static bool skip_literal(const char **p, const char *lit)
{
	size_t len = strlen(lit);

	if (strncmp(*p, lit, len) != 0)
		return false;
	*p += len;
	return true;
}

/* Exactly n digits. */
static bool parse_digits(const char **p, unsigned int n, int *value_r)
{
	int value = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		value = value * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*value_r = value;
	return true;
}

/* One name of the list, case-sensitive as RFC 9110 says. */
static bool parse_name(const char **p, const char *const *names,
		       unsigned int count, int *index_r)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		if (skip_literal(p, names[i])) {
			*index_r = (int)i;
			return true;
		}
	}
	return false;
}

static bool parse_month(const char **p, struct http_date *date)
{
	int idx;

	if (!parse_name(p, month_names, 12, &idx))
		return false;
	date->month = idx + 1;
	return true;
}

/* "hh:mm:ss" */
static bool parse_time_of_day(const char **p, struct http_date *date)
{
	return parse_digits(p, 2, &date->hour) && skip_literal(p, ":") &&
		parse_digits(p, 2, &date->min) && skip_literal(p, ":") &&
		parse_digits(p, 2, &date->sec);
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool date_is_valid(const struct http_date *date)
{
	static const int days_in_month[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int days;

	if (date->month < 1 || date->month > 12 || date->day < 1)
		return false;
	days = days_in_month[date->month - 1];
	if (date->month == 2 && is_leap_year(date->year))
		days++;
	/* a leap second (60) is allowed by the grammar */
	return date->day <= days && date->hour <= 23 && date->min <= 59 &&
		date->sec <= 60;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (the well-known
   civil-from-days inverse), without timegm(), which is not standard. */
static int64_t days_from_civil(int year, int month, int day)
{
	int64_t y = year - (month <= 2 ? 1 : 0);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf_fixdate(const char *p, struct http_date *date)
{
	int idx;

	return parse_name(&p, day_names, 7, &idx) && skip_literal(&p, ", ") &&
		parse_digits(&p, 2, &date->day) && skip_literal(&p, " ") &&
		parse_month(&p, date) && skip_literal(&p, " ") &&
		parse_digits(&p, 4, &date->year) && skip_literal(&p, " ") &&
		parse_time_of_day(&p, date) && skip_literal(&p, " GMT") &&
		*p == '\0';
}

/* "Sunday, 06-Nov-94 08:49:37 GMT" */
static bool parse_rfc850_date(const char *p, struct http_date *date)
{
	int idx, yy;

	if (!(parse_name(&p, day_names_long, 7, &idx) &&
	      skip_literal(&p, ", ") && parse_digits(&p, 2, &date->day) &&
	      skip_literal(&p, "-") && parse_month(&p, date) &&
	      skip_literal(&p, "-") && parse_digits(&p, 2, &yy) &&
	      skip_literal(&p, " ") && parse_time_of_day(&p, date) &&
	      skip_literal(&p, " GMT") && *p == '\0'))
		return false;
	date->year = yy < 70 ? 2000 + yy : 1900 + yy;
	return true;
}

/* "Sun Nov  6 08:49:37 1994" */
static bool parse_asctime_date(const char *p, struct http_date *date)
{
	int idx;

	if (!(parse_name(&p, day_names, 7, &idx) && skip_literal(&p, " ") &&
	      parse_month(&p, date) && skip_literal(&p, " ")))
		return false;
	if (*p == ' ') {
		p++;
		if (!parse_digits(&p, 1, &date->day))
			return false;
	} else if (!parse_digits(&p, 2, &date->day)) {
		return false;
	}
	return skip_literal(&p, " ") && parse_time_of_day(&p, date) &&
		skip_literal(&p, " ") && parse_digits(&p, 4, &date->year) &&
		*p == '\0';
}

int webhook_http_date_parse(const char *value, time_t *time_r)
{
	struct http_date date;
	int64_t t;

	memset(&date, 0, sizeof(date));
	if (strnlen(value, WEBHOOK_RETRY_AFTER_VALUE_MAX + 1) >
	    WEBHOOK_RETRY_AFTER_VALUE_MAX)
		return -1;
	if (!parse_imf_fixdate(value, &date) &&
	    !parse_rfc850_date(value, &date) &&
	    !parse_asctime_date(value, &date))
		return -1;
	if (!date_is_valid(&date))
		return -1;
	t = days_from_civil(date.year, date.month, date.day) * SECS_PER_DAY +
		date.hour * 3600 + date.min * 60 + date.sec;
	if ((int64_t)(time_t)t != t)
		return -1;
	*time_r = (time_t)t;
	return 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int webhook_retry_after_parse(const char *value, time_t now,
			      int64_t *delay_secs_r)
{
	char buf[WEBHOOK_RETRY_AFTER_VALUE_MAX + 1];
	const char *start = value, *end;
	int64_t delay = 0;
	time_t when;
	size_t len;

	if (strnlen(value, sizeof(buf)) >= sizeof(buf))
		return -1;
	while (is_ows(*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_ows(end[-1]))
		end--;
	len = (size_t)(end - start);
	/* cppcheck-suppress knownConditionTrueFalse ; all blanks give 0 */
	if (len == 0)
		return -1;

	if (*start >= '0' && *start <= '9') {
		/* delta-seconds = 1*DIGIT; saturate instead of overflowing */
		for (; start < end; start++) {
			if (*start < '0' || *start > '9')
				return -1;
			if (delay <= WEBHOOK_RETRY_AFTER_MAX_SECS)
				delay = delay * 10 + (*start - '0');
		}
	} else {
		memcpy(buf, start, len);
		buf[len] = '\0';
		if (webhook_http_date_parse(buf, &when) < 0)
			return -1;
		delay = (int64_t)when - (int64_t)now;
		if (delay < 0)
			delay = 0;
	}
	if (delay > WEBHOOK_RETRY_AFTER_MAX_SECS)
		delay = WEBHOOK_RETRY_AFTER_MAX_SECS;
	*delay_secs_r = delay;
	return 0;
}
