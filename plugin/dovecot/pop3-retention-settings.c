/* The user's retention settings with userdb overrides: plugin {} on
   Dovecot 2.3, the declared pop3_retention_* settings on 2.4. */

#include "lib.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list.h"
#include "mail-storage-settings.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-common.h"
#include "pop3-retention-events.h"
#include "pop3-retention-protocol.h"

struct event_category event_category_pop3_retention = {
	.name = "pop3-retention",
};

struct pop3_retention_user_module pop3_retention_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);

#ifdef POP3_RETENTION_DOVECOT24
#include "settings.h"
#include "pop3-retention-setting-defs.h"

int pop3_retention_settings_load(struct mail_user *user,
				 struct retention_settings *set_r,
				 const char **error_r)
{
	const struct pop3_retention_dovecot_settings *dset;
	int ret;

	/* the user's event: userdb fields and the protocol, local and
	   remote filters apply */
	if (settings_get(user->event, &pop3_retention_setting_parser_info, 0,
			 &dset, error_r) < 0)
		return -1;
	ret = pop3_retention_setting_defs_session(dset, set_r, error_r);
	settings_free(dset);
	return ret;
}
#else
int pop3_retention_settings_load(struct mail_user *user,
				 struct retention_settings *set_r,
				 const char **error_r)
{
	const struct retention_setting_define *def;
	const char *value;

	retention_settings_init(set_r);
	for (def = retention_setting_defines; def->key != NULL; def++) {
		/* the delivery settings are the service's (it validates
		   them at its start, and refuses to start over a bad one) */
		if (!retention_setting_is_for_sessions(def))
			continue;
		value = mail_user_plugin_getenv(user, def->key);
		if (value == NULL)
			continue;
		if (retention_settings_set(set_r, def->key, value) < 0) {
			*error_r = t_strdup(set_r->error);
			return -1;
		}
	}
	if (retention_settings_check(set_r) < 0) {
		*error_r = t_strdup(set_r->error);
		return -1;
	}
	return 0;
}
#endif

bool pop3_retention_settings_passive(const struct retention_settings *set)
{
	return set->policy == RETENTION_POLICY_OFF && set->min_secs == 0 &&
	       set->max_secs == 0 && !set->hold && set->visible_since == 0;
}

const char *pop3_retention_user_outbox_dir(struct mail_user *user)
{
	struct mail_namespace *ns;
	const char *index_root;

	ns = mail_namespace_find_inbox(user->namespaces);
	if (ns == NULL)
		return NULL;
	index_root = mailbox_list_get_root_forced(ns->list,
						  MAILBOX_LIST_PATH_TYPE_INDEX);
	return t_strconcat(index_root, "/", POP3_RETENTION_OUTBOX_DIR, NULL);
}

struct pop3_retention_events *
pop3_retention_user_events(struct mail_user *user,
			   struct pop3_retention_user *puser)
{
	const char *drop_dir, *outbox_dir;

	if (puser->events != NULL || !puser->set.webhooks)
		return puser->events;
	outbox_dir = pop3_retention_user_outbox_dir(user);
	if (outbox_dir == NULL)
		return NULL;
	drop_dir = t_strconcat(user->set->base_dir, "/",
			       POP3_RETENTION_DROP_DIR, NULL);
	puser->events = pop3_retention_events_init(puser->event, drop_dir,
						   outbox_dir);
	return puser->events;
}

void pop3_retention_user_events_deinit(struct pop3_retention_user *puser)
{
	pop3_retention_events_deinit(&puser->events);
}

static void pop3_retention_user_deinit(struct mail_user *user)
{
	struct pop3_retention_user *puser = POP3_RETENTION_USER_CONTEXT(user);

	pop3_retention_user_events_deinit(puser);
	event_unref(&puser->event);
	puser->module_ctx.super.deinit(user);
}

struct pop3_retention_user *pop3_retention_user_init(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct pop3_retention_user *puser;
	const char *error;

	puser = p_new(user->pool, struct pop3_retention_user, 1);
	puser->event = event_create(user->event);
	event_add_category(puser->event, &event_category_pop3_retention);
	event_set_append_log_prefix(puser->event, "pop3-retention: ");
	if (pop3_retention_settings_load(user, &puser->set, &error) < 0) {
		/* fail the login: nothing may be decided under settings
		   that did not parse */
		e_error(puser->event, "Invalid setting, login refused: %s",
			error);
		user->error = p_strdup_printf(user->pool, "pop3-retention: %s",
					      error);
		event_unref(&puser->event);
		return NULL;
	}
	puser->passive = pop3_retention_settings_passive(&puser->set);
	puser->module_ctx.super = *v;
	user->vlast = &puser->module_ctx.super;
	v->deinit = pop3_retention_user_deinit;
	MODULE_CONTEXT_SET(user, pop3_retention_user_module, puser);
	return puser;
}
