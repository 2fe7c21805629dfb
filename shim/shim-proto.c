/* A POP3 connection: the bounded line reader, the reply writer, the
   timers, TLS, and the dispatch of commands to the state's table. */

#include "shim-server.h"
#include "shim-log.h"
#include "shim-crypt.h"
#include "shim-session.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

static void client_process(struct shim_client *client);
static void client_setup_bev(struct shim_client *client);
static void under_output_cb(struct evbuffer *buffer,
			    const struct evbuffer_cb_info *info,
			    void *context);

static void client_unlink(struct shim_client *client)
{
	struct shim_server *server = client->server;

	if (client->prev != NULL)
		client->prev->next = client->next;
	else
		server->clients = client->next;
	if (client->next != NULL)
		client->next->prev = client->prev;
	server->client_count--;
}

void shim_client_destroy(struct shim_client *client)
{
	struct shim_server *server = client->server;

	shim_auth_abort(client);
	shim_trans_disconnect(client);
	if (client->timer != NULL)
		event_free(client->timer);
	if (client->kick != NULL)
		event_free(client->kick);
	if (client->under_cb != NULL) {
		(void)evbuffer_remove_cb_entry(bufferevent_get_output(
			bufferevent_get_underlying(client->bev)),
			client->under_cb);
	}
	if (client->bev != NULL)
		bufferevent_free(client->bev);
	client_unlink(client);
	shim_debug("connection %s from %s closed", client->id, client->ip);
	free(client);
	if (server->stopping && server->clients == NULL)
		event_base_loopexit(server->base, NULL);
}

static void timer_cb(evutil_socket_t fd, short what, void *context)
{
	struct shim_client *client = context;

	(void)fd;
	(void)what;
	if (client->auth_delaying) {
		shim_auth_delay_done(client);
		return;
	}
	if (client->state == SHIM_STATE_CLOSING) {
		/* the peer does not read its last reply */
		shim_client_destroy(client);
		return;
	}
	/* RFC 1939 section 3: autologout ends the session without
	   entering UPDATE */
	shim_info("connection %s from %s: %s, closed%s", client->id,
		  client->ip, client->state == SHIM_STATE_TRANSACTION ?
		  "idle timeout" : "login timeout",
		  client->state == SHIM_STATE_TRANSACTION ?
		  " without UPDATE" : "");
	bufferevent_write(client->bev, "-ERR Disconnected for inactivity.\r\n",
			  35);
	shim_client_close_after_flush(client);
}

/* POP3_RETENTIOND_TEST_IDLE_SECS: the tests' idle timeout (the
   configuration refuses less than RFC 1939's 10 minutes). */
static unsigned int idle_timeout_secs(const struct shim_client *client)
{
	const char *test = getenv("POP3_RETENTIOND_TEST_IDLE_SECS");
	char *end;
	unsigned long secs;

	if (test != NULL) {
		secs = strtoul(test, &end, 10);
		if (*end == '\0' && secs > 0 && secs < 600)
			return (unsigned int)secs;
	}
	return client->server->config.idle_timeout_secs;
}

void shim_client_touch(struct shim_client *client)
{
	struct timeval tv = { 0, 0 };

	if (client->state == SHIM_STATE_CLOSING)
		tv.tv_sec = 10;
	else if (client->state == SHIM_STATE_TRANSACTION)
		tv.tv_sec = idle_timeout_secs(client);
	else
		tv.tv_sec = SHIM_LOGIN_TIMEOUT_SECS;
	evtimer_add(client->timer, &tv);
}

void shim_client_reply(struct shim_client *client, const char *fmt, ...)
{
	char line[SHIM_REPLY_MAX];
	va_list args;
	int len;

	va_start(args, fmt);
	len = vsnprintf(line, sizeof(line) - 2, fmt, args);
	va_end(args);
	if (len < 0)
		len = 0;
	if ((size_t)len > sizeof(line) - 3)
		len = sizeof(line) - 3;
	line[len++] = '\r';
	line[len++] = '\n';
	bufferevent_write(client->bev, line, (size_t)len);
}

void shim_client_write(struct shim_client *client, const void *data,
		       size_t size)
{
	bufferevent_write(client->bev, data, size);
}

