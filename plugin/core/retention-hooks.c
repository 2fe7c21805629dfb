/* The session object behind the hooks: it holds the facts of one
   maildrop, asks retention-policy for decisions and carries plans out
   through the host's callbacks. */

#include "pop3-retention-config.h"
#include "retention-hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An event of an applied plan, held until the host's commit is done. */
struct held_event {
	struct retention_event event;
	/* one block holding event.uidl and event.message_id: the host's
	   strings are valid only during its callback, the session's own
	   and the reason names outlive the session's events */
	char *strings;
};

struct retention_session {
	struct retention_settings set;
	struct retention_host host;
	void *context;

	char *user;
	char *mailbox;
	char *session_id;
	char *remote_ip;
	uint32_t uidvalidity;

	struct retention_facts *facts;
	/* removed in this session (begin, or an earlier plan): out of every
	   later plan */
	bool *removed;
	unsigned int count, alloc;

	struct retention_plan_entry *entries;
	unsigned int entries_alloc;
	struct retention_plan plan;

	struct retention_session_stats stats;
	/* events of applied plans, until retention_session_commit_done() */
	struct held_event *held;
	unsigned int held_count, held_alloc;
	/* the seq of the last event handed to the host */
	uint32_t event_seq;
	/* retention_session_commit_prepare() numbered the held events and
	   handed them to the host as pending */
	bool held_pending;
	bool update_applied;
};

static char *strdup_or_null(const char *str, bool *failed)
{
	char *copy;

	if (str == NULL)
		return NULL;
	copy = strdup(str);
	if (copy == NULL)
		*failed = true;
	return copy;
}

struct retention_session *
retention_session_create(const struct retention_settings *set,
			 const struct retention_host *host, void *context,
			 const struct retention_session_info *info)
{
	struct retention_session *session;
	bool failed = false;

	session = calloc(1, sizeof(*session));
	if (session == NULL)
		return NULL;
	session->set = *set;
	session->host = *host;
	session->context = context;
	session->user = strdup_or_null(info->user, &failed);
	session->mailbox = strdup_or_null(info->mailbox, &failed);
	session->session_id = strdup_or_null(info->session, &failed);
	session->remote_ip = strdup_or_null(info->remote_ip, &failed);
	session->uidvalidity = info->uidvalidity;
	if (failed)
		retention_session_destroy(&session);
	return session;
}

void retention_session_destroy(struct retention_session **_session)
{
	struct retention_session *session = *_session;

	if (session == NULL)
		return;
	*_session = NULL;
	(void)retention_session_commit_done(session, false);
	free(session->held);
	free(session->entries);
	free(session->removed);
	free(session->facts);
	free(session->remote_ip);
	free(session->session_id);
	free(session->mailbox);
	free(session->user);
	free(session);
}

int retention_session_add_message(struct retention_session *session,
				  const struct retention_facts *facts)
{
	struct retention_facts *f;

	if (session->count == session->alloc) {
		unsigned int new_alloc =
			session->alloc == 0 ? 64 : session->alloc * 2;
		struct retention_facts *n;
		bool *r;

		if (new_alloc < session->alloc)
			return -1;
		n = reallocarray(session->facts, new_alloc, sizeof(*n));
		if (n == NULL)
			return -1;
		session->facts = n;
		r = reallocarray(session->removed, new_alloc, sizeof(*r));
		if (r == NULL)
			return -1;
		session->removed = r;
		session->alloc = new_alloc;
	}
	session->removed[session->count] = false;
	f = &session->facts[session->count];
	memset(f, 0, sizeof(*f));
	f->arrived_at = facts->arrived_at;
	f->first_retrieved_at = facts->first_retrieved_at;
	f->state_unknown = facts->state_unknown;
	f->hidden = facts->hidden;
	return (int)session->count++;
}

unsigned int retention_session_count(const struct retention_session *session)
{
	return session->count;
}

const struct retention_facts *
retention_session_facts(const struct retention_session *session,
			unsigned int idx)
{
	return idx < session->count ? &session->facts[idx] : NULL;
}

