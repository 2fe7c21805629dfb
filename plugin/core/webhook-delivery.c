/* Webhook delivery on libcurl's multi socket interface.

   A fixed pool of easy handles (max_in_flight) is set up once at start
   with every safety option; a request only changes the body and the
   headers. All handles live in one multi handle, whose connection cache
   keeps the connections to the one endpoint alive between requests
   (CURLMOPT_MAX_HOST_CONNECTIONS bounds them to the pool size).

   Timers: libcurl's timer and the spool's next due retry are merged into
   the host's single one-shot timer, re-armed at the end of every entry
   point (never from inside a libcurl callback).

   Durability: an outcome is recorded in the spool's outcome log as soon
   as it is known and written before the loop waits again (one write
   per segment per turn); the logs are synced as a group
   (webhook_spool_sync()) at most every WEBHOOK_DELIVERY_SYNC_INTERVAL_MS,
   and when the engine stops, never once per event. */

#include "pop3-retention-config.h"
#include "webhook-delivery.h"
#include "webhook-backoff.h"
#include "webhook-ssrf.h"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024
/* "https://" + host + ":" + port, for logs: never the path or query,
   which may carry a token */
#define ENDPOINT_MAX 320
#define HEADER_LINE_MAX (WEBHOOK_SIGNATURE_HEADER_SIZE + 32)
#define HEADER_COUNT 5
#define REFUSED_MAX 160
#define USER_AGENT "pop3-retention/" POP3_RETENTION_VERSION
/* TCP keep-alive probes on idle pooled connections */
#define TCP_KEEPIDLE_SECS 60L
#define TCP_KEEPINTVL_SECS 30L

struct transfer {
	struct webhook_delivery *delivery;
	CURL *easy;
	/* NULL: idle */
	struct webhook_spool_event *event;
	/* The request's header list, built in place: the constant lines
	   point to string literals and only the three per-attempt lines
	   are formatted, so an attempt allocates nothing here. libcurl
	   reads the list and never frees it. */
	struct curl_slist headers[HEADER_COUNT];
	char header_id[WEBHOOK_SPOOL_ID_MAX + 16];
	char header_timestamp[40];
	char header_signature[HEADER_LINE_MAX];
	int64_t started_ms;
	size_t received;
	bool capped;
	bool retry_after_set;
	char retry_after[WEBHOOK_RETRY_AFTER_VALUE_MAX + 1];
	char refused[REFUSED_MAX];
	char errbuf[CURL_ERROR_SIZE];
};

struct watched_fd {
	int fd;
	unsigned int events;
};

struct webhook_delivery {
	struct webhook_settings set;
	struct webhook_secrets secrets;
	/* keyed once at start from secrets (webhook-sign.h) */
	struct webhook_signer *signer;
	struct webhook_spool *spool;
	struct webhook_delivery_loop loop;
	void *context;
	void (*log)(void *context, enum webhook_log_level level,
		    const char *line);
	void (*report)(void *context,
		       const struct webhook_delivery_report *report);
	uint32_t (*random)(void *context);
	unsigned int max_in_flight;
	/* the host calls webhook_delivery_turn_end() */
	bool turn_end;

	bool curl_initialized;
	CURLM *multi;
	struct transfer *transfers;
	unsigned int in_flight;
	char scheme[8];
	char endpoint[ENDPOINT_MAX];

	/* monotonic ms; -1: none */
	int64_t curl_deadline;
	int64_t timer_deadline;
	/* outcomes recorded since the last spool sync */
	bool sync_pending;
	int64_t last_sync;

	struct watched_fd *fds;
	unsigned int fd_count, fd_size;

	bool started;
	uint32_t rng;
	struct webhook_delivery_stats stats;
	char error[WEBHOOK_DELIVERY_ERROR_MAX];
};

static void __attribute__((format(printf, 2, 3)))
set_error(struct webhook_delivery *d, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, args);
	va_end(args);
}

static void __attribute__((format(printf, 3, 4)))
delivery_log(struct webhook_delivery *d, enum webhook_log_level level,
	     const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list args;

	if (d->log == NULL)
		return;
	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	d->log(d->context, level, line);
}

static void spool_log_forward(void *context, enum webhook_log_level level,
			      const char *message)
{
	struct webhook_delivery *d = context;

	delivery_log(d, level, "webhook spool: %s", message);
}

