#ifndef POP3_RETENTION_PROTOCOL_H
#define POP3_RETENTION_PROTOCOL_H

/* The line protocol between doveadm pop3-retention flush/queue (and any
   other producer that wants an acknowledgement) and the pop3-retention
   delivery service, over the unix socket <base_dir>/pop3-retention.
   pop3 processes use drop files instead (below). Lines end in LF;
   fields are separated by TAB and tab-escaped (Dovecot's str_tabescape),
   so they contain neither.

   Producers send the event's facts, not its JSON body: the service
   builds the body and the webhook-id. So a pop3 process, started for
   every session, maps no JSON, crypto or HTTP library.

   Both sides first send:
     VERSION <TAB> pop3-retention <TAB> 2 <TAB> 0

   Producer -> service:
     E <TAB> <seq> <TAB> <created_ms> <TAB> <event fields>
         one event: <seq> is the producer's number for it on this
         connection ([0-9A-Za-z_-], at most 127 characters),
         <event fields> the POP3_RETENTION_EVENT_FIELDS fields of
         pop3_retention_event_encode(). The webhook-id is a hash of the
         event's identity, so the same event always gets the same id and
         a replay from an outbox dedupes at the receiver. The service
         answers once the event is durable in the spool:
     A <TAB> <seq>               accepted (spooled, fsynced)
     R <TAB> <seq> <TAB> <reason>
                                 refused (malformed, spool full/failing):
                                 the producer keeps it (outbox)
     Q
         queue counts; the service answers
     Q <TAB> <pending> <TAB> <retrying> <TAB> <dead> <TAB> <corrupt>
       <TAB> <oldest age secs, -1: none> <TAB> <disabled 0|1>
       <TAB> <delivered> <TAB> <failed> <TAB> <dead-lettered since start>
       <TAB> <in flight> <TAB> <state>
         (counters since the service started; state is "delivering",
         "no-url", "no-secret" (secret file missing or refused),
         "failed" (the engine did not start) or "standby" (an older
         service process still owns the spool); readers ignore fields
         they do not know)

   The service acknowledges in batches: it reads every complete line it
   has, appends them to the spool, commits the batch once (one sync for
   the batch), then writes the A lines. A line longer than
   POP3_RETENTION_PROTOCOL_LINE_MAX, a NUL byte, an unknown command or an
   E line without a valid <seq> disconnects the client (after the events
   before it were answered); an E line with a valid <seq> but a bad time
   or bad fields gets an R (a string field over
   RETENTION_EVENT_STRING_MAX octets is cut there). <created_ms> is
   clamped to the last 30 days and now. A client that sends nothing for 10 s is disconnected, and at
   most 1000 of its lines are handled per read (pop3-retention-service.c:
   CLIENT_IDLE_TIMEOUT_MSECS, CLIENT_LINES_PER_INPUT_MAX). */

#include "retention-event-codec.h"

#define POP3_RETENTION_SOCKET_NAME "pop3-retention"
#define POP3_RETENTION_PROTOCOL_NAME "pop3-retention"
#define POP3_RETENTION_PROTOCOL_MAJOR 2
#define POP3_RETENTION_PROTOCOL_MINOR 0
#define POP3_RETENTION_HANDSHAKE "VERSION\tpop3-retention\t2\t0\n"

/* The longest line either side accepts: an event's fields are far
   below it (the spool caps a body at 64 KiB). */
#define POP3_RETENTION_PROTOCOL_LINE_MAX (64 * 1024 + 256)

/* Per-user outbox, relative to the INBOX namespace's index root: events
   the pop3 process could not hand to the service, in files in new/
   (written in tmp/, fsynced, renamed), each holding
   POP3_RETENTION_OUTBOX_MAGIC then one or more
   "<created_ms> TAB <event fields> LF" lines: the events one write
   gave up on together (up to 256 per file).
   Sent to the service by doveadm pop3-retention flush, which sets
   aside in POP3_RETENTION_OUTBOX_REJECTED (beside new/) the files that
   are not regular files and those holding an event of another user
   than the outbox's owner: none of their events is sent. */
#define POP3_RETENTION_OUTBOX_DIR "pop3-retention-outbox"
#define POP3_RETENTION_OUTBOX_MAGIC "pop3-retention-outbox 1\n"
#define POP3_RETENTION_OUTBOX_REJECTED "rejected"

