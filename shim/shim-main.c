/* pop3-retentiond [-c FILE] [serve|sweep [-u USER]|status -u USER|
   check-config] */

#include "pop3-retention-config.h"
#include "shim-server.h"
#include "shim-config.h"
#include "shim-crypt.h"
#include "shim-log.h"
#include "shim-passwd.h"
#include "shim-session.h"
#include "shim-webhook.h"

#include "retention-policy.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <openssl/ssl.h>
#include <event2/event.h>

#define DEFAULT_CONFIG "/etc/pop3-retentiond.conf"
/* SIGTERM: sessions get this long to finish before they are closed
   (without UPDATE) */
#define STOP_GRACE_SECS 30

static int drop_privileges(const struct shim_config *config);

static void usage(void)
{
	fprintf(stderr, "usage: pop3-retentiond [-c FILE] [serve | sweep "
		"[-u USER] | status -u USER | check-config]\n");
	exit(64);
}

/* Load config and passwd-file; on any error print it and return -1. */
static int load_all(const char *path, struct shim_config *config,
		    struct shim_passwd **passwd_r)
{
	char error[1024];
	unsigned int plain;

	shim_config_init(config);
	if (shim_config_load(config, path, error, sizeof(error)) < 0) {
		shim_error("%s", error);
		return -1;
	}
	if (shim_passwd_load(config->passwd_file, passwd_r, error,
			     sizeof(error)) < 0) {
		shim_error("%s", error);
		return -1;
	}
	plain = shim_passwd_plain_count(*passwd_r);
	if (plain > 0) {
		shim_warning("%s: %u user(s) with a {PLAIN} password: use "
			     "SHA512-CRYPT, BLF-CRYPT or yescrypt",
			     config->passwd_file, plain);
	}
	return 0;
}

/* Every user's settings, as logins would see them. */
static int check_users(const struct shim_config *config,
		       const struct shim_passwd *passwd)
{
	struct retention_settings set;
	unsigned int i, count = shim_passwd_count(passwd);
	char error[1024], path[SHIM_PATH_MAX];
	int ret = 0;

	for (i = 0; i < count; i++) {
		const struct shim_passwd_user *user =
			shim_passwd_user(passwd, i);

		if (shim_config_user_settings(config, user, &set, error,
					      sizeof(error)) < 0 ||
		    shim_config_mail_path(config, user, path, sizeof(path),
					  error, sizeof(error)) < 0) {
			shim_error("%s: user %s: %s", config->passwd_file,
				   user->name, error);
			ret = -1;
		}
		if (!shim_passwd_scheme_supported(user->password)) {
			shim_error("%s: user %s: password scheme not supported "
				   "by this libcrypt", config->passwd_file,
				   user->name);
			ret = -1;
		}
	}
	return ret;
}

static int cmd_check_config(const char *path)
{
	struct shim_config *config = calloc(1, sizeof(*config));
	struct shim_passwd *passwd = NULL;
	int ret = -1;

	if (config != NULL && load_all(path, config, &passwd) == 0 &&
	    check_users(config, passwd) == 0) {
		if (config->ssl_cert[0] != '\0') {
			char error[1024];
			SSL_CTX *ctx = shim_tls_ctx_create(config->ssl_cert,
							   config->ssl_key,
							   error,
							   sizeof(error));
			if (ctx == NULL)
				shim_error("%s", error);
			else {
				SSL_CTX_free(ctx);
				ret = 0;
			}
		} else {
			ret = 0;
		}
	}
	if (ret == 0)
		printf("%s: ok, %u user(s)\n", path,
		       shim_passwd_count(passwd));
	shim_passwd_free(&passwd);
	free(config);
	return ret == 0 ? 0 : 1;
}

