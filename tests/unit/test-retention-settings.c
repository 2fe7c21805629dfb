/* Settings: every setting's grammar, and errors that name the setting
   and the value. */

#include "pop3-retention-config.h"
#include "retention-settings.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define P "pop3_retention_"

struct row {
	const char *key, *value;
	/* NULL: must succeed; otherwise a substring of the error */
	const char *error;
	/* for successes: which field to check and its expected value */
	enum { NONE, POLICY, KEEP, MIN, MAX, HOLD, REMOVE, VISIBLE, EVENTS,
	       SCHEDULE, TIMEOUT, URL, TOPC, DRY, CAPA, INFLIGHT,
	       NICE, SECRET, CA } field;
	long long want;
	const char *want_str;
};

static const struct row rows[] = {
	{ P "policy", "off", NULL, POLICY, RETENTION_POLICY_OFF, NULL },
	{ P "policy", "delete-after-download", NULL, POLICY,
	  RETENTION_POLICY_DELETE_AFTER_DOWNLOAD, NULL },
	{ P "policy", "KEEP", NULL, POLICY, RETENTION_POLICY_KEEP, NULL },
	{ P "policy", "delete", P "policy: invalid value 'delete'", NONE, 0,
	  NULL },
	{ P "keep", "30d", NULL, KEEP, 30 * 86400, NULL },
	{ P "keep", "2 weeks", NULL, KEEP, 14 * 86400, NULL },
	{ P "keep", "12h", NULL, KEEP, 12 * 3600, NULL },
	{ P "keep", "3s", NULL, KEEP, 3, NULL },
	{ P "keep", "3 Days", NULL, KEEP, 3 * 86400, NULL },
	{ P "keep", "2000ms", NULL, KEEP, 2, NULL },
	{ P "keep", "0", NULL, KEEP, 0, NULL },
	{ P "keep", "30", P "keep: invalid value '30': time interval is "
	  "missing a unit", NONE, 0, NULL },
	{ P "keep", "1 month", P "keep: invalid value '1 month'", NONE, 0,
	  NULL },
	{ P "keep", "1500ms", "milliseconds", NONE, 0, NULL },
	{ P "keep", "-1d", P "keep: invalid value '-1d'", NONE, 0, NULL },
	{ P "keep", " 3s", P "keep: invalid value ' 3s'", NONE, 0, NULL },
	{ P "keep", "3s ", P "keep: invalid value '3s '", NONE, 0, NULL },
	{ P "keep", "1h30m", P "keep: invalid value '1h30m'", NONE, 0, NULL },
	{ P "keep", "4294967295s", NULL, KEEP, 4294967295LL, NULL },
	{ P "keep", "4294967296s", "too large", NONE, 0, NULL },
	{ P "keep", "99999999999999999999999d", "too large", NONE, 0, NULL },
	{ P "min", "7d", NULL, MIN, 7 * 86400, NULL },
	{ P "max", "90 days", NULL, MAX, 90 * 86400, NULL },
	{ P "max", "90x", P "max: invalid value '90x'", NONE, 0, NULL },
	{ P "hold", "yes", NULL, HOLD, 1, NULL },
	{ P "hold", "no", NULL, HOLD, 0, NULL },
	{ P "hold", "maybe", P "hold: invalid value 'maybe': expected yes or "
	  "no", NONE, 0, NULL },
	{ P "remove", "expunge", NULL, REMOVE, RETENTION_REMOVE_EXPUNGE, "" },
	{ P "remove", "move:Archive", NULL, REMOVE, RETENTION_REMOVE_MOVE,
	  "Archive" },
	{ P "remove", "move:Deleted Messages", NULL, REMOVE,
	  RETENTION_REMOVE_MOVE, "Deleted Messages" },
	{ P "remove", "move:", P "remove: invalid value 'move:'", NONE, 0,
	  NULL },
	{ P "remove", "trash", P "remove: invalid value 'trash'", NONE, 0,
	  NULL },
	{ P "visible_since", "2026-01-01", NULL, VISIBLE, 1767225600, NULL },
	{ P "visible_since", "2026-01-01T12:00:00Z", NULL, VISIBLE,
	  1767268800, NULL },
	{ P "visible_since", "2026-01-01T12:00:00+02:00", NULL, VISIBLE,
	  1767261600, NULL },
	{ P "visible_since", "2024-02-29", NULL, VISIBLE, 1709164800, NULL },
	{ P "visible_since", "2023-02-29", P "visible_since: invalid value "
	  "'2023-02-29'", NONE, 0, NULL },
	{ P "visible_since", "yesterday", P "visible_since: invalid value",
	  NONE, 0, NULL },
	{ P "visible_since", "2026-01-01T25:00:00Z", "invalid value", NONE, 0,
	  NULL },
	{ P "top_counts", "yes", NULL, TOPC, 1, NULL },
	{ P "dry_run", "true", NULL, DRY, 1, NULL },
	{ P "capa_expire", "no", NULL, CAPA, 0, NULL },
	{ P "webhook_url", "https://hooks.example.com/pop3", NULL, URL, 0,
	  "https://hooks.example.com/pop3" },
	{ P "webhook_url", "http://127.0.0.1:8080/", NULL, URL, 0,
	  "http://127.0.0.1:8080/" },
	{ P "webhook_url", "ftp://example.com/", P "webhook_url: invalid value "
	  "'ftp://example.com/'", NONE, 0, NULL },
	{ P "webhook_url", "https://", "no host", NONE, 0, NULL },
	{ P "webhook_url", "https://a b/", "space", NONE, 0, NULL },
	/* a refused URL is named without its userinfo, query, fragment */
	{ P "webhook_url", "ftp://u:pw@example.com/p?token=t0k#f",
	  "invalid value 'ftp://[redacted]@example.com/p?[redacted]': only",
	  NONE, 0, NULL },
	{ P "webhook_url", "https://u:p@w@h.example/a b?t=1",
	  "'https://[redacted]@h.example/a b?[redacted]': the URL contains",
	  NONE, 0, NULL },
	{ P "webhook_url", "https://h.example/a\tb#t0k",
	  "'https://h.example/a?b#[redacted]': the URL contains", NONE, 0,
	  NULL },
	{ P "webhook_url", "https://:pw@h.example",
	  "'https://[redacted]@h.example': the URL has no host", NONE, 0,
	  NULL },
	{ P "webhook_secret_file", "relative/path", "absolute path", NONE, 0,
	  NULL },
	{ P "webhook_secret_file", "/etc/dovecot/hook.secret", NULL, SECRET,
	  0, "/etc/dovecot/hook.secret" },
	{ P "webhook_ca_file", "/etc/ssl/private-ca.pem", NULL, CA, 0,
	  "/etc/ssl/private-ca.pem" },
	{ P "webhook_ca_file", "ca.pem", P "webhook_ca_file: invalid value "
	  "'ca.pem': expected an absolute path", NONE, 0, NULL },
	{ P "webhook_ca_file", "/etc/ca\001.pem", "absolute path", NONE, 0,
	  NULL },
	{ P "webhook_events", "message.deleted, message.expired", NULL, EVENTS,
	  RETENTION_EVENT_DELETED | RETENTION_EVENT_EXPIRED, NULL },
	{ P "webhook_events", "all", NULL, EVENTS, RETENTION_EVENT_ALL, NULL },
	{ P "webhook_events", "none", NULL, EVENTS, 0, NULL },
	{ P "webhook_events", "message.read", "unknown event type "
	  "'message.read'", NONE, 0, NULL },
	{ P "webhook_retry_schedule", "0s 5s 5m", NULL, SCHEDULE, 3, NULL },
	{ P "webhook_retry_schedule", "0 s 5 s 2 weeks", NULL, SCHEDULE, 3,
	  NULL },
	{ P "webhook_retry_schedule", "0s 5", "'5': time interval is missing a "
	  "unit", NONE, 0, NULL },
	{ P "webhook_retry_schedule", "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s "
	  "1s 1s 1s 1s", "at most 16", NONE, 0, NULL },
	{ P "webhook_timeout", "30s", NULL, TIMEOUT, 30, NULL },
	{ P "webhook_timeout", "0", "at least 1s", NONE, 0, NULL },
	{ P "webhook_allow_private", "yes", NULL, NONE, 0, NULL },
	{ P "webhook_max_in_flight", "32", NULL, INFLIGHT, 32, NULL },
	{ P "webhook_max_in_flight", "256", NULL, INFLIGHT, 256, NULL },
	{ P "webhook_max_in_flight", "0", P "webhook_max_in_flight: invalid "
	  "value '0': expected a number from 1 to 256", NONE, 0, NULL },
	{ P "webhook_max_in_flight", "257", "from 1 to 256", NONE, 0, NULL },
	{ P "webhook_max_in_flight", "8 ", "invalid value '8 '", NONE, 0,
	  NULL },
	{ P "webhook_max_in_flight", "99999999999999999999", "from 1 to 256",
	  NONE, 0, NULL },
	/* settings of machinery that no longer exists are unknown */
	{ P "webhook_workers", "2", P "webhook_workers: unknown setting",
	  NONE, 0, NULL },
	{ P "webhook_defer_when_busy", "30s",
	  P "webhook_defer_when_busy: unknown setting", NONE, 0, NULL },
	{ P "webhook_nice", "0", NULL, NICE, 0, NULL },
	{ P "webhook_nice", "10", NULL, NICE, 10, NULL },
	{ P "webhook_nice", "20", P "webhook_nice: invalid value '20': "
	  "expected a number from 0 to 19", NONE, 0, NULL },
	{ P "webhook_nice", "high", "from 0 to 19", NONE, 0, NULL },
	{ P "unknown", "x", P "unknown: unknown setting", NONE, 0, NULL },
	{ "mail_plugins", "x", "mail_plugins: unknown setting", NONE, 0,
	  NULL },
};

