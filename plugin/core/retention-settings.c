/* Parsing and validation of the pop3_retention_* settings. */

#include "pop3-retention-config.h"
#include "retention-settings.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_PREFIX "pop3_retention_"

const char *const retention_settings_keys[] = {
	"pop3_retention_policy",
	"pop3_retention_keep",
	"pop3_retention_min",
	"pop3_retention_max",
	"pop3_retention_hold",
	"pop3_retention_remove",
	"pop3_retention_visible_since",
	"pop3_retention_top_counts",
	"pop3_retention_dry_run",
	"pop3_retention_capa_expire",
	"pop3_retention_webhook_url",
	"pop3_retention_webhook_secret_file",
	"pop3_retention_webhook_ca_file",
	"pop3_retention_webhook_events",
	"pop3_retention_webhook_allow_private",
	"pop3_retention_webhook_retry_schedule",
	"pop3_retention_webhook_timeout",
	"pop3_retention_webhook_max_in_flight",
	"pop3_retention_webhook_nice",
	NULL
};

/* Site-wide: read only by the delivery service, never from userdb. */
static const char *const site_only_keys[] = {
	"pop3_retention_webhook_url",
	"pop3_retention_webhook_secret_file",
	"pop3_retention_webhook_ca_file",
	"pop3_retention_webhook_allow_private",
	"pop3_retention_webhook_retry_schedule",
	"pop3_retention_webhook_timeout",
	"pop3_retention_webhook_max_in_flight",
	"pop3_retention_webhook_nice",
	NULL
};

static const unsigned int default_retry_schedule[] = {
	0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600
};

#define DEFAULT_WEBHOOK_TIMEOUT_SECS 15
#define DEFAULT_WEBHOOK_MAX_IN_FLIGHT 16
#define DEFAULT_WEBHOOK_NICE 19

static void __attribute__((format(printf, 2, 3)))
set_error(struct retention_settings *set, const char *fmt, ...);

static void
set_error(struct retention_settings *set, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(set->error, sizeof(set->error), fmt, args);
	va_end(args);
}

void retention_settings_init(struct retention_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->policy = RETENTION_POLICY_OFF;
	set->remove = RETENTION_REMOVE_EXPUNGE;
	set->capa_expire = true;
	set->webhook_events = RETENTION_EVENT_ALL;
	memcpy(set->retry_schedule, default_retry_schedule,
	       sizeof(default_retry_schedule));
	set->retry_schedule_count = sizeof(default_retry_schedule) /
				    sizeof(default_retry_schedule[0]);
	set->webhook_timeout_secs = DEFAULT_WEBHOOK_TIMEOUT_SECS;
	set->webhook_max_in_flight = DEFAULT_WEBHOOK_MAX_IN_FLIGHT;
	set->webhook_nice = DEFAULT_WEBHOOK_NICE;
}

static bool str_match_any(const char *str, const char *const *words)
{
	for (; *words != NULL; words++) {
		if (strcasecmp(str, *words) == 0)
			return true;
	}
	return false;
}

int retention_interval_parse(const char *str, unsigned int *secs_r,
			     const char **error_r)
{
	static const char *const secs_words[] = {
		"s", "sec", "secs", "second", "seconds", NULL };
	static const char *const msecs_words[] = {
		"ms", "msec", "msecs", "millisecond", "milliseconds",
		"millisec", "millisecs", NULL };
	static const char *const mins_words[] = {
		"m", "min", "mins", "minute", "minutes", NULL };
	static const char *const hours_words[] = {
		"h", "hour", "hours", NULL };
	static const char *const days_words[] = {
		"d", "day", "days", NULL };
	static const char *const weeks_words[] = {
		"w", "week", "weeks", NULL };
	uintmax_t num = 0, multiply;
	const char *p = str;
	bool msecs = false;

	if (!isdigit((unsigned char)*p)) {
		*error_r = "not a time interval (expected e.g. 30d, 12h, 3s)";
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		if (num > (UINTMAX_MAX - 9) / 10) {
			*error_r = "time interval is too large";
			return -1;
		}
		num = num * 10 + (uintmax_t)(*p - '0');
	}
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		if (num != 0) {
			*error_r = "time interval is missing a unit "
				   "(e.g. s, m, h, d, w)";
			return -1;
		}
		*secs_r = 0;
		return 0;
	}
	if (str_match_any(p, secs_words))
		multiply = 1;
	else if (str_match_any(p, msecs_words)) {
		multiply = 1;
		msecs = true;
	} else if (str_match_any(p, mins_words))
		multiply = 60;
	else if (str_match_any(p, hours_words))
		multiply = 60 * 60;
	else if (str_match_any(p, days_words))
		multiply = 60 * 60 * 24;
	else if (str_match_any(p, weeks_words))
		multiply = 60 * 60 * 24 * 7;
	else {
		*error_r = "unknown time unit (use s, m, h, d or w; "
			   "there is no month or year)";
		return -1;
	}
	if (msecs) {
		/* Second resolution: whole seconds only, as Dovecot. */
		if (num % 1000 != 0) {
			*error_r = "milliseconds are not supported here";
			return -1;
		}
		num /= 1000;
	}
	if (num > UINT_MAX / multiply) {
		*error_r = "time interval is too large";
		return -1;
	}
	*secs_r = (unsigned int)(num * multiply);
	return 0;
}

