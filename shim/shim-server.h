#ifndef SHIM_SERVER_H
#define SHIM_SERVER_H

/* The serving process of pop3-retentiond: one libevent loop, its
   listeners, and one struct shim_client per connection. Internal to
   the shim's server modules (listen, tls, proto, auth, trans). */

#include "shim-config.h"

#include <stdbool.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

struct event;
struct event_base;
struct bufferevent;
struct evconnlistener;
struct evbuffer_cb_entry;
struct shim_passwd;
struct shim_crypt_pool;
struct shim_webhook;
struct shim_crypt_job;
struct shim_session;
struct shim_msg_stream;

struct shim_server {
	struct event_base *base;
	/* replaced whole by a reload (SIGHUP); clients keep what they
	   took at login */
	struct shim_config config;
	char config_path[SHIM_PATH_MAX];
	struct shim_passwd *passwd;
	SSL_CTX *ssl_ctx;
	struct shim_crypt_pool *crypt;
	/* NULL: no webhook URL */
	struct shim_webhook *webhook;

	struct evconnlistener *listeners[2 * SHIM_LISTEN_MAX];
	bool listener_tls[2 * SHIM_LISTEN_MAX];
	unsigned int listener_count;

	struct shim_client *clients;
	unsigned int client_count;
	/* SIGTERM: no new connections; the loop ends with the last client */
	bool stopping;
	struct event *sig_hup, *sig_term, *sig_int, *stop_timer;
	/* the CAPA EXPIRE value before login: the site's, then "USER" */
	char expire_site[32];
	unsigned long long session_counter;
};

enum shim_client_state {
	SHIM_STATE_AUTHORIZATION,
	SHIM_STATE_TRANSACTION,
	/* QUIT answered, or failing: output is flushed, then the
	   connection closes; no more commands are read */
	SHIM_STATE_CLOSING,
};

struct shim_client {
	struct shim_client *prev, *next;
	struct shim_server *server;
	struct bufferevent *bev;
	struct event *timer;
	/* output drained below the socket (after STLS) */
	struct event *kick;
	struct evbuffer_cb_entry *under_cb;
	char ip[INET6_ADDRSTRLEN];
	char id[32];
	enum shim_client_state state;
	bool tls;
	bool loopback;
	/* an overlong line is being discarded up to its line end */
	bool discarding;
	/* a command is being carried out asynchronously (password check,
	   RETR/TOP streaming, login delay): pipelined input waits */
	bool busy;
	/* AUTH PLAIN sent "+ " and waits for the client's response line */
	bool sasl_continue;
	/* a failed login's reply waits for the timer */
	bool auth_delaying;

	/* AUTHORIZATION */
	char user[SHIM_USER_MAX + 1];
	bool user_given;
	unsigned int auth_failures;
	struct shim_crypt_job *crypt_job;
	char auth_user[SHIM_USER_MAX + 1];
	/* auth_user is in the passwd-file (else a dummy hash is checked) */
	bool auth_known;

	/* TRANSACTION */
	struct shim_session *session;
	struct shim_msg_stream *stream;
	unsigned int stream_msgnum;
	bool stream_is_top;
	/* the whole response is queued: counted once it left the buffer */
	bool stream_done;
	/* the user's CAPA EXPIRE value ("" : none) */
	char expire[16];
};

/* shim-tls.c: an SSL_CTX for cert_file/key_file: TLS 1.2 or newer,
   server cipher preference. Returns NULL with error. */
SSL_CTX *shim_tls_ctx_create(const char *cert_file, const char *key_file,
			     char *error, size_t error_size);

/* shim-listen.c */
int shim_listen_start(struct shim_server *server, char *error,
		      size_t error_size);
void shim_listen_stop(struct shim_server *server);

/* shim-proto.c: the connection */
void shim_client_create(struct shim_server *server, int fd,
			const struct sockaddr *sa, bool tls);
void shim_client_destroy(struct shim_client *client);
/* Queue a reply line (CRLF added). */
void shim_client_reply(struct shim_client *client, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Queue raw octets (multi-line bodies). */
void shim_client_write(struct shim_client *client, const void *data,
		       size_t size);
/* The asynchronous command is done: read the next pipelined ones. */
void shim_client_resume(struct shim_client *client);
/* Answer nothing more; close once the output is flushed. */
void shim_client_close_after_flush(struct shim_client *client);
/* Octets waiting in the output buffer. */
size_t shim_client_output_pending(const struct shim_client *client);
/* Start TLS on the connection (STLS), after its +OK was queued. */
int shim_client_start_tls(struct shim_client *client);
/* Arm the client's timer: idle autologout / login timeout. */
void shim_client_touch(struct shim_client *client);

/* shim-auth.c: AUTHORIZATION state; returns after answering (or
   setting busy). */
void shim_auth_command(struct shim_client *client, const char *name,
		       const char *args);
void shim_auth_sasl_response(struct shim_client *client, const char *line);
void shim_auth_abort(struct shim_client *client);
/* The delay after a failed login has passed: answer it. */
void shim_auth_delay_done(struct shim_client *client);
/* The CAPA reply, in either state. */
void shim_capa_reply(struct shim_client *client);
/* Whether a plaintext password may be sent on this connection. */
bool shim_auth_plaintext_allowed(const struct shim_client *client);

/* shim-trans.c: TRANSACTION state. */
void shim_trans_command(struct shim_client *client, const char *name,
			const char *args);
/* The output drained while a message streams: send more. */
void shim_trans_stream_more(struct shim_client *client);
/* The connection ends (QUIT done or not): stop streaming, end the
   session without UPDATE unless QUIT ran it. */
void shim_trans_disconnect(struct shim_client *client);

#endif
