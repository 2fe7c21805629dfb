#ifndef POP3_RETENTION_PENDING_H
#define POP3_RETENTION_PENDING_H

/* Pending records of a plan's events (retention-hooks.h,
   retention_session_commit_prepare()). Before the commit that removes
   or retains messages, the pop3 process (or doveadm sweep) writes the
   events of that commit into a file of its own in the user's
   <outbox>/POP3_RETENTION_PENDING_DIR, locked (flock()) from its
   creation until it is deleted: POP3_RETENTION_PENDING_MAGIC, then one
   "<created_ms> TAB <event fields> LF" line per event, one write()
   each. After the commit it hands the events over and deletes the
   file. A file found unlocked was left by a process killed between
   its commit and the hand-off (or before its commit): the user's next
   session or sweep reconciles its events against the mailbox and
   deletes it. Nothing is fsynced: the record must outlive the process,
   not the machine (as drop files do). */

#define POP3_RETENTION_PENDING_DIR "pending"
#define POP3_RETENTION_PENDING_MAGIC "pop3-retention-pending 1\n"

struct pop3_retention_pending;

/* Create and lock a pending file in dir (created mode 0700 with its
   parent if missing). Returns NULL with error_r on failure. */
struct pop3_retention_pending *
pop3_retention_pending_create(const char *dir, const char **error_r);

/* Append one event's line. Returns 0, or -1 with error_r (the file
   keeps the lines before). */
int pop3_retention_pending_append(struct pop3_retention_pending *pending,
				  int64_t created_ms, const char *fields,
				  const char **error_r);

/* The events are handed over or dropped: delete the file (errors are
   logged to event), free, NULL the pointer. */
void pop3_retention_pending_settle(struct pop3_retention_pending **pending,
				   struct event *event);

/* Called per complete line of a left-over file: created_ms and the
   event fields (NUL-terminated, data stack). */
typedef void
pop3_retention_pending_line_cb_t(int64_t created_ms, const char *fields,
				 void *context);

/* Hand every complete line of every left-over pending file in dir
   (unlocked, a regular file with one link; at most
   POP3_RETENTION_PENDING_FILES_MAX files of
   POP3_RETENTION_PENDING_FILE_MAX bytes each) to cb, then delete the
   file. A file that is not a pending file is logged and deleted, a
   line that is not "<created_ms> TAB <fields>" logged and skipped.
   Returns the number of files reconciled; errors are logged. */
int pop3_retention_pending_reconcile(const char *dir, struct event *event,
				     pop3_retention_pending_line_cb_t *cb,
				     void *context);

/* For the integration tests only: a process whose environment has
   POP3_RETENTION_TEST_KILL=<point> (pop3 through import_environment,
   doveadm through its own) is killed with SIGKILL at that point, as a
   crash would kill it. Points: quit-before-commit, quit-after-commit,
   sweep-after-commit. */
void pop3_retention_test_kill_point(const char *point);

#define POP3_RETENTION_PENDING_FILES_MAX 64
#define POP3_RETENTION_PENDING_FILE_MAX (1024 * 1024)

#endif