static const struct retention_plan *
session_plan(struct retention_session *session, enum retention_moment moment,
	     time_t now)
{
	unsigned int i, n = 0;

	if (session->entries_alloc < session->count) {
		struct retention_plan_entry *entries;

		entries = reallocarray(session->entries, session->count,
				       sizeof(*entries));
		if (entries == NULL) {
			/* fail safe: an empty plan removes nothing */
			session->plan.count = 0;
			session->plan.entries = session->entries;
			return &session->plan;
		}
		session->entries = entries;
		session->entries_alloc = session->count;
	}
	for (i = 0; i < session->count; i++) {
		struct retention_decision d;

		if (session->removed[i])
			continue;
		retention_policy_decide(&session->set, &session->facts[i], now,
					moment, &d);
		if (d.action == RETENTION_ACTION_KEEP)
			continue;
		session->entries[n].idx = i;
		session->entries[n].decision = d;
		n++;
	}
	session->plan.moment = moment;
	session->plan.now = now;
	session->plan.entries = session->entries;
	session->plan.count = n;
	return &session->plan;
}

const struct retention_plan *
retention_session_begin(struct retention_session *session, time_t now)
{
	return session_plan(session, RETENTION_MOMENT_BEGIN, now);
}

const struct retention_plan *
retention_session_update(struct retention_session *session, time_t now)
{
	return session_plan(session, RETENTION_MOMENT_UPDATE, now);
}

const struct retention_plan *
retention_session_sweep(struct retention_session *session, time_t now)
{
	return session_plan(session, RETENTION_MOMENT_SWEEP, now);
}

void retention_session_decide(const struct retention_session *session,
			      unsigned int idx, enum retention_moment moment,
			      time_t now, struct retention_decision *decision_r)
{
	retention_policy_decide(&session->set, &session->facts[idx], now,
				moment, decision_r);
}

static void event_init(struct retention_session *session,
		       struct retention_event *event,
		       enum retention_event_type type, time_t now,
		       const struct retention_message_info *info,
		       const struct retention_facts *facts)
{
	memset(event, 0, sizeof(*event));
	event->type = type;
	event->timestamp = now;
	event->user = session->user;
	event->mailbox = session->mailbox;
	event->uidvalidity = session->uidvalidity;
	event->uid = info->uid;
	event->uidl = info->uidl;
	event->message_id = info->message_id;
	event->size = info->size;
	event->arrived_at = facts->arrived_at;
	event->retrieved_at = facts->first_retrieved_at;
	event->policy = session->set.policy;
	event->session = session->session_id;
	event->remote_ip = session->remote_ip;
	event->dry_run = session->set.dry_run;
}

static bool event_wanted(const struct retention_session *session,
			 enum retention_event_type type)
{
	return session->host.event != NULL &&
	       (session->set.webhook_events & type) != 0;
}

/* Numbered in the order they are handed over: two downloads of one
   message in one session and second are two events with two ids. */
static void event_number(struct retention_session *session,
			 struct retention_event *event)
{
	/* 2^32 events in one session: start again at 1, never 0 (no
	   number), rather than stop reporting */
	if (++session->event_seq == 0)
		session->event_seq = 1;
	event->seq = session->event_seq;
}

static void event_emit(struct retention_session *session,
		       struct retention_event *event)
{
	if (!event_wanted(session, event->type))
		return;
	event_number(session, event);
	session->host.event(session->context, event);
}

/* Copy str into *pos, advancing it; NULL stays NULL. */
static const char *held_string(const char *str, char **pos)
{
	char *copy = *pos;
	size_t size;

	if (str == NULL)
		return NULL;
	size = strlen(str) + 1;
	memcpy(copy, str, size);
	*pos += size;
	return copy;
}

/* Keep a copy of event until retention_session_commit_done(). Without
   memory for it the event is lost: handing it over before the commit
   could report a change that did not happen. */
