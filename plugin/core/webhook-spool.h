#ifndef WEBHOOK_SPOOL_H
#define WEBHOOK_SPOOL_H

/* Durable queue of webhook events on append-only segment files:

     <dir>/seg/      segments and their outcome logs
     <dir>/dead/     dead-lettered events, one file each
     <dir>/corrupt/  quarantined bytes, kept for the admin
     <dir>/lock      flock()ed by the process that owns the spool

   A segment seg/<created_ms>-<pid>-<seq>.seg is written by the owner
   only, and only ever appended to:

     pop3-retention-segment 1\n
     E <webhook-id> <created_ms> <body_len> <sha256 hex of the body>\n
     <body_len bytes of the exact JSON body that is signed and sent>\n
     E ...

   The outcomes of its events go into seg/<same name>.log, one line each,
   naming a record by its number in the segment (0 = the first):

     D <n>\n                   delivered
     R <n> <attempts> <due_ms>\n  attempt failed, next one due then
     X <n>\n                   dead-lettered (the dead/ file is durable)

   The last line for a record wins. A dead-lettered event is also
   written to dead/<segment name>.<n>, a text header (the line
   "pop3-retention-dead 1", then "id", "created", "attempts", "length"
   and "sha256" lines, a blank line) followed by the body.

   Ids held: the spool knows the webhook-id of every record in its
   segments, pending or done, and webhook_spool_append() skips an event
   whose id it holds. A segment whose events are all delivered or
   dead-lettered stays on disk for the recent window
   (webhook_spool_set_recent(), WEBHOOK_SPOOL_RECENT_MS by default; at
   most WEBHOOK_SPOOL_RECENT_BYTES of such segments), so that an event
   handed over again after a crash of its producer or of the service,
   with the same id, is not sent again; then it is unlinked, and its log
   once that unlink is durable.

   Durability: webhook_spool_commit() writes the batch and makes it
   durable with one fdatasync() of the segment (and one fsync() of seg/
   after a new segment was started); only then are its events visible.
   Outcomes of deliveries (D, R) wait in memory until
   webhook_spool_flush(), which the delivery engine calls before its
   loop waits again: one write(2) per segment for all the responses one
   wake-up brought. Dead letters (X) are written at once. A process
   killed between a response and the end of that loop turn loses those
   outcomes (its events go out again: at-least-once), never a written
   one; webhook_spool_sync() flushes and makes them durable with one
   fdatasync() per log written since the last call, which the engine
   does at a bounded rate: losing the last ones in a power failure only
   means an extra attempt (receivers dedupe on the webhook-id).

   Integrity: the owner verifies every record (header and SHA-256 of the
   body) when it reads a segment at open. An incomplete last record (a
   write cut short by a crash, never committed) is cut off silently; a
   bad record before the end is copied to corrupt/ with everything after
   it and cut off, logged as a warning; the events before it stay.
   Checkout does not hash again: records read at open were verified
   then, and those appended since are read back from the page cache as
   written (it only checks that the record header is where the index
   says). Damage done on disk meanwhile shows at the next open.

   Two ways to open a directory:
     owner (flags 0)  the delivery process: takes the lock, reads, repairs
                      and indexes every segment in seg/ (about 48 bytes
                      per pending event and 16 per id held: the body is
                      read with the record at checkout), appends;
     WEBHOOK_SPOOL_READ_ONLY  a status command: counts only, changes
                      nothing.

   One thread: the spool has no lock of its own and runs no loop; it
   blocks on nothing but local file I/O. Errors are returned as -1 with
   the text in webhook_spool_error(); problems that do not stop the spool
   (a quarantined record, a repaired log) go to the log callback. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_SPOOL_ERROR_MAX 512
/* A webhook-id with its NUL: 1..127 of [A-Za-z0-9_-] (Standard Webhooks
   forbids '.' in it, and it goes into an HTTP header). */
#define WEBHOOK_SPOOL_ID_MAX 128
/* Bodies are thin (the spec advises under 20 KB); a bigger one is a bug. */
#define WEBHOOK_SPOOL_BODY_MAX (64 * 1024)
/* Pending events. Beyond it appends fail, so that producers fall back
   to their outboxes. */