static int64_t clock_ms(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static int64_t wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

static uint32_t next_random(struct webhook_delivery *d)
{
	if (d->random != NULL)
		return d->random(d->context);
	/* xorshift32: jitter needs spread, not secrecy */
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 17;
	d->rng ^= d->rng << 5;
	return d->rng;
}

/* ---- fd and timer interest ---- */

static struct watched_fd *fd_find(struct webhook_delivery *d, int fd)
{
	unsigned int i;

	for (i = 0; i < d->fd_count; i++) {
		if (d->fds[i].fd == fd)
			return &d->fds[i];
	}
	return NULL;
}

static void fd_forget(struct webhook_delivery *d, struct watched_fd *w)
{
	*w = d->fds[--d->fd_count];
}

static int fd_remember(struct webhook_delivery *d, int fd,
		       unsigned int events)
{
	struct watched_fd *fds;
	unsigned int size;

	if (d->fd_count == d->fd_size) {
		size = d->fd_size == 0 ? 8 : d->fd_size * 2;
		fds = realloc(d->fds, sizeof(*fds) * size);
		if (fds == NULL)
			return -1;
		d->fds = fds;
		d->fd_size = size;
	}
	d->fds[d->fd_count].fd = fd;
	d->fds[d->fd_count].events = events;
	d->fd_count++;
	return 0;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct webhook_delivery *d = userp;
	struct watched_fd *w;
	unsigned int events = 0;

	(void)easy;
	(void)socketp;
	switch (what) {
	case CURL_POLL_IN:
		events = WEBHOOK_IO_READ;
		break;
	case CURL_POLL_OUT:
		events = WEBHOOK_IO_WRITE;
		break;
	case CURL_POLL_INOUT:
		events = WEBHOOK_IO_READ | WEBHOOK_IO_WRITE;
		break;
	default:
		/* CURL_POLL_REMOVE, before libcurl closes the socket */
		events = 0;
		break;
	}
	w = fd_find(d, s);
	if (events == 0) {
		if (w == NULL)
			return 0;
		fd_forget(d, w);
	} else if (w != NULL) {
		if (w->events == events)
			return 0;
		w->events = events;
	} else if (fd_remember(d, s, events) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR,
			     "webhook: out of memory watching fd %d", s);
		return -1;
	}
	if (d->loop.fd_watch(d->loop.context, s, events) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR,
			     "webhook: the host cannot watch fd %d", s);
	}
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhook_delivery *d = userp;

	(void)multi;
	/* armed in rearm(), at the end of the entry point */
	d->curl_deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	return 0;
}

static void spool_sync(struct webhook_delivery *d)
{
	d->sync_pending = false;
	d->last_sync = mono_ms();
	if (webhook_spool_sync(d->spool) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR, "webhook spool: %s",
			     webhook_spool_error(d->spool));
	}
}

/* Write the outcomes of this loop turn (one write per segment), then
   sync them unless the last sync was too recent (the timer then comes
   back for it). Every entry point ends with this (or, with turn_end,
   the host calls it through webhook_delivery_turn_end()) before the
   loop waits again, so that a kill loses no outcome of an earlier
   turn. */
static void turn_flush(struct webhook_delivery *d)
{
	if (webhook_spool_flush(d->spool) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR, "webhook spool: %s",
			     webhook_spool_error(d->spool));
	}
	if (d->sync_pending &&
	    mono_ms() - d->last_sync >= WEBHOOK_DELIVERY_SYNC_INTERVAL_MS)
		spool_sync(d);
}

static void maybe_sync(struct webhook_delivery *d)
{
	if (d->turn_end)
		return;
	turn_flush(d);
}

void webhook_delivery_turn_end(struct webhook_delivery *d)
{
	if (d->started)
		turn_flush(d);
}

/* Disabled by a 410. */
static bool is_disabled(struct webhook_delivery *d)
{
	return d->stats.disabled;
}

/* Merge libcurl's deadline, the pending sync and the spool's next due
   retry into the host's timer. */
static void rearm(struct webhook_delivery *d)
{
	int64_t now = mono_ms(), deadline = d->curl_deadline, due, at;
	long msecs;

	if (d->sync_pending) {
		at = d->last_sync + WEBHOOK_DELIVERY_SYNC_INTERVAL_MS;
		if (deadline < 0 || at < deadline)
			deadline = at;
	}
	if (d->started && !is_disabled(d) &&
	    d->in_flight < d->max_in_flight) {
		due = webhook_spool_next_due(d->spool);
		if (due >= 0) {
			at = due - wall_ms();
			at = now + (at < 0 ? 0 : at);
			if (deadline < 0 || at < deadline)
				deadline = at;
		}
	}
	if (deadline >= 0 && deadline > now + WEBHOOK_DELIVERY_TIMER_MAX_MS)
		deadline = now + WEBHOOK_DELIVERY_TIMER_MAX_MS;
	if (deadline == d->timer_deadline)
		return;
	d->timer_deadline = deadline;
	msecs = deadline < 0 ? -1 :
		(long)(deadline > now ? deadline - now : 0);
	if (d->loop.timer_set(d->loop.context, msecs) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR,
			     "webhook: the host cannot set a timer");
	}
}

