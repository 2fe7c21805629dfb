/* The Dovecot host of the core over one mailbox (see the header). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "byteorder.h"
#include "hex-binary.h"
#include "var-expand.h"
#include "mail-index.h"
#include "mail-storage-private.h"
#include "mail-search-build.h"
#include "mail-user.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-common.h"
#include "pop3-retention-mailbox.h"
#include "pop3-retention-events.h"
#include "pop3-retention-pending.h"
#include "pop3-retention-protocol.h"

struct pop3_retention_mbox {
	pool_t pool;
	struct mailbox *box;
	struct pop3_retention_user *puser;
	struct event *event;
	struct retention_session *session;
	const char *uidl_format;
	/* uidl_format is Dovecot's default (POP3_RETENTION_UIDL_DEFAULT):
	   formatted without var_expand() (mbox_uidl()) */
	bool uidl_default;
	/* what uidl_format asks for besides the UID and UIDVALIDITY */
	bool uidl_md5, uidl_filename, uidl_guid;

	/* session index -> UID, ascending */
	ARRAY_TYPE(uint32_t) uids;
	uint32_t ext_id;

	/* where the current actions go */
	struct mailbox_transaction_context *trans;
	struct mail *mail;
	/* the mail being retrieved, reused for its own lookups */
	struct mail *cur_mail;
	/* cur_mail's Message-ID, read by the caller (see _retrieved()) */
	const char *cur_message_id;
	bool cur_message_id_known;

	struct mail_keywords *retained_kw;
	struct mail_keywords *deleted_kw;
	struct mailbox *move_box;

	string_t *uidl;
	/* pop3_retention_host_template, without events when no webhook
	   URL is configured (then nothing is built for them) */
	struct retention_host host;
	/* session indexes whose action failed in the last apply */
	ARRAY(unsigned int) failed;
	/* the pending record of the events of the commit in progress
	   (pop3-retention-pending.h) */
	struct pop3_retention_pending *pending;
	bool pending_failed;
	bool in_action;
	/* inside _retrieved(): state goes to a transaction of its own */
	bool retrieving;
};

static struct mail *mbox_mail(struct pop3_retention_mbox *mbox,
			      unsigned int idx)
{
	uint32_t uid = pop3_retention_mbox_uid(mbox, idx);

	if (mbox->cur_mail != NULL && mbox->cur_mail->uid == uid)
		return mbox->cur_mail;
	if (mbox->mail == NULL) {
		i_assert(mbox->trans != NULL);
		mbox->mail = mail_alloc(mbox->trans, MAIL_FETCH_VIRTUAL_SIZE,
					NULL);
	}
	if (!mail_set_uid(mbox->mail, uid))
		return NULL;
	return mbox->mail;
}

/* var_expand()'s %08X of a 32-bit number: eight hex digits, lower-case
   (its "%llx") */
static void str_append_hex32(string_t *dest, uint32_t value)
{
	unsigned char be[4];

	cpu32_to_be_unaligned(value, be);
	binary_to_hex_append(dest, be, sizeof(be));
}

/* The message's UIDL as pop3 computes it (pop3-commands.c): the
   backend's own, else pop3_uidl_format expanded. */
static const char *mbox_uidl(struct pop3_retention_mbox *mbox,
			     struct mail *mail)
{
	const char *backend, *md5 = "", *filename = "", *guid = "", *error;
	uint32_t uid_validity = mbox->box->index->map == NULL ? 0 :
		mail_index_get_header(mail->box->view)->uid_validity;

	if (mail_get_special(mail, MAIL_FETCH_UIDL_BACKEND, &backend) == 0 &&
	    *backend != '\0')
		return backend;
	str_truncate(mbox->uidl, 0);
	if (mbox->uidl_default) {
		/* without var_expand(): a tenth of the instructions */
		str_append_hex32(mbox->uidl, mail->uid);
		str_append_hex32(mbox->uidl, uid_validity);
		return str_c(mbox->uidl);
	}
	/* look up only what the format asks for, as pop3 does */
	if (mbox->uidl_md5)
		(void)mail_get_special(mail, MAIL_FETCH_HEADER_MD5, &md5);
	if (mbox->uidl_filename)
		(void)mail_get_special(mail, MAIL_FETCH_STORAGE_ID, &filename);
	if (mbox->uidl_guid)
		(void)mail_get_special(mail, MAIL_FETCH_GUID, &guid);

#ifdef POP3_RETENTION_DOVECOT24
	const struct var_expand_table tab[] = {
		{ .key = "uidvalidity", .value = dec2str(uid_validity) },
		{ .key = "uid", .value = dec2str(mail->uid) },
		{ .key = "md5", .value = md5 },
		{ .key = "filename", .value = filename },
		{ .key = "guid", .value = guid },
		VAR_EXPAND_TABLE_END
	};
	const struct var_expand_params params = { .table = tab };

