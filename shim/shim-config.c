/* pop3-retentiond's configuration file, per-user settings and the
   Maildir path of a user. */

#include "pop3-retention-config.h"
#include "shim-config.h"
#include "shim-passwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REASON_MAX 256
#define MAILDIR_PREFIX "maildir:"
#define USERDB_PREFIX "userdb_"
#define RETENTION_PREFIX "pop3_retention_"
#define CONNECTIONS_LIMIT 1000000

enum key_kind {
	/* "host:port" or "[v6]:port", repeatable up to SHIM_LISTEN_MAX */
	KIND_ADDRESS,
	KIND_PATH,
	KIND_MAIL,
	KIND_USER_NAME,
	/* one of words, stored as its index */
	KIND_WORD,
	/* an interval of at least min seconds */
	KIND_INTERVAL,
	/* 1..CONNECTIONS_LIMIT */
	KIND_COUNT,
};

/* One of the shim's own keys (retention_setting_defines has the others):
   name, grammar and where it goes; the defaults are shim_config_init()'s
   and the header's. */
struct config_key {
	const char *name;
	enum key_kind kind;
	size_t offset;
	/* KIND_ADDRESS: the count; KIND_PATH, KIND_USER_NAME: the size */
	size_t arg;
	unsigned int min;
	const char *const *words;
	const char *min_reason;
};

static int reason_set(char *reason, size_t reason_size, const char *text)
{
	snprintf(reason, reason_size, "%s", text);
	return -1;
}

static int copy_string(char *dest, size_t dest_size, const char *value,
		       char *reason, size_t reason_size)
{
	size_t len = strlen(value);

	if (len >= dest_size) {
		snprintf(reason, reason_size, "longer than %zu bytes",
			 dest_size - 1);
		return -1;
	}
	memcpy(dest, value, len + 1);
	return 0;
}

static bool str_has_control(const char *str)
{
	for (; *str != '\0'; str++) {
		if ((unsigned char)*str < 0x20 || *str == 0x7f)
			return true;
	}
	return false;
}

/* A decimal number from min to max, nothing else (strtoul() alone would
   take blanks, signs and trailing text). */
static int uint_parse(const char *str, unsigned long min, unsigned long max,
		      unsigned long *num_r)
{
	unsigned long num;
	char *end;

	if (str[0] < '0' || str[0] > '9')
		return -1;
	errno = 0;
	num = strtoul(str, &end, 10);
	if (errno != 0 || *end != '\0' || num < min || num > max)
		return -1;
	*num_r = num;
	return 0;
}

static int port_parse(const char *port, char *reason, size_t reason_size)
{
	unsigned long num;

	if (uint_parse(port, 1, 65535, &num) < 0)
		return reason_set(reason, reason_size,
				  "expected a port number from 1 to 65535");
	return 0;
}

static bool hostname_valid(const char *host, size_t len)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.";

	return len > 0 && host[0] != '-' && host[0] != '.' &&
	       strspn(host, chars) >= len;
}

/* "host:port" (an IPv4 address or a host name) or "[v6]:port". */
static int address_parse(const char *value, char *reason, size_t reason_size)
{
	char host[SHIM_ADDRESS_MAX];
	unsigned char addr[16];
	const char *colon, *end;
	size_t len;

	if (strlen(value) >= SHIM_ADDRESS_MAX)
		return reason_set(reason, reason_size, "address too long");
	if (value[0] == '[') {
		end = strchr(value, ']');
		if (end == NULL || end[1] != ':')
			return reason_set(reason, reason_size,
					  "expected [IPv6 address]:port");
		len = (size_t)(end - value - 1);
		memcpy(host, value + 1, len);
		host[len] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			return reason_set(reason, reason_size,
					  "not an IPv6 address");
		return port_parse(end + 2, reason, reason_size);
	}
	colon = strrchr(value, ':');
	if (colon == NULL)
		return reason_set(reason, reason_size,
				  "expected host:port or [IPv6 address]:port");
	len = (size_t)(colon - value);
	if (memchr(value, ':', len) != NULL)
		return reason_set(reason, reason_size,
				  "an IPv6 address goes in brackets: "
				  "[address]:port");
	if (!hostname_valid(value, len))
		return reason_set(reason, reason_size,
				  "expected an IPv4 address or a host name");
	return port_parse(colon + 1, reason, reason_size);
}

