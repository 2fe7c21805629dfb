#ifndef TEST_LOOP_H
#define TEST_LOOP_H

/* A small libevent host loop for the delivery engine's unit tests: the
   engine's fd interest becomes one persistent event per fd, its one-shot
   timer an evtimer, and every turn of the loop ends with
   webhook_delivery_turn_end() (the engine is configured with turn_end,
   as in the Dovecot service). Calls the engine should never make
   (stop watching an fd it does not watch, unknown bits, a bad timer
   value) are recorded as an error for the test to report. */

#include "webhook-delivery.h"

#include <stdbool.h>
#include <stdint.h>

struct test_loop;

/* A loop on a new event_base; fills loop_r for the engine's config.
   Returns NULL on allocation failure. */
struct test_loop *test_loop_create(struct webhook_delivery_loop *loop_r);

/* The engine the events call (set before it is started). */
void test_loop_set_engine(struct test_loop *loop,
			  struct webhook_delivery *engine);

/* One turn: wait at most max_ms for an fd or the timer, call the
   engine for what is ready, then webhook_delivery_turn_end(). */
void test_loop_run_once(struct test_loop *loop, int64_t max_ms);

/* Fds watched, and whether the engine's timer is armed. */
unsigned int test_loop_watch_count(const struct test_loop *loop);
bool test_loop_timer_armed(const struct test_loop *loop);

/* The first misuse seen, or NULL. */
const char *test_loop_error(const struct test_loop *loop);

/* Free everything (the engine must be destroyed first). */
void test_loop_destroy(struct test_loop **loop);

#endif
