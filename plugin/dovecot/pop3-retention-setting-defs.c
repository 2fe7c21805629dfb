/* Dovecot 2.4: the pop3_retention_* settings declared to Dovecot
   (see pop3-retention-setting-defs.h). */

#include "lib.h"
#include "pop3-retention-setting-defs.h"

#undef DEF
#define DEF(name) \
	SETTING_DEFINE_STRUCT_STR_NOVARS(#name, name, \
		struct pop3_retention_dovecot_settings)

static const struct setting_define pop3_retention_setting_defines[] = {
	DEF(pop3_retention_policy),
	DEF(pop3_retention_keep),
	DEF(pop3_retention_min),
	DEF(pop3_retention_max),
	DEF(pop3_retention_hold),
	DEF(pop3_retention_remove),
	DEF(pop3_retention_visible_since),
	DEF(pop3_retention_top_counts),
	DEF(pop3_retention_dry_run),
	DEF(pop3_retention_capa_expire),
	DEF(pop3_retention_webhook_url),
	DEF(pop3_retention_webhook_secret_file),
	DEF(pop3_retention_webhook_ca_file),
	DEF(pop3_retention_webhook_events),
	DEF(pop3_retention_webhook_allow_private),
	DEF(pop3_retention_webhook_retry_schedule),
	DEF(pop3_retention_webhook_timeout),
	DEF(pop3_retention_webhook_max_in_flight),
	DEF(pop3_retention_webhook_nice),
	SETTING_DEFINE_LIST_END
};

/* The core's defaults, spelled out so that doveconf -a shows them;
   pop3_retention_setting_defs_verify() holds them to the core's. */
static const struct pop3_retention_dovecot_settings
pop3_retention_default_settings = {
	.pop3_retention_policy = "off",
	.pop3_retention_keep = "",
	.pop3_retention_min = "",
	.pop3_retention_max = "",
	.pop3_retention_hold = "no",
	.pop3_retention_remove = "expunge",
	.pop3_retention_visible_since = "",
	.pop3_retention_top_counts = "no",
	.pop3_retention_dry_run = "no",
	.pop3_retention_capa_expire = "yes",
	.pop3_retention_webhook_url = "",
	.pop3_retention_webhook_secret_file = "",
	.pop3_retention_webhook_ca_file = "",
	.pop3_retention_webhook_events = "all",
	.pop3_retention_webhook_allow_private = "no",
	.pop3_retention_webhook_retry_schedule = "0s 5s 5m 30m 2h 5h 10h 10h",
	.pop3_retention_webhook_timeout = "15s",
	.pop3_retention_webhook_max_in_flight = "16",
	.pop3_retention_webhook_nice = "19",
};

static bool pop3_retention_settings_check(void *set, pool_t pool,
					  const char **error_r);

const struct setting_parser_info pop3_retention_setting_parser_info = {
	.name = "pop3_retention",

	.defines = pop3_retention_setting_defines,
	.defaults = &pop3_retention_default_settings,
	.check_func = pop3_retention_settings_check,

	.struct_size = sizeof(struct pop3_retention_dovecot_settings),
	.pool_offset1 = 1 + offsetof(struct pop3_retention_dovecot_settings,
				     pool),
};

static const struct setting_define *setting_define_find(const char *key)
{
	const struct setting_define *def;

	for (def = pop3_retention_setting_defines; def->key != NULL; def++) {
		if (strcmp(def->key, key) == 0)
			return def;
	}
	return NULL;
}

static const char *
setting_value(const struct pop3_retention_dovecot_settings *dset,
	      const struct setting_define *def)
{
	const char *value;

	/* cppcheck-suppress nullPointerRedundantCheck ; every def comes
	   from setting_define_find() and was checked (i_assert panics) */
	value = *(const char *const *)CONST_PTR_OFFSET(dset, def->offset);
	return value == NULL ? "" : value;
}

int pop3_retention_setting_defs_verify(const char **error_r)
{
	const struct retention_setting_define *cdef;
	const struct setting_define *def;
	unsigned int count = 0;

	for (cdef = retention_setting_defines; cdef->key != NULL; cdef++) {
		def = setting_define_find(cdef->key);
		if (def == NULL) {
			*error_r = t_strdup_printf(
				"%s is not declared to Dovecot", cdef->key);
			return -1;
		}
		if (strcmp(setting_value(&pop3_retention_default_settings,
					 def), cdef->default_value) != 0) {
			*error_r = t_strdup_printf(
				"%s: Dovecot's default differs from the "
				"core's '%s'", cdef->key, cdef->default_value);
			return -1;
		}
		count++;
	}
	for (def = pop3_retention_setting_defines; def->key != NULL; def++) {
		if (count-- == 0) {
			*error_r = t_strdup_printf(
				"%s is not a setting of the core", def->key);
			return -1;
		}
	}
	return 0;
}

/* Feed every setting of the wanted scope to set_value(); returns its
   first failure. */
static int
setting_defs_feed(const struct pop3_retention_dovecot_settings *dset,
		  bool session, void *set,
		  int (*set_value)(void *set, const char *key,
				   const char *value))
{
	const struct retention_setting_define *cdef;
	const struct setting_define *def;

	for (cdef = retention_setting_defines; cdef->key != NULL; cdef++) {
		if (session ? !retention_setting_is_for_sessions(cdef) :
			      cdef->scope != RETENTION_SCOPE_DELIVERY)
			continue;
		def = setting_define_find(cdef->key);
		i_assert(def != NULL);
		if (set_value(set, cdef->key, setting_value(dset, def)) < 0)
			return -1;
	}
	return 0;
}

static int session_set_value(void *set, const char *key, const char *value)
{
	return retention_settings_set(set, key, value);
}

static int delivery_set_value(void *set, const char *key, const char *value)
{
	return webhook_settings_set(set, key, value);
}

int pop3_retention_setting_defs_session(
	const struct pop3_retention_dovecot_settings *dset,
	struct retention_settings *set_r, const char **error_r)
{
	retention_settings_init(set_r);
	if (setting_defs_feed(dset, TRUE, set_r, session_set_value) < 0 ||
	    retention_settings_check(set_r) < 0) {
		*error_r = t_strdup(set_r->error);
		return -1;
	}
	return 0;
}

int pop3_retention_setting_defs_delivery(
	const struct pop3_retention_dovecot_settings *dset,
	struct webhook_settings *set_r, const char **error_r)
{
	webhook_settings_init(set_r);
	if (setting_defs_feed(dset, FALSE, set_r, delivery_set_value) < 0) {
		*error_r = t_strdup(set_r->error);
		return -1;
	}
	return 0;
}

/* Every value on its own, with the core's grammar. The combination
   (e.g. the keep policy needs pop3_retention_keep) is checked per user
   at login, where userdb fields may still complete it. */
static bool pop3_retention_settings_check(void *_set, pool_t pool ATTR_UNUSED,
					  const char **error_r)
{
	const struct pop3_retention_dovecot_settings *dset = _set;
	struct retention_settings *set = t_new(struct retention_settings, 1);
	struct webhook_settings *wset = t_new(struct webhook_settings, 1);
	const char *error;

	if (pop3_retention_setting_defs_verify(&error) < 0) {
		*error_r = t_strdup_printf("BUG: pop3_retention: %s", error);
		return FALSE;
	}
	retention_settings_init(set);
	if (setting_defs_feed(dset, TRUE, set, session_set_value) < 0) {
		*error_r = t_strdup(set->error);
		return FALSE;
	}
	if (pop3_retention_setting_defs_delivery(dset, wset, error_r) < 0)
		return FALSE;
	return TRUE;
}
