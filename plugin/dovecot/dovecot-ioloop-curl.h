#ifndef DOVECOT_IOLOOP_CURL_H
#define DOVECOT_IOLOOP_CURL_H

/* Runs the webhook delivery engine (webhook-delivery.h) on Dovecot's
   ioloop: the engine's fd interest becomes one io per fd and direction
   (io_add() takes a single direction, and separate ios tell which one
   is ready), its one-shot timer a timeout_add_short() that is removed
   before the engine is called (Dovecot timeouts repeat).

   Usage:
     bridge = dovecot_ioloop_curl_init();
     dovecot_ioloop_curl_get_loop(bridge, &config.loop);
     delivery = webhook_delivery_create(&config);
     dovecot_ioloop_curl_set_delivery(bridge, delivery);
     webhook_delivery_start(delivery);
     ...
     webhook_delivery_destroy(&delivery);
     dovecot_ioloop_curl_deinit(&bridge);

   The ios and the timeout are added to the ioloop that is current when
   the engine asks for them. */

struct webhook_delivery;
struct webhook_delivery_loop;
struct dovecot_ioloop_curl;

/* Create a bridge; it watches nothing until the engine asks. */
struct dovecot_ioloop_curl *dovecot_ioloop_curl_init(void);

/* Fill loop_r with the bridge's callbacks (context = the bridge), for
   webhook_delivery_config.loop. */
void dovecot_ioloop_curl_get_loop(struct dovecot_ioloop_curl *bridge,
				  struct webhook_delivery_loop *loop_r);

/* The engine that ready fds and the expired timer are reported to
   (borrowed). Set it before webhook_delivery_start(); NULL detaches
   (events are then ignored). */
void dovecot_ioloop_curl_set_delivery(struct dovecot_ioloop_curl *bridge,
				      struct webhook_delivery *delivery);

/* Remove every io and the timeout still registered, free and NULL the
   pointer. Destroy the engine first: it unregisters its fds itself, so
   that anything left here is only a safety net. */
void dovecot_ioloop_curl_deinit(struct dovecot_ioloop_curl **bridge);

#endif
