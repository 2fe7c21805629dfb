/* The delivery engine's loop interface on Dovecot's ioloop (see the
   header). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "dovecot-ioloop-curl.h"

struct curl_fd_watch {
	struct dovecot_ioloop_curl *bridge;
	int fd;
	struct io *io_read, *io_write;
};

struct dovecot_ioloop_curl {
	struct webhook_delivery *engine;
	ARRAY(struct curl_fd_watch *) watches;
	struct timeout *to_timer;
	struct timeout *to_turn_end;
};

static void turn_end(struct dovecot_ioloop_curl *bridge)
{
	timeout_remove(&bridge->to_turn_end);
	webhook_delivery_turn_end(bridge->engine);
}

/* The engine ran: write its outcomes once this iteration's ios are
   done. */
static void turn_end_schedule(struct dovecot_ioloop_curl *bridge)
{
	if (bridge->to_turn_end == NULL)
		bridge->to_turn_end = timeout_add_short(0, turn_end, bridge);
}

/* The engine may stop watching (and so free) the watch from inside
   webhook_delivery_fd_ready(): nothing of it is used after the call. */
static void fd_ready(struct curl_fd_watch *watch, unsigned int events)
{
	struct dovecot_ioloop_curl *bridge = watch->bridge;

	webhook_delivery_fd_ready(bridge->engine, watch->fd, events);
	turn_end_schedule(bridge);
}

static void io_read_cb(struct curl_fd_watch *watch)
{
	fd_ready(watch, WEBHOOK_IO_READ);
}

static void io_write_cb(struct curl_fd_watch *watch)
{
	fd_ready(watch, WEBHOOK_IO_WRITE);
}

static struct curl_fd_watch *watch_find(struct dovecot_ioloop_curl *bridge,
					int fd, unsigned int *idx_r)
{
	struct curl_fd_watch *const *watchp;

	array_foreach(&bridge->watches, watchp)
	{
		if ((*watchp)->fd == fd) {
			*idx_r = array_foreach_idx(&bridge->watches, watchp);
			return *watchp;
		}
	}
	return NULL;
}

static int loop_fd_watch(void *context, int fd, unsigned int events)
{
	struct dovecot_ioloop_curl *bridge = context;
	struct curl_fd_watch *watch;
	unsigned int idx;

	watch = watch_find(bridge, fd, &idx);
	if (events == 0) {
		if (watch != NULL) {
			io_remove(&watch->io_read);
			io_remove(&watch->io_write);
			array_delete(&bridge->watches, idx, 1);
			i_free(watch);
		}
		return 0;
	}
	if (watch == NULL) {
		watch = i_new(struct curl_fd_watch, 1);
		watch->bridge = bridge;
		watch->fd = fd;
		array_push_back(&bridge->watches, &watch);
	}
	if ((events & WEBHOOK_IO_READ) == 0)
		io_remove(&watch->io_read);
	else if (watch->io_read == NULL)
		watch->io_read = io_add(fd, IO_READ, io_read_cb, watch);
	if ((events & WEBHOOK_IO_WRITE) == 0)
		io_remove(&watch->io_write);
	else if (watch->io_write == NULL)
		watch->io_write = io_add(fd, IO_WRITE, io_write_cb, watch);
	return 0;
}

static void timer_cb(struct dovecot_ioloop_curl *bridge)
{
	timeout_remove(&bridge->to_timer);
	webhook_delivery_timer_expired(bridge->engine);
	turn_end_schedule(bridge);
}

static int loop_timer_set(void *context, long msecs)
{
	struct dovecot_ioloop_curl *bridge = context;

	timeout_remove(&bridge->to_timer);
	if (msecs >= 0) {
		bridge->to_timer = timeout_add_short((unsigned int)msecs,
						     timer_cb, bridge);
	}
	return 0;
}

struct dovecot_ioloop_curl *
dovecot_ioloop_curl_init(struct webhook_delivery_loop *loop_r)
{
	struct dovecot_ioloop_curl *bridge;

	bridge = i_new(struct dovecot_ioloop_curl, 1);
	i_array_init(&bridge->watches, 16);
	i_zero(loop_r);
	loop_r->context = bridge;
	loop_r->fd_watch = loop_fd_watch;
	loop_r->timer_set = loop_timer_set;
	return bridge;
}

void dovecot_ioloop_curl_set_engine(struct dovecot_ioloop_curl *bridge,
				    struct webhook_delivery *engine)
{
	bridge->engine = engine;
}

void dovecot_ioloop_curl_kick(struct dovecot_ioloop_curl *bridge)
{
	webhook_delivery_kick(bridge->engine);
	turn_end_schedule(bridge);
}

void dovecot_ioloop_curl_deinit(struct dovecot_ioloop_curl **_bridge)
{
	struct dovecot_ioloop_curl *bridge = *_bridge;
	struct curl_fd_watch **watchp;

	if (bridge == NULL)
		return;
	*_bridge = NULL;
	array_foreach_modifiable(&bridge->watches, watchp)
	{
		io_remove(&(*watchp)->io_read);
		io_remove(&(*watchp)->io_write);
		i_free(*watchp);
	}
	array_free(&bridge->watches);
	timeout_remove(&bridge->to_timer);
	timeout_remove(&bridge->to_turn_end);
	i_free(bridge);
}
