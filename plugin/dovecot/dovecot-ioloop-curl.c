/* The webhook delivery engine's fd/timer interface on Dovecot's ioloop
   (see the header). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "dovecot-ioloop-curl.h"

#include "webhook-delivery.h"

struct curl_fd {
	struct dovecot_ioloop_curl *bridge;
	int fd;
	struct io *io_read, *io_write;
};

struct dovecot_ioloop_curl {
	struct webhook_delivery *delivery;
	/* a handful at most (one per transfer in flight) */
	ARRAY(struct curl_fd *) fds;
	struct timeout *to;
};

static struct curl_fd *
curl_fd_find(struct dovecot_ioloop_curl *bridge, int fd, unsigned int *idx_r)
{
	struct curl_fd *const *cfds;
	unsigned int i, count;

	cfds = array_get(&bridge->fds, &count);
	for (i = 0; i < count; i++) {
		if (cfds[i]->fd == fd) {
			*idx_r = i;
			return cfds[i];
		}
	}
	return NULL;
}

static void curl_fd_ready(struct curl_fd *cfd, unsigned int events)
{
	struct dovecot_ioloop_curl *bridge = cfd->bridge;

	/* may remove this very io (and free cfd): the ioloop allows it */
	if (bridge->delivery != NULL)
		webhook_delivery_fd_ready(bridge->delivery, cfd->fd, events);
}

static void curl_fd_readable(struct curl_fd *cfd)
{
	curl_fd_ready(cfd, WEBHOOK_IO_READ);
}

static void curl_fd_writable(struct curl_fd *cfd)
{
	curl_fd_ready(cfd, WEBHOOK_IO_WRITE);
}

static void curl_fd_free(struct dovecot_ioloop_curl *bridge, unsigned int idx)
{
	struct curl_fd *cfd = array_idx_elem(&bridge->fds, idx);

	io_remove(&cfd->io_read);
	io_remove(&cfd->io_write);
	array_delete(&bridge->fds, idx, 1);
	i_free(cfd);
}

static int bridge_fd_watch(void *context, int fd, unsigned int events)
{
	struct dovecot_ioloop_curl *bridge = context;
	struct curl_fd *cfd;
	unsigned int idx;

	if (fd < 0)
		return -1;
	cfd = curl_fd_find(bridge, fd, &idx);
	if (events == 0) {
		if (cfd != NULL)
			curl_fd_free(bridge, idx);
		return 0;
	}
	if (cfd == NULL) {
		cfd = i_new(struct curl_fd, 1);
		cfd->bridge = bridge;
		cfd->fd = fd;
		array_push_back(&bridge->fds, &cfd);
	}
	if ((events & WEBHOOK_IO_READ) == 0)
		io_remove(&cfd->io_read);
	else if (cfd->io_read == NULL) {
		cfd->io_read = io_add(fd, IO_READ, curl_fd_readable, cfd);
	}
	if ((events & WEBHOOK_IO_WRITE) == 0)
		io_remove(&cfd->io_write);
	else if (cfd->io_write == NULL) {
		cfd->io_write = io_add(fd, IO_WRITE, curl_fd_writable, cfd);
	}
	return 0;
}

static void bridge_timeout(struct dovecot_ioloop_curl *bridge)
{
	/* Dovecot's timeouts repeat; the engine's timer is one-shot and
	   is usually re-armed from inside the call below */
	timeout_remove(&bridge->to);
	if (bridge->delivery != NULL)
		webhook_delivery_timer_expired(bridge->delivery);
}

static int bridge_timer_set(void *context, long msecs)
{
	struct dovecot_ioloop_curl *bridge = context;

	timeout_remove(&bridge->to);
	if (msecs < 0)
		return 0;
	if (msecs > INT_MAX)
		msecs = INT_MAX;
	/* 0 runs from the loop's next iteration, never from here */
	bridge->to = timeout_add_short((unsigned int)msecs, bridge_timeout,
				       bridge);
	return 0;
}

struct dovecot_ioloop_curl *dovecot_ioloop_curl_init(void)
{
	struct dovecot_ioloop_curl *bridge;

	bridge = i_new(struct dovecot_ioloop_curl, 1);
	i_array_init(&bridge->fds, 8);
	return bridge;
}

void dovecot_ioloop_curl_get_loop(struct dovecot_ioloop_curl *bridge,
				  struct webhook_delivery_loop *loop_r)
{
	i_zero(loop_r);
	loop_r->context = bridge;
	loop_r->fd_watch = bridge_fd_watch;
	loop_r->timer_set = bridge_timer_set;
}

void dovecot_ioloop_curl_set_delivery(struct dovecot_ioloop_curl *bridge,
				      struct webhook_delivery *delivery)
{
	bridge->delivery = delivery;
}

void dovecot_ioloop_curl_deinit(struct dovecot_ioloop_curl **_bridge)
{
	struct dovecot_ioloop_curl *bridge = *_bridge;

	if (bridge == NULL)
		return;
	*_bridge = NULL;
	while (array_count(&bridge->fds) > 0)
		curl_fd_free(bridge, array_count(&bridge->fds) - 1);
	timeout_remove(&bridge->to);
	array_free(&bridge->fds);
	i_free(bridge);
}
