#ifndef WEBHOOK_SPOOL_H
#define WEBHOOK_SPOOL_H

/* Durable maildir-style queue of webhook events, one file per event:

     <dir>/tmp/      being written (removed when the spool is opened)
     <dir>/new/      pending: committed, not yet delivered
     <dir>/dead/     dead-lettered (retry schedule exhausted)
     <dir>/corrupt/  quarantined: unreadable files, kept for the admin
     <dir>/lock      flock()ed by the process that owns the spool

   A file holds a short text header (format version, webhook-id, creation
   time, body length, SHA-256 of the body) followed by the exact JSON body
   bytes that are signed and sent. The file content never changes after
   it is committed; the delivery state (attempts made, time of the next
   attempt) is encoded in the file name and changed by rename(), which
   is atomic:

     <created_ms>.<pid>.<seq>.<8 hex>,<attempts>,<next_ms>

   Durability: webhook_spool_commit() makes a whole batch durable with one
   syncfs() before the renames into new/ and one fsync() of new/ after
   them (docs/webhook-delivery.md explains the choice). Outcomes (rename,
   unlink, move to dead/) are made durable together by
   webhook_spool_sync(), which the engine calls at a bounded rate;
   losing the last ones in a power failure only means an extra attempt
   (at-least-once; receivers dedupe on the webhook-id).

   Three ways to open a directory:
     owner (flags 0)  the delivery process: takes the lock, removes
                      leftovers in tmp/, indexes new/, quarantines
                      corrupt files;
     WEBHOOK_SPOOL_APPEND_ONLY  a producer writing an outbox that the owner
                      imports later: append and commit only, no lock, so
                      several producers may share the directory;
     WEBHOOK_SPOOL_READ_ONLY  a status command: counts only, changes
                      nothing.

   Errors are returned as -1 with the text in the spool's error buffer
   (webhook_spool_error()); problems with single files that do not stop
   the spool (a quarantined file, leftovers removed) go to the log
   callback. The spool never blocks on anything but local file I/O and
   runs no loop. Not thread-safe: one thread uses a spool. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_SPOOL_ERROR_MAX 512
/* A webhook-id with its NUL: 1..127 of [A-Za-z0-9_-] (Standard Webhooks
   forbids '.' in it, and it goes into an HTTP header). */
#define WEBHOOK_SPOOL_ID_MAX 128
/* Bodies are thin (the spec advises under 20 KB); a bigger one is a bug. */
#define WEBHOOK_SPOOL_BODY_MAX (64 * 1024)
/* Events indexed in memory (about 64 bytes each). Beyond it appends fail
   and imports stop, so that producers fall back to their outboxes;
   files found at open beyond it stay on disk and are indexed once the
   index is empty again. */
#define WEBHOOK_SPOOL_EVENTS_MAX 1000000
/* Appends of one batch; a full batch is committed automatically. */
#define WEBHOOK_SPOOL_BATCH_MAX 1024
/* tmp/ files of an outbox older than this are leftovers of a crashed
   producer (a live one renames its files within milliseconds). */
#define WEBHOOK_SPOOL_TMP_STALE_SECS 3600

