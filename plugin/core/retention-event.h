#ifndef RETENTION_EVENT_H
#define RETENTION_EVENT_H

/* The event model and its JSON body (DESIGN.md "Events and webhooks").
   Bodies are thin: identifiers, sizes and times, never content. */

#include "retention-settings.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* "evt_" + 32 hex digits + NUL */
#define RETENTION_EVENT_ID_SIZE 37

struct retention_event {
	enum retention_event_type type;
	/* when the event happened (not when it is delivered) */
	time_t timestamp;

	/* Strings are borrowed: valid for the duration of the call that
	   hands the event over. NULL means absent (JSON null). */
	const char *user;
	const char *mailbox;
	const char *uidl;
	uint32_t uid;
	uint32_t uidvalidity;
	const char *message_id;
	uint64_t size;
	time_t arrived_at;	/* 0: unknown -> null */
	time_t retrieved_at;	/* 0: never -> null */
	bool first_retrieval;	/* message.retrieved only */
	enum retention_policy_kind policy;
	const char *reason;	/* retention_reason_name(); NULL for retrieved */
	time_t retain_until;	/* message.retained; 0 -> null (indefinitely) */
	const char *session;
	const char *remote_ip;
	bool dry_run;
	/* the event's number in its retention session, from 1, in the
	   order the session handed its events over (retention-hooks.h);
	   0: none */
	uint32_t seq;
};

/* The webhook-id of an event: "evt_" followed by 32 lower-case hex digits
   of SHA-256 over the event's identity (type, user, mailbox, uidvalidity,
   uid, session, timestamp, and seq unless it is 0: without it two
   downloads of one message in one session and second would share an
   id). Deterministic, so a host that rebuilds the same event gets the
   same id; stored with the event and reused on every retry. Writes
   RETENTION_EVENT_ID_SIZE bytes (NUL included) to id_r.
   Cannot fail: if OpenSSL cannot compute SHA-256 (out of memory) it
   aborts, as no fallback id would be both unique and stable. */
void retention_event_id(const struct retention_event *event,
			char id_r[RETENTION_EVENT_ID_SIZE]);

/* Serialize the event as the webhook body:
   {"type":…,"timestamp":RFC 3339 UTC,"data":{user, mailbox, uidl, uid,
   uidvalidity, message_id, size, arrived_at, retrieved_at,
   first_retrieval, policy, reason, retain_until, session, remote_ip,
   dry_run}} with compact separators and a stable key order. Times of 0
   and NULL strings are null. Strings that are not UTF-8 get U+FFFD for
   each bad byte, and are cut (at a character) after 998 bytes.
   Returns a malloc()ed NUL-terminated string the caller frees, or NULL
   on allocation failure. */
char *retention_event_to_json(const struct retention_event *event);

/* A compact spool record: this prefix, then the event's fields as
   retention_event_encode() writes them (retention-event-codec.h).
   Stored instead of the JSON body so that the thread accepting
   events does not build JSON (about half its work per event); it is
   rendered when a delivery thread checks the event out. */
#define RETENTION_EVENT_RECORD_PREFIX "pop3-retention-event 1\t"

/* A webhook_spool_render_fn (webhook-spool.h) for compact records:
   a stored body that starts with RETENTION_EVENT_RECORD_PREFIX becomes
   the event's JSON body (returns 1, *body_r malloc()ed); any other body
   is sent as stored (returns 0); -1 with a static error_r for a record
   that does not decode or no memory. Thread-safe. */
int retention_event_render(void *context, const unsigned char *stored,
			   size_t stored_len, unsigned char **body_r,
			   size_t *body_len_r, const char **error_r);


#endif
