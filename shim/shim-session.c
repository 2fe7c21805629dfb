/* The shim's host of the core over one Maildir (see the header). */

#include "shim-session.h"
#include "shim-config.h"
#include "shim-log.h"
#include "shim-maildir.h"
#include "shim-passwd.h"
#include "shim-state.h"
#include "shim-webhook.h"

#include "retention-event-codec.h"
#include "retention-hooks.h"
#include "retention-policy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the events of a commit in progress (see pending_write()) */
#define PENDING_FNAME "pop3-retentiond.pending"
/* a pending file larger than this is not ours: it is removed unread */
#define PENDING_SIZE_MAX (16 * 1024 * 1024)

enum session_mode {
	SESSION_POP3,
	SESSION_SWEEP,
	SESSION_STATUS,
};

struct shim_session {
	enum session_mode mode;
	struct retention_settings set;
	char user[SHIM_USER_MAX + 1];
	char id[64];
	struct shim_maildir *md;
	/* NULL when the state file could not be read: removals withheld */
	struct shim_state *state;
	char state_path[SHIM_PATH_MAX];
	struct retention_session *core;
	struct retention_host host;
	struct shim_webhook *webhook;

	/* listed message number - 1 -> maildir index, and its DELE */
	unsigned int *listed;
	bool *deleted;
	unsigned int listed_count;

	/* the maildir indexes whose removal failed in the last apply */
	bool *failed;
	/* removals decided by the last apply, carried out at the commit */
	bool *staged;
	unsigned int commit_failures;
	/* the held events as pending lines ("<created_ms>\t<fields>\n"),
	   written to <maildir>/pop3-retentiond.pending before the commit */
	char *pending;
	size_t pending_len, pending_size;
	char pending_path[SHIM_PATH_MAX];
	/* session begin failed (state unreadable): nothing is removed */
	bool withhold;
	unsigned int withheld;
	bool quit;
	/* inside retention_session_retrieved(): state saved at once */
	bool retrieving;
	char message_id[1000];
	char expire[16];
};

static const char *user_log(const struct shim_session *s)
{
	return s->user;
}

/* ---- the host interface ---- */

static int host_message_info(void *context, unsigned int idx,
			     struct retention_message_info *info_r)
{
	struct shim_session *s = context;
	const struct shim_maildir_msg *msg;
	char error[256];

	memset(info_r, 0, sizeof(*info_r));
	if (idx >= shim_maildir_count(s->md))
		return -1;
	msg = shim_maildir_msg(s->md, idx);
	info_r->uidl = msg->uidl;
	info_r->size = msg->size;
	/* the Message-ID is for events only */
	if (s->host.event != NULL &&
	    shim_maildir_message_id(s->md, idx, s->message_id,
				    sizeof(s->message_id), error,
				    sizeof(error)) > 0)
		info_r->message_id = s->message_id;
	return 0;
}

static char host_error[512];

/* Removals wait for the commit (session_commit()): their events are
   recorded as pending first, so that a kill between a removal and its
   event's hand-off loses nothing. */
static int host_message_remove(void *context, unsigned int idx,
			       const char **error_r)
{
	struct shim_session *s = context;

	(void)error_r;
	s->staged[idx] = true;
	return 0;
}

static int host_message_retain(void *context, unsigned int idx,
			       const char **error_r)
{
	struct shim_session *s = context;
	const char *base = shim_maildir_msg(s->md, idx)->base;

	if (shim_state_set_hidden(s->state, base, true) < 0) {
		s->failed[idx] = true;
		*error_r = "Out of memory";
		return -1;
	}
	return 0;
}

/* A download is recorded when it completes, saved at once: a process
   killed right after it leaves the same state as one that disconnects
   (recording a fact removes nothing, so it does not wait for QUIT).
   Not fsynced, as Dovecot does not fsync its index: a power failure can
   only forget a download, which delays removal. */
