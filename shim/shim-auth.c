/* The AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH PLAIN, QUIT. */

#include "pop3-retention-config.h"
#include "shim-server.h"
#include "shim-crypt.h"
#include "shim-log.h"
#include "shim-passwd.h"
#include "shim-session.h"

#include "retention-policy.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <event2/event.h>

/* A hash checked for unknown users, so that they take as long to
   refuse as known ones (made once, of a random password). */
static char dummy_hash[CRYPT_OUTPUT_SIZE];

static const char *dummy_stored(void)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data data;
	const char *hash;

	if (dummy_hash[0] != '\0')
		return dummy_hash;
	memset(&data, 0, sizeof(data));
	if (crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)) != NULL &&
	    (hash = crypt_r("pop3-retentiond unknown user", salt, &data)) !=
		    NULL && hash[0] == '$')
		snprintf(dummy_hash, sizeof(dummy_hash), "{CRYPT}%s", hash);
	else
		snprintf(dummy_hash, sizeof(dummy_hash), "{PLAIN}\x01");
	return dummy_hash;
}

static bool settings_passive(const struct retention_settings *set)
{
	return set->policy == RETENTION_POLICY_OFF && set->min_secs == 0 &&
	       set->max_secs == 0 && !set->hold && set->visible_since == 0;
}

bool shim_auth_plaintext_allowed(const struct shim_client *client)
{
	switch (client->server->config.plaintext_auth) {
	case SHIM_PLAINTEXT_ALWAYS:
		return true;
	case SHIM_PLAINTEXT_TLS:
		return client->tls;
	case SHIM_PLAINTEXT_LOOPBACK:
		break;
	}
	return client->tls || client->loopback;
}

void shim_capa_reply(struct shim_client *client)
{
	const struct shim_server *server = client->server;
	const struct shim_config *config = &server->config;
	bool authorization = client->state == SHIM_STATE_AUTHORIZATION;

	shim_client_reply(client, "+OK Capability list follows");
	shim_client_reply(client, "CAPA");
	shim_client_reply(client, "TOP");
	shim_client_reply(client, "UIDL");
	shim_client_reply(client, "RESP-CODES");
	shim_client_reply(client, "AUTH-RESP-CODE");
	shim_client_reply(client, "PIPELINING");
	if (authorization && shim_auth_plaintext_allowed(client)) {
		shim_client_reply(client, "USER");
		shim_client_reply(client, "SASL PLAIN");
	}
	if (authorization && server->ssl_ctx != NULL && !client->tls)
		shim_client_reply(client, "STLS");
	if (!authorization && client->session != NULL) {
		if (client->expire[0] != '\0')
			shim_client_reply(client, "EXPIRE %s", client->expire);
	} else if (config->retention.capa_expire &&
		   !settings_passive(&config->retention)) {
		/* per-user overrides may differ: ask again after login */
		shim_client_reply(client, "EXPIRE %s USER",
				  server->expire_site);
	}
	if (config->login_delay_secs > 0) {
		shim_client_reply(client, "LOGIN-DELAY %u%s",
				  config->login_delay_secs,
				  authorization ? " USER" : "");
	}
	shim_client_reply(client, "IMPLEMENTATION pop3-retentiond-%s",
			  POP3_RETENTION_VERSION);
	shim_client_reply(client, ".");
}

/* ---- the login ---- */

static void login_failed_reply(struct shim_client *client)
{
	unsigned int delay_ms = SHIM_AUTH_FAIL_DELAY_MSECS;
	unsigned int i;
	struct timeval tv;

	client->auth_failures++;
	for (i = 1; i < client->auth_failures && delay_ms <
		    SHIM_AUTH_FAIL_DELAY_MAX_MSECS; i++)
		delay_ms *= 2;
	if (delay_ms > SHIM_AUTH_FAIL_DELAY_MAX_MSECS)
		delay_ms = SHIM_AUTH_FAIL_DELAY_MAX_MSECS;
	/* guessing is slowed down: the answer waits */
	client->auth_delaying = true;
	client->busy = true;
	tv.tv_sec = delay_ms / 1000;
	tv.tv_usec = (delay_ms % 1000) * 1000;
	evtimer_add(client->timer, &tv);
}

void shim_auth_delay_done(struct shim_client *client)
{
	client->auth_delaying = false;
	shim_client_reply(client, "-ERR [AUTH] Authentication failed.");
	if (client->auth_failures >= SHIM_AUTH_FAILURES_MAX) {
		shim_client_reply(client, "-ERR Too many failed logins.");
		shim_client_close_after_flush(client);
		return;
	}
	shim_client_touch(client);
	shim_client_resume(client);
}

