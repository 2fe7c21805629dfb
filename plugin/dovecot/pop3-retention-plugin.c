/* Glue: ABI symbols, hook registration, init/deinit. */

#include "lib.h"
#include "module-dir.h"
#include "master-service.h"
#include "mail-storage-hooks.h"
#include "mail-user.h"
#include "pop3-common.h"
#include "pop3-client.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-capa.h"
#include "pop3-retention-common.h"
#include "pop3-retention-plugin.h"

#include "retention-policy.h"

#include <dlfcn.h>

const char *pop3_retention_plugin_version = DOVECOT_ABI_VERSION;

typedef pop3_client_created_func_t *
pop3_client_created_hook_set_func_t(pop3_client_created_func_t *new_hook);

static struct module *pop3_retention_module;
static struct client **pop3_clients_ptr;
static pop3_client_created_hook_set_func_t *hook_set;
static pop3_client_created_func_t *next_hook_client_created;

struct client *pop3_retention_pop3_clients(void)
{
	return pop3_clients_ptr == NULL ? NULL : *pop3_clients_ptr;
}

static void pop3_retention_mail_user_created(struct mail_user *user)
{
	/* a bad setting sets user->error: the login fails and nothing
	   is removed */
	(void)pop3_retention_user_init(user);
}

static void pop3_retention_client_created(struct client **_client)
{
	struct client *client = *_client;
	struct pop3_retention_user *puser;

	if (mail_user_is_plugin_loaded(client->user, pop3_retention_module) &&
	    (puser = POP3_RETENTION_USER_CONTEXT(client->user)) != NULL &&
	    puser->set.capa_expire && !puser->passive) {
		struct retention_expire expire;
		char value[32];

		retention_policy_expire(&puser->set, &expire);
		retention_expire_format(&expire, value, sizeof(value));
		pop3_retention_capa_install(client, value);
	}
	if (next_hook_client_created != NULL)
		next_hook_client_created(_client);
}

static struct mail_storage_hooks pop3_retention_mail_storage_hooks = {
	.mail_user_created = pop3_retention_mail_user_created,
	.mailbox_allocated = pop3_retention_storage_mailbox_allocated,
	.mail_allocated = pop3_retention_storage_mail_allocated,
};

void pop3_retention_plugin_init(struct module *module)
{
	const char *name = master_service_get_name(master_service);

	pop3_retention_module = module;
	hook_set = (pop3_client_created_hook_set_func_t *)
		dlsym(RTLD_DEFAULT, "pop3_client_created_hook_set");
	pop3_clients_ptr = dlsym(RTLD_DEFAULT, "pop3_clients");
	if (strcmp(name, "pop3") != 0 || hook_set == NULL ||
	    pop3_clients_ptr == NULL) {
		/* listed in the global mail_plugins: stay inert rather than
		   take imap, lmtp or doveadm down */
		i_error("pop3_retention: this plugin works only in the pop3 "
			"process, not in %s: it does nothing here. List it "
			"only in protocol pop3 { %s }", name,
			POP3_RETENTION_MAIL_PLUGINS_HINT);
		hook_set = NULL;
		pop3_clients_ptr = NULL;
		return;
	}
	mail_storage_hooks_add(module, &pop3_retention_mail_storage_hooks);
	next_hook_client_created = hook_set(pop3_retention_client_created);
}

void pop3_retention_plugin_deinit(void)
{
	if (hook_set == NULL)
		return;
	(void)hook_set(next_hook_client_created);
	mail_storage_hooks_remove(&pop3_retention_mail_storage_hooks);
}
