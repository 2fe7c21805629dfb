#ifndef POP3_RETENTION_LOCK_H
#define POP3_RETENTION_LOCK_H

/* The retention lock of a user's maildrop:
   <INBOX index root>/dovecot-pop3-retention.lock. Every POP3 session
   with the plugin holds it shared from the allocation of its INBOX
   (before pop3's first sync, so before the listing exists) until the
   mailbox is freed; a sweep takes it exclusively without waiting and
   skips the user when a session holds it. It does not depend on
   pop3_lock_session: with Dovecot's default (no), concurrent POP3
   sessions of one user still share it, and a sweep still sees them.

   The lock method is mail_storage's lock_method (fcntl or flock);
   dotlocks cannot be shared, so lock_method = dotlock uses fcntl. */

struct mail_user;
struct file_lock;

#define POP3_RETENTION_LOCK_FNAME "dovecot-pop3-retention.lock"
/* How long a POP3 session waits for a sweep of its own user */
#define POP3_RETENTION_LOCK_WAIT_SECS 30

/* Take the user's retention lock: shared, waiting up to timeout_secs,
   or exclusive without waiting (timeout_secs ignored). Returns 1 with
   *lock_r (free it with file_unlock(), which closes its fd), 0 when
   another process holds it, -1 with error_r on an error (the lock file
   or its directory cannot be created or opened). */
int pop3_retention_lock(struct mail_user *user, bool exclusive,
			unsigned int timeout_secs, struct file_lock **lock_r,
			const char **error_r);

#endif
