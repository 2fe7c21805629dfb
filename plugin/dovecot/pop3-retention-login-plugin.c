/* pop3-login plugin: RFC 2449 EXPIRE in the pre-login CAPA reply.

   Before login the user is unknown, so the value comes from the site-wide
   settings and carries the USER suffix: userdb may override the policy per
   user, and the pop3 plugin announces the user's own value after login.

   Dovecot 2.4: the pop3_retention_* settings are declared
   (pop3-retention-setting-defs.h), so each client looks them up with
   settings_get() on its own event, which carries the protocol and the
   local and remote addresses: protocol pop3 {}, local and remote
   filters apply, per client. The config process has already refused a
   bad value; should a lookup still fail, the client gets no EXPIRE and
   the error is logged.

   Dovecot 2.3, reading plugin {} in a login process: the login settings (client->set
   and pop3-login's "other" settings) have no plugin section, and the
   config process sends each process only the settings of the modules it
   asks for. So init asks the config service itself, as mail-crypt's
   fs_crypt_load_settings() does: master_service_settings_read() with
   module "mail" (the mail_user settings own the plugin {} strlist),
   service "pop3" (so protocol pop3 { plugin {} } applies as in the pop3
   process) and a parser root that knows only "plugin", so every other key
   is ignored. This runs once per process, in init (main_preinit, before
   the chroot and the privilege drop), over a connection of its own to the
   config socket: the connection pop3-login keeps open for its later reads
   is closed by a failed read, and after the chroot it could not be
   reopened. The values needed are copied out at once: the next settings
   read clears that pool. local/remote filters do not apply (there is no
   connection yet); the value is per process, not per client.

   master_service_settings_read() replaces the service's own settings.
   After a successful read that is harmless: pop3-login does the same
   whenever its settings cache misses (local/remote filters), and the
   master settings sent back are the same ones. A failed read, though,
   would leave master_service->set pointing into a cleared pool, so the
   current pool is detached first. It is freed after a successful read and
   deliberately kept for the life of the process after a failed one, when
   master_service->set still points into it. The doveconf fallback is
   disabled: it would exec() over the login process.

   Values are used as written: plugin {} values are %-expanded per user in
   mail processes, and there is no user here. Other options were rejected:
   a private config-socket client would duplicate an internal protocol,
   and reading the config file would miss includes and filters. */

#include "login-common.h"
#include "pop3-retention-compat.h"
#include "array.h"
#include "buffer.h"
#include "module-context.h"
#include "settings-parser.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "client-common.h"

#include "retention-settings.h"
#include "retention-policy.h"

#define CAPA_REPLY_START "+OK\r\nCAPA\r\n"
#define CAPA_REPLY_END "\r\n.\r\n"
#define CAPA_REPLY_END_DOT ".\r\n"

#define POP3_RETENTION_LOGIN_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3_retention_login_module)

struct pop3_retention_login_client {
	union login_client_module_context module_ctx;
	/* "EXPIRE <value> USER\r\n" */
	const char *expire_line;
	size_t expire_line_len;
};

const char *pop3_retention_login_plugin_version = DOVECOT_ABI_VERSION;

static MODULE_CONTEXT_DEFINE_INIT(pop3_retention_login_module,
				  &login_module_register);

/* The EXPIRE line for set into line (at least 64 bytes), or "" when
   nothing is announced. */
static void expire_line_format(const struct retention_settings *set,
			       char *line, size_t size)
{
	struct retention_expire expire;
	char value[32];
	int ret;

	line[0] = '\0';
	if (!set->capa_expire)
		return;
	retention_policy_expire(set, &expire);
	retention_expire_format(&expire, value, sizeof(value));
	ret = i_snprintf(line, size, "EXPIRE %s USER\r\n", value);
	i_assert(ret == 0);
}

#ifdef POP3_RETENTION_DOVECOT24
#include "settings.h"
#include "pop3-retention-setting-defs.h"

