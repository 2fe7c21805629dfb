/* doveadm pop3-retention status|sweep|flush|queue: what the policy says
   about each message of a user's INBOX, the removals for users who never
   log in, the hand-over of users' webhook outboxes to the delivery
   service, and the service's queue.

   doveadm does not load the pop3 plugin (its hooks live in protocol pop3's
   mail_plugins), so each command builds the user's retention context here
   from the same settings and drives the same host (pop3-retention-mailbox)
   as a POP3 session does. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "strescape.h"
#include "strnum.h"
#include "str-sanitize.h"
#include "ioloop.h"
#include "net.h"
#include "file-lock.h"
#include "module-dir.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mail-storage-settings.h"
#include "mail-user.h"
#include "mailbox-list.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "doveadm.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "pop3-retention-common.h"
#include "pop3-retention-lock.h"
#include "pop3-retention-mailbox.h"
#include "pop3-retention-pending.h"
#include "pop3-retention-protocol.h"

#include "retention-event.h"
#include "retention-hooks.h"
#include "webhook-spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

/* How long a command waits for the pop3-retention service to answer
   (each answer; a batch is committed with one sync). */
#define SERVICE_TIMEOUT_MSECS (30 * 1000)
/* Outbox events sent to the service per round trip: each is answered
   once the whole batch is durable. */
#define FLUSH_BATCH_MAX 100

const char *doveadm_pop3_retention_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_pop3_retention_plugin_init(struct module *module);
void doveadm_pop3_retention_plugin_deinit(void);

struct service_client;

struct pop3_retention_cmd_context {
	struct doveadm_mail_cmd_context ctx;

	/* sweep */
	bool dry_run;
	/* stderr is a terminal: keep a progress line at its bottom */
	bool progress;
	bool progress_shown;
	unsigned int users;
	unsigned int removed;

	/* flush: one connection to the service for every user */
	struct service_client *service;
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

/* A blocking client of the pop3-retention service's line protocol
   (pop3-retention-protocol.h), with a deadline on every wait. */

struct service_client {
	char *path;
	int fd;
	buffer_t *input;
	size_t input_pos;
};

static void service_client_close(struct service_client **_client)
{
	struct service_client *client = *_client;

	if (client == NULL)
		return;
	*_client = NULL;
	i_close_fd(&client->fd);
	buffer_free(&client->input);
	i_free(client->path);
	i_free(client);
}

static int service_client_wait(struct service_client *client, short events,
			       const char **error_r)
{
	struct pollfd pfd;
	int ret;

	i_zero(&pfd);
	pfd.fd = client->fd;
	pfd.events = events;
	ret = poll(&pfd, 1, SERVICE_TIMEOUT_MSECS);
	if (ret < 0 && errno != EINTR) {
		*error_r = t_strdup_printf("poll(%s) failed: %m", client->path);
		return -1;
	}
	if (ret == 0) {
		*error_r = t_strdup_printf("%s: no answer in %u s",
					   client->path,
					   SERVICE_TIMEOUT_MSECS / 1000);
		return -1;
	}
	return 0;
}

static int service_client_send(struct service_client *client,
			       const void *data, size_t size,
			       const char **error_r)
{
	const unsigned char *p = data;
	ssize_t ret;

	while (size > 0) {
		ret = write(client->fd, p, size);
		if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (service_client_wait(client, POLLOUT, error_r) < 0)
				return -1;
			continue;
		}
		if (ret <= 0) {
			*error_r = t_strdup_printf("write(%s) failed: %m",
						   client->path);
			return -1;
		}
		p += ret;
		size -= (size_t)ret;
	}
	return 0;
}

/* The next line, without its LF, valid until the next read. */
static int service_client_read_line(struct service_client *client,
				    const char **line_r, const char **error_r)
{
	const unsigned char *data, *nl;
	unsigned char *buf;
	size_t avail;
	ssize_t ret;

	for (;;) {
		data = client->input->data;
		avail = client->input->used - client->input_pos;
		nl = memchr(data + client->input_pos, '\n', avail);
		if (nl != NULL) {
			*line_r = t_strndup(data + client->input_pos,
					    (size_t)(nl - (data +
							   client->input_pos)));
			client->input_pos = (size_t)(nl - data) + 1;
			return 0;
		}
		if (client->input_pos > 0) {
			buffer_delete(client->input, 0, client->input_pos);
			client->input_pos = 0;
		}
		if (client->input->used >= POP3_RETENTION_PROTOCOL_LINE_MAX) {
			*error_r = t_strdup_printf("%s: answer line too long",
						   client->path);
			return -1;
		}
		buf = buffer_append_space_unsafe(client->input, 4096);
		ret = read(client->fd, buf, 4096);
		buffer_set_used_size(client->input, client->input->used -
				     4096 + (ret > 0 ? (size_t)ret : 0));
		if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (service_client_wait(client, POLLIN, error_r) < 0)
				return -1;
			continue;
		}
		if (ret < 0) {
			*error_r = t_strdup_printf("read(%s) failed: %m",
						   client->path);
			return -1;
		}
		if (ret == 0) {
			*error_r = t_strdup_printf("%s: the service closed the "
						   "connection", client->path);
			return -1;
		}
	}
}

