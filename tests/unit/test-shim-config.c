/* shim-config: the config file's grammar and errors (file, line, key,
   value), per-user settings from passwd-file extra fields, and Maildir
   paths. */

#include "pop3-retention-config.h"
#include "shim-config.h"
#include "shim-passwd.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test-table.h"

#include <unistd.h>

#define PW "passwd_file = /etc/pop3-retentiond/passwd\n"
#define TLS "ssl_cert = /c.pem\nssl_key = /k.pem\n"
#define R "pop3_retention_"

enum field {
	NONE, PASSWD, LISTEN, LISTEN_TLS, MAIL, IDLE, DELAY, PLAINTEXT, LOG,
	PER_IP, CONN_MAX, POLICY, KEEP, URL, WEBHOOKS, USER, STATE_DIR,
};

struct load_row {
	const char *name;
	const char *content;
	/* NULL: loads; else what the error has after "FILE" */
	const char *error;
	enum field field;
	long long want;
	const char *want_str;
};

static const struct load_row load_rows[] = {
	{ "minimal", PW, NULL, PASSWD, 0, "/etc/pop3-retentiond/passwd" },
	{ "blanks", "\t passwd_file\t=  /p q \t\n", NULL, PASSWD, 0, "/p q" },
	{ "comments", "# a\n   # b\n\n" PW "#c = d\n", NULL, LISTEN, 1,
	  "127.0.0.1:1110" },
	{ "crlf", "passwd_file = /p\r\nlog = syslog\r\n", NULL, LOG,
	  SHIM_LOG_SYSLOG, NULL },
	{ "= and # in value", PW R "webhook_url = https://h.example/x?a=b#f\n",
	  NULL, URL, 0, "https://h.example/x?a=b#f" },
	{ "listen twice", PW "listen = 127.0.0.1:110\nlisten = [::1]:110\n",
	  NULL, LISTEN, 2, "[::1]:110" },
	{ "listen host name", PW "listen = localhost:1110\n", NULL, LISTEN, 1,
	  "localhost:1110" },
	{ "listen empty: TLS only", PW TLS "listen =\nlisten_tls = "
	  "0.0.0.0:995\n", NULL, LISTEN, 0, NULL },
	{ "listen_tls", PW TLS "listen_tls = [::]:995\n", NULL, LISTEN_TLS, 1,
	  "[::]:995" },
	{ "listen no port", PW "listen = 127.0.0.1\n", ":2: listen: invalid "
	  "value '127.0.0.1': expected host:port", NONE, 0, NULL },
	{ "listen port 0", PW "listen = 127.0.0.1:0\n", ":2: listen: invalid "
	  "value '127.0.0.1:0': expected a port number from 1 to 65535", NONE,
	  0, NULL },
	{ "listen port 65536", PW "listen = 127.0.0.1:65536\n", "from 1 to "
	  "65535", NONE, 0, NULL },
	{ "listen port +80", PW "listen = 127.0.0.1:+80\n", "port number",
	  NONE, 0, NULL },
	{ "listen port 80x", PW "listen = 127.0.0.1:80x\n", "port number",
	  NONE, 0, NULL },
	{ "listen bare v6", PW "listen = ::1:110\n", "in brackets", NONE, 0,
	  NULL },
	{ "listen bad v6", PW "listen = [::g]:110\n", "not an IPv6 address",
	  NONE, 0, NULL },
	{ "listen v6 no port", PW "listen = [::1]110\n", "[IPv6 address]:port",
	  NONE, 0, NULL },
	{ "listen bad host", PW "listen = a_b:110\n", "host name", NONE, 0,
	  NULL },
	{ "listen 9 times", PW "listen = a:1\nlisten = a:2\nlisten = a:3\n"
	  "listen = a:4\nlisten = a:5\nlisten = a:6\nlisten = a:7\n"
	  "listen = a:8\nlisten = a:9\n", ":10: listen: invalid value 'a:9': "
	  "more than 8 addresses", NONE, 0, NULL },
	{ "listen_tls without cert", PW "listen_tls = 127.0.0.1:995\n",
	  ":2: listen_tls: invalid value '127.0.0.1:995': needs ssl_cert and "
	  "ssl_key", NONE, 0, NULL },
	{ "cert without key", PW "\nssl_cert = /c.pem\n", ":3: ssl_cert: "
	  "invalid value '/c.pem': ssl_key is not set", NONE, 0, NULL },
	{ "key without cert", "ssl_key = /k.pem\n" PW, ":1: ssl_key: invalid "
	  "value '/k.pem': ssl_cert is not set", NONE, 0, NULL },
	{ "no passwd_file", "log = stderr\n", ": passwd_file: must be set",
	  NONE, 0, NULL },
	{ "passwd_file relative", "passwd_file = passwd\n", ":1: passwd_file: "
	  "invalid value 'passwd': expected an absolute path", NONE, 0, NULL },
	{ "passwd_file empty", "passwd_file =\n", ":1: passwd_file: invalid "
	  "value '': empty value", NONE, 0, NULL },
	{ "unknown key", PW "listen_ssl = a:1\n", ":2: listen_ssl: unknown "
	  "setting", NONE, 0, NULL },
	{ "unknown retention key", PW R "keep_for = 1d\n",
	  ":2: " R "keep_for: unknown setting", NONE, 0, NULL },
	{ "repeated key", PW "log = stderr\nlog = syslog\n", ":3: log: "
	  "invalid value 'syslog': already set on line 2", NONE, 0, NULL },
	{ "repeated retention key", PW R "keep = 1d\n" R "keep = 2d\n",
	  ":3: " R "keep: invalid value '2d': already set on line 2", NONE, 0,
	  NULL },
	{ "no =", PW "log syslog\n", ":2: expected key = value", NONE, 0,
	  NULL },
	{ "no key", PW " = x\n", ":2: no key before '='", NONE, 0, NULL },
	{ "mail", PW "mail = maildir:/var/mail/%u\n", NULL, MAIL, 0,
	  "/var/mail/%u" },
	{ "mail default", PW, NULL, MAIL, 0, "%h/Maildir" },
	{ "mail ~", PW "mail = maildir:~/Maildir\n", NULL, MAIL, 0,
	  "~/Maildir" },
	{ "mail mbox", PW "mail = mbox:~/mail\n", ":2: mail: invalid value "
	  "'mbox:~/mail': expected maildir:<path>", NONE, 0, NULL },
	{ "mail relative", PW "mail = maildir:Maildir\n", "absolute path",
	  NONE, 0, NULL },
	{ "mail %d", PW "mail = maildir:/m/%d/%n\n", "only %u, %h and %%",
	  NONE, 0, NULL },
	{ "idle_timeout 1h", PW "idle_timeout = 1h\n", NULL, IDLE, 3600,
	  NULL },
	{ "idle_timeout 10 min", PW "idle_timeout = 10 mins\n", NULL, IDLE,
	  600, NULL },
	{ "idle_timeout default", PW, NULL, IDLE, 600, NULL },
	{ "idle_timeout 5m", PW "idle_timeout = 5m\n", ":2: idle_timeout: "
	  "invalid value '5m': at least 10 minutes (RFC 1939 section 3)", NONE,
	  0, NULL },
	{ "idle_timeout no unit", PW "idle_timeout = 600\n",
	  ":2: idle_timeout: invalid value '600': time interval is missing a "
	  "unit", NONE, 0, NULL },
	{ "login_delay", PW "login_delay = 5m\n", NULL, DELAY, 300, NULL },
	{ "login_delay default", PW, NULL, DELAY, 0, NULL },
	{ "login_delay bad", PW "login_delay = soon\n", ":2: login_delay: "
	  "invalid value 'soon'", NONE, 0, NULL },
	{ "plaintext_auth default", PW, NULL, PLAINTEXT,
	  SHIM_PLAINTEXT_LOOPBACK, NULL },
	{ "plaintext_auth tls", PW "plaintext_auth = tls\n", NULL, PLAINTEXT,
	  SHIM_PLAINTEXT_TLS, NULL },
	{ "plaintext_auth always", PW "plaintext_auth = always\n", NULL,
	  PLAINTEXT, SHIM_PLAINTEXT_ALWAYS, NULL },
	{ "plaintext_auth yes", PW "plaintext_auth = yes\n", ":2: "
	  "plaintext_auth: invalid value 'yes': expected loopback, tls or "
	  "always", NONE, 0, NULL },
	{ "log bad", PW "log = file\n", "expected stderr or syslog", NONE, 0,
	  NULL },
	{ "connections_per_ip", PW "connections_per_ip = 5\n", NULL, PER_IP,
	  5, NULL },
	{ "connections_per_ip default", PW, NULL, PER_IP,
	  SHIM_CONNECTIONS_PER_IP_DEFAULT, NULL },
	{ "connections_max default", PW, NULL, CONN_MAX,
	  SHIM_CONNECTIONS_MAX_DEFAULT, NULL },
	{ "connections_per_ip 0", PW "connections_per_ip = 0\n",
	  ":2: connections_per_ip: invalid value '0': expected a number from "
	  "1 to", NONE, 0, NULL },
	{ "connections_max -1", PW "connections_max = -1\n", "expected a "
	  "number", NONE, 0, NULL },
	{ "connections_max 1x", PW "connections_max = 1x\n", "expected a "
	  "number", NONE, 0, NULL },
	{ "connections_max huge", PW "connections_max = "
	  "99999999999999999999999\n", "expected a number", NONE, 0, NULL },
	{ "per ip above max", PW "connections_max = 10\n"
	  "connections_per_ip = 11\n", ":3: connections_per_ip: invalid value "
	  "'11': above connections_max", NONE, 0, NULL },
	{ "user", PW "user = vmail\n", NULL, USER, 0, "vmail" },
	{ "user with control", PW "user = a\001b\n", ":2: user: invalid value "
	  "'a?b': not a user name", NONE, 0, NULL },
	{ "state_dir", PW "state_dir = /var/lib/x\n", NULL, STATE_DIR, 0,
	  "/var/lib/x" },
	{ "policy keep", PW R "policy = keep\n" R "keep = 30d\n", NULL, KEEP,
	  30 * 86400, NULL },
	{ "policy bad", PW R "policy = delete\n", ":2: " R "policy: invalid "
	  "value 'delete'", NONE, 0, NULL },
	{ "keep without unit", PW R "keep = 30\n", ":2: " R "keep: invalid "
	  "value '30': time interval is missing a unit", NONE, 0, NULL },
	{ "check names the line", PW "\n" R "policy = keep\n", ":3: " R
	  "policy: invalid value 'keep': " R "keep must be set", NONE, 0,
	  NULL },
	{ "floor above ceiling", PW R "max = 7d\n" R "min = 30d\n", ":3: " R
	  "min: invalid value '30d': the floor is above", NONE, 0, NULL },
	{ "site-wide keys", PW R "webhook_url = https://h.example/\n" R
	  "webhook_timeout = 30s\n" R "webhook_max_in_flight = 4\n", NULL, URL, 0,
	  "https://h.example/" },
	{ "sessions see that a URL is set", PW R "webhook_url = "
	  "https://h.example/\n", NULL, WEBHOOKS, 1, NULL },
	{ "no URL: no webhooks", PW, NULL, WEBHOOKS, 0, NULL },
	{ "delivery setting twice", PW R "webhook_nice = 1\n" R "webhook_nice "
	  "= 2\n", ":3: " R "webhook_nice: invalid value '2': already set on "
	  "line 2", NONE, 0, NULL },
	{ "bad delivery setting", PW R "webhook_url = ftp://h/\n", ":2: " R
	  "webhook_url: invalid value 'ftp://h/': only http:// and https://",
	  NONE, 0, NULL },
};

