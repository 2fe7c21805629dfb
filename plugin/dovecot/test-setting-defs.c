/* Dovecot 2.4: the declared settings against the core's table, and
   check_func (what doveconf and settings_get() run) on good and bad
   values. Run by make check. */

#include "lib.h"
#include "pop3-retention-setting-defs.h"

#include <stdio.h>

struct test_case {
	const char *name;
	/* up to two key/value pairs; the rest stay at their defaults */
	const char *key1, *value1, *key2, *value2;
	/* NULL: check_func accepts; else in its error (with the value) */
	const char *check_error;
	/* NULL: the session settings parse and combine; else in the error */
	const char *session_error;
};

static const struct test_case cases[] = {
	{ "defaults", NULL, NULL, NULL, NULL, NULL, NULL },
	{ "keep 30d", "pop3_retention_policy", "keep",
	  "pop3_retention_keep", "30d", NULL, NULL },
	{ "bad policy", "pop3_retention_policy", "sometimes", NULL, NULL,
	  "pop3_retention_policy: invalid value 'sometimes'", "" },
	{ "interval without unit", "pop3_retention_keep", "30", NULL, NULL,
	  "pop3_retention_keep: invalid value '30'", "" },
	{ "bad boolean", "pop3_retention_hold", "maybe", NULL, NULL,
	  "pop3_retention_hold: invalid value 'maybe'", "" },
	{ "ftp url", "pop3_retention_webhook_url", "ftp://example.com/",
	  NULL, NULL, "pop3_retention_webhook_url: invalid value", "" },
	{ "nice out of range", "pop3_retention_webhook_nice", "40", NULL,
	  NULL, "pop3_retention_webhook_nice: invalid value '40'", NULL },
	{ "schedule", "pop3_retention_webhook_retry_schedule", "1s 2m",
	  NULL, NULL, NULL, NULL },
	/* combinations wait for the login (userdb may complete them) */
	{ "keep policy without keep", "pop3_retention_policy", "keep",
	  NULL, NULL, NULL, "pop3_retention_keep must be set" },
	{ "floor above ceiling", "pop3_retention_min", "7d",
	  "pop3_retention_max", "1d", NULL, "pop3_retention_m" },
};

static void setting_put(struct pop3_retention_dovecot_settings *set,
			const char *key, const char *value)
{
	const struct setting_define *def;

	for (def = pop3_retention_setting_parser_info.defines;
	     def->key != NULL; def++) {
		if (strcmp(def->key, key) == 0) {
			*(const char **)PTR_OFFSET(set, def->offset) = value;
			return;
		}
	}
	i_panic("no setting %s", key);
}

/* NULL if error matches want (NULL: no error), else why not. */
static const char *error_mismatch(bool failed, const char *error,
				  const char *want)
{
	if (want == NULL)
		return failed ? t_strdup_printf("unexpected error: %s",
						error) : NULL;
	if (!failed)
		return t_strdup_printf("accepted, expected '%s'", want);
	if (strstr(error, want) == NULL)
		return t_strdup_printf("error '%s' lacks '%s'", error, want);
	return NULL;
}

static bool test_case_run(unsigned int idx, const struct test_case *tc)
{
	const struct setting_parser_info *info =
		&pop3_retention_setting_parser_info;
	struct pop3_retention_dovecot_settings set;
	struct retention_settings rset;
	const char *error = NULL, *why;
	bool ok;

	memcpy(&set, info->defaults, sizeof(set));
	if (tc->key1 != NULL)
		setting_put(&set, tc->key1, tc->value1);
	if (tc->key2 != NULL)
		setting_put(&set, tc->key2, tc->value2);

	ok = info->check_func(&set, pool_datastack_create(), &error);
	why = error_mismatch(!ok, error, tc->check_error);
	if (why == NULL && ok) {
		ok = pop3_retention_setting_defs_session(&set, &rset,
							 &error) == 0;
		why = error_mismatch(!ok, error, tc->session_error);
	}
	if (why != NULL) {
		fprintf(stderr, "case %u (%s): %s\n", idx, tc->name, why);
		return FALSE;
	}
	return TRUE;
}

int main(void)
{
	const char *error;
	unsigned int i, failed = 0;

	lib_init();
	if (pop3_retention_setting_defs_verify(&error) < 0) {
		fprintf(stderr, "declaration differs from the core: %s\n",
			error);
		failed++;
	}
	for (i = 0; i < N_ELEMENTS(cases); i++) T_BEGIN {
		if (!test_case_run(i, &cases[i]))
			failed++;
	} T_END;
	printf("test-setting-defs: %u cases, %u failed\n",
	       (unsigned int)N_ELEMENTS(cases) + 1, failed);
	lib_deinit();
	return failed == 0 ? 0 : 1;
}
