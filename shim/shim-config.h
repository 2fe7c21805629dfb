#ifndef SHIM_CONFIG_H
#define SHIM_CONFIG_H

/* pop3-retentiond's configuration file: "key = value" lines, blank
   lines and '#' comments. Its own keys (below) and every
   pop3_retention_* setting of DESIGN.md (the site defaults, parsed by
   the core's retention_settings_set() and webhook_settings_set()).
   listen and listen_tls may be repeated; any other key given twice, and
   any unknown key, is an error. Every error names the file, the line,
   the key and the value:
   "/etc/pop3-retentiond.conf:12: idle_timeout: invalid value '5': ..." */

#include "retention-settings.h"
#include "shim-params.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct shim_passwd_user;

enum shim_plaintext_auth {
	/* plaintext logins only on TLS or from a loopback address */
	SHIM_PLAINTEXT_LOOPBACK = 0,
	SHIM_PLAINTEXT_TLS,
	SHIM_PLAINTEXT_ALWAYS,
};

enum shim_log_target {
	SHIM_LOG_STDERR = 0,
	SHIM_LOG_SYSLOG,
};

#define SHIM_ADDRESS_MAX 128
#define SHIM_USER_NAME_MAX 64

struct shim_config {
	/* "host:port" / "[v6]:port"; plain + STLS. Default (no listen
	   line at all): 127.0.0.1:1110 */
	char listen[SHIM_LISTEN_MAX][SHIM_ADDRESS_MAX];
	unsigned int listen_count;
	/* implicit TLS (RFC 8314); none by default */
	char listen_tls[SHIM_LISTEN_MAX][SHIM_ADDRESS_MAX];
	unsigned int listen_tls_count;
	/* PEM files; required when listen_tls is set, enable STLS when set */
	char ssl_cert[SHIM_PATH_MAX];
	char ssl_key[SHIM_PATH_MAX];
	/* required */
	char passwd_file[SHIM_PATH_MAX];
	/* the Maildir of a user: "maildir:" then a path in which %u is the
	   user name, %h the passwd-file home (default "maildir:%h/Maildir");
	   stored without the "maildir:" prefix */
	char mail[SHIM_PATH_MAX];
	/* the user to drop to after binding ("" : stay, allowed only when
	   not started as root) */
	char user[SHIM_USER_NAME_MAX];
	/* where the webhook spool lives */
	char state_dir[SHIM_PATH_MAX];
	enum shim_log_target log;
	unsigned int idle_timeout_secs;	/* >= 600, default 600 */
	unsigned int login_delay_secs;	/* 0: no LOGIN-DELAY (default) */
	enum shim_plaintext_auth plaintext_auth;
	unsigned int connections_per_ip;
	unsigned int connections_max;
	/* the site's retention settings (checked) */
	struct retention_settings retention;
	/* the webhook endpoint and delivery */
	struct webhook_settings webhook;
};

/* The defaults above. */
void shim_config_init(struct shim_config *config);

/* Read path into config (initialised by _init()), then validate it
   (passwd_file set, ssl_cert/ssl_key both or neither, listen_tls only
   with them, retention_settings_check()). Returns 0, or -1 with error
   naming file, line, key and value. */
int shim_config_load(struct shim_config *config, const char *path,
		     char *error, size_t error_size);

/* The retention settings of user: the site's, with the user's
   passwd-file extra fields applied - userdb_pop3_retention_<name> or
   pop3_retention_<name> (the per-user settings only: a site-wide
   webhook delivery setting there is an error); other extra fields are
   ignored - then checked. Returns 0, or -1 with error naming the
   setting and the value, as Dovecot's login refusal does. */
int shim_config_user_settings(const struct shim_config *config,
			      const struct shim_passwd_user *user,
			      struct retention_settings *set_r, char *error,
			      size_t error_size);

/* The Maildir path of user (config->mail with %u and %h expanded).
   Returns 0, or -1 with error when the user name could escape the
   template (a '/', a leading '.', a control character) or the result
   is too long. */
int shim_config_mail_path(const struct shim_config *config,
			  const struct shim_passwd_user *user, char *buf,
			  size_t size, char *error, size_t error_size);

/* One line of fp into buf, without its "\n" or "\r\n" (the config
   file's and the passwd-file's reader); *total counts the bytes read.
   Returns 1, 0 at the end, -1 for a line of size bytes or more, -2 for a
   NUL byte, -3 once *total exceeds total_max, -4 for a read error
   (errno). */
int shim_read_line(FILE *fp, char *buf, size_t size, size_t *total,
		   size_t total_max);

#endif