static int host_state_write(void *context, unsigned int idx,
			    time_t first_retrieved_at, const char **error_r)
{
	struct shim_session *s = context;
	const struct shim_maildir_msg *msg = shim_maildir_msg(s->md, idx);

	if (shim_state_set_retrieved(s->state, msg->base,
				     first_retrieved_at) < 0) {
		*error_r = "Out of memory";
	} else if (!s->retrieving ||
		   shim_state_save(s->state, false, host_error,
				   sizeof(host_error)) == 0) {
		return 0;
	} else {
		*error_r = host_error;
	}
	shim_warning("session=%s user=%s: first retrieval of %s not "
		     "recorded: %s (removal under keep is delayed)", s->id,
		     user_log(s), msg->uidl, *error_r);
	return -1;
}

static bool event_is_removal(const struct retention_event *event)
{
	return event->type == RETENTION_EVENT_DELETED ||
	       event->type == RETENTION_EVENT_EXPIRED;
}

/* The maildir index of the message whose UIDL is uidl, or -1. */
static int find_uidl(const struct shim_session *s, const char *uidl)
{
	unsigned int i, count = shim_maildir_count(s->md);

	for (i = 0; uidl != NULL && i < count; i++) {
		if (strcmp(shim_maildir_msg(s->md, i)->uidl, uidl) == 0)
			return (int)i;
	}
	return -1;
}

/* Events reach the spool (or incoming/) before the session goes on; a
   plan's removal events only after its changes are done (the core holds
   them until retention_session_commit_done()), and not at all for a
   removal that failed at the commit. */
static void host_event(void *context, const struct retention_event *event)
{
	struct shim_session *s = context;
	int idx;

	if (s->commit_failures > 0 && event_is_removal(event) &&
	    (idx = find_uidl(s, event->uidl)) >= 0 && s->failed[idx])
		return;
	(void)shim_webhook_send(s->webhook, event);
}

static void host_event_pending(void *context,
			       const struct retention_event *event)
{
	struct shim_session *s = context;
	size_t need = s->pending_len + RETENTION_EVENT_ENCODED_MAX + 32;
	int n;

	if (need > s->pending_size) {
		char *p = realloc(s->pending, need * 2);

		if (p == NULL)
			return;
		s->pending = p;
		s->pending_size = need * 2;
	}
	n = snprintf(s->pending + s->pending_len,
		     s->pending_size - s->pending_len, "%lld\t",
		     (long long)event->timestamp * 1000);
	if (n < 0)
		return;
	n += retention_event_encode(event, s->pending + s->pending_len + n,
				    s->pending_size - s->pending_len - n - 1);
	s->pending[s->pending_len + n] = '\n';
	s->pending_len += (size_t)n + 1;
}

static void host_events_settled(void *context, bool committed)
{
	struct shim_session *s = context;

	(void)committed;
	s->pending_len = 0;
	if (unlink(s->pending_path) < 0 && errno != ENOENT) {
		shim_error("session=%s user=%s: unlink(%s) failed: %s", s->id,
			   s->user, s->pending_path, strerror(errno));
	}
}

static void host_audit(void *context, const struct retention_audit *audit)
{
	struct shim_session *s = context;

	shim_log(audit->failed ? SHIM_LOG_ERROR : SHIM_LOG_INFO,
		 "session=%s user=%s %s", s->id, user_log(s), audit->line);
}

static const struct retention_host shim_host_template = {
	.message_info = host_message_info,
	.message_remove = host_message_remove,
	.message_retain = host_message_retain,
	.state_write = host_state_write,
	.event = NULL,
	.event_pending = NULL,
	.events_settled = NULL,
	.audit = host_audit,
};

/* ---- the commit ---- */

/* POP3_RETENTIOND_TEST_KILL names a point where the process kills
   itself (the tests' crash points; nothing else sets it). */
static bool test_kill_point(const char *name)
{
	const char *value = getenv("POP3_RETENTIOND_TEST_KILL");

	return value != NULL && strcmp(value, name) == 0;
}

