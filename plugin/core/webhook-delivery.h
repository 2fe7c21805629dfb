#ifndef WEBHOOK_DELIVERY_H
#define WEBHOOK_DELIVERY_H

/* The webhook delivery engine: takes due events from a spool, POSTs them
   with libcurl's multi interface (curl_multi_socket_action), and records
   each outcome in the spool: 2xx delivered, 410 disables the
   endpoint (events stay spooled), anything else is retried on the
   schedule with jitter and Retry-After, and dead-lettered after the last
   attempt.

   The engine owns no loop and never blocks. The host drives it:

     - the engine tells the host which sockets to watch through
       loop.fd_watch(fd, events) (events is WEBHOOK_IO_READ and/or
       WEBHOOK_IO_WRITE, 0 to stop watching that fd), and sets one
       one-shot timer through loop.timer_set(msecs) (-1 cancels; a new
       call replaces the previous timer; 0 means "as soon as possible,
       from the loop, not from inside this call");
     - the host calls webhook_delivery_fd_ready() when a watched fd is
       ready, webhook_delivery_timer_expired() when the timer fires, and
       webhook_delivery_kick() after it committed or imported new events.

   Dovecot's ioloop (plugin/dovecot/dovecot-ioloop-curl.c): per fd an
   io for IO_READ and one for IO_WRITE (io_add() takes one direction),
   added and removed to match the events mask; the timer is
   timeout_add_short() / timeout_remove(). libevent (the unit tests'
   driver, tests/unit/test-loop.c): one event_new(fd, EV_READ|EV_WRITE|
   EV_PERSIST per the mask) per fd, event_del() + event_free() for 0;
   the timer is an evtimer.
   The engine calls fd_watch(fd, 0) before libcurl closes a socket.
   fd_watch and timer_set may be called from inside any webhook_delivery_*
   call; they must not call back into the engine themselves.

   Safety per request: TLS verification on, the URL's scheme only
   (http or https), no redirects, no proxy, NOSIGNAL, connect and total
   timeouts, the response body discarded and capped, and every resolved
   address checked at connect time (webhook-ssrf.h) unless
   allow_private. Secrets are copied, never logged, wiped on destroy. */

#include "retention-settings.h"
#include "webhook-sign.h"
#include "webhook-spool.h"

#include <stdbool.h>
#include <stdint.h>

#define WEBHOOK_IO_READ 0x01
#define WEBHOOK_IO_WRITE 0x02
/* Only in fd_ready(): the socket has an error or hung up. */
#define WEBHOOK_IO_ERROR 0x04

#define WEBHOOK_DELIVERY_ERROR_MAX 512
/* Transfers in flight when webhook_delivery_config.max_in_flight is 0,
   and the most allowed. */
#define WEBHOOK_DELIVERY_DEFAULT_IN_FLIGHT 4
#define WEBHOOK_DELIVERY_MAX_IN_FLIGHT 256
/* Response bytes read before the transfer is cut: only the status
   matters. */
#define WEBHOOK_DELIVERY_RESPONSE_MAX (64 * 1024)
/* Connect timeout cap; the whole request is bounded by the settings'
   webhook_timeout. */
#define WEBHOOK_DELIVERY_CONNECT_TIMEOUT_MS 10000
/* The timer is never armed further ahead than this, so that a wall
   clock step cannot delay due retries for long. */
#define WEBHOOK_DELIVERY_TIMER_MAX_MS 60000
/* Outcomes are synced to disk as a group at most this
   often: the fsync() rate stays bounded however fast the receiver is,
   and a power failure can only cost duplicates from the last interval. */
#define WEBHOOK_DELIVERY_SYNC_INTERVAL_MS 100

struct webhook_delivery_loop {
	void *context;
	/* Watch fd for events (WEBHOOK_IO_READ | WEBHOOK_IO_WRITE), replacing
	   any previous mask; 0: stop watching it. Returns 0, or -1 if the
	   host cannot (logged; the transfer then ends by its timeout). */
	int (*fd_watch)(void *context, int fd, unsigned int events);
	/* Arm the one-shot timer msecs from now (0: as soon as possible),
	   or cancel it (-1). Returns 0 or -1 (logged). */
	int (*timer_set)(void *context, long msecs);
};

enum webhook_delivery_outcome {
	WEBHOOK_DELIVERY_DELIVERED = 0,	/* 2xx */
	WEBHOOK_DELIVERY_FAILED,	/* will be retried */
	WEBHOOK_DELIVERY_DEAD_LETTERED,	/* last attempt failed */
	WEBHOOK_DELIVERY_DISABLED,	/* 410: endpoint disabled */
};