	if (var_expand(mbox->uidl, mbox->uidl_format, &params, &error) < 0)
		return dec2str(mail->uid);
#else
	const struct var_expand_table tab[] = {
		{ 'v', dec2str(uid_validity), "uidvalidity" },
		{ 'u', dec2str(mail->uid), "uid" },
		{ 'm', md5, "md5" },
		{ 'f', filename, "filename" },
		{ 'g', guid, "guid" },
		{ '\0', NULL, NULL }
	};

	if (var_expand(mbox->uidl, mbox->uidl_format, tab, &error) <= 0)
		return dec2str(mail->uid);
#endif
	return str_c(mbox->uidl);
}

static int pr_message_info(void *context, unsigned int idx,
			   struct retention_message_info *info_r)
{
	struct pop3_retention_mbox *mbox = context;
	struct mail *mail = mbox_mail(mbox, idx);
	const char *message_id;
	uoff_t size;

	i_zero(info_r);
	if (mail == NULL)
		return -1;
	info_r->uid = mail->uid;
	info_r->uidl = t_strdup(mbox_uidl(mbox, mail));
	if (mail_get_virtual_size(mail, &size) == 0)
		info_r->size = size;
	/* for the event body only: a header lookup costs a cache write,
	   so the download's own stream is used when the caller read it */
	if (mbox->host.event == NULL)
		;
	else if (mail == mbox->cur_mail && mbox->cur_message_id_known)
		info_r->message_id = t_strdup(mbox->cur_message_id);
	else if (mail_get_first_header(mail, "Message-ID", &message_id) > 0)
		info_r->message_id = t_strdup(message_id);
	return 0;
}

static int mbox_open_move_box(struct pop3_retention_mbox *mbox,
			      const char **error_r)
{
	const char *name = mbox->puser->set.remove.mailbox;
	enum mail_error error;
	struct mail_namespace *ns;

	if (mbox->move_box != NULL)
		return 0;
	ns = mail_namespace_find(mbox->box->storage->user->namespaces, name);
	mbox->move_box = mailbox_alloc(ns->list, name, 0);
	if (mailbox_open(mbox->move_box) < 0) {
		(void)mailbox_get_last_error(mbox->move_box, &error);
		if (error != MAIL_ERROR_NOTFOUND ||
		    (mailbox_create(mbox->move_box, NULL, FALSE) < 0 &&
		     mailbox_get_last_mail_error(mbox->move_box) !=
			     MAIL_ERROR_EXISTS) ||
		    mailbox_open(mbox->move_box) < 0) {
			*error_r = t_strdup_printf(
				"Can't open %s: %s", name,
				mailbox_get_last_internal_error(mbox->move_box,
								NULL));
			mailbox_free(&mbox->move_box);
			return -1;
		}
	}
	return 0;
}

/* Copy into the move: mailbox, committed at once, before the expunge: a
   failure after the copy leaves two copies, never none. */
static int mbox_copy_to_move_box(struct pop3_retention_mbox *mbox,
				 struct mail *mail, const char **error_r)
{
	struct mailbox_transaction_context *t;
	struct mail_save_context *save_ctx;

