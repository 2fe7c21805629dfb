/* Mail and mailbox overrides of pop3's INBOX (MAILBOX_FLAG_POP3_SESSION):
   session begin before the listing, the hidden-message filter of the
   listing, RETR completion, and the plan applied inside pop3's QUIT
   commit. Facts about pop3 2.3.19 this relies on are in
   shared/reference/dovecot-2.3-plugin-api.md and docs/dovecot.md. */

#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "str.h"
#include "message-header-parser.h"
#include "seq-range-array.h"
#include "net.h"
#include "file-lock.h"
#include "mail-storage-private.h"
#include "mail-user.h"
#include "pop3-common.h"
#include "pop3-client.h"
#include "pop3-settings.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-capa.h"
#include "pop3-retention-common.h"
#include "pop3-retention-lock.h"
#include "pop3-retention-mailbox.h"
#include "pop3-retention-pending.h"
#include "pop3-retention-plugin.h"

#include "retention-hooks.h"

/* Our vfuncs run only on the mailboxes and mails we hooked: there the
   context is always set (the _REQUIRE forms panic otherwise, and tell
   static analyzers so). Where it may be missing: POP3_RETENTION_CONTEXT_OPT. */
#define POP3_RETENTION_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3_retention_storage_module)
#define POP3_RETENTION_CONTEXT_OPT(obj) \
	MODULE_CONTEXT(obj, pop3_retention_storage_module)
#define POP3_RETENTION_MAIL_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3_retention_mail_module)

struct pop3_retention_mailbox {
	union mailbox_module_context module_ctx;
	struct pop3_retention_user *puser;
	struct pop3_retention_mbox *mbox;

	/* session index -> listed by pop3 (NULL: everything listed) */
	bool *listed;
	unsigned int listed_count;

	/* the retention lock, shared (pop3-retention-lock.h); NULL when it
	   could not be taken (lock_error says why) */
	struct file_lock *lock;
	const char *lock_error;
	/* pop3's own expunges at QUIT that were not carried out because
	   the session runs with every removal withheld */
	unsigned int withheld;

	bool begun:1;
	bool updated:1;
	/* our own transaction/search is running: no filtering */
	bool busy:1;
	bool quit:1;
	/* session begin failed: the user's retention state is unknown, so
	   nothing is removed in this session, not even a client's DELE */
	bool withhold:1;
};

struct pop3_retention_mail {
	union mail_module_context module_ctx;
	struct istream *retr_input;
	/* the CAPA filter, out of the output path while this message
	   streams (see pop3_retention_capa_bypass_begin()) */
	struct client *bypass_client;
	struct ostream *bypass_filter;
	bool is_top;
	/* the Message-ID, found in the stream's first read before pop3
	   sent anything (retr_peek_message_id()): known, and its value
	   (NULL: the message has none) */
	bool message_id_known;
	const char *message_id;
};

