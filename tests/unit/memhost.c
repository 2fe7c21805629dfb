/* In-memory host: see memhost.h. */

#include "pop3-retention-config.h"
#include "memhost.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mh_message_info(void *context, unsigned int idx,
			   struct retention_message_info *info_r)
{
	struct memhost *host = context;
	struct memhost_message *msg = &host->messages[host->session_map[idx]];

	memset(info_r, 0, sizeof(*info_r));
	info_r->uid = msg->uid;
	info_r->uidl = msg->uidl;
	info_r->size = 100 + msg->uid;
	return 0;
}

static int mh_message_remove(void *context, unsigned int idx,
			     const char **error_r)
{
	struct memhost *host = context;
	unsigned int m = host->session_map[idx];

	if (host->fail_remove_uid_set &&
	    host->messages[m].uid == host->fail_remove_uid) {
		*error_r = "simulated I/O error";
		return -1;
	}
	if (host->in_update)
		host->staged_remove[m] = true;
	else
		host->messages[m].removed = true;
	return 0;
}

static int mh_message_retain(void *context, unsigned int idx,
			     const char **error_r)
{
	struct memhost *host = context;
	unsigned int m = host->session_map[idx];

	(void)error_r;
	if (host->in_update)
		host->staged_retain[m] = true;
	else
		host->messages[m].hidden = true;
	return 0;
}

static int mh_state_write(void *context, unsigned int idx,
			  time_t first_retrieved_at, const char **error_r)
{
	struct memhost *host = context;
	unsigned int m = host->session_map[idx];

	(void)error_r;
	/* retrieval times persist at session end, QUIT or not; writing
	   through at once is equivalent for an in-memory store */
	host->messages[m].first_retrieved_at = first_retrieved_at;
	host->messages[m].state_lost = false;
	return 0;
}

static void event_record(struct memhost_event *e,
			 const struct retention_event *event)
{
	char event_id[RETENTION_EVENT_ID_SIZE];
	char *json;

	memset(e, 0, sizeof(*e));
	e->type = event->type;
	e->uid = event->uid;
	snprintf(e->reason, sizeof(e->reason), "%s",
		 event->reason != NULL ? event->reason : "");
	e->first_retrieval = event->first_retrieval;
	e->dry_run = event->dry_run;
	e->retain_until = event->retain_until;
	e->seq = event->seq;
	retention_event_id(event, event_id);
	snprintf(e->id, sizeof(e->id), "%s", event_id);
	json = retention_event_to_json(event);
	assert(json != NULL);
	snprintf(e->json, sizeof(e->json), "%s", json);
	free(json);
}

static void mh_event(void *context, const struct retention_event *event)
{
	struct memhost *host = context;

	if (host->dead)
		return;
	assert(host->event_count < MEMHOST_MAX_EVENTS);
	event_record(&host->events[host->event_count++], event);
}

static void mh_event_pending(void *context,
			     const struct retention_event *event)
{
	struct memhost *host = context;

	if (host->dead)
		return;
	assert(host->pending_count < MEMHOST_MAX_EVENTS);
	event_record(&host->pending[host->pending_count++], event);
}

static void mh_events_settled(void *context, bool committed)
{
	struct memhost *host = context;

	unsigned int i, first;

	if (host->dead)
		return;
	/* committed: the events just handed over are the pending ones,
	   with the same ids */
	assert(!committed || host->event_count >= host->pending_count);
	first = host->event_count - host->pending_count;
	for (i = 0; committed && i < host->pending_count; i++) {
		assert(strcmp(host->events[first + i].id,
			      host->pending[i].id) == 0);
	}
	host->pending_count = 0;
}

/* Pending events whose QUIT was killed: a removal whose message is gone
   happened, a retain whose message is hidden happened; the rest did
   not. Those that happened are handed over as recorded (same ids). */
static void reconcile_pending(struct memhost *host)
{
	unsigned int i;

	for (i = 0; i < host->pending_count; i++) {
		const struct memhost_event *e = &host->pending[i];
		int m = memhost_find(host, e->uid);
		bool happened;

		if (e->type == RETENTION_EVENT_RETAINED)
			happened = m >= 0 && host->messages[m].hidden;
		else
			happened = m < 0 || host->messages[m].removed;
		if (happened) {
			assert(host->event_count < MEMHOST_MAX_EVENTS);
			host->events[host->event_count++] = *e;
		}
	}
	host->pending_count = 0;
}

static void mh_audit(void *context, const struct retention_audit *audit)
{
	struct memhost *host = context;

	assert(host->audit_count < MEMHOST_MAX_AUDIT);
	snprintf(host->audit[host->audit_count++], sizeof(host->audit[0]),
		 "%s", audit->line);
}

static const struct retention_host memhost_vfuncs = {
	.message_info = mh_message_info,
	.message_remove = mh_message_remove,
	.message_retain = mh_message_retain,
	.state_write = mh_state_write,
	.event = mh_event,
	.event_pending = mh_event_pending,
	.events_settled = mh_events_settled,
	.audit = mh_audit,
};

void memhost_init(struct memhost *host, const struct retention_settings *set)
{
	memset(host, 0, sizeof(*host));
	host->set = *set;
	host->next_uid = 1;
}

uint32_t memhost_deliver(struct memhost *host, time_t arrived_at)
{
	struct memhost_message *msg;

	assert(host->count < MEMHOST_MAX_MESSAGES);
	msg = &host->messages[host->count++];
	memset(msg, 0, sizeof(*msg));
	msg->uid = host->next_uid++;
	snprintf(msg->uidl, sizeof(msg->uidl), "U%08x", msg->uid);
	msg->arrived_at = arrived_at;
	return msg->uid;
}

