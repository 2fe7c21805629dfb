/* Parsing and validation of the pop3_retention_* settings. */

#include "pop3-retention-config.h"
#include "retention-settings.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KEY_PREFIX "pop3_retention_"

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)
#define DEF(name, kind, scope, type, field, def, min, max)                \
	{ KEY_PREFIX name, RETENTION_SETTING_##kind, RETENTION_SCOPE_##scope, \
	  offsetof(type, field), FIELD_SIZE(type, field), def, min, max }
#define SESSION(name, kind, field, def) \
	DEF(name, kind, SESSION, struct retention_settings, field, def, 0, 0)
#define DELIVERY(name, kind, field, def, min, max) \
	DEF(name, kind, DELIVERY, struct webhook_settings, field, def, min, max)

const struct retention_setting_define retention_setting_defines[] = {
	SESSION("policy", POLICY, policy, "off"),
	SESSION("keep", INTERVAL_OPT, keep, ""),
	SESSION("min", INTERVAL, min_secs, ""),
	SESSION("max", INTERVAL, max_secs, ""),
	SESSION("hold", BOOL, hold, "no"),
	SESSION("remove", REMOVE, remove, "expunge"),
	SESSION("visible_since", DATE, visible_since, ""),
	SESSION("top_counts", BOOL, top_counts, "no"),
	SESSION("dry_run", BOOL, dry_run, "no"),
	SESSION("capa_expire", BOOL, capa_expire, "yes"),
	DELIVERY("webhook_url", URL, url, "", 0, 0),
	DELIVERY("webhook_secret_file", PATH, secret_file, "", 0, 0),
	DELIVERY("webhook_ca_file", PATH, ca_file, "", 0, 0),
	SESSION("webhook_events", EVENTS, webhook_events, "all"),
	DELIVERY("webhook_allow_private", BOOL, allow_private, "no", 0, 0),
	DELIVERY("webhook_retry_schedule", SCHEDULE, retry_schedule,
		 "0s 5s 5m 30m 2h 5h 10h 10h", 0, 0),
	DELIVERY("webhook_timeout", INTERVAL, timeout_secs, "15s", 1, 0),
	DELIVERY("webhook_max_in_flight", UINT, max_in_flight, "16", 1,
		 RETENTION_WEBHOOK_MAX_IN_FLIGHT_MAX),
	DELIVERY("webhook_nice", UINT, nice, "19", 0, 19),
	{ NULL, 0, 0, 0, 0, NULL, 0, 0 }
};

/* Room for any setting's field: a value is parsed into a scratch copy,
   so that a bad one leaves the settings unchanged. */
union setting_value {
	struct retention_remove remove;
	struct retention_schedule schedule;
	time_t date;
	char path[RETENTION_PATH_MAX];
};

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
	/* the 1970 rule applies to the instant, not to the local date */
	if (t < 0 || (sizeof(time_t) < 8 && t > INT32_MAX))
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

static const char *const policy_names[] = {
	[RETENTION_POLICY_OFF] = "off",
	[RETENTION_POLICY_DELETE_AFTER_DOWNLOAD] = "delete-after-download",
	[RETENTION_POLICY_KEEP] = "keep",
};
#define POLICY_COUNT (sizeof(policy_names) / sizeof(policy_names[0]))

static const struct {
	const char *name;
	unsigned int bit;
} event_names[] = {
	{ "message.retrieved", RETENTION_EVENT_RETRIEVED },
	{ "message.deleted", RETENTION_EVENT_DELETED },
	{ "message.retained", RETENTION_EVENT_RETAINED },
	{ "message.expired", RETENTION_EVENT_EXPIRED },
	{ "all", RETENTION_EVENT_ALL },
	{ "none", 0 },
};
#define EVENT_NAME_COUNT (sizeof(event_names) / sizeof(event_names[0]))

static int parse_policy(const char *value, enum retention_policy_kind *kind_r,
			char *reason, size_t size)
{
	unsigned int i;

	for (i = 0; i < POLICY_COUNT; i++) {
		if (strcasecmp(value, policy_names[i]) == 0) {
			*kind_r = (enum retention_policy_kind)i;
			return 0;
		}
	}
	snprintf(reason, size, "expected off, delete-after-download or keep");
	return -1;
}

