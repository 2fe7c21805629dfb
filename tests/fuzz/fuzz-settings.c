/* libFuzzer target: the settings parser, every grammar (intervals,
   dates, booleans, policies, remove/move:, event lists, URLs, paths,
   retry schedules, ranged numbers), through the real
   retention_settings_set() / webhook_settings_set().

   Input: lines "key=value". A line without '=' (or with an empty key)
   is a bare value, given to every setting of both scopes and to
   retention_interval_parse() / retention_date_parse() directly.
   Invariants: a rejected value leaves the settings unchanged; an
   accepted one leaves every field in its bounds; a parsed date
   formats and parses back to the same time. */

#include "pop3-retention-config.h"
#include "retention-settings.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The structs minus their error text, which a failed set() writes. */
static void check_unchanged(const void *before, const void *after,
			    size_t error_offset)
{
	if (memcmp(before, after, error_offset) != 0)
		abort();
}

static void check_bounds(const struct retention_settings *set,
			 const struct webhook_settings *wset)
{
	if (set->policy > RETENTION_POLICY_KEEP ||
	    (set->webhook_events & ~(unsigned int)RETENTION_EVENT_ALL) != 0 ||
	    memchr(set->remove.mailbox, '\0',
		   sizeof(set->remove.mailbox)) == NULL ||
	    (set->remove.kind == RETENTION_REMOVE_MOVE) !=
	    (set->remove.mailbox[0] != '\0'))
		abort();
	if (wset->retry_schedule.count == 0 ||
	    wset->retry_schedule.count > RETENTION_RETRY_SCHEDULE_MAX ||
	    wset->timeout_secs == 0 || wset->max_in_flight == 0 ||
	    wset->max_in_flight > RETENTION_WEBHOOK_MAX_IN_FLIGHT_MAX ||
	    wset->nice > 19 ||
	    memchr(wset->url, '\0', sizeof(wset->url)) == NULL ||
	    memchr(wset->secret_file, '\0', sizeof(wset->secret_file)) == NULL)
		abort();
	if (wset->url[0] != '\0' &&
	    strncasecmp(wset->url, "http://", 7) != 0 &&
	    strncasecmp(wset->url, "https://", 8) != 0)
		abort();
}

static void set_one(struct retention_settings *set,
		    struct webhook_settings *wset, const char *key,
		    const char *value)
{
	struct retention_settings before;
	struct webhook_settings wbefore;

	before = *set;
	if (retention_settings_set(set, key, value) < 0) {
		if (set->error[0] == '\0')
			abort();
		check_unchanged(&before, set,
				offsetof(struct retention_settings, error));
	}
	wbefore = *wset;
	if (webhook_settings_set(wset, key, value) < 0) {
		if (wset->error[0] == '\0')
			abort();
		check_unchanged(&wbefore, wset,
				offsetof(struct webhook_settings, error));
	}
	check_bounds(set, wset);
}

static void parse_bare(struct retention_settings *set,
		       struct webhook_settings *wset, const char *value)
{
	const struct retention_setting_define *def;
	const char *error;
	unsigned int secs;
	time_t t, t2;
	char buf[32];

	for (def = retention_setting_defines; def->key != NULL; def++)
		set_one(set, wset, def->key, value);
	if (retention_interval_parse(value, &secs, &error) < 0 &&
	    (error == NULL || error[0] == '\0'))
		abort();
	if (retention_date_parse(value, &t) == 0 &&
	    retention_time_format(t, buf, sizeof(buf))[0] != '\0') {
		if (retention_date_parse(buf, &t2) < 0 || t2 != t)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct retention_settings set;
	struct webhook_settings wset;
	char *text, *line, *next, *eq;

	/* longer values are rejected up front: nothing more to find */
	if (size > 3 * RETENTION_URL_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	retention_settings_init(&set);
	webhook_settings_init(&wset);
	for (line = text; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (eq == NULL || eq == line) {
			parse_bare(&set, &wset, eq == NULL ? line : eq + 1);
			continue;
		}
		*eq = '\0';
		set_one(&set, &wset, line, eq + 1);
	}
	(void)retention_settings_check(&set);
	free(text);
	return 0;
}