/* ---- libcurl per-transfer callbacks ---- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;

	(void)ptr;
	if (len > WEBHOOK_DELIVERY_RESPONSE_MAX - t->received) {
		/* enough: only the status matters; a short count makes
		   libcurl abort with CURLE_WRITE_ERROR */
		t->capped = true;
		return 0;
	}
	t->received += len;
	return len;
}

static size_t header_cb(char *buffer, size_t size, size_t nitems,
			void *userdata)
{
	static const char name[] = "retry-after:";
	const size_t name_len = sizeof(name) - 1;
	struct transfer *t = userdata;
	size_t len = size * nitems, value_len;
	const char *value;

	if (len >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
		/* a new response (after a 1xx): forget the previous one's */
		t->retry_after_set = false;
		return len;
	}
	if (len < name_len || strncasecmp(buffer, name, name_len) != 0)
		return len;
	value = buffer + name_len;
	value_len = len - name_len;
	while (value_len > 0 && (value[value_len - 1] == '\r' ||
				 value[value_len - 1] == '\n'))
		value_len--;
	if (value_len >= sizeof(t->retry_after) ||
	    memchr(value, '\0', value_len) != NULL) {
		/* not a valid value: ignored, as RFC 9110 allows */
		t->retry_after_set = false;
		return len;
	}
	memcpy(t->retry_after, value, value_len);
	t->retry_after[value_len] = '\0';
	t->retry_after_set = true;
	return len;
}

static void format_address(const struct sockaddr *sa, socklen_t len,
			   char *buf, size_t size)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	buf[0] = '\0';
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(sin)) {
		memcpy(&sin, sa, sizeof(sin));
		(void)inet_ntop(AF_INET, &sin.sin_addr, buf, size);
	} else if (sa->sa_family == AF_INET6 &&
		   len >= (socklen_t)sizeof(sin6)) {
		memcpy(&sin6, sa, sizeof(sin6));
		(void)inet_ntop(AF_INET6, &sin6.sin6_addr, buf, size);
	}
	if (buf[0] == '\0')
		snprintf(buf, size, "(family %d)", sa->sa_family);
}

/* Every connection libcurl opens goes through here with the address it
   resolved, just before connect(): the SSRF check is on that address,
   so a name that resolves (or rebinds) to an internal address is
   refused. */
static curl_socket_t opensocket_cb(void *clientp, curlsocktype purpose,
				   struct curl_sockaddr *address)
{
	struct transfer *t = clientp;
	struct webhook_delivery *d = t->delivery;
	char addr[INET6_ADDRSTRLEN + 16];
	enum webhook_ssrf_class cls;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (!webhook_ssrf_allowed(&address->addr, address->addrlen,
				  d->set.allow_private, &cls)) {
		format_address(&address->addr, address->addrlen, addr,
			       sizeof(addr));
		snprintf(t->refused, sizeof(t->refused),
			 "refused to connect to %s (%s address%s)", addr,
			 webhook_ssrf_class_name(cls),
			 webhook_ssrf_class_allowed(cls, true) ?
			 "; pop3_retention_webhook_allow_private = yes "
			 "allows it" : "");
		return CURL_SOCKET_BAD;
	}
	fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
		    address->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	return fd;
}

/* ---- outcomes ---- */

static void report(struct webhook_delivery *d,
		   enum webhook_delivery_outcome outcome, const char *id,
		   unsigned int attempt, long status, const char *error,
		   int64_t duration_ms, int64_t retry_in_ms)
{
	struct webhook_delivery_report r;

	if (d->report == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.outcome = outcome;
	r.webhook_id = id;
	r.attempt = attempt;
	r.http_status = status;
	r.error = error;
	r.duration_ms = duration_ms;
	r.retry_in_ms = retry_in_ms;
	d->report(d->context, &r);
}

static void outcome_delivered(struct webhook_delivery *d,
			      struct webhook_spool_event *event, long status,
			      int64_t duration)
{
	char id[WEBHOOK_SPOOL_ID_MAX];
	unsigned int attempt = event->attempts + 1;

	memcpy(id, event->id, strlen(event->id) + 1);
	d->sync_pending = true;
	if (webhook_spool_delivered(d->spool, &event) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR, "webhook %s: %s", id,
			     webhook_spool_error(d->spool));
	}
	d->stats.delivered++;
	delivery_log(d, WEBHOOK_LOG_DEBUG,
		     "webhook %s to %s: delivered (HTTP %ld, attempt %u, "
		     "%" PRId64 " ms)", id, d->endpoint, status, attempt,
		     duration);
	report(d, WEBHOOK_DELIVERY_DELIVERED, id, attempt, status, NULL,
	       duration, 0);
}

