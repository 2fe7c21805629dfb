#ifndef WEBHOOK_RUNNER_H
#define WEBHOOK_RUNNER_H

/* Delivery workers: N threads, each running one webhook delivery engine
   (webhook-delivery.h) on its own libevent loop, all taking events from
   one thread-safe spool (webhook-spool.h).

   Why threads: a service that accepts events and delivers them in one
   loop lets a burst of input starve delivery (and the reverse), and one
   core is not enough for libcurl, signing and the loopback receive path
   at tens of thousands of requests per second. Why niceness: on a busy
   mail server webhook delivery must not take CPU that POP3 sessions
   need. The workers run at a configurable niceness (Linux applies it
   per thread, and ranks it against the tasks of the same scheduling
   group: with autogroup, the process's session): when those need the
   CPUs the workers get little, events wait in the durable spool, and
   they go out as soon as the load drops. The
   thread that accepts events keeps the process's priority, so producers
   are acknowledged at once.

   The host's thread (e.g. Dovecot's ioloop, which is not thread-safe)
   owns everything else. The workers never call the host: their log lines
   and per-attempt reports are queued, and the host drains the queue
   from its own loop when webhook_runner_notify_fd() becomes readable:
   at once for a log line of level info and above, within
   WEBHOOK_RUNNER_NOTIFY_MSECS for reports (one per attempt: waking the
   host for each would cost it a context switch per event).

   Every function below is called from the host's thread. */

#include "webhook-delivery.h"

#include <stdbool.h>

#define WEBHOOK_RUNNER_WORKERS_MAX 16
#define WEBHOOK_RUNNER_ERROR_MAX 512
/* Reports queued for the host beyond this are dropped (and counted);
   log lines are never dropped. */
#define WEBHOOK_RUNNER_REPORTS_MAX 65536
/* Reports and debug lines reach the host this late at most; log lines of
   level info and above at once. */
#define WEBHOOK_RUNNER_NOTIFY_MSECS 100

struct webhook_runner_config {
	/* As for webhook_delivery_create(), except: loop is ignored (each
	   worker uses its own), log and report are called from
	   webhook_runner_drain() in the host's thread, random is ignored
	   (each engine seeds its own), and max_in_flight is the total over
	   all workers. */
	struct webhook_delivery_config delivery;
	/* 1..WEBHOOK_RUNNER_WORKERS_MAX */
	unsigned int workers;
	/* niceness added to the workers' (0..19) */
	unsigned int nice;
	/* 0: off. Otherwise, while the machine's CPUs are busy with other
	   work (cpu-load.h, sampled by a thread of the runner's own at the
	   process's niceness, not the workers'), events are taken this
	   many milliseconds after they are due; delivery resumes as soon as
	   the CPUs calm down. */
	int64_t defer_max_ms;
};

struct webhook_runner;

/* Create the engines (copying config, as webhook_delivery_create() does)
   without starting anything. Returns NULL only on allocation failure. */
struct webhook_runner *
webhook_runner_create(const struct webhook_runner_config *config);

/* Start every engine (validating the URL and secrets) and its thread.
   Returns 0, or -1 with webhook_runner_error(): then nothing runs. */
int webhook_runner_start(struct webhook_runner *runner);

const char *webhook_runner_error(const struct webhook_runner *runner);

/* Stop the workers (transfers in flight go back to the spool
   unchanged), join them, deliver what is left in the log queue to the
   host's callbacks, free, NULL the pointer. *runner may be NULL. */
void webhook_runner_destroy(struct webhook_runner **runner);

/* A readable fd: the host calls webhook_runner_drain() when it is. */
int webhook_runner_notify_fd(const struct webhook_runner *runner);

/* Call the log and report callbacks for what the workers queued. */
void webhook_runner_drain(struct webhook_runner *runner);

/* New events were committed: wake the workers. Cheap when they are
   already awake; callable often. */
void webhook_runner_kick(struct webhook_runner *runner);

/* Resume after a 410 (every worker). */
void webhook_runner_enable(struct webhook_runner *runner);

/* The workers' counters added up, as of their last loop iteration;
   disabled if any worker is. */
void webhook_runner_get_stats(struct webhook_runner *runner,
			      struct webhook_delivery_stats *stats_r);

/* Whether delivery is deferred right now because other work saturates
   the CPUs (lock-free: cheap enough to ask per commit). */
bool webhook_runner_deferring(struct webhook_runner *runner);

#endif