	if (mbox_open_move_box(mbox, error_r) < 0)
		return -1;
	t = mailbox_transaction_begin(mbox->move_box,
				      MAILBOX_TRANSACTION_FLAG_EXTERNAL,
				      "pop3-retention move");
	save_ctx = mailbox_save_alloc(t);
	if (mailbox_copy(&save_ctx, mail) < 0) {
		*error_r = t_strdup_printf(
			"Copy to %s failed: %s", mailbox_get_vname(mbox->move_box),
			mailbox_get_last_internal_error(mbox->move_box, NULL));
		mailbox_transaction_rollback(&t);
		return -1;
	}
	if (mailbox_transaction_commit(&t) < 0) {
		*error_r = t_strdup_printf(
			"Commit to %s failed: %s",
			mailbox_get_vname(mbox->move_box),
			mailbox_get_last_internal_error(mbox->move_box, NULL));
		return -1;
	}
	return 0;
}

static int pr_message_remove(void *context, unsigned int idx,
			     const char **error_r)
{
	struct pop3_retention_mbox *mbox = context;
	struct mail *mail = mbox_mail(mbox, idx);

	if (mail == NULL) {
		*error_r = "message already expunged";
		array_push_back(&mbox->failed, &idx);
		return -1;
	}
	if (mbox->deleted_kw != NULL) {
		/* pop3_delete_type=flag: pop3 itself never expunges */
		mail_update_keywords(mail, MODIFY_ADD, mbox->deleted_kw);
		return 0;
	}
	if (mbox->puser->set.remove.kind == RETENTION_REMOVE_MOVE &&
	    mbox_copy_to_move_box(mbox, mail, error_r) < 0) {
		array_push_back(&mbox->failed, &idx);
		return -1;
	}
	mbox->in_action = TRUE;
	mail_expunge(mail);
	mbox->in_action = FALSE;
	return 0;
}

static int pr_message_retain(void *context, unsigned int idx,
			     const char **error_r)
{
	struct pop3_retention_mbox *mbox = context;
	struct mail *mail = mbox_mail(mbox, idx);

	if (mail == NULL) {
		*error_r = "message already expunged";
		array_push_back(&mbox->failed, &idx);
		return -1;
	}
	if (mbox->retained_kw == NULL) {
		/* created on first use: until a message is retained the
		   keyword does not exist, and session begin skips the
		   per-message keyword lookups */
		const char *retained[] = {
			POP3_RETENTION_RETAINED_KEYWORD, NULL };

		if (mailbox_keywords_create(mbox->box, retained,
					    &mbox->retained_kw) < 0) {
			*error_r = t_strdup_printf(
				"Can't create keyword: %s",
				mailbox_get_last_internal_error(mbox->box,
								NULL));
			array_push_back(&mbox->failed, &idx);
			return -1;
		}
	}
	mail_update_keywords(mail, MODIFY_ADD, mbox->retained_kw);
	return 0;
}

/* The first retrieval of a download, in a transaction of its own that
   is committed at once: recording a fact removes nothing, so it does not
   wait for QUIT, and a pop3 process killed right after the download
   leaves the same state as one that disconnects (the message.retrieved
   event, emitted after this, then agrees with the next session). */
static int state_write_committed(struct pop3_retention_mbox *mbox,
				 uint32_t uid, uint32_t value,
				 const char **error_r)
{
	struct mailbox_transaction_context *t;
	uint32_t seq;

	t = mailbox_transaction_begin(mbox->box, 0,
				      "pop3-retention retrieved");
	if (!mail_index_lookup_seq(t->view, uid, &seq)) {
		mailbox_transaction_rollback(&t);
		*error_r = "message not in the mailbox's view";
		return -1;
	}
	mail_index_update_ext(t->itrans, seq, mbox->ext_id, &value, NULL);
	if (mailbox_transaction_commit(&t) < 0) {
		*error_r = t_strdup_printf(
			"commit failed: %s",
			mailbox_get_last_internal_error(mbox->box, NULL));
		return -1;
	}
	return 0;
}

static int pr_state_write(void *context, unsigned int idx,
			  time_t first_retrieved_at, const char **error_r)
{
	struct pop3_retention_mbox *mbox = context;
	uint32_t uid = pop3_retention_mbox_uid(mbox, idx), seq;
	uint32_t value = (uint32_t)first_retrieved_at;

	if (mbox->retrieving) {
		if (state_write_committed(mbox, uid, value, error_r) < 0) {
			e_warning(mbox->event, "uid=%u: first retrieval not "
				  "recorded: %s (removal under keep is "
				  "delayed)", uid, *error_r);
			return -1;
		}
		return 0;
	}
	if (mbox->trans == NULL ||
	    !mail_index_lookup_seq(mbox->trans->view, uid, &seq)) {
		*error_r = "message not in the transaction's view";
		e_warning(mbox->event, "uid=%u: first retrieval not recorded: "
			  "%s (removal under keep is delayed)", uid, *error_r);
		return -1;
	}
	mail_index_update_ext(mbox->trans->itrans, seq, mbox->ext_id, &value,
			      NULL);
	return 0;
}