/* The held events, durable before the commit (temp file, fsync,
   rename): a process killed between a removal and the events' hand-off
   leaves them here for the next session of this maildrop. */
static void pending_write(struct shim_session *s)
{
	char temp[SHIM_PATH_MAX + 16];
	int fd;

	(void)snprintf(temp, sizeof(temp), "%s.tmp", s->pending_path);
	fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0 || write(fd, s->pending, s->pending_len) !=
			      (ssize_t)s->pending_len ||
	    fsync(fd) < 0 || close(fd) < 0 || rename(temp, s->pending_path) < 0) {
		/* the removals go on: only a kill now would lose events */
		shim_error("session=%s user=%s: recording pending events in %s "
			   "failed: %s", s->id, s->user, s->pending_path,
			   strerror(errno));
		if (fd >= 0)
			(void)unlink(temp);
	}
}

/* A pending file left by a killed process: a removal whose message is
   gone happened (its event is handed over with its original webhook-id),
   one whose message is still there did not; a retain happened if the
   message is hidden. */
static void pending_reconcile(struct shim_session *s,
			      struct shim_webhook *webhook)
{
	unsigned int sent = 0, dropped = 0;
	char *buf = NULL, *line, *next;
	struct stat st;
	ssize_t n = 0;
	int fd;

	fd = open(s->pending_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		  O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size <= PENDING_SIZE_MAX &&
	    (buf = malloc((size_t)st.st_size + 1)) != NULL)
		n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	for (line = buf; webhook != NULL && buf != NULL && n > 0 &&
	     line < buf + n; line = next) {
		struct retention_event event;
		const struct shim_state_entry *e;
		const char *error;
		char *tab, *end = memchr(line, '\n', (size_t)(buf + n - line));
		int idx;

		if (end == NULL)
			break;	/* a line cut by the kill: never written whole */
		*end = '\0';
		next = end + 1;
		tab = strchr(line, '\t');
		if (tab == NULL ||
		    retention_event_decode(tab + 1, &event, &error) < 0) {
			dropped++;
			continue;
		}
		idx = find_uidl(s, event.uidl);
		e = idx < 0 || s->state == NULL ? NULL :
			shim_state_get(s->state,
				       shim_maildir_msg(s->md, idx)->base);
		if ((event_is_removal(&event) && idx < 0) ||
		    (event.type == RETENTION_EVENT_RETAINED && e != NULL &&
		     e->hidden)) {
			(void)shim_webhook_send(webhook, &event);
			sent++;
		} else {
			dropped++;
		}
	}
	free(buf);
	(void)unlink(s->pending_path);
	shim_info("session=%s user=%s: a killed session's pending events "
		  "reconciled: %u sent, %u dropped (not done)", s->id, s->user,
		  sent, dropped);
}

/* Carry out the staged removals; a failure keeps the message (it stays
   listed, its event is not sent). Returns how many were carried out. */
static unsigned int removals_carry_out(struct shim_session *s)
{
	unsigned int i, count = shim_maildir_count(s->md), done = 0;
	char error[512];

	s->commit_failures = 0;
	for (i = 0; i < count; i++) {
		const struct shim_maildir_msg *msg;
		int ret;

		if (!s->staged[i])
			continue;
		s->staged[i] = false;
		msg = shim_maildir_msg(s->md, i);
		if (s->set.remove.kind == RETENTION_REMOVE_MOVE) {
			ret = shim_maildir_move(s->md, i, s->set.remove.mailbox,
						error, sizeof(error));
		} else {
			ret = shim_maildir_expunge(s->md, i, error,
						   sizeof(error));
		}
		if (ret < 0) {
			s->failed[i] = true;
			s->commit_failures++;
			shim_error("session=%s user=%s action=remove uidl=%s "
				   "failed, the message is kept: %s", s->id,
				   s->user, msg->uidl, error);
		} else {
			done++;
			if (s->state != NULL)
				shim_state_forget(s->state, msg->base);
		}
	}
	return done;
}

