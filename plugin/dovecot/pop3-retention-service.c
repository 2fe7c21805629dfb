/* pop3-retention: the Dovecot service that receives webhook events from
   pop3 processes (their drop files) and doveadm (its unix socket),
   spools them durably under Dovecot's
   state_dir and delivers them with the core's delivery engine
   (webhook-delivery.h), all in Dovecot's ioloop.

   Why a service: the signing secret must never be readable by mail-user
   processes, delivery must survive the end of a POP3 session (a pop3
   process lives for one session), and one spool owner per host keeps
   connection reuse and back-off in one place.

   Process model: process_limit = 1 (the spool's flock() enforces a
   single owner anyway), process_min_avail = 1 so the master starts it
   with Dovecot (and again after a crash), which makes a restarted
   service resume its spool and the drop files at once.

   Start-up, in this order:
   1. as root: read the site-wide settings from the config service
      (Dovecot 2.4: the declared pop3_retention_* settings, looked up
      with the service's own event, so service pop3-retention {}
      filters apply; 2.3: plugin {}, module "mail", a parser root with
      only the "plugin" strlist, as the login plugin does); a bad value
      is fatal, naming the setting and the value: nothing runs under a
      config that did not parse;
   2. as root: create <state_dir>/pop3-retention (0700) owned by the
      service's user;
   3. drop privileges (the service block's user, by the master's
      RESTRICT_* environment) and become not dumpable (no core file,
      no ptrace by that user: the process holds the signing keys);
   4. as that user: open the spool as its owner, read the secret file
      (refused unless it is a regular file owned by this user with no
      group/other permission bits), start the engine.
   Whatever prevents delivery (no URL, no usable secret) never prevents
   spooling: events are acknowledged only once they are durable, and
   delivered later. While an older process (before a reload) still owns
   the spool this one stands by: it leaves the drop files to that one,
   refuses socket events (their producers keep them) and takes the
   spool over once the other is gone.

   One thread, one loop: Dovecot's ioloop accepts events, reads the
   drop files and drives the delivery engine through its fd and timer
   interest (dovecot-ioloop-curl.h). The process lowers its priority by
   pop3_retention_webhook_nice once at start-up, so that pop3 processes
   get the CPU first when it is saturated; events then wait in the
   durable spool.

   Line protocol: pop3-retention-protocol.h. Group commit: the events
   that the ioloop iterations of GROUP_COMMIT_INTERVAL_MSECS read, from
   the drop files and every connection, are appended to the spool and
   committed together with one fdatasync() by a timeout; only then are
   the A lines written and the drop files that are complete removed. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "strnum.h"
#include "str-sanitize.h"
#include "ipwd.h"
#include "time-util.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "connection.h"
#include "restrict-access.h"
#include "settings-parser.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-protocol.h"
#include "pop3-retention-drop.h"
#include "dovecot-ioloop-curl.h"

#include "retention-event.h"
#include "retention-settings.h"
#include "webhook-delivery.h"
#include "webhook-sign.h"
#include "webhook-spool.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A secret file holds one or two "whsec_" lines of at most ~180
   characters each; anything bigger is not a secret file. */
#define SECRET_FILE_MAX 4096
/* Acknowledgements buffered for a client that does not read them;
   beyond it its input is paused until they drain. */
#define CLIENT_OUTPUT_MAX (1024 * 1024)
/* At most one spool commit (one fdatasync()) per this many
   milliseconds: an event arriving after a quiet spell is committed at
   once, under load the events of the interval share one sync (every
   sync is a device round trip). */
#define GROUP_COMMIT_INTERVAL_MSECS 10
/* How often a standby service tries to take the spool over (meanwhile
   nobody reads the drop files, and pop3 processes that start a drop
   file use their outboxes instead). */
#define STANDBY_RETRY_MSECS 100
/* A client that sends nothing for this long is disconnected, so that
   idle connections cannot fill client_limit and lock doveadm out of
   queue and flush (doveadm sends its lines at once, and connects
   anew for every user it flushes). */
#define CLIENT_IDLE_TIMEOUT_MSECS (10 * 1000)
/* Lines handled per read of one client; the rest waits for the next
   ioloop iteration, after the other clients and the drop files. */
#define CLIENT_LINES_PER_INPUT_MAX 1000
/* An event's creation time (where its retry schedule starts) is
   clamped to [now - CREATED_PAST_MAX_MSECS, now]: producers run on
   this host, with this clock, so a later one is forged or broken, and
   would hold the event back (or overflow the due-time arithmetic); an
   outbox may hold events of days ago. */
#define CREATED_PAST_MAX_MSECS (30LL * 24 * 3600 * 1000)
/* See event_user_check(). */
#define USER_CACHE_SECS 60
/* See log_nudge(). */
#define LOG_NUDGE_MSECS 1000
#define LOG_NUDGE_COUNT 10

/* Why events are (not) being delivered; reported by the Q command. */
enum delivery_state {
	DELIVERY_RUNNING = 0,
	DELIVERY_NO_URL,
	DELIVERY_NO_SECRET,
	DELIVERY_FAILED,
	/* another process owns the spool: append only, take over later */
	DELIVERY_STANDBY,
};

static const char *const delivery_state_names[] = {
	[DELIVERY_RUNNING] = "delivering",
	[DELIVERY_NO_URL] = "no-url",
	[DELIVERY_NO_SECRET] = "no-secret",
	[DELIVERY_FAILED] = "failed",
	[DELIVERY_STANDBY] = "standby",
};