static bool parse_digits(const char **p, unsigned int ndigits,
			 unsigned int *value_r)
{
	unsigned int i, value = 0;

	for (i = 0; i < ndigits; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		value = value * 10 + (unsigned int)((*p)[i] - '0');
	}
	*p += ndigits;
	*value_r = value;
	return true;
}

static bool parse_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm: it is
   not in POSIX and depends on the TZ database). */
static int64_t days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static unsigned int days_in_month(unsigned int year, unsigned int month)
{
	static const unsigned int mdays[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : mdays[month - 1];
}

int retention_date_parse(const char *str, time_t *time_r)
{
	const char *p = str;
	unsigned int year, month, day, hour = 0, min = 0, sec = 0;
	unsigned int off_h = 0, off_m = 0;
	int off_sign = 0;
	int64_t t;

	if (!parse_digits(&p, 4, &year) || !parse_char(&p, '-') ||
	    !parse_digits(&p, 2, &month) || !parse_char(&p, '-') ||
	    !parse_digits(&p, 2, &day))
		return -1;
	if (year < 1970 || month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!parse_digits(&p, 2, &hour) || !parse_char(&p, ':') ||
		    !parse_digits(&p, 2, &min) || !parse_char(&p, ':') ||
		    !parse_digits(&p, 2, &sec))
			return -1;
		if (hour > 23 || min > 59 || sec > 60)
			return -1;
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			off_sign = *p == '+' ? 1 : -1;
			p++;
			if (!parse_digits(&p, 2, &off_h) ||
			    !parse_char(&p, ':') ||
			    !parse_digits(&p, 2, &off_m) ||
			    off_h > 23 || off_m > 59)
				return -1;
		} else
			return -1;
	}
	if (*p != '\0')
		return -1;
	t = days_from_civil(year, month, day) * 86400 +
	    (int64_t)hour * 3600 + (int64_t)min * 60 + sec;
	t -= off_sign * ((int64_t)off_h * 3600 + (int64_t)off_m * 60);
	if (sizeof(time_t) < 8 && t > INT32_MAX)
		return -1;
	*time_r = (time_t)t;
	return 0;
}

static int parse_bool(const char *value, bool *result_r)
{
	static const char *const yes_words[] = { "yes", "true", "1", NULL };
	static const char *const no_words[] = { "no", "false", "0", NULL };

	if (str_match_any(value, yes_words))
		*result_r = true;
	else if (str_match_any(value, no_words))
		*result_r = false;
	else
		return -1;
	return 0;
}

static bool str_is_printable(const char *str)
{
	for (; *str != '\0'; str++) {
		if ((unsigned char)*str < 0x20 || *str == 0x7f)
			return false;
	}
	return true;
}

/* Append str[0..len) to buf (size bytes, pos used), as far as it fits
   with the NUL; control characters become '?'. */