static MODULE_CONTEXT_DEFINE_INIT(pop3_retention_storage_module,
				  &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(pop3_retention_mail_module,
				  &mail_module_register);

/* The pop3 client that owns box (pop3 usually serves one per process). */
static struct client *box_client(const struct mailbox *box)
{
	struct client *client;

	for (client = pop3_retention_pop3_clients(); client != NULL;
	     client = client->next) {
		if (client->mailbox == box)
			return client;
	}
	return NULL;
}

/* msgnum -> seq, as pop3-commands.c's static msgnum_to_seq() */
static uint32_t client_msgnum_to_seq(const struct client *client,
				     uint32_t msgnum)
{
	return msgnum < client->msgnum_to_seq_map_count ?
		       client->msgnum_to_seq_map[msgnum] : msgnum + 1;
}

/* Without the user's retention state nothing can be decided: the
   session serves mail, but removes nothing, not even what the client
   DELEs (pop3_retention_mail_expunge() drops pop3's expunges). A later
   session that can read the state decides. A passive user (nothing to
   enforce) keeps plain RFC 1939. */
static void session_begin_failed(struct pop3_retention_mailbox *prbox,
				 const char *cause)
{
	if (prbox->puser->passive) {
		e_error(prbox->puser->event, "Session begin failed (no "
			"retention rule applies to this user): %s", cause);
		return;
	}
	prbox->withhold = TRUE;
	e_error(prbox->puser->event, "Session begin failed, every removal "
		"is withheld in this session (DELEs are ignored): %s", cause);
}

static void session_begin(struct mailbox *box,
			  struct pop3_retention_mailbox *prbox)
{
	struct pop3_retention_mbox_params params;
	struct mailbox_transaction_context *t;
	const struct retention_plan *plan;
	struct client *client = box_client(box);
	struct mail_user *user = box->storage->user;
	const struct mail_storage_settings *mail_set =
		pop3_retention_user_mail_set(user);
	unsigned int i, failures = 0, removals = 0;
	const char *error;

	i_zero(&params);
	params.session_id = user->session_id;
	params.remote_ip = user->conn.remote_ip == NULL ? NULL :
			   net_ip2addr(user->conn.remote_ip);
	params.uidl_format = mail_set->pop3_uidl_format;
	if (client != NULL && client->set->parsed_delete_type ==
				      POP3_DELETE_TYPE_FLAG)
		params.deleted_flag = client->set->pop3_deleted_flag;

	if (prbox->lock == NULL && !prbox->puser->passive) {
		session_begin_failed(prbox, prbox->lock_error);
		return;
	}
	prbox->mbox = pop3_retention_mbox_init(box, prbox->puser, &params,
					       &error);
	if (prbox->mbox == NULL) {
		session_begin_failed(prbox, error);
		return;
	}
	t = mailbox_transaction_begin(box, 0, "pop3-retention begin");
	if (pop3_retention_mbox_load(prbox->mbox, t, &error) < 0) {
		mailbox_transaction_rollback(&t);
		pop3_retention_mbox_deinit(&prbox->mbox);
		session_begin_failed(prbox, error);
		return;
	}
	T_BEGIN {
		pop3_retention_mbox_reconcile_pending(prbox->mbox, t);
	} T_END;
	plan = retention_session_begin(
		pop3_retention_mbox_session(prbox->mbox), ioloop_time);
	if (!prbox->puser->set.dry_run && plan->count > 0) {
		prbox->listed_count = retention_session_count(
			pop3_retention_mbox_session(prbox->mbox));
		prbox->listed = p_new(box->pool, bool, prbox->listed_count);
		for (i = 0; i < prbox->listed_count; i++)
			prbox->listed[i] = TRUE;
		for (i = 0; i < plan->count; i++) {
			prbox->listed[plan->entries[i].idx] = FALSE;
			if (plan->entries[i].decision.action ==
			    RETENTION_ACTION_REMOVE)
				removals++;
		}
	}
	if (plan->count > 0)
		failures = pop3_retention_mbox_apply(prbox->mbox, t, plan);
	pop3_retention_mbox_prepare_commit(prbox->mbox);
	if (mailbox_transaction_commit(&t) < 0) {
		e_error(prbox->puser->event, "Session begin: commit failed, "
			"nothing removed: %s",
			mailbox_get_last_internal_error(box, NULL));
		pop3_retention_mbox_release_events(prbox->mbox, FALSE);
		/* list everything that stays */
		prbox->listed = NULL;
		return;
	}
	pop3_retention_mbox_release_events(prbox->mbox, TRUE);
	if (failures > 0 && prbox->listed != NULL) {
		/* a failed removal keeps the message: list it */
		const unsigned int *failed;
		unsigned int count;

		failed = pop3_retention_mbox_failed(prbox->mbox, &count);
		for (i = 0; i < count; i++)
			prbox->listed[failed[i]] = TRUE;
	}
	/* No mailbox_sync() here: we run inside pop3's
	   mailbox_transaction_begin(), and syncing with a transaction open
	   panics. The listing filter hides what was removed; the expunges
	   reach the files at pop3's QUIT sync or the mailbox's next sync. */
	(void)removals;
}

static struct mailbox_transaction_context *
pop3_retention_transaction_begin(struct mailbox *box,
				 enum mailbox_transaction_flags flags,
				 const char *reason)
{
	struct pop3_retention_mailbox *prbox = POP3_RETENTION_CONTEXT(box);

	/* pop3's read_mailbox() begins the session's transaction right
	   after syncing and before searching the listing: that is the
	   session begin moment */
	if (!prbox->begun && !prbox->busy && reason != NULL &&
	    strcmp(reason, "read_mailbox") == 0) {
		prbox->begun = TRUE;
		prbox->busy = TRUE;
		T_BEGIN {
			session_begin(box, prbox);
		} T_END;
		prbox->busy = FALSE;
	}
	return prbox->module_ctx.super.transaction_begin(box, flags, reason);
}

/* Record a listed message in pop3's all_seqs. pop3 fills all_seqs with
   1..n unless pop3_deleted_flag is set, assuming a gapless listing; once
   we leave messages out, the listing has gaps, so we create all_seqs
   ourselves exactly as pop3 does in its pop3_deleted_flag case (it keeps
   an already created array). */
static void client_add_listed_seq(struct client *client, uint32_t seq)
{
	if (!array_is_created(&client->all_seqs))
		i_array_init(&client->all_seqs, 32);
	seq_range_array_add(&client->all_seqs, seq);
}

static bool
pop3_retention_search_next_nonblock(struct mail_search_context *ctx,
				    struct mail **mail_r, bool *tryagain_r)
{
	struct mailbox *box = ctx->transaction->box;
	struct pop3_retention_mailbox *prbox = POP3_RETENTION_CONTEXT(box);
	struct client *client;

	if (prbox->busy || prbox->listed == NULL ||
	    (client = box_client(box)) == NULL || client->trans != NULL) {
		/* not pop3's listing search (read_mailbox() sets
		   client->trans only when the listing is complete) */
		return prbox->module_ctx.super.search_next_nonblock(
			ctx, mail_r, tryagain_r);
	}
	while (prbox->module_ctx.super.search_next_nonblock(ctx, mail_r,
							     tryagain_r)) {
		int idx = pop3_retention_mbox_find(prbox->mbox, (*mail_r)->uid);

		if (idx < 0 || prbox->listed[idx]) {
			client_add_listed_seq(client, (*mail_r)->seq);
			return TRUE;
		}
		/* hidden or removed at session begin: not listed */
	}
	if (!array_is_created(&client->all_seqs)) {
		/* everything was left out: an empty, created array keeps
		   pop3 from assuming 1..n */
		i_array_init(&client->all_seqs, 1);
	}
	return FALSE;
}

static void session_update(struct mailbox *box,
			   struct pop3_retention_mailbox *prbox,
			   struct client *client,
			   struct mailbox_transaction_context *t)
{
	struct retention_session *session =
		pop3_retention_mbox_session(prbox->mbox);
	const struct retention_plan *plan;
	unsigned int msgnum;

	for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
		uint32_t seq = client_msgnum_to_seq(client, msgnum), uid;
		bool deleted;
		int idx;

		if (client->deleted_bitmask == NULL)
			break;
		deleted = (client->deleted_bitmask[msgnum / CHAR_BIT] &
			   (1 << (msgnum % CHAR_BIT))) != 0;
		if (!deleted)
			continue;
		mail_index_lookup_uid(t->view, seq, &uid);
		idx = pop3_retention_mbox_find(prbox->mbox, uid);
		if (idx >= 0)
			retention_session_set_deleted(session,
						      (unsigned int)idx, TRUE);
	}
	plan = retention_session_update(session, ioloop_time);
	(void)pop3_retention_mbox_apply(prbox->mbox, t, plan);
	(void)box;
}