/* Connect and exchange the VERSION lines. */
static int service_client_connect(const char *path,
				  struct service_client **client_r,
				  const char **error_r)
{
	struct service_client *client;
	const char *line, *const *args;
	int fd;

	fd = net_connect_unix(path);
	if (fd == -1) {
		*error_r = t_strdup_printf("net_connect_unix(%s) failed: %m",
					   path);
		return -1;
	}
	client = i_new(struct service_client, 1);
	client->fd = fd;
	client->path = i_strdup(path);
	client->input = buffer_create_dynamic(default_pool, 4096);
	if (service_client_send(client, POP3_RETENTION_HANDSHAKE,
				strlen(POP3_RETENTION_HANDSHAKE),
				error_r) < 0 ||
	    service_client_read_line(client, &line, error_r) < 0) {
		service_client_close(&client);
		return -1;
	}
	args = t_strsplit_tabescaped(line);
	if (str_array_length(args) < 4 || strcmp(args[0], "VERSION") != 0 ||
	    strcmp(args[1], POP3_RETENTION_PROTOCOL_NAME) != 0 ||
	    strcmp(args[2], dec2str(POP3_RETENTION_PROTOCOL_MAJOR)) != 0) {
		*error_r = t_strdup_printf("%s is not a compatible "
					   "pop3-retention socket (%s)", path,
					   str_sanitize(line, 80));
		service_client_close(&client);
		return -1;
	}
	*client_r = client;
	return 0;
}

/* flush */

struct flush_file {
	const char *name;
	unsigned int events, acked;
};

struct flush_event {
	unsigned int file_idx;
	const char *id;
	bool answered;
};

/* The files of the outbox's new/ (complete events), oldest first: the
   names start with the creation time. */
static int flush_list(const char *new_dir, ARRAY_TYPE(const_string) *names,
		      const char **error_r)
{
	struct dirent *de;
	DIR *dir;

	dir = opendir(new_dir);
	if (dir == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("opendir(%s) failed: %m", new_dir);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		const char *name = t_strdup(de->d_name);
		array_push_back(names, &name);
	}
	if (closedir(dir) < 0) {
		*error_r = t_strdup_printf("closedir(%s) failed: %m", new_dir);
		return -1;
	}
	array_sort(names, i_strcmp_p);
	return 0;
}

/* The user an outbox line ("<created_ms> TAB <event fields>") names,
   or NULL if the line does not decode (the service refuses it). */
static const char *outbox_line_user(const char *line)
{
	struct retention_event event;
	const char *p = strchr(line, '\t'), *error;

	if (p == NULL ||
	    retention_event_decode(t_strdup_noconst(p + 1), &event,
				   &error) < 0)
		return NULL;
	return event.user;
}

/* Move new/<name> to rejected/<name>: nothing of it is sent, and the
   next flush does not trip over it again. */
static void outbox_set_aside(const char *new_dir, const char *name,
			     const char *why)
{
	const char *dir, *from, *to;

	dir = t_strconcat(new_dir, "/../" POP3_RETENTION_OUTBOX_REJECTED,
			  NULL);
	from = t_strconcat(new_dir, "/", name, NULL);
	to = t_strconcat(dir, "/", name, NULL);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		i_error("pop3-retention: mkdir(%s) failed: %m", dir);
		return;
	}
	if (rename(from, to) < 0) {
		i_error("pop3-retention: rename(%s, %s) failed: %m", from, to);
		return;
	}
	i_error("pop3-retention: %s: set aside in %s, none of its events is "
		"sent", why, to);
}

/* Does every line of an outbox file name the outbox's owner? A user
   who can write the outbox (a shell or SFTP login) must not get events
   about others signed. */
static bool outbox_lines_are_owners(const char *path,
				    const char *const *lines,
				    const char *username, const char **why_r)
{
	const char *user;

	for (; *lines != NULL; lines++) {
		user = outbox_line_user(*lines);
		if (user != NULL && strcmp(user, username) != 0) {
			*why_r = t_strdup_printf(
				"%s holds an event of user %s, not %s", path,
				str_sanitize(user, 64), username);
			return FALSE;
		}
	}
	return TRUE;
}

