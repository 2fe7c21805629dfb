#ifndef POP3_RETENTION_EVENTS_H
#define POP3_RETENTION_EVENTS_H

/* Hands webhook events from a pop3 (or doveadm) process to the
   pop3-retention service without ever blocking a POP3 reply and without
   a round trip: each event is appended, one write() per event, to a
   drop file of this session in the service's drop directory
   (pop3-retention-protocol.h, "Drop files"), which the service reads,
   spools and then removes. The write survives a kill of this process or
   of the service at once. If the drop directory cannot be used (the
   service never ran, permissions, disk full), the event goes to the
   user's outbox, a spool directory in the user's index directory, with
   a warning. */

#include <stdint.h>

struct mail_user;
struct event;
struct pop3_retention_events;

/* Start the hand-off for a user; nothing is opened before the first
   event. drop_dir is the service's drop directory, outbox_dir where
   events go when it cannot be used. Returns the object (never NULL). */
struct pop3_retention_events *
pop3_retention_events_init(struct event *event, const char *drop_dir,
			   const char *outbox_dir);

/* Send one event: its creation time in Unix ms and its fields
   (pop3_retention_event_encode()). Written to the drop file before this
   returns, or to the outbox (made durable before this returns). */
void pop3_retention_events_send(struct pop3_retention_events *events,
				int64_t created_ms, const char *fields);

/* End of the session: close the drop file (which tells the service
   that it is complete), free and NULL the pointer. Nothing waits. */
void pop3_retention_events_deinit(struct pop3_retention_events **events);

#endif