static int listen_add(char (*list)[SHIM_ADDRESS_MAX], unsigned int *count,
		      const char *value, char *reason, size_t reason_size)
{
	/* "listen =": no plain listener (implicit TLS only) */
	if (value[0] == '\0')
		return 0;
	if (address_parse(value, reason, reason_size) < 0)
		return -1;
	if (*count == SHIM_LISTEN_MAX) {
		snprintf(reason, reason_size, "more than %d addresses",
			 SHIM_LISTEN_MAX);
		return -1;
	}
	return copy_string(list[(*count)++], SHIM_ADDRESS_MAX, value, reason,
			   reason_size);
}

static int path_parse(char *dest, size_t size, const char *value,
		      char *reason, size_t reason_size)
{
	if (value[0] != '/' || str_has_control(value))
		return reason_set(reason, reason_size,
				  "expected an absolute path");
	return copy_string(dest, size, value, reason, reason_size);
}

/* %u, %h, %% and a leading ~ (the home, as in Dovecot's mail_location);
   the result must be an absolute path. */
static int mail_parse(char *dest, const char *value, char *reason,
		      size_t reason_size)
{
	const char *path, *p;

	if (strncmp(value, MAILDIR_PREFIX, strlen(MAILDIR_PREFIX)) != 0)
		return reason_set(reason, reason_size,
				  "expected maildir:<path>");
	path = value + strlen(MAILDIR_PREFIX);
	if (path[0] != '/' && path[0] != '~' && strncmp(path, "%h", 2) != 0)
		return reason_set(reason, reason_size,
				  "expected an absolute path, or one starting "
				  "with %h or ~");
	if (path[0] == '~' && path[1] != '\0' && path[1] != '/')
		return reason_set(reason, reason_size,
				  "~user is not supported: use %h");
	if (str_has_control(path))
		return reason_set(reason, reason_size,
				  "control character in path");
	for (p = path; (p = strchr(p, '%')) != NULL; p += 2) {
		if (p[1] != 'u' && p[1] != 'h' && p[1] != '%')
			return reason_set(reason, reason_size,
					  "only %u, %h and %% may be used");
	}
	return copy_string(dest, SHIM_PATH_MAX, path, reason, reason_size);
}

static int word_parse(const char *const *words, unsigned int *idx_r,
		      const char *value, char *reason, size_t reason_size)
{
	size_t pos;
	unsigned int i;

	for (i = 0; words[i] != NULL; i++) {
		if (strcmp(words[i], value) == 0) {
			*idx_r = i;
			return 0;
		}
	}
	pos = (size_t)snprintf(reason, reason_size, "expected");
	for (i = 0; words[i] != NULL && pos < reason_size; i++) {
		pos += (size_t)snprintf(reason + pos, reason_size - pos,
					"%s %s", i == 0 ? "" :
					words[i + 1] == NULL ? " or" : ",",
					words[i]);
	}
	return -1;
}

static int interval_parse(const struct config_key *key, unsigned int *secs_r,
			  const char *value, char *reason, size_t reason_size)
{
	const char *error;
	unsigned int secs;

	if (retention_interval_parse(value, &secs, &error) < 0)
		return reason_set(reason, reason_size, error);
	if (secs < key->min)
		return reason_set(reason, reason_size, key->min_reason);
	*secs_r = secs;
	return 0;
}

static int count_parse(unsigned int *num_r, const char *value, char *reason,
		       size_t reason_size)
{
	unsigned long num;

	if (uint_parse(value, 1, CONNECTIONS_LIMIT, &num) < 0) {
		snprintf(reason, reason_size,
			 "expected a number from 1 to %d", CONNECTIONS_LIMIT);
		return -1;
	}
	*num_r = (unsigned int)num;
	return 0;
}

static int key_parse(const struct config_key *key, struct shim_config *config,
		     const char *value, char *reason, size_t reason_size)
{
	char *field = (char *)config + key->offset;
	unsigned int *num = (unsigned int *)(void *)field;

	switch (key->kind) {
	case KIND_ADDRESS:
		return listen_add((char (*)[SHIM_ADDRESS_MAX])(void *)field,
				  (unsigned int *)(void *)((char *)config +
							   key->arg),
				  value, reason, reason_size);
	case KIND_PATH:
		return path_parse(field, key->arg, value, reason, reason_size);
	case KIND_MAIL:
		return mail_parse(field, value, reason, reason_size);
	case KIND_USER_NAME:
		if (str_has_control(value) || strchr(value, ':') != NULL)
			return reason_set(reason, reason_size,
					  "not a user name");
		return copy_string(field, key->arg, value, reason, reason_size);
	case KIND_WORD:
		return word_parse(key->words, num, value, reason, reason_size);
	case KIND_INTERVAL:
		return interval_parse(key, num, value, reason, reason_size);
	case KIND_COUNT:
		return count_parse(num, value, reason, reason_size);
	}
	return reason_set(reason, reason_size, "unknown kind");
}