static int for_users(const char *path, const char *only, bool status)
{
	struct shim_config *config = calloc(1, sizeof(*config));
	struct retention_settings set;
	struct shim_passwd *passwd = NULL;
	struct shim_webhook *webhook = NULL;
	unsigned int i, count, removed, total = 0, users = 0;
	char error[1024];
	int ret = 0;

	if (config == NULL || load_all(path, config, &passwd) < 0) {
		free(config);
		shim_passwd_free(&passwd);
		return 1;
	}
	shim_log_open(config->log, getenv("POP3_RETENTIOND_DEBUG") != NULL);
	/* the maildirs and state files are the service user's */
	if (drop_privileges(config) < 0) {
		shim_passwd_free(&passwd);
		free(config);
		return 1;
	}
	if (!status) {
		webhook = shim_webhook_produce(config, error, sizeof(error));
		if (webhook == NULL && error[0] != '\0') {
			shim_error("webhooks: %s", error);
			ret = 1;
		}
	}
	count = shim_passwd_count(passwd);
	for (i = 0; i < count; i++) {
		const struct shim_passwd_user *user =
			shim_passwd_user(passwd, i);
		struct shim_session_params params;

		if (only != NULL && strcmp(user->name, only) != 0)
			continue;
		users++;
		if (shim_config_user_settings(config, user, &set, error,
					      sizeof(error)) < 0) {
			/* nothing is decided under a bad setting */
			shim_error("user %s: Invalid setting, nothing done: %s",
				   user->name, error);
			ret = 1;
			continue;
		}
		memset(&params, 0, sizeof(params));
		params.config = config;
		params.user = user;
		params.set = &set;
		params.session_id = status ? "status" : "sweep";
		params.webhook = webhook;
		if (status) {
			if (shim_session_status(&params) < 0)
				ret = 1;
		} else if (shim_session_sweep(&params, &removed) < 0) {
			ret = 1;
		} else {
			total += removed;
		}
	}
	if (only != NULL && users == 0) {
		shim_error("user %s: no such user in %s", only,
			   config->passwd_file);
		ret = 1;
	}
	if (!status) {
		shim_info("sweep: %u user(s), %u message(s) removed", users,
			  total);
	}
	shim_webhook_destroy(&webhook);
	shim_passwd_free(&passwd);
	free(config);
	return ret;
}

/* ---- serve ---- */

static void site_expire(struct shim_server *server)
{
	struct retention_expire expire;

	retention_policy_expire(&server->config.retention, &expire);
	retention_expire_format(&expire, server->expire_site,
				sizeof(server->expire_site));
}

/* SIGHUP: a new config, passwd-file and certificate for new logins;
   sessions keep what they have. Listener changes need a restart. */
static void reload_cb(evutil_socket_t sig, short what, void *context)
{
	struct shim_server *server = context;
	struct shim_config *config = calloc(1, sizeof(*config));
	struct shim_passwd *passwd = NULL;
	SSL_CTX *ctx = NULL;
	char error[1024];

	(void)sig;
	(void)what;
	if (config == NULL || load_all(server->config_path, config,
				       &passwd) < 0) {
		shim_error("reload failed: the old configuration stays");
		free(config);
		return;
	}
	if (config->ssl_cert[0] != '\0') {
		ctx = shim_tls_ctx_create(config->ssl_cert, config->ssl_key,
					  error, sizeof(error));
		/* the key is often readable by root only: the rest of
		   the configuration is taken anyway */
		if (ctx == NULL) {
			shim_error("reload: %s: the old certificate stays (it "
				   "must be readable by user %s to be reloaded)",
				   error, config->user);
		}
	}
	if (config->listen_count != server->config.listen_count ||
	    config->listen_tls_count != server->config.listen_tls_count ||
	    memcmp(config->listen, server->config.listen,
		   sizeof(config->listen)) != 0 ||
	    memcmp(config->listen_tls, server->config.listen_tls,
		   sizeof(config->listen_tls)) != 0) {
		shim_warning("reload: listen/listen_tls changes take effect "
			     "at the next restart");
		memcpy(config->listen, server->config.listen,
		       sizeof(config->listen));
		memcpy(config->listen_tls, server->config.listen_tls,
		       sizeof(config->listen_tls));
		config->listen_count = server->config.listen_count;
		config->listen_tls_count = server->config.listen_tls_count;
	}
	if (ctx != NULL) {
		if (server->ssl_ctx != NULL)
			SSL_CTX_free(server->ssl_ctx);
		server->ssl_ctx = ctx;
	}
	shim_passwd_free(&server->passwd);
	server->passwd = passwd;
	server->config = *config;
	free(config);
	site_expire(server);
	shim_log_open(server->config.log,
		      getenv("POP3_RETENTIOND_DEBUG") != NULL);
	shim_info("configuration reloaded");
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *context)
{
	struct shim_server *server = context;

	(void)fd;
	(void)what;
	shim_info("%u session(s) still open after %u s: closed without UPDATE",
		  server->client_count, STOP_GRACE_SECS);
	while (server->clients != NULL)
		shim_client_destroy(server->clients);
	event_base_loopexit(server->base, NULL);
}