static void session_save(struct shim_session *s);

/* The plans applied since the last commit: events recorded as pending,
   removals carried out, the state saved, then the events handed over. */
static void session_commit(struct shim_session *s)
{
	if (retention_session_commit_prepare(s->core) > 0 &&
	    s->pending_len > 0)
		pending_write(s);
	/* tests only: die where a crash costs the most */
	if (removals_carry_out(s) > 0 && test_kill_point("after-removals"))
		(void)raise(SIGKILL);
	session_save(s);
	(void)retention_session_commit_done(s->core, true);
}

/* ---- opening ---- */

static int size_lookup(void *context, const char *base, uint64_t *size_r)
{
	struct shim_session *s = context;
	const struct shim_state_entry *e;

	if (s->state == NULL || (e = shim_state_get(s->state, base)) == NULL ||
	    e->size == 0)
		return 0;
	*size_r = e->size;
	return 1;
}

static void session_free(struct shim_session *s)
{
	if (s->core != NULL)
		retention_session_destroy(&s->core);
	shim_state_free(&s->state);
	shim_maildir_close(&s->md);
	free(s->listed);
	free(s->deleted);
	free(s->failed);
	free(s->staged);
	free(s->pending);
	free(s);
}

/* Open, (lock,) read the state, scan, create the core session. Returns
   1, 0 (in use), -1 with error. */
static int session_init(const struct shim_session_params *params,
			enum session_mode mode, struct shim_session **s_r,
			char *error, size_t error_size)
{
	struct retention_session_info info;
	struct retention_expire expire;
	struct shim_session *s;
	char path[SHIM_PATH_MAX], state_error[512];
	unsigned int i, count;
	int ret;

	*s_r = NULL;
	if (shim_config_mail_path(params->config, params->user, path,
				  sizeof(path), error, error_size) < 0)
		return -1;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(error, error_size, "Out of memory");
		return -1;
	}
	s->mode = mode;
	s->set = *params->set;
	snprintf(s->user, sizeof(s->user), "%s", params->user->name);
	snprintf(s->id, sizeof(s->id), "%s",
		 params->session_id != NULL ? params->session_id : "-");
	retention_policy_expire(&s->set, &expire);
	retention_expire_format(&expire, s->expire, sizeof(s->expire));

	s->md = shim_maildir_open(path, error, error_size);
	if (s->md == NULL) {
		session_free(s);
		return -1;
	}
	if (mode != SESSION_STATUS) {
		ret = shim_maildir_lock(s->md, error, error_size);
		if (ret <= 0) {
			session_free(s);
			return ret;
		}
	}
	if (snprintf(s->state_path, sizeof(s->state_path), "%s/%s", path,
		     SHIM_STATE_FNAME) >= (int)sizeof(s->state_path)) {
		snprintf(error, error_size, "%s: path too long", path);
		session_free(s);
		return -1;
	}
	if (snprintf(s->pending_path, sizeof(s->pending_path), "%s/%s", path,
		     PENDING_FNAME) >= (int)sizeof(s->pending_path)) {
		snprintf(error, error_size, "%s: path too long", path);
		session_free(s);
		return -1;
	}
	if (shim_state_load(s->state_path, &s->state, state_error,
			    sizeof(state_error)) < 0) {
		if (mode != SESSION_POP3) {
			snprintf(error, error_size, "%s", state_error);
			session_free(s);
			return -1;
		}
		s->state = NULL;
		s->withhold = true;
		shim_error("session=%s user=%s: Session begin failed, every "
			   "removal is withheld in this session (DELEs are "
			   "ignored): %s", s->id, s->user, state_error);
	}
	if (shim_maildir_scan(s->md, size_lookup, s, error, error_size) < 0) {
		session_free(s);
		return -1;
	}
	if (mode != SESSION_STATUS)
		pending_reconcile(s, params->webhook);

	count = shim_maildir_count(s->md);
	s->listed = calloc(count + 1, sizeof(*s->listed));
	s->deleted = calloc(count + 1, sizeof(*s->deleted));
	s->failed = calloc(count + 1, sizeof(*s->failed));
	s->staged = calloc(count + 1, sizeof(*s->staged));
	memset(&info, 0, sizeof(info));
	info.user = s->user;
	info.mailbox = "INBOX";
	info.session = s->id;
	info.remote_ip = params->remote_ip;
	s->host = shim_host_template;
	s->webhook = params->webhook;
	if (s->webhook != NULL) {
		s->host.event = host_event;
		s->host.event_pending = host_event_pending;
		s->host.events_settled = host_events_settled;
	}
	if (s->listed != NULL && s->deleted != NULL && s->failed != NULL &&
	    s->staged != NULL)
		s->core = retention_session_create(&s->set, &s->host, s, &info);
	if (s->core == NULL) {
		snprintf(error, error_size, "Out of memory");
		session_free(s);
		return -1;
	}
	for (i = 0; i < count; i++) {
		const struct shim_maildir_msg *msg = shim_maildir_msg(s->md, i);
		const struct shim_state_entry *e = s->state == NULL ? NULL :
			shim_state_get(s->state, msg->base);
		struct retention_facts facts;

		memset(&facts, 0, sizeof(facts));
		facts.arrived_at = msg->arrived_at;
		if (e != NULL) {
			facts.first_retrieved_at = e->first_retrieved_at;
			facts.hidden = e->hidden;
		}
		if (s->state != NULL && e == NULL && msg->size != 0)
			(void)shim_state_set_size(s->state, msg->base,
						  msg->size);
		if (retention_session_add_message(s->core, &facts) < 0) {
			snprintf(error, error_size, "Out of memory");
			session_free(s);
			return -1;
		}
	}
	if (s->state != NULL) {
		/* messages removed by someone else: forget their state */
		const char **bases = calloc(count + 1, sizeof(*bases));

		if (bases != NULL) {
			for (i = 0; i < count; i++)
				bases[i] = shim_maildir_msg(s->md, i)->base;
			shim_state_prune(s->state, bases, count);
			free(bases);
		}
	}
	*s_r = s;
	return 1;
}