/* Whether a debug event created from parent now could be logged or
   sent: event_want_debug() of such a child is true only through what it
   inherits from parent (forced debug, the minimum log level) or through
   a global filter. Asked before creating the child, it spares creating
   one for every event when debugging is off, and keeps every filter
   working, those on the child's name and fields included. */
static bool debug_event_possible(struct event *parent)
{
	return event_get_global_debug_log_filter() != NULL ||
		event_get_global_debug_send_filter() != NULL ||
		event_get_global_core_log_filter() != NULL ||
		event_want_debug(parent);
}

static void pr_event(void *context, const struct retention_event *event)
{
	struct pop3_retention_mbox *mbox = context;
	struct mail_user *user = mbox->box->storage->user;
	struct pop3_retention_events *events;
	int64_t created_ms = (int64_t)event->timestamp * 1000;
	string_t *fields = t_str_new(256);

	pop3_retention_event_encode(fields, event);
	if (debug_event_possible(mbox->event)) {
		e_debug(event_create_passthrough(mbox->event)->
			set_name("pop3_retention_event")->
			add_str("type", retention_event_type_name(event->type))->
			event(), "event %s", str_c(fields));
	}
	events = pop3_retention_user_events(user, mbox->puser);
	if (events != NULL)
		pop3_retention_events_send(events, created_ms, str_c(fields));
}

/* Before the commit: the event goes to the pending record, so that a
   kill between the commit and the hand-off loses nothing. */
static void pr_event_pending(void *context,
			     const struct retention_event *event)
{
	struct pop3_retention_mbox *mbox = context;
	string_t *fields = t_str_new(256);
	const char *dir, *error;

	if (mbox->pending_failed)
		return;
	if (mbox->pending == NULL) {
		dir = pop3_retention_user_outbox_dir(
			mbox->box->storage->user);
		if (dir == NULL)
			error = "the user has no INBOX namespace";
		else {
			dir = t_strconcat(dir, "/",
					  POP3_RETENTION_PENDING_DIR, NULL);
			mbox->pending = pop3_retention_pending_create(dir,
								      &error);
		}
		if (mbox->pending == NULL) {
			e_error(mbox->event, "Can't record the events of this "
				"commit as pending (a crash right after the "
				"commit would lose them): %s", error);
			mbox->pending_failed = TRUE;
			return;
		}
	}
	pop3_retention_event_encode(fields, event);
	if (pop3_retention_pending_append(mbox->pending,
					  (int64_t)event->timestamp * 1000,
					  str_c(fields), &error) < 0) {
		e_error(mbox->event, "Can't record an event as pending (a "
			"crash right after the commit would lose it): %s",
			error);
		mbox->pending_failed = TRUE;
	}
}

static void pr_events_settled(void *context, bool committed ATTR_UNUSED)
{
	struct pop3_retention_mbox *mbox = context;

	pop3_retention_pending_settle(&mbox->pending, mbox->event);
	mbox->pending_failed = FALSE;
}

void pop3_retention_mbox_prepare_commit(struct pop3_retention_mbox *mbox)
{
	T_BEGIN {
		(void)retention_session_commit_prepare(mbox->session);
	} T_END;
}

void pop3_retention_mbox_release_events(struct pop3_retention_mbox *mbox,
					bool committed)
{
	unsigned int count;

	T_BEGIN {
		count = retention_session_commit_done(mbox->session,
						      committed);
	} T_END;
	if (!committed && count > 0) {
		e_debug(mbox->event, "%u event(s) dropped: their changes "
			"were not committed", count);
	}
}