static const char *const log_words[] = { "stderr", "syslog", NULL };
static const char *const plaintext_words[] = {
	"loopback", "tls", "always", NULL };

#define OFF(field) offsetof(struct shim_config, field)
#define PATH_KEY(name) \
	{ #name, KIND_PATH, OFF(name), SHIM_PATH_MAX, 0, NULL, NULL }

static const struct config_key config_keys[] = {
	{ "listen", KIND_ADDRESS, OFF(listen), OFF(listen_count), 0, NULL,
	  NULL },
	{ "listen_tls", KIND_ADDRESS, OFF(listen_tls), OFF(listen_tls_count),
	  0, NULL, NULL },
	PATH_KEY(ssl_cert),
	PATH_KEY(ssl_key),
	PATH_KEY(passwd_file),
	{ "mail", KIND_MAIL, OFF(mail), 0, 0, NULL, NULL },
	{ "user", KIND_USER_NAME, OFF(user), SHIM_USER_NAME_MAX, 0, NULL,
	  NULL },
	PATH_KEY(state_dir),
	{ "log", KIND_WORD, OFF(log), 0, 0, log_words, NULL },
	{ "idle_timeout", KIND_INTERVAL, OFF(idle_timeout_secs), 0,
	  SHIM_IDLE_TIMEOUT_MIN_SECS, NULL,
	  "at least 10 minutes (RFC 1939 section 3)" },
	{ "login_delay", KIND_INTERVAL, OFF(login_delay_secs), 0, 0, NULL,
	  NULL },
	{ "plaintext_auth", KIND_WORD, OFF(plaintext_auth), 0, 0,
	  plaintext_words, NULL },
	{ "connections_per_ip", KIND_COUNT, OFF(connections_per_ip), 0, 0,
	  NULL, NULL },
	{ "connections_max", KIND_COUNT, OFF(connections_max), 0, 0, NULL,
	  NULL },
};
#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))
/* for the checks across keys */
#define KEY_LISTEN 0
#define KEY_LISTEN_TLS 1
#define KEY_SSL_CERT 2
#define KEY_SSL_KEY 3
#define KEY_CONNECTIONS_PER_IP 12
/* retention_setting_defines has 19 */
#define RETENTION_KEYS_MAX 32

/* The keys of one load, with the line each was (last) set on. */
struct config_parser {
	const char *path;
	struct shim_config *config;
	unsigned int own_lines[CONFIG_KEY_COUNT];
	unsigned int retention_lines[RETENTION_KEYS_MAX];
	unsigned int line_number;
};

void shim_config_init(struct shim_config *config)
{
	memset(config, 0, sizeof(*config));
	snprintf(config->listen[0], sizeof(config->listen[0]), "%s",
		 "127.0.0.1:1110");
	config->listen_count = 1;
	snprintf(config->mail, sizeof(config->mail), "%s", "%h/Maildir");
	snprintf(config->state_dir, sizeof(config->state_dir), "%s",
		 "/var/lib/pop3-retentiond");
	config->log = SHIM_LOG_STDERR;
	config->idle_timeout_secs = SHIM_IDLE_TIMEOUT_DEFAULT_SECS;
	config->login_delay_secs = 0;
	config->plaintext_auth = SHIM_PLAINTEXT_LOOPBACK;
	config->connections_per_ip = SHIM_CONNECTIONS_PER_IP_DEFAULT;
	config->connections_max = SHIM_CONNECTIONS_MAX_DEFAULT;
	retention_settings_init(&config->retention);
	webhook_settings_init(&config->webhook);
}

static int retention_key_index(const char *key)
{
	const struct retention_setting_define *def =
		retention_setting_find(key);
	long idx = def == NULL ? -1 : def - retention_setting_defines;

	return idx < RETENTION_KEYS_MAX ? (int)idx : -1;
}

/* "FILE:LINE: KEY: invalid value 'VALUE': reason" */
static int parser_error(struct config_parser *parser, const char *key,
			const char *value, const char *reason, char *error,
			size_t error_size)
{
	char shown[257];
	size_t i, len = strnlen(value, sizeof(shown) - 1);

	/* the error goes to a terminal or syslog: no control characters */
	for (i = 0; i < len; i++) {
		shown[i] = (unsigned char)value[i] < 0x20 || value[i] == 0x7f ?
				   '?' : value[i];
	}
	shown[i] = '\0';
	snprintf(error, error_size, "%s:%u: %.64s: invalid value '%s': %s",
		 parser->path, parser->line_number, key, shown, reason);
	return -1;
}

static int parser_set_retention(struct config_parser *parser,
				const char *key, const char *value,
				char *error, size_t error_size)
{
	struct shim_config *config = parser->config;
	int idx = retention_key_index(key);
	bool delivery = idx >= 0 && retention_setting_defines[idx].scope ==
		RETENTION_SCOPE_DELIVERY;
	char reason[64];

	if (idx >= 0 && parser->retention_lines[idx] != 0) {
		snprintf(reason, sizeof(reason), "already set on line %u",
			 parser->retention_lines[idx]);
		return parser_error(parser, key, value, reason, error,
				    error_size);
	}
	if ((delivery ? webhook_settings_set(&config->webhook, key, value) :
	     retention_settings_set(&config->retention, key, value)) < 0) {
		snprintf(error, error_size, "%s:%u: %s", parser->path,
			 parser->line_number, delivery ?
			 config->webhook.error : config->retention.error);
		return -1;
	}
	if (idx >= 0)
		parser->retention_lines[idx] = parser->line_number;
	return 0;
}

static int parser_set(struct config_parser *parser, const char *key,
		      const char *value, char *error, size_t error_size)
{
	char reason[REASON_MAX];
	unsigned int i;

	if (strncmp(key, RETENTION_PREFIX, strlen(RETENTION_PREFIX)) == 0)
		return parser_set_retention(parser, key, value, error,
					    error_size);
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].name, key) == 0)
			break;
	}
	if (i == CONFIG_KEY_COUNT) {
		snprintf(error, error_size, "%s:%u: %.64s: unknown setting",
			 parser->path, parser->line_number, key);
		return -1;
	}
	if (parser->own_lines[i] != 0 && config_keys[i].kind != KIND_ADDRESS) {
		snprintf(reason, sizeof(reason), "already set on line %u",
			 parser->own_lines[i]);
		return parser_error(parser, key, value, reason, error,
				    error_size);
	}
	/* the first listen line replaces the default address */
	if (i == KEY_LISTEN && parser->own_lines[i] == 0)
		parser->config->listen_count = 0;
	if (value[0] == '\0' && i != KEY_LISTEN)
		return parser_error(parser, key, value, "empty value", error,
				    error_size);
	if (key_parse(&config_keys[i], parser->config, value, reason,
		      sizeof(reason)) < 0)
		return parser_error(parser, key, value, reason, error,
				    error_size);
	parser->own_lines[i] = parser->line_number;
	return 0;
}