size_t shim_client_output_pending(const struct shim_client *client)
{
	struct bufferevent *under = bufferevent_get_underlying(client->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(client->bev));

	/* after STLS the encrypted octets wait in the socket's buffer */
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

void shim_client_close_after_flush(struct shim_client *client)
{
	client->state = SHIM_STATE_CLOSING;
	client->busy = true;
	bufferevent_disable(client->bev, EV_READ);
	shim_client_touch(client);
	if (shim_client_output_pending(client) == 0)
		shim_client_destroy(client);
}

void shim_client_resume(struct shim_client *client)
{
	client->busy = false;
	client_process(client);
}

int shim_client_start_tls(struct shim_client *client)
{
	struct bufferevent *filter;
	SSL *ssl = SSL_new(client->server->ssl_ctx);

	if (ssl == NULL)
		return -1;
	/* RFC 2595 / RFC 3207 section 6: anything the client pipelined
	   after STLS in plaintext is discarded, never read as commands
	   of the protected session */
	evbuffer_drain(bufferevent_get_input(client->bev),
		       evbuffer_get_length(bufferevent_get_input(client->bev)));
	filter = bufferevent_openssl_filter_new(client->server->base,
						client->bev, ssl,
						BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL) {
		SSL_free(ssl);
		return -1;
	}
	client->bev = filter;
	client->tls = true;
	client_setup_bev(client);
	client->under_cb = evbuffer_add_cb(
		bufferevent_get_output(bufferevent_get_underlying(filter)),
		under_output_cb, client);
	return 0;
}

/* ---- input ---- */

static bool command_is_auth_secret(const struct shim_client *client,
				   const char *name)
{
	return client->sasl_continue || strcasecmp(name, "PASS") == 0 ||
	       strcasecmp(name, "AUTH") == 0;
}

static void client_dispatch(struct shim_client *client, char *line)
{
	char *name = line, *args;

	if (client->sasl_continue) {
		shim_auth_sasl_response(client, line);
		return;
	}
	args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	else
		args = line + strlen(line);
	if (*name == '\0') {
		shim_client_reply(client, "-ERR Unknown command.");
		return;
	}
	shim_debug("connection %s: %s%s", client->id, name,
		   command_is_auth_secret(client, name) ? " ***" : "");
	if (client->state == SHIM_STATE_AUTHORIZATION)
		shim_auth_command(client, name, args);
	else
		shim_trans_command(client, name, args);
}

/* One command line at most SHIM_COMMAND_MAX octets with its CRLF; a
   longer one is answered with -ERR once and discarded to its end. */
static void client_process(struct shim_client *client)
{
	struct evbuffer *input;

	if (client->bev == NULL)
		return;
	input = bufferevent_get_input(client->bev);
	while (!client->busy && client->state != SHIM_STATE_CLOSING &&
	       shim_client_output_pending(client) < SHIM_OUTPUT_HIGH_WATER) {
		char line[SHIM_COMMAND_MAX + 1];
		struct evbuffer_ptr eol;
		size_t eol_len = 0, len;

		eol = evbuffer_search_eol(input, NULL, &eol_len,
					  EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(input) < SHIM_COMMAND_MAX)
				break;
			/* no line end within the limit */
			evbuffer_drain(input, evbuffer_get_length(input));
			if (!client->discarding) {
				client->discarding = true;
				client->sasl_continue = false;
				shim_client_reply(client,
					"-ERR Command line too long.");
			}
			break;
		}
		len = (size_t)eol.pos;
		if (client->discarding) {
			/* the end of a line answered already */
			evbuffer_drain(input, len + eol_len);
			client->discarding = false;
			continue;
		}
		if (len + eol_len > SHIM_COMMAND_MAX) {
			evbuffer_drain(input, len + eol_len);
			client->sasl_continue = false;
			shim_client_reply(client, "-ERR Command line too long.");
			continue;
		}
		evbuffer_remove(input, line, len);
		evbuffer_drain(input, eol_len);
		line[len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			client->sasl_continue = false;
			shim_client_reply(client,
				"-ERR NUL octet in command line.");
			continue;
		}
		shim_client_touch(client);
		client_dispatch(client, line);
		memset(line, 0, sizeof(line));
	}
}

static void read_cb(struct bufferevent *bev, void *context)
{
	(void)bev;
	client_process(context);
}