static char tmp_dir[64];

static int write_file(const char *path, const char *content, size_t len)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		return -1;
	if (fwrite(content, 1, len, fp) != len) {
		fclose(fp);
		return -1;
	}
	return fclose(fp);
}

static long long field_value(const struct shim_config *c, enum field field,
			     const char **str_r)
{
	*str_r = NULL;
	switch (field) {
	case NONE: return 0;
	case PASSWD: *str_r = c->passwd_file; return 0;
	case LISTEN:
		*str_r = c->listen_count > 0 ?
			c->listen[c->listen_count - 1] : NULL;
		return c->listen_count;
	case LISTEN_TLS:
		*str_r = c->listen_tls[c->listen_tls_count - 1];
		return c->listen_tls_count;
	case MAIL: *str_r = c->mail; return 0;
	case IDLE: return c->idle_timeout_secs;
	case DELAY: return c->login_delay_secs;
	case PLAINTEXT: return c->plaintext_auth;
	case LOG: return c->log;
	case PER_IP: return c->connections_per_ip;
	case CONN_MAX: return c->connections_max;
	case POLICY: return c->retention.policy;
	case KEEP: return c->retention.keep.secs;
	case URL: *str_r = c->webhook.url; return 0;
	case WEBHOOKS: return c->retention.webhooks;
	case USER: *str_r = c->user; return 0;
	case STATE_DIR: *str_r = c->state_dir; return 0;
	}
	return 0;
}