static void outcome_gone(struct webhook_delivery *d,
			 struct webhook_spool_event *event, int64_t duration)
{
	struct webhook_spool_counts counts;
	char id[WEBHOOK_SPOOL_ID_MAX];
	unsigned int attempt = event->attempts + 1;

	memcpy(id, event->id, strlen(event->id) + 1);
	/* kept as it was: sent once the admin re-enables the endpoint */
	webhook_spool_release(d->spool, &event);
	if (!d->stats.disabled) {
		d->stats.disabled = true;
		webhook_spool_counts(d->spool, &counts);
		delivery_log(d, WEBHOOK_LOG_ERROR,
			     "webhook endpoint %s answered 410 Gone (event %s):"
			     " delivery disabled, %u events stay in the spool"
			     " until it is re-enabled", d->endpoint, id,
			     counts.pending);
	}
	d->stats.disabled = true;
	report(d, WEBHOOK_DELIVERY_DISABLED, id, attempt, 410,
	       "410 Gone: endpoint disabled", duration, 0);
}

static void outcome_failed(struct webhook_delivery *d,
			   struct webhook_spool_event *event, long status,
			   const char *error, int64_t retry_after_ms,
			   int64_t duration)
{
	char id[WEBHOOK_SPOOL_ID_MAX];
	unsigned int attempt = event->attempts + 1;
	unsigned int total = d->set.retry_schedule.count;
	int64_t delay = 0;

	memcpy(id, event->id, strlen(event->id) + 1);
	d->stats.failed++;
	d->sync_pending = true;
	if (webhook_backoff_next(d->set.retry_schedule.secs, total, attempt,
				 retry_after_ms, next_random(d),
				 &delay) > 0) {
		if (webhook_spool_reschedule(d->spool, &event,
					     wall_ms() + delay) < 0) {
			delivery_log(d, WEBHOOK_LOG_ERROR, "webhook %s: %s",
				     id, webhook_spool_error(d->spool));
		}
		delivery_log(d, WEBHOOK_LOG_WARNING,
			     "webhook %s to %s: attempt %u of %u failed: %s; "
			     "next attempt in %" PRId64 ".%03" PRId64 " s%s",
			     id, d->endpoint, attempt, total, error,
			     delay / 1000, delay % 1000,
			     retry_after_ms >= 0 && retry_after_ms >= delay ?
			     " (Retry-After)" : "");
		report(d, WEBHOOK_DELIVERY_FAILED, id, attempt, status, error,
		       duration, delay);
		return;
	}
	if (webhook_spool_dead_letter(d->spool, &event) < 0) {
		delivery_log(d, WEBHOOK_LOG_ERROR, "webhook %s: %s", id,
			     webhook_spool_error(d->spool));
	} else {
		d->stats.dead_lettered++;
	}
	delivery_log(d, WEBHOOK_LOG_ERROR,
		     "webhook %s to %s: attempt %u of %u failed: %s; "
		     "dead-lettered", id, d->endpoint, attempt, total, error);
	report(d, WEBHOOK_DELIVERY_DEAD_LETTERED, id, attempt, status, error,
	       duration, 0);
}

static void transfer_reset(struct transfer *t)
{
	if (t->easy != NULL) {
		/* no pointer into a freed event or header list stays set */
		(void)curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
		(void)curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, NULL);
	}
	t->event = NULL;
	t->received = 0;
	t->capped = false;
	t->retry_after_set = false;
	t->retry_after[0] = '\0';
	t->refused[0] = '\0';
	t->errbuf[0] = '\0';
}

