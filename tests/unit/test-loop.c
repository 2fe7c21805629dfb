/* The libevent driver of the delivery engine's tests (see the header). */

#include "pop3-retention-config.h"
#include "test-loop.h"

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>

struct loop_fd {
	struct test_loop *loop;
	int fd;
	unsigned int events;
	struct event *ev;
	struct loop_fd *next;
};

struct test_loop {
	struct event_base *base;
	struct webhook_delivery *engine;
	struct loop_fd *fds;
	unsigned int fd_count;
	/* no longer watched, freed after the turn: the engine may stop
	   watching an fd from inside that fd's callback */
	struct loop_fd *graveyard;
	struct event *timer;
	bool timer_armed;
	/* wakes the turn up once its max_ms is over */
	struct event *wake;
	char error[256];
};

static void loop_misuse(struct test_loop *loop, const char *what, long arg)
{
	if (loop->error[0] == '\0') {
		snprintf(loop->error, sizeof(loop->error), "%s (%ld)", what,
			 arg);
	}
}

static void fd_cb(evutil_socket_t fd, short what, void *context)
{
	struct loop_fd *f = context;
	struct test_loop *loop = f->loop;
	unsigned int events = 0;

	if ((what & EV_READ) != 0)
		events |= WEBHOOK_IO_READ;
	if ((what & EV_WRITE) != 0)
		events |= WEBHOOK_IO_WRITE;
	webhook_delivery_fd_ready(loop->engine, (int)fd, events);
}

static void timer_cb(evutil_socket_t fd, short what, void *context)
{
	struct test_loop *loop = context;

	(void)fd;
	(void)what;
	loop->timer_armed = false;
	webhook_delivery_timer_expired(loop->engine);
}

static void wake_cb(evutil_socket_t fd, short what, void *context)
{
	(void)fd;
	(void)what;
	(void)context;
}

static void fd_free(struct loop_fd *f)
{
	event_free(f->ev);
	free(f);
}

static void graveyard_empty(struct test_loop *loop)
{
	struct loop_fd *f;

	while ((f = loop->graveyard) != NULL) {
		loop->graveyard = f->next;
		fd_free(f);
	}
}

static int loop_fd_watch(void *context, int fd, unsigned int events)
{
	struct test_loop *loop = context;
	struct loop_fd **fp, *f;
	short what = EV_PERSIST;

	for (fp = &loop->fds; *fp != NULL; fp = &(*fp)->next) {
		/* cppcheck-suppress nullPointerRedundantCheck ; fp is not f */
		if ((*fp)->fd == fd)
			break;
	}
	f = *fp;
	if ((events & ~(WEBHOOK_IO_READ | WEBHOOK_IO_WRITE)) != 0) {
		loop_misuse(loop, "fd_watch() with unknown bits", events);
		return -1;
	}
	if (events == 0 && f == NULL) {
		loop_misuse(loop, "fd_watch(fd, 0) of an unwatched fd", fd);
		return -1;
	}
	if (f != NULL && f->events == events)
		return 0;
	if (f != NULL) {
		*fp = f->next;
		loop->fd_count--;
		(void)event_del(f->ev);
		f->next = loop->graveyard;
		loop->graveyard = f;
	}
	if (events == 0)
		return 0;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	if ((events & WEBHOOK_IO_READ) != 0)
		what |= EV_READ;
	if ((events & WEBHOOK_IO_WRITE) != 0)
		what |= EV_WRITE;
	f->loop = loop;
	f->fd = fd;
	f->events = events;
	f->ev = event_new(loop->base, fd, what, fd_cb, f);
	if (f->ev == NULL || event_add(f->ev, NULL) < 0) {
		if (f->ev != NULL)
			event_free(f->ev);
		free(f);
		return -1;
	}
	f->next = loop->fds;
	loop->fds = f;
	loop->fd_count++;
	return 0;
}

static int loop_timer_set(void *context, long msecs)
{
	struct test_loop *loop = context;
	struct timeval tv;

	if (msecs < -1) {
		loop_misuse(loop, "timer_set() with a negative delay", msecs);
		return -1;
	}
	if (msecs < 0) {
		loop->timer_armed = false;
		return event_del(loop->timer) < 0 ? -1 : 0;
	}
	tv.tv_sec = msecs / 1000;
	tv.tv_usec = (msecs % 1000) * 1000;
	/* 0 runs from the loop: libevent only calls back from its
	   dispatch */
	loop->timer_armed = true;
	return evtimer_add(loop->timer, &tv) < 0 ? -1 : 0;
}

struct test_loop *test_loop_create(struct webhook_delivery_loop *loop_r)
{
	struct test_loop *loop;

	loop = calloc(1, sizeof(*loop));
	if (loop == NULL)
		return NULL;
	loop->base = event_base_new();
	if (loop->base != NULL) {
		loop->timer = evtimer_new(loop->base, timer_cb, loop);
		loop->wake = evtimer_new(loop->base, wake_cb, loop);
	}
	if (loop->timer == NULL || loop->wake == NULL) {
		test_loop_destroy(&loop);
		return NULL;
	}
	loop_r->context = loop;
	loop_r->fd_watch = loop_fd_watch;
	loop_r->timer_set = loop_timer_set;
	return loop;
}

void test_loop_set_engine(struct test_loop *loop,
			  struct webhook_delivery *engine)
{
	loop->engine = engine;
}

void test_loop_run_once(struct test_loop *loop, int64_t max_ms)
{
	struct timeval tv;

	if (max_ms < 0)
		max_ms = 0;
	tv.tv_sec = (time_t)(max_ms / 1000);
	tv.tv_usec = (suseconds_t)((max_ms % 1000) * 1000);
	(void)evtimer_add(loop->wake, &tv);
	(void)event_base_loop(loop->base, EVLOOP_ONCE);
	(void)event_del(loop->wake);
	graveyard_empty(loop);
	if (loop->engine != NULL)
		webhook_delivery_turn_end(loop->engine);
}

unsigned int test_loop_watch_count(const struct test_loop *loop)
{
	return loop->fd_count;
}

bool test_loop_timer_armed(const struct test_loop *loop)
{
	return loop->timer_armed;
}

const char *test_loop_error(const struct test_loop *loop)
{
	return loop->error[0] == '\0' ? NULL : loop->error;
}

void test_loop_destroy(struct test_loop **_loop)
{
	struct test_loop *loop = *_loop;
	struct loop_fd *f;

	if (loop == NULL)
		return;
	*_loop = NULL;
	graveyard_empty(loop);
	while ((f = loop->fds) != NULL) {
		loop->fds = f->next;
		fd_free(f);
	}
	if (loop->timer != NULL)
		event_free(loop->timer);
	if (loop->wake != NULL)
		event_free(loop->wake);
	if (loop->base != NULL)
		event_base_free(loop->base);
	free(loop);
}
