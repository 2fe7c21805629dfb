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
	/* a 1970 date with an offset east of UTC is before the epoch
	   (found by fuzzing) */
	{ P "visible_since", "1970-01-01T00:59:60+05:30", P "visible_since: "
	  "invalid value '1970-01-01T00:59:60+05:30'", NONE, 0, NULL },
	{ P "visible_since", "1970-01-01T05:30:00+05:30", NULL, VISIBLE, 0,
	  NULL },
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
	/* a "://" in the query is not the scheme's (found by fuzzing) */
	{ P "webhook_url", "https:/h.example/x?token=s3cret&next=https://y",
	  "'https:/h.example/x?[redacted]': only", NONE, 0, NULL },
	{ P "webhook_url", "ps:/#:///phttps://ath", "'ps:/#[redacted]': only",
	  NONE, 0, NULL },
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

/* A session's settings and the delivery's: each key goes to its own. */
struct both {
	struct retention_settings s;
	struct webhook_settings w;
};

static void both_init(struct both *b)
{
	memset(b, 0, sizeof(*b));
	retention_settings_init(&b->s);
	webhook_settings_init(&b->w);
}

static int both_set(struct both *b, const char *key, const char *value,
		    const char **error_r)
{
	const struct retention_setting_define *def =
		retention_setting_find(key);

	if (def != NULL && def->scope == RETENTION_SCOPE_DELIVERY) {
		*error_r = b->w.error;
		return webhook_settings_set(&b->w, key, value);
	}
	*error_r = b->s.error;
	return retention_settings_set(&b->s, key, value);
}

/* Equal but for the error texts. */
static bool both_equal(struct both *a, struct both *b)
{
	memcpy(a->s.error, b->s.error, sizeof(a->s.error));
	memcpy(a->w.error, b->w.error, sizeof(a->w.error));
	return memcmp(a, b, sizeof(*a)) == 0;
}

static long long field_value(const struct both *b, int field,
			     const char **str_r)
{
	const struct retention_settings *set = &b->s;

	*str_r = NULL;
	switch (field) {
	case POLICY: return set->policy;
	case KEEP: return set->keep.secs;
	case MIN: return set->min_secs;
	case MAX: return set->max_secs;
	case HOLD: return set->hold;
	case REMOVE: *str_r = set->remove.mailbox; return set->remove.kind;
	case VISIBLE: return (long long)set->visible_since;
	case EVENTS: return set->webhook_events;
	case SCHEDULE: return b->w.retry_schedule.count;
	case TIMEOUT: return b->w.timeout_secs;
	case URL: *str_r = b->w.url; return 0;
	case TOPC: return set->top_counts;
	case DRY: return set->dry_run;
	case CAPA: return set->capa_expire;
	case INFLIGHT: return b->w.max_in_flight;
	case NICE: return b->w.nice;
	case SECRET: *str_r = b->w.secret_file; return 0;
	case CA: *str_r = b->w.ca_file; return 0;
	}
	return 0;
}

/* Every setting away from its default: a failed set() must not touch
   any of them either. */
static void settings_all_set(struct both *b)
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
	const char *error;
	unsigned int i;

	both_init(b);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		assert_int_equal(both_set(b, values[i][0], values[i][1],
					  &error), 0);
}

static void test_row(void **state)
{
	const struct row *r = *state;
	unsigned int i = (unsigned int)(r - rows);
	struct both set, before;
	const char *str, *error;
	long long got;
	int ret;

	both_init(&set);
	memcpy(&before, &set, sizeof(set));
	ret = both_set(&set, r->key, r->value, &error);
	if (r->error != NULL) {
		if (ret != -1)
			fail_msg("row %u (%s=%s): accepted, want error '%s'",
				 i, r->key, r->value, r->error);
		if (strstr(error, r->error) == NULL)
			fail_msg("row %u (%s=%s): error '%s', want '%s'", i,
				 r->key, r->value, error, r->error);
		/* the setting that failed is unchanged */
		if (!both_equal(&before, &set))
			fail_msg("row %u: failed set() changed settings", i);
		/* also when every setting has a value of its own */
		settings_all_set(&set);
		memcpy(&before, &set, sizeof(set));
		if (both_set(&set, r->key, r->value, &error) != -1)
			fail_msg("row %u: accepted after the others", i);
		if (!both_equal(&before, &set))
			fail_msg("row %u: failed set() changed settings that "
				 "were set", i);
		return;
	}
	if (ret != 0)
		fail_msg("row %u (%s=%s): rejected: %s", i, r->key, r->value,
			 error);
	got = field_value(&set, r->field, &str);
	if (got != r->want)
		fail_msg("row %u (%s=%s): got %lld, want %lld", i, r->key,
			 r->value, got, r->want);
	if (r->want_str != NULL &&
	    (str == NULL || strcmp(str, r->want_str) != 0))
		fail_msg("row %u (%s=%s): got '%s', want '%s'", i, r->key,
			 r->value, str != NULL ? str : "(none)", r->want_str);
}