static void transfer_done(struct webhook_delivery *d, struct transfer *t,
			  CURLcode result)
{
	struct webhook_spool_event *event = t->event;
	int64_t duration = mono_ms() - t->started_ms, retry_after_ms = -1;
	int64_t retry_after_secs;
	char error[LOG_LINE_MAX / 2];
	long status = 0;
	bool responded;

	if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) !=
	    CURLE_OK)
		status = 0;
	/* a body over the cap is cut after the status line: the receiver
	   has answered all the same. So has an HTTP/2 receiver that
	   answered before it read the whole request and then reset the
	   stream (RST_STREAM, as nginx's "return 204" does): libcurl 7.88
	   reports the reset as an error after the final status. */
	responded = status >= 200 &&
		(result == CURLE_OK ||
		 (result == CURLE_WRITE_ERROR && t->capped) ||
		 result == CURLE_HTTP2_STREAM);

	if (responded && status <= 299) {
		outcome_delivered(d, event, status, duration);
	} else if (responded && status == 410) {
		outcome_gone(d, event, duration);
	} else {
		if (responded) {
			snprintf(error, sizeof(error), "HTTP %ld%s", status,
				 status >= 300 && status <= 399 ?
				 " (redirects are not followed)" : "");
			if ((status == 429 || status == 503) &&
			    t->retry_after_set &&
			    webhook_retry_after_parse(t->retry_after,
						      time(NULL),
						      &retry_after_secs) == 0)
				retry_after_ms = retry_after_secs * 1000;
		} else if (t->refused[0] != '\0') {
			snprintf(error, sizeof(error), "%s", t->refused);
		} else if (result == CURLE_OK) {
			snprintf(error, sizeof(error),
				 "no valid HTTP response");
		} else {
			snprintf(error, sizeof(error), "%s%s%s",
				 curl_easy_strerror(result),
				 t->errbuf[0] != '\0' ? ": " : "", t->errbuf);
		}
		outcome_failed(d, event, status, error, retry_after_ms,
			       duration);
	}
	transfer_reset(t);
	d->in_flight--;
}

static void process_done(struct webhook_delivery *d)
{
	struct transfer *t;
	CURLMsg *msg;
	CURLcode result;
	CURL *easy;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid after remove_handle: copy first */
		easy = msg->easy_handle;
		result = msg->data.result;
		priv = NULL;
		(void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		(void)curl_multi_remove_handle(d->multi, easy);
		t = (struct transfer *)(void *)priv;
		if (t == NULL || t->event == NULL)
			continue;
		transfer_done(d, t, result);
	}
}

/* ---- requests ---- */

/* Fill the transfer's header list for one attempt. Returns 0, or -1
   if a line does not fit (it always does: the sizes are bounded). */
static int headers_build(struct transfer *t, const char *id,
			 int64_t timestamp, const char *signature)
{
	static char content_type[] = "Content-Type: application/json";
	/* no 100-continue round trip for small bodies */
	static char expect[] = "Expect:";
	int len1, len2, len3;
	unsigned int i;

	len1 = snprintf(t->header_id, sizeof(t->header_id), "webhook-id: %s",
			id);
	len2 = snprintf(t->header_timestamp, sizeof(t->header_timestamp),
			"webhook-timestamp: %" PRId64, timestamp);
	len3 = snprintf(t->header_signature, sizeof(t->header_signature),
			"webhook-signature: %s", signature);
	if (len1 < 0 || (size_t)len1 >= sizeof(t->header_id) ||
	    len2 < 0 || (size_t)len2 >= sizeof(t->header_timestamp) ||
	    len3 < 0 || (size_t)len3 >= sizeof(t->header_signature))
		return -1;
	t->headers[0].data = content_type;
	t->headers[1].data = t->header_id;
	t->headers[2].data = t->header_timestamp;
	t->headers[3].data = t->header_signature;
	t->headers[4].data = expect;
	for (i = 0; i + 1 < HEADER_COUNT; i++)
		t->headers[i].next = &t->headers[i + 1];
	t->headers[HEADER_COUNT - 1].next = NULL;
	return 0;
}

/* Start one attempt. Returns 0, or -1 after recording the attempt as
   failed (it could not be sent). */
static int transfer_start(struct webhook_delivery *d, struct transfer *t,
			  struct webhook_spool_event *event)
{
	char signature[WEBHOOK_SIGNATURE_HEADER_SIZE];
	const char *error = NULL;
	int64_t timestamp = (int64_t)time(NULL);
	CURLMcode mres;