static const char *audit_event_name(const struct retention_audit *audit)
{
	if (audit->failed)
		return "pop3_retention_failed";
	switch (audit->decision->action) {
	case RETENTION_ACTION_REMOVE:
		return "pop3_retention_removed";
	case RETENTION_ACTION_RETAIN:
		return "pop3_retention_retained";
	case RETENTION_ACTION_HIDE:
		return "pop3_retention_hidden";
	case RETENTION_ACTION_KEEP:
		break;
	}
	return "pop3_retention_kept";
}

static void pr_audit(void *context, const struct retention_audit *audit)
{
	struct pop3_retention_mbox *mbox = context;
	struct event_passthrough *e;
	const char *user = mbox->box->storage->user->username;

	e = event_create_passthrough(mbox->event)->
		set_name(audit_event_name(audit))->
		add_str("user", user)->
		add_int("uid", audit->info->uid)->
		add_str("uidl", audit->info->uidl)->
		add_str("action", retention_action_name(
					  audit->decision->action))->
		add_str("reason", retention_reason_name(
					  audit->decision->reason))->
		add_str("dry_run", audit->dry_run ? "yes" : "no");
	if (audit->failed)
		e_error(e->event(), "user=%s %s", user, audit->line);
	else
		e_info(e->event(), "user=%s %s", user, audit->line);
}

static const struct retention_host pop3_retention_host_template = {
	.message_info = pr_message_info,
	.message_remove = pr_message_remove,
	.message_retain = pr_message_retain,
	.state_write = pr_state_write,
	.event = pr_event,
	.event_pending = pr_event_pending,
	.events_settled = pr_events_settled,
	.audit = pr_audit,
};

struct pop3_retention_mbox *
pop3_retention_mbox_init(struct mailbox *box, struct pop3_retention_user *puser,
			 const struct pop3_retention_mbox_params *params,
			 const char **error_r)
{
	struct pop3_retention_mbox *mbox;
	struct retention_session_info info;
	struct mailbox_status status;
	const char *deleted[2] = { params->deleted_flag, NULL };
	pool_t pool;

	pool = pool_alloconly_create("pop3-retention mailbox", 1024);
	mbox = p_new(pool, struct pop3_retention_mbox, 1);
	mbox->pool = pool;
	mbox->box = box;
	mbox->puser = puser;
	mbox->event = event_create(puser->event);
	mbox->uidl_format = p_strdup(pool, params->uidl_format != NULL ?
					   params->uidl_format :
					   POP3_RETENTION_UIDL_DEFAULT);
	mbox->uidl_default = strcmp(mbox->uidl_format,
				    POP3_RETENTION_UIDL_DEFAULT) == 0;
	mbox->uidl_md5 = strstr(mbox->uidl_format, "%m") != NULL ||
		strstr(mbox->uidl_format, "md5") != NULL;
	mbox->uidl_filename = strstr(mbox->uidl_format, "%f") != NULL ||
		strstr(mbox->uidl_format, "filename") != NULL;
	mbox->uidl_guid = strstr(mbox->uidl_format, "%g") != NULL ||
		strstr(mbox->uidl_format, "guid") != NULL;
	mbox->uidl = str_new(pool, 128);
	p_array_init(&mbox->uids, pool, 64);
	p_array_init(&mbox->failed, pool, 4);

	if (params->deleted_flag != NULL &&
	    mailbox_keywords_create(box, deleted, &mbox->deleted_kw) < 0) {
		*error_r = t_strdup_printf(
			"Can't create keywords: %s",
			mailbox_get_last_internal_error(box, NULL));
		pop3_retention_mbox_deinit(&mbox);
		return NULL;
	}
	mbox->ext_id = mail_index_ext_register(box->index,
					       POP3_RETENTION_EXT_NAME, 0,
					       sizeof(uint32_t),
					       sizeof(uint32_t));
	mailbox_get_open_status(box, STATUS_UIDVALIDITY, &status);

	i_zero(&info);
	info.user = box->storage->user->username;
	info.mailbox = mailbox_get_vname(box);
	info.uidvalidity = status.uidvalidity;
	info.session = params->session_id;
	info.remote_ip = params->remote_ip;
	mbox->host = pop3_retention_host_template;
	if (!puser->set.webhooks &&
	    !event_want_debug(mbox->event))
		mbox->host.event = NULL;
	if (!puser->set.webhooks) {
		/* events are only logged: nothing to keep across a crash */
		mbox->host.event_pending = NULL;
		mbox->host.events_settled = NULL;
	}
	mbox->session = retention_session_create(&puser->set, &mbox->host,
						 mbox, &info);
	if (mbox->session == NULL) {
		*error_r = "Out of memory";
		pop3_retention_mbox_deinit(&mbox);
		return NULL;
	}
	return mbox;
}

