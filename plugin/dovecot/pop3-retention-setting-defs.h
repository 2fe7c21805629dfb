#ifndef POP3_RETENTION_SETTING_DEFS_H
#define POP3_RETENTION_SETTING_DEFS_H

/* Dovecot 2.4: every pop3_retention_* setting declared to Dovecot's
   settings framework (2.4 refuses undeclared keys), as plain strings
   parsed by the core (retention-settings.h), which stays the only
   grammar. The same declaration is built into the settings module
   (doveconf, config), the pop3 plugin, the login plugin, the doveadm
   plugin and the service, so their key lists cannot differ. */

#include "settings-parser.h"

#include "retention-settings.h"

/* One field per key of the core's retention_setting_defines[], named as
   the key; NULL or "" is the core's default. */
struct pop3_retention_dovecot_settings {
	pool_t pool;
	const char *pop3_retention_policy;
	const char *pop3_retention_keep;
	const char *pop3_retention_min;
	const char *pop3_retention_max;
	const char *pop3_retention_hold;
	const char *pop3_retention_remove;
	const char *pop3_retention_visible_since;
	const char *pop3_retention_top_counts;
	const char *pop3_retention_dry_run;
	const char *pop3_retention_capa_expire;
	const char *pop3_retention_webhook_url;
	const char *pop3_retention_webhook_secret_file;
	const char *pop3_retention_webhook_ca_file;
	const char *pop3_retention_webhook_events;
	const char *pop3_retention_webhook_allow_private;
	const char *pop3_retention_webhook_retry_schedule;
	const char *pop3_retention_webhook_timeout;
	const char *pop3_retention_webhook_max_in_flight;
	const char *pop3_retention_webhook_nice;
};

/* Named "pop3_retention"; its check_func parses every value with the
   core, so doveconf, config and settings_get() refuse a bad one with the
   setting and the value named. */
extern const struct setting_parser_info pop3_retention_setting_parser_info;

/* 0 if this declaration and the core's table list the same keys with the
   same defaults, else -1 with error_r naming the first difference. */
int pop3_retention_setting_defs_verify(const char **error_r);

/* Parse the per-user settings (and whether a webhook URL is set) into
   set_r and check the combination. Returns 0, or -1 with error_r naming
   the setting and the value. */
int pop3_retention_setting_defs_session(
	const struct pop3_retention_dovecot_settings *dset,
	struct retention_settings *set_r, const char **error_r);

/* Parse the delivery settings into set_r. Returns 0, or -1 with error_r
   naming the setting and the value. */
int pop3_retention_setting_defs_delivery(
	const struct pop3_retention_dovecot_settings *dset,
	struct webhook_settings *set_r, const char **error_r);

#endif
