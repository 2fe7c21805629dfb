/* Event hand-off from a pop3 process to the pop3-retention service (see
   the header and pop3-retention-protocol.h). */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "net.h"
#include "time-util.h"
#include "pop3-retention-events.h"
#include "pop3-retention-protocol.h"

#include "webhook-spool.h"

#include <poll.h>
#include <unistd.h>

/* Unacknowledged bytes kept in memory; beyond it events go to the outbox
   (the service is too far behind to rely on it). */
#define EVENTS_PENDING_MAX_BYTES (4 * 1024 * 1024)
/* Bytes buffered for the socket; beyond it, the outbox too. */
#define EVENTS_OUTPUT_MAX_BYTES (1024 * 1024)
/* How long the end of a session waits for acknowledgements. The client
   is disconnected already, so this only holds the process. */
#define EVENTS_DEINIT_WAIT_MSECS 2000

struct pending_event {
	char *id;
	int64_t created_ms;
	char *json;
};

struct pop3_retention_events {
	struct event *event;
	char *socket_path;
	char *outbox_dir;

	int fd;
	struct istream *input;
	struct ostream *output;
	struct io *io;
	bool connected;

	/* FIFO of events sent and not yet acknowledged */
	ARRAY(struct pending_event) pending;
	unsigned int pending_head;
	size_t pending_bytes;

	struct webhook_spool *outbox;
	unsigned int outboxed;
};

static void pending_free(struct pending_event *p)
{
	i_free(p->id);
	i_free(p->json);
}

static void outbox_log(void *context, enum webhook_log_level level,
		       const char *message)
{
	struct pop3_retention_events *events = context;

	if (level >= WEBHOOK_LOG_WARNING)
		e_warning(events->event, "outbox: %s", message);
	else
		e_debug(events->event, "outbox: %s", message);
}

static int outbox_open(struct pop3_retention_events *events)
{
	if (events->outbox != NULL)
		return 0;
	events->outbox = webhook_spool_create(events->outbox_dir,
					      WEBHOOK_SPOOL_APPEND_ONLY);
	if (events->outbox == NULL) {
		e_error(events->event, "outbox %s: out of memory",
			events->outbox_dir);
		return -1;
	}
	webhook_spool_set_log(events->outbox, outbox_log, events);
	if (webhook_spool_open(events->outbox) < 0) {
		e_error(events->event, "outbox: %s",
			webhook_spool_error(events->outbox));
		webhook_spool_destroy(&events->outbox);
		return -1;
	}
	return 0;
}

/* Append and make durable at once: the outbox is the fallback path, and
   an event must survive a kill of this process right after. */
static void outbox_write(struct pop3_retention_events *events,
			 const char *const *ids, const int64_t *created,
			 const char *const *jsons, unsigned int count)
{
	unsigned int i, written = 0;

	if (count == 0 || outbox_open(events) < 0)
		goto failed;
	for (i = 0; i < count; i++) {
		if (webhook_spool_append(events->outbox, ids[i], jsons[i],
					 strlen(jsons[i]), created[i]) < 0) {
			e_error(events->event, "outbox: event %s: %s", ids[i],
				webhook_spool_error(events->outbox));
			continue;
		}
		written++;
	}
	if (webhook_spool_commit(events->outbox) < 0) {
		e_error(events->event, "outbox: %s",
			webhook_spool_error(events->outbox));
		goto failed;
	}
	events->outboxed += written;
	return;
failed:
	for (i = 0; i < count; i++) {
		e_error(events->event, "event %s lost: neither the service nor "
			"the outbox %s took it", ids[i], events->outbox_dir);
	}
}

static void pending_to_outbox(struct pop3_retention_events *events)
{
	struct pending_event *p;
	unsigned int i, count, n = 0;
	const char **ids, **jsons;
	int64_t *created;

	p = array_get_modifiable(&events->pending, &count);
	if (events->pending_head >= count)
		return;
	ids = t_new(const char *, count - events->pending_head);
	jsons = t_new(const char *, count - events->pending_head);
	created = t_new(int64_t, count - events->pending_head);
	for (i = events->pending_head; i < count; i++, n++) {
		ids[n] = p[i].id;
		jsons[n] = p[i].json;
		created[n] = p[i].created_ms;
	}
	outbox_write(events, ids, created, jsons, n);
	for (i = events->pending_head; i < count; i++)
		pending_free(&p[i]);
	array_clear(&events->pending);
	events->pending_head = 0;
	events->pending_bytes = 0;
}