static int parse_remove(const char *value, struct retention_remove *remove_r,
			char *reason, size_t size)
{
	const char *mailbox;
	size_t len;

	if (strcasecmp(value, "expunge") == 0) {
		remove_r->kind = RETENTION_REMOVE_EXPUNGE;
		return 0;
	}
	if (strncasecmp(value, "move:", 5) != 0) {
		snprintf(reason, size, "expected expunge or move:<mailbox>");
		return -1;
	}
	mailbox = value + 5;
	len = strlen(mailbox);
	if (len == 0 || len >= sizeof(remove_r->mailbox) ||
	    !str_is_printable(mailbox)) {
		snprintf(reason, size, "the mailbox name must be 1..%zu "
			 "printable characters",
			 sizeof(remove_r->mailbox) - 1);
		return -1;
	}
	remove_r->kind = RETENTION_REMOVE_MOVE;
	memcpy(remove_r->mailbox, mailbox, len + 1);
	return 0;
}

static int parse_url(const char *value, char *reason, size_t size)
{
	const char *host;

	if (strncasecmp(value, "https://", 8) == 0)
		host = value + 8;
	else if (strncasecmp(value, "http://", 7) == 0)
		host = value + 7;
	else {
		snprintf(reason, size, "only http:// and https:// URLs are "
			 "allowed");
		return -1;
	}
	if (*host == '\0' || *host == '/' || *host == ':') {
		snprintf(reason, size, "the URL has no host");
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			snprintf(reason, size, "the URL contains a space or "
				 "control character");
			return -1;
		}
	}
	return 0;
}

static int parse_event_list(const char *value, unsigned int *events_r,
			    char *reason, size_t size)
{
	unsigned int i;
	const char *p = value;
	size_t len;

	*events_r = 0;
	for (; *p != '\0'; p += len) {
		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0)
			continue;
		for (i = 0; i < EVENT_NAME_COUNT; i++) {
			if (strlen(event_names[i].name) == len &&
			    strncasecmp(event_names[i].name, p, len) == 0)
				break;
		}
		if (i == EVENT_NAME_COUNT) {
			snprintf(reason, size, "unknown event type '%.*s' "
				 "(known: message.retrieved, "
				 "message.deleted, message.retained, "
				 "message.expired, all, none)", (int)len, p);
			return -1;
		}
		*events_r |= event_names[i].bit;
	}
	return 0;
}

/* "0s 5s 5m" and also "0 s 5 s": a bare number followed by a word that
   starts with a letter is one interval. */
static int parse_schedule(const char *value,
			  struct retention_schedule *schedule_r,
			  char *reason, size_t size)
{
	const char *p = value, *start, *end, *error;
	char token[64];
	size_t len;

	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		start = p;
		end = p + strcspn(p, " \t,");
		if (isdigit((unsigned char)end[-1])) {
			/* number then a separate unit word */
			const char *q = end + strspn(end, " \t");

			if (isalpha((unsigned char)*q))
				end = q + strcspn(q, " \t,");
		}
		len = (size_t)(end - start);
		if (len >= sizeof(token)) {
			snprintf(reason, size, "interval too long");
			return -1;
		}
		memcpy(token, start, len);
		token[len] = '\0';
		if (schedule_r->count == RETENTION_RETRY_SCHEDULE_MAX) {
			snprintf(reason, size, "at most %d attempts",
				 RETENTION_RETRY_SCHEDULE_MAX);
			return -1;
		}
		if (retention_interval_parse(
			    token, &schedule_r->secs[schedule_r->count],
			    &error) < 0) {
			snprintf(reason, size, "'%s': %s", token, error);
			return -1;
		}
		schedule_r->count++;
		p = end;
	}
	if (schedule_r->count == 0) {
		snprintf(reason, size,
			 "the schedule needs at least one interval");
		return -1;
	}
	return 0;
}