static void output_drained(struct shim_client *client)
{
	if (client->state == SHIM_STATE_CLOSING) {
		if (shim_client_output_pending(client) == 0)
			shim_client_destroy(client);
		return;
	}
	if (client->stream != NULL) {
		shim_trans_stream_more(client);
		return;
	}
	/* replies drained: pipelined commands waiting behind them */
	client_process(client);
}

static void write_cb(struct bufferevent *bev, void *context)
{
	(void)bev;
	output_drained(context);
}

static void kick_cb(evutil_socket_t fd, short what, void *context)
{
	(void)fd;
	(void)what;
	output_drained(context);
}

/* After STLS the filter's write callback runs when its octets move to
   the socket's buffer, not when they leave it: the socket buffer's
   drains wake the client through an event of its own (never from
   inside the buffer's callback). */
static void under_output_cb(struct evbuffer *buffer,
			    const struct evbuffer_cb_info *info,
			    void *context)
{
	struct shim_client *client = context;

	(void)buffer;
	if (info->n_deleted > 0)
		event_active(client->kick, EV_TIMEOUT, 0);
}

static void event_cb(struct bufferevent *bev, short what, void *context)
{
	struct shim_client *client = context;

	(void)bev;
	if ((what & BEV_EVENT_ERROR) != 0) {
		unsigned long e = bufferevent_get_openssl_error(client->bev);

		if (e != 0) {
			char reason[256];

			ERR_error_string_n(e, reason, sizeof(reason));
			shim_info("connection %s from %s: TLS: %s", client->id,
				  client->ip, reason);
		}
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0)
		shim_client_destroy(client);
}

static void client_setup_bev(struct shim_client *client)
{
	bufferevent_setcb(client->bev, read_cb, write_cb, event_cb, client);
	/* write_cb when the output drains below half the high water:
	   streaming and pipelined replies continue from there */
	bufferevent_setwatermark(client->bev, EV_WRITE,
				 SHIM_OUTPUT_HIGH_WATER / 2, 0);
	/* stop reading while this much input waits (pipelining) */
	bufferevent_setwatermark(client->bev, EV_READ, 0,
				 SHIM_OUTPUT_HIGH_WATER);
	bufferevent_enable(client->bev, EV_READ | EV_WRITE);
}

static bool ip_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		       sin6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

void shim_client_create(struct shim_server *server, int fd,
			const struct sockaddr *sa, bool tls)
{
	struct shim_client *client = calloc(1, sizeof(*client));
	const void *addr;

	if (client == NULL) {
		evutil_closesocket(fd);
		return;
	}
	client->server = server;
	addr = sa->sa_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (inet_ntop(sa->sa_family, addr, client->ip, sizeof(client->ip)) ==
	    NULL)
		snprintf(client->ip, sizeof(client->ip), "?");
	client->loopback = ip_is_loopback(sa);
	snprintf(client->id, sizeof(client->id), "%llx-%d",
		 ++server->session_counter, (int)getpid());
	client->next = server->clients;
	if (server->clients != NULL)
		server->clients->prev = client;
	server->clients = client;
	server->client_count++;

	if (tls) {
		SSL *ssl = SSL_new(server->ssl_ctx);

		client->bev = ssl == NULL ? NULL :
			bufferevent_openssl_socket_new(server->base, fd, ssl,
				BUFFEREVENT_SSL_ACCEPTING,
				BEV_OPT_CLOSE_ON_FREE);
		if (client->bev == NULL && ssl != NULL)
			SSL_free(ssl);
		client->tls = true;
	} else {
		client->bev = bufferevent_socket_new(server->base, fd,
						     BEV_OPT_CLOSE_ON_FREE);
	}
	client->timer = evtimer_new(server->base, timer_cb, client);
	client->kick = event_new(server->base, -1, 0, kick_cb, client);
	if (client->bev == NULL || client->timer == NULL ||
	    client->kick == NULL) {
		if (client->bev == NULL)
			evutil_closesocket(fd);
		shim_client_destroy(client);
		return;
	}
	client_setup_bev(client);
	shim_client_touch(client);
	shim_debug("connection %s from %s%s", client->id, client->ip,
		   tls ? " (TLS)" : "");
	shim_client_reply(client, "+OK pop3-retentiond ready.");
}