static void login_finish(struct shim_client *client)
{
	struct shim_server *server = client->server;
	const struct shim_passwd_user *user =
		shim_passwd_lookup(server->passwd, client->auth_user);
	struct shim_session_params params;
	struct retention_settings set;
	char error[SHIM_REPLY_MAX];
	int ret;

	if (user == NULL) {
		/* removed by a reload meanwhile */
		login_failed_reply(client);
		return;
	}
	if (shim_config_user_settings(&server->config, user, &set, error,
				      sizeof(error)) < 0) {
		/* nothing may be decided under settings that did not
		   parse: the login is refused */
		shim_error("connection %s user=%s: Invalid setting, login "
			   "refused: %s", client->id, user->name, error);
		shim_client_reply(client, "-ERR [SYS/TEMP] Login refused: "
				  "server configuration error.");
		shim_client_resume(client);
		return;
	}
	memset(&params, 0, sizeof(params));
	params.config = &server->config;
	params.user = user;
	params.set = &set;
	params.session_id = client->id;
	params.remote_ip = client->ip;
	params.webhook = server->webhook;
	ret = shim_session_open(&params, &client->session, error,
				sizeof(error));
	/* EXPIRE after login: the user's own value, unless nothing is
	   enforced or it is switched off */
	client->expire[0] = '\0';
	if (ret > 0 && set.capa_expire && !settings_passive(&set)) {
		snprintf(client->expire, sizeof(client->expire), "%s",
			 shim_session_expire(client->session));
	}
	if (ret == 0) {
		shim_info("connection %s user=%s: maildrop in use",
			  client->id, user->name);
		shim_client_reply(client, "-ERR [IN-USE] The maildrop is in "
				  "use by another POP3 session.");
		shim_client_resume(client);
		return;
	}
	if (ret < 0) {
		shim_error("connection %s user=%s: Can't open the maildrop: %s",
			   client->id, user->name, error);
		shim_client_reply(client, "-ERR [SYS/TEMP] Can't open the "
				  "maildrop.");
		shim_client_resume(client);
		return;
	}
	client->state = SHIM_STATE_TRANSACTION;
	shim_info("session=%s user=%s login from %s%s: %u messages",
		  client->id, user->name, client->ip,
		  client->tls ? " (TLS)" : "",
		  shim_session_count(client->session));
	shim_client_reply(client, "+OK Logged in.");
	shim_client_touch(client);
	shim_client_resume(client);
}

static void verify_done(int result, const char *error, void *context)
{
	struct shim_client *client = context;

	client->crypt_job = NULL;
	if (result < 0) {
		shim_error("connection %s user=%s: password check failed: %s",
			   client->id, client->auth_user,
			   error != NULL ? error : "unknown error");
	}
	if (result == 1 && client->auth_known) {
		login_finish(client);
		return;
	}
	shim_info("connection %s from %s: login failed for user %s",
		  client->id, client->ip, client->auth_user);
	login_failed_reply(client);
}

/* Check user/password off the loop; the reply follows from
   verify_done(). */
static void login_start(struct shim_client *client, const char *user,
			const char *password)
{
	const struct shim_passwd_user *pw;

	snprintf(client->auth_user, sizeof(client->auth_user), "%s", user);
	pw = shim_passwd_lookup(client->server->passwd, user);
	client->auth_known = pw != NULL;
	client->busy = true;
	client->crypt_job = shim_crypt_pool_verify(
		client->server->crypt, pw != NULL ? pw->password :
		dummy_stored(), password, verify_done, client);
	if (client->crypt_job == NULL) {
		shim_warning("connection %s: password check queue full",
			     client->id);
		shim_client_reply(client, "-ERR [SYS/TEMP] Server busy, try "
				  "again later.");
		shim_client_resume(client);
	}
}

void shim_auth_abort(struct shim_client *client)
{
	if (client->crypt_job != NULL) {
		shim_crypt_job_cancel(client->crypt_job);
		client->crypt_job = NULL;
	}
}

static bool plaintext_refused(struct shim_client *client)
{
	if (shim_auth_plaintext_allowed(client))
		return false;
	shim_client_reply(client, "-ERR [AUTH] Plaintext authentication "
			  "disallowed on non-secure (SSL/TLS) connections.");
	return true;
}

