#ifndef DOVEADM_POP3_RETENTION_H
#define DOVEADM_POP3_RETENTION_H

/* The doveadm plugin's commands (doveadm-pop3-retention.c: status, sweep
   and the registration; doveadm-pop3-retention-delivery.c: flush, queue).
   Builds against Dovecot 2.3 and 2.4: the differences of doveadm's mail
   command API stay behind the context below (its alloc, init and
   row_begin), apart from sweep's one option. */

#include "doveadm-mail.h"

struct service_client;

struct pop3_retention_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	/* the command's init(): reads its options and adds its columns
	   (doveadm refuses a column once init() has returned) */
	void (*init)(struct pop3_retention_cmd_context *pctx);
	/* one row per user, also for -u: doveadm prints the user in a
	   "username" column first, as it does for -A */
	bool user_rows;

	/* sweep */
	bool dry_run;
	/* stderr is a terminal: keep a progress line at its bottom */
	bool progress;
	bool progress_shown;
	unsigned int users;
	unsigned int removed;

	/* flush: one connection to the service for every user */
	struct service_client *service;
};

/* A mail command's context, printing a table, whose init() calls
   pctx->init (set it, and ctx.v.run). Allocated from the command's
   pool. user_rows: see the struct. */
struct pop3_retention_cmd_context *
doveadm_pop3_retention_cmd_alloc(bool user_rows);
/* In a user_rows command's run(), before the user's first value. */
void
doveadm_pop3_retention_cmd_row_begin(struct pop3_retention_cmd_context *pctx,
				     struct mail_user *user);

/* doveadm pop3-retention flush: hand users' outboxes to the service. */
struct doveadm_mail_cmd_context *doveadm_pop3_retention_flush_alloc(void);
/* doveadm pop3-retention queue: the service's queue, or its spool when
   the service does not answer. */
void doveadm_pop3_retention_queue(struct doveadm_cmd_context *cctx);

#endif