static char *trim(char *str)
{
	size_t len;

	while (*str == ' ' || *str == '\t')
		str++;
	len = strlen(str);
	while (len > 0 && (str[len - 1] == ' ' || str[len - 1] == '\t'))
		str[--len] = '\0';
	return str;
}

static int parser_line(struct config_parser *parser, char *line,
		       char *error, size_t error_size)
{
	char *key, *value, *eq;

	key = trim(line);
	if (key[0] == '\0' || key[0] == '#')
		return 0;
	eq = strchr(key, '=');
	if (eq == NULL) {
		snprintf(error, error_size, "%s:%u: expected key = value",
			 parser->path, parser->line_number);
		return -1;
	}
	*eq = '\0';
	key = trim(key);
	value = trim(eq + 1);
	if (key[0] == '\0') {
		snprintf(error, error_size, "%s:%u: no key before '='",
			 parser->path, parser->line_number);
		return -1;
	}
	return parser_set(parser, key, value, error, error_size);
}

int shim_read_line(FILE *fp, char *buf, size_t size, size_t *total,
		   size_t total_max)
{
	size_t len = 0;
	int c;

	while ((c = getc(fp)) != EOF) {
		if (++*total > total_max)
			return -3;
		if (c == '\n')
			break;
		if (c == '\0')
			return -2;
		if (len + 1 >= size)
			return -1;
		buf[len++] = (char)c;
	}
	if (c == EOF && ferror(fp))
		return -4;
	if (c == EOF && len == 0)
		return 0;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return 1;
}