static long long field_value(const struct retention_settings *set, int field,
			     const char **str_r)
{
	*str_r = NULL;
	switch (field) {
	case POLICY: return set->policy;
	case KEEP: return set->keep_secs;
	case MIN: return set->min_secs;
	case MAX: return set->max_secs;
	case HOLD: return set->hold;
	case REMOVE: *str_r = set->move_mailbox; return set->remove;
	case VISIBLE: return (long long)set->visible_since;
	case EVENTS: return set->webhook_events;
	case SCHEDULE: return set->retry_schedule_count;
	case TIMEOUT: return set->webhook_timeout_secs;
	case URL: *str_r = set->webhook_url; return 0;
	case TOPC: return set->top_counts;
	case DRY: return set->dry_run;
	case CAPA: return set->capa_expire;
	case INFLIGHT: return set->webhook_max_in_flight;
	case NICE: return set->webhook_nice;
	case SECRET: *str_r = set->webhook_secret_file; return 0;
	case CA: *str_r = set->webhook_ca_file; return 0;
	}
	return 0;
}

/* Every setting away from its default: a failed set() must not touch
   any of them either (set() has no copy to fall back on). */
static void settings_all_set(struct retention_settings *set)
{
	static const char *const values[][2] = {
		{ P "policy", "keep" }, { P "keep", "7d" }, { P "min", "1d" },
		{ P "max", "90d" }, { P "hold", "yes" },
		{ P "remove", "move:Trash" },
		{ P "visible_since", "2020-01-02" },
		{ P "top_counts", "yes" }, { P "dry_run", "yes" },
		{ P "capa_expire", "no" },
		{ P "webhook_url", "https://hooks.example.com/x" },
		{ P "webhook_secret_file", "/etc/secret" },
		{ P "webhook_ca_file", "/etc/ca.pem" },
		{ P "webhook_events", "message.deleted" },
		{ P "webhook_allow_private", "yes" },
		{ P "webhook_retry_schedule", "1s 2s" },
		{ P "webhook_timeout", "3s" },
		{ P "webhook_max_in_flight", "3" },
		{ P "webhook_nice", "3" },
	};
	unsigned int i;

	retention_settings_init(set);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		assert_int_equal(retention_settings_set(set, values[i][0],
							values[i][1]), 0);
}