static void event_hold(struct retention_session *session,
		       const struct retention_event *event)
{
	struct held_event *held;
	size_t size = 0;
	char *pos;

	if (!event_wanted(session, event->type))
		return;
	if (session->held_count == session->held_alloc) {
		unsigned int new_alloc =
			session->held_alloc == 0 ? 8 : session->held_alloc * 2;

		if (new_alloc < session->held_alloc)
			return;
		held = reallocarray(session->held, new_alloc, sizeof(*held));
		if (held == NULL)
			return;
		session->held = held;
		session->held_alloc = new_alloc;
	}
	if (event->uidl != NULL)
		size += strlen(event->uidl) + 1;
	if (event->message_id != NULL)
		size += strlen(event->message_id) + 1;
	held = &session->held[session->held_count];
	held->strings = NULL;
	if (size > 0 && (held->strings = malloc(size)) == NULL)
		return;
	held->event = *event;
	pos = held->strings;
	held->event.uidl = held_string(event->uidl, &pos);
	held->event.message_id = held_string(event->message_id, &pos);
	session->held_count++;
}

static void audit_emit(struct retention_session *session,
		       const struct retention_plan *plan,
		       const struct retention_plan_entry *entry,
		       const struct retention_message_info *info, bool failed,
		       const char *error)
{
	struct retention_audit audit;
	char line[512], due[48];

	due[0] = '\0';
	if (entry->decision.action != RETENTION_ACTION_REMOVE) {
		char t[32];

		if (entry->decision.due_at != 0)
			retention_time_format(entry->decision.due_at, t,
					      sizeof(t));
		else
			snprintf(t, sizeof(t), "never");
		snprintf(due, sizeof(due), " until=%s", t);
	}
	snprintf(line, sizeof(line),
		 "action=%s uid=%u uidl=%s reason=%s%s%s%s%s",
		 retention_action_name(entry->decision.action), info->uid,
		 info->uidl != NULL ? info->uidl : "-",
		 retention_reason_name(entry->decision.reason), due,
		 session->set.dry_run ? " dry_run=yes" : "",
		 failed ? " failed: " : "", failed ? error : "");
	memset(&audit, 0, sizeof(audit));
	audit.idx = entry->idx;
	audit.info = info;
	audit.decision = &entry->decision;
	audit.moment = plan->moment;
	audit.dry_run = session->set.dry_run;
	audit.failed = failed;
	audit.line = line;
	session->host.audit(session->context, &audit);
}

static void apply_entry(struct retention_session *session,
			const struct retention_plan *plan,
			const struct retention_plan_entry *entry,
			unsigned int *failures)
{
	const struct retention_decision *d = &entry->decision;
	struct retention_facts *facts = &session->facts[entry->idx];
	struct retention_message_info info;
	struct retention_event event;
	const char *error = "";
	int ret = 0;

	if (session->host.message_info(session->context, entry->idx,
				       &info) < 0) {
		/* cannot name it: cannot audit it either, so do not touch */
		session->stats.failed++;
		(*failures)++;
		return;
	}
	switch (d->action) {
	case RETENTION_ACTION_KEEP:
		return;
	case RETENTION_ACTION_HIDE:
		/* hidden messages are reported once, when the listing is
		   built */
		if (plan->moment == RETENTION_MOMENT_BEGIN) {
			session->stats.hidden++;
			audit_emit(session, plan, entry, &info, false, "");
		}
		return;
	case RETENTION_ACTION_RETAIN:
		if (!session->set.dry_run)
			ret = session->host.message_retain(session->context,
							   entry->idx, &error);
		break;
	case RETENTION_ACTION_REMOVE:
		if (!session->set.dry_run)
			ret = session->host.message_remove(session->context,
							   entry->idx, &error);
		break;
	}
	if (ret < 0) {
		session->stats.failed++;
		(*failures)++;
		audit_emit(session, plan, entry, &info, true, error);
		return;
	}
	audit_emit(session, plan, entry, &info, false, "");
	if (d->action == RETENTION_ACTION_RETAIN) {
		session->stats.retained++;
		if (!session->set.dry_run)
			facts->hidden = true;
		event_init(session, &event, RETENTION_EVENT_RETAINED, plan->now,
			   &info, facts);
		event.retain_until = d->due_at;
	} else {
		session->stats.removed++;
		if (!session->set.dry_run)
			session->removed[entry->idx] = true;
		event_init(session, &event,
			   d->reason == RETENTION_REASON_DELE ?
				   RETENTION_EVENT_DELETED :
				   RETENTION_EVENT_EXPIRED,
			   plan->now, &info, facts);
	}
	event.reason = retention_reason_name(d->reason);
	/* a fact only once the host's commit succeeded */
	event_hold(session, &event);
}