/* The client's EXPIRE line (client pool), "" when nothing is announced. */
static const char *client_expire_line(struct client *client)
{
	const struct pop3_retention_dovecot_settings *dset;
	struct retention_settings set;
	char line[64];
	const char *error;
	int ret;

	if (settings_get(client->event, &pop3_retention_setting_parser_info,
			 0, &dset, &error) < 0) {
		e_error(client->event, "pop3-retention: %s - not announcing "
			"EXPIRE before login", error);
		return "";
	}
	ret = pop3_retention_setting_defs_session(dset, &set, &error);
	settings_free(dset);
	if (ret < 0) {
		e_error(client->event, "pop3-retention: %s - not announcing "
			"EXPIRE before login", error);
		return "";
	}
	expire_line_format(&set, line, sizeof(line));
	return p_strdup(client->pool, line);
}

static void expire_line_init(void)
{
}
#else

struct pop3_retention_login_settings {
	ARRAY(const char *) plugin_envs;
};

static const struct setting_define pop3_retention_login_setting_defines[] = {
	{ .type = SET_STRLIST, .key = "plugin",
	  .offset = offsetof(struct pop3_retention_login_settings,
			     plugin_envs) },
	SETTING_DEFINE_LIST_END
};

static const struct pop3_retention_login_settings
pop3_retention_login_default_settings = {
	.plugin_envs = ARRAY_INIT
};

static const struct setting_parser_info
pop3_retention_login_setting_parser_info = {
	.module_name = "pop3-retention-login",
	.defines = pop3_retention_login_setting_defines,
	.defaults = &pop3_retention_login_default_settings,

	.type_offset = SIZE_MAX,
	.struct_size = sizeof(struct pop3_retention_login_settings),

	.parent_offset = SIZE_MAX,
};

/* "EXPIRE <value> USER\r\n", or "" when nothing is announced. */
static char expire_line[64];
/* Kept after a failed settings read, see the top of the file. */
static pool_t detached_set_pool;

static const char *
plugin_env_get(const struct pop3_retention_login_settings *set,
	       const char *key)
{
	const char *const *envs;
	unsigned int i, count;

	if (!array_is_created(&set->plugin_envs))
		return NULL;
	envs = array_get(&set->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strcmp(envs[i], key) == 0)
			return envs[i + 1];
	}
	return NULL;
}

/* Parse the session settings found in the plugin {} strlist into set_r
   (the delivery ones are the service's). Returns 0, or -1 with the error
   (naming the setting and the value) in set_r->error. */
static int
expire_settings_parse(const struct pop3_retention_login_settings *plugin_set,
		      struct retention_settings *set_r)
{
	const struct retention_setting_define *def;
	const char *value;

	retention_settings_init(set_r);
	for (def = retention_setting_defines; def->key != NULL; def++) {
		if (def->scope != RETENTION_SCOPE_SESSION)
			continue;
		value = plugin_env_get(plugin_set, def->key);
		if (value != NULL &&
		    retention_settings_set(set_r, def->key, value) < 0)
			return -1;
	}
	return retention_settings_check(set_r);
}

/* Read the site's EXPIRE settings from the config service. Returns 0, or
   -1 with error_r. */
static int
expire_settings_read(struct retention_settings *set_r, const char **error_r)
{
	static const struct setting_parser_info *set_roots[] = {
		&pop3_retention_login_setting_parser_info,
		NULL
	};
	struct master_service_settings_input input;
	struct master_service_settings_output output;
	const struct pop3_retention_login_settings *plugin_set;
	const char *error;
	pool_t old_pool;

	i_zero(&input);
	input.roots = set_roots;
	input.module = "mail";
	input.service = login_binary->protocol;
	/* A path, not the kept-open fd; see the top of the file. */
	input.config_path = master_service_get_config_path(master_service);
	input.never_exec = TRUE;
	input.no_ssl_ca = TRUE;

	old_pool = master_service_settings_detach(master_service);
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0) {
		detached_set_pool = old_pool;
		*error_r = t_strdup_printf("Couldn't read plugin settings: %s",
					   error);
		return -1;
	}
	pool_unref(&old_pool);

	plugin_set = master_service_settings_get_others(master_service)[0];
	if (expire_settings_parse(plugin_set, set_r) < 0) {
		*error_r = t_strdup(set_r->error);
		return -1;
	}
	return 0;
}