static void events_disconnect(struct pop3_retention_events *events,
			      const char *reason)
{
	if (!events->connected)
		return;
	if (reason != NULL) {
		e_warning(events->event, "Lost the pop3-retention service "
			  "(%s): %s; events go to the outbox %s",
			  events->socket_path, reason, events->outbox_dir);
	}
	io_remove(&events->io);
	i_stream_destroy(&events->input);
	o_stream_destroy(&events->output);
	i_close_fd(&events->fd);
	events->connected = FALSE;
	T_BEGIN {
		pending_to_outbox(events);
	} T_END;
}

static void events_ack(struct pop3_retention_events *events, const char *id,
		       bool refused, const char *reason)
{
	struct pending_event *p;
	unsigned int i, count;

	p = array_get_modifiable(&events->pending, &count);
	for (i = events->pending_head; i < count; i++) {
		if (strcmp(p[i].id, id) == 0)
			break;
	}
	if (i == count) {
		e_warning(events->event, "service acknowledged an unknown "
			  "event %s", id);
		return;
	}
	if (refused) {
		const char *ids[1] = { p[i].id }, *jsons[1] = { p[i].json };
		int64_t created[1] = { p[i].created_ms };

		e_warning(events->event, "service refused event %s (%s): "
			  "kept in the outbox", id, reason);
		outbox_write(events, ids, created, jsons, 1);
	}
	events->pending_bytes -= strlen(p[i].json);
	pending_free(&p[i]);
	if (i != events->pending_head) {
		/* out of order (not expected): keep the FIFO dense */
		p[i] = p[events->pending_head];
	}
	events->pending_head++;
	if (events->pending_head == count) {
		array_clear(&events->pending);
		events->pending_head = 0;
	}
}

static void events_input(struct pop3_retention_events *events)
{
	const char *line;

	while ((line = i_stream_read_next_line(events->input)) != NULL) {
		const char *const *args = t_strsplit_tabescaped(line);

		if (args[0] == NULL)
			continue;
		if (strcmp(args[0], "A") == 0 && args[1] != NULL)
			events_ack(events, args[1], FALSE, NULL);
		else if (strcmp(args[0], "R") == 0 && args[1] != NULL)
			events_ack(events, args[1], TRUE,
				   args[2] != NULL ? args[2] : "");
		else if (strcmp(args[0], "VERSION") == 0) {
			if (args[1] == NULL || args[2] == NULL ||
			    strcmp(args[1], POP3_RETENTION_PROTOCOL_NAME) != 0 ||
			    strcmp(args[2], dec2str(
				    POP3_RETENTION_PROTOCOL_MAJOR)) != 0) {
				events_disconnect(events, "incompatible "
						  "protocol version");
				return;
			}
		}
	}
	if (events->input->eof || events->input->stream_errno != 0) {
		events_disconnect(events, events->input->stream_errno != 0 ?
				  i_stream_get_error(events->input) :
				  "connection closed");
	}
}

static void events_input_cb(struct pop3_retention_events *events)
{
	T_BEGIN {
		events_input(events);
	} T_END;
}

static void events_connect(struct pop3_retention_events *events)
{
	events->fd = net_connect_unix(events->socket_path);
	if (events->fd == -1) {
		e_warning(events->event, "Can't reach the pop3-retention "
			  "service: net_connect_unix(%s) failed: %m; events go "
			  "to the outbox %s", events->socket_path,
			  events->outbox_dir);
		return;
	}
	events->input = i_stream_create_fd(events->fd,
					   POP3_RETENTION_PROTOCOL_LINE_MAX);
	events->output = o_stream_create_fd(events->fd, SIZE_MAX);
	o_stream_set_no_error_handling(events->output, TRUE);
	events->io = io_add(events->fd, IO_READ, events_input_cb, events);
	events->connected = TRUE;
	o_stream_nsend_str(events->output, POP3_RETENTION_HANDSHAKE);
}