static void test_row(void **state)
{
	const struct row *r = *state;
	unsigned int i = (unsigned int)(r - rows);
	struct retention_settings set, before;
	const char *str;
	long long got;
	int ret;

	retention_settings_init(&set);
	before = set;
	ret = retention_settings_set(&set, r->key, r->value);
	if (r->error != NULL) {
		if (ret != -1)
			fail_msg("row %u (%s=%s): accepted, want error '%s'",
				 i, r->key, r->value, r->error);
		if (strstr(set.error, r->error) == NULL)
			fail_msg("row %u (%s=%s): error '%s', want '%s'", i,
				 r->key, r->value, set.error, r->error);
		/* the setting that failed is unchanged */
		memcpy(before.error, set.error, sizeof(set.error));
		if (memcmp(&before, &set, sizeof(set)) != 0)
			fail_msg("row %u: failed set() changed settings", i);
		/* also when every setting has a value of its own */
		settings_all_set(&set);
		before = set;
		if (retention_settings_set(&set, r->key, r->value) != -1)
			fail_msg("row %u: accepted after the others", i);
		memcpy(before.error, set.error, sizeof(set.error));
		if (memcmp(&before, &set, sizeof(set)) != 0)
			fail_msg("row %u: failed set() changed settings that "
				 "were set", i);
		return;
	}
	if (ret != 0)
		fail_msg("row %u (%s=%s): rejected: %s", i, r->key, r->value,
			 set.error);
	got = field_value(&set, r->field, &str);
	if (got != r->want)
		fail_msg("row %u (%s=%s): got %lld, want %lld", i, r->key,
			 r->value, got, r->want);
	if (r->want_str != NULL && strcmp(str, r->want_str) != 0)
		fail_msg("row %u (%s=%s): got '%s', want '%s'", i, r->key,
			 r->value, str, r->want_str);
}