static void session_save(struct shim_session *s)
{
	char error[512];

	if (s->state == NULL || !shim_state_dirty(s->state))
		return;
	if (shim_state_save(s->state, true, error, sizeof(error)) < 0) {
		shim_error("session=%s user=%s: Saving the retention state "
			   "failed (retained messages may be listed again, "
			   "downloads not recorded): %s", s->id, s->user,
			   error);
	}
}

int shim_session_open(const struct shim_session_params *params,
		      struct shim_session **session_r, char *error,
		      size_t error_size)
{
	const struct retention_plan *plan;
	struct shim_session *s;
	unsigned int i, count;
	bool *unlisted;
	int ret;

	ret = session_init(params, SESSION_POP3, &s, error, error_size);
	if (ret <= 0)
		return ret;
	count = shim_maildir_count(s->md);
	unlisted = calloc(count + 1, sizeof(*unlisted));
	if (unlisted == NULL) {
		snprintf(error, error_size, "Out of memory");
		session_free(s);
		return -1;
	}
	if (!s->withhold) {
		plan = retention_session_begin(s->core, time(NULL));
		if (plan->count > 0)
			(void)retention_session_apply(s->core, plan);
		/* every non-KEEP message is left out of the listing, but a
		   failed removal keeps the message: it is listed (under dry
		   run everything is listed, as nothing changed) */
		for (i = 0; i < plan->count && !s->set.dry_run; i++) {
			unsigned int idx = plan->entries[i].idx;

			unlisted[idx] = !s->failed[idx];
		}
		session_commit(s);
	}
	for (i = 0; i < count; i++) {
		if (!unlisted[i])
			s->listed[s->listed_count++] = i;
	}
	free(unlisted);
	memset(s->failed, 0, (count + 1) * sizeof(bool));
	*session_r = s;
	return 1;
}

