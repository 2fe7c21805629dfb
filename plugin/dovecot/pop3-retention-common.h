#ifndef POP3_RETENTION_COMMON_H
#define POP3_RETENTION_COMMON_H

/* Shared by the pop3 plugin and the doveadm plugin. */

#include "module-context.h"
#include "mail-user.h"

#include "retention-settings.h"

/* Hides a message that the client DELEd but hold/floor/keep retain. A
   keyword survives index rebuilds and is replicated by dsync. */
#define POP3_RETENTION_RETAINED_KEYWORD "$POP3Retained"
/* Index extension record: the first complete retrieval, 32-bit Unix
   time; 0 or absent = none recorded. */
#define POP3_RETENTION_EXT_NAME "pop3-retention"

struct pop3_retention_events;

struct pop3_retention_user {
	union mail_user_module_context module_ctx;
	struct retention_settings set;
	struct event *event;
	/* webhook hand-off, created at the first event (NULL: none yet) */
	struct pop3_retention_events *events;
	/* policy off and no floor/ceiling/hold/visible_since: observe
	   downloads only, never change what pop3 lists, removes or says */
	bool passive;
};

#define POP3_RETENTION_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3_retention_user_module)
extern MODULE_CONTEXT_DEFINE(pop3_retention_user_module,
			     &mail_user_module_register);

extern struct event_category event_category_pop3_retention;

/* Read every pop3_retention_* setting of the user (2.3: plugin {}, 2.4:
   the declared settings; userdb fields override) into set_r and validate the combination. Returns 0, or -1
   with an error naming the setting and the value. */
int pop3_retention_settings_load(struct mail_user *user,
				 struct retention_settings *set_r,
				 const char **error_r);

/* Nothing to enforce (see struct pop3_retention_user). */
bool pop3_retention_settings_passive(const struct retention_settings *set);

/* The user's outbox directory (POP3_RETENTION_OUTBOX_DIR under the
   INBOX namespace's index root; data stack), NULL without an INBOX
   namespace. */
const char *pop3_retention_user_outbox_dir(struct mail_user *user);

/* The user's event hand-off to the pop3-retention service, created on
   first use; NULL when no webhook URL is configured. Freed by
   pop3_retention_user_events_deinit(). */
struct pop3_retention_events *
pop3_retention_user_events(struct mail_user *user,
			   struct pop3_retention_user *puser);
/* Wait (bounded) for the service's acknowledgements and free the hand-off;
   what is left goes to the user's outbox. */
void pop3_retention_user_events_deinit(struct pop3_retention_user *puser);

/* Create the user's context: settings, event. On a bad setting sets
   user->error (the login fails) and logs the setting and value.
   Returns the context or NULL. */
struct pop3_retention_user *pop3_retention_user_init(struct mail_user *user);

#endif