static void test_defaults(void **state)
{
	struct retention_settings set;
	static const unsigned int schedule[] = {
		0, 5, 300, 1800, 7200, 18000, 36000, 36000 };

	(void)state;
	retention_settings_init(&set);
	assert_int_equal(set.policy, RETENTION_POLICY_OFF);
	assert_int_equal(set.remove, RETENTION_REMOVE_EXPUNGE);
	assert_true(set.capa_expire);
	assert_false(set.hold);
	assert_false(set.dry_run);
	assert_int_equal(set.webhook_events, RETENTION_EVENT_ALL);
	assert_int_equal(set.webhook_timeout_secs, 15);
	assert_int_equal(set.webhook_max_in_flight, 16);
	assert_int_equal(set.webhook_nice, 19);
	assert_int_equal(set.retry_schedule_count, 8);
	assert_memory_equal(set.retry_schedule, schedule, sizeof(schedule));
	assert_int_equal(retention_settings_check(&set), 0);
}

static void test_empty_resets(void **state)
{
	struct retention_settings set;

	(void)state;
	retention_settings_init(&set);
	assert_int_equal(retention_settings_set(&set, P "max", "3d"), 0);
	assert_int_equal(retention_settings_set(&set, P "max", ""), 0);
	assert_int_equal(set.max_secs, 0);
	assert_int_equal(retention_settings_set(&set, P "capa_expire", "no"),
			 0);
	assert_int_equal(retention_settings_set(&set, P "capa_expire", ""), 0);
	assert_true(set.capa_expire);
}

static const struct {
	const char *settings[3][2];
	const char *error;
} check_rows[] = {
	{ { { P "policy", "keep" } }, P "policy: invalid value 'keep': "
	  P "keep must be set" },
	{ { { P "min", "30d" }, { P "max", "7d" } }, P "min: invalid value "
	  "'30d': the floor is above " P "max '7d'" },
	{ { { P "policy", "keep" }, { P "keep", "30d" } }, NULL },
	{ { { P "min", "7d" }, { P "max", "7d" } }, NULL },
};