/* A plain decimal number in min..max. */
static int parse_uint_range(const char *value, unsigned int min,
			    unsigned int max, unsigned int *result_r)
{
	unsigned long n = 0;
	const char *p;

	for (p = value; *p >= '0' && *p <= '9' && n <= max; p++)
		n = n * 10 + (unsigned long)(*p - '0');
	if (p == value || *p != '\0' || n < min || n > max)
		return -1;
	*result_r = (unsigned int)n;
	return 0;
}

/* Parse a non-empty value of def into field (zeroed). Returns 0, or -1
   with reason. */
static int parse_value(const struct retention_setting_define *def,
		       const char *value, void *field, char *reason,
		       size_t size)
{
	/* an INTERVAL's field is the secs part alone (field is scratch
	   space large enough for either) */
	struct retention_interval *interval = field;
	const char *error;

	switch (def->type) {
	case RETENTION_SETTING_INTERVAL:
	case RETENTION_SETTING_INTERVAL_OPT:
		if (retention_interval_parse(value, &interval->secs,
					     &error) < 0) {
			snprintf(reason, size, "%s", error);
			return -1;
		}
		if (interval->secs < def->min) {
			snprintf(reason, size, "must be at least %us",
				 def->min);
			return -1;
		}
		interval->set = def->type == RETENTION_SETTING_INTERVAL_OPT;
		return 0;
	case RETENTION_SETTING_BOOL:
		if (parse_bool(value, field) == 0)
			return 0;
		snprintf(reason, size, "expected yes or no");
		return -1;
	case RETENTION_SETTING_POLICY:
		return parse_policy(value, field, reason, size);
	case RETENTION_SETTING_REMOVE:
		return parse_remove(value, field, reason, size);
	case RETENTION_SETTING_DATE:
		if (retention_date_parse(value, field) == 0)
			return 0;
		snprintf(reason, size, "expected a date YYYY-MM-DD or "
			 "YYYY-MM-DDTHH:MM:SSZ");
		return -1;
	case RETENTION_SETTING_EVENTS:
		return parse_event_list(value, field, reason, size);
	case RETENTION_SETTING_URL:
		if (parse_url(value, reason, size) < 0)
			return -1;
		break;
	case RETENTION_SETTING_PATH:
		if (value[0] != '/' || !str_is_printable(value)) {
			snprintf(reason, size, "expected an absolute path");
			return -1;
		}
		break;
	case RETENTION_SETTING_SCHEDULE:
		return parse_schedule(value, field, reason, size);
	case RETENTION_SETTING_UINT:
		if (parse_uint_range(value, def->min, def->max, field) == 0)
			return 0;
		snprintf(reason, size, "expected a number from %u to %u",
			 def->min, def->max);
		return -1;
	}
	/* URL and PATH: every value fits (setting_set() caps the length) */
	memcpy(field, value, strlen(value) + 1);
	return 0;
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
	/* a "://" after the query or fragment began is part of it */
	if (authority != NULL &&
	    (size_t)(authority - url) < strcspn(url, "?#"))
		authority += 3;
	else
		authority = url;
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

/* Parse value (""/NULL: the default) of def into base's field. Every
   error names the setting and the value (a URL's userinfo, query and
   fragment redacted); on error base is unchanged. */
static int setting_set(const struct retention_setting_define *def,
		       void *base, const char *value, char *error,
		       size_t error_size)
{
	union setting_value tmp;
	/* leaves room for the key and the value */
	char reason[RETENTION_SETTINGS_ERROR_MAX / 2];

	if (value == NULL || value[0] == '\0')
		value = def->default_value;
	if (strlen(value) >= RETENTION_URL_MAX) {
		snprintf(error, error_size, "%s: invalid value: longer than "
			 "%d bytes", def->key, RETENTION_URL_MAX - 1);
		return -1;
	}
	assert(def->size <= sizeof(tmp));
	memset(&tmp, 0, def->size);
	if (value[0] != '\0' &&
	    parse_value(def, value, &tmp, reason, sizeof(reason)) < 0) {
		char shown[RETENTION_URL_MAX + 32];

		snprintf(error, error_size, "%s: invalid value '%s': %s",
			 def->key, def->type != RETENTION_SETTING_URL ? value :
			 url_redact(value, shown, sizeof(shown)), reason);
		return -1;
	}
	memcpy((char *)base + def->offset, &tmp, def->size);
	error[0] = '\0';
	return 0;
}

const struct retention_setting_define *retention_setting_find(const char *key)
{
	const struct retention_setting_define *def;

	for (def = retention_setting_defines; def->key != NULL; def++) {
		if (strcmp(def->key, key) == 0)
			return def;
	}
	return NULL;
}

bool
retention_setting_is_for_sessions(const struct retention_setting_define *def)
{
	return def->scope == RETENTION_SCOPE_SESSION ||
	       def->type == RETENTION_SETTING_URL;
}

/* The setting named key of scope, or NULL with error. */
static const struct retention_setting_define *
find_scoped(const char *key, enum retention_setting_scope scope,
	    char *error, size_t error_size)
{
	const struct retention_setting_define *def =
		retention_setting_find(key);

	if (def == NULL)
		snprintf(error, error_size, "%s: unknown setting", key);
	else if (def->scope != scope &&
		 !(scope == RETENTION_SCOPE_SESSION &&
		   retention_setting_is_for_sessions(def))) {
		snprintf(error, error_size, "%s: a %s setting, not read here",
			 key, def->scope == RETENTION_SCOPE_SESSION ?
			 "per-user" : "site-wide delivery");
		def = NULL;
	}
	return def;
}

int retention_settings_set(struct retention_settings *set, const char *key,
			   const char *value)
{
	const struct retention_setting_define *def =
		find_scoped(key, RETENTION_SCOPE_SESSION, set->error,
			    sizeof(set->error));

	if (def == NULL)
		return -1;
	if (def->scope == RETENTION_SCOPE_DELIVERY) {
		/* the URL: only whether there is one */
		set->webhooks = value != NULL && value[0] != '\0';
		set->error[0] = '\0';
		return 0;
	}
	return setting_set(def, set, value, set->error, sizeof(set->error));
}

int webhook_settings_set(struct webhook_settings *set, const char *key,
			 const char *value)
{
	const struct retention_setting_define *def =
		find_scoped(key, RETENTION_SCOPE_DELIVERY, set->error,
			    sizeof(set->error));

	if (def == NULL)
		return -1;
	return setting_set(def, set, value, set->error, sizeof(set->error));
}

static void settings_init(void *set, size_t size,
			  enum retention_setting_scope scope)
{
	const struct retention_setting_define *def;
	char error[RETENTION_SETTINGS_ERROR_MAX];

	memset(set, 0, size);
	for (def = retention_setting_defines; def->key != NULL; def++) {
		if (def->scope == scope &&
		    setting_set(def, set, NULL, error, sizeof(error)) < 0)
			assert(!"a default does not parse");
	}
}

void retention_settings_init(struct retention_settings *set)
{
	settings_init(set, sizeof(*set), RETENTION_SCOPE_SESSION);
}

void webhook_settings_init(struct webhook_settings *set)
{
	settings_init(set, sizeof(*set), RETENTION_SCOPE_DELIVERY);
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

	if (set->policy == RETENTION_POLICY_KEEP && !set->keep.set) {
		snprintf(set->error, sizeof(set->error),
			 "pop3_retention_policy: invalid value 'keep': "
			 "pop3_retention_keep must be set too");
		return -1;
	}
	if (set->min_secs != 0 && set->max_secs != 0 &&
	    set->min_secs > set->max_secs) {
		format_interval(set->min_secs, a, sizeof(a));
		format_interval(set->max_secs, b, sizeof(b));
		snprintf(set->error, sizeof(set->error),
			 "pop3_retention_min: invalid value '%s': the floor "
			 "is above pop3_retention_max '%s'", a, b);
		return -1;
	}
	set->error[0] = '\0';
	return 0;
}

const char *retention_policy_kind_name(enum retention_policy_kind kind)
{
	return (unsigned int)kind < POLICY_COUNT ? policy_names[kind] :
		"unknown";
}

const char *retention_event_type_name(enum retention_event_type type)
{
	unsigned int i;

	/* the single event bits come first */
	for (i = 0; event_names[i].bit != RETENTION_EVENT_ALL; i++) {
		if (event_names[i].bit == (unsigned int)type)
			return event_names[i].name;
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