void pop3_retention_mbox_deinit(struct pop3_retention_mbox **_mbox)
{
	struct pop3_retention_mbox *mbox = *_mbox;

	if (mbox == NULL)
		return;
	*_mbox = NULL;
	i_assert(mbox->mail == NULL);
	if (mbox->session != NULL)
		pop3_retention_mbox_release_events(mbox, FALSE);
	pop3_retention_pending_settle(&mbox->pending, mbox->event);
	if (mbox->move_box != NULL)
		mailbox_free(&mbox->move_box);
	if (mbox->deleted_kw != NULL)
		mailbox_keywords_unref(&mbox->deleted_kw);
	if (mbox->retained_kw != NULL)
		mailbox_keywords_unref(&mbox->retained_kw);
	retention_session_destroy(&mbox->session);
	event_unref(&mbox->event);
	pool_unref(&mbox->pool);
}

/* The first retrieval from our index extension. \Seen without a record:
   retrieved before the record was lost (index rebuilt, another replica)
   or read elsewhere - unknown, so nothing is removed on its strength. */
static void mbox_record_facts(struct pop3_retention_mbox *mbox,
			      struct mail_index_view *view, uint32_t seq,
			      enum mail_flags flags,
			      struct retention_facts *facts)
{
	const void *data;
	bool expunged;
	uint32_t first = 0;

	mail_index_lookup_ext(view, seq, mbox->ext_id, &data, &expunged);
	if (data != NULL)
		memcpy(&first, data, sizeof(first));
	facts->first_retrieved_at = first;
	if (first == 0 && (flags & MAIL_SEEN) != 0)
		facts->state_unknown = TRUE;
}

/* Facts that live in the index only: one pass over the view's records,
   no mail objects, no search. This is every session begin's cost when no
   rule needs the arrival time. */
static int mbox_load_index(struct pop3_retention_mbox *mbox,
			   struct mailbox_transaction_context *trans,
			   const char **error_r)
{
	struct mail_index_view *view = trans->view;
	uint32_t seq, count = mail_index_view_get_messages_count(view);
	ARRAY_TYPE(keyword_indexes) keywords;
	unsigned int retained_idx;
	bool have_retained;

	have_retained = mail_index_keyword_lookup(
		mbox->box->index, POP3_RETENTION_RETAINED_KEYWORD,
		&retained_idx);
	t_array_init(&keywords, 8);
	for (seq = 1; seq <= count; seq++) {
		const struct mail_index_record *rec =
			mail_index_lookup(view, seq);
		struct retention_facts facts;

		i_zero(&facts);
		mbox_record_facts(mbox, view, seq, rec->flags, &facts);
		if (have_retained) {
			const unsigned int *idx;

			array_clear(&keywords);
			mail_index_lookup_keywords(view, seq, &keywords);
			array_foreach(&keywords, idx) {
				if (*idx == retained_idx)
					facts.hidden = TRUE;
			}
		}
		if (retention_session_add_message(mbox->session, &facts) < 0) {
			*error_r = "Out of memory";
			return -1;
		}
		array_push_back(&mbox->uids, &rec->uid);
	}
	return 0;
}

