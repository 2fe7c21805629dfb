#ifndef RETENTION_POLICY_H
#define RETENTION_POLICY_H

/* Pure retention decisions: (settings, a message's facts, now, moment) ->
   action + reason. No I/O, no clock, no allocation; every rule of
   DESIGN.md's precedence (hold > floor > ceiling > policy > client DELE)
   lives here and nowhere else. */

#include "retention-settings.h"

#include <stdbool.h>
#include <time.h>

/* When in the POP3 session the decision is taken (RFC 1939 terms). */
enum retention_moment {
	/* After authentication, before the maildrop listing is built. */
	RETENTION_MOMENT_BEGIN = 0,
	/* QUIT in TRANSACTION state: the UPDATE state. */
	RETENTION_MOMENT_UPDATE,
	/* The session ended without QUIT: nothing is ever removed. */
	RETENTION_MOMENT_END_NO_QUIT,
	/* Outside any session (doveadm sweep, pop3-retentiond sweep). */
	RETENTION_MOMENT_SWEEP,
};

enum retention_action {
	/* Leave the message alone and list it. */
	RETENTION_ACTION_KEEP = 0,
	/* Leave it out of this session's listing; nothing to write (it is
	   already hidden, or visible_since excludes it). */
	RETENTION_ACTION_HIDE,
	/* The client DELEd it (or delete-after-download wants it gone) but
	   hold/floor/keep forbid removal: mark it hidden persistently and
	   keep it on disk until due_at. */
	RETENTION_ACTION_RETAIN,
	/* Remove it now (expunge or move:, per settings). */
	RETENTION_ACTION_REMOVE,
};

enum retention_reason {
	RETENTION_REASON_NONE = 0,
	/* removals */
	RETENTION_REASON_DELE,		  /* client DELE applied at UPDATE */
	RETENTION_REASON_DOWNLOADED,	  /* delete-after-download */
	RETENTION_REASON_KEEP_EXPIRED,	  /* keep window after first RETR */
	RETENTION_REASON_MAX_EXCEEDED,	  /* compliance ceiling */
	RETENTION_REASON_RETENTION_ENDED, /* a retained message's floor,
					     hold or keep has ended */
	/* keeping, hiding, retaining */
	RETENTION_REASON_HOLD,
	RETENTION_REASON_MIN,
	RETENTION_REASON_KEEP,
	RETENTION_REASON_UNKNOWN_STATE,
	RETENTION_REASON_VISIBLE_SINCE,
	RETENTION_REASON_NO_QUIT,
};

/* What the host knows about one message. */
struct retention_facts {
	/* Arrival (Dovecot's received date, maildir mtime). 0: unknown,
	   which blocks every removal that depends on age under a floor. */
	time_t arrived_at;
	/* First complete retrieval, from persisted state or this session.
	   0: never retrieved (or unknown, see state_unknown). */
	time_t first_retrieved_at;
	/* The retrieval state was lost or unreadable: the message may have
	   been retrieved before. Nothing is removed on the strength of it. */
	bool state_unknown;
	/* Marked hidden by an earlier session (RETAIN). */
	bool hidden;
	/* Fully retrieved (RETR, or TOP with top_counts) in this session. */
	bool retrieved;
	/* DELE pending in this session. */
	bool deleted;
};

struct retention_decision {
	enum retention_action action;
	/* Why this action (for REMOVE: what removed it). */
	enum retention_reason reason;
	/* The earliest time a sweep would remove the message if nothing
	   else happens; 0 when nothing will (hold, no rule, unknown state).
	   For RETAIN this is the "retain_until" of message.retained. */
	time_t due_at;
	/* The rule that removes it at due_at. */
	enum retention_reason due_reason;
};

/* Decide for one message. Never fails: missing facts lead to KEEP/HIDE/
   RETAIN, never to REMOVE. */
void retention_policy_decide(const struct retention_settings *set,
			     const struct retention_facts *facts, time_t now,
			     enum retention_moment moment,
			     struct retention_decision *decision_r);

/* Stable lower-case word for logs, events and status output. */
const char *retention_reason_name(enum retention_reason reason);
const char *retention_action_name(enum retention_action action);

/* RFC 2449 EXPIRE for these settings. */
struct retention_expire {
	bool never;
	unsigned int days; /* when !never; 0 = delete after download */
};

/* The user's effective EXPIRE: 0 for delete-after-download, whole days
   (rounded down) of the shortest window that may remove a message but
   never below the floor, NEVER under hold or when nothing is removed. */
void retention_policy_expire(const struct retention_settings *set,
			     struct retention_expire *expire_r);

/* Format an EXPIRE value as "0", "30" or "NEVER" into buf. */
void retention_expire_format(const struct retention_expire *expire,
			     char *buf, size_t size);

#endif