int memhost_find(const struct memhost *host, uint32_t uid)
{
	unsigned int i;

	for (i = 0; i < host->count; i++) {
		if (host->messages[i].uid == uid && !host->messages[i].removed)
			return (int)i;
	}
	return -1;
}

static struct retention_session *open_session(struct memhost *host)
{
	struct retention_session_info info = {
		.user = "alice",
		.mailbox = "INBOX",
		.uidvalidity = 1700000000,
		.session = "sess1",
		.remote_ip = "192.0.2.1",
	};
	struct retention_session *session;
	unsigned int i, n = 0;

	session = retention_session_create(&host->set, &memhost_vfuncs, host,
					   &info);
	assert(session != NULL);
	for (i = 0; i < host->count; i++) {
		struct memhost_message *msg = &host->messages[i];
		struct retention_facts facts;

		if (msg->removed)
			continue;
		memset(&facts, 0, sizeof(facts));
		facts.arrived_at = msg->arrived_at;
		facts.first_retrieved_at = msg->first_retrieved_at;
		facts.state_unknown = msg->state_lost;
		facts.hidden = msg->hidden;
		assert(retention_session_add_message(session, &facts) ==
		       (int)n);
		host->session_map[n++] = i;
	}
	return session;
}

int memhost_login(struct memhost *host, time_t now)
{
	const struct retention_plan *plan;
	unsigned int i, p = 0, n;

	assert(host->session == NULL);
	reconcile_pending(host);
	host->session = open_session(host);
	plan = retention_session_begin(host->session, now);
	(void)retention_session_apply(host->session, plan);
	/* removals at login are written through: committed */
	(void)retention_session_commit_prepare(host->session);
	(void)retention_session_commit_done(host->session, true);
	/* the listing leaves out every non-KEEP message of the plan */
	n = retention_session_count(host->session);
	host->listing_count = 0;
	for (i = 0; i < n; i++) {
		if (p < plan->count && plan->entries[p].idx == i) {
			p++;
			continue;
		}
		host->listing[host->listing_count++] = i;
	}
	return 0;
}

static int msgnum_to_idx(struct memhost *host, unsigned int msgnum,
			 unsigned int *idx_r)
{
	if (host->session == NULL || msgnum == 0 ||
	    msgnum > host->listing_count)
		return -1;
	*idx_r = host->listing[msgnum - 1];
	return 0;
}

int memhost_retr(struct memhost *host, unsigned int msgnum, time_t now)
{
	unsigned int idx;

	if (msgnum_to_idx(host, msgnum, &idx) < 0 ||
	    retention_session_facts(host->session, idx)->deleted)
		return -1;
	(void)retention_session_retrieved(host->session, idx, false, now);
	return 0;
}

int memhost_top(struct memhost *host, unsigned int msgnum, time_t now)
{
	unsigned int idx;

	if (msgnum_to_idx(host, msgnum, &idx) < 0)
		return -1;
	(void)retention_session_retrieved(host->session, idx, true, now);
	return 0;
}

int memhost_dele(struct memhost *host, unsigned int msgnum)
{
	unsigned int idx;

	if (msgnum_to_idx(host, msgnum, &idx) < 0 ||
	    retention_session_facts(host->session, idx)->deleted)
		return -1;
	retention_session_set_deleted(host->session, idx, true);
	return 0;
}

void memhost_rset(struct memhost *host)
{
	unsigned int i;

	for (i = 0; i < host->listing_count; i++)
		retention_session_set_deleted(host->session, host->listing[i],
					      false);
}

void memhost_quit(struct memhost *host, time_t now)
{
	struct retention_session_stats stats;
	const struct retention_plan *plan;
	unsigned int i;

	memset(host->staged_remove, 0, sizeof(host->staged_remove));
	memset(host->staged_retain, 0, sizeof(host->staged_retain));
	host->in_update = true;
	plan = retention_session_update(host->session, now);
	(void)retention_session_apply(host->session, plan);
	host->in_update = false;
	(void)retention_session_commit_prepare(host->session);
	host->dead = host->kill_before_commit;
	/* the commit: every staged change at once, or none */
	for (i = 0; i < host->count && !host->fail_commit && !host->dead;
	     i++) {
		if (host->staged_remove[i])
			host->messages[i].removed = true;
		if (host->staged_retain[i])
			host->messages[i].hidden = true;
	}
	host->dead = host->dead || host->kill_after_commit;
	if (!host->dead) {
		(void)retention_session_commit_done(host->session,
						    !host->fail_commit);
		assert(retention_session_end(host->session, true,
					     &stats) == 0);
	}
	host->fail_commit = false;
	retention_session_destroy(&host->session);
	host->dead = host->kill_before_commit = host->kill_after_commit = false;
}

void memhost_drop(struct memhost *host)
{
	struct retention_session_stats stats;

	/* no UPDATE: staged nothing, commit nothing */
	assert(retention_session_end(host->session, false, &stats) == 0);
	retention_session_destroy(&host->session);
}

void memhost_sweep(struct memhost *host, time_t now)
{
	struct retention_session *session;
	const struct retention_plan *plan;

	reconcile_pending(host);
	session = open_session(host);
	plan = retention_session_sweep(session, now);
	(void)retention_session_apply(session, plan);
	(void)retention_session_commit_prepare(session);
	(void)retention_session_commit_done(session, true);
	retention_session_destroy(&session);
}

void memhost_deinit(struct memhost *host)
{
	if (host->session != NULL)
		retention_session_destroy(&host->session);
}
