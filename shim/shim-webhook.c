/* pop3-retentiond's webhooks (see the header). */

#include "shim-webhook.h"
#include "shim-config.h"
#include "shim-log.h"

#include "retention-event.h"
#include "retention-event-codec.h"
#include "webhook-delivery.h"
#include "webhook-sign.h"
#include "webhook-spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <event2/event.h>

/* the secret file: one or two whsec_ lines */
#define SECRET_FILE_MAX 4096
/* incoming files imported per round (the rest wait for the next) */
#define IMPORT_MAX 1024
#define INCOMING_LINE_MAX (RETENTION_EVENT_ENCODED_MAX + 32)

struct watched_fd {
	struct watched_fd *next;
	struct shim_webhook *webhook;
	int fd;
	unsigned int events;
	struct event *ev;
};

struct shim_webhook {
	struct event_base *base;
	char spool_dir[SHIM_PATH_MAX];
	char incoming_dir[SHIM_PATH_MAX];
	struct webhook_spool *spool;	/* NULL: a producer */
	struct webhook_delivery *delivery;
	struct watched_fd *fds;
	/* no longer watched; freed from the next callback, never from
	   inside the callback of their own event */
	struct watched_fd *graveyard;
	struct event *timer, *import_timer;
	unsigned long long produced;
};

/* dir/name into buf; false when it does not fit */
static bool path_join(char *buf, size_t size, const char *dir,
		      const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n >= 0 && (size_t)n < size;
}

/* ---- the engine in the libevent loop ---- */

static void graveyard_empty(struct shim_webhook *wh)
{
	struct watched_fd *w;

	while ((w = wh->graveyard) != NULL) {
		wh->graveyard = w->next;
		event_free(w->ev);
		free(w);
	}
}

static void fd_cb(evutil_socket_t fd, short what, void *context)
{
	struct watched_fd *w = context;
	unsigned int events = 0;

	if ((what & EV_READ) != 0)
		events |= WEBHOOK_IO_READ;
	if ((what & EV_WRITE) != 0)
		events |= WEBHOOK_IO_WRITE;
	graveyard_empty(w->webhook);
	webhook_delivery_fd_ready(w->webhook->delivery, (int)fd, events);
}

static int loop_fd_watch(void *context, int fd, unsigned int events)
{
	struct shim_webhook *wh = context;
	struct watched_fd **wp, *w;
	short what = EV_PERSIST;

	for (wp = &wh->fds; *wp != NULL; wp = &(*wp)->next) {
		/* cppcheck-suppress nullPointerRedundantCheck ; wp is not w */
		if ((*wp)->fd == fd)
			break;
	}
	w = *wp;
	if (w != NULL && w->events == events)
		return 0;
	if (w != NULL) {
		*wp = w->next;
		(void)event_del(w->ev);
		w->next = wh->graveyard;
		wh->graveyard = w;
	}
	if (events == 0)
		return 0;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	if ((events & WEBHOOK_IO_READ) != 0)
		what |= EV_READ;
	if ((events & WEBHOOK_IO_WRITE) != 0)
		what |= EV_WRITE;
	w->webhook = wh;
	w->fd = fd;
	w->events = events;
	w->ev = event_new(wh->base, fd, what, fd_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) < 0) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return -1;
	}
	w->next = wh->fds;
	wh->fds = w;
	return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *context)
{
	struct shim_webhook *wh = context;

	(void)fd;
	(void)what;
	graveyard_empty(wh);
	webhook_delivery_timer_expired(wh->delivery);
}

static int loop_timer_set(void *context, long msecs)
{
	struct shim_webhook *wh = context;
	struct timeval tv;

	if (msecs < 0)
		return evtimer_del(wh->timer);
	tv.tv_sec = msecs / 1000;
	tv.tv_usec = (msecs % 1000) * 1000;
	return evtimer_add(wh->timer, &tv);
}