static void test_load(void **state)
{
	const struct load_row *r = *state;
	unsigned int i = (unsigned int)(r - load_rows);
	struct shim_config config, before;
	char path[128], error[1024];
	const char *str;
	long long got;
	int ret;

	snprintf(path, sizeof(path), "%s/config-%u", tmp_dir, i);
	assert_int_equal(write_file(path, r->content, strlen(r->content)), 0);
	shim_config_init(&config);
	before = config;
	ret = shim_config_load(&config, path, error, sizeof(error));
	if (r->error != NULL) {
		if (ret != -1)
			fail_msg("row %u (%s): loaded, want '%s'", i, r->name,
				 r->error);
		/* ":LINE: ..." right after the file name, or a part */
		if (strncmp(error, path, strlen(path)) != 0 ||
		    (r->error[0] == ':' &&
		     strstr(error + strlen(path), r->error) !=
			     error + strlen(path)) ||
		    strstr(error, r->error) == NULL)
			fail_msg("row %u (%s): error '%s', want '%s'", i,
				 r->name, error, r->error);
		if (memcmp(&before, &config, sizeof(config)) != 0)
			fail_msg("row %u (%s): config changed", i, r->name);
		return;
	}
	if (ret != 0)
		fail_msg("row %u (%s): %s", i, r->name, error);
	got = field_value(&config, r->field, &str);
	if (got != r->want)
		fail_msg("row %u (%s): got %lld, want %lld", i, r->name, got,
			 r->want);
	if (r->want_str != NULL && (str == NULL || strcmp(str, r->want_str)))
		fail_msg("row %u (%s): got '%s', want '%s'", i, r->name,
			 str == NULL ? "(null)" : str, r->want_str);
}

