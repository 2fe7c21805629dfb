/* doveadm pop3-retention status|sweep: what the policy says about each
   message of a user's INBOX, and the removals for users who never log in.

   doveadm does not load the pop3 plugin (its hooks live in protocol pop3's
   mail_plugins), so each command builds the user's retention context here
   from the same settings and drives the same host (pop3-retention-mailbox)
   as a POP3 session does. */

#include "lib.h"
#include "ioloop.h"
#include "file-dotlock.h"
#include "module-dir.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mail-storage-settings.h"
#include "mail-user.h"
#include "mailbox-list.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "pop3-retention-common.h"
#include "pop3-retention-mailbox.h"

#include "retention-event.h"
#include "retention-hooks.h"

#include <stdio.h>
#include <unistd.h>

/* pop3's own session lock (src/pop3/pop3-client.c, pop3_lock_session()):
   same name, same place, same staleness, so that a sweep and a POP3
   session with pop3_lock_session=yes exclude each other. */
#define POP3_LOCK_FNAME "dovecot-pop3-session.lock"
#define POP3_SESSION_DOTLOCK_STALE_TIMEOUT_SECS (60 * 5)

const char *doveadm_pop3_retention_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_pop3_retention_plugin_init(struct module *module);
void doveadm_pop3_retention_plugin_deinit(void);

struct pop3_retention_cmd_context {
	struct doveadm_mail_cmd_context ctx;

	/* sweep */
	bool dry_run;
	/* stderr is a terminal: keep a progress line at its bottom */
	bool progress;
	bool progress_shown;
	unsigned int users;
	unsigned int removed;
};

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
	if (cu->puser != NULL)
		event_unref(&cu->puser->event);
}

/* Settings, INBOX, transaction, core session. On failure logs, sets the
   exit code and returns -1 (cmd_user_close() must still be called). */
static int cmd_user_open(struct pop3_retention_cmd_context *pctx,
			 struct mail_user *user,
			 struct pop3_retention_cmd_user *cu)
{
	struct doveadm_mail_cmd_context *ctx = &pctx->ctx;
	const struct mail_storage_settings *mail_set =
		mail_user_set_get_storage_set(user);
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

static void cmd_status_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			    const char *const args[] ATTR_UNUSED)
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

	pctx = doveadm_mail_cmd_alloc(struct pop3_retention_cmd_context);
	pctx->ctx.v.init = cmd_status_init;
	pctx->ctx.v.run = cmd_status_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &pctx->ctx;
}

/* sweep */

/* Take pop3's session lock without waiting. Returns 1 locked, 0 held by
   a POP3 session (or another sweep), -1 error. A dry run takes it too:
   DOTLOCK_CREATE_FLAG_CHECKONLY panics in 2.3.19 when the lock is free,
   and the preview should skip the same users as the real sweep. */