/* Send the events of one batch of outbox files and unlink each file
   whose every event the service acknowledged (a file with a refused
   event stays whole: the acknowledged ones in it are sent again with
   it, under the same webhook-ids). Counts events in *flushed and
   *kept. Returns 0, or -1 with error_r when the connection failed
   (then *unsent_r counts the events of the batch not acknowledged). */
static int flush_batch(struct service_client *service, const char *new_dir,
		       const char *username, const char *const *names,
		       unsigned int count, unsigned int *flushed,
		       unsigned int *kept, unsigned int *set_aside,
		       unsigned int *unsent_r, const char **error_r)
{
	ARRAY(struct flush_file) files;
	ARRAY(struct flush_event) batch;
	struct flush_file *ff;
	struct flush_event *fe, *found;
	string_t *str = t_str_new(4096);
	const char *path, *line, *const *args, *const *lines, *error, *why;
	unsigned int i, seq = 0, waiting = 0;
	int ret;

	*unsent_r = 0;
	t_array_init(&files, count);
	t_array_init(&batch, count);
	for (i = 0; i < count; i++) {
		path = t_strconcat(new_dir, "/", names[i], NULL);
		ret = pop3_retention_outbox_read(path, &lines, &error);
		if (ret == 0)
			continue; /* flushed by someone else meanwhile */
		if (ret == -2 ||
		    (ret > 0 && !outbox_lines_are_owners(path, lines, username,
							 &why))) {
			outbox_set_aside(new_dir, names[i],
					 ret == -2 ? error : why);
			(*set_aside)++;
			continue;
		}
		if (ret < 0) {
			/* left for the admin to look at */
			i_error("pop3-retention: %s", error);
			(*kept)++;
			continue;
		}
		ff = array_append_space(&files);
		ff->name = names[i];
		for (; *lines != NULL; lines++) {
			fe = array_append_space(&batch);
			fe->file_idx = array_count(&files) - 1;
			fe->id = dec2str(++seq);
			str_printfa(str, "E\t%s\t%s\n", fe->id, *lines);
			ff->events++;
			waiting++;
		}
	}
	if (waiting == 0)
		return 0;
	if (service_client_send(service, str_data(str), str_len(str),
				error_r) < 0) {
		*unsent_r = waiting;
		return -1;
	}

	while (waiting > 0) {
		if (service_client_read_line(service, &line, error_r) < 0) {
			*unsent_r = waiting;
			return -1;
		}
		args = t_strsplit_tabescaped(line);
		if (args[0] == NULL || args[1] == NULL ||
		    (strcmp(args[0], "A") != 0 && strcmp(args[0], "R") != 0))
			continue;
		found = NULL;
		array_foreach_modifiable(&batch, fe) {
			if (!fe->answered && strcmp(fe->id, args[1]) == 0) {
				found = fe;
				break;
			}
		}
		if (found == NULL)
			continue;
		fe = found;
		fe->answered = TRUE;
		waiting--;
		if (args[0][0] == 'R') {
			i_warning("pop3-retention: The service refused event "
				  "%s (%s): kept in the outbox", fe->id,
				  args[2] != NULL ? args[2] : "");
			(*kept)++;
			continue;
		}
		ff = array_idx_modifiable(&files, fe->file_idx);
		ff->acked++;
		(*flushed)++;
	}
	array_foreach_modifiable(&files, ff) {
		if (ff->acked != ff->events)
			continue;
		/* durable in the service's spool: the copy here goes */
		path = t_strconcat(new_dir, "/", ff->name, NULL);
		if (unlink(path) < 0 && errno != ENOENT) {
			/* it will be sent again; receivers dedupe on the
			   webhook-id */
			i_error("pop3-retention: unlink(%s) failed: %m", path);
		}
	}
	return 0;
}

/* Events in the outbox files names[0..count) (unreadable files count
   one), for the "kept" column when they are not sent. */
static unsigned int flush_count_events(const char *new_dir,
				       const char *const *names,
				       unsigned int count)
{
	const char *const *lines, *error;
	unsigned int i, events = 0;
	int ret;

	for (i = 0; i < count; i++) T_BEGIN {
		ret = pop3_retention_outbox_read(t_strconcat(new_dir, "/",
							     names[i], NULL),
						 &lines, &error);
		if (ret < 0)
			events++;
		else if (ret > 0)
			events += str_array_length(lines);
	} T_END;
	return events;
}

static void flush_print_row(unsigned int flushed, unsigned int kept)
{
	doveadm_print_num(flushed);
	doveadm_print_num(kept);
}