/* A line of SHIM_CONFIG_LINE_MAX bytes is read (and fails as a value),
   one more is "too long"; a file over SHIM_CONFIG_SIZE_MAX is refused;
   a missing file names itself. */
static void test_limits(void **state)
{
	struct shim_config config;
	char path[128], error[1024], *buf;
	size_t len, size = SHIM_CONFIG_SIZE_MAX + 2;

	(void)state;
	buf = malloc(size);
	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/config-limits", tmp_dir);
	len = (size_t)snprintf(buf, size, "%suser = ", PW);
	memset(buf + len, 'u', SHIM_CONFIG_LINE_MAX - strlen("user = "));
	len += SHIM_CONFIG_LINE_MAX - strlen("user = ");
	buf[len++] = '\n';
	assert_int_equal(write_file(path, buf, len), 0);
	shim_config_init(&config);
	assert_int_equal(shim_config_load(&config, path, error,
					  sizeof(error)), -1);
	assert_non_null(strstr(error, ":2: user: invalid value 'uuu"));
	assert_non_null(strstr(error, "longer than 63 bytes"));

	buf[len - 1] = 'u';
	buf[len++] = '\n';
	assert_int_equal(write_file(path, buf, len), 0);
	assert_int_equal(shim_config_load(&config, path, error,
					  sizeof(error)), -1);
	assert_non_null(strstr(error, ":2: line longer than 4096 bytes"));

	len = (size_t)snprintf(buf, size, "%s", PW);
	memset(buf + len, '\n', size - len);
	assert_int_equal(write_file(path, buf, size), 0);
	assert_int_equal(shim_config_load(&config, path, error,
					  sizeof(error)), -1);
	assert_non_null(strstr(error, ": file larger than 1048576 bytes"));

	assert_int_equal(shim_config_load(&config, "/nonexistent/x.conf",
					  error, sizeof(error)), -1);
	assert_non_null(strstr(error, "/nonexistent/x.conf: "));
	free(buf);
}

