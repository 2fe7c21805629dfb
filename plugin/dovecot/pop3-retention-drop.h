#ifndef POP3_RETENTION_DROP_H
#define POP3_RETENTION_DROP_H

/* The service's side of the drop files (pop3-retention-protocol.h):
   reads the events that producers append to their drop files, hands
   each one to the service, and removes a file once it is complete and
   every event in it is in a committed spool batch. inotify wakes the
   reader for every write, so an event is spooled as soon as it is
   written.

   After a restart every drop file is read from its start: the events
   that were already committed to the spool have their webhook-ids held
   there (webhook-spool.h, the recent window), so the spool skips them
   and nothing is spooled, or sent, twice. No state is kept besides the
   drop files and the spool. */

#include <sys/types.h>

struct drop_reader;

struct drop_reader_callbacks {
	/* One event line, "<created_ms> TAB <event fields>" without the
	   LF, from a file owned by owner_uid. Returns 1 if the event was
	   appended to the spool (the reader then waits for committed()), 0
	   if it is refused for good (*reason_r: the line is kept aside in
	   the rejected file), -1 if it cannot be appended now (the reader
	   retries it later). */
	int (*event)(const char *line, uid_t owner_uid, const char **reason_r,
		     void *context);
	/* Events were appended: commit them soon. */
	void (*appended)(void *context);
};

/* As root, before dropping privileges: create (or fix) the drop
   directory dir, owned by uid, with the group and the access of the
   unix socket socket_path (see pop3-retention-protocol.h). Fatal on
   errors. */
void drop_dir_prepare(const char *dir, const char *socket_path, uid_t uid,
		      gid_t fallback_gid);

/* Start reading dir. rejected_dir receives lines that are not events
   (created, 0700), at most 64 KiB of each drop file and 4 MiB in all;
   at most 10 of them are logged per file, and the reader logs at most
   100 lines a minute about what producers put in dir.
   Only files named "<time>.<pid>.<16 hex digits>" are read (others
   are ignored, their names logged sanitized), and only regular files
   with one link, at most 64 MiB, not sparse.
   The reader holds a write lock (fcntl) on dir's .alive while it runs:
   see pop3-retention-protocol.h.
   The files already there are read as soon as the ioloop runs: not
   from inside this call, because reading calls back, and the
   callbacks commit through the returned reader (a start with more
   events waiting than one spool batch takes crashed on that). */
struct drop_reader *
drop_reader_init(const char *dir, const char *rejected_dir,
		 struct event *event,
		 const struct drop_reader_callbacks *callbacks,
		 void *context);
void drop_reader_deinit(struct drop_reader **reader);

/* The spool commit that covered the events appended so far succeeded
   (or failed: those events are read again later). */
void drop_reader_committed(struct drop_reader *reader, bool success);

/* A commit failed or the spool refused an event: nothing more is read
   before the retry. */
bool drop_reader_blocked(const struct drop_reader *reader);

/* Drop files still being read (for the Q answer and tests). */
unsigned int drop_reader_open_files(const struct drop_reader *reader);

#endif