static void test_defaults(void **state)
{
	struct both set;
	static const unsigned int schedule[] = {
		0, 5, 300, 1800, 7200, 18000, 36000, 36000 };

	(void)state;
	both_init(&set);
	assert_int_equal(set.s.policy, RETENTION_POLICY_OFF);
	assert_int_equal(set.s.remove.kind, RETENTION_REMOVE_EXPUNGE);
	assert_true(set.s.capa_expire);
	assert_false(set.s.hold);
	assert_false(set.s.dry_run);
	assert_false(set.s.keep.set);
	assert_false(set.s.webhooks);
	assert_int_equal(set.s.webhook_events, RETENTION_EVENT_ALL);
	assert_int_equal(set.w.timeout_secs, 15);
	assert_int_equal(set.w.max_in_flight, 16);
	assert_int_equal(set.w.nice, 19);
	assert_int_equal(set.w.retry_schedule.count, 8);
	assert_memory_equal(set.w.retry_schedule.secs, schedule,
			    sizeof(schedule));
	assert_int_equal(retention_settings_check(&set.s), 0);
}

static const void *field_of(const struct both *b,
			    const struct retention_setting_define *def)
{
	const char *base = def->scope == RETENTION_SCOPE_SESSION ?
		(const char *)&b->s : (const char *)&b->w;

	return base + def->offset;
}

/* Every row: a unique name, a default its grammar accepts that gives
   what init() gives, and a field inside its scope's struct. */
static void test_table(void **state)
{
	const struct retention_setting_define *def, *d2;
	struct both init, set;
	const char *error;

	(void)state;
	both_init(&init);
	for (def = retention_setting_defines; def->key != NULL; def++) {
		for (d2 = def + 1; d2->key != NULL; d2++) {
			if (strcmp(def->key, d2->key) == 0)
				fail_msg("%s: twice in the table", def->key);
		}
		assert_ptr_equal(retention_setting_find(def->key), def);
		assert_int_equal(strncmp(def->key, P, strlen(P)), 0);
		assert_true(def->offset + def->size <=
			    (def->scope == RETENTION_SCOPE_SESSION ?
			     sizeof(struct retention_settings) :
			     sizeof(struct webhook_settings)));
		settings_all_set(&set);
		if (both_set(&set, def->key, def->default_value, &error) < 0)
			fail_msg("%s: default '%s' does not parse: %s",
				 def->key, def->default_value, error);
		if (memcmp(field_of(&set, def), field_of(&init, def),
			   def->size) != 0)
			fail_msg("%s: default '%s' is not init()'s", def->key,
				 def->default_value);
	}
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

/* A session parses the SESSION settings and learns only whether the
   webhook URL is set; the delivery settings are not its own. */
static void test_scopes(void **state)
{
	struct retention_settings set;
	struct webhook_settings wset;
	const struct retention_setting_define *def;

	(void)state;
	retention_settings_init(&set);
	webhook_settings_init(&wset);
	def = retention_setting_find(P "webhook_events");
	assert_int_equal(def->scope, RETENTION_SCOPE_SESSION);
	assert_true(retention_setting_is_for_sessions(def));
	def = retention_setting_find(P "webhook_url");
	assert_int_equal(def->scope, RETENTION_SCOPE_DELIVERY);
	assert_true(retention_setting_is_for_sessions(def));
	def = retention_setting_find(P "webhook_nice");
	assert_int_equal(def->scope, RETENTION_SCOPE_DELIVERY);
	assert_false(retention_setting_is_for_sessions(def));
	assert_null(retention_setting_find(P "unknown"));
	assert_null(retention_setting_find("mail_plugins"));

	/* no URL validation in a session: the service does it */
	assert_int_equal(retention_settings_set(&set, P "webhook_url",
						"ftp://x"), 0);
	assert_true(set.webhooks);
	assert_int_equal(retention_settings_set(&set, P "webhook_url", ""), 0);
	assert_false(set.webhooks);
	assert_int_equal(retention_settings_set(&set, P "webhook_secret_file",
						"/s"), -1);
	assert_non_null(strstr(set.error, P "webhook_secret_file: a "
			       "site-wide delivery setting"));
	assert_int_equal(webhook_settings_set(&wset, P "policy", "keep"), -1);
	assert_non_null(strstr(wset.error, P "policy: a per-user setting"));
}

int main(void)
{
	const unsigned int nrows = sizeof(rows) / sizeof(rows[0]);
	struct CMUnitTest tests[sizeof(rows) / sizeof(rows[0]) + 5];
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
	tests[n].name = "the table";
	tests[n++].test_func = test_table;
	tests[n].name = "scopes";
	tests[n++].test_func = test_scopes;
	return _cmocka_run_group_tests("retention-settings", tests, n, NULL,
				       NULL);
}