struct user_row {
	const char *name;
	const char *keys[3], *values[3];
	/* NULL: accepted; else the error */
	const char *error;
	enum { U_KEEP, U_HOLD, U_POLICY, U_EVENTS } field;
	long long want;
};

/* the site: keep 30d, ceiling 40d */
static const struct user_row user_rows[] = {
	{ "none", { NULL }, { NULL }, NULL, U_KEEP, 30 * 86400 },
	{ "userdb_ keep", { "userdb_" R "keep" }, { "7d" }, NULL, U_KEEP,
	  7 * 86400 },
	{ "bare keep", { R "keep" }, { "8d" }, NULL, U_KEEP, 8 * 86400 },
	{ "hold", { "quota_rule", R "hold" }, { "*:storage=1G", "yes" }, NULL,
	  U_HOLD, 1 },
	{ "policy off", { "userdb_" R "policy" }, { "off" }, NULL, U_POLICY,
	  RETENTION_POLICY_OFF },
	{ "events per user", { "userdb_" R "webhook_events" },
	  { "message.deleted" }, NULL, U_EVENTS, RETENTION_EVENT_DELETED },
	{ "other fields ignored", { "userdb_quota", "nologin", "home" },
	  { "1G", "y", "/x" }, NULL, U_KEEP, 30 * 86400 },
	{ "bad keep", { "userdb_" R "keep" }, { "7" }, R "keep: invalid value "
	  "'7': time interval is missing a unit", U_KEEP, 0 },
	{ "bad hold", { R "hold" }, { "sometimes" }, R "hold: invalid value "
	  "'sometimes'", U_KEEP, 0 },
	{ "site-wide url", { "userdb_" R "webhook_url" },
	  { "http://evil.example/" }, "userdb_" R "webhook_url: invalid value "
	  "'http://evil.example/': a site-wide setting, not allowed per user",
	  U_KEEP, 0 },
	{ "site-wide timeout", { R "webhook_timeout" }, { "1s" },
	  R "webhook_timeout: invalid value '1s': a site-wide setting",
	  U_KEEP, 0 },
	{ "unknown", { "userdb_" R "hodl" }, { "yes" }, R "hodl: unknown "
	  "setting", U_KEEP, 0 },
	{ "check fails", { R "min" }, { "60d" }, R "min: invalid value '60d': "
	  "the floor is above " R "max '40d'", U_KEEP, 0 },
};

static void test_user(void **state)
{
	const struct user_row *r = *state;
	unsigned int i = (unsigned int)(r - user_rows), n;
	struct shim_passwd_user user;
	struct shim_config config;
	struct retention_settings set;
	char error[1024];
	long long got;
	int ret;

	shim_config_init(&config);
	assert_int_equal(retention_settings_set(&config.retention, R "policy",
						"keep"), 0);
	assert_int_equal(retention_settings_set(&config.retention, R "keep",
						"30d"), 0);
	assert_int_equal(retention_settings_set(&config.retention, R "max",
						"40d"), 0);
	for (n = 0; n < 3 && r->keys[n] != NULL; n++)
		;
	memset(&user, 0, sizeof(user));
	user.name = "u";
	user.home = "";
	user.extra_count = n;
	user.extra_keys = r->keys;
	user.extra_values = r->values;
	ret = shim_config_user_settings(&config, &user, &set, error,
					sizeof(error));
	if (r->error != NULL) {
		if (ret != -1 || strstr(error, r->error) != error)
			fail_msg("row %u (%s): %d '%s', want '%s'", i, r->name,
				 ret, ret < 0 ? error : "", r->error);
		return;
	}
	if (ret != 0)
		fail_msg("row %u (%s): %s", i, r->name, error);
	got = r->field == U_KEEP ? set.keep.secs : r->field == U_HOLD ?
		set.hold : r->field == U_POLICY ? set.policy :
		set.webhook_events;
	if (got != r->want)
		fail_msg("row %u (%s): got %lld, want %lld", i, r->name, got,
			 r->want);
}