static int cmd_flush_run(struct doveadm_mail_cmd_context *ctx,
			 struct mail_user *user)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	ARRAY_TYPE(const_string) names;
	const char *outbox_dir, *new_dir, *socket_path, *error;
	const char *const *all;
	unsigned int i, count, n, flushed = 0, kept = 0, set_aside = 0;
	unsigned int unsent;
	int ret = 0, fd;

	outbox_dir = t_strconcat(mailbox_list_get_root_forced(
		ns->list, MAILBOX_LIST_PATH_TYPE_INDEX), "/",
		POP3_RETENTION_OUTBOX_DIR, NULL);
	new_dir = t_strconcat(outbox_dir, "/new", NULL);
	t_array_init(&names, 32);
	if (flush_list(new_dir, &names, &error) < 0) {
		i_error("pop3-retention: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		flush_print_row(0, 0);
		return -1;
	}
	all = array_get(&names, &count);
	if (count == 0) {
		flush_print_row(0, 0);
		return 0;
	}

	socket_path = t_strconcat(user->set->base_dir, "/",
				  POP3_RETENTION_SOCKET_NAME, NULL);
	if (pctx->service == NULL &&
	    service_client_connect(socket_path, &pctx->service, &error) < 0) {
		i_error("pop3-retention: The pop3-retention service is "
			"unreachable (%s): nothing flushed, the %u outbox "
			"file(s) stay in %s", error, count, outbox_dir);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		flush_print_row(0, flush_count_events(new_dir, all, count));
		return -1;
	}
	for (i = 0; i < count; i += n) {
		n = I_MIN(count - i, FLUSH_BATCH_MAX);
		T_BEGIN {
			ret = flush_batch(pctx->service, new_dir,
					  user->username, all + i, n,
					  &flushed, &kept, &set_aside,
					  &unsent, &error);
			if (ret < 0)
				error = p_strdup(ctx->pool, error);
		} T_END;
		if (ret < 0) {
			/* what was not sent yet stays too */
			kept += unsent + flush_count_events(new_dir, all + i + n,
							    count - i - n);
			i_error("pop3-retention: Flushing the outbox %s "
				"failed: %s; %u event(s) not flushed stay "
				"there", outbox_dir, error, kept);
			service_client_close(&pctx->service);
			doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
			break;
		}
	}
	if (flushed > 0) {
		/* the unlinks, once for the user: losing them in a crash
		   only means sending those events again */
		fd = open(new_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd != -1) {
			(void)fsync(fd);
			i_close_fd(&fd);
		}
	}
	if ((kept > 0 || set_aside > 0) && ret == 0)
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
	flush_print_row(flushed, kept);
	/* a connection per user: the service drops idle ones */
	service_client_close(&pctx->service);
	return ret < 0 || kept > 0 || set_aside > 0 ? -1 : 0;
}