#define WEBHOOK_SPOOL_EVENTS_MAX 1000000
/* Appends of one batch; a full batch is committed automatically. */
#define WEBHOOK_SPOOL_BATCH_MAX 1024
/* A writer starts a new segment at the first commit that leaves its
   segment at least this large, or with this many events: small enough
   that delivered events free their space soon, large enough that
   creating files is rare. */
#define WEBHOOK_SPOOL_SEGMENT_BYTES (4 * 1024 * 1024)
#define WEBHOOK_SPOOL_SEGMENT_EVENTS 8192
/* How long a segment whose events are all done stays, its ids held:
   longer than a producer can take to hand an event over again (a drop
   file is read again from its start after a restart of the service). */
#define WEBHOOK_SPOOL_RECENT_MS (24LL * 3600 * 1000)
/* At most this much of such segments stays; the oldest go first. */
#define WEBHOOK_SPOOL_RECENT_BYTES (256LL * 1024 * 1024)

enum webhook_spool_flags {
	WEBHOOK_SPOOL_READ_ONLY = 0x02,
};

/* Shared with webhook-delivery.h. */
enum webhook_log_level {
	WEBHOOK_LOG_DEBUG = 0,
	WEBHOOK_LOG_INFO,
	WEBHOOK_LOG_WARNING,
	WEBHOOK_LOG_ERROR,
};

/* One checked-out event. Read-only for the caller; owned by the spool
   until it is handed back with exactly one of webhook_spool_delivered(),
   _reschedule(), _dead_letter() or _release(). */
struct webhook_spool_event {
	const char *id;			/* the webhook-id */
	const unsigned char *body;	/* body_len bytes, then a NUL */
	size_t body_len;
	int64_t created_ms;		/* Unix time in milliseconds */
	unsigned int attempts;		/* attempts made so far */
	int64_t due_ms;			/* when this attempt was due */
};

struct webhook_spool_counts {
	unsigned int pending;		/* committed, not delivered or dead
					   (checked out included) */
	unsigned int retrying;		/* of those, attempted at least once */
	unsigned int checked_out;
	unsigned int dead;		/* files in dead/ */
	unsigned int corrupt;		/* files in corrupt/ (READ_ONLY: also
					   segments that need a repair) */
	int64_t oldest_created_ms;	/* of the pending ones; -1: none */
	int64_t next_due_ms;		/* earliest due not checked out; -1 */
};

struct webhook_spool;

/* Create a spool object for directory dir (copied; at most PATH_MAX - 64
   bytes, checked by webhook_spool_open()) with WEBHOOK_SPOOL_* flags.
   Nothing is touched on disk. Returns NULL only on allocation
   failure. */
struct webhook_spool *webhook_spool_create(const char *dir,
					   unsigned int flags);

/* Close the spool, releasing the lock, and NULL the pointer. An
   uncommitted batch is discarded (cut off the segment). Events still
   checked out are freed: pointers to them become invalid, so destroy the
   delivery engine first. *spool may be NULL. */
void webhook_spool_destroy(struct webhook_spool **spool);

/* Route the per-file messages (quarantine, repairs) to log, called
   synchronously with context: log must not call back into the spool.
   Without it they are dropped. */
void webhook_spool_set_log(struct webhook_spool *spool,
			   void (*log)(void *context,
				       enum webhook_log_level level,
				       const char *message),
			   void *context);

/* Open the directory as the flags say: as owner create dir (not its
   parents) and its subdirectories, lock it (fails if another process
   owns it), read, repair and index the segments in seg/, and delete
   those done longer than the recent window. Returns 0, or -1 with
   webhook_spool_error(). Call once. */
int webhook_spool_open(struct webhook_spool *spool);

/* The text of the last call's error; "" if none. Valid until the next
   call on the spool. */
const char *webhook_spool_error(const struct webhook_spool *spool);

/* How long done segments stay, their ids held (default
   WEBHOOK_SPOOL_RECENT_MS; 0: deleted as soon as they are done). */
void webhook_spool_set_recent(struct webhook_spool *spool,
			      int64_t recent_ms);

