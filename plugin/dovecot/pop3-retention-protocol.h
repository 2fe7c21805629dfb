#ifndef POP3_RETENTION_PROTOCOL_H
#define POP3_RETENTION_PROTOCOL_H

/* The line protocol between event producers (pop3 processes, doveadm
   pop3-retention flush/queue) and the pop3-retention delivery service,
   over the unix socket <base_dir>/pop3-retention. Lines end in LF;
   fields are separated by TAB. The JSON body is compact (jansson escapes
   every control character inside strings), so it contains neither.

   Both sides first send:
     VERSION <TAB> pop3-retention <TAB> 1 <TAB> 0

   Producer -> service:
     E <TAB> <webhook-id> <TAB> <created_ms> <TAB> <json body>
         one event. The service answers once it is durable in the spool:
     A <TAB> <webhook-id>        accepted (spooled, fsynced)
     R <TAB> <webhook-id> <TAB> <reason>
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
   E line without a valid webhook-id disconnects the client (after the
   events before it were answered); an E line with a valid id but a bad
   time or body gets an R. */

#define POP3_RETENTION_SOCKET_NAME "pop3-retention"
#define POP3_RETENTION_PROTOCOL_NAME "pop3-retention"
#define POP3_RETENTION_PROTOCOL_MAJOR 1
#define POP3_RETENTION_PROTOCOL_MINOR 0
#define POP3_RETENTION_HANDSHAKE "VERSION\tpop3-retention\t1\t0\n"

/* The longest line either side accepts: an event body is capped at
   64 KiB by the spool, plus the id and the time. */
#define POP3_RETENTION_PROTOCOL_LINE_MAX (64 * 1024 + 256)

/* Per-user outbox, relative to the INBOX namespace's index root: events
   the pop3 process could not hand to the service (same file format as
   the service's spool; imported by doveadm pop3-retention flush or by
   the user's next session). */
#define POP3_RETENTION_OUTBOX_DIR "pop3-retention-outbox"

/* The service's spool, relative to Dovecot's state_dir. */
#define POP3_RETENTION_SPOOL_DIR "pop3-retention"

#endif
