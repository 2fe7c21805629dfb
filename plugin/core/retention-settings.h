#ifndef RETENTION_SETTINGS_H
#define RETENTION_SETTINGS_H

/* Settings shared by both hosts. Hosts feed key/value pairs (Dovecot from
   plugin {} and userdb fields, the shim from its config file and
   passwd-file extra fields); the core parses, validates and keeps the
   result in one plain struct with no pointers into host memory. */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define RETENTION_SETTINGS_ERROR_MAX 512
#define RETENTION_MAILBOX_NAME_MAX 256
#define RETENTION_URL_MAX 2048
#define RETENTION_PATH_MAX 4096
/* The default schedule has 8 attempts; 16 leaves room for longer ones. */
#define RETENTION_RETRY_SCHEDULE_MAX 16
/* Transfers in flight to the endpoint. */
#define RETENTION_WEBHOOK_MAX_IN_FLIGHT_MAX 256

enum retention_policy_kind {
	RETENTION_POLICY_OFF = 0,
	RETENTION_POLICY_DELETE_AFTER_DOWNLOAD,
	RETENTION_POLICY_KEEP,
};

enum retention_remove_kind {
	RETENTION_REMOVE_EXPUNGE = 0,
	RETENTION_REMOVE_MOVE,
};

/* Event type bits, for pop3_retention_webhook_events. */
enum retention_event_type {
	RETENTION_EVENT_RETRIEVED = 0x01,
	RETENTION_EVENT_DELETED = 0x02,
	RETENTION_EVENT_RETAINED = 0x04,
	RETENTION_EVENT_EXPIRED = 0x08,
};
#define RETENTION_EVENT_ALL 0x0f

struct retention_settings {
	enum retention_policy_kind policy;
	/* Intervals in seconds. 0 for min/max means "not set". */
	unsigned int keep_secs;
	bool keep_set;
	unsigned int min_secs;
	unsigned int max_secs;
	bool hold;
	enum retention_remove_kind remove;
	char move_mailbox[RETENTION_MAILBOX_NAME_MAX];
	/* 0: every message is visible. */
	time_t visible_since;
	bool top_counts;
	bool dry_run;
	bool capa_expire;

	/* Webhook endpoint (site-wide in Dovecot, read by the service). */
	char webhook_url[RETENTION_URL_MAX];
	char webhook_secret_file[RETENTION_PATH_MAX];
	/* PEM CA certificates for https URLs; empty: the system's */
	char webhook_ca_file[RETENTION_PATH_MAX];
	unsigned int webhook_events; /* enum retention_event_type bits */
	bool webhook_allow_private;
	unsigned int retry_schedule[RETENTION_RETRY_SCHEDULE_MAX];
	unsigned int retry_schedule_count;
	unsigned int webhook_timeout_secs;
	/* Delivery: transfers in flight, and the niceness the delivery
	   service adds to its own once at start-up (0..19). */
	unsigned int webhook_max_in_flight;
	unsigned int webhook_nice;

	/* Text of the last error from retention_settings_set() or
	   retention_settings_check(); names the setting and the value. */
	char error[RETENTION_SETTINGS_ERROR_MAX];
};

/* NULL-terminated list of every setting name, in the order of DESIGN.md's
   table. Hosts iterate it to look settings up by name. */
extern const char *const retention_settings_keys[];

/* Fill set with the documented defaults (policy off, remove by expunge,
   capa_expire yes, all webhook events, the default retry schedule,
   15 s timeout). */
void retention_settings_init(struct retention_settings *set);

/* Parse one setting. Returns 0 on success, -1 on an unknown key or a bad
   value, with set->error naming the setting and the value; set is left
   unchanged on error. An empty value resets the setting to its default
   (Dovecot passes "" for settings that are present but empty). */
int retention_settings_set(struct retention_settings *set, const char *key,
			   const char *value);

/* Cross-setting validation, run once after every set(). Returns 0 if the
   combination is usable, -1 with set->error otherwise (e.g. the keep
   policy without pop3_retention_keep, a floor above the ceiling). */
int retention_settings_check(struct retention_settings *set);

/* True if the key is a setting that userdb may override per user (every
   setting except the site-wide webhook endpoint ones). */
bool retention_settings_key_is_per_user(const char *key);

/* True for the site-wide settings: the webhook endpoint and delivery
   ones, which only the delivery service reads. */
bool retention_settings_key_is_site_wide(const char *key);

/* True for the settings a POP3 session uses: the per-user ones and
   pop3_retention_webhook_url (whether events are made at all). The
   other site-wide ones are the delivery service's alone: a session
   neither parses them nor fails a login over them (the service does,
   at its start). */
bool retention_settings_key_is_for_sessions(const char *key);

/* Parse a Dovecot-style interval ("30d", "2 weeks", "12h", "3s", "0").
   A unit is required unless the number is 0. Returns 0 and the seconds in
   secs_r, or -1 and a static error text in error_r. */
int retention_interval_parse(const char *str, unsigned int *secs_r,
			     const char **error_r);

/* Parse "YYYY-MM-DD" (midnight UTC) or RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" /
   "...+HH:MM". Returns 0 and the Unix time in time_r, -1 otherwise. */
int retention_date_parse(const char *str, time_t *time_r);

/* Format t as RFC 3339 UTC ("2026-11-27T23:13:48Z") into buf (at least
   21 bytes). Returns buf. */
const char *retention_time_format(time_t t, char *buf, size_t size);

/* Names for logs, events and status output. */
const char *retention_policy_kind_name(enum retention_policy_kind kind);
const char *retention_event_type_name(enum retention_event_type type);

#endif