static void buf_put(char *buf, size_t size, size_t *pos, const char *str,
		    size_t len)
{
	for (size_t i = 0; i < len && *pos + 1 < size; i++) {
		unsigned char c = (unsigned char)str[i];

		buf[(*pos)++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[*pos] = '\0';
}

/* url for an error message: its userinfo, query and fragment (where
   passwords and tokens go) replaced by "[redacted]"; cut at the
   buffer's size. */
static const char *url_redact(const char *url, char *buf, size_t size)
{
	static const char redacted[] = "[redacted]";
	const char *authority, *end, *at = NULL;
	size_t pos = 0, len;

	buf[0] = '\0';
	authority = strstr(url, "://");
	authority = authority != NULL ? authority + 3 : url;
	end = authority + strcspn(authority, "/?#");
	for (const char *p = authority; p < end; p++) {
		if (*p == '@')
			at = p;
	}
	buf_put(buf, size, &pos, url, (size_t)(authority - url));
	if (at != NULL) {
		buf_put(buf, size, &pos, redacted, sizeof(redacted) - 1);
		authority = at;
	}
	len = strcspn(authority, "?#");
	buf_put(buf, size, &pos, authority, len);
	if (authority[len] != '\0') {
		buf_put(buf, size, &pos, authority + len, 1);
		buf_put(buf, size, &pos, redacted, sizeof(redacted) - 1);
	}
	return buf;
}

static int parse_url(struct retention_settings *set, const char *key,
		     const char *value)
{
	char shown[RETENTION_URL_MAX + 32];
	const char *host;
	size_t len = strlen(value);

	if (strncasecmp(value, "https://", 8) == 0)
		host = value + 8;
	else if (strncasecmp(value, "http://", 7) == 0)
		host = value + 7;
	else {
		set_error(set, "%s: invalid value '%s': only http:// and "
			  "https:// URLs are allowed", key,
			  url_redact(value, shown, sizeof(shown)));
		return -1;
	}
	if (*host == '\0' || *host == '/' || *host == ':') {
		set_error(set, "%s: invalid value '%s': the URL has no host",
			  key, url_redact(value, shown, sizeof(shown)));
		return -1;
	}
	if (len >= sizeof(set->webhook_url)) {
		set_error(set, "%s: invalid value: URL longer than %zu bytes",
			  key, sizeof(set->webhook_url) - 1);
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			set_error(set, "%s: invalid value '%s': the URL "
				  "contains a space or control character",
				  key, url_redact(value, shown, sizeof(shown)));
			return -1;
		}
	}
	memcpy(set->webhook_url, value, len + 1);
	return 0;
}

static int parse_event_list(struct retention_settings *set, const char *key,
			    const char *value, unsigned int *events_r)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} names[] = {
		{ "message.retrieved", RETENTION_EVENT_RETRIEVED },
		{ "message.deleted", RETENTION_EVENT_DELETED },
		{ "message.retained", RETENTION_EVENT_RETAINED },
		{ "message.expired", RETENTION_EVENT_EXPIRED },
		{ "all", RETENTION_EVENT_ALL },
		{ "none", 0 },
	};
	unsigned int events = 0, i;
	const char *p = value;

	while (*p != '\0') {
		size_t len;
		bool found = false;

		if (*p == ' ' || *p == ',' || *p == '\t') {
			p++;
			continue;
		}
		len = strcspn(p, " ,\t");
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (strlen(names[i].name) == len &&
			    strncasecmp(names[i].name, p, len) == 0) {
				events |= names[i].bit;
				found = true;
				break;
			}
		}
		if (!found) {
			set_error(set, "%s: invalid value '%s': unknown event "
				  "type '%.*s' (known: message.retrieved, "
				  "message.deleted, message.retained, "
				  "message.expired, all, none)",
				  key, value, (int)len, p);
			return -1;
		}
		p += len;
	}
	*events_r = events;
	return 0;
}

/* "0s 5s 5m" and also "0 s 5 s": a bare number followed by a word that
   starts with a letter is one interval. */