static void expire_line_init(void)
{
	struct retention_settings set;
	const char *error;

	expire_line[0] = '\0';
	if (expire_settings_read(&set, &error) < 0) {
		i_error("pop3-retention: %s - not announcing EXPIRE before "
			"login", error);
		return;
	}
	expire_line_format(&set, expire_line, sizeof(expire_line));
}

/* The same for every client: the settings are the process's. */
static const char *client_expire_line(struct client *client ATTR_UNUSED)
{
	return expire_line;
}
#endif

static bool capa_reply_match(const unsigned char *data, size_t size)
{
	const size_t start_len = strlen(CAPA_REPLY_START);
	const size_t end_len = strlen(CAPA_REPLY_END);

	return size >= start_len + end_len &&
		memcmp(data, CAPA_REPLY_START, start_len) == 0 &&
		memcmp(data + size - end_len, CAPA_REPLY_END, end_len) == 0;
}

static void
pop3_retention_login_send_raw_data(struct client *client,
				   const void *data, size_t size)
{
	struct pop3_retention_login_client *rclient =
		POP3_RETENTION_LOGIN_CONTEXT(client);
	const size_t dot_len = strlen(CAPA_REPLY_END_DOT);
	buffer_t *buf;

	if (!capa_reply_match(data, size)) {
		rclient->module_ctx.super.send_raw_data(client, data, size);
		return;
	}

	/* Rebuilt and sent in one call, as cmd_capa() does: the default
	   send_raw_data treats a short write as a lost connection. */
	T_BEGIN {
		buf = t_buffer_create(size + rclient->expire_line_len);
		buffer_append(buf, data, size - dot_len);
		buffer_append(buf, rclient->expire_line,
			      rclient->expire_line_len);
		buffer_append(buf, CAPA_REPLY_END_DOT, dot_len);
		rclient->module_ctx.super.send_raw_data(client, buf->data,
							 buf->used);
	} T_END;
}

static void pop3_retention_login_client_allocated(struct client *client)
{
	struct pop3_retention_login_client *rclient;
	struct client_vfuncs *v = client->vlast;
	const char *line;

	if (strcmp(login_binary->protocol, "pop3") != 0)
		return;
	line = client_expire_line(client);
	if (line[0] == '\0')
		return;

	rclient = p_new(client->pool, struct pop3_retention_login_client, 1);
	rclient->expire_line = line;
	rclient->expire_line_len = strlen(line);
	rclient->module_ctx.super = *v;
	client->vlast = &rclient->module_ctx.super;
	v->send_raw_data = pop3_retention_login_send_raw_data;
	MODULE_CONTEXT_SET(client, pop3_retention_login_module, rclient);
}

static const struct login_client_hooks pop3_retention_login_client_hooks = {
	.client_allocated = pop3_retention_login_client_allocated,
};

void pop3_retention_login_plugin_init(struct module *module);
void pop3_retention_login_plugin_deinit(void);

void pop3_retention_login_plugin_init(struct module *module)
{
	if (strcmp(login_binary->protocol, "pop3") != 0) {
		i_warning("pop3-retention: The login plugin only works in "
			  "pop3-login, not in %s - ignored",
			  login_binary->process_name);
	} else {
		expire_line_init();
	}
	login_client_hooks_add(module, &pop3_retention_login_client_hooks);
}

void pop3_retention_login_plugin_deinit(void)
{
	login_client_hooks_remove(&pop3_retention_login_client_hooks);
}
