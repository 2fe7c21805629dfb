/* The listening sockets and the per-IP connection limit. */

#include "shim-server.h"
#include "shim-log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

static void ip_string(const struct sockaddr *sa, char *buf, size_t size)
{
	const void *addr = sa->sa_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, addr, buf, size) == NULL)
		snprintf(buf, size, "?");
}

static unsigned int connections_from(const struct shim_server *server,
				     const char *ip)
{
	const struct shim_client *c;
	unsigned int n = 0;

	for (c = server->clients; c != NULL; c = c->next) {
		if (strcmp(c->ip, ip) == 0)
			n++;
	}
	return n;
}

/* cppcheck-suppress constParameter ; libevent's evconnlistener_cb type */
static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *context)
{
	struct shim_server *server = context;
	const struct shim_config *config = &server->config;
	char ip[INET6_ADDRSTRLEN];
	unsigned int i;
	bool tls = false;

	(void)socklen;
	for (i = 0; i < server->listener_count; i++) {
		if (server->listeners[i] == listener)
			tls = server->listener_tls[i];
	}
	ip_string(sa, ip, sizeof(ip));
	if (server->stopping || server->client_count >= config->connections_max ||
	    connections_from(server, ip) >= config->connections_per_ip) {
		/* no reply: a TLS client would not understand one, and a
		   flood should cost as little as possible */
		shim_warning("connection from %s refused: %s", ip,
			     server->stopping ? "shutting down" :
			     server->client_count >= config->connections_max ?
			     "connections_max reached" :
			     "connections_per_ip reached");
		evutil_closesocket(fd);
		return;
	}
	/* replies are written whole into the buffer already: waiting for
	   the peer's ACK before sending the last small segment of one
	   (Nagle and delayed ACKs) would cost 40 ms per reply */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
			 sizeof(int));
	shim_client_create(server, fd, sa, tls);
}

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_storage ss;
};

static int listen_one(struct shim_server *server, const char *address,
		      bool tls, char *error, size_t error_size)
{
	union sockaddr_any addr;
	struct evconnlistener *l;
	int len = sizeof(addr);

	if (server->listener_count >= 2 * SHIM_LISTEN_MAX)
		return 0;
	/* "host:port" or "[v6]:port" */
	memset(&addr, 0, sizeof(addr));
	if (evutil_parse_sockaddr_port(address, &addr.sa, &len) < 0) {
		snprintf(error, error_size, "%s %s: not an address:port",
			 tls ? "listen_tls" : "listen", address);
		return -1;
	}
	l = evconnlistener_new_bind(server->base, accept_cb, server,
				    LEV_OPT_CLOSE_ON_FREE |
				    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
				    128, &addr.sa, len);
	if (l == NULL) {
		snprintf(error, error_size, "%s %s: bind failed: %s",
			 tls ? "listen_tls" : "listen", address,
			 strerror(errno));
		return -1;
	}
	server->listeners[server->listener_count] = l;
	server->listener_tls[server->listener_count] = tls;
	server->listener_count++;
	shim_info("listening on %s%s", address, tls ? " (implicit TLS)" :
		  server->ssl_ctx != NULL ? " (STLS)" : "");
	return 0;
}

int shim_listen_start(struct shim_server *server, char *error,
		      size_t error_size)
{
	const struct shim_config *config = &server->config;
	unsigned int i;

	for (i = 0; i < config->listen_count; i++) {
		if (listen_one(server, config->listen[i], false, error,
			       error_size) < 0)
			return -1;
	}
	for (i = 0; i < config->listen_tls_count; i++) {
		if (listen_one(server, config->listen_tls[i], true, error,
			       error_size) < 0)
			return -1;
	}
	return 0;
}

void shim_listen_stop(struct shim_server *server)
{
	unsigned int i;

	for (i = 0; i < server->listener_count; i++)
		evconnlistener_free(server->listeners[i]);
	server->listener_count = 0;
}