static int parser_read(struct config_parser *parser, FILE *fp, char *error,
		       size_t error_size)
{
	char line[SHIM_CONFIG_LINE_MAX + 1];
	size_t total = 0;
	int ret;

	while ((ret = shim_read_line(fp, line, sizeof(line), &total,
				     SHIM_CONFIG_SIZE_MAX)) != 0) {
		parser->line_number++;
		switch (ret) {
		case 1:
			if (parser_line(parser, line, error, error_size) < 0)
				return -1;
			continue;
		case -1:
			snprintf(error, error_size,
				 "%s:%u: line longer than %d bytes",
				 parser->path, parser->line_number,
				 SHIM_CONFIG_LINE_MAX);
			break;
		case -2:
			snprintf(error, error_size, "%s:%u: NUL byte in line",
				 parser->path, parser->line_number);
			break;
		case -3:
			snprintf(error, error_size,
				 "%s: file larger than %d bytes", parser->path,
				 SHIM_CONFIG_SIZE_MAX);
			break;
		default:
			snprintf(error, error_size, "%s: %s", parser->path,
				 strerror(errno));
			break;
		}
		return -1;
	}
	return 0;
}

/* An error of the finished file about key, on the line that set it. */
static int parser_key_error(struct config_parser *parser, unsigned int key,
			    const char *value, const char *reason,
			    char *error, size_t error_size)
{
	parser->line_number = parser->own_lines[key];
	return parser_error(parser, config_keys[key].name, value, reason,
			    error, error_size);
}

static int parser_check_retention(struct config_parser *parser,
				  char *error, size_t error_size)
{
	struct retention_settings *set = &parser->config->retention;
	char key[64];
	size_t len;
	int idx;

	set->webhooks = parser->config->webhook.url[0] != '\0';
	if (retention_settings_check(set) == 0)
		return 0;
	/* the error starts with the setting it is about: name its line */
	len = strcspn(set->error, ":");
	idx = -1;
	if (len < sizeof(key)) {
		memcpy(key, set->error, len);
		key[len] = '\0';
		idx = retention_key_index(key);
	}
	if (idx >= 0 && parser->retention_lines[idx] != 0)
		snprintf(error, error_size, "%s:%u: %s", parser->path,
			 parser->retention_lines[idx], set->error);
	else
		snprintf(error, error_size, "%s: %s", parser->path,
			 set->error);
	return -1;
}

static int parser_check(struct config_parser *parser, char *error,
			size_t error_size)
{
	struct shim_config *config = parser->config;
	bool cert = config->ssl_cert[0] != '\0';
	bool key = config->ssl_key[0] != '\0';

	if (config->passwd_file[0] == '\0') {
		snprintf(error, error_size, "%s: passwd_file: must be set",
			 parser->path);
		return -1;
	}
	if (cert && !key)
		return parser_key_error(parser, KEY_SSL_CERT, config->ssl_cert,
					"ssl_key is not set", error,
					error_size);
	if (key && !cert)
		return parser_key_error(parser, KEY_SSL_KEY, config->ssl_key,
					"ssl_cert is not set", error,
					error_size);
	if (config->listen_tls_count > 0 && !cert)
		return parser_key_error(parser, KEY_LISTEN_TLS,
					config->listen_tls[0],
					"needs ssl_cert and ssl_key", error,
					error_size);
	if (config->listen_count + config->listen_tls_count == 0)
		return parser_key_error(parser, KEY_LISTEN, "",
					"no listen or listen_tls address",
					error, error_size);
	if (config->connections_per_ip > config->connections_max) {
		char value[16];

		snprintf(value, sizeof(value), "%u",
			 config->connections_per_ip);
		return parser_key_error(parser, KEY_CONNECTIONS_PER_IP, value,
					"above connections_max", error,
					error_size);
	}
	return parser_check_retention(parser, error, error_size);
}

