#ifndef RETENTION_SETTINGS_H
#define RETENTION_SETTINGS_H

/* Settings shared by both hosts, declared in one table: name, grammar,
   default, scope, field. Hosts feed key/value pairs (Dovecot from
   plugin {} and userdb fields, the shim from its config file and
   passwd-file extra fields); the core parses and validates them into
   plain structs with no pointers into host memory: the policy a session
   needs (struct retention_settings) apart from the webhook delivery
   (struct webhook_settings), which sessions never parse. */

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

/* An interval that may be unset (pop3_retention_keep: "0s" is a value,
   and the keep policy requires one). */
struct retention_interval {
	unsigned int secs;
	bool set;
};

struct retention_remove {
	enum retention_remove_kind kind;
	/* RETENTION_REMOVE_MOVE: the mailbox; "" otherwise */
	char mailbox[RETENTION_MAILBOX_NAME_MAX];
};

/* What a POP3 session needs: the per-user (SESSION) settings, and
   whether webhooks are on at all. */
struct retention_settings {
	enum retention_policy_kind policy;
	struct retention_interval keep;
	/* Intervals in seconds since arrival; 0: not set. */
	unsigned int min_secs;
	unsigned int max_secs;
	bool hold;
	struct retention_remove remove;
	/* 0: every message is visible. */
	time_t visible_since;
	bool top_counts;
	bool dry_run;
	bool capa_expire;
	unsigned int webhook_events; /* enum retention_event_type bits */
	/* pop3_retention_webhook_url is set (sessions never see the URL:
	   the delivery service validates and uses it) */
	bool webhooks;

	/* Text of the last error from retention_settings_set() or
	   retention_settings_check(); names the setting and the value. */
	char error[RETENTION_SETTINGS_ERROR_MAX];
};

struct retention_schedule {
	unsigned int secs[RETENTION_RETRY_SCHEDULE_MAX];
	unsigned int count;
};

/* The webhook endpoint and delivery (DELIVERY settings): site-wide,
   read only by the delivery service (Dovecot) or the server (shim). */
struct webhook_settings {
	char url[RETENTION_URL_MAX];
	char secret_file[RETENTION_PATH_MAX];
	/* PEM CA certificates for https URLs; "": the system's */
	char ca_file[RETENTION_PATH_MAX];
	bool allow_private;
	/* the delay before each attempt */
	struct retention_schedule retry_schedule;
	unsigned int timeout_secs;
	unsigned int max_in_flight;
	/* added to the service's niceness once at start-up (0..19) */
	unsigned int nice;

	char error[RETENTION_SETTINGS_ERROR_MAX];
};

enum retention_setting_type {
	RETENTION_SETTING_INTERVAL,	/* unsigned int seconds, >= min */
	RETENTION_SETTING_INTERVAL_OPT,	/* struct retention_interval */
	RETENTION_SETTING_BOOL,
	RETENTION_SETTING_POLICY,	/* enum retention_policy_kind */
	RETENTION_SETTING_REMOVE,	/* struct retention_remove */
	RETENTION_SETTING_DATE,		/* time_t */
	RETENTION_SETTING_EVENTS,	/* unsigned int event bits */
	RETENTION_SETTING_URL,		/* http(s) URL, char[size] */
	RETENTION_SETTING_PATH,		/* absolute path, char[size] */
	RETENTION_SETTING_SCHEDULE,	/* struct retention_schedule */
	RETENTION_SETTING_UINT,		/* unsigned int in min..max */
};

enum retention_setting_scope {
	/* per user: plugin {} / the shim's file, overridable by userdb or
	   passwd-file extra fields; in struct retention_settings */
	RETENTION_SCOPE_SESSION,
	/* site-wide, in struct webhook_settings */
	RETENTION_SCOPE_DELIVERY,
};

/* One setting, as Dovecot 2.4's struct setting_define. */
struct retention_setting_define {
	const char *key;
	enum retention_setting_type type;
	enum retention_setting_scope scope;
	/* the field in the scope's struct */
	size_t offset, size;
	/* "": no value (the field is zeroed); else parsed like a value */
	const char *default_value;
	/* RETENTION_SETTING_UINT: the range; _INTERVAL: the minimum */
	unsigned int min, max;
};

/* Every setting, in the order of DESIGN.md's table; ends with a NULL
   key. */
extern const struct retention_setting_define retention_setting_defines[];

/* The setting named key, or NULL. */
const struct retention_setting_define *
retention_setting_find(const char *key);

/* True for what a POP3 session reads: the SESSION settings, and of the
   webhook URL only whether it is set. */
bool
retention_setting_is_for_sessions(const struct retention_setting_define *def);

/* Fill set with the table's defaults. */
void retention_settings_init(struct retention_settings *set);
void webhook_settings_init(struct webhook_settings *set);

/* Parse one SESSION setting; for pop3_retention_webhook_url note only
   whether the value is empty. Returns 0 on success, -1 on an unknown
   key, a DELIVERY key or a bad value, with set->error naming the
   setting and the value; set is left unchanged on error. An empty value
   resets the setting to its default (Dovecot passes "" for settings
   that are present but empty). */
int retention_settings_set(struct retention_settings *set, const char *key,
			   const char *value);

/* The same for a DELIVERY setting, into set. */
int webhook_settings_set(struct webhook_settings *set, const char *key,
			 const char *value);

/* Cross-setting validation, run once after every set(). Returns 0 if the
   combination is usable, -1 with set->error otherwise (e.g. the keep
   policy without pop3_retention_keep, a floor above the ceiling). */
int retention_settings_check(struct retention_settings *set);

/* Parse a Dovecot-style interval ("30d", "2 weeks", "12h", "3s", "0").
   A unit is required unless the number is 0. Returns 0 and the seconds in
   secs_r, or -1 and a static error text in error_r. */
int retention_interval_parse(const char *str, unsigned int *secs_r,
			     const char **error_r);

/* Parse "YYYY-MM-DD" (midnight UTC) or RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" /
   "...+HH:MM". Returns 0 and the Unix time in time_r, -1 otherwise
   (a time before 1970 included). */
int retention_date_parse(const char *str, time_t *time_r);

/* Format t as RFC 3339 UTC ("2026-11-27T23:13:48Z") into buf (at least
   21 bytes). Returns buf. */
const char *retention_time_format(time_t t, char *buf, size_t size);

/* Names for logs, events and status output. */
const char *retention_policy_kind_name(enum retention_policy_kind kind);
const char *retention_event_type_name(enum retention_event_type type);

#endif