struct service_client {
	struct connection conn;
	struct timeout *to_idle;
	/* ids of the events appended since the last commit, and the
	   refused ones with their reasons, in arrival order */
	ARRAY(struct batch_reply) batch;
	pool_t batch_pool;
	unsigned int batch_appended;
	bool input_halted;
	/* in waiting_clients: answers wait for the group commit */
	bool waiting;
};

struct batch_reply {
	const char *id;
	/* NULL: appended, acknowledged once the commit succeeds */
	const char *refused;
};

#ifdef POP3_RETENTION_DOVECOT24
#include "settings.h"
#include "pop3-retention-setting-defs.h"
#else
/* plugin {} as a strlist, as in pop3-retention-login-plugin.c */
struct pop3_retention_service_settings {
	ARRAY(const char *) plugin_envs;
};

static const struct setting_define service_setting_defines[] = {
	{ .type = SET_STRLIST, .key = "plugin",
	  .offset = offsetof(struct pop3_retention_service_settings,
			     plugin_envs) },
	SETTING_DEFINE_LIST_END
};

static const struct pop3_retention_service_settings
service_default_settings = {
	.plugin_envs = ARRAY_INIT
};

static const struct setting_parser_info service_setting_parser_info = {
	.module_name = "pop3-retention-service",
	.defines = service_setting_defines,
	.defaults = &service_default_settings,

	.type_offset = SIZE_MAX,
	.struct_size = sizeof(struct pop3_retention_service_settings),

	.parent_offset = SIZE_MAX,
};
#endif


static struct event_category event_category_pop3_retention = {
	.name = "pop3-retention",
};

static struct event *service_event;
static struct webhook_settings service_set;
static char *spool_dir;
static uid_t service_uid;
static gid_t service_gid;

static char *drop_dir;
static struct drop_reader *drop;
/* events from drop files since the last commit */
static bool drop_appended;

static struct webhook_spool *spool;
static bool spool_owned;
static struct webhook_delivery *delivery;
static struct dovecot_ioloop_curl *delivery_loop;
static enum delivery_state delivery_state;
static struct timeout *to_standby;
static struct timeout *to_log_nudge;
static unsigned int log_nudges;

static struct connection_list *clients;
/* clients with answers waiting for the group commit */
static ARRAY(struct service_client *) waiting_clients;
/* events appended since the last commit, all clients together */
static unsigned int batch_appended_total;
static struct timeout *to_commit;
static struct timeval last_commit;

/* ---- settings ---- */

#ifdef POP3_RETENTION_DOVECOT24
static void service_settings_read(void)
{
	const struct pop3_retention_dovecot_settings *dset;
	struct event *event;
	const char *error;
	int ret;

	if (master_service_settings_read_simple(master_service, &error) < 0)
		i_fatal("Error reading configuration: %s", error);
	/* values set inside service pop3-retention {} apply here (as
	   login processes look theirs up) */
	event = event_create(master_service_get_event(master_service));
	settings_event_add_list_filter_name(event, "service",
		master_service_get_name(master_service));
	ret = settings_get(event, &pop3_retention_setting_parser_info, 0,
			   &dset, &error);
	event_unref(&event);
	if (ret < 0)
		i_fatal("Error reading configuration: %s", error);
	/* the delivery settings; the session ones (_events included) are
	   per user and belong to pop3 */
	if (pop3_retention_setting_defs_delivery(dset, &service_set,
						 &error) < 0)
		i_fatal("Invalid setting: %s", error);
	settings_free(dset);
}

static const struct master_service_settings *service_mset(void)
{
	return master_service_get_service_settings(master_service);
}
#else
static void service_settings_read(void)
{
	static const struct setting_parser_info *set_roots[] = {
		&service_setting_parser_info,
		NULL
	};
	struct master_service_settings_input input;
	struct master_service_settings_output output;
	const struct pop3_retention_service_settings *set;
	const struct retention_setting_define *def;
	const char *const *envs, *error;
	unsigned int i, count;

	i_zero(&input);
	input.roots = set_roots;
	/* the mail_user settings own plugin {} */
	input.module = "mail";
	/* protocol pop3 { plugin {} } does not apply: these settings are
	   site-wide */
	input.service = "pop3-retention";
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0)
		i_fatal("Error reading configuration: %s", error);

	webhook_settings_init(&service_set);
	set = master_service_settings_get_others(master_service)[0];
	if (!array_is_created(&set->plugin_envs))
		return;
	envs = array_get(&set->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		/* the delivery settings; the session ones (_events
		   included) are per user and belong to pop3 */
		def = retention_setting_find(envs[i]);
		if (def == NULL || def->scope != RETENTION_SCOPE_DELIVERY)
			continue;
		if (webhook_settings_set(&service_set, envs[i],
					 envs[i + 1]) < 0) {
			i_fatal("Invalid setting in plugin {}: %s",
				service_set.error);
		}
	}
}

static const struct master_service_settings *service_mset(void)
{
	return master_service_settings_get(master_service);
}
#endif

/* Create the spool directory as root, owned by the service's user, so
   that the service can own it after dropping privileges. */