enum webhook_spool_flags {
	WEBHOOK_SPOOL_APPEND_ONLY = 0x01,
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
	unsigned int pending;		/* in new/ (checked out included) */
	unsigned int retrying;		/* of those, attempted at least once */
	unsigned int checked_out;
	unsigned int dead;		/* in dead/ */
	unsigned int corrupt;		/* in corrupt/ */
	unsigned int unindexed;		/* in new/ beyond the index limit */
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
   uncommitted batch is discarded (its tmp/ files unlinked). Events still
   checked out are freed: pointers to them become invalid, so destroy the
   delivery engine first. *spool may be NULL. */
void webhook_spool_destroy(struct webhook_spool **spool);

/* Route the per-file messages (quarantine, leftovers) to log, called
   synchronously with context. Without it they are dropped. */
void webhook_spool_set_log(struct webhook_spool *spool,
			   void (*log)(void *context,
				       enum webhook_log_level level,
				       const char *message),
			   void *context);

/* Open the directory as the flags say: create dir (not its parents) and
   its subdirectories unless READ_ONLY; as owner also lock it (fails if
   another process owns it), unlink everything in tmp/, index new/ and
   move corrupt files (bad name, bad header, truncated) to corrupt/.
   Returns 0, or -1 with webhook_spool_error(). Call once. */
int webhook_spool_open(struct webhook_spool *spool);

/* The text of the last error; "" if none. Valid until the next call on
   the spool. */
const char *webhook_spool_error(const struct webhook_spool *spool);

/* Write one event into tmp/ as part of the current batch. id is the
   webhook-id, body the exact bytes to send (1..WEBHOOK_SPOOL_BODY_MAX),
   created_ms the Unix time of creation in milliseconds. Both are copied
   to disk; nothing is durable or visible before webhook_spool_commit().
   A full batch is committed first. Returns 0, or -1 with the error (the
   event was not written; the batch so far is unaffected unless the
   automatic commit failed). Not in READ_ONLY mode. */
int webhook_spool_append(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len,
			 int64_t created_ms);

/* Make the batch durable and visible: one syncfs() of the spool's
   filesystem, a rename of every file into new/, one fsync() of new/.
   Returns 0 when every event of the batch is durable (also for an empty
   batch); -1 with the error otherwise, in which case some events may
   have been committed and the others are discarded, so the caller
   re-sends the whole batch (duplicates are harmless: same webhook-id). */
int webhook_spool_commit(struct webhook_spool *spool);

/* Discard the uncommitted batch (unlink its tmp/ files). */
void webhook_spool_abort(struct webhook_spool *spool);

/* Delay before the first attempt (the retry schedule's first entry):
   a never-attempted event is due at created_ms + delay_ms. Default 0.
   Owner mode. */
void webhook_spool_set_first_delay(struct webhook_spool *spool,
				   int64_t delay_ms);

/* Take the earliest event due at or before now_ms (Unix ms) out of the
   queue, reading and verifying its file; corrupt files met on the way
   are quarantined and logged, files that vanished are dropped. Returns 1
   with *event_r, 0 if nothing is due, -1 with the error on an I/O error
   (the event stays queued and is tried again 5 s later). Owner mode. */
int webhook_spool_checkout(struct webhook_spool *spool, int64_t now_ms,
			   struct webhook_spool_event **event_r);

/* When the earliest queued (not checked-out) event is due, in Unix ms,
   or -1 if there is none. */
int64_t webhook_spool_next_due(const struct webhook_spool *spool);

/* The event was delivered: unlink its file, free the event and NULL the
   pointer. Returns 0, or -1 with the error if the unlink failed (the
   file would be sent again after a restart). */
int webhook_spool_delivered(struct webhook_spool *spool,
			    struct webhook_spool_event **event);

/* An attempt failed and another is due at due_ms: count the attempt and
   record due_ms in the file name (rename), queue the event again, NULL
   the pointer. Returns 0, or -1 with the error if the rename failed (the
   event is queued for due_ms anyway, with the attempt uncounted). */
int webhook_spool_reschedule(struct webhook_spool *spool,
			     struct webhook_spool_event **event,
			     int64_t due_ms);

/* The last attempt failed: count it and move the file to dead/, free
   the event, NULL the pointer. Returns 0, or -1 with the error if the
   move failed (the event then stays queued, due a minute later). */
int webhook_spool_dead_letter(struct webhook_spool *spool,
			      struct webhook_spool_event **event);

/* Queue the event again unchanged (no attempt was made, or its outcome
   is unknown), NULL the pointer. */
void webhook_spool_release(struct webhook_spool *spool,
			   struct webhook_spool_event **event);

/* Make the outcomes recorded since the last call durable: one fsync()
   of each directory changed (new/, dead/, corrupt/). Returns 0, or -1
   with the error. */
int webhook_spool_sync(struct webhook_spool *spool);

/* Move the complete events of another spool directory (an outbox
   written by a producer in APPEND_ONLY mode) into this one: each file of
   <outbox_dir>/new/ is verified, then renamed into new/ under a fresh
   name, or, across filesystems, copied into tmp/ and committed as one
   batch before the originals are unlinked. tmp/ of the outbox is never
   read (files there are incomplete); leftovers older than
   WEBHOOK_SPOOL_TMP_STALE_SECS are unlinked. Corrupt files are moved to
   <outbox_dir>/corrupt/ and logged. A missing outbox is empty. Stops at
   WEBHOOK_SPOOL_EVENTS_MAX. Returns 0 and the number of events imported
   in *imported_r (may be NULL), or -1 with the error (events imported
   before the error stay imported; the count says how many). A crash
   during a copy can leave an event in both places: it is then sent
   twice with the same webhook-id. Owner mode. */
int webhook_spool_import_dir(struct webhook_spool *spool,
			     const char *outbox_dir, unsigned int *imported_r);

/* Read and verify one committed event file outside any spool object:
   path names a file in the new/ directory of a spool or outbox (e.g. a
   producer's outbox that a command hands to the delivery service). The
   checks are the owner's: a spool file name, no symbolic link, a
   regular file, a valid header, the exact length and the body's
   SHA-256. Returns 1 with the webhook-id copied into id_r, the body in
   *body_r (malloc()ed, NUL-terminated, body_len_r bytes before the
   NUL; the caller frees it) and the creation time in *created_ms_r;
   0 if the file vanished; -1 with the reason in error (error_size
   bytes) if it is corrupt or cannot be read. */
int webhook_spool_read_file(const char *path,
			    char id_r[WEBHOOK_SPOOL_ID_MAX],
			    unsigned char **body_r, size_t *body_len_r,
			    int64_t *created_ms_r, char *error,
			    size_t error_size);

/* Fill counts for a `queue` command. Cannot fail. */
void webhook_spool_counts(const struct webhook_spool *spool,
			  struct webhook_spool_counts *counts_r);

#endif