/* RFC 5034 / RFC 4616: base64 of [authzid] NUL authcid NUL passwd. */
static void sasl_plain(struct shim_client *client, const char *b64)
{
	unsigned char decoded[SHIM_COMMAND_MAX];
	size_t len = strlen(b64), pad = 0, i;
	const char *authzid, *authcid, *passwd, *end;
	int n;

	if (strcmp(b64, "=") == 0)
		len = 0;
	for (i = 0; i < len; i++) {
		char c = b64[i];

		if (c == '=' && i + 2 >= len)
			pad++;
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '+' || c == '/') ||
			 pad > 0)
			break;
	}
	if (i != len || len % 4 != 0 || len / 4 * 3 > sizeof(decoded) ||
	    (n = len == 0 ? 0 :
	     EVP_DecodeBlock(decoded, (const unsigned char *)b64,
			     (int)len)) < 0) {
		shim_client_reply(client, "-ERR Invalid base64 data.");
		return;
	}
	n -= (int)pad;
	end = (const char *)decoded + n;
	authzid = (const char *)decoded;
	authcid = memchr(authzid, '\0', (size_t)(end - authzid));
	passwd = authcid == NULL ? NULL :
		memchr(authcid + 1, '\0', (size_t)(end - authcid - 1));
	if (authcid == NULL || passwd == NULL ||
	    memchr(passwd + 1, '\0', (size_t)(end - passwd - 1)) != NULL ||
	    authcid + 1 == passwd) {
		shim_client_reply(client, "-ERR Invalid AUTH PLAIN response.");
		OPENSSL_cleanse(decoded, sizeof(decoded));
		return;
	}
	authcid++;
	passwd++;
	/* NUL-terminate the password: it is the buffer's last field */
	if ((size_t)n >= sizeof(decoded)) {
		shim_client_reply(client, "-ERR Invalid AUTH PLAIN response.");
		OPENSSL_cleanse(decoded, sizeof(decoded));
		return;
	}
	decoded[n] = '\0';
	if (*authzid != '\0' && strcmp(authzid, authcid) != 0) {
		/* no master users here */
		shim_client_reply(client, "-ERR [AUTH] Authorization identity "
				  "not allowed.");
	} else {
		login_start(client, authcid, passwd);
	}
	OPENSSL_cleanse(decoded, sizeof(decoded));
}

void shim_auth_sasl_response(struct shim_client *client, const char *line)
{
	client->sasl_continue = false;
	if (strcmp(line, "*") == 0) {
		shim_client_reply(client, "-ERR Authentication cancelled.");
		return;
	}
	sasl_plain(client, line);
}

static void cmd_auth(struct shim_client *client, const char *args)
{
	const char *mech = args, *ir = strchr(args, ' ');
	char name[32];
	size_t len = ir == NULL ? strlen(mech) : (size_t)(ir - mech);

	if (len == 0) {
		/* the mechanisms, as Dovecot lists them */
		shim_client_reply(client, "+OK");
		if (shim_auth_plaintext_allowed(client))
			shim_client_reply(client, "PLAIN");
		shim_client_reply(client, ".");
		return;
	}
	if (len >= sizeof(name)) {
		shim_client_reply(client, "-ERR Unsupported authentication "
				  "mechanism.");
		return;
	}
	memcpy(name, mech, len);
	name[len] = '\0';
	if (strcasecmp(name, "PLAIN") != 0) {
		shim_client_reply(client, "-ERR Unsupported authentication "
				  "mechanism.");
		return;
	}
	if (plaintext_refused(client))
		return;
	if (ir == NULL) {
		client->sasl_continue = true;
		shim_client_reply(client, "+ ");
		return;
	}
	sasl_plain(client, ir + 1);
}

void shim_auth_command(struct shim_client *client, const char *name,
		       const char *args)
{
	if (strcasecmp(name, "CAPA") == 0) {
		shim_capa_reply(client);
	} else if (strcasecmp(name, "USER") == 0) {
		if (plaintext_refused(client))
			return;
		if (*args == '\0' || strlen(args) > SHIM_USER_MAX) {
			shim_client_reply(client, "-ERR Invalid user name.");
			return;
		}
		snprintf(client->user, sizeof(client->user), "%s", args);
		client->user_given = true;
		shim_client_reply(client, "+OK");
	} else if (strcasecmp(name, "PASS") == 0) {
		if (plaintext_refused(client))
			return;
		if (!client->user_given) {
			shim_client_reply(client, "-ERR No username given.");
			return;
		}
		client->user_given = false;
		login_start(client, client->user, args);
	} else if (strcasecmp(name, "AUTH") == 0) {
		cmd_auth(client, args);
	} else if (strcasecmp(name, "STLS") == 0) {
		if (client->server->ssl_ctx == NULL || client->tls) {
			shim_client_reply(client, "-ERR TLS is %s.",
					  client->tls ? "already active" :
					  "not available");
			return;
		}
		shim_client_reply(client, "+OK Begin TLS negotiation now.");
		client->user_given = false;
		if (shim_client_start_tls(client) < 0) {
			shim_error("connection %s: starting TLS failed",
				   client->id);
			shim_client_close_after_flush(client);
		}
	} else if (strcasecmp(name, "QUIT") == 0) {
		shim_client_reply(client, "+OK Logging out.");
		shim_client_close_after_flush(client);
	} else {
		shim_client_reply(client, "-ERR Unknown command: %s.",
				  strcasecmp(name, "APOP") == 0 ? "APOP" :
				  "not valid before login");
	}
}