	transfer_reset(t);
	t->event = event;
	t->started_ms = mono_ms();
	/* webhook-timestamp is this attempt's; webhook-id the event's */
	if (webhook_signer_sign(d->signer, event->id, timestamp, event->body,
				event->body_len, signature) < 0)
		error = "signing failed";
	else if (headers_build(t, event->id, timestamp, signature) < 0)
		error = "a header line is too long";
	else if (curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER,
				  &t->headers[0]) != CURLE_OK ||
		 curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
				  (curl_off_t)event->body_len) != CURLE_OK ||
		 curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS,
				  (const char *)event->body) != CURLE_OK)
		error = "cannot set up the request";
	if (error == NULL) {
		mres = curl_multi_add_handle(d->multi, t->easy);
		if (mres == CURLM_OK) {
			d->in_flight++;
			return 0;
		}
		error = curl_multi_strerror(mres);
	}
	t->event = NULL;
	transfer_reset(t);
	outcome_failed(d, event, 0, error, -1, 0);
	return -1;
}

static struct transfer *transfer_idle(struct webhook_delivery *d)
{
	unsigned int i;

	for (i = 0; i < d->max_in_flight; i++) {
		if (d->transfers[i].event == NULL)
			return &d->transfers[i];
	}
	return NULL;
}

/* Start what is due, up to max_in_flight. */
static void pump(struct webhook_delivery *d)
{
	struct webhook_spool_event *event;
	struct transfer *t;
	int ret;

	if (!d->started || is_disabled(d))
		return;
	while (d->in_flight < d->max_in_flight) {
		t = transfer_idle(d);
		if (t == NULL)
			break;
		ret = webhook_spool_checkout(d->spool, wall_ms(), &event);
		if (ret == 0)
			break;
		if (ret < 0) {
			delivery_log(d, WEBHOOK_LOG_ERROR, "webhook spool: %s",
				     webhook_spool_error(d->spool));
			break;
		}
		(void)transfer_start(d, t, event);
	}
}

#define SETOPT(easy, opt, value) \
	if (curl_easy_setopt(easy, opt, value) != CURLE_OK) \
		return #opt

/* Options of every request. Returns NULL, or the option that failed. */
static const char *transfer_setup(struct webhook_delivery *d,
				  struct transfer *t)
{
	long timeout_ms = (long)d->set.timeout_secs * 1000L;
	long connect_ms = timeout_ms < WEBHOOK_DELIVERY_CONNECT_TIMEOUT_MS ?
		timeout_ms : WEBHOOK_DELIVERY_CONNECT_TIMEOUT_MS;