struct pop3_retention_events *
pop3_retention_events_init(struct event *event, const char *socket_path,
			   const char *outbox_dir)
{
	struct pop3_retention_events *events;

	events = i_new(struct pop3_retention_events, 1);
	events->event = event;
	event_ref(event);
	events->fd = -1;
	events->socket_path = i_strdup(socket_path);
	events->outbox_dir = i_strdup(outbox_dir);
	i_array_init(&events->pending, 16);
	events_connect(events);
	return events;
}

void pop3_retention_events_send(struct pop3_retention_events *events,
				const char *id, int64_t created_ms,
				const char *json)
{
	struct pending_event *p;
	string_t *line;

	if (events->connected &&
	    (events->pending_bytes > EVENTS_PENDING_MAX_BYTES ||
	     o_stream_get_buffer_used_size(events->output) >
		     EVENTS_OUTPUT_MAX_BYTES)) {
		e_warning(events->event, "The pop3-retention service is too "
			  "far behind: event %s goes to the outbox", id);
	}
	if (!events->connected ||
	    events->pending_bytes > EVENTS_PENDING_MAX_BYTES ||
	    o_stream_get_buffer_used_size(events->output) >
		    EVENTS_OUTPUT_MAX_BYTES) {
		outbox_write(events, &id, &created_ms, &json, 1);
		return;
	}
	p = array_append_space(&events->pending);
	p->id = i_strdup(id);
	p->created_ms = created_ms;
	p->json = i_strdup(json);
	events->pending_bytes += strlen(json);

	line = t_str_new(strlen(json) + 64);
	str_printfa(line, "E\t%s\t%lld\t%s\n", id, (long long)created_ms,
		    json);
	o_stream_nsend(events->output, str_data(line), str_len(line));
	if (o_stream_flush(events->output) < 0)
		events_disconnect(events, o_stream_get_error(events->output));
}

/* Wait for the acknowledgements with poll(): no nested ioloop (an empty
   one panics, and the user's ioloop context is going away). */
static void events_wait_acks(struct pop3_retention_events *events)
{
	struct timeval start, now;
	int elapsed;

	i_gettimeofday(&start);
	while (events->connected &&
	       array_count(&events->pending) > events->pending_head) {
		struct pollfd pfd;
		int ret;

		i_gettimeofday(&now);
		elapsed = (int)(timeval_diff_msecs(&now, &start));
		if (elapsed >= EVENTS_DEINIT_WAIT_MSECS)
			break;
		if (o_stream_flush(events->output) < 0) {
			events_disconnect(events,
					  o_stream_get_error(events->output));
			break;
		}
		pfd.fd = events->fd;
		pfd.events = POLLIN;
		if (o_stream_get_buffer_used_size(events->output) > 0)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		ret = poll(&pfd, 1, EVENTS_DEINIT_WAIT_MSECS - elapsed);
		if (ret < 0 && errno != EINTR) {
			events_disconnect(events, "poll() failed");
			break;
		}
		if (ret > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0)
			events_input_cb(events);
	}
}

void pop3_retention_events_deinit(struct pop3_retention_events **_events)
{
	struct pop3_retention_events *events = *_events;
	unsigned int unacked;

	if (events == NULL)
		return;
	*_events = NULL;
	events_wait_acks(events);
	unacked = array_count(&events->pending) - events->pending_head;
	if (events->connected && unacked > 0) {
		e_warning(events->event, "The pop3-retention service did not "
			  "acknowledge %u event(s) in time: kept in the outbox "
			  "%s", unacked, events->outbox_dir);
	}
	if (events->connected) {
		events_disconnect(events, NULL);
	} else {
		T_BEGIN {
			pending_to_outbox(events);
		} T_END;
	}
	if (events->outboxed > 0) {
		e_warning(events->event, "%u event(s) written to the outbox "
			  "%s: run doveadm pop3-retention flush",
			  events->outboxed, events->outbox_dir);
	}
	webhook_spool_destroy(&events->outbox);
	array_free(&events->pending);
	i_free(events->socket_path);
	i_free(events->outbox_dir);
	event_unref(&events->event);
	i_free(events);
}