/* One attempt's outcome, for the host's named events (one report per
   attempt). Strings are valid during the callback only. */
struct webhook_delivery_report {
	enum webhook_delivery_outcome outcome;
	const char *webhook_id;
	unsigned int attempt;		/* 1-based */
	long http_status;		/* 0: no response */
	const char *error;		/* NULL when delivered */
	int64_t duration_ms;
	int64_t retry_in_ms;		/* FAILED only: delay to the next */
};

struct webhook_delivery_stats {
	uint64_t delivered;
	uint64_t failed;		/* failed attempts, the last ones too */
	uint64_t dead_lettered;
	unsigned int in_flight;
	bool disabled;
};

struct webhook_delivery_config {
	/* copied; max_in_flight 0: WEBHOOK_DELIVERY_DEFAULT_IN_FLIGHT */
	const struct webhook_settings *set;
	/* copied; at least one secret. webhook_delivery_start() keys
	   its signer from the copy and then wipes it: from then on the
	   engine holds digest states only, not the keys' bytes. */
	const struct webhook_secrets *secrets;
	/* borrowed: opened as owner, outlives the engine. While the engine
	   runs, the spool's log goes to the log callback below (set with
	   webhook_spool_set_log(), cleared by destroy). */
	struct webhook_spool *spool;
	struct webhook_delivery_loop loop;

	/* Host callbacks, all optional, all called with context. */
	void *context;
	/* One log line, without a trailing newline. Never contains a
	   secret, a signature, a body or the URL's path and query. */
	void (*log)(void *context, enum webhook_log_level level,
		    const char *line);
	void (*report)(void *context,
		       const struct webhook_delivery_report *report);
	/* Jitter source; NULL: an internal PRNG seeded from the clock. */
	uint32_t (*random)(void *context);

	/* false: each entry point below writes the outcomes it recorded
	   before it returns. true: the host calls
	   webhook_delivery_turn_end() after each turn of its loop, which
	   writes the outcomes of every callback of that turn at once (a
	   loop that reports ready sockets one callback each would
	   otherwise write once per response). */
	bool turn_end;
};

struct webhook_delivery;

/* Create an engine; nothing happens before webhook_delivery_start().
   config and what it points to are copied, except the spool. Returns
   NULL only on allocation failure. */
struct webhook_delivery *
webhook_delivery_create(const struct webhook_delivery_config *config);

/* Validate the URL and secrets, set up libcurl (curl_global_init(),
   paired with the cleanup in destroy) and start delivering what is due.
   Returns 0, or -1 with webhook_delivery_error(). */
int webhook_delivery_start(struct webhook_delivery *delivery);

/* Stop: abort transfers in flight (their events go back to the spool
   unchanged: the attempt may have reached the receiver, which dedupes),
   stop watching every fd, cancel the timer, wipe the secrets, free, and
   NULL the pointer. *delivery may be NULL. Destroy the engine before its
   spool. */
void webhook_delivery_destroy(struct webhook_delivery **delivery);

/* The last error of start(); "" if none. */
const char *webhook_delivery_error(const struct webhook_delivery *delivery);

/* A watched fd is ready (WEBHOOK_IO_* bits). */
void webhook_delivery_fd_ready(struct webhook_delivery *delivery, int fd,
			       unsigned int events);

/* The timer set with loop.timer_set() fired. */
void webhook_delivery_timer_expired(struct webhook_delivery *delivery);

/* New events were committed to (or imported into) the spool: start
   those that are due. */
void webhook_delivery_kick(struct webhook_delivery *delivery);

/* With config.turn_end: the loop's turn is over (it is about to wait):
   write the outcomes recorded since the last call, and sync them if the
   last sync was long enough ago. Cheap when there are none. */
void webhook_delivery_turn_end(struct webhook_delivery *delivery);

/* True after a 410: nothing more is sent until
   webhook_delivery_enable() (or a restart). */
bool webhook_delivery_is_disabled(const struct webhook_delivery *delivery);

/* Resume sending after the admin fixed the endpoint. */
void webhook_delivery_enable(struct webhook_delivery *delivery);

/* Counters since start. */
void webhook_delivery_get_stats(const struct webhook_delivery *delivery,
				struct webhook_delivery_stats *stats_r);

#endif