/* SIGTERM/SIGINT: stop accepting, close connections that have not
   logged in, let sessions finish (bounded). */
static void stop_cb(evutil_socket_t sig, short what, void *context)
{
	struct shim_server *server = context;
	struct shim_client *client, *next;
	struct timeval tv = { STOP_GRACE_SECS, 0 };

	(void)what;
	if (server->stopping)
		return;
	shim_info("signal %d: stopping", (int)sig);
	server->stopping = true;
	shim_listen_stop(server);
	for (client = server->clients; client != NULL; client = next) {
		next = client->next;
		if (client->state == SHIM_STATE_AUTHORIZATION &&
		    !client->busy) {
			shim_client_reply(client, "-ERR [SYS/TEMP] Server "
					  "shutting down.");
			shim_client_close_after_flush(client);
		}
	}
	if (server->clients == NULL) {
		event_base_loopexit(server->base, NULL);
		return;
	}
	server->stop_timer = evtimer_new(server->base, stop_timeout_cb, server);
	if (server->stop_timer != NULL)
		evtimer_add(server->stop_timer, &tv);
}

static int drop_privileges(const struct shim_config *config)
{
	const struct passwd *pw;

	if (config->user[0] == '\0') {
		if (geteuid() == 0) {
			shim_error("running as root: set user = <an "
				   "unprivileged user> in the configuration");
			return -1;
		}
		return 0;
	}
	pw = getpwnam(config->user);
	if (pw == NULL) {
		shim_error("user = %s: no such user", config->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		shim_error("user = %s: must not be root", config->user);
		return -1;
	}
	if (geteuid() == 0 &&
	    (initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	     setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)) {
		shim_error("dropping privileges to %s failed: %s",
			   config->user, strerror(errno));
		return -1;
	}
	if (getuid() != pw->pw_uid || setuid(0) == 0) {
		shim_error("not running as user %s: refusing to serve",
			   config->user);
		return -1;
	}
	/* no core files with other users' mail in them */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

/* One fd per connection: the soft limit up to the hard one (systemd's
   LimitNOFILE sets both). */
static void raise_fd_limit(const struct shim_config *config)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)config->connections_max + 64) {
		shim_warning("the open files limit (%llu) is below "
			     "connections_max (%u): raise LimitNOFILE",
			     (unsigned long long)rl.rlim_cur,
			     config->connections_max);
	}
}

