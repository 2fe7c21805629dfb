#ifndef RETENTION_EVENT_CODEC_H
#define RETENTION_EVENT_CODEC_H

/* An event's fields as one line of text: the form in which producers
   (pop3 processes, doveadm) hand events over, in drop files, outbox
   files and the pop3-retention socket protocol, and of compact spool
   records. Plain C, no dependency: a pop3 process links it.

   RETENTION_EVENT_FIELDS fields separated by TAB, in the order type,
   timestamp, user, mailbox, uidl, uid, uidvalidity, message_id, size,
   arrived_at, retrieved_at, first_retrieval (0/1), policy, reason,
   retain_until, session, remote_ip, dry_run (0/1), seq (empty for 0).
   Times are Unix seconds, empty when unknown; an empty string field is
   NULL. Lines of RETENTION_EVENT_FIELDS_NO_SEQ fields (no seq) decode
   with seq 0. Each string field is tab-escaped as in Dovecot's internal
   protocols (str_tabescape()): \001 followed by '0', '1', 't', 'r' or
   'n' stands for NUL, \001, TAB, CR or LF, so a line holds neither TAB
   inside a field nor CR nor LF. */

#include "retention-event.h"

#include <stddef.h>

#define RETENTION_EVENT_FIELDS 19
#define RETENTION_EVENT_FIELDS_NO_SEQ 18

/* The longest string field value the encoder writes, in octets before
   escaping: an RFC 5322 line. Longer values (a hostile Message-ID) are
   cut there, at a character boundary when the value is UTF-8. */
#define RETENTION_EVENT_STRING_MAX 998

/* The room retention_event_encode() needs at most, NUL included: seven
   string fields of RETENTION_EVENT_STRING_MAX octets, each escaped to
   at most twice that, and twelve fields of at most 32 octets (names,
   numbers), each with its TAB. */
#define RETENTION_EVENT_ENCODED_MAX \
	(7 * (2 * RETENTION_EVENT_STRING_MAX + 1) + 12 * (32 + 1) + 1)

/* Write the event's fields into buf (size octets), NUL-terminated, no
   LF. NULL strings and times <= 0 become empty fields; string fields
   are cut at RETENTION_EVENT_STRING_MAX octets. Returns the length
   written (without the NUL), or -1 if size is too small for this event
   (never with size >= RETENTION_EVENT_ENCODED_MAX); buf is then an
   empty string if size > 0. The event is only read. */
int retention_event_encode(const struct retention_event *event, char *buf,
			   size_t size);

/* Decode fields (NUL-terminated, no LF) in place into event_r, whose
   strings then point into fields (valid as long as fields is). A string
   field longer than RETENTION_EVENT_STRING_MAX octets once unescaped
   (which the encoder never writes: it comes from a producer that is not
   ours) is cut there, as the encoder cuts it. Returns
   0, or -1 with error_r (a static string or a per-thread buffer, valid
   until this thread's next call). Allocates nothing. */
int retention_event_decode(char *fields, struct retention_event *event_r,
			   const char **error_r);

#endif