static int parse_schedule(struct retention_settings *set, const char *key,
			  const char *value)
{
	unsigned int schedule[RETENTION_RETRY_SCHEDULE_MAX], count = 0;
	const char *p = value;
	char token[64];

	while (*p != '\0') {
		const char *start, *end, *error;
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		end = p + strcspn(p, " \t,");
		if (isdigit((unsigned char)end[-1])) {
			/* number then a separate unit word */
			const char *q = end;

			while (*q == ' ' || *q == '\t')
				q++;
			if (isalpha((unsigned char)*q))
				end = q + strcspn(q, " \t,");
		}
		len = (size_t)(end - start);
		if (len >= sizeof(token)) {
			set_error(set, "%s: invalid value '%s': interval too "
				  "long", key, value);
			return -1;
		}
		memcpy(token, start, len);
		token[len] = '\0';
		if (count == RETENTION_RETRY_SCHEDULE_MAX) {
			set_error(set, "%s: invalid value '%s': at most %d "
				  "attempts", key, value,
				  RETENTION_RETRY_SCHEDULE_MAX);
			return -1;
		}
		if (retention_interval_parse(token, &schedule[count],
					     &error) < 0) {
			set_error(set, "%s: invalid value '%s': '%s': %s",
				  key, value, token, error);
			return -1;
		}
		count++;
		p = end;
	}
	if (count == 0) {
		set_error(set, "%s: invalid value '%s': the schedule needs at "
			  "least one interval", key, value);
		return -1;
	}
	memcpy(set->retry_schedule, schedule, sizeof(schedule[0]) * count);
	set->retry_schedule_count = count;
	return 0;
}

static int set_interval(struct retention_settings *set, const char *key,
			const char *value, unsigned int *secs_r)
{
	const char *error;

	if (retention_interval_parse(value, secs_r, &error) < 0) {
		set_error(set, "%s: invalid value '%s': %s", key, value, error);
		return -1;
	}
	return 0;
}

/* A plain decimal number in min..max. */
static int set_uint_range(struct retention_settings *set, const char *key,
			  const char *value, unsigned int min,
			  unsigned int max, unsigned int *result_r)
{
	unsigned long n = 0;
	const char *p;

	for (p = value; *p >= '0' && *p <= '9' && n <= max; p++)
		n = n * 10 + (unsigned long)(*p - '0');
	if (p == value || *p != '\0' || n < min || n > max) {
		set_error(set, "%s: invalid value '%s': expected a number "
			  "from %u to %u", key, value, min, max);
		return -1;
	}
	*result_r = (unsigned int)n;
	return 0;
}

/* An absolute path of printable characters into dest. */
static int set_path(struct retention_settings *set, const char *key,
		    const char *value, char *dest, size_t dest_size)
{
	size_t len = strlen(value);

	if (value[0] != '/' || len >= dest_size || !str_is_printable(value)) {
		set_error(set, "%s: invalid value '%s': expected an absolute "
			  "path", key, value);
		return -1;
	}
	memcpy(dest, value, len + 1);
	return 0;
}

static int set_bool(struct retention_settings *set, const char *key,
		    const char *value, bool *result_r)
{
	if (parse_bool(value, result_r) < 0) {
		set_error(set, "%s: invalid value '%s': expected yes or no",
			  key, value);
		return -1;
	}
	return 0;
}

