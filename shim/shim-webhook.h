#ifndef SHIM_WEBHOOK_H
#define SHIM_WEBHOOK_H

/* pop3-retentiond's webhooks: the core's spool and delivery engine,
   driven by the server's libevent loop (no thread, no second loop).

   The serving process owns the spool, <state_dir>/spool. An event is
   appended and committed (one fdatasync) before the session goes on,
   then the engine is kicked: a kill -9 after that loses nothing.
   Commands that run beside the server (sweep) are producers: each event
   goes into a file of its own in <state_dir>/incoming (written to a
   temp name, fsynced, renamed), which the server imports at start-up
   and then every SHIM_WEBHOOK_IMPORT_MSECS; when no server runs, the
   sweep owns the spool itself and the next server delivers.

   The engine's safety rules are the plugin's (webhook-delivery.h). */

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct retention_event;
struct shim_config;
struct shim_webhook;

/* incoming/ is looked at this often */
#define SHIM_WEBHOOK_IMPORT_MSECS 1000

/* The server's webhooks on base: open the spool as its owner, read the
   secret file, start the engine. NULL with error when no URL is set
   (error "") or the spool cannot be opened. A secret or CA file that
   cannot be used is logged: events are then kept, not sent. */
struct shim_webhook *shim_webhook_serve(struct event_base *base,
					const struct shim_config *config,
					char *error, size_t error_size);
/* A command's webhooks (no loop): the spool's owner when no server
   holds it, a producer into incoming/ otherwise. NULL when no URL is
   set (error "") or on an error. */
struct shim_webhook *shim_webhook_produce(const struct shim_config *config,
					  char *error, size_t error_size);
/* Stop the engine, close the spool, free, NULL the pointer. */
void shim_webhook_destroy(struct shim_webhook **webhook);

/* Hand one event over: durable when this returns 0 (-1: logged, the
   event is lost - the caller has no place to keep it). */
int shim_webhook_send(struct shim_webhook *webhook,
		      const struct retention_event *event);

#endif
