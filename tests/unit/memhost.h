#ifndef MEMHOST_H
#define MEMHOST_H

/* An in-memory POP3 host for the unit tests: a maildrop of messages with
   persisted state, driven through the core's hooks exactly as a Maildir
   server without Dovecot would drive them. Removals and retains made
   during UPDATE are staged and committed together at the end of QUIT, so
   a session that dies before QUIT changes nothing but retrieval times;
   the events of a plan reach the host once its commit succeeded. They
   are recorded as pending before the commit: a QUIT whose process is
   killed around its commit leaves them there, and the next login
   reconciles them against the maildrop. */

#include "retention-hooks.h"

#define MEMHOST_MAX_MESSAGES 16
#define MEMHOST_MAX_EVENTS 64
#define MEMHOST_MAX_AUDIT 64

struct memhost_message {
	uint32_t uid;
	char uidl[16];
	time_t arrived_at;
	/* persisted state */
	time_t first_retrieved_at;
	bool state_lost;
	bool hidden;
	bool removed;
};

struct memhost_event {
	enum retention_event_type type;
	uint32_t uid;
	char reason[32];
	bool first_retrieval;
	bool dry_run;
	time_t retain_until;
	uint32_t seq;
	char id[RETENTION_EVENT_ID_SIZE];
	char json[1024];
};

struct memhost {
	struct retention_settings set;
	struct memhost_message messages[MEMHOST_MAX_MESSAGES];
	unsigned int count;
	uint32_t next_uid;

	/* the open session */
	struct retention_session *session;
	/* POP3 listing: message number - 1 -> session index */
	unsigned int listing[MEMHOST_MAX_MESSAGES];
	unsigned int listing_count;
	/* session index -> messages[] index */
	unsigned int session_map[MEMHOST_MAX_MESSAGES];
	/* staged by remove/retain during UPDATE, committed at QUIT */
	bool staged_remove[MEMHOST_MAX_MESSAGES];
	bool staged_retain[MEMHOST_MAX_MESSAGES];
	bool fail_remove_uid_set;
	uint32_t fail_remove_uid;
	/* the next QUIT's commit fails: nothing staged is committed */
	bool fail_commit;
	/* the next QUIT's process is killed right before / right after its
	   commit: nothing runs after that point */
	bool kill_before_commit, kill_after_commit;
	bool in_update;
	/* the process is killed: callbacks do nothing */
	bool dead;

	struct memhost_event events[MEMHOST_MAX_EVENTS];
	unsigned int event_count;
	/* the durable pending record (event_pending) until events_settled */
	struct memhost_event pending[MEMHOST_MAX_EVENTS];
	unsigned int pending_count;
	char audit[MEMHOST_MAX_AUDIT][256];
	unsigned int audit_count;
};

void memhost_init(struct memhost *host, const struct retention_settings *set);
uint32_t memhost_deliver(struct memhost *host, time_t arrived_at);

/* POP3 session: login (session begin), commands, QUIT or drop. Return 0
   on +OK, -1 on -ERR. Message numbers are 1-based listing numbers. */
int memhost_login(struct memhost *host, time_t now);
int memhost_retr(struct memhost *host, unsigned int msgnum, time_t now);
int memhost_top(struct memhost *host, unsigned int msgnum, time_t now);
int memhost_dele(struct memhost *host, unsigned int msgnum);
void memhost_rset(struct memhost *host);
void memhost_quit(struct memhost *host, time_t now);
void memhost_drop(struct memhost *host);

/* Sweep outside a session. */
void memhost_sweep(struct memhost *host, time_t now);

/* Index in messages[] of uid, or -1. */
int memhost_find(const struct memhost *host, uint32_t uid);

void memhost_deinit(struct memhost *host);

#endif
