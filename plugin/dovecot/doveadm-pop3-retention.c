/* doveadm pop3-retention status|sweep|flush|queue: what the policy says
   about each message of a user's INBOX, the removals for users who never
   log in, the hand-over of users' webhook outboxes to the delivery
   service (doveadm-pop3-retention-delivery.c), and the service's queue.

   doveadm does not load the pop3 plugin (its hooks live in protocol pop3's
   mail_plugins), so each command builds the user's retention context here
   from the same settings and drives the same host (pop3-retention-mailbox)
   as a POP3 session does.

   Dovecot 2.3 and 2.4 differ here in doveadm's mail command API: 2.4
   dropped init()'s arguments and parse_arg (options are read from
   ctx->cctx), and adds the "username" column only when it iterates
   users. */

#include "lib.h"
#include "ioloop.h"
#include "file-lock.h"
#include "module-dir.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mail-storage-settings.h"
#include "mail-user.h"
#include "mailbox-list.h"
#include "doveadm.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "doveadm-pop3-retention.h"
#include "pop3-retention-common.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-lock.h"
#include "pop3-retention-mailbox.h"
#include "pop3-retention-pending.h"

#include "retention-hooks.h"

#include <stdio.h>
#include <unistd.h>

const char *doveadm_pop3_retention_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_pop3_retention_plugin_init(struct module *module);
void doveadm_pop3_retention_plugin_deinit(void);

/* Every mail command's init(): pctx->init adds the command's columns
   after doveadm's own "username" column, which doveadm adds before
   init() and refuses after it. */
#if DOVECOT_PREREQ(2, 4, 0)
static void cmd_init(struct doveadm_mail_cmd_context *ctx)
#else
static void cmd_init(struct doveadm_mail_cmd_context *ctx,
		     const char *const args[] ATTR_UNUSED)
#endif
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

#if DOVECOT_PREREQ(2, 4, 0)
	/* 2.4 adds it for -A and -F only (2.3: add_username_header) */
	if (pctx->user_rows && ctx->iterate_single_user) {
		doveadm_print_header("username", "Username",
				     DOVEADM_PRINT_HEADER_FLAG_STICKY |
				     DOVEADM_PRINT_HEADER_FLAG_HIDE_TITLE);
	}
#endif
	pctx->init(pctx);
}

struct pop3_retention_cmd_context *
doveadm_pop3_retention_cmd_alloc(bool user_rows)
{
	struct pop3_retention_cmd_context *pctx;

	pctx = doveadm_mail_cmd_alloc(struct pop3_retention_cmd_context);
	pctx->ctx.v.init = cmd_init;
	pctx->user_rows = user_rows;
#if !DOVECOT_PREREQ(2, 4, 0)
	pctx->ctx.add_username_header = user_rows;
#endif
	/* 2.4 refuses it after alloc() */
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return pctx;
}

void
doveadm_pop3_retention_cmd_row_begin(struct pop3_retention_cmd_context *pctx,
				     struct mail_user *user)
{
#if DOVECOT_PREREQ(2, 4, 0)
	/* doveadm sets the column only when it iterates users */
	if (pctx->user_rows && pctx->ctx.iterate_single_user)
		doveadm_print_sticky("username", user->username);
#else
	/* doveadm has set it (add_username_header) */
	(void)pctx;
	(void)user;
#endif
}

/* One user's INBOX, loaded into a core session. */
struct pop3_retention_cmd_user {
	struct pop3_retention_user *puser;
	struct mailbox *box;
	struct mailbox_transaction_context *trans;
	struct pop3_retention_mbox *mbox;
};

static const char *time_or(time_t t, const char *none)
{
	char buf[32];

	if (t == 0)
		return none;
	retention_time_format(t, buf, sizeof(buf));
	return buf[0] == '\0' ? dec2str(t) : t_strdup(buf);
}

/* The pop3 plugin's user context, without pop3_retention_user_init():
   that one hooks the user's deinit and belongs to the pop3 process. */
static struct pop3_retention_user *
cmd_puser_create(struct mail_user *user, const char **error_r)
{
	struct pop3_retention_user *puser;

	puser = p_new(user->pool, struct pop3_retention_user, 1);
	if (pop3_retention_settings_load(user, &puser->set, error_r) < 0)
		return NULL;
	puser->passive = pop3_retention_settings_passive(&puser->set);
	puser->event = event_create(user->event);
	event_add_category(puser->event, &event_category_pop3_retention);
	event_set_append_log_prefix(puser->event, "pop3-retention: ");
	return puser;
}

