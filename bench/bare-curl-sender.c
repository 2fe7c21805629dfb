/* The floor for webhook delivery: libcurl multi alone, one thread,
   POSTing COUNT copies of one body to URL with keep-alive and IN_FLIGHT
   (default 16) transfers at a time, the headers the service sends
   (Content-Type, webhook-id distinct per request, webhook-timestamp, a
   webhook-signature of the right length, no Expect), and nothing else:
   no spool, no signing, no JSON. bench/run-webhook-bench builds it and
   runs it against the same receiver as the service; by hand:

       cc -O2 -Wall -W -o /tmp/bare-curl-sender bench/bare-curl-sender.c \
           $(pkg-config --cflags --libs libcurl)
       /tmp/bare-curl-sender http://127.0.0.1:8080/hook body.json 50000

   It prints one line of "key value" pairs: requests, ok (2xx), failed,
   seconds (first request started -> last answer), req_per_s and the
   process's CPU time per request (cpu_us_per_req). Exit status 0 when
   every request got a 2xx. Not part of the product build. */

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_IN_FLIGHT 256
#define BODY_MAX (64 * 1024)

struct transfer {
	CURL *easy;
	struct curl_slist *headers;
	char header_id[64];
	char header_timestamp[64];
};

static const char signature_header[] =
	"webhook-signature: v1,"
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

static double mono_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_secs(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 +
		r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *r)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*r = strtoul(s, &end, 10);
	return errno != 0 || *end != '\0' || *r == 0 || *r > max ? -1 : 0;
}

static size_t discard_cb(char *ptr, size_t size, size_t n, void *ctx)
{
	(void)ptr;
	(void)ctx;
	return size * n;
}

/* Point t at request number seq. Returns 0, or -1 on failure. */
static int transfer_prepare(struct transfer *t, unsigned long seq)
{
	struct curl_slist *l = NULL, *n;
	static const char *const fixed[] = {
		"Content-Type: application/json", signature_header, "Expect:"
	};
	unsigned int i;

	snprintf(t->header_id, sizeof(t->header_id),
		 "webhook-id: evt_bare%024lu", seq);
	snprintf(t->header_timestamp, sizeof(t->header_timestamp),
		 "webhook-timestamp: %" PRId64, (int64_t)time(NULL));
	l = curl_slist_append(l, t->header_id);
	for (n = l, i = 0; n != NULL && i < 3; i++)
		n = curl_slist_append(l, fixed[i]);
	if (n != NULL)
		n = curl_slist_append(l, t->header_timestamp);
	if (n == NULL) {
		curl_slist_free_all(l);
		return -1;
	}
	curl_slist_free_all(t->headers);
	t->headers = l;
	return curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, l) == CURLE_OK ?
		0 : -1;
}

static int transfer_init(struct transfer *t, const char *url,
			 const char *body, size_t body_len)
{
	t->easy = curl_easy_init();
	if (t->easy == NULL)
		return -1;
	if (curl_easy_setopt(t->easy, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *)t) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, 30000L) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_USERAGENT,
			     "pop3-retention/0.1") != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
			     (curl_off_t)body_len) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION,
			     discard_cb) != CURLE_OK)
		return -1;
	return 0;
}

static int read_body(const char *path, char *buf, size_t size, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, size, f);
	fclose(f);
	if (n == 0 || n == size)
		return -1;
	/* the body as the service sends it: no trailing newline */
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	*len_r = n;
	return 0;
}

int main(int argc, char **argv)
{
	static struct transfer transfers[MAX_IN_FLIGHT];
	static char body[BODY_MAX];
	unsigned long count, in_flight = 16, started = 0, ok = 0, failed = 0;
	unsigned long i;
	size_t body_len;
	double t0, t1, cpu0;
	CURLM *multi;
	CURLMsg *msg;
	int running, left;
	long code;

	if (argc < 4 || argc > 5 || parse_uint(argv[3], 100000000, &count) < 0 ||
	    (argc == 5 && parse_uint(argv[4], MAX_IN_FLIGHT, &in_flight) < 0)) {
		fprintf(stderr, "usage: bare-curl-sender URL BODY_FILE COUNT "
			"[IN_FLIGHT, 1..%d, default 16]\n", MAX_IN_FLIGHT);
		return 2;
	}
	if (read_body(argv[2], body, sizeof(body), &body_len) < 0) {
		fprintf(stderr, "%s: unreadable, empty or over %d bytes\n",
			argv[2], BODY_MAX - 1);
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	if (multi == NULL ||
	    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			      (long)in_flight) != CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
			      (long)in_flight) != CURLM_OK)
		return 1;
	if (in_flight > count)
		in_flight = count;
	cpu0 = cpu_secs();
	t0 = mono_secs();
	for (i = 0; i < in_flight; i++) {
		if (transfer_init(&transfers[i], argv[1], body, body_len) < 0 ||
		    transfer_prepare(&transfers[i], started++) < 0 ||
		    curl_multi_add_handle(multi, transfers[i].easy) != CURLM_OK)
			return 1;
	}
	do {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			return 1;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			struct transfer *t;
			char *priv;

			if (msg->msg != CURLMSG_DONE)
				continue;
			code = 0;
			(void)curl_easy_getinfo(msg->easy_handle,
						CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result == CURLE_OK &&
			    code >= 200 && code <= 299)
				ok++;
			else
				failed++;
			(void)curl_easy_getinfo(msg->easy_handle,
						CURLINFO_PRIVATE, &priv);
			t = (struct transfer *)(void *)priv;
			(void)curl_multi_remove_handle(multi, t->easy);
			if (started < count) {
				if (transfer_prepare(t, started++) < 0 ||
				    curl_multi_add_handle(multi, t->easy) !=
				    CURLM_OK)
					return 1;
				running++;
			}
		}
		if (running > 0 &&
		    curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			return 1;
	} while (running > 0 || ok + failed < count);
	t1 = mono_secs();
	printf("requests %lu ok %lu failed %lu seconds %.4f req_per_s %.1f "
	       "cpu_us_per_req %.2f body_bytes %zu in_flight %lu\n",
	       count, ok, failed, t1 - t0, count / (t1 - t0),
	       (cpu_secs() - cpu0) / count * 1e6, body_len, in_flight);
	for (i = 0; i < in_flight; i++) {
		(void)curl_multi_remove_handle(multi, transfers[i].easy);
		curl_easy_cleanup(transfers[i].easy);
		curl_slist_free_all(transfers[i].headers);
	}
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
