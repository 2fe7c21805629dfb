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
#include "strnum.h"
#include "pop3-retention-events.h"
#include "pop3-retention-protocol.h"

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
/* The answers are read (without blocking) before an event is sent once
   this many are unacknowledged: reading before every event costs a
   read() per download, and a lost service shows itself anyway when the
   next write fails and at the end of the session. */
#define EVENTS_READ_AFTER_PENDING 16

struct pending_event {
	unsigned int seq;
	/* "<created_ms> TAB <event fields>" */
	char *line;
};

struct pop3_retention_events {
	struct event *event;
	char *socket_path;
	char *outbox_dir;

	int fd;
	struct istream *input;
	struct ostream *output;
	bool connected;

	/* FIFO of events sent and not yet acknowledged */
	ARRAY(struct pending_event) pending;
	unsigned int pending_head;
	size_t pending_bytes;
	unsigned int next_seq;

	unsigned int outboxed;
};

static void pending_free(struct pending_event *p)
{
	i_free(p->line);
}

/* Durable before it returns: the outbox is the fallback path, and an
   event must survive a kill of this process right after. */
static void outbox_write(struct pop3_retention_events *events,
			 const char *const *lines, unsigned int count)
{
	const char *error;
	int written;

	if (count == 0)
		return;
	written = pop3_retention_outbox_write(events->outbox_dir, lines, count,
					      &error);
	if (written > 0)
		events->outboxed += (unsigned int)written;
	if (written < (int)count) {
		e_error(events->event, "%u event(s) lost: neither the service "
			"nor the outbox took them: %s",
			count - (written < 0 ? 0 : (unsigned int)written),
			error);
	}
}

static void pending_to_outbox(struct pop3_retention_events *events)
{
	struct pending_event *p;
	unsigned int i, count, n = 0;
	const char **lines;

	p = array_get_modifiable(&events->pending, &count);
	if (events->pending_head >= count)
		return;
	lines = t_new(const char *, count - events->pending_head);
	for (i = events->pending_head; i < count; i++)
		lines[n++] = p[i].line;
	outbox_write(events, lines, n);
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
	i_stream_destroy(&events->input);
	o_stream_destroy(&events->output);
	i_close_fd(&events->fd);
	events->connected = FALSE;
	T_BEGIN {
		pending_to_outbox(events);
	} T_END;
}

static void events_ack(struct pop3_retention_events *events,
		       const char *seq_str, bool refused, const char *reason)
{
	struct pending_event *p;
	unsigned int i, count, seq;

	p = array_get_modifiable(&events->pending, &count);
	if (str_to_uint(seq_str, &seq) < 0)
		i = count;
	else {
		for (i = events->pending_head; i < count; i++) {
			if (p[i].seq == seq)
				break;
		}
	}
	if (i == count) {
		e_warning(events->event, "service acknowledged an unknown "
			  "event %s", seq_str);
		return;
	}
	if (refused) {
		const char *lines[1] = { p[i].line };

		e_warning(events->event, "service refused an event (%s): "
			  "kept in the outbox", reason);
		outbox_write(events, lines, 1);
	}
	events->pending_bytes -= strlen(p[i].line);
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
	/* No io for the answers: each would wake this process in the middle
	   of a session for nothing. They are read without blocking before
	   an event is sent when many are unacknowledged, and waited for at
	   the end of the session. */
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
				int64_t created_ms, const char *fields)
{
	struct pending_event *p;
	const char *line;
	string_t *str;

	line = t_strdup_printf("%lld\t%s", (long long)created_ms, fields);
	if (events->connected &&
	    array_count(&events->pending) - events->pending_head >=
	    EVENTS_READ_AFTER_PENDING) {
		/* the answers that came meanwhile; notices a lost service */
		events_input(events);
	}
	if (events->connected &&
	    (events->pending_bytes > EVENTS_PENDING_MAX_BYTES ||
	     o_stream_get_buffer_used_size(events->output) >
		     EVENTS_OUTPUT_MAX_BYTES)) {
		e_warning(events->event, "The pop3-retention service is too "
			  "far behind: an event goes to the outbox");
	}
	if (!events->connected ||
	    events->pending_bytes > EVENTS_PENDING_MAX_BYTES ||
	    o_stream_get_buffer_used_size(events->output) >
		    EVENTS_OUTPUT_MAX_BYTES) {
		outbox_write(events, &line, 1);
		return;
	}
	p = array_append_space(&events->pending);
	p->seq = ++events->next_seq;
	p->line = i_strdup(line);
	events->pending_bytes += strlen(line);

	str = t_str_new(strlen(line) + 32);
	str_printfa(str, "E\t%u\t%s\n", p->seq, line);
	o_stream_nsend(events->output, str_data(str), str_len(str));
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
	array_free(&events->pending);
	i_free(events->socket_path);
	i_free(events->outbox_dir);
	event_unref(&events->event);
	i_free(events);
}