static int
pop3_retention_transaction_commit(struct mailbox_transaction_context *t,
				  struct mail_transaction_commit_changes *changes_r)
{
	struct mailbox *box = t->box;
	struct pop3_retention_mailbox *prbox = POP3_RETENTION_CONTEXT(box);
	struct client *client;
	bool updating = FALSE;
	int ret;

	/* pop3's QUIT commit: mailbox_transaction_commit() has already
	   NULLed client->trans when our vfunc runs */
	if (prbox->mbox != NULL && !prbox->busy &&
	    !prbox->updated && (client = box_client(box)) != NULL &&
	    client->quit_seen && client->trans == NULL) {
		prbox->updated = TRUE;
		prbox->quit = TRUE;
		prbox->busy = TRUE;
		T_BEGIN {
			session_update(box, prbox, client, t);
		} T_END;
		prbox->busy = FALSE;
		updating = TRUE;
	}
	if (prbox->withhold && !prbox->quit &&
	    (client = box_client(box)) != NULL && client->quit_seen &&
	    client->trans == NULL)
		prbox->quit = TRUE;
	if (updating) {
		pop3_retention_mbox_prepare_commit(prbox->mbox);
		pop3_retention_test_kill_point("quit-before-commit");
	}
	ret = prbox->module_ctx.super.transaction_commit(t, changes_r);
	if (updating) {
		pop3_retention_test_kill_point("quit-after-commit");
		if (ret < 0) {
			e_error(prbox->puser->event, "QUIT commit failed: the "
				"removals and retains logged above did not "
				"happen: %s",
				mailbox_get_last_internal_error(box, NULL));
		}
		pop3_retention_mbox_release_events(prbox->mbox, ret == 0);
	}
	return ret;
}