static void cmd_flush_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			   const char *const args[] ATTR_UNUSED)
{
	doveadm_print_header("flushed", "flushed",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("kept", "kept",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static void cmd_flush_deinit(struct doveadm_mail_cmd_context *ctx)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

	service_client_close(&pctx->service);
}

static struct doveadm_mail_cmd_context *cmd_flush_alloc(void)
{
	struct pop3_retention_cmd_context *pctx;

	pctx = doveadm_mail_cmd_alloc(struct pop3_retention_cmd_context);
	pctx->ctx.v.init = cmd_flush_init;
	pctx->ctx.v.run = cmd_flush_run;
	pctx->ctx.v.deinit = cmd_flush_deinit;
	pctx->ctx.add_username_header = TRUE;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &pctx->ctx;
}

/* queue */

static void queue_print_headers(void)
{
	static const char *const numbers[] = {
		"pending", "retrying", "dead_lettered", "corrupt",
		"oldest_secs", "delivered", "failed", NULL
	};
	unsigned int i;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	for (i = 0; numbers[i] != NULL; i++) {
		doveadm_print_header(numbers[i], numbers[i],
				     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	}
	doveadm_print_header_simple("disabled");
	doveadm_print_header_simple("state");
}

/* Ask the service. Returns 0 with the Q line's fields, -1 with error_r
   (unreachable). */
static int queue_ask(const char *socket_path, const char *const **args_r,
		     const char **error_r)
{
	struct service_client *service;
	const char *line;
	int ret;

	if (service_client_connect(socket_path, &service, error_r) < 0)
		return -1;
	ret = service_client_send(service, "Q\n", 2, error_r);
	while (ret == 0) {
		ret = service_client_read_line(service, &line, error_r);
		if (ret == 0 && line[0] == 'Q' && line[1] == '\t') {
			*args_r = t_strsplit_tabescaped(line + 2);
			break;
		}
	}
	service_client_close(&service);
	if (ret == 0 && str_array_length(*args_r) < 9) {
		*error_r = t_strdup_printf("%s: malformed Q answer",
					   socket_path);
		return -1;
	}
	return ret;
}

/* The service is down: count the spool's files without touching them. */
static int queue_read_spool(const char *spool_dir, const char **error_r)
{
	struct webhook_spool *spool;
	struct webhook_spool_counts counts;
	int64_t oldest = -1;

	i_zero(&counts);
	counts.oldest_created_ms = -1;
	/* a spool that does not exist yet is empty */
	if (access(spool_dir, F_OK) == 0 || errno != ENOENT) {
		spool = webhook_spool_create(spool_dir,
					     WEBHOOK_SPOOL_READ_ONLY);
		if (spool == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		if (webhook_spool_open(spool) < 0) {
			*error_r = t_strdup(webhook_spool_error(spool));
			webhook_spool_destroy(&spool);
			return -1;
		}
		webhook_spool_counts(spool, &counts);
		webhook_spool_destroy(&spool);
	}
	if (counts.pending > 0 && counts.oldest_created_ms >= 0) {
		oldest = (int64_t)time(NULL) - counts.oldest_created_ms / 1000;
		if (oldest < 0)
			oldest = 0;
	}
	doveadm_print_num(counts.pending);
	doveadm_print_num(counts.retrying);
	doveadm_print_num(counts.dead);
	doveadm_print_num(counts.corrupt);
	doveadm_print(oldest < 0 ? "-" : dec2str(oldest));
	doveadm_print("-");
	doveadm_print("-");
	doveadm_print("-");
	doveadm_print("unreachable");
	return 0;
}

/* Drop files in dir (pop3-retention-protocol.h): events the service
   has not taken yet, or taken and not removed yet. */
static void queue_warn_drop_files(const char *dir, const char *why)
{
	struct dirent *d;
	unsigned int count = 0;
	DIR *dirp;

	dirp = opendir(dir);
	if (dirp == NULL)
		return;
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] != '.')
			count++;
	}
	(void)closedir(dirp);
	if (count > 0) {
		i_warning("pop3-retention: %u drop file(s) in %s wait %s",
			  count, dir, why);
	}
}

static void cmd_queue(struct doveadm_cmd_context *cctx ATTR_UNUSED)
{
	const struct master_service_settings *mset =
		master_service_settings_get(master_service);
	const char *socket_path, *spool_dir, *drop_dir, *const *args, *error;
	const char *error2;
	unsigned int i;

	socket_path = t_strconcat(doveadm_settings->base_dir, "/",
				  POP3_RETENTION_SOCKET_NAME, NULL);
	drop_dir = t_strconcat(doveadm_settings->base_dir, "/",
			       POP3_RETENTION_DROP_DIR, NULL);
	spool_dir = t_strconcat(mset->state_dir, "/",
				POP3_RETENTION_SPOOL_DIR, NULL);
	queue_print_headers();
	if (queue_ask(socket_path, &args, &error) == 0) {
		/* pending retrying dead corrupt oldest disabled delivered
		   failed dead-lettered [in-flight state] */
		for (i = 0; i < 5; i++) {
			doveadm_print(strcmp(args[i], "-1") == 0 ?
				      "-" : args[i]);
		}
		doveadm_print(args[6]);
		doveadm_print(args[7]);
		doveadm_print(strcmp(args[5], "0") == 0 ? "no" : "yes");
		doveadm_print(args[9] != NULL && args[10] != NULL ?
			      args[10] : "delivering");
		if (args[9] != NULL && args[10] != NULL &&
		    strcmp(args[10], "standby") == 0) {
			queue_warn_drop_files(drop_dir, "for the service to "
					      "take the spool over");
		}
		return;
	}
	i_warning("pop3-retention: The pop3-retention service is unreachable "
		  "(%s): counts read from the spool %s", error, spool_dir);
	if (queue_read_spool(spool_dir, &error2) < 0) {
		i_error("pop3-retention: Reading the spool failed: %s", error2);
		doveadm_exit_code = EX_TEMPFAIL;
		return;
	}
	queue_warn_drop_files(drop_dir, "for the service");
	doveadm_exit_code = EX_TEMPFAIL;
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
		.mail_cmd = cmd_flush_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "pop3-retention queue",
		.usage = "",
		.cmd = cmd_queue,
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
	/* 2.3 has no doveadm_cmd_unregister_ver2(): doveadm frees its
	   command list itself */
}