static void test_check(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < sizeof(check_rows) / sizeof(check_rows[0]); i++) {
		struct retention_settings set;
		int ret;

		retention_settings_init(&set);
		for (j = 0; j < 3 && check_rows[i].settings[j][0] != NULL; j++)
			assert_int_equal(retention_settings_set(
				&set, check_rows[i].settings[j][0],
				check_rows[i].settings[j][1]), 0);
		ret = retention_settings_check(&set);
		if (check_rows[i].error == NULL && ret != 0)
			fail_msg("check row %u: %s", i, set.error);
		if (check_rows[i].error != NULL &&
		    (ret != -1 || strstr(set.error, check_rows[i].error) ==
					  NULL))
			fail_msg("check row %u: got '%s', want '%s'", i,
				 set.error, check_rows[i].error);
	}
}

static void test_per_user(void **state)
{
	(void)state;
	assert_true(retention_settings_key_is_per_user(P "policy"));
	assert_true(retention_settings_key_is_per_user(P "webhook_events"));
	assert_false(retention_settings_key_is_per_user(P "webhook_url"));
	assert_false(retention_settings_key_is_per_user(P "webhook_secret_file"));
	assert_false(retention_settings_key_is_per_user(P "webhook_ca_file"));
	assert_true(retention_settings_key_is_site_wide(P "webhook_ca_file"));
	assert_false(retention_settings_key_is_per_user(P "webhook_timeout"));
	assert_true(retention_settings_key_is_site_wide(P "webhook_nice"));
	assert_true(retention_settings_key_is_site_wide(P "webhook_url"));
	assert_false(retention_settings_key_is_site_wide(P "webhook_events"));
	assert_false(retention_settings_key_is_site_wide(P "policy"));
	assert_false(retention_settings_key_is_site_wide(P "unknown"));
	assert_false(retention_settings_key_is_per_user(P "webhook_nice"));
	assert_false(retention_settings_key_is_per_user(
		P "webhook_max_in_flight"));
	assert_false(retention_settings_key_is_per_user("mail_plugins"));
	/* what a POP3 session parses: per-user ones and the URL only */
	assert_true(retention_settings_key_is_for_sessions(P "policy"));
	assert_true(retention_settings_key_is_for_sessions(P "webhook_events"));
	assert_true(retention_settings_key_is_for_sessions(P "webhook_url"));
	assert_false(retention_settings_key_is_for_sessions(
		P "webhook_secret_file"));
	assert_false(retention_settings_key_is_for_sessions(
		P "webhook_nice"));
	assert_false(retention_settings_key_is_for_sessions(
		P "webhook_max_in_flight"));
	assert_false(retention_settings_key_is_for_sessions(P "unknown"));
}

int main(void)
{
	const unsigned int nrows = sizeof(rows) / sizeof(rows[0]);
	struct CMUnitTest tests[sizeof(rows) / sizeof(rows[0]) + 4];
	unsigned int i, n = 0;
	static char names[sizeof(rows) / sizeof(rows[0])][128];

	memset(tests, 0, sizeof(tests));
	for (i = 0; i < nrows; i++, n++) {
		snprintf(names[i], sizeof(names[i]), "%s=%s", rows[i].key,
			 rows[i].value);
		tests[n].name = names[i];
		tests[n].test_func = test_row;
		tests[n].initial_state = (void *)&rows[i];
	}
	tests[n].name = "defaults";
	tests[n++].test_func = test_defaults;
	tests[n].name = "empty value resets";
	tests[n++].test_func = test_empty_resets;
	tests[n].name = "cross-setting checks";
	tests[n++].test_func = test_check;
	tests[n].name = "per-user keys";
	tests[n++].test_func = test_per_user;
	return _cmocka_run_group_tests("retention-settings", tests, n, NULL,
				       NULL);
}