static void pop3_retention_mailbox_free(struct mailbox *box)
{
	struct pop3_retention_mailbox *prbox = POP3_RETENTION_CONTEXT(box);

	if (prbox->mbox != NULL) {
		struct retention_session_stats stats;
		/* pop3 has NULLed client->mailbox by now: the QUIT commit
		   is what tells a QUIT */
		bool quit = prbox->quit;

		if (retention_session_end(
			    pop3_retention_mbox_session(prbox->mbox), quit,
			    &stats) < 0) {
			e_error(prbox->puser->event,
				"BUG: removals applied without QUIT");
		}
		struct event_passthrough *e =
			event_create_passthrough(prbox->puser->event)->
			set_name("pop3_retention_session_finished")->
			add_int("retrieved", stats.retrieved)->
			add_int("removed", stats.removed)->
			add_int("retained", stats.retained)->
			add_int("hidden", stats.hidden)->
			add_int("failed", stats.failed);
		const char *summary = t_strdup_printf(
			"session end: policy=%s quit=%s retrieved=%u "
			"removed=%u retained=%u hidden=%u failed=%u%s",
			retention_policy_kind_name(prbox->puser->set.policy),
			quit ? "yes" : "no", stats.retrieved, stats.removed,
			stats.retained, stats.hidden, stats.failed,
			prbox->puser->set.dry_run ? " dry_run=yes" : "");

		/* a session that changed nothing needs no line of its own
		   (pop3 logs the logout); the named event is sent anyway */
		if (stats.removed + stats.retained + stats.hidden +
		    stats.failed > 0)
			e_info(e->event(), "%s", summary);
		else
			e_debug(e->event(), "%s", summary);
		pop3_retention_mbox_deinit(&prbox->mbox);
	} else if (prbox->withhold) {
		e_info(event_create_passthrough(prbox->puser->event)->
		       set_name("pop3_retention_session_finished")->
		       add_int("withheld", prbox->withheld)->event(),
		       "session end: policy=%s quit=%s removals withheld "
		       "(session begin failed): %u DELE(s) not carried out",
		       retention_policy_kind_name(prbox->puser->set.policy),
		       prbox->quit ? "yes" : "no", prbox->withheld);
	}
	if (prbox->lock != NULL)
		file_unlock(&prbox->lock);
	prbox->module_ctx.super.free(box);
}