unsigned int shim_session_count(const struct shim_session *session)
{
	return session->listed_count;
}

const struct shim_maildir_msg *
shim_session_msg(const struct shim_session *session, unsigned int msgnum)
{
	if (msgnum == 0 || msgnum > session->listed_count)
		return NULL;
	return shim_maildir_msg(session->md, session->listed[msgnum - 1]);
}

bool shim_session_deleted(const struct shim_session *session,
			  unsigned int msgnum)
{
	return msgnum >= 1 && msgnum <= session->listed_count &&
	       session->deleted[msgnum - 1];
}

void shim_session_dele(struct shim_session *session, unsigned int msgnum)
{
	if (msgnum < 1 || msgnum > session->listed_count)
		return;
	session->deleted[msgnum - 1] = true;
	retention_session_set_deleted(session->core,
				      session->listed[msgnum - 1], true);
}

void shim_session_rset(struct shim_session *session)
{
	unsigned int i;

	for (i = 0; i < session->listed_count; i++) {
		if (!session->deleted[i])
			continue;
		session->deleted[i] = false;
		retention_session_set_deleted(session->core,
					      session->listed[i], false);
	}
}

struct shim_maildir *shim_session_maildir(struct shim_session *session)
{
	return session->md;
}

unsigned int shim_session_maildir_idx(const struct shim_session *session,
				      unsigned int msgnum)
{
	return session->listed[msgnum - 1];
}

void shim_session_retrieved(struct shim_session *session,
			    unsigned int msgnum, bool is_top)
{
	if (session->withhold || msgnum < 1 ||
	    msgnum > session->listed_count)
		return;
	session->retrieving = true;
	(void)retention_session_retrieved(session->core,
					  session->listed[msgnum - 1], is_top,
					  time(NULL));
	session->retrieving = false;
}

int shim_session_update(struct shim_session *session)
{
	const struct retention_plan *plan;
	unsigned int i, failures;
	int ret = 0;

	session->quit = true;
	if (session->withhold) {
		for (i = 0; i < session->listed_count; i++) {
			const struct shim_maildir_msg *msg;

			if (!session->deleted[i])
				continue;
			msg = shim_maildir_msg(session->md,
					       session->listed[i]);
			session->withheld++;
			shim_info("session=%s user=%s action=keep uidl=%s "
				  "reason=unknown-state (DELE withheld: "
				  "session begin failed)", session->id,
				  session->user, msg->uidl);
		}
		return 0;
	}
	plan = retention_session_update(session->core, time(NULL));
	failures = retention_session_apply(session->core, plan);
	session_commit(session);
	if (failures > 0 || session->commit_failures > 0) {
		/* RFC 1939: -ERR when some DELEd message was not removed */
		for (i = 0; i < session->listed_count; i++) {
			if (session->deleted[i] &&
			    session->failed[session->listed[i]])
				ret = -1;
		}
	}
	return ret;
}

const char *shim_session_expire(const struct shim_session *session)
{
	return session->expire;
}

void shim_session_close(struct shim_session **_session)
{
	struct shim_session *s = *_session;
	struct retention_session_stats stats;

	if (s == NULL)
		return;
	*_session = NULL;
	if (s->withhold) {
		shim_info("session=%s user=%s session end: policy=%s quit=%s "
			  "removals withheld (session begin failed): %u "
			  "DELE(s) not carried out", s->id, s->user,
			  retention_policy_kind_name(s->set.policy),
			  s->quit ? "yes" : "no", s->withheld);
	} else {
		if (retention_session_end(s->core, s->quit, &stats) < 0) {
			shim_error("session=%s user=%s: BUG: removals applied "
				   "without QUIT", s->id, s->user);
		}
		shim_info("session=%s user=%s session end: policy=%s quit=%s "
			  "retrieved=%u removed=%u retained=%u hidden=%u "
			  "failed=%u%s", s->id, s->user,
			  retention_policy_kind_name(s->set.policy),
			  s->quit ? "yes" : "no", stats.retrieved,
			  stats.removed, stats.retained, stats.hidden,
			  stats.failed, s->set.dry_run ? " dry_run=yes" : "");
		session_save(s);
	}
	session_free(s);
}