static void engine_log(void *context, enum webhook_log_level level,
		       const char *line)
{
	(void)context;
	switch (level) {
	case WEBHOOK_LOG_DEBUG:
		shim_debug("webhook: %s", line);
		break;
	case WEBHOOK_LOG_INFO:
		shim_info("webhook: %s", line);
		break;
	case WEBHOOK_LOG_WARNING:
		shim_warning("webhook: %s", line);
		break;
	case WEBHOOK_LOG_ERROR:
		shim_error("webhook: %s", line);
		break;
	}
}

/* ---- the secret ---- */

/* Same rules as the Dovecot service: a regular file of the server's
   user, no group or other access, wiped after parsing. */
static int secrets_load(const char *path, struct webhook_secrets *secrets_r)
{
	unsigned char buf[SECRET_FILE_MAX + 1];
	const char *error;
	struct stat st;
	size_t len = 0;
	ssize_t n = 0;
	int fd, ret;

	memset(secrets_r, 0, sizeof(*secrets_r));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		shim_error("open(%s) failed: %s (pop3_retention_webhook_secret_"
			   "file)", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
		shim_error("The webhook secret file %s must be a regular file "
			   "owned by uid %u with no group or other access "
			   "(chmod 0600): refusing to use it", path,
			   (unsigned int)geteuid());
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) &&
	       (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len > SECRET_FILE_MAX) {
		shim_error("The webhook secret file %s: %s", path,
			   n < 0 ? strerror(errno) : "too large");
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	ret = webhook_secrets_parse((const char *)buf, len, secrets_r, &error);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (ret < 0) {
		shim_error("The webhook secret file %s: %s", path, error);
		return -1;
	}
	return 0;
}

/* ---- events into the spool ---- */

static int spool_add(struct shim_webhook *wh,
		     const struct retention_event *event, int64_t created_ms)
{
	char id[RETENTION_EVENT_ID_SIZE];
	char *json;
	int ret;

	retention_event_id(event, id);
	json = retention_event_to_json(event);
	if (json == NULL) {
		shim_error("webhook: event %s: out of memory", id);
		return -1;
	}
	ret = webhook_spool_append(wh->spool, id, json, strlen(json),
				   created_ms);
	free(json);
	if (ret < 0) {
		shim_error("webhook: event %s refused by the spool: %s", id,
			   webhook_spool_error(wh->spool));
		return -1;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A producer: "<created_ms>\t<event fields>\n" in incoming/, written to
   a temp name, fsynced, renamed. */
static int incoming_write(struct shim_webhook *wh,
			  const struct retention_event *event)
{
	char line[INCOMING_LINE_MAX], tmp[SHIM_PATH_MAX], path[SHIM_PATH_MAX];
	char name[64];
	int len, n, fd;

	len = snprintf(line, sizeof(line), "%lld\t", (long long)now_ms());
	n = retention_event_encode(event, line + len, sizeof(line) - len - 1);
	if (n < 0)
		return -1;
	len += n;
	line[len++] = '\n';
	snprintf(name, sizeof(name), ".tmp.%d.%llu", (int)getpid(),
		 wh->produced);
	if (!path_join(tmp, sizeof(tmp), wh->incoming_dir, name))
		return -1;
	snprintf(name, sizeof(name), "%lld.%d.%llu", (long long)now_ms(),
		 (int)getpid(), wh->produced++);
	if (!path_join(path, sizeof(path), wh->incoming_dir, name))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0 || write(fd, line, (size_t)len) != len || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, path) < 0) {
		shim_error("webhook: writing %s failed: %s", path,
			   strerror(errno));
		if (fd >= 0)
			(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int shim_webhook_send(struct shim_webhook *wh,
		      const struct retention_event *event)
{
	if (wh->spool == NULL)
		return incoming_write(wh, event);
	if (spool_add(wh, event, (int64_t)event->timestamp * 1000) < 0)
		return -1;
	if (webhook_spool_commit(wh->spool) < 0) {
		shim_error("webhook: committing to the spool %s failed: %s",
			   wh->spool_dir, webhook_spool_error(wh->spool));
		return -1;
	}
	if (wh->delivery != NULL)
		webhook_delivery_kick(wh->delivery);
	return 0;
}

/* One incoming file into the current batch. Returns 0 added (or held
   already), -1 the file stays (a spool error), 1 the file is not an
   event (set aside). */
static int import_file(struct shim_webhook *wh, const char *path)
{
	char line[INCOMING_LINE_MAX], *fields, *end;
	struct retention_event event;
	const char *error;
	long long created;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0 || line[n - 1] != '\n')
		return 1;
	line[n - 1] = '\0';
	errno = 0;
	created = strtoll(line, &end, 10);
	if (errno != 0 || *end != '\t' || created < 0)
		return 1;
	fields = end + 1;
	if (retention_event_decode(fields, &event, &error) < 0) {
		shim_warning("webhook: %s is not an event: %s", path, error);
		return 1;
	}
	return spool_add(wh, &event, created) < 0 ? -1 : 0;
}

static void import_incoming(struct shim_webhook *wh)
{
	char names[IMPORT_MAX][64], path[SHIM_PATH_MAX];
	unsigned int i, count = 0;
	struct dirent *de;
	DIR *dir;

	dir = opendir(wh->incoming_dir);
	if (dir == NULL)
		return;
	while (count < IMPORT_MAX && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' ||
		    strlen(de->d_name) >= sizeof(names[0]))
			continue;
		snprintf(names[count++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(dir);
	for (i = 0; i < count; i++) {
		if (!path_join(path, sizeof(path), wh->incoming_dir, names[i]))
			continue;
		if (import_file(wh, path) < 0) {
			webhook_spool_abort(wh->spool);
			return;
		}
	}
	if (count == 0)
		return;
	if (webhook_spool_commit(wh->spool) < 0) {
		shim_error("webhook: importing %s failed: %s",
			   wh->incoming_dir, webhook_spool_error(wh->spool));
		return;
	}
	/* durable in the spool: the files can go */
	for (i = 0; i < count; i++) {
		if (path_join(path, sizeof(path), wh->incoming_dir, names[i]))
			(void)unlink(path);
	}
	shim_debug("webhook: %u event(s) imported from %s", count,
		   wh->incoming_dir);
	if (wh->delivery != NULL)
		webhook_delivery_kick(wh->delivery);
}

static void import_cb(evutil_socket_t fd, short what, void *context)
{
	(void)fd;
	(void)what;
	import_incoming(context);
}

/* ---- setting up ---- */

static struct shim_webhook *webhook_new(const struct shim_config *config,
					char *error, size_t error_size)
{
	struct shim_webhook *wh;

	if (config->webhook.url[0] == '\0') {
		snprintf(error, error_size, "%s", "");
		return NULL;
	}
	wh = calloc(1, sizeof(*wh));
	if (wh == NULL) {
		snprintf(error, error_size, "Out of memory");
		return NULL;
	}
	if (!path_join(wh->spool_dir, sizeof(wh->spool_dir),
		       config->state_dir, "spool") ||
	    !path_join(wh->incoming_dir, sizeof(wh->incoming_dir),
		       config->state_dir, "incoming")) {
		snprintf(error, error_size, "state_dir %s: too long",
			 config->state_dir);
		free(wh);
		return NULL;
	}
	if (mkdir(wh->incoming_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(error, error_size, "mkdir(%s) failed: %s",
			 wh->incoming_dir, strerror(errno));
		free(wh);
		return NULL;
	}
	return wh;
}

static int spool_open(struct shim_webhook *wh, char *error,
		      size_t error_size)
{
	wh->spool = webhook_spool_create(wh->spool_dir, 0);
	if (wh->spool == NULL) {
		snprintf(error, error_size, "Out of memory");
		return -1;
	}
	webhook_spool_set_log(wh->spool, engine_log, NULL);
	if (webhook_spool_open(wh->spool) < 0) {
		snprintf(error, error_size, "%s",
			 webhook_spool_error(wh->spool));
		webhook_spool_destroy(&wh->spool);
		return -1;
	}
	return 0;
}

static void delivery_start(struct shim_webhook *wh,
			   const struct shim_config *config)
{
	const struct webhook_settings *set = &config->webhook;
	struct webhook_delivery_config dc;
	struct webhook_secrets secrets;

	if (set->secret_file[0] == '\0') {
		shim_error("pop3_retention_webhook_secret_file is not set: "
			   "refusing to send unsigned webhooks; events are "
			   "kept in the spool %s", wh->spool_dir);
		return;
	}
	if (secrets_load(set->secret_file, &secrets) < 0) {
		shim_error("Webhooks are not delivered until the secret file "
			   "is fixed and pop3-retentiond restarted; events are "
			   "kept in the spool %s", wh->spool_dir);
		return;
	}
	memset(&dc, 0, sizeof(dc));
	dc.set = set;
	dc.secrets = &secrets;
	dc.spool = wh->spool;
	dc.loop.context = wh;
	dc.loop.fd_watch = loop_fd_watch;
	dc.loop.timer_set = loop_timer_set;
	dc.log = engine_log;
	wh->delivery = webhook_delivery_create(&dc);
	webhook_secrets_clear(&secrets);
	if (wh->delivery == NULL ||
	    webhook_delivery_start(wh->delivery) < 0) {
		shim_error("Webhook delivery not started: %s; events are kept "
			   "in the spool %s", wh->delivery == NULL ?
			   "out of memory" :
			   webhook_delivery_error(wh->delivery),
			   wh->spool_dir);
		webhook_delivery_destroy(&wh->delivery);
	}
}

struct shim_webhook *shim_webhook_serve(struct event_base *base,
					const struct shim_config *config,
					char *error, size_t error_size)
{
	struct timeval tv = { SHIM_WEBHOOK_IMPORT_MSECS / 1000,
			      (SHIM_WEBHOOK_IMPORT_MSECS % 1000) * 1000 };
	struct shim_webhook *wh = webhook_new(config, error, error_size);

	if (wh == NULL)
		return NULL;
	wh->base = base;
	wh->timer = evtimer_new(base, timer_cb, wh);
	wh->import_timer = event_new(base, -1, EV_PERSIST, import_cb, wh);
	if (wh->timer == NULL || wh->import_timer == NULL ||
	    event_add(wh->import_timer, &tv) < 0 ||
	    spool_open(wh, error, error_size) < 0) {
		if (error[0] == '\0')
			snprintf(error, error_size, "Out of memory");
		shim_webhook_destroy(&wh);
		return NULL;
	}
	import_incoming(wh);
	delivery_start(wh, config);
	return wh;
}

struct shim_webhook *shim_webhook_produce(const struct shim_config *config,
					  char *error, size_t error_size)
{
	struct shim_webhook *wh = webhook_new(config, error, error_size);

	if (wh == NULL)
		return NULL;
	if (spool_open(wh, error, error_size) < 0) {
		/* a server owns the spool: hand events to it */
		shim_debug("webhook: the spool is in use (%s): events go to %s",
			   error, wh->incoming_dir);
		error[0] = '\0';
	}
	return wh;
}

void shim_webhook_destroy(struct shim_webhook **_wh)
{
	struct shim_webhook *wh = *_wh;

	if (wh == NULL)
		return;
	*_wh = NULL;
	webhook_delivery_destroy(&wh->delivery);
	graveyard_empty(wh);
	while (wh->fds != NULL) {
		struct watched_fd *w = wh->fds;

		wh->fds = w->next;
		event_free(w->ev);
		free(w);
	}
	if (wh->timer != NULL)
		event_free(wh->timer);
	if (wh->import_timer != NULL)
		event_free(wh->import_timer);
	webhook_spool_destroy(&wh->spool);
	free(wh);
}