void pop3_retention_storage_mailbox_allocated(struct mailbox *box)
{
	struct pop3_retention_user *puser =
		POP3_RETENTION_USER_CONTEXT(box->storage->user);
	struct mailbox_vfuncs *v = box->vlast;
	struct pop3_retention_mailbox *prbox;

	if (puser == NULL || (box->flags & MAILBOX_FLAG_POP3_SESSION) == 0)
		return;
	prbox = p_new(box->pool, struct pop3_retention_mailbox, 1);
	prbox->puser = puser;
	if (!puser->passive) {
		const char *error;
		int ret;

		/* before pop3's first sync: a sweep that runs now finishes
		   before this session's listing exists */
		ret = pop3_retention_lock(box->storage->user, FALSE,
					  POP3_RETENTION_LOCK_WAIT_SECS,
					  &prbox->lock, &error);
		if (ret == 0) {
			error = t_strdup_printf("Timed out after %u s waiting "
				"for the retention lock (a sweep of this "
				"user?)", POP3_RETENTION_LOCK_WAIT_SECS);
		}
		if (ret <= 0) {
			prbox->lock_error = p_strdup_printf(box->pool,
				"Can't take the retention lock: %s", error);
		}
	}
	prbox->module_ctx.super = *v;
	box->vlast = &prbox->module_ctx.super;
	v->transaction_begin = pop3_retention_transaction_begin;
	v->transaction_commit = pop3_retention_transaction_commit;
	v->search_next_nonblock = pop3_retention_search_next_nonblock;
	v->free = pop3_retention_mailbox_free;
	MODULE_CONTEXT_SET(box, pop3_retention_storage_module, prbox);
}

#define HDR_IS_LWSP(c) ((c) == ' ' || (c) == '\t')

/* The header line at data[pos]: *lf_r is its LF, *len_r its length
   without the LF and a CR before it. FALSE if data has no LF after pos
   or the line has a NUL. */
static bool hdr_line(const unsigned char *data, size_t size, size_t pos,
		     size_t *lf_r, size_t *len_r)
{
	const unsigned char *lf = memchr(data + pos, '\n', size - pos);
	size_t len;

	if (lf == NULL)
		return FALSE;
	len = (size_t)(lf - (data + pos));
	if (memchr(data + pos, '\0', len) != NULL)
		return FALSE;
	*lf_r = (size_t)(lf - data);
	*len_r = len > 0 && data[pos + len - 1] == '\r' ? len - 1 : len;
	return TRUE;
}

/* The first header called name in the message header at the start of
   data, appended to dest as message_parse_header_next() would give its
   full value with MESSAGE_HEADER_PARSER_FLAG_SKIP_INITIAL_LWSP and
   _DROP_CR (blanks after the colon skipped, but one if there is nothing
   else; folded lines joined with LF; the CR of a CRLF dropped). Returns
   1 if found, 0 if the header ended without it, -1 if data does not
   tell: it ends first, or has what that parser treats specially (a NUL,
   a line without a colon, a header starting with a blank). */
static int hdr_first_value(const unsigned char *data, size_t size,
			   const char *name, string_t *dest)
{
	size_t name_len = strlen(name), pos = 0, lf, len, end, v, colon;
	const unsigned char *line, *c;

	if (size == 0 || HDR_IS_LWSP(data[0]))
		return -1;
	for (;; pos = lf + 1) {
		if (pos >= size || !hdr_line(data, size, pos, &lf, &len))
			return -1;
		line = data + pos;
		if (len == 0)
			return 0;
		if (HDR_IS_LWSP(line[0]))
			continue; /* a folded line of a header before */
		if ((c = memchr(line, ':', len)) == NULL)
			return -1;
		colon = end = (size_t)(c - line);
		while (end > 0 && HDR_IS_LWSP(line[end - 1]))
			end--;
		if (end != name_len ||
		    strncasecmp((const char *)line, name, name_len) != 0)
			continue;
		for (v = colon + 1; v < len && HDR_IS_LWSP(line[v]); v++) ;
		if (v == len && len > colon + 1)
			v = colon + 2;
		str_append_data(dest, line + v, len - v);
		/* its folded lines: one byte past each LF tells */
		for (pos = lf + 1;; pos = lf + 1) {
			if (pos >= size)
				return -1;
			if (!HDR_IS_LWSP(data[pos]))
				return 1;
			if (!hdr_line(data, size, pos, &lf, &len))
				return -1;
			str_append_c(dest, '\n');
			str_append_data(dest, data + pos, len);
		}
	}
}