static void service_spool_dir_prepare(void)
{
	const struct master_service_settings *mset = service_mset();
	struct restrict_access_settings rset;
	struct stat st;

	restrict_access_get_env(&rset);
	service_uid = rset.uid != (uid_t)-1 ? rset.uid : geteuid();
	service_gid = rset.gid != (gid_t)-1 ? rset.gid : getegid();

	spool_dir = i_strconcat(mset->state_dir, "/",
				POP3_RETENTION_SPOOL_DIR, NULL);
	if (mkdir(spool_dir, 0700) == 0) {
		if (chown(spool_dir, service_uid, service_gid) < 0)
			i_fatal("chown(%s) failed: %m", spool_dir);
	} else if (errno != EEXIST) {
		i_fatal("mkdir(%s) failed: %m (state_dir must exist)",
			spool_dir);
	}
	if (lstat(spool_dir, &st) < 0)
		i_fatal("lstat(%s) failed: %m", spool_dir);
	if (!S_ISDIR(st.st_mode))
		i_fatal("%s is not a directory", spool_dir);
	if (st.st_uid != service_uid) {
		i_fatal("The spool %s is owned by uid %s, but the service "
			"runs as uid %s: chown -R it to the service's user",
			spool_dir, dec2str(st.st_uid), dec2str(service_uid));
	}
	drop_dir = i_strconcat(mset->base_dir, "/", POP3_RETENTION_DROP_DIR,
			       NULL);
	drop_dir_prepare(drop_dir, t_strconcat(mset->base_dir, "/",
					       POP3_RETENTION_SOCKET_NAME,
					       NULL),
			 service_uid, service_gid);
}

/* ---- the secret ---- */

/* Read the signing secrets. Returns 0, or -1 after logging why (the
   path, never the content). */
static int service_secrets_load(const char *path,
				struct webhook_secrets *secrets_r)
{
	unsigned char buf[SECRET_FILE_MAX + 1];
	const char *error;
	struct stat st;
	ssize_t ret;
	size_t len = 0;
	int fd;