static void cmd_user_close(struct pop3_retention_cmd_user *cu)
{
	if (cu->trans != NULL)
		mailbox_transaction_rollback(&cu->trans);
	pop3_retention_mbox_deinit(&cu->mbox);
	if (cu->box != NULL)
		mailbox_free(&cu->box);
	if (cu->puser != NULL) {
		/* hand the sweep's events to the service (bounded wait) */
		pop3_retention_user_events_deinit(cu->puser);
		event_unref(&cu->puser->event);
	}
}

/* Settings, INBOX, transaction, core session. On failure logs, sets the
   exit code and returns -1 (cmd_user_close() must still be called). */
static int cmd_user_open(struct pop3_retention_cmd_context *pctx,
			 struct mail_user *user,
			 struct pop3_retention_cmd_user *cu)
{
	struct doveadm_mail_cmd_context *ctx = &pctx->ctx;
	const struct mail_storage_settings *mail_set =
		pop3_retention_user_mail_set(user);
	struct pop3_retention_mbox_params params;
	struct mail_namespace *ns;
	enum mail_error error_code;
	const char *error;

	i_zero(cu);
	cu->puser = cmd_puser_create(user, &error);
	if (cu->puser == NULL) {
		/* nothing may be decided under settings that did not parse */
		i_error("pop3-retention: Invalid setting, nothing done: %s",
			error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	/* before the host copies the settings into the core session */
	if (pctx->dry_run)
		cu->puser->set.dry_run = TRUE;

	ns = mail_namespace_find_inbox(user->namespaces);
	cu->box = mailbox_alloc(ns->list, "INBOX", MAILBOX_FLAG_IGNORE_ACLS);
	if (mailbox_sync(cu->box, MAILBOX_SYNC_FLAG_FULL_READ) < 0) {
		i_error("pop3-retention: Syncing INBOX failed: %s",
			mailbox_get_last_internal_error(cu->box, &error_code));
		doveadm_mail_failed_error(ctx, error_code);
		return -1;
	}

	/* pop3_delete_type and pop3_deleted_flag are pop3-only settings:
	   doveadm cannot see them, so removals here always expunge or move */
	i_zero(&params);
	params.session_id = user->session_id;
	params.uidl_format = mail_set->pop3_uidl_format;
	cu->mbox = pop3_retention_mbox_init(cu->box, cu->puser, &params,
					    &error);
	if (cu->mbox == NULL) {
		i_error("pop3-retention: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	cu->trans = mailbox_transaction_begin(cu->box, ctx->transaction_flags,
					      "doveadm pop3-retention");
	if (pop3_retention_mbox_load(cu->mbox, cu->trans, &error) < 0) {
		i_error("pop3-retention: Reading INBOX failed: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

/* status */

static const char *
status_state(const struct retention_facts *facts,
	     const struct retention_decision *d)
{
	if (d->action == RETENTION_ACTION_REMOVE)
		return "removable-now";
	/* HIDE without the keyword: visible_since keeps it out of POP3 */
	if (facts->hidden || d->action == RETENTION_ACTION_HIDE ||
	    d->action == RETENTION_ACTION_RETAIN)
		return "hidden";
	return "keep";
}

static const char *status_why(const struct retention_decision *d)
{
	if (d->action == RETENTION_ACTION_REMOVE)
		return retention_reason_name(d->reason);
	if (d->due_at != 0)
		return retention_reason_name(d->due_reason);
	return retention_reason_name(d->reason);
}

static void status_print_message(struct pop3_retention_cmd_user *cu,
				 struct mail *mail, unsigned int idx)
{
	struct retention_session *session =
		pop3_retention_mbox_session(cu->mbox);
	const struct retention_facts *facts =
		retention_session_facts(session, idx);
	struct retention_decision d;
	time_t arrived;

	retention_session_decide(session, idx, RETENTION_MOMENT_SWEEP,
				 ioloop_time, &d);
	doveadm_print_num(mail->uid);
	doveadm_print(pop3_retention_mbox_uidl(cu->mbox, mail));
	/* looked up here: the session holds the arrival only when a rule
	   needs it */
	if (mail_get_received_date(mail, &arrived) < 0)
		arrived = 0;
	doveadm_print(time_or(arrived, "-"));
	doveadm_print(facts->state_unknown ? "unknown" :
		      time_or(facts->first_retrieved_at, "-"));
	doveadm_print(status_state(facts, &d));
	doveadm_print(time_or(d.due_at, "never"));
	doveadm_print(status_why(&d));
}

static int cmd_status_run(struct doveadm_mail_cmd_context *ctx,
			  struct mail_user *user)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);
	struct pop3_retention_cmd_user cu;
	struct mail *mail;
	unsigned int idx, count;

	io_loop_time_refresh();
	if (cmd_user_open(pctx, user, &cu) < 0) {
		cmd_user_close(&cu);
		return -1;
	}
	mail = mail_alloc(cu.trans, MAIL_FETCH_RECEIVED_DATE, NULL);
	count = retention_session_count(pop3_retention_mbox_session(cu.mbox));
	for (idx = 0; idx < count; idx++) {
		uint32_t uid = pop3_retention_mbox_uid(cu.mbox, idx);

		if (!mail_set_uid(mail, uid))
			continue; /* expunged meanwhile */
		T_BEGIN {
			status_print_message(&cu, mail, idx);
		} T_END;
	}
	mail_free(&mail);
	cmd_user_close(&cu);
	return 0;
}

static void
cmd_status_init(struct pop3_retention_cmd_context *pctx ATTR_UNUSED)
{
	doveadm_print_header("uid", "uid",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("uidl");
	doveadm_print_header_simple("arrived");
	doveadm_print_header_simple("first_retrieved");
	doveadm_print_header_simple("state");
	doveadm_print_header_simple("removable_at");
	doveadm_print_header_simple("why");
}

static struct doveadm_mail_cmd_context *cmd_status_alloc(void)
{
	struct pop3_retention_cmd_context *pctx;

	/* a row per message: -A adds the user to each */
	pctx = doveadm_pop3_retention_cmd_alloc(FALSE);
	pctx->init = cmd_status_init;
	pctx->ctx.v.run = cmd_status_run;
	return &pctx->ctx;
}

/* sweep */

static void sweep_progress_clear(struct pop3_retention_cmd_context *pctx)
{
	if (!pctx->progress_shown)
		return;
	/* erase the line so that this user's log lines start clean */
	fputs("\r\033[K", stderr);
	pctx->progress_shown = FALSE;
}

static void sweep_progress_show(struct pop3_retention_cmd_context *pctx)
{
	if (!pctx->progress)
		return;
	fflush(stdout);
	fprintf(stderr, "\rpop3-retention sweep: %u users, %u removed",
		pctx->users, pctx->removed);
	fflush(stderr);
	pctx->progress_shown = TRUE;
}

static void sweep_print_row(const struct retention_session_stats *stats,
			    unsigned int hidden)
{
	doveadm_print_num(stats->removed);
	doveadm_print_num(stats->retained);
	doveadm_print_num(hidden);
	doveadm_print_num(stats->failed);
}

/* Messages the plan leaves hidden from POP3 (retained earlier, or before
   visible_since). Counted here: the core's stats count hidden messages
   only when a POP3 listing is built. */
static unsigned int sweep_plan_hidden(const struct retention_plan *plan)
{
	unsigned int i, hidden = 0;

	for (i = 0; i < plan->count; i++) {
		if (plan->entries[i].decision.action == RETENTION_ACTION_HIDE)
			hidden++;
	}
	return hidden;
}

static void sweep_print_skipped(void)
{
	unsigned int i;

	for (i = 0; i < 4; i++)
		doveadm_print("-");
}

static int sweep_user(struct pop3_retention_cmd_context *pctx,
		      struct mail_user *user)
{
	struct doveadm_mail_cmd_context *ctx = &pctx->ctx;
	struct pop3_retention_cmd_user cu;
	struct retention_session_stats stats;
	const struct retention_plan *plan;
	struct retention_session *session;
	struct file_lock *lock;
	const char *error;
	unsigned int hidden;
	bool commit;
	int ret;

	/* every POP3 session holds the retention lock shared, whatever
	   pop3_lock_session says: a user with a live session is skipped
	   (its session begin removes what is due) */
	ret = pop3_retention_lock(user, TRUE, 0, &lock, &error);
	if (ret < 0) {
		i_error("pop3-retention: user %s: Can't take the retention "
			"lock, skipped (nothing removed): %s", user->username,
			error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		sweep_print_skipped();
		return -1;
	}
	if (ret == 0) {
		/* pop3 removes what is due at its own session begin */
		i_warning("pop3-retention: user %s: POP3 session in progress, "
			  "skipped", user->username);
		sweep_print_skipped();
		return 0;
	}

	if (cmd_user_open(pctx, user, &cu) < 0) {
		cmd_user_close(&cu);
		file_unlock(&lock);
		sweep_print_skipped();
		return -1;
	}
	session = pop3_retention_mbox_session(cu.mbox);
	plan = retention_session_sweep(session, ioloop_time);
	hidden = sweep_plan_hidden(plan);
	(void)pop3_retention_mbox_apply(cu.mbox, cu.trans, plan);
	/* no UPDATE plan was applied, so end() cannot fail */
	(void)retention_session_end(session, TRUE, &stats);

	commit = !cu.puser->set.dry_run && stats.removed + stats.retained > 0;
	if (commit)
		pop3_retention_mbox_prepare_commit(cu.mbox);
	if (!commit) {
		/* dry run: the events go out as if, marked dry_run */
		mailbox_transaction_rollback(&cu.trans);
		pop3_retention_mbox_release_events(cu.mbox, TRUE);
	} else if (mailbox_transaction_commit(&cu.trans) < 0) {
		i_error("pop3-retention: Committing the sweep failed, "
			"nothing removed: %s",
			mailbox_get_last_internal_error(cu.box, NULL));
		pop3_retention_mbox_release_events(cu.mbox, FALSE);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		stats.failed += stats.removed + stats.retained;
		stats.removed = stats.retained = 0;
		ret = -1;
	} else {
		pop3_retention_test_kill_point("sweep-after-commit");
		pop3_retention_mbox_release_events(cu.mbox, TRUE);
		if (stats.removed > 0 && mailbox_sync(cu.box, 0) < 0) {
			/* the expunges are committed; the next sync
			   finishes them */
			i_error("pop3-retention: Syncing INBOX after the "
				"sweep failed: %s",
				mailbox_get_last_internal_error(cu.box, NULL));
			doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
			ret = -1;
		}
	}
	if (stats.failed > 0) {
		/* each failure was audited with its reason */
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		ret = -1;
	}
	cmd_user_close(&cu);
	file_unlock(&lock);

	sweep_print_row(&stats, hidden);
	pctx->removed += stats.removed;
	return ret < 0 ? -1 : 0;
}

static int cmd_sweep_run(struct doveadm_mail_cmd_context *ctx,
			 struct mail_user *user)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);
	int ret;

	doveadm_pop3_retention_cmd_row_begin(pctx, user);
	/* ioloop_time is not advanced between users of one command */
	io_loop_time_refresh();
	sweep_progress_clear(pctx);
	ret = sweep_user(pctx, user);
	pctx->users++;
	sweep_progress_show(pctx);
	return ret;
}

static void cmd_sweep_init(struct pop3_retention_cmd_context *pctx)
{
#if DOVECOT_PREREQ(2, 4, 0)
	pctx->dry_run = doveadm_cmd_param_flag(pctx->ctx.cctx, "dry-run");
#endif
	pctx->progress = isatty(STDERR_FILENO) != 0;
	doveadm_print_header("removed", "removed",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("retained", "retained",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("hidden", "hidden",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("failed", "failed",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static void cmd_sweep_deinit(struct doveadm_mail_cmd_context *ctx)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

	if (pctx->progress_shown) {
		fputc('\n', stderr);
		pctx->progress_shown = FALSE;
	}
}

#if !DOVECOT_PREREQ(2, 4, 0)
/* 2.4 has the options in ctx->cctx instead (cmd_sweep_init()) */
static bool cmd_sweep_parse_arg(struct doveadm_mail_cmd_context *ctx, int c)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

	switch (c) {
	case 'n':
		pctx->dry_run = TRUE;
		break;
	default:
		return FALSE;
	}
	return TRUE;
}
#endif

static struct doveadm_mail_cmd_context *cmd_sweep_alloc(void)
{
	struct pop3_retention_cmd_context *pctx;

	/* a row per user, also for -u */
	pctx = doveadm_pop3_retention_cmd_alloc(TRUE);
#if !DOVECOT_PREREQ(2, 4, 0)
	pctx->ctx.getopt_args = "n";
	pctx->ctx.v.parse_arg = cmd_sweep_parse_arg;
#endif
	pctx->init = cmd_sweep_init;
	pctx->ctx.v.run = cmd_sweep_run;
	pctx->ctx.v.deinit = cmd_sweep_deinit;
	return &pctx->ctx;
}

static struct doveadm_cmd_ver2 pop3_retention_commands[] = {
	{
		.name = "pop3-retention status",
		.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX,
		.mail_cmd = cmd_status_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "pop3-retention sweep",
		.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[-n|--dry-run]",
		.mail_cmd = cmd_sweep_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('n', "dry-run", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "pop3-retention flush",
		.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX,
		.mail_cmd = doveadm_pop3_retention_flush_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "pop3-retention queue",
		.usage = "",
		.cmd = doveadm_pop3_retention_queue,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAMS_END
	},
};

void doveadm_pop3_retention_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(pop3_retention_commands); i++)
		doveadm_cmd_register_ver2(&pop3_retention_commands[i]);
}

void doveadm_pop3_retention_plugin_deinit(void)
{
	/* neither 2.3 nor 2.4 has doveadm_cmd_unregister_ver2(): doveadm
	   frees its command list itself */
}