/* Finds the Message-ID in what the download's stream reads first,
   before pop3 sends any of it: the bytes pop3 then sends from the same
   buffer, so nothing is read twice. Reading it again after the
   download (retr_message_id()) costs a read() and Dovecot's header
   parser; that remains for a header larger than the first read, or one
   that the scan above leaves to Dovecot's parser. */
static void retr_peek_message_id(struct pop3_retention_mail *prmail,
				 struct mail_private *mail)
{
	struct pop3_retention_mailbox *prbox =
		POP3_RETENTION_CONTEXT_OPT(mail->mail.box);
	struct istream *input = prmail->retr_input;
	const unsigned char *data;
	size_t size;
	int ret;

	prmail->message_id_known = FALSE;
	prmail->message_id = NULL;
	if (prbox == NULL || prbox->mbox == NULL ||
	    !pop3_retention_mbox_has_events(prbox->mbox) ||
	    input->v_offset != 0 ||
	    i_stream_read_more(input, &data, &size) <= 0)
		return;
	T_BEGIN {
		string_t *value = t_str_new(128);

		ret = hdr_first_value(data, size, "Message-ID", value);
		if (ret >= 0) {
			prmail->message_id_known = TRUE;
			prmail->message_id = ret == 0 ? NULL :
				p_strdup(mail->pool, str_c(value));
		}
	} T_END;
}

static int pop3_retention_mail_get_stream(struct mail *_mail, bool get_body,
					  struct message_size *hdr_size,
					  struct message_size *body_size,
					  struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3_retention_mail *prmail = POP3_RETENTION_MAIL_CONTEXT(mail);
	const char *reason = mail->get_stream_reason;

	if (prmail->module_ctx.super.get_stream(_mail, get_body, hdr_size,
						body_size, stream_r) < 0)
		return -1;
	if (prmail->retr_input == NULL && reason != NULL &&
	    (strcmp(reason, "RETR") == 0 || strcmp(reason, "TOP") == 0)) {
		struct client *client = box_client(_mail->box);

		prmail->retr_input = *stream_r;
		prmail->is_top = strcmp(reason, "TOP") == 0;
		i_stream_ref(prmail->retr_input);
		retr_peek_message_id(prmail, mail);
		if (client != NULL && prmail->bypass_filter == NULL) {
			prmail->bypass_filter =
				pop3_retention_capa_bypass_begin(client);
			if (prmail->bypass_filter != NULL)
				prmail->bypass_client = client;
		}
	}
	return 0;
}

/* The first Message-ID header of the message that was just streamed
   whole, read again from the start of that stream, as
   mail_get_first_header() returns it (leading blanks skipped, a folded
   value with its LF newlines, CRs dropped). Asking the mail instead
   parses the header in index-mail and adds it to dovecot.index.cache,
   a cache write per download. Returns FALSE if the stream cannot be
   read again: then the mail is asked. */
static bool retr_message_id(struct istream *input, const char **value_r)
{
	struct message_header_parser_ctx *parser;
	struct message_header_line *hdr;
	struct istream *hdr_input;
	const char *value = NULL;
	bool ok;
	int ret;

	if (!input->seekable)
		return FALSE;
	hdr_input = i_stream_create_range(input, 0, (uoff_t)-1);
	parser = message_parse_header_init(hdr_input, NULL,
		MESSAGE_HEADER_PARSER_FLAG_SKIP_INITIAL_LWSP |
		MESSAGE_HEADER_PARSER_FLAG_DROP_CR);
	while ((ret = message_parse_header_next(parser, &hdr)) > 0) {
		if (hdr->eoh)
			break;
		if (strcasecmp(hdr->name, "Message-ID") != 0)
			continue;
		if (hdr->continues) {
			hdr->use_full_value = TRUE;
			continue;
		}
		value = t_strndup(hdr->full_value, hdr->full_value_len);
		break;
	}
	ok = ret != 0 && hdr_input->stream_errno == 0;
	message_parse_header_deinit(&parser);
	i_stream_unref(&hdr_input);
	*value_r = value;
	return ok;
}