/* Drop files: how pop3 (and doveadm) processes hand events over. The
   service creates the drop directory, relative to Dovecot's base_dir (a
   tmpfs on Debian: /run/dovecot), owned by its user, with the group of
   its unix socket and the sticky bit: whoever may connect to the socket
   may create files in it (mode 1730, or 1733 for a socket that
   everybody may use), nobody else may list it, and only the service may
   remove others' files.

   While the service reads the directory, it holds a write lock (fcntl
   F_SETLK, never waiting) on POP3_RETENTION_DROP_ALIVE in it: a file
   it creates anew at every start (under a random name, locked, then
   renamed into place), owned by its user, mode
   POP3_RETENTION_DROP_ALIVE_MODE. Others may read it but not write it,
   so they cannot take a write lock on it, nor replace it (sticky bit),
   nor hold up the service's start (it locks a file nobody else has
   opened yet). A producer checks it before it creates its file: unless
   .alive is a regular file owned by the directory's owner, not writable
   by group or others, and F_GETLK reports a write lock on it (the
   service is running and reads the directory, not standing by), it
   writes to its outbox instead, which is on disk: drop files live in
   memory until the service spools them (within milliseconds), so they
   survive the kill of any process but not a reboot.

   A producer creates one drop file per session, named
   "<unix time>.<pid>.<16 lower-case hex digits>", takes an exclusive
   flock() on it (blocking: the service may hold a shared one for a
   moment), then writes POP3_RETENTION_DROP_MAGIC and one "<created_ms>
   TAB <event fields> LF" line per event, each with a single write(),
   and keeps the lock until it closes the file. The service reads
   complete lines as they come; an unlocked file with data is complete
   (its producer locked it before writing), an unlocked empty one only
   once it is a minute old; a complete file is removed once its events
   are in the spool. Files are POP3_RETENTION_DROP_FILE_MODE: the
   service, not their owner, reads them. Names of another form are not
   drop files: the service neither reads nor removes them.

   Where mail users have their own uids, the service refuses (keeps
   aside) an event whose user is a system user (getpwnam()) with
   another uid than the drop file's owner; where they share one uid
   (vmail), their names are not system users and the group is trusted
   like the mail store (docs/dovecot.md). */
#define POP3_RETENTION_DROP_DIR "pop3-retention-drop"
#define POP3_RETENTION_DROP_MAGIC "pop3-retention-drop 1\n"
#define POP3_RETENTION_DROP_FILE_MODE 0644
#define POP3_RETENTION_DROP_ALIVE ".alive"
#define POP3_RETENTION_DROP_ALIVE_MODE 0644

/* The service's spool, relative to Dovecot's state_dir. */
#define POP3_RETENTION_SPOOL_DIR "pop3-retention"

/* Number of event fields on the wire (the core's codec:
   retention-event-codec.h). */
#define POP3_RETENTION_EVENT_FIELDS RETENTION_EVENT_FIELDS

/* Append value in decimal, as "%lld" would, without printf. */
void pop3_retention_str_append_int64(string_t *dest, int64_t value);

/* Append the event's fields to dest as the core's
   retention_event_encode() writes them (string fields capped at
   RETENTION_EVENT_STRING_MAX octets). No LF. */
void pop3_retention_event_encode(string_t *dest,
				 const struct retention_event *event);

/* Write the "<created_ms> TAB <event fields>" lines of lines[] into
   outbox files in dir (creating dir, dir/tmp and dir/new, mode 0700),
   as few as possible, durable on return: each file fdatasynced and
   renamed into new/, then one fsync of new/. Returns the number of
   events written (files written before an error stay), or -1 with
   error_r if none could be. */
int pop3_retention_outbox_write(const char *dir, const char *const *lines,
				unsigned int count, const char **error_r);

/* Read one outbox file, opened O_NONBLOCK | O_NOFOLLOW: returns 1 and
   its "<created_ms> TAB <event fields>" lines as a NULL-terminated array
   in lines_r (data stack), 0 if the file is gone, -1 with error_r if it
   is not a complete outbox file or cannot be read, -2 with error_r if
   it is not a regular file (a symbolic link, a FIFO…: nothing was read
   from it). */
int pop3_retention_outbox_read(const char *path,
			       const char *const **lines_r,
			       const char **error_r);

#endif