static int cmd_serve(const char *path)
{
	struct shim_server *server = calloc(1, sizeof(*server));
	char error[1024];
	int ret = 1;

	if (server == NULL)
		return 1;
	snprintf(server->config_path, sizeof(server->config_path), "%s", path);
	if (load_all(path, &server->config, &server->passwd) < 0)
		goto out;
	/* a user with a bad setting is refused at login, naming it; the
	   others are served */
	(void)check_users(&server->config, server->passwd);
	shim_log_open(server->config.log,
		      getenv("POP3_RETENTIOND_DEBUG") != NULL);
	site_expire(server);
	if (server->config.ssl_cert[0] != '\0') {
		/* read as root, before the privileges go */
		server->ssl_ctx = shim_tls_ctx_create(server->config.ssl_cert,
						      server->config.ssl_key,
						      error, sizeof(error));
		if (server->ssl_ctx == NULL) {
			shim_error("%s", error);
			goto out;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(&server->config);
	server->base = event_base_new();
	if (server->base == NULL) {
		shim_error("event_base_new() failed");
		goto out;
	}
	if (shim_listen_start(server, error, sizeof(error)) < 0) {
		shim_error("%s", error);
		goto out;
	}
	if (drop_privileges(&server->config) < 0)
		goto out;
	/* the spool is the service user's */
	server->webhook = shim_webhook_serve(server->base, &server->config,
					     error, sizeof(error));
	if (server->webhook == NULL && error[0] != '\0') {
		shim_error("webhooks: %s", error);
		goto out;
	}
	server->crypt = shim_crypt_pool_create(server->base, SHIM_CRYPT_WORKERS,
					       error, sizeof(error));
	if (server->crypt == NULL) {
		shim_error("%s", error);
		goto out;
	}
	server->sig_hup = evsignal_new(server->base, SIGHUP, reload_cb, server);
	server->sig_term = evsignal_new(server->base, SIGTERM, stop_cb, server);
	server->sig_int = evsignal_new(server->base, SIGINT, stop_cb, server);
	if (server->sig_hup == NULL || server->sig_term == NULL ||
	    server->sig_int == NULL || evsignal_add(server->sig_hup, NULL) < 0 ||
	    evsignal_add(server->sig_term, NULL) < 0 ||
	    evsignal_add(server->sig_int, NULL) < 0) {
		shim_error("installing signal handlers failed");
		goto out;
	}
	shim_info("pop3-retentiond %s started, %u user(s)",
		  POP3_RETENTION_VERSION, shim_passwd_count(server->passwd));
	(void)event_base_dispatch(server->base);
	shim_info("stopped");
	ret = 0;
out:
	while (server->clients != NULL)
		shim_client_destroy(server->clients);
	shim_listen_stop(server);
	shim_crypt_pool_destroy(&server->crypt);
	shim_webhook_destroy(&server->webhook);
	if (server->stop_timer != NULL)
		event_free(server->stop_timer);
	if (server->sig_hup != NULL)
		event_free(server->sig_hup);
	if (server->sig_term != NULL)
		event_free(server->sig_term);
	if (server->sig_int != NULL)
		event_free(server->sig_int);
	if (server->base != NULL)
		event_base_free(server->base);
	if (server->ssl_ctx != NULL)
		SSL_CTX_free(server->ssl_ctx);
	shim_passwd_free(&server->passwd);
	free(server);
	return ret;
}

int main(int argc, char *argv[])
{
	const char *path = DEFAULT_CONFIG, *cmd = "serve", *user = NULL;
	int i = 1;

	if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		path = argv[i + 1];
		i += 2;
	}
	if (i < argc)
		cmd = argv[i++];
	if (i + 1 < argc && strcmp(argv[i], "-u") == 0) {
		user = argv[i + 1];
		i += 2;
	}
	if (i != argc)
		usage();
	if (strcmp(cmd, "serve") == 0 && user == NULL)
		return cmd_serve(path);
	if (strcmp(cmd, "check-config") == 0 && user == NULL)
		return cmd_check_config(path);
	if (strcmp(cmd, "sweep") == 0)
		return for_users(path, user, false);
	if (strcmp(cmd, "status") == 0 && user != NULL)
		return for_users(path, user, true);
	usage();
	return 64;
}
