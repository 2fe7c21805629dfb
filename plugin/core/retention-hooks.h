#ifndef RETENTION_HOOKS_H
#define RETENTION_HOOKS_H

/* The contract between the core and a host (the Dovecot plugin, the
   pop3-retentiond shim, the unit tests' in-memory host).

   A host implements struct retention_host (facts, hide, remove, state,
   events, audit) and calls the hooks below at the POP3 session's moments:

     retention_session_create()      after authentication
     retention_session_add_message() once per message of the maildrop
     retention_session_begin()       before the listing is built; the host
                                     carries out the plan with
                                     retention_session_apply(), calls
                                     retention_session_commit_prepare(),
                                     commits, calls
                                     retention_session_commit_done()
                                     and leaves every non-KEEP message out
                                     of the listing
     retention_session_retrieved()   a RETR (or, with top_counts, a TOP)
                                     has sent the whole message
     retention_session_set_deleted() DELE / RSET (pending until UPDATE)
     retention_session_update()      QUIT in TRANSACTION state; the host
                                     applies the plan in the same commit
                                     as the client's own DELEs, with
                                     retention_session_commit_prepare()
                                     before that commit and
                                     retention_session_commit_done()
                                     after it
     retention_session_end()         always, QUIT or not
     retention_session_destroy()

   retention_session_sweep() replaces begin/update for a sweep outside
   any session. Messages are addressed by their index in the order they
   were added (0-based; POP3 message number - 1).

   Events of removals and retains are facts only once the host's commit
   of the plan succeeded: retention_session_apply() holds them, and
   retention_session_commit_done() hands them to the host's event
   callback (committed) or drops them (not committed). Events of
   downloads (retention_session_retrieved()) are handed over at once.

   A host that can die between its commit and commit_done() (a process
   killed right after the commit) records the held events as pending
   first: retention_session_commit_prepare() hands each to its
   event_pending callback before the commit, commit_done() hands the
   same events (same numbers, hence the same webhook-ids) to the event
   callback or drops them, then calls events_settled, where the host
   deletes its pending record. A pending record that outlived its
   host is reconciled against the mailbox by a later session: a
   removal whose message is gone happened, one whose message is still
   there did not (docs/webhooks.md, "Delivery guarantees").

   The core never blocks, never runs a loop and never touches storage:
   every effect goes through the host's callbacks. All callbacks receive
   the host's context pointer given to retention_session_create(). */

#include "retention-event.h"
#include "retention-policy.h"
#include "retention-settings.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Identifiers of one message, for logs and events. The strings are
   owned by the host and need only stay valid until the next host call. */
struct retention_message_info {
	uint32_t uid;
	const char *uidl;
	const char *message_id; /* NULL if absent */
	uint64_t size;
};

/* One structured audit record: every removal and every retention
   decision other than a plain keep. `line` is the preformatted text
   ("action=remove uid=3 uidl=… reason=dele"); hosts add their own
   prefix (user, session) when they log it. */
struct retention_audit {
	unsigned int idx;
	const struct retention_message_info *info;
	const struct retention_decision *decision;
	enum retention_moment moment;
	bool dry_run;
	/* the host's remove/retain callback failed: the message is kept */
	bool failed;
	const char *line;
};

struct retention_host {
	/* Identifiers of message idx. Returns 0, or -1 if it cannot be
	   looked up (the message is then left alone). */
	int (*message_info)(void *context, unsigned int idx,
			    struct retention_message_info *info_r);
	/* Remove message idx now (expunge, or move to the settings'
	   move_mailbox). Returns 0, or -1 with a message in error_r. The
	   host may defer the physical change to its own commit. */
	int (*message_remove)(void *context, unsigned int idx,
			      const char **error_r);
	/* Mark message idx hidden persistently (kept on disk, never listed
	   again until removed). Returns 0, or -1 with error_r. */
	int (*message_retain)(void *context, unsigned int idx,
			      const char **error_r);
	/* Persist the first retrieval time of message idx. Returns 0, or
	   -1 with error_r; the host logs the failure itself (a lost write
	   only delays removal: the clock restarts at the next download). */
	int (*state_write)(void *context, unsigned int idx,
			   time_t first_retrieved_at, const char **error_r);
	/* Hand over one event for delivery (already filtered by
	   webhook_events): from retention_session_retrieved(), and from
	   retention_session_commit_done() for the events of applied
	   plans. NULL when the host sends no webhooks: the core then
	   builds no events at all (and looks nothing up for them). The
	   event is valid only during the call; the host gives it its
	   webhook-id (retention_event_id()) where it is spooled. The
	   session numbers its events (event->seq) 1, 2, ... in the order
	   of these calls. The callback must not call back into the
	   session. */
	void (*event)(void *context, const struct retention_event *event);
	/* Record one held event as pending, from
	   retention_session_commit_prepare(), before the host's commit:
	   the record must outlive the host's process (not its machine)
	   until events_settled. NULL: nothing is recorded. The event is
	   valid only during the call and must not call back into the
	   session. */
	void (*event_pending)(void *context,
			      const struct retention_event *event);
	/* The pending events are settled: retention_session_commit_done()
	   handed them to the event callback (committed) or dropped them
	   (not committed); the host deletes its pending record. Called
	   only after a commit_prepare() that recorded events. */
	void (*events_settled)(void *context, bool committed);
	/* Log one audit record. */
	void (*audit)(void *context, const struct retention_audit *audit);
};

