#ifndef POP3_RETENTION_MAILBOX_H
#define POP3_RETENTION_MAILBOX_H

/* The Dovecot host of the core over one mailbox: it reads each message's
   facts (received date, first retrieval from the index extension, the
   retained keyword), and carries out the core's plans inside a mailbox
   transaction the caller owns. Used by the pop3 plugin (session begin,
   RETR, QUIT) and by doveadm (status, sweep). */

#include "retention-hooks.h"

struct mailbox;
struct mailbox_transaction_context;
struct mail;
struct pop3_retention_user;

struct pop3_retention_mbox;

struct pop3_retention_mbox_params {
	const char *session_id;
	const char *remote_ip;
	/* pop3_delete_type=flag: removals add this keyword instead of
	   expunging (NULL: expunge or move) */
	const char *deleted_flag;
	/* pop3_uidl_format, for logs and events */
	const char *uidl_format;
};

/* Create the host for an opened mailbox. Returns NULL and error_r on a
   failure (the caller then changes nothing). */
struct pop3_retention_mbox *
pop3_retention_mbox_init(struct mailbox *box, struct pop3_retention_user *puser,
			 const struct pop3_retention_mbox_params *params,
			 const char **error_r);
void pop3_retention_mbox_deinit(struct pop3_retention_mbox **mbox);

/* Read every message's facts through trans and add them to the core
   session, in UID order. Returns 0, or -1 with error_r. */
int pop3_retention_mbox_load(struct pop3_retention_mbox *mbox,
			     struct mailbox_transaction_context *trans,
			     const char **error_r);

/* The core session (valid after load). */
struct retention_session *
pop3_retention_mbox_session(struct pop3_retention_mbox *mbox);

/* Apply a plan through trans (removals, retains). Frees its own mail
   before returning, so the caller may commit trans right after. The
   core session holds the plan's events until _release_events().
   Returns the number of failed entries. */
unsigned int pop3_retention_mbox_apply(struct pop3_retention_mbox *mbox,
				       struct mailbox_transaction_context *trans,
				       const struct retention_plan *plan);

/* Right before the caller commits the transaction passed to _apply():
   the plan's events are recorded as pending in the user's outbox
   directory (pop3-retention-pending.h), so that a kill between the
   commit and _release_events() loses none. */
void pop3_retention_mbox_prepare_commit(struct pop3_retention_mbox *mbox);

/* After _load(), before any plan is applied: reconcile the pending
   records that earlier sessions of the user left (killed between
   their commit and the hand-off) against the mailbox as loaded through
   trans: hand over the events whose change happened, drop the others,
   delete the records. Only a pop3 session calls it: doveadm does not
   see pop3_delete_type = flag, which keeps removed messages. */
void
pop3_retention_mbox_reconcile_pending(struct pop3_retention_mbox *mbox,
				      struct mailbox_transaction_context *trans);

/* The caller's transaction passed to _apply() is committed or rolled
   back: retention_session_commit_done() hands the held events to the
   delivery service (committed) or drops them, with a debug line (not
   committed). Call after every commit/rollback of such a
   transaction. */
void pop3_retention_mbox_release_events(struct pop3_retention_mbox *mbox,
					bool committed);

/* Whether events are built (a webhook URL is configured): only then is
   a message's Message-ID needed. */
bool pop3_retention_mbox_has_events(const struct pop3_retention_mbox *mbox);

/* The session's event (its log lines' prefix and filters). */
struct event *pop3_retention_mbox_event(struct pop3_retention_mbox *mbox);

/* A complete download of mail (in pop3's transaction). message_id_known:
   the caller read the message's first Message-ID header already
   (message_id, NULL if there is none), so that the event does not look
   it up through the mail. */
void pop3_retention_mbox_retrieved(struct pop3_retention_mbox *mbox,
				   struct mail *mail, bool is_top,
				   bool message_id_known,
				   const char *message_id);

/* Index of uid in the session, or -1. O(log n). */
int pop3_retention_mbox_find(const struct pop3_retention_mbox *mbox,
			     uint32_t uid);

/* The UID of session index idx. */
uint32_t pop3_retention_mbox_uid(const struct pop3_retention_mbox *mbox,
				 unsigned int idx);

/* The POP3 UIDL of mail (a mail of this mailbox): the backend's
   (pop3-uidl header, migrated UIDLs), else the uidl_format given at init.
   The string is valid until the next call for this mbox or the end of
   the current data stack frame. */
const char *pop3_retention_mbox_uidl(struct pop3_retention_mbox *mbox,
				     struct mail *mail);

/* Our own expunges are in progress: a storage override that defers
   pop3's expunges must let these through. */
bool pop3_retention_mbox_in_action(const struct pop3_retention_mbox *mbox);

/* Session indexes whose remove/retain failed in the last apply. */
const unsigned int *
pop3_retention_mbox_failed(const struct pop3_retention_mbox *mbox,
			   unsigned int *count_r);

#endif