/* Add one event to the current batch. id is the webhook-id, body the
   exact bytes to send (1..WEBHOOK_SPOOL_BODY_MAX), created_ms the Unix
   time of creation in milliseconds. Both are copied; nothing is durable
   or visible before webhook_spool_commit(). A full batch is committed
   first. Returns 0, 1 if the spool holds that id already (pending, in
   the batch, or done within the recent window: nothing is added), or
   -1 with the error (the event was not added; the batch so far is
   unaffected unless the automatic commit failed). Not in READ_ONLY
   mode. */
int webhook_spool_append(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len,
			 int64_t created_ms);

/* Make the batch durable and visible: write(2) it to the segment, one
   fdatasync() of the segment (plus one fsync() of seg/ if the segment
   is new), then index it; start a new segment if this one is full.
   Returns 0 when every event of the batch is durable (also for an empty
   batch); -1 with the error otherwise, in which case the whole batch is
   discarded (cut off the segment, which is then retired), so the caller
   re-sends it. */
int webhook_spool_commit(struct webhook_spool *spool);

/* Discard the uncommitted batch. */
void webhook_spool_abort(struct webhook_spool *spool);

/* Delay before the first attempt (the retry schedule's first entry):
   a never-attempted event is due at created_ms + delay_ms. Default 0.
   Owner mode. */
void webhook_spool_set_first_delay(struct webhook_spool *spool,
				   int64_t delay_ms);

/* Take the earliest event due at or before now_ms (Unix ms) out of the
   queue, reading its record from the segment. Returns 1 with *event_r,
   0 if nothing is due, -1 with the error on an I/O error (the event
   stays queued and is tried again 5 s later). Owner mode. */
int webhook_spool_checkout(struct webhook_spool *spool, int64_t now_ms,
			   struct webhook_spool_event **event_r);

/* When the earliest queued (not checked-out) event is due, in Unix ms,
   or -1 if there is none. */
int64_t webhook_spool_next_due(const struct webhook_spool *spool);

/* The event was delivered: add "D" to the outcome log's buffer (written
   by webhook_spool_flush()), free the event and NULL the pointer.
   Returns 0, or -1 with the error if lines waiting before it could not
   be written (those events would be sent again after a restart). */
int webhook_spool_delivered(struct webhook_spool *spool,
			    struct webhook_spool_event **event);

/* An attempt failed and another is due at due_ms: count the attempt,
   add "R" to the outcome log's buffer, queue the event again, NULL the
   pointer. Returns 0, or -1 with the error as for _delivered() (the
   event is queued for due_ms anyway). */
int webhook_spool_reschedule(struct webhook_spool *spool,
			     struct webhook_spool_event **event,
			     int64_t due_ms);

/* The last attempt failed: count it, write the event to a file in dead/
   (made durable before anything else), append "X" to the outcome log,
   free the event, NULL the pointer. Returns 0, or -1 with the error if
   the dead/ file could not be written (the event then stays queued, due
   a minute later) or the "X" could not (the event may come back after
   a restart). */
int webhook_spool_dead_letter(struct webhook_spool *spool,
			      struct webhook_spool_event **event);

/* Queue the event again unchanged (no attempt was made, or its outcome
   is unknown), NULL the pointer. */
void webhook_spool_release(struct webhook_spool *spool,
			   struct webhook_spool_event **event);

/* Write the outcome lines waiting in memory: one write(2) per segment.
   Returns 0, or -1 with the error (those lines are dropped: their
   events go out again after a restart). */
int webhook_spool_flush(struct webhook_spool *spool);

/* Delete the segments whose recent window is over, flush, then make the
   outcomes recorded since the last call durable: one fdatasync() of
   each outcome log written, one fsync() of seg/ if files were created
   or removed there; only then are the logs of deleted segments removed.
   Returns 0, or -1 with the error. */
int webhook_spool_sync(struct webhook_spool *spool);

/* Fill counts for a `queue` command. Cannot fail. */
void webhook_spool_counts(const struct webhook_spool *spool,
			  struct webhook_spool_counts *counts_r);

#endif