/* Who and where, for events and logs. Strings are copied. */
struct retention_session_info {
	const char *user;
	const char *mailbox;
	uint32_t uidvalidity;
	const char *session;	/* the host's session id; may be NULL */
	const char *remote_ip;	/* may be NULL */
};

struct retention_plan_entry {
	unsigned int idx;
	struct retention_decision decision;
};

/* The non-KEEP decisions of one moment, in message order. Owned by the
   session; valid until the next begin/update/sweep or destroy. */
struct retention_plan {
	enum retention_moment moment;
	time_t now;
	const struct retention_plan_entry *entries;
	unsigned int count;
};

struct retention_session_stats {
	unsigned int removed;
	unsigned int retained;
	unsigned int hidden;
	unsigned int failed;
	unsigned int retrieved;
};

struct retention_session;

/* Create a session. settings must have passed retention_settings_check()
   and are copied. Returns NULL only on allocation failure. */
struct retention_session *
retention_session_create(const struct retention_settings *set,
			 const struct retention_host *host, void *context,
			 const struct retention_session_info *info);

/* Free the session and NULL the pointer. Events still held (no
   retention_session_commit_done() after an apply) are dropped. */
void retention_session_destroy(struct retention_session **session);

/* Add the next message. Only facts->arrived_at, first_retrieved_at,
   state_unknown and hidden are read. Returns its index, or -1 on
   allocation failure (the host must then end the session without
   removing anything). */
int retention_session_add_message(struct retention_session *session,
				  const struct retention_facts *facts);

unsigned int retention_session_count(const struct retention_session *session);

/* The facts the core holds for message idx (including this session's
   retrieved/deleted marks). */
const struct retention_facts *
retention_session_facts(const struct retention_session *session,
			unsigned int idx);

/* Session begin: decide for every message at `now`. */
const struct retention_plan *
retention_session_begin(struct retention_session *session, time_t now);

/* A complete download of message idx at `now`; is_top: it was a TOP
   (counted only with top_counts). Sets the first retrieval time if there
   was none, persists it through state_write, emits message.retrieved.
   Returns true if it counted as a download. */
bool retention_session_retrieved(struct retention_session *session,
				 unsigned int idx, bool is_top, time_t now);

/* DELE (deleted = true) or RSET (false) of message idx. */
void retention_session_set_deleted(struct retention_session *session,
				   unsigned int idx, bool deleted);

/* UPDATE (QUIT in TRANSACTION state): decide for every message. */
const struct retention_plan *
retention_session_update(struct retention_session *session, time_t now);

/* Outside a session: decide what a sweep removes. */
const struct retention_plan *
retention_session_sweep(struct retention_session *session, time_t now);

/* Carry out a plan: for each REMOVE call message_remove, for each RETAIN
   call message_retain (neither under dry_run), then audit and hold the
   event (message.deleted, message.expired, message.retained) until
   retention_session_commit_done(). HIDE entries are only audited at
   session begin. A failed callback keeps the message, is audited as
   failed and has no event. Returns the number of failures. The host
   must call retention_session_commit_done() once it has committed or
   rolled back the changes. */
unsigned int retention_session_apply(struct retention_session *session,
				     const struct retention_plan *plan);

/* Just before the host's commit of the plans applied since the last
   commit_done(): number the held events and hand each to the host's
   event_pending callback (if any), so that they survive the host's
   process dying between its commit and commit_done(). Events held by
   an apply after this call are not pending (they are numbered and
   handed over by commit_done() as without it). Returns the number of
   events handed over as pending. */
unsigned int
retention_session_commit_prepare(struct retention_session *session);

/* The host's commit of the plans applied since the last call is done.
   committed: it succeeded (under dry_run: the host is done, nothing was
   to be committed), and the held events go to the host's event
   callback, in the order they were held, numbered then (or with the
   numbers commit_prepare() gave them); otherwise they are dropped.
   After a commit_prepare() that recorded events, events_settled
   follows. An event that could not be held for lack of memory is
   lost. Returns the number of events released or dropped, so the host
   can log what it dropped. */
unsigned int retention_session_commit_done(struct retention_session *session,
					   bool committed);

/* The decision for one message at a moment, without acting (status). */
void retention_session_decide(const struct retention_session *session,
			      unsigned int idx, enum retention_moment moment,
			      time_t now, struct retention_decision *decision_r);

/* Session end, QUIT or not. Without QUIT the host must not have applied
   an UPDATE plan (RFC 1939 section 6); returns -1 if it did, so hosts
   can log the violation. The stats are for the host's summary line. */
int retention_session_end(struct retention_session *session, bool quit,
			  struct retention_session_stats *stats_r);

#endif