int shim_config_load(struct shim_config *config, const char *path,
		     char *error, size_t error_size)
{
	struct config_parser parser;
	struct stat st;
	FILE *fp;
	int ret;

	memset(&parser, 0, sizeof(parser));
	parser.path = path;
	/* config is changed only when the whole file is good (a reload
	   keeps the running configuration otherwise) */
	parser.config = malloc(sizeof(*config));
	if (parser.config == NULL) {
		snprintf(error, error_size, "%s: out of memory", path);
		return -1;
	}
	*parser.config = *config;
	fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		ret = -1;
	} else if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(error, error_size, "%s: not a regular file", path);
		ret = -1;
	} else if (st.st_size > SHIM_CONFIG_SIZE_MAX) {
		snprintf(error, error_size, "%s: file larger than %d bytes",
			 path, SHIM_CONFIG_SIZE_MAX);
		ret = -1;
	} else {
		ret = parser_read(&parser, fp, error, error_size);
		if (ret == 0)
			ret = parser_check(&parser, error, error_size);
	}
	if (fp != NULL)
		fclose(fp);
	if (ret == 0)
		*config = *parser.config;
	free(parser.config);
	return ret;
}

int shim_config_user_settings(const struct shim_config *config,
			      const struct shim_passwd_user *user,
			      struct retention_settings *set_r, char *error,
			      size_t error_size)
{
	const struct retention_setting_define *def;
	const char *key;
	unsigned int i;

	*set_r = config->retention;
	for (i = 0; i < user->extra_count; i++) {
		key = user->extra_keys[i];
		if (strncmp(key, USERDB_PREFIX, strlen(USERDB_PREFIX)) == 0)
			key += strlen(USERDB_PREFIX);
		if (strncmp(key, RETENTION_PREFIX,
			    strlen(RETENTION_PREFIX)) != 0)
			continue;
		def = retention_setting_find(key);
		if (def != NULL && def->scope == RETENTION_SCOPE_DELIVERY) {
			snprintf(error, error_size,
				 "%.64s: invalid value '%.256s': a site-wide "
				 "setting, not allowed per user",
				 user->extra_keys[i], user->extra_values[i]);
			return -1;
		}
		/* unknown pop3_retention_* names fail here too: a typo must
		   not quietly drop a hold */
		if (retention_settings_set(set_r, key,
					   user->extra_values[i]) < 0) {
			snprintf(error, error_size, "%s", set_r->error);
			return -1;
		}
	}
	if (retention_settings_check(set_r) < 0) {
		snprintf(error, error_size, "%s", set_r->error);
		return -1;
	}
	return 0;
}

static bool user_name_safe(const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL)
		return false;
	return !str_has_control(name);
}

static int expand_append(char *buf, size_t size, size_t *pos,
			 const char *str, size_t len)
{
	if (len >= size - *pos)
		return -1;
	memcpy(buf + *pos, str, len);
	*pos += len;
	buf[*pos] = '\0';
	return 0;
}

static int home_check(const struct shim_config *config,
		      const struct shim_passwd_user *user, char *error,
		      size_t error_size)
{
	if (user->home[0] == '/')
		return 0;
	snprintf(error, error_size,
		 "user %.64s has no absolute home directory for "
		 "mail = maildir:%.256s", user->name, config->mail);
	return -1;
}

int shim_config_mail_path(const struct shim_config *config,
			  const struct shim_passwd_user *user, char *buf,
			  size_t size, char *error, size_t error_size)
{
	const char *p = config->mail, *str;
	size_t pos = 0;
	int ret = 0;

	if (!user_name_safe(user->name)) {
		snprintf(error, error_size,
			 "user name '%.64s' is not safe in a path", user->name);
		return -1;
	}
	if (size == 0)
		return reason_set(error, error_size, "no room for the path");
	buf[0] = '\0';
	if (p[0] == '~') {
		if (home_check(config, user, error, error_size) < 0)
			return -1;
		ret = expand_append(buf, size, &pos, user->home,
				    strlen(user->home));
		p++;
	}
	for (; ret == 0 && *p != '\0'; p++) {
		if (p[0] != '%' || p[1] == '\0') {
			ret = expand_append(buf, size, &pos, p, 1);
			continue;
		}
		p++;
		if (*p == 'h' && home_check(config, user, error,
					    error_size) < 0)
			return -1;
		str = *p == 'u' ? user->name : *p == 'h' ? user->home : "%";
		ret = expand_append(buf, size, &pos, str, strlen(str));
	}
	if (ret < 0) {
		snprintf(error, error_size,
			 "the Maildir path of user %.64s is longer than %zu "
			 "bytes", user->name, size - 1);
		return -1;
	}
	return 0;
}