static int set_one(struct retention_settings *set, const char *name,
		   const char *key, const char *value)
{
	if (strcmp(name, "policy") == 0) {
		if (strcasecmp(value, "off") == 0)
			set->policy = RETENTION_POLICY_OFF;
		else if (strcasecmp(value, "delete-after-download") == 0)
			set->policy = RETENTION_POLICY_DELETE_AFTER_DOWNLOAD;
		else if (strcasecmp(value, "keep") == 0)
			set->policy = RETENTION_POLICY_KEEP;
		else {
			set_error(set, "%s: invalid value '%s': expected off, "
				  "delete-after-download or keep", key, value);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "keep") == 0) {
		if (set_interval(set, key, value, &set->keep_secs) < 0)
			return -1;
		set->keep_set = true;
		return 0;
	}
	if (strcmp(name, "min") == 0)
		return set_interval(set, key, value, &set->min_secs);
	if (strcmp(name, "max") == 0)
		return set_interval(set, key, value, &set->max_secs);
	if (strcmp(name, "hold") == 0)
		return set_bool(set, key, value, &set->hold);
	if (strcmp(name, "remove") == 0) {
		const char *mailbox;
		size_t len;

		if (strcasecmp(value, "expunge") == 0) {
			set->remove = RETENTION_REMOVE_EXPUNGE;
			set->move_mailbox[0] = '\0';
			return 0;
		}
		if (strncasecmp(value, "move:", 5) != 0) {
			set_error(set, "%s: invalid value '%s': expected "
				  "expunge or move:<mailbox>", key, value);
			return -1;
		}
		mailbox = value + 5;
		len = strlen(mailbox);
		if (len == 0 || len >= sizeof(set->move_mailbox) ||
		    !str_is_printable(mailbox)) {
			set_error(set, "%s: invalid value '%s': the mailbox "
				  "name must be 1..%zu printable characters",
				  key, value, sizeof(set->move_mailbox) - 1);
			return -1;
		}
		set->remove = RETENTION_REMOVE_MOVE;
		memcpy(set->move_mailbox, mailbox, len + 1);
		return 0;
	}
	if (strcmp(name, "visible_since") == 0) {
		if (retention_date_parse(value, &set->visible_since) < 0) {
			set_error(set, "%s: invalid value '%s': expected a "
				  "date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				  key, value);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "top_counts") == 0)
		return set_bool(set, key, value, &set->top_counts);
	if (strcmp(name, "dry_run") == 0)
		return set_bool(set, key, value, &set->dry_run);
	if (strcmp(name, "capa_expire") == 0)
		return set_bool(set, key, value, &set->capa_expire);
	if (strcmp(name, "webhook_url") == 0)
		return parse_url(set, key, value);
	if (strcmp(name, "webhook_secret_file") == 0)
		return set_path(set, key, value, set->webhook_secret_file,
				sizeof(set->webhook_secret_file));
	if (strcmp(name, "webhook_ca_file") == 0)
		return set_path(set, key, value, set->webhook_ca_file,
				sizeof(set->webhook_ca_file));
	if (strcmp(name, "webhook_events") == 0)
		return parse_event_list(set, key, value, &set->webhook_events);
	if (strcmp(name, "webhook_allow_private") == 0)
		return set_bool(set, key, value, &set->webhook_allow_private);
	if (strcmp(name, "webhook_retry_schedule") == 0)
		return parse_schedule(set, key, value);
	if (strcmp(name, "webhook_timeout") == 0) {
		unsigned int secs;

		if (set_interval(set, key, value, &secs) < 0)
			return -1;
		if (secs == 0) {
			set_error(set, "%s: invalid value '%s': the timeout "
				  "must be at least 1s", key, value);
			return -1;
		}
		set->webhook_timeout_secs = secs;
		return 0;
	}
	if (strcmp(name, "webhook_max_in_flight") == 0)
		return set_uint_range(set, key, value, 1,
				      RETENTION_WEBHOOK_MAX_IN_FLIGHT_MAX,
				      &set->webhook_max_in_flight);
	if (strcmp(name, "webhook_nice") == 0)
		return set_uint_range(set, key, value, 0, 19,
				      &set->webhook_nice);
	set_error(set, "%s: unknown setting", key);
	return -1;
}

static void reset_one(struct retention_settings *set, const char *name)
{
	struct retention_settings defaults;

	retention_settings_init(&defaults);
	if (strcmp(name, "policy") == 0)
		set->policy = defaults.policy;
	else if (strcmp(name, "keep") == 0) {
		set->keep_secs = 0;
		set->keep_set = false;
	} else if (strcmp(name, "min") == 0)
		set->min_secs = 0;
	else if (strcmp(name, "max") == 0)
		set->max_secs = 0;
	else if (strcmp(name, "hold") == 0)
		set->hold = false;
	else if (strcmp(name, "remove") == 0) {
		set->remove = RETENTION_REMOVE_EXPUNGE;
		set->move_mailbox[0] = '\0';
	} else if (strcmp(name, "visible_since") == 0)
		set->visible_since = 0;
	else if (strcmp(name, "top_counts") == 0)
		set->top_counts = false;
	else if (strcmp(name, "dry_run") == 0)
		set->dry_run = false;
	else if (strcmp(name, "capa_expire") == 0)
		set->capa_expire = true;
	else if (strcmp(name, "webhook_url") == 0)
		set->webhook_url[0] = '\0';
	else if (strcmp(name, "webhook_secret_file") == 0)
		set->webhook_secret_file[0] = '\0';
	else if (strcmp(name, "webhook_ca_file") == 0)
		set->webhook_ca_file[0] = '\0';
	else if (strcmp(name, "webhook_events") == 0)
		set->webhook_events = defaults.webhook_events;
	else if (strcmp(name, "webhook_allow_private") == 0)
		set->webhook_allow_private = false;
	else if (strcmp(name, "webhook_retry_schedule") == 0) {
		memcpy(set->retry_schedule, defaults.retry_schedule,
		       sizeof(set->retry_schedule));
		set->retry_schedule_count = defaults.retry_schedule_count;
	} else if (strcmp(name, "webhook_timeout") == 0)
		set->webhook_timeout_secs = defaults.webhook_timeout_secs;
	else if (strcmp(name, "webhook_max_in_flight") == 0)
		set->webhook_max_in_flight = defaults.webhook_max_in_flight;
	else if (strcmp(name, "webhook_nice") == 0)
		set->webhook_nice = defaults.webhook_nice;
}

static bool key_is_known(const char *key)
{
	const char *const *k;

	for (k = retention_settings_keys; *k != NULL; k++) {
		if (strcmp(*k, key) == 0)
			return true;
	}
	return false;
}

int retention_settings_set(struct retention_settings *set, const char *key,
			   const char *value)
{
	const char *name;

	if (!key_is_known(key)) {
		set_error(set, "%s: unknown setting", key);
		return -1;
	}
	name = key + strlen(KEY_PREFIX);
	/* No copy of set to fall back on (it is 11 KB, and every pop3
	   process parses its settings at login): every parser above
	   writes its field only once the whole value is good, so a failed
	   parse leaves set unchanged but for set->error (the unit tests
	   check each bad value for that). */
	if (value == NULL || *value == '\0')
		reset_one(set, name);
	else if (strlen(value) >= RETENTION_URL_MAX) {
		set_error(set, "%s: invalid value: longer than %d bytes", key,
			  RETENTION_URL_MAX - 1);
		return -1;
	} else if (set_one(set, name, key, value) < 0)
		return -1;
	set->error[0] = '\0';
	return 0;
}

static void format_interval(unsigned int secs, char *buf, size_t size)
{
	if (secs != 0 && secs % 86400 == 0)
		snprintf(buf, size, "%ud", secs / 86400);
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(buf, size, "%uh", secs / 3600);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, size, "%um", secs / 60);
	else
		snprintf(buf, size, "%us", secs);
}

int retention_settings_check(struct retention_settings *set)
{
	char a[32], b[32];

	if (set->policy == RETENTION_POLICY_KEEP && !set->keep_set) {
		set_error(set, "pop3_retention_policy: invalid value 'keep': "
			  "pop3_retention_keep must be set too");
		return -1;
	}
	if (set->min_secs != 0 && set->max_secs != 0 &&
	    set->min_secs > set->max_secs) {
		format_interval(set->min_secs, a, sizeof(a));
		format_interval(set->max_secs, b, sizeof(b));
		set_error(set, "pop3_retention_min: invalid value '%s': the "
			  "floor is above pop3_retention_max '%s'", a, b);
		return -1;
	}
	set->error[0] = '\0';
	return 0;
}

bool retention_settings_key_is_per_user(const char *key)
{
	return key_is_known(key) && !str_match_any(key, site_only_keys);
}

bool retention_settings_key_is_site_wide(const char *key)
{
	return key_is_known(key) && str_match_any(key, site_only_keys);
}

bool retention_settings_key_is_for_sessions(const char *key)
{
	return key_is_known(key) &&
	       (!str_match_any(key, site_only_keys) ||
		strcmp(key, "pop3_retention_webhook_url") == 0);
}

const char *retention_policy_kind_name(enum retention_policy_kind kind)
{
	switch (kind) {
	case RETENTION_POLICY_OFF:
		return "off";
	case RETENTION_POLICY_DELETE_AFTER_DOWNLOAD:
		return "delete-after-download";
	case RETENTION_POLICY_KEEP:
		return "keep";
	}
	return "unknown";
}

const char *retention_event_type_name(enum retention_event_type type)
{
	switch (type) {
	case RETENTION_EVENT_RETRIEVED:
		return "message.retrieved";
	case RETENTION_EVENT_DELETED:
		return "message.deleted";
	case RETENTION_EVENT_RETAINED:
		return "message.retained";
	case RETENTION_EVENT_EXPIRED:
		return "message.expired";
	}
	return "unknown";
}

const char *retention_time_format(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (size == 0)
		return buf;
	/* RFC 3339 has four-digit years only. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 ||
	    tm.tm_year > 9999 - 1900 ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		buf[0] = '\0';
	return buf;
}
