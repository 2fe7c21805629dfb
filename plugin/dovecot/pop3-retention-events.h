#ifndef POP3_RETENTION_EVENTS_H
#define POP3_RETENTION_EVENTS_H

/* Hands webhook events from a pop3 process to the pop3-retention service
   without ever blocking a POP3 reply: events are written to the service's
   unix socket (non-blocking, bounded), acknowledged asynchronously, and
   whatever the service did not acknowledge by the end of the session —
   or could not be sent at all — goes to the user's outbox, a spool
   directory in the user's index directory, with a warning. */

#include <stdint.h>

struct mail_user;
struct event;
struct pop3_retention_events;

/* Start the hand-off for a user: connect to socket_path (logs a warning
   and falls back to the outbox if that fails). outbox_dir is where
   unacknowledged events are kept. Returns the object (never NULL). */
struct pop3_retention_events *
pop3_retention_events_init(struct event *event, const char *socket_path,
			   const char *outbox_dir);

/* Send one event: its creation time in Unix ms and its fields
   (pop3_retention_event_encode()). If the service is unreachable or too
   far behind, the event goes straight to the outbox, made durable before
   this returns. */
void pop3_retention_events_send(struct pop3_retention_events *events,
				int64_t created_ms, const char *fields);

/* End of the session: wait a bounded time for the service's
   acknowledgements (the client is already disconnected when Dovecot
   deinitializes the user), move what is left to the outbox, free and
   NULL the pointer. */
void pop3_retention_events_deinit(struct pop3_retention_events **events);

#endif