int pop3_retention_mbox_load(struct pop3_retention_mbox *mbox,
			     struct mailbox_transaction_context *trans,
			     const char **error_r)
{
	const struct retention_settings *set = &mbox->puser->set;
	bool need_arrival = set->min_secs != 0 || set->max_secs != 0 ||
			    set->visible_since != 0;
	enum mail_fetch_field fields = MAIL_FETCH_FLAGS;
	struct mail_search_args *search_args;
	struct mail_search_context *ctx;
	struct mail *mail;
	int ret = 0;

	if (!need_arrival)
		return mbox_load_index(mbox, trans, error_r);
	fields |= MAIL_FETCH_RECEIVED_DATE;
	search_args = mail_search_build_init();
	mail_search_build_add_all(search_args);
	ctx = mailbox_search_init(trans, search_args, NULL, fields, NULL);
	mail_search_args_unref(&search_args);

	while (mailbox_search_next(ctx, &mail)) {
		struct retention_facts facts;
		const char *const *kw;

		i_zero(&facts);
		mbox_record_facts(mbox, trans->view, mail->seq,
				  mail_get_flags(mail), &facts);
		for (kw = mail_get_keywords(mail); *kw != NULL; kw++) {
			if (strcasecmp(*kw, POP3_RETENTION_RETAINED_KEYWORD) ==
			    0)
				facts.hidden = TRUE;
		}
		if (mail_get_received_date(mail, &facts.arrived_at) < 0)
			facts.arrived_at = 0; /* unknown: blocks removal */
		if (retention_session_add_message(mbox->session, &facts) < 0) {
			*error_r = "Out of memory";
			ret = -1;
			break;
		}
		array_push_back(&mbox->uids, &mail->uid);
	}
	if (mailbox_search_deinit(&ctx) < 0 && ret == 0) {
		*error_r = mailbox_get_last_internal_error(mbox->box, NULL);
		ret = -1;
	}
	return ret;
}

struct retention_session *
pop3_retention_mbox_session(struct pop3_retention_mbox *mbox)
{
	return mbox->session;
}

struct reconcile_context {
	struct pop3_retention_mbox *mbox;
	struct mail_index_view *view;
	uint32_t uidvalidity;
};

/* With pop3_delete_type = flag a removal keeps the message, flagged. */
static bool mbox_uid_flagged_deleted(struct pop3_retention_mbox *mbox,
				     struct mail_index_view *view,
				     uint32_t uid)
{
	ARRAY_TYPE(keyword_indexes) keywords;
	const unsigned int *idx;
	uint32_t seq;

	if (mbox->deleted_kw == NULL || mbox->deleted_kw->count == 0 ||
	    !mail_index_lookup_seq(view, uid, &seq))
		return FALSE;
	t_array_init(&keywords, 8);
	mail_index_lookup_keywords(view, seq, &keywords);
	array_foreach(&keywords, idx) {
		if (*idx == mbox->deleted_kw->idx[0])
			return TRUE;
	}
	return FALSE;
}

/* One pending event of a session that did not settle it: did its change
   happen? A removal whose message is gone did, a retain whose message
   is hidden did; those are handed over as recorded (same webhook-id:
   the spool skips one it already holds). */
static void reconcile_line(int64_t created_ms, const char *fields,
			   void *context)
{
	struct reconcile_context *ctx = context;
	struct pop3_retention_mbox *mbox = ctx->mbox;
	struct mail_user *user = mbox->box->storage->user;
	struct pop3_retention_events *events;
	struct retention_event event;
	const char *error;
	bool happened;
	int idx;

	if (retention_event_decode(t_strdup_noconst(fields), &event,
				   &error) < 0) {
		e_error(mbox->event, "Pending event not reconciled: %s",
			error);
		return;
	}
	if (event.user == NULL || strcmp(event.user, user->username) != 0) {
		e_error(mbox->event, "Pending event not reconciled: it names "
			"another user");
		return;
	}
	/* another UIDVALIDITY: the mailbox was recreated since */
	idx = event.uidvalidity != ctx->uidvalidity ? -1 :
		pop3_retention_mbox_find(mbox, event.uid);
	switch (event.type) {
	case RETENTION_EVENT_DELETED:
	case RETENTION_EVENT_EXPIRED:
		happened = idx < 0 ||
			mbox_uid_flagged_deleted(mbox, ctx->view, event.uid);
		break;
	case RETENTION_EVENT_RETAINED:
		happened = idx >= 0 &&
			retention_session_facts(mbox->session,
						(unsigned int)idx)->hidden;
		break;
	default:
		e_error(mbox->event, "Pending event not reconciled: %s is "
			"not a removal or retain",
			retention_event_type_name(event.type));
		return;
	}
	e_info(mbox->event, "pending event %s uid=%u of session %s: %s",
	       retention_event_type_name(event.type), event.uid,
	       event.session != NULL ? event.session : "-",
	       happened ? "committed, handed over now (the session ended "
	       "between its commit and the hand-off)" :
	       "dropped (its change was not committed)");
	events = !happened ? NULL :
		pop3_retention_user_events(user, mbox->puser);
	if (events != NULL)
		pop3_retention_events_send(events, created_ms, fields);
}