static int sweep_lock(struct mail_user *user, struct dotlock **dotlock_r,
		      const char **error_r)
{
	const struct mail_storage_settings *mail_set =
		mail_user_set_get_storage_set(user);
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct dotlock_settings set;
	enum mailbox_list_path_type type;
	const char *dir, *path;
	int ret;

	if (mailbox_list_get_root_path(ns->list, MAILBOX_LIST_PATH_TYPE_INDEX,
				       &dir))
		type = MAILBOX_LIST_PATH_TYPE_INDEX;
	else if (mailbox_list_get_root_path(ns->list,
					    MAILBOX_LIST_PATH_TYPE_DIR, &dir))
		type = MAILBOX_LIST_PATH_TYPE_DIR;
	else {
		*error_r = "Storage has no root/index directory for the "
			   "POP3 session lock";
		return -1;
	}
	if (mailbox_list_mkdir_root(ns->list, dir, type) < 0) {
		*error_r = t_strdup_printf(
			"Couldn't create root directory %s: %s", dir,
			mailbox_list_get_last_internal_error(ns->list, NULL));
		return -1;
	}
	path = t_strdup_printf("%s/"POP3_LOCK_FNAME, dir);

	i_zero(&set);
	set.timeout = 0;
	set.stale_timeout = POP3_SESSION_DOTLOCK_STALE_TIMEOUT_SECS;
	set.lock_suffix = "";
	set.use_excl_lock = mail_set->dotlock_use_excl;
	set.nfs_flush = mail_set->mail_nfs_storage;
	ret = file_dotlock_create(&set, path, DOTLOCK_CREATE_FLAG_NONBLOCK,
				  dotlock_r);
	if (ret == 0) {
		/* a non-blocking attempt that finds a stale lock (its
		   process is gone) only removes it: try once more */
		ret = file_dotlock_create(&set, path,
					  DOTLOCK_CREATE_FLAG_NONBLOCK,
					  dotlock_r);
	}
	if (ret < 0) {
		*error_r = t_strdup_printf("file_dotlock_create(%s) failed: %m",
					   path);
	}
	return ret;
}

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
	struct dotlock *dotlock;
	const char *error;
	unsigned int hidden;
	int ret;

	ret = sweep_lock(user, &dotlock, &error);
	if (ret < 0) {
		i_error("pop3-retention: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		sweep_print_skipped();
		return -1;
	}
	if (ret == 0) {
		/* pop3 removes what is due at its own session begin */
		i_warning("pop3-retention: POP3 session in progress, skipped");
		sweep_print_skipped();
		return 0;
	}

	if (cmd_user_open(pctx, user, &cu) < 0) {
		cmd_user_close(&cu);
		(void)file_dotlock_delete(&dotlock);
		sweep_print_skipped();
		return -1;
	}
	session = pop3_retention_mbox_session(cu.mbox);
	plan = retention_session_sweep(session, ioloop_time);
	hidden = sweep_plan_hidden(plan);
	(void)pop3_retention_mbox_apply(cu.mbox, cu.trans, plan);
	/* no UPDATE plan was applied, so end() cannot fail */
	(void)retention_session_end(session, TRUE, &stats);

	if (cu.puser->set.dry_run || stats.removed + stats.retained == 0)
		mailbox_transaction_rollback(&cu.trans);
	else if (mailbox_transaction_commit(&cu.trans) < 0) {
		i_error("pop3-retention: Committing the sweep failed, "
			"nothing removed: %s",
			mailbox_get_last_internal_error(cu.box, NULL));
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		stats.failed += stats.removed + stats.retained;
		stats.removed = stats.retained = 0;
		ret = -1;
	} else if (stats.removed > 0 && mailbox_sync(cu.box, 0) < 0) {
		/* the expunges are committed; the next sync finishes them */
		i_error("pop3-retention: Syncing INBOX after the sweep "
			"failed: %s",
			mailbox_get_last_internal_error(cu.box, NULL));
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		ret = -1;
	}
	if (stats.failed > 0) {
		/* each failure was audited with its reason */
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		ret = -1;
	}
	cmd_user_close(&cu);
	(void)file_dotlock_delete(&dotlock);

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

	/* ioloop_time is not advanced between users of one command */
	io_loop_time_refresh();
	sweep_progress_clear(pctx);
	ret = sweep_user(pctx, user);
	pctx->users++;
	sweep_progress_show(pctx);
	return ret;
}

static void cmd_sweep_init(struct doveadm_mail_cmd_context *ctx,
			   const char *const args[] ATTR_UNUSED)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

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

static struct doveadm_mail_cmd_context *cmd_sweep_alloc(void)
{
	struct pop3_retention_cmd_context *pctx;

	pctx = doveadm_mail_cmd_alloc(struct pop3_retention_cmd_context);
	pctx->ctx.getopt_args = "n";
	pctx->ctx.v.parse_arg = cmd_sweep_parse_arg;
	pctx->ctx.v.init = cmd_sweep_init;
	pctx->ctx.v.run = cmd_sweep_run;
	pctx->ctx.v.deinit = cmd_sweep_deinit;
	/* one row per user, also for -u: doveadm then prints the user in
	   its own sticky "username" column, as it does for -A */
	pctx->ctx.add_username_header = TRUE;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
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
};

void doveadm_pop3_retention_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(pop3_retention_commands); i++)
		doveadm_cmd_register_ver2(&pop3_retention_commands[i]);
}

void doveadm_pop3_retention_plugin_deinit(void)
{
	/* 2.3 has no doveadm_cmd_unregister_ver2(): doveadm frees its
	   command list itself */
}