struct path_row {
	const char *name;
	const char *mail, *user, *home;
	size_t size;
	/* the path, or with error set a substring of the error */
	const char *want;
	bool error;
};

static const struct path_row path_rows[] = {
	{ "%u", "maildir:/var/mail/%u", "bob", "", 4096, "/var/mail/bob",
	  false },
	{ "%h", "maildir:%h/Maildir", "bob", "/home/bob", 4096,
	  "/home/bob/Maildir", false },
	{ "~", "maildir:~/Mail", "bob", "/home/bob", 4096, "/home/bob/Mail",
	  false },
	{ "%%", "maildir:/m/%%u/%u", "bob", "", 4096, "/m/%u/bob", false },
	{ "user@domain", "maildir:/m/%u", "b.o-b@example.com", "", 4096,
	  "/m/b.o-b@example.com", false },
	{ "exact fit", "maildir:/m/%u", "bob", "", 7, "/m/bob", false },
	{ "too long", "maildir:/m/%u", "bob", "", 6, "longer than 5 bytes",
	  true },
	{ "slash", "maildir:/m/%u", "a/b", "", 4096, "'a/b' is not safe",
	  true },
	{ "dot dot", "maildir:/m/%u", "..", "", 4096, "not safe", true },
	{ "leading dot", "maildir:/m/%u", ".x", "", 4096, "not safe", true },
	{ "newline", "maildir:/m/%u", "a\nb", "", 4096, "not safe", true },
	{ "empty", "maildir:/m/%u", "", "", 4096, "not safe", true },
	{ "no home", "maildir:%h/Maildir", "bob", "", 4096, "user bob has no "
	  "absolute home directory", true },
	{ "relative home", "maildir:~/Maildir", "bob", "home/bob", 4096,
	  "no absolute home", true },
};

static void test_path(void **state)
{
	const struct path_row *r = *state;
	unsigned int i = (unsigned int)(r - path_rows);
	struct shim_passwd_user user;
	struct shim_config config;
	char path[128], buf[4096], error[1024];
	int ret;

	snprintf(path, sizeof(path), "%s/config-path-%u", tmp_dir, i);
	snprintf(buf, sizeof(buf), "%smail = %s\n", PW, r->mail);
	assert_int_equal(write_file(path, buf, strlen(buf)), 0);
	shim_config_init(&config);
	if (shim_config_load(&config, path, error, sizeof(error)) < 0)
		fail_msg("row %u (%s): %s", i, r->name, error);
	memset(&user, 0, sizeof(user));
	user.name = r->user;
	user.home = r->home;
	error[0] = '\0';
	ret = shim_config_mail_path(&config, &user, buf, r->size, error,
				    sizeof(error));
	if (r->error && (ret != -1 || strstr(error, r->want) == NULL))
		fail_msg("row %u (%s): %d '%s', want error '%s'", i, r->name,
			 ret, error, r->want);
	if (!r->error && (ret != 0 || strcmp(buf, r->want) != 0))
		fail_msg("row %u (%s): %d '%s' (%s), want '%s'", i, r->name,
			 ret, buf, error, r->want);
}

int main(void)
{
	const struct CMUnitTest limits[] = {
		cmocka_unit_test(test_limits),
	};
	int failed;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test-shim-config.XXXXXX");
	if (mkdtemp(tmp_dir) == NULL)
		return 1;
	failed = RUN_TABLE("shim-config load", test_load, load_rows);
	failed += RUN_TABLE("shim-config user", test_user, user_rows);
	failed += RUN_TABLE("shim-config mail path", test_path, path_rows);
	failed += cmocka_run_group_tests_name("shim-config limits", limits,
					      NULL, NULL);
	test_remove_tree(tmp_dir);
	return failed == 0 ? 0 : 1;
}
