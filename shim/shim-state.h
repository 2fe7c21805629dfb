#ifndef SHIM_STATE_H
#define SHIM_STATE_H

/* Per-maildir retention state of pop3-retentiond, in one small text
   file in the Maildir: <maildir>/pop3-retentiond.state

     pop3-retentiond-state 1\n
     <base> <first_retrieved_at> <flags> <size>\n    one per message

   base: the message's Maildir base name (no blanks, no '/');
   first_retrieved_at: Unix time of its first complete download, 0 for
   none; flags: "h" retained (hidden from POP3, kept on disk) or "-";
   size: its cached RFC 1939 size, 0 for unknown. Entries are sorted by
   base.

   The file is replaced atomically (a temp file in the same directory,
   rename; with fsyncs of the file and the directory when durable), so a
   crash leaves the old or the new file, never a mix. Fail safe: a missing file is an empty
   state (nothing downloaded, nothing retained); a file that cannot be
   read or parsed is an error, and the host then removes nothing. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SHIM_STATE_FNAME "pop3-retentiond.state"

struct shim_state_entry {
	time_t first_retrieved_at;
	bool hidden;
	uint64_t size;
};

struct shim_state;

/* Load the state file at path. A missing file gives an empty state.
   Returns 0 with *state_r, or -1 with error (unreadable, a line that
   does not parse - the error names path and line - or a file over
   SHIM_STATE_SIZE_MAX). */
int shim_state_load(const char *path, struct shim_state **state_r,
		    char *error, size_t error_size);
void shim_state_free(struct shim_state **state);

/* The entry of base, or NULL. Valid until the next change. */
const struct shim_state_entry *
shim_state_get(const struct shim_state *state, const char *base);

/* Change one field of base's entry (created when missing). Returns 0,
   -1 on allocation failure or a base with a blank, '/' or control
   character (nothing changed). */
int shim_state_set_retrieved(struct shim_state *state, const char *base,
			     time_t first_retrieved_at);
int shim_state_set_hidden(struct shim_state *state, const char *base,
			  bool hidden);
int shim_state_set_size(struct shim_state *state, const char *base,
			uint64_t size);
/* Forget base (its message was removed). */
void shim_state_forget(struct shim_state *state, const char *base);
/* Forget every entry whose base is not in bases (count of them, any
   order): messages removed by someone else. */
void shim_state_prune(struct shim_state *state, const char *const *bases,
		      unsigned int count);

/* Whether something changed since load or the last save. */
bool shim_state_dirty(const struct shim_state *state);
/* Write the file if dirty, atomically (see above). durable: fsync the
   file and the directory, so that it survives a power failure; without,
   it survives the process's death but not a power failure (the old
   file may come back: fail safe, it only forgets downloads). Returns 0,
   or -1 with error (the previous file stays as it was). */
int shim_state_save(struct shim_state *state, bool durable, char *error,
		    size_t error_size);

#endif
