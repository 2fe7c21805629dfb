#ifndef DOVECOT_IOLOOP_CURL_H
#define DOVECOT_IOLOOP_CURL_H

/* Drives the core's delivery engine (webhook-delivery.h, libcurl multi)
   from Dovecot's ioloop: the engine's fd interest becomes io_add()s (one
   per direction), its one-shot timer a timeout_add_short(), and the end
   of every ioloop iteration that ran one of them a zero-delay timeout
   that calls webhook_delivery_turn_end() (Dovecot runs it after the
   iteration's ios), so that the outcomes of all the responses one
   wake-up brought are written together. Everything runs in the
   ioloop's thread; nothing blocks. */

#include "webhook-delivery.h"

struct dovecot_ioloop_curl;

/* Create a bridge in the current ioloop and fill loop_r for
   webhook_delivery_config.loop (config.turn_end must be true). */
struct dovecot_ioloop_curl *
dovecot_ioloop_curl_init(struct webhook_delivery_loop *loop_r);

/* Tell the bridge which engine its ios and timeouts call. Before the
   engine is started. */
void dovecot_ioloop_curl_set_engine(struct dovecot_ioloop_curl *bridge,
				    struct webhook_delivery *engine);

/* webhook_delivery_kick(), then write its outcomes at the end of this
   ioloop iteration. */
void dovecot_ioloop_curl_kick(struct dovecot_ioloop_curl *bridge);

/* Remove every io and timeout left (the engine removes its own when it
   is destroyed: destroy the engine first) and free. */
void dovecot_ioloop_curl_deinit(struct dovecot_ioloop_curl **bridge);

#endif