void
pop3_retention_mbox_reconcile_pending(struct pop3_retention_mbox *mbox,
				      struct mailbox_transaction_context *trans)
{
	struct mail_user *user = mbox->box->storage->user;
	struct reconcile_context ctx;
	struct mailbox_status status;
	const char *dir;

	if (mbox->host.event_pending == NULL)
		return;
	dir = pop3_retention_user_outbox_dir(user);
	if (dir == NULL)
		return;
	i_zero(&ctx);
	ctx.mbox = mbox;
	ctx.view = trans->view;
	mailbox_get_open_status(mbox->box, STATUS_UIDVALIDITY, &status);
	ctx.uidvalidity = status.uidvalidity;
	(void)pop3_retention_pending_reconcile(
		t_strconcat(dir, "/", POP3_RETENTION_PENDING_DIR, NULL),
		mbox->event, reconcile_line, &ctx);
}

unsigned int pop3_retention_mbox_apply(struct pop3_retention_mbox *mbox,
				       struct mailbox_transaction_context *trans,
				       const struct retention_plan *plan)
{
	unsigned int failures;

	mbox->trans = trans;
	array_clear(&mbox->failed);
	T_BEGIN {
		failures = retention_session_apply(mbox->session, plan);
	} T_END;
	if (mbox->mail != NULL)
		mail_free(&mbox->mail);
	mbox->trans = NULL;
	return failures;
}

bool pop3_retention_mbox_has_events(const struct pop3_retention_mbox *mbox)
{
	return mbox->host.event != NULL;
}

struct event *pop3_retention_mbox_event(struct pop3_retention_mbox *mbox)
{
	return mbox->event;
}

void pop3_retention_mbox_retrieved(struct pop3_retention_mbox *mbox,
				   struct mail *mail, bool is_top,
				   bool message_id_known,
				   const char *message_id)
{
	int idx = pop3_retention_mbox_find(mbox, mail->uid);

	if (idx < 0)
		return; /* arrived after the session began: not listed */
	mbox->trans = mail->transaction;
	mbox->cur_mail = mail;
	mbox->cur_message_id_known = message_id_known;
	mbox->cur_message_id = message_id;
	mbox->retrieving = TRUE;
	T_BEGIN {
		(void)retention_session_retrieved(mbox->session,
						  (unsigned int)idx, is_top,
						  ioloop_time);
	} T_END;
	mbox->retrieving = FALSE;
	mbox->cur_mail = NULL;
	mbox->cur_message_id_known = FALSE;
	mbox->cur_message_id = NULL;
	if (mbox->mail != NULL)
		mail_free(&mbox->mail);
	mbox->trans = NULL;
}

int pop3_retention_mbox_find(const struct pop3_retention_mbox *mbox,
			     uint32_t uid)
{
	const uint32_t *uids;
	unsigned int count, lo = 0, hi;

	uids = array_get(&mbox->uids, &count);
	hi = count;
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (uids[mid] == uid)
			return (int)mid;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

uint32_t pop3_retention_mbox_uid(const struct pop3_retention_mbox *mbox,
				 unsigned int idx)
{
	return *array_idx(&mbox->uids, idx);
}

const char *pop3_retention_mbox_uidl(struct pop3_retention_mbox *mbox,
				     struct mail *mail)
{
	return mbox_uidl(mbox, mail);
}

bool pop3_retention_mbox_in_action(const struct pop3_retention_mbox *mbox)
{
	return mbox->in_action;
}

const unsigned int *
pop3_retention_mbox_failed(const struct pop3_retention_mbox *mbox,
			   unsigned int *count_r)
{
	/* cppcheck-suppress CastIntegerToAddressAtReturn ; array_get()
	   casts through typeof(), which cppcheck does not follow */
	return array_get(&mbox->failed, count_r);
}