static void pop3_retention_mail_close(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3_retention_mail *prmail = POP3_RETENTION_MAIL_CONTEXT(mail);
	struct pop3_retention_mailbox *prbox =
		POP3_RETENTION_CONTEXT(_mail->box);

	if (prmail->retr_input != NULL) {
		struct istream *input = prmail->retr_input;

		/* the whole message went into pop3's output: a download.
		   An aborted transfer or a killed session never reaches
		   EOF. */
		if (input->eof && input->stream_errno == 0 &&
		    !i_stream_have_bytes_left(input) && prbox->mbox != NULL) {
			T_BEGIN {
				const char *message_id = prmail->message_id;
				bool known = prmail->message_id_known;

				if (!known &&
				    pop3_retention_mbox_has_events(prbox->mbox)) {
					known = retr_message_id(input,
								&message_id);
					e_debug(pop3_retention_mbox_event(
							prbox->mbox),
						"Message-ID of UID %u: not "
						"within the download's first "
						"read, read again%s",
						_mail->uid, known ? "" :
						" (failed)");
				}

				pop3_retention_mbox_retrieved(prbox->mbox,
							      _mail,
							      prmail->is_top,
							      known,
							      message_id);
			} T_END;
		}
		prmail->retr_input = NULL;
		prmail->message_id_known = FALSE;
		prmail->message_id = NULL;
		i_stream_unref(&input);
	}
	if (prmail->bypass_filter != NULL) {
		/* pop3 frees the message's mail before it replies to the next
		   command, and before it destroys client->output */
		pop3_retention_capa_bypass_end(prmail->bypass_client,
					       prmail->bypass_filter);
		prmail->bypass_filter = NULL;
		prmail->bypass_client = NULL;
	}
	prmail->module_ctx.super.close(_mail);
}

static void pop3_retention_mail_expunge(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3_retention_mail *prmail = POP3_RETENTION_MAIL_CONTEXT(mail);
	struct pop3_retention_mailbox *prbox =
		POP3_RETENTION_CONTEXT(_mail->box);
	struct client *client;

	/* session begin failed: nothing is removed */
	if (prbox->withhold && (client = box_client(_mail->box)) != NULL &&
	    client->quit_seen && client->trans == _mail->transaction) {
		prbox->withheld++;
		e_info(prbox->puser->event, "user=%s action=keep uid=%u "
		       "reason=unknown-state (DELE withheld: session begin "
		       "failed)", _mail->box->storage->user->username,
		       _mail->uid);
		return;
	}
	/* pop3's own DELE expunges at QUIT are deferred to the plan that
	   the QUIT commit carries out: floor/hold/keep may retain them */
	if (prbox->mbox != NULL &&
	    !pop3_retention_mbox_in_action(prbox->mbox) &&
	    (client = box_client(_mail->box)) != NULL && client->quit_seen &&
	    client->trans == _mail->transaction)
		return;
	prmail->module_ctx.super.expunge(_mail);
}

void pop3_retention_storage_mail_allocated(struct mail *_mail)
{
	struct pop3_retention_mailbox *prbox =
		POP3_RETENTION_CONTEXT_OPT(_mail->box);
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	struct pop3_retention_mail *prmail;

	if (prbox == NULL)
		return;
	prmail = p_new(mail->pool, struct pop3_retention_mail, 1);
	prmail->module_ctx.super = *v;
	mail->vlast = &prmail->module_ctx.super;
	v->get_stream = pop3_retention_mail_get_stream;
	v->close = pop3_retention_mail_close;
	v->expunge = pop3_retention_mail_expunge;
	MODULE_CONTEXT_SET(mail, pop3_retention_mail_module, prmail);
}