unsigned int retention_session_apply(struct retention_session *session,
				     const struct retention_plan *plan)
{
	unsigned int i, failures = 0;

	if (plan->moment == RETENTION_MOMENT_UPDATE)
		session->update_applied = true;
	for (i = 0; i < plan->count; i++)
		apply_entry(session, plan, &plan->entries[i], &failures);
	return failures;
}

unsigned int
retention_session_commit_prepare(struct retention_session *session)
{
	unsigned int i;

	if (session->held_pending || session->held_count == 0)
		return 0;
	/* numbered now: the events handed over after the commit carry
	   the same numbers, hence the same webhook-ids, as the pending
	   records the host keeps */
	for (i = 0; i < session->held_count; i++)
		event_number(session, &session->held[i].event);
	session->held_pending = true;
	if (session->host.event_pending == NULL)
		return 0;
	for (i = 0; i < session->held_count; i++) {
		session->host.event_pending(session->context,
					    &session->held[i].event);
	}
	return session->held_count;
}

unsigned int retention_session_commit_done(struct retention_session *session,
					   bool committed)
{
	unsigned int i, count = session->held_count;
	bool pending = session->held_pending;

	for (i = 0; i < count; i++) {
		if (committed && pending &&
		    session->held[i].event.seq != 0) {
			session->host.event(session->context,
					    &session->held[i].event);
		} else if (committed) {
			event_emit(session, &session->held[i].event);
		}
		free(session->held[i].strings);
	}
	session->held_count = 0;
	session->held_pending = false;
	if (pending && count > 0 && session->host.event_pending != NULL &&
	    session->host.events_settled != NULL)
		session->host.events_settled(session->context, committed);
	return count;
}

bool retention_session_retrieved(struct retention_session *session,
				 unsigned int idx, bool is_top, time_t now)
{
	struct retention_facts *facts;
	struct retention_message_info info;
	struct retention_event event;
	bool first;

	if (idx >= session->count || (is_top && !session->set.top_counts))
		return false;
	facts = &session->facts[idx];
	first = facts->first_retrieved_at == 0 && !facts->state_unknown;
	facts->retrieved = true;
	session->stats.retrieved++;
	if (facts->first_retrieved_at == 0) {
		const char *error = "";

		/* With lost state the true first retrieval may be earlier:
		   starting the clock now can only delay removal. */
		facts->first_retrieved_at = now;
		facts->state_unknown = false;
		/* a failed write is logged by the host; the next session
		   then sees no retrieval and the keep clock restarts later,
		   which only delays removal */
		if (!session->set.dry_run)
			(void)session->host.state_write(session->context, idx,
							now, &error);
	}
	/* a download is counted above; the lookups below are for the
	   event only */
	if (!event_wanted(session, RETENTION_EVENT_RETRIEVED) ||
	    session->host.message_info(session->context, idx, &info) < 0)
		return true;
	event_init(session, &event, RETENTION_EVENT_RETRIEVED, now, &info,
		   facts);
	event.retrieved_at = now;
	event.first_retrieval = first;
	event_emit(session, &event);
	return true;
}

void retention_session_set_deleted(struct retention_session *session,
				   unsigned int idx, bool deleted)
{
	if (idx < session->count)
		session->facts[idx].deleted = deleted;
}

int retention_session_end(struct retention_session *session, bool quit,
			  struct retention_session_stats *stats_r)
{
	*stats_r = session->stats;
	return !quit && session->update_applied ? -1 : 0;
}
