#ifndef SHIM_SESSION_H
#define SHIM_SESSION_H

/* The shim's host of the core (struct retention_host) over one user's
   Maildir and its state file: the POP3 session's moments, and the
   sweep and status commands. The same hooks, in the same order, as the
   Dovecot plugin: session begin before the listing exists, a download
   recorded when it completes, the UPDATE plan at QUIT, nothing removed
   without QUIT.

   When the state file cannot be read the session serves mail with
   every removal withheld (client DELEs are not carried out), as the
   Dovecot plugin does when its session begin fails. */

#include "retention-settings.h"

#include <stdbool.h>
#include <stddef.h>

struct shim_config;
struct shim_passwd_user;
struct shim_maildir;
struct shim_maildir_msg;
struct shim_session;
struct shim_webhook;

struct shim_session_params {
	const struct shim_config *config;
	const struct shim_passwd_user *user;
	/* the user's effective settings (shim_config_user_settings()) */
	const struct retention_settings *set;
	const char *session_id;
	const char *remote_ip;	/* NULL outside POP3 */
	/* where events go; NULL: no webhooks (the core builds none) */
	struct shim_webhook *webhook;
};

/* A POP3 session: open and lock the maildrop, read the state, scan,
   run session begin (due removals, hidden messages left out). Returns
   1 with *session_r, 0 when another session holds the maildrop, -1
   with error. */
int shim_session_open(const struct shim_session_params *params,
		      struct shim_session **session_r, char *error,
		      size_t error_size);

/* Messages listed to the client (numbered 1..count). */
unsigned int shim_session_count(const struct shim_session *session);
/* Listed message msgnum (1-based) or NULL when there is none. */
const struct shim_maildir_msg *
shim_session_msg(const struct shim_session *session, unsigned int msgnum);
bool shim_session_deleted(const struct shim_session *session,
			  unsigned int msgnum);
/* DELE of msgnum (pending until UPDATE). */
void shim_session_dele(struct shim_session *session, unsigned int msgnum);
/* RSET: every pending DELE undone. */
void shim_session_rset(struct shim_session *session);
/* The maildir and its index of msgnum, to stream it. */
struct shim_maildir *shim_session_maildir(struct shim_session *session);
unsigned int shim_session_maildir_idx(const struct shim_session *session,
				      unsigned int msgnum);
/* A RETR (or TOP) sent the whole of msgnum. */
void shim_session_retrieved(struct shim_session *session,
			    unsigned int msgnum, bool is_top);
/* UPDATE (QUIT in TRANSACTION). Returns 0, or -1 when a removal the
   client asked for (DELE) failed (the reply is then -ERR). */
int shim_session_update(struct shim_session *session);
/* The user's EXPIRE value ("0", "30", "NEVER"). */
const char *shim_session_expire(const struct shim_session *session);
/* Session end (QUIT or not), its log line, unlock; NULLs the pointer. */
void shim_session_close(struct shim_session **session);

/* `pop3-retentiond sweep`: due removals of one user. Returns 1 swept,
   0 skipped (in use: logged), -1 error (logged). removed_r counts. */
int shim_session_sweep(const struct shim_session_params *params,
		       unsigned int *removed_r);
/* `pop3-retentiond status`: one line per message on stdout. Returns 0,
   -1 on an error (logged). */
int shim_session_status(const struct shim_session_params *params);

#endif
