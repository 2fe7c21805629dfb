#ifndef SHIM_MAILDIR_H
#define SHIM_MAILDIR_H

/* One user's Maildir, as a POP3 maildrop: scanned once per session
   (or sweep), then read, expunged or moved by message index.

   Layout: <dir>/new, <dir>/cur, <dir>/tmp, written by any MDA. A
   message's base name is its file name up to the first ':' (the
   Maildir info part); it does not change when the file moves from new/
   to cur/ or gets flags, so it is the message's identity and, when it
   is a valid RFC 1939 unique-id, its UIDL. The arrival time is the
   file's mtime (what MDAs and Dovecot's maildir use).

   Sizes are RFC 1939 sizes: the octets RETR sends for the message with
   every line ending in CRLF, before dot-stuffing, without the final
   ".\r\n". Dovecot's ",W=<n>" in a file name gives it; otherwise it
   is computed by reading the file once, and the host caches it.

   Errors go into a caller's buffer (error, error_size) and say what
   failed on which path. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct shim_maildir_msg {
	/* the base name (owned by the maildir) */
	const char *base;
	/* the UIDL: base when it is 1-70 octets of 0x21-0x7E, else a
	   stable 40-hex-digit digest of base */
	const char *uidl;
	time_t arrived_at;
	uint64_t size;
};

struct shim_maildir;

/* Open the Maildir at dir, creating new/, cur/ and tmp/ (mode 0700)
   when missing. Nothing is scanned yet. Returns NULL with error. */
struct shim_maildir *shim_maildir_open(const char *dir, char *error,
				       size_t error_size);
/* Unlock (if locked), free, and NULL the pointer. */
void shim_maildir_close(struct shim_maildir **md);

/* The maildrop lock: one POP3 session (or sweep) per maildrop, also
   across processes and hosts sharing the directory (an fcntl write
   lock on <dir>/pop3-retentiond.lock; over NFS this needs the NFS lock
   service, as Dovecot's lock_method=fcntl does). Never waits. Returns
   1 locked, 0 held by another process, -1 with error. The kernel
   releases it when the process dies: a killed session never blocks
   the next one. */
int shim_maildir_lock(struct shim_maildir *md, char *error,
		      size_t error_size);
void shim_maildir_unlock(struct shim_maildir *md);

/* Size cache lookup offered by the host: 1 with *size_r when it knows
   the size of base, 0 otherwise. */
typedef int shim_maildir_size_lookup_t(void *context, const char *base,
				       uint64_t *size_r);

/* Scan the maildrop: move each file of new/ to cur/ (adding ":2,"),
   then list cur/ (names starting with '.' skipped), at most
   SHIM_MESSAGES_MAX messages, sorted by (arrived_at, base). Sizes come
   from size_lookup (may be NULL), else ",W=", else reading the file.
   A file that vanishes meanwhile is left out. Returns 0, or -1 with
   error (then the listing is empty). */
int shim_maildir_scan(struct shim_maildir *md,
		      shim_maildir_size_lookup_t *size_lookup, void *context,
		      char *error, size_t error_size);

unsigned int shim_maildir_count(const struct shim_maildir *md);
/* Message idx (0-based, < count), valid until close. */
const struct shim_maildir_msg *
shim_maildir_msg(const struct shim_maildir *md, unsigned int idx);
/* The directory given to open(). */
const char *shim_maildir_path(const struct shim_maildir *md);

/* Expunge message idx (unlink its file). Returns 0, or -1 with error
   (a file already gone is an error: "already removed"). */
int shim_maildir_expunge(struct shim_maildir *md, unsigned int idx,
			 char *error, size_t error_size);
/* Move message idx into the Maildir++ folder `folder` ("Archive";
   "Archive/2024" is ".Archive.2024"), created with new/ cur/ tmp/ when
   missing. The file is linked into the folder's cur/ (fsynced) before
   it is unlinked here: a crash between the two leaves two copies,
   never none. Returns 0, or -1 with error. */
int shim_maildir_move(struct shim_maildir *md, unsigned int idx,
		      const char *folder, char *error, size_t error_size);

/* The first Message-ID header of message idx, unfolded, into buf
   (truncated to size - 1). Reads the header only. Returns 1 found, 0
   none, -1 with error. */
int shim_maildir_message_id(struct shim_maildir *md, unsigned int idx,
			    char *buf, size_t size, char *error,
			    size_t error_size);

/* A RETR or TOP response body, produced piece by piece so that a
   message is never read into memory whole. */
struct shim_msg_stream;

/* Open message idx. top_lines < 0: RETR (the whole message); >= 0:
   TOP, the header, the blank line after it and that many body lines.
   Returns NULL with error (the file vanished, cannot be read). */
struct shim_msg_stream *shim_msg_stream_open(struct shim_maildir *md,
					     unsigned int idx,
					     long top_lines, char *error,
					     size_t error_size);
/* Write up to size (>= 2 * SHIM_READ_CHUNK + 5) octets of the response
   body into buf: every line ending CRLF, lines starting with '.'
   dot-stuffed, and finally ".\r\n" (preceded by CRLF when the message
   does not end with a line end). Returns the octets written, 0 once
   everything including ".\r\n" was produced, -1 with error on a read
   error. Reads at most SHIM_READ_CHUNK octets of the file per call. */
ssize_t shim_msg_stream_read(struct shim_msg_stream *stream, char *buf,
			     size_t size, char *error, size_t error_size);
/* After _read() returned 0: whether the whole message was sent (RETR,
   or a TOP whose line count covered every body line). */
bool shim_msg_stream_whole(const struct shim_msg_stream *stream);
void shim_msg_stream_close(struct shim_msg_stream **stream);

#endif