	i_zero(secrets_r);
	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		e_error(service_event, "open(%s) failed: %m "
			"(pop3_retention_webhook_secret_file)", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		e_error(service_event, "fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		e_error(service_event, "The webhook secret file %s is not a "
			"regular file", path);
		i_close_fd(&fd);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
		e_error(service_event, "The webhook secret file %s must be "
			"owned by uid %s and not accessible by group or others "
			"(it is uid %s, mode %04o): refusing to use it "
			"(chown it to the service's user, chmod 0600)", path,
			dec2str(geteuid()), dec2str(st.st_uid),
			(unsigned int)(st.st_mode & 07777));
		i_close_fd(&fd);
		return -1;
	}
	while (len < sizeof(buf)) {
		ret = read(fd, buf + len, sizeof(buf) - len);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			break;
		len += (size_t)ret;
	}
	if (ret < 0) {
		e_error(service_event, "read(%s) failed: %m", path);
		i_close_fd(&fd);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	i_close_fd(&fd);
	if (len > SECRET_FILE_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		e_error(service_event, "The webhook secret file %s is larger "
			"than %u bytes", path, SECRET_FILE_MAX);
		return -1;
	}
	ret = webhook_secrets_parse((const char *)buf, len, secrets_r, &error);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (ret < 0) {
		/* the parser's reasons never quote the secret */
		e_error(service_event, "The webhook secret file %s: %s", path,
			error);
		return -1;
	}
	return 0;
}

/* ---- the engine ---- */

static void service_log(void *context ATTR_UNUSED,
			enum webhook_log_level level, const char *line)
{
	switch (level) {
	case WEBHOOK_LOG_DEBUG:
		e_debug(service_event, "%s", line);
		break;
	case WEBHOOK_LOG_INFO:
		e_info(service_event, "%s", line);
		break;
	case WEBHOOK_LOG_WARNING:
		e_warning(service_event, "%s", line);
		break;
	case WEBHOOK_LOG_ERROR:
		e_error(service_event, "%s", line);
		break;
	}
}

/* One named event per attempt, for metrics. Logged at debug level: the
   engine has already logged every failure once, as a warning or an
   error. */
static void service_report(void *context ATTR_UNUSED,
			   const struct webhook_delivery_report *report)
{
	struct event_passthrough *e;
	const char *name, *what;

	switch (report->outcome) {
	case WEBHOOK_DELIVERY_DELIVERED:
		name = "pop3_retention_webhook_delivered";
		what = "delivered";
		break;
	case WEBHOOK_DELIVERY_DEAD_LETTERED:
		name = "pop3_retention_webhook_dead_lettered";
		what = "dead-lettered";
		break;
	case WEBHOOK_DELIVERY_FAILED:
	case WEBHOOK_DELIVERY_DISABLED:
	default:
		name = "pop3_retention_webhook_failed";
		what = "failed";
		break;
	}
	e = event_create_passthrough(service_event)->
		set_name(name)->
		add_str("id", report->webhook_id)->
		add_int("attempt", report->attempt)->
		add_int("status", report->http_status)->
		add_int("duration_ms", report->duration_ms);
	if (report->error != NULL)
		e->add_str("error", report->error);
	if (report->outcome == WEBHOOK_DELIVERY_FAILED)
		e->add_int("retry_in_ms", report->retry_in_ms);
	e_debug(e->event(), "webhook %s %s: attempt %u, HTTP %ld, %lld ms%s%s",
		report->webhook_id, what, report->attempt,
		report->http_status, (long long)report->duration_ms,
		report->error != NULL ? ": " : "",
		report->error != NULL ? report->error : "");
}

static void spool_log(void *context ATTR_UNUSED, enum webhook_log_level level,
		      const char *message)
{
	service_log(NULL, level, t_strconcat("spool: ", message, NULL));
}

static void service_delivery_start(void)
{
	struct webhook_delivery_config config;
	struct webhook_secrets secrets;

	if (service_set.url[0] == '\0') {
		e_warning(service_event, "pop3_retention_webhook_url is not "
			  "set: events are accepted and kept in the spool %s, "
			  "nothing is delivered", spool_dir);
		delivery_state = DELIVERY_NO_URL;
		return;
	}
	if (service_set.secret_file[0] == '\0') {
		e_error(service_event, "pop3_retention_webhook_secret_file is "
			"not set: refusing to send unsigned webhooks; events "
			"are kept in the spool %s", spool_dir);
		delivery_state = DELIVERY_NO_SECRET;
		return;
	}
	if (service_secrets_load(service_set.secret_file,
				 &secrets) < 0) {
		e_error(service_event, "Webhooks are not delivered until the "
			"secret file is fixed and the service restarted; "
			"events are kept in the spool %s", spool_dir);
		delivery_state = DELIVERY_NO_SECRET;
		return;
	}

	if (service_set.ca_file[0] != '\0' &&
	    access(service_set.ca_file, R_OK) < 0) {
		e_error(service_event, "access(%s) failed: %m "
			"(pop3_retention_webhook_ca_file): webhooks are not "
			"delivered until it is fixed and the service "
			"restarted; events are kept in the spool %s",
			service_set.ca_file, spool_dir);
		webhook_secrets_clear(&secrets);
		delivery_state = DELIVERY_FAILED;
		return;
	}

	i_zero(&config);
	config.set = &service_set;
	config.secrets = &secrets;
	config.spool = spool;
	config.log = service_log;
	config.report = service_report;
	config.turn_end = TRUE;
	delivery_loop = dovecot_ioloop_curl_init(&config.loop);
	delivery = webhook_delivery_create(&config);
	/* the engine has its copy */
	webhook_secrets_clear(&secrets);
	if (delivery == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "webhook_delivery_create(): "
			       "out of memory");
	dovecot_ioloop_curl_set_engine(delivery_loop, delivery);
	if (webhook_delivery_start(delivery) < 0) {
		e_error(service_event, "Webhook delivery not started: %s; "
			"events are kept in the spool %s",
			webhook_delivery_error(delivery), spool_dir);
		webhook_delivery_destroy(&delivery);
		dovecot_ioloop_curl_deinit(&delivery_loop);
		delivery_state = DELIVERY_FAILED;
		return;
	}
	delivery_state = DELIVERY_RUNNING;
}

/* ---- the spool ---- */

/* Is the spool's lock held by another process? */
static bool spool_lock_busy(void)
{
	const char *path = t_strconcat(spool_dir, "/lock", NULL);
	bool busy;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return FALSE;
	busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	i_close_fd(&fd);
	return busy;
}

static void spool_log_counts(void)
{
	struct webhook_spool_counts counts;

	webhook_spool_counts(spool, &counts);
	e_info(service_event, "Spool %s: %u pending (%u retrying), %u "
	       "dead-lettered, %u corrupt", spool_dir, counts.pending,
	       counts.retrying, counts.dead, counts.corrupt);
}

/* Open the spool as its owner. Returns 1, 0 if another process owns it,
   -1 on error (logged). */
static int spool_open_owner(struct webhook_spool **spool_r)
{
	struct webhook_spool *s;

	s = webhook_spool_create(spool_dir, 0);
	if (s == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "spool: out of memory");
	webhook_spool_set_log(s, spool_log, NULL);
	if (webhook_spool_open(s) == 0) {
		*spool_r = s;
		return 1;
	}
	if (spool_lock_busy()) {
		webhook_spool_destroy(&s);
		return 0;
	}
	e_error(service_event, "Opening the spool failed: %s",
		webhook_spool_error(s));
	webhook_spool_destroy(&s);
	return -1;
}

static void batch_commit_all(void);
static void service_drop_start(void);

static void standby_retry(void *context ATTR_UNUSED)
{
	struct webhook_spool *owner;
	int ret;

	ret = spool_open_owner(&owner);
	if (ret == 0)
		return;
	if (ret < 0)
		i_fatal("Cannot take over the spool %s", spool_dir);
	timeout_remove(&to_standby);
	spool = owner;
	spool_owned = TRUE;
	e_info(service_event, "Took over the spool %s", spool_dir);
	spool_log_counts();
	service_delivery_start();
	service_drop_start();
}

static void service_spool_open(void)
{
	int ret;

	ret = spool_open_owner(&spool);
	if (ret < 0)
		i_fatal("Cannot use the spool %s", spool_dir);
	if (ret > 0) {
		spool_owned = TRUE;
		spool_log_counts();
		return;
	}
	/* An older service process (e.g. before a reload) still serves
	   its clients and reads the drop files: take over once it is
	   gone. Meanwhile socket producers keep their events (they are
	   refused) and pop3 processes hand theirs to the old one. */
	e_warning(service_event, "The spool %s is in use by another process:"
		  " standing by (it is taken over once that one exits)",
		  spool_dir);
	delivery_state = DELIVERY_STANDBY;
	to_standby = timeout_add_short(STANDBY_RETRY_MSECS, standby_retry,
				       NULL);
}

/* ---- clients ---- */

static void client_destroy(struct connection *conn);

static bool webhook_id_is_valid(const char *id)
{
	size_t i, len = strlen(id);

	if (len == 0 || len >= WEBHOOK_SPOOL_ID_MAX)
		return FALSE;
	for (i = 0; i < len; i++) {
		if (!i_isalnum(id[i]) && id[i] != '_' && id[i] != '-')
			return FALSE;
	}
	return TRUE;
}

static void client_batch_add(struct service_client *client, const char *id,
			     const char *refused)
{
	struct batch_reply *reply = array_append_space(&client->batch);

	reply->id = p_strdup(client->batch_pool, id);
	reply->refused = p_strdup(client->batch_pool, refused);
}

/* Answer every event of the client's batch: A if the commit that
   covered it succeeded, R with the reason otherwise. */
static void client_batch_answer(struct service_client *client,
				const char *commit_error)
{
	struct batch_reply *reply;
	string_t *str;

	str = t_str_new(128);
	array_foreach_modifiable(&client->batch, reply) {
		if (reply->refused == NULL && commit_error == NULL)
			str_printfa(str, "A\t%s\n", reply->id);
		else {
			str_printfa(str, "R\t%s\t", reply->id);
			str_append_tabescaped(str, reply->refused != NULL ?
					      reply->refused : commit_error);
			str_append_c(str, '\n');
		}
	}
	o_stream_nsend(client->conn.output, str_data(str), str_len(str));
	array_clear(&client->batch);
	p_clear(client->batch_pool);
	client->batch_appended = 0;
}

/* The group commit: one spool commit for everything every client
   appended since the last one, then the answers. */
static void batch_commit_all(void)
{
	struct service_client *const *clientp;
	const char *commit_error = NULL;

	timeout_remove(&to_commit);
	if (batch_appended_total > 0)
		i_gettimeofday(&last_commit);
	if (batch_appended_total > 0 && webhook_spool_commit(spool) < 0) {
		commit_error = t_strdup_printf("spool commit failed: %s",
					       webhook_spool_error(spool));
		e_error(service_event, "%s: %u events refused", commit_error,
			batch_appended_total);
	}
	array_foreach(&waiting_clients, clientp) {
		struct service_client *client = *clientp;

		o_stream_cork(client->conn.output);
		client_batch_answer(client, commit_error);
		o_stream_uncork(client->conn.output);
		client->waiting = FALSE;
	}
	array_clear(&waiting_clients);
	if (batch_appended_total > 0 && commit_error == NULL &&
	    delivery != NULL)
		dovecot_ioloop_curl_kick(delivery_loop);
	batch_appended_total = 0;
	if (drop_appended) {
		drop_appended = FALSE;
		/* failed: the drop files still have them */
		drop_reader_committed(drop, commit_error == NULL);
	}
}

static void batch_commit_timeout(void *context ATTR_UNUSED)
{
	T_BEGIN {
		batch_commit_all();
	} T_END;
}

/* The next group commit: at the end of this ioloop iteration, or once
   the commit interval has passed since the last one. */
static void commit_schedule(void)
{
	long long since;
	unsigned int delay = 0, interval;

	if (to_commit != NULL)
		return;
	/* negative: a commit ran after this iteration's time was taken */
	since = timeval_diff_msecs(&ioloop_timeval, &last_commit);
	if (since < 0)
		since = 0;
	interval = GROUP_COMMIT_INTERVAL_MSECS;
	if (since < interval)
		delay = interval - (unsigned int)since;
	to_commit = timeout_add_short(delay, batch_commit_timeout, NULL);
}

/* The client has answers to give: they go out with the next group
   commit. */
static void client_batch_wait(struct service_client *client)
{
	if (array_count(&client->batch) == 0 || client->waiting)
		return;
	client->waiting = TRUE;
	array_push_back(&waiting_clients, &client);
	commit_schedule();
}

/* May a drop file owned by owner_uid hold events of user? Where mail
   users have their own uids, only their own: a user who is a system
   user with another uid is refused (0 with *error_r). Where they share
   one uid (vmail), their names are not system users, and the group is
   trusted like the mail store. root may write anyone's. Returns 1 if
   allowed, -1 if the user could not be looked up (retried later). The
   last answer is kept for USER_CACHE_SECS: a drop file is a session's,
   of one user. */
static int event_user_check(const char *user, uid_t owner_uid,
			    const char **error_r)
{
	static char *cached_user = NULL;
	static uid_t cached_uid;
	static bool cached_found;
	static time_t cached_at;
	struct passwd pw;
	int ret;

	if (owner_uid == 0)
		return 1;
	if (cached_user == NULL || strcmp(cached_user, user) != 0 ||
	    ioloop_time - cached_at >= USER_CACHE_SECS ||
	    ioloop_time < cached_at) {
		ret = i_getpwnam(user, &pw);
		if (ret < 0) {
			*error_r = t_strdup_printf("getpwnam(%s) failed: %m",
						   str_sanitize(user, 64));
			e_error(service_event, "%s", *error_r);
			return -1;
		}
		i_free(cached_user);
		cached_user = i_strdup(user);
		cached_found = ret > 0;
		cached_uid = ret > 0 ? pw.pw_uid : (uid_t)-1;
		cached_at = ioloop_time;
	}
	if (!cached_found || cached_uid == owner_uid)
		return 1;
	*error_r = t_strdup_printf("the file is owned by uid %s, not by %s "
				   "(uid %s)", dec2str(owner_uid),
				   str_sanitize(user, 64),
				   dec2str(cached_uid));
	return 0;
}

/* Append one event to the spool's batch: 1 (also when the spool holds
   its webhook-id already: it is skipped, and covered by the commit
   that covers the one held), or 0 if it is refused (*error_r), or -1 if
   the spool failed (*error_r, logged). The caller commits before
   WEBHOOK_SPOOL_BATCH_MAX. */
static int service_event_append(const char *created_str,
				const char *raw_fields, uid_t owner_uid,
				const char **error_r)
{
	char id[RETENTION_EVENT_ID_SIZE];
	struct retention_event event;
	int64_t created_ms, now_ms;
	size_t body_len;
	char *json;
	int ret;

	if (spool == NULL) {
		*error_r = "the service is standing by (another process owns "
			"the spool)";
		return 0;
	}
	if (str_to_int64(created_str, &created_ms) < 0 || created_ms < 0) {
		*error_r = "invalid creation time";
		return 0;
	}
	now_ms = (int64_t)ioloop_timeval.tv_sec * 1000 +
		ioloop_timeval.tv_usec / 1000;
	if (created_ms > now_ms)
		created_ms = now_ms;
	else if (created_ms < now_ms - CREATED_PAST_MAX_MSECS)
		created_ms = now_ms - CREATED_PAST_MAX_MSECS;
	/* decoded in a copy: the record keeps the fields as they came */
	if (retention_event_decode(t_strdup_noconst(raw_fields), &event,
				   error_r) < 0) {
		*error_r = t_strdup_printf("invalid event: %s", *error_r);
		return 0;
	}
	if (owner_uid != (uid_t)-1) {
		ret = event_user_check(event.user, owner_uid, error_r);
		if (ret <= 0)
			return ret;
	}
	retention_event_id(&event, id);
	json = retention_event_to_json(&event);
	if (json == NULL) {
		*error_r = "out of memory";
		return 0;
	}
	body_len = strlen(json);
	if (body_len > WEBHOOK_SPOOL_BODY_MAX) {
		*error_r = t_strdup_printf(
			"body of %zu bytes (at most %u allowed)", body_len,
			(unsigned int)WEBHOOK_SPOOL_BODY_MAX);
		free(json);
		return 0;
	}
	ret = webhook_spool_append(spool, id, json, body_len, created_ms);
	free(json);
	if (ret < 0) {
		*error_r = t_strdup(webhook_spool_error(spool));
		e_error(service_event, "Event %s refused: %s", id, *error_r);
		return -1;
	}
	if (ret == 0)
		batch_appended_total++;
	else
		e_debug(service_event, "Event %s: held already, skipped", id);
	return 1;
}

/* "E <seq> <created_ms> <event fields>": the webhook-id and the JSON
   body are built here, so that producers need no JSON or crypto
   library. Returns -1 for garbage (the client is
   disconnected). */
static int client_cmd_event(struct service_client *client, const char *args)
{
	const char *p, *seq, *created_str, *raw_fields, *error;

	p = strchr(args, '\t');
	if (p == NULL) {
		e_error(client->conn.event, "Malformed E line");
		return -1;
	}
	seq = t_strdup_until(args, p);
	created_str = p + 1;
	p = strchr(created_str, '\t');
	if (!webhook_id_is_valid(seq) || p == NULL) {
		e_error(client->conn.event, "Malformed E line (invalid "
			"sequence number or missing fields)");
		return -1;
	}
	created_str = t_strdup_until(created_str, p);
	raw_fields = p + 1;

	/* commit before the spool's own batch limit, so that an
	   automatic commit can never take events we have not answered */
	if (batch_appended_total >= WEBHOOK_SPOOL_BATCH_MAX) {
		client_batch_wait(client);
		batch_commit_all();
	}
	if (service_event_append(created_str, raw_fields, (uid_t)-1,
				 &error) > 0) {
		client->batch_appended++;
		client_batch_add(client, seq, NULL);
	} else
		client_batch_add(client, seq, error);
	return 0;
}

/* ---- drop files ---- */

static int drop_event(const char *line, uid_t owner_uid,
		      const char **reason_r, void *context ATTR_UNUSED)
{
	const char *p = strchr(line, '\t');
	int ret;

	if (p == NULL) {
		*reason_r = "no event fields";
		return 0;
	}
	if (batch_appended_total >= WEBHOOK_SPOOL_BATCH_MAX) {
		batch_commit_all();
		if (drop_reader_blocked(drop)) {
			/* the commit failed: the files are read again from
			   what was committed, this line included */
			*reason_r = "the spool commit failed";
			return -1;
		}
	}
	ret = service_event_append(t_strdup_until(line, p), p + 1, owner_uid,
				   reason_r);
	if (ret > 0)
		drop_appended = TRUE;
	return ret;
}

static void drop_appended_cb(void *context ATTR_UNUSED)
{
	if (drop_appended)
		commit_schedule();
}

static const struct drop_reader_callbacks drop_callbacks = {
	.event = drop_event,
	.appended = drop_appended_cb,
};

/* Only the spool's owner reads the drop files. */
static void service_drop_start(void)
{
	drop = drop_reader_init(drop_dir,
				t_strconcat(spool_dir, "/drop-rejected", NULL),
				service_event, &drop_callbacks, NULL);
}

static void client_cmd_queue(struct service_client *client)
{
	struct webhook_spool_counts counts;
	struct webhook_delivery_stats stats;
	struct webhook_spool *ro = NULL;
	int64_t oldest = -1, now_ms;
	string_t *str;

	i_zero(&stats);
	if (spool_owned)
		webhook_spool_counts(spool, &counts);
	else {
		/* standby: the owner's view, from the disk */
		ro = webhook_spool_create(spool_dir, WEBHOOK_SPOOL_READ_ONLY);
		if (ro == NULL || webhook_spool_open(ro) < 0)
			i_zero(&counts);
		else
			webhook_spool_counts(ro, &counts);
		webhook_spool_destroy(&ro);
	}
	if (delivery != NULL)
		webhook_delivery_get_stats(delivery, &stats);
	if (counts.pending > 0 && counts.oldest_created_ms >= 0) {
		now_ms = (int64_t)ioloop_timeval.tv_sec * 1000 +
			ioloop_timeval.tv_usec / 1000;
		oldest = now_ms > counts.oldest_created_ms ?
			(now_ms - counts.oldest_created_ms) / 1000 : 0;
	}
	str = t_str_new(128);
	str_printfa(str, "Q\t%u\t%u\t%u\t%u\t%lld\t%d\t%llu\t%llu\t%llu"
		    "\t%u\t%s\n", counts.pending, counts.retrying, counts.dead,
		    counts.corrupt, (long long)oldest, stats.disabled ? 1 : 0,
		    (unsigned long long)stats.delivered,
		    (unsigned long long)stats.failed,
		    (unsigned long long)stats.dead_lettered, stats.in_flight,
		    delivery_state_names[delivery_state]);
	o_stream_nsend(client->conn.output, str_data(str), str_len(str));
}

static int client_handshake(struct service_client *client, const char *line)
{
	const char *const *args = t_strsplit_tabescaped(line);
	unsigned int major, minor;

	if (str_array_length(args) < 4 || strcmp(args[0], "VERSION") != 0 ||
	    str_to_uint(args[2], &major) < 0 ||
	    str_to_uint(args[3], &minor) < 0) {
		e_error(client->conn.event, "Handshake expected, got garbage");
		return -1;
	}
	return connection_verify_version(&client->conn, args[1], major,
					 minor);
}

/* One line. Returns -1 to disconnect the client. */
static int client_line(struct service_client *client, const char *line)
{
	if (!client->conn.version_received)
		return client_handshake(client, line);
	if (line[0] == 'E' && line[1] == '\t')
		return client_cmd_event(client, line + 2);
	if (strcmp(line, "Q") == 0) {
		/* answers stay in order: acknowledge what came before */
		client_batch_wait(client);
		batch_commit_all();
		client_cmd_queue(client);
		return 0;
	}
	e_error(client->conn.event, "Unknown command: %s",
		str_sanitize(line, 64));
	return -1;
}

static int client_output(struct service_client *client)
{
	int ret;

	ret = o_stream_flush(client->conn.output);
	if (client->input_halted &&
	    o_stream_get_buffer_used_size(client->conn.output) <
	    CLIENT_OUTPUT_MAX / 2) {
		client->input_halted = FALSE;
		connection_input_resume(&client->conn);
	}
	return ret;
}

static void client_input(struct connection *conn)
{
	struct service_client *client =
		container_of(conn, struct service_client, conn);
	const unsigned char *data, *nl;
	size_t size, pos = 0, len;
	unsigned int lines = 0;
	bool failed = FALSE;
	int ret;

	timeout_reset(client->to_idle);
	ret = connection_input_read(conn);
	if (ret == -1)
		return; /* destroyed */
	if (ret == -2) {
		e_error(conn->event, "Line longer than %u bytes: "
			"disconnecting", POP3_RETENTION_PROTOCOL_LINE_MAX);
		client_destroy(conn);
		return;
	}
	data = i_stream_get_data(conn->input, &size);
	o_stream_cork(conn->output);
	T_BEGIN {
		while (lines < CLIENT_LINES_PER_INPUT_MAX &&
		       (nl = memchr(data + pos, '\n', size - pos)) != NULL) {
			lines++;
			len = (size_t)(nl - (data + pos));
			if (memchr(data + pos, '\0', len) != NULL) {
				e_error(conn->event, "NUL byte in a line: "
					"disconnecting");
				failed = TRUE;
				break;
			}
			if (client_line(client, t_strndup(data + pos,
							  len)) < 0) {
				failed = TRUE;
				break;
			}
			pos += len + 1;
		}
	} T_END;
	if (failed) {
		/* what was appended before garbage is still answered */
		T_BEGIN {
			client_batch_wait(client);
			batch_commit_all();
		} T_END;
	} else
		client_batch_wait(client);
	i_stream_skip(conn->input, pos);
	if (lines == CLIENT_LINES_PER_INPUT_MAX && !failed) {
		/* the rest in the next iteration, after the others */
		i_stream_set_input_pending(conn->input, TRUE);
	}
	o_stream_uncork(conn->output);
	if (failed) {
		(void)o_stream_flush(conn->output);
		client_destroy(conn);
		return;
	}
	if (o_stream_get_buffer_used_size(conn->output) > CLIENT_OUTPUT_MAX &&
	    !client->input_halted) {
		/* the client does not read its acknowledgements */
		client->input_halted = TRUE;
		connection_input_halt(conn);
	}
}

static void client_destroy(struct connection *conn)
{
	struct service_client *client =
		container_of(conn, struct service_client, conn);
	struct service_client *const *clientp;

	if (client->waiting) {
		/* its events stay appended and are committed with the
		   others; it just gets no answer */
		array_foreach(&waiting_clients, clientp) {
			if (*clientp == client) {
				array_delete(&waiting_clients,
					     array_foreach_idx(&waiting_clients,
							       clientp), 1);
				break;
			}
		}
	}
	timeout_remove(&client->to_idle);
	connection_deinit(conn);
	array_free(&client->batch);
	pool_unref(&client->batch_pool);
	i_free(client);
	master_service_client_connection_destroyed(master_service);
}

static void client_idle_timeout(struct service_client *client)
{
	e_debug(client->conn.event, "Idle for %u s: disconnecting",
		CLIENT_IDLE_TIMEOUT_MSECS / 1000);
	client_destroy(&client->conn);
}

static const struct connection_vfuncs client_vfuncs = {
	.destroy = client_destroy,
	.input = client_input,
};

static const struct connection_settings client_set = {
	.service_name_in = POP3_RETENTION_PROTOCOL_NAME,
	.service_name_out = POP3_RETENTION_PROTOCOL_NAME,
	.major_version = POP3_RETENTION_PROTOCOL_MAJOR,
	.minor_version = POP3_RETENTION_PROTOCOL_MINOR,
	/* the longest line and its LF */
	.input_max_size = POP3_RETENTION_PROTOCOL_LINE_MAX + 1,
	/* bounded by pausing the input, see client_input() */
	.output_max_size = SIZE_MAX,
	.input_full_behavior = CONNECTION_BEHAVIOR_ALLOW,
};

static void client_connected(struct master_service_connection *mconn)
{
	struct service_client *client;

	master_service_client_connection_accept(mconn);
	client = i_new(struct service_client, 1);
	client->batch_pool = pool_alloconly_create("pop3-retention batch",
						   1024);
	i_array_init(&client->batch, 16);
	client->conn.event_parent = service_event;
	connection_init_server(clients, &client->conn, mconn->name,
			       mconn->fd, mconn->fd);
	o_stream_set_flush_callback(client->conn.output, client_output,
				    client);
	client->to_idle = timeout_add(CLIENT_IDLE_TIMEOUT_MSECS,
				      client_idle_timeout, client);
}

/* ---- main ---- */

/* Dovecot 2.3's log process reads a service's log pipe for the first
   time together with the master's handshake, and lines that came in the
   same read stay in its buffer until the next write to the pipe. With
   process_min_avail = 1 this service starts before the log process, so
   its start-up lines (or a refused secret file) would show up only with
   the next log line. An option line (no output) written a little later
   flushes them. */
static void log_nudge(void *context ATTR_UNUSED)
{
	i_set_failure_send_prefix(i_get_failure_prefix());
	if (++log_nudges >= LOG_NUDGE_COUNT)
		timeout_remove(&to_log_nudge);
}

/* Asked by the master when it has more processes than it needs: stay
   while events wait for a retry, or the timer would stop with us. */
static bool service_idle_die(void)
{
	struct webhook_spool_counts counts;

	if (spool == NULL || !spool_owned)
		return to_standby == NULL;
	webhook_spool_counts(spool, &counts);
	return counts.pending == 0 || delivery == NULL;
}

/* Once, for the whole process: when the CPUs are saturated, pop3
   processes go first and events wait in the spool. */
static void service_nice(void)
{
	int prio;

	if (service_set.nice == 0)
		return;
	errno = 0;
	prio = getpriority(PRIO_PROCESS, 0);
	if (errno != 0) {
		e_warning(service_event, "getpriority() failed: %m");
		return;
	}
	prio += (int)service_set.nice;
	if (prio > 19)
		prio = 19;
	if (setpriority(PRIO_PROCESS, 0, prio) < 0) {
		e_warning(service_event, "setpriority(%d) failed: %m "
			  "(pop3_retention_webhook_nice)", prio);
	}
}

static void main_init(void)
{
	service_event = event_create(NULL);
	event_add_category(service_event, &event_category_pop3_retention);
	service_nice();
	i_array_init(&waiting_clients, 64);
	clients = connection_list_init(&client_set, &client_vfuncs);
	service_spool_open();
	if (spool_owned) {
		service_delivery_start();
		service_drop_start();
	}
	to_log_nudge = timeout_add(LOG_NUDGE_MSECS, log_nudge, NULL);
}

static void main_deinit(void)
{
	/* producers see EOF and keep what they did not get an A for */
	connection_list_deinit(&clients);
	/* what it read and did not commit is read again at the next start */
	drop_reader_deinit(&drop);
	drop_appended = FALSE;
	timeout_remove(&to_standby);
	timeout_remove(&to_log_nudge);
	/* in-flight events go back to the spool unchanged */
	webhook_delivery_destroy(&delivery);
	dovecot_ioloop_curl_deinit(&delivery_loop);
	timeout_remove(&to_commit);
	array_free(&waiting_clients);
	webhook_spool_destroy(&spool);
	event_unref(&service_event);
	i_free(spool_dir);
	i_free(drop_dir);
}

int main(int argc, char *argv[])
{
	master_service = master_service_init("pop3-retention", 0,
					     &argc, &argv, "");
	if (master_getopt(master_service) > 0)
		return FATAL_DEFAULT;
	service_settings_read();
	master_service_init_log(master_service);
	master_service_set_idle_die_callback(master_service,
					     service_idle_die);

	service_spool_dir_prepare();
	restrict_access_by_env(RESTRICT_ACCESS_FLAG_ALLOW_ROOT, NULL);
	/* the process holds the signing keys' HMAC states: no core file,
	   no ptrace or /proc/PID/mem by its own user, whatever the
	   master's core dump setting; before the secret file is read */
	restrict_access_set_dumpable(FALSE);
	if (restrict_access_get_dumpable())
		i_fatal("prctl(PR_SET_DUMPABLE, 0) failed: %m");

	main_init();
	master_service_init_finish(master_service);
	master_service_run(master_service, client_connected);
	main_deinit();
	master_service_deinit(&master_service);
	return 0;
}