/* ---- sweep and status ---- */

int shim_session_sweep(const struct shim_session_params *params,
		       unsigned int *removed_r)
{
	struct retention_session_stats stats;
	const struct retention_plan *plan;
	struct shim_session *s;
	char error[512];
	int ret;

	*removed_r = 0;
	ret = session_init(params, SESSION_SWEEP, &s, error, sizeof(error));
	if (ret < 0) {
		shim_error("sweep: user %s skipped (nothing removed): %s",
			   params->user->name, error);
		return -1;
	}
	if (ret == 0) {
		/* its own session begin removes what is due */
		shim_warning("sweep: user %s: POP3 session in progress, "
			     "skipped", params->user->name);
		return 0;
	}
	plan = retention_session_sweep(s->core, time(NULL));
	(void)retention_session_apply(s->core, plan);
	session_commit(s);
	(void)retention_session_end(s->core, true, &stats);
	*removed_r = stats.removed;
	shim_info("sweep: user %s: removed=%u retained=%u failed=%u%s",
		  s->user, stats.removed, stats.retained, stats.failed,
		  s->set.dry_run ? " dry_run=yes" : "");
	ret = stats.failed > 0 || s->commit_failures > 0 ? -1 : 1;
	session_free(s);
	return ret;
}

static const char *time_or(time_t t, const char *none, char *buf,
			   size_t size)
{
	return t == 0 ? none : retention_time_format(t, buf, size);
}

static const char *status_state(const struct retention_facts *facts,
				const struct retention_decision *d)
{
	if (d->action == RETENTION_ACTION_REMOVE)
		return "removable-now";
	if (facts->hidden || d->action == RETENTION_ACTION_HIDE ||
	    d->action == RETENTION_ACTION_RETAIN)
		return "hidden";
	return "keep";
}

int shim_session_status(const struct shim_session_params *params)
{
	struct shim_session *s;
	char error[512], t1[32], t2[32], t3[32];
	unsigned int i, count;
	time_t now = time(NULL);

	if (session_init(params, SESSION_STATUS, &s, error,
			 sizeof(error)) < 0) {
		shim_error("status: user %s: %s", params->user->name, error);
		return -1;
	}
	count = shim_maildir_count(s->md);
	printf("n\tuidl\tarrived\tfirst_retrieved\tstate\tremovable_at\t"
	       "why\n");
	for (i = 0; i < count; i++) {
		const struct shim_maildir_msg *msg = shim_maildir_msg(s->md, i);
		const struct retention_facts *facts =
			retention_session_facts(s->core, i);
		struct retention_decision d;
		enum retention_reason why;

		retention_session_decide(s->core, i, RETENTION_MOMENT_SWEEP,
					 now, &d);
		why = d.action != RETENTION_ACTION_REMOVE && d.due_at != 0 ?
			d.due_reason : d.reason;
		printf("%u\t%s\t%s\t%s\t%s\t%s\t%s\n", i + 1, msg->uidl,
		       time_or(msg->arrived_at, "-", t1, sizeof(t1)),
		       facts->state_unknown ? "unknown" :
		       time_or(facts->first_retrieved_at, "-", t2, sizeof(t2)),
		       status_state(facts, &d),
		       time_or(d.due_at, "never", t3, sizeof(t3)),
		       retention_reason_name(why));
	}
	session_free(s);
	return 0;
}