	t->delivery = d;
	t->easy = curl_easy_init();
	if (t->easy == NULL)
		return "curl_easy_init";
	SETOPT(t->easy, CURLOPT_PRIVATE, (char *)(void *)t);
	SETOPT(t->easy, CURLOPT_URL, d->set.url);
	SETOPT(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(t->easy, CURLOPT_NOSIGNAL, 1L);
	SETOPT(t->easy, CURLOPT_NOPROGRESS, 1L);
	/* the URL's scheme only; 3xx is a failed attempt */
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(t->easy, CURLOPT_PROTOCOLS_STR, d->scheme);
	SETOPT(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, d->scheme);
#else
	SETOPT(t->easy, CURLOPT_PROTOCOLS,
	       strcmp(d->scheme, "https") == 0 ? (long)CURLPROTO_HTTPS :
	       (long)CURLPROTO_HTTP);
	SETOPT(t->easy, CURLOPT_REDIR_PROTOCOLS,
	       strcmp(d->scheme, "https") == 0 ? (long)CURLPROTO_HTTPS :
	       (long)CURLPROTO_HTTP);
#endif
	SETOPT(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(t->easy, CURLOPT_MAXREDIRS, 0L);
	/* an environment proxy would bypass the address check */
	SETOPT(t->easy, CURLOPT_PROXY, "");
	SETOPT(t->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	SETOPT(t->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	SETOPT(t->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(t->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (d->set.ca_file[0] != '\0') {
		SETOPT(t->easy, CURLOPT_CAINFO, d->set.ca_file);
	}
	SETOPT(t->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(t->easy, CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_SECS);
	SETOPT(t->easy, CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_SECS);
	SETOPT(t->easy, CURLOPT_USERAGENT, USER_AGENT);
	SETOPT(t->easy, CURLOPT_POST, 1L);
	SETOPT(t->easy, CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(t->easy, CURLOPT_WRITEDATA, (void *)t);
	SETOPT(t->easy, CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(t->easy, CURLOPT_HEADERDATA, (void *)t);
	SETOPT(t->easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	SETOPT(t->easy, CURLOPT_OPENSOCKETDATA, (void *)t);
	return NULL;
}

#define MSETOPT(multi, opt, value) \
	if (curl_multi_setopt(multi, opt, value) != CURLM_OK) \
		return #opt

static const char *multi_setup(struct webhook_delivery *d)
{
	long max = (long)d->max_in_flight;

	d->multi = curl_multi_init();
	if (d->multi == NULL)
		return "curl_multi_init";
	MSETOPT(d->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	MSETOPT(d->multi, CURLMOPT_SOCKETDATA, (void *)d);
	MSETOPT(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	MSETOPT(d->multi, CURLMOPT_TIMERDATA, (void *)d);
	/* one endpoint: the pool size bounds the connections, and the
	   cache keeps that many alive for reuse */
	MSETOPT(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max);
	MSETOPT(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max);
	MSETOPT(d->multi, CURLMOPT_MAXCONNECTS, max);
	return NULL;
}

/* ---- public API ---- */

struct webhook_delivery *
webhook_delivery_create(const struct webhook_delivery_config *config)
{
	struct webhook_delivery *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->set = *config->set;
	d->secrets = *config->secrets;
	d->spool = config->spool;
	d->loop = config->loop;
	d->context = config->context;
	d->log = config->log;
	d->report = config->report;
	d->random = config->random;
	d->turn_end = config->turn_end;
	d->max_in_flight = d->set.max_in_flight == 0 ?
		WEBHOOK_DELIVERY_DEFAULT_IN_FLIGHT : d->set.max_in_flight;
	if (d->max_in_flight > WEBHOOK_DELIVERY_MAX_IN_FLIGHT)
		d->max_in_flight = WEBHOOK_DELIVERY_MAX_IN_FLIGHT;
	d->curl_deadline = -1;
	d->timer_deadline = -1;
	d->last_sync = mono_ms();
	d->rng = (uint32_t)mono_ms() ^ (uint32_t)wall_ms() ^
		((uint32_t)getpid() << 16);
	if (d->rng == 0)
		d->rng = 0x9e3779b9U;
	return d;
}

/* The scheme (lower case, for CURLOPT_PROTOCOLS_STR) and the
   scheme://host:port shown in logs. */
static int parse_url(struct webhook_delivery *d)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *url;
	int ret = -1;

	url = curl_url();
	if (url == NULL) {
		set_error(d, "out of memory");
		return -1;
	}
	if (curl_url_set(url, CURLUPART_URL, d->set.url, 0) !=
	    CURLUE_OK) {
		set_error(d, "pop3_retention_webhook_url: not a valid URL");
		goto out;
	}
	if (curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		set_error(d, "pop3_retention_webhook_url: no host");
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		set_error(d, "pop3_retention_webhook_url: only http:// and "
			  "https:// URLs are allowed");
		goto out;
	}
	memcpy(d->scheme, scheme, strlen(scheme) + 1);
	snprintf(d->endpoint, sizeof(d->endpoint), "%s://%s:%s", scheme,
		 host, port);
	ret = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(url);
	return ret;
}

int webhook_delivery_start(struct webhook_delivery *d)
{
	const char *failed;
	unsigned int i;

	d->error[0] = '\0';
	if (d->started || d->multi != NULL) {
		/* after a failed start: destroy and create a new engine */
		set_error(d, "webhook_delivery_start() called twice");
		return -1;
	}
	if (d->set.url[0] == '\0') {
		set_error(d, "pop3_retention_webhook_url is not set");
		return -1;
	}
	if (d->signer == NULL) {
		if (d->secrets.count == 0 ||
		    d->secrets.count > WEBHOOK_SECRETS_MAX) {
			set_error(d, "no webhook secret: refusing to send "
				  "unsigned webhooks");
			return -1;
		}
		d->signer = webhook_signer_create(&d->secrets);
		/* the signer holds digest states, not the key: its raw
		   bytes are not kept in memory any longer than this */
		webhook_secrets_clear(&d->secrets);
		if (d->signer == NULL) {
			set_error(d, "cannot set up HMAC-SHA256 signing "
				  "(OpenSSL)");
			return -1;
		}
	}
	if (d->set.retry_schedule.count == 0 ||
	    d->set.retry_schedule.count > RETENTION_RETRY_SCHEDULE_MAX ||
	    d->set.timeout_secs == 0) {
		set_error(d, "invalid retry schedule or timeout");
		return -1;
	}
	if (d->loop.fd_watch == NULL || d->loop.timer_set == NULL) {
		set_error(d, "the host loop interface is incomplete");
		return -1;
	}
	if (!d->curl_initialized) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			set_error(d, "curl_global_init() failed");
			return -1;
		}
		d->curl_initialized = true;
	}
	if (parse_url(d) < 0)
		return -1;
	failed = multi_setup(d);
	if (failed != NULL) {
		set_error(d, "libcurl: %s failed", failed);
		return -1;
	}
	d->transfers = calloc(d->max_in_flight, sizeof(*d->transfers));
	if (d->transfers == NULL) {
		set_error(d, "out of memory");
		return -1;
	}
	for (i = 0; i < d->max_in_flight; i++) {
		failed = transfer_setup(d, &d->transfers[i]);
		if (failed != NULL) {
			set_error(d, "libcurl: %s failed", failed);
			return -1;
		}
	}
	webhook_spool_set_log(d->spool, spool_log_forward, d);
	webhook_spool_set_first_delay(
		d->spool, (int64_t)d->set.retry_schedule.secs[0] * 1000);
	d->started = true;
	delivery_log(d, WEBHOOK_LOG_INFO,
		     "webhook delivery to %s started (%u in flight at most)",
		     d->endpoint, d->max_in_flight);
	pump(d);
	maybe_sync(d);
	rearm(d);
	return 0;
}

void webhook_delivery_destroy(struct webhook_delivery **_d)
{
	struct webhook_delivery *d = *_d;
	struct transfer *t;
	unsigned int i;
	int fd;

	if (d == NULL)
		return;
	*_d = NULL;
	for (i = 0; d->transfers != NULL && i < d->max_in_flight; i++) {
		t = &d->transfers[i];
		if (t->event != NULL) {
			(void)curl_multi_remove_handle(d->multi, t->easy);
			/* the outcome is unknown: not counted as an attempt */
			webhook_spool_release(d->spool, &t->event);
		}
		transfer_reset(t);
		if (t->easy != NULL)
			curl_easy_cleanup(t->easy);
	}
	free(d->transfers);
	if (d->multi != NULL)
		(void)curl_multi_cleanup(d->multi);
	/* libcurl announces every close; anything left is dropped here */
	while (d->fd_count > 0) {
		fd = d->fds[d->fd_count - 1].fd;
		d->fd_count--;
		(void)d->loop.fd_watch(d->loop.context, fd, 0);
	}
	free(d->fds);
	if (d->timer_deadline >= 0)
		(void)d->loop.timer_set(d->loop.context, -1);
	if (d->started) {
		spool_sync(d);
		webhook_spool_set_log(d->spool, NULL, NULL);
	}
	if (d->curl_initialized)
		curl_global_cleanup();
	webhook_signer_destroy(&d->signer);
	webhook_secrets_clear(&d->secrets);
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
}

const char *webhook_delivery_error(const struct webhook_delivery *d)
{
	return d->error;
}

void webhook_delivery_fd_ready(struct webhook_delivery *d, int fd,
			       unsigned int events)
{
	int mask = 0, running = 0;

	if (!d->started)
		return;
	if ((events & WEBHOOK_IO_READ) != 0)
		mask |= CURL_CSELECT_IN;
	if ((events & WEBHOOK_IO_WRITE) != 0)
		mask |= CURL_CSELECT_OUT;
	if ((events & WEBHOOK_IO_ERROR) != 0)
		mask |= CURL_CSELECT_ERR;
	(void)curl_multi_socket_action(d->multi, fd, mask, &running);
	process_done(d);
	pump(d);
	maybe_sync(d);
	rearm(d);
}

void webhook_delivery_timer_expired(struct webhook_delivery *d)
{
	int running = 0;

	d->timer_deadline = -1;
	if (!d->started)
		return;
	if (d->curl_deadline >= 0 && d->curl_deadline <= mono_ms()) {
		d->curl_deadline = -1;
		(void)curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT,
					       0, &running);
	}
	process_done(d);
	pump(d);
	maybe_sync(d);
	rearm(d);
}

void webhook_delivery_kick(struct webhook_delivery *d)
{
	if (!d->started)
		return;
	pump(d);
	maybe_sync(d);
	rearm(d);
}

bool webhook_delivery_is_disabled(const struct webhook_delivery *d)
{
	return d->stats.disabled;
}

void webhook_delivery_enable(struct webhook_delivery *d)
{
	if (!webhook_delivery_is_disabled(d))
		return;
	d->stats.disabled = false;
	delivery_log(d, WEBHOOK_LOG_INFO, "webhook delivery to %s re-enabled",
		     d->endpoint);
	if (!d->started)
		return;
	pump(d);
	maybe_sync(d);
	rearm(d);
}

void webhook_delivery_get_stats(const struct webhook_delivery *d,
				struct webhook_delivery_stats *stats_r)
{
	*stats_r = d->stats;
	stats_r->in_flight = d->in_flight;
}
