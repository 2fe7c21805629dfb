#ifndef POP3_RETENTION_COMPAT_H
#define POP3_RETENTION_COMPAT_H

/* What differs between Dovecot 2.3 and 2.4 at the level of single calls,
   in one place; whole mechanisms that differ (settings: 2.3's plugin {}
   against 2.4's declared settings) have one #if at their use instead.
   configure picks the version from the installed Dovecot's headers
   (DOVECOT_PREREQ), so the same sources build against either. Include
   after lib.h. */

#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list.h"
#include "mail-storage-settings.h"

#if DOVECOT_PREREQ(2, 4, 0)
#  define POP3_RETENTION_DOVECOT24 1
/* pop3_uidl_format's default (mail-storage-settings.c) */
#  define POP3_RETENTION_UIDL_DEFAULT "%{uid | hex(8)}%{uidvalidity | hex(8)}"
/* how the pop3 plugin is listed, for messages */
#  define POP3_RETENTION_MAIL_PLUGINS_HINT \
	"mail_plugins { pop3_retention = yes }"
#else
#  define POP3_RETENTION_MAIL_PLUGINS_HINT \
	"mail_plugins = $mail_plugins pop3_retention"
#  define POP3_RETENTION_UIDL_DEFAULT "%08Xu%08Xv"
/* 2.4's name for 2.3's two-argument str_begins() */
#  ifndef str_begins_with
#    define str_begins_with(haystack, needle) str_begins(haystack, needle)
#  endif
#endif

/* The mail storage settings of the user's INBOX namespace (pop3 works on
   the INBOX only); 2.4 has them per mailbox list, 2.3 per user. */
static inline const struct mail_storage_settings *
pop3_retention_user_mail_set(struct mail_user *user)
{
#ifdef POP3_RETENTION_DOVECOT24
	struct mail_namespace *ns =
		mail_namespace_find_inbox(user->namespaces);

	if (ns == NULL)
		ns = user->namespaces;
	i_assert(ns != NULL);
	return mailbox_list_get_mail_set(ns->list);
#else
	return mail_user_set_get_storage_set(user);
#endif
}

#endif
