/* libFuzzer target: the webhook URL check, both halves of it: the
   settings' grammar (webhook_settings_set() of
   pop3_retention_webhook_url, with the redaction of a rejected URL in
   its error) and the delivery engine's own check at start-up
   (webhook_delivery_start(): libcurl's URL parser, scheme, host, port),
   the real code, on an empty spool in a temp dir and a stub loop.

   Input: the URL. Invariants: an accepted URL is http(s) with a host
   and no space or control character; the error for a refused one does
   not depend on its query or fragment; start() either succeeds or says
   why. */

#define _GNU_SOURCE /* nftw() */

#include "pop3-retention-config.h"
#include "retention-settings.h"
#include "webhook-delivery.h"
#include "webhook-sign.h"
#include "webhook-spool.h"
#include "fuzz-tree.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define URL_KEY "pop3_retention_webhook_url"

static char top_dir[] = "/tmp/fuzz-url.XXXXXX";
static struct webhook_spool *spool;
static struct webhook_secrets secrets;

static void cleanup(void)
{
	webhook_spool_destroy(&spool);
	fuzz_tree_remove(top_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[64];
	const char *error;

	(void)argc;
	(void)argv;
	if (mkdtemp(top_dir) == NULL)
		abort();
	atexit(cleanup);
	snprintf(dir, sizeof(dir), "%s/spool", top_dir);
	spool = webhook_spool_create(dir, 0);
	if (spool == NULL || webhook_spool_open(spool) < 0)
		abort();
	secrets.count = 1;
	if (webhook_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				 &secrets.secrets[0], &error) < 0)
		abort();
	return 0;
}

static int fd_watch(void *context, int fd, unsigned int events)
{
	(void)context;
	(void)fd;
	(void)events;
	return 0;
}

static int timer_set(void *context, long msecs)
{
	(void)context;
	(void)msecs;
	return 0;
}

/* The letter or digit after c, cyclically; c itself otherwise. */
static char shift_alnum(char c)
{
	if ((c >= 'a' && c < 'z') || (c >= 'A' && c < 'Z') ||
	    (c >= '0' && c < '9'))
		return (char)(c + 1);
	return c == 'z' ? 'a' : c == 'Z' ? 'A' : c == '9' ? '0' : c;
}

/* A refused URL's error must not depend on what follows its first '?'
   or '#' (the query or fragment, where tokens go): the same URL with
   every letter and digit there changed (the punctuation, spaces and
   control characters kept, so the reason stays the same) gives the
   same error. */
static void check_redacted(const char *url, const char *error)
{
	struct webhook_settings set;
	char *other = strdup(url);

	if (other == NULL)
		abort();
	for (char *p = other + strcspn(other, "?#"); *p != '\0'; p++)
		*p = shift_alnum(*p);
	webhook_settings_init(&set);
	if (webhook_settings_set(&set, URL_KEY, other) == 0 ||
	    strcmp(set.error, error) != 0)
		abort();
	free(other);
}

static void check_start(const struct webhook_settings *accepted)
{
	struct webhook_settings set = *accepted;
	struct webhook_delivery_config config;
	struct webhook_delivery *d;

	memset(&config, 0, sizeof(config));
	set.max_in_flight = 1;
	config.set = &set;
	config.secrets = &secrets;
	config.spool = spool;
	config.loop.fd_watch = fd_watch;
	config.loop.timer_set = timer_set;
	d = webhook_delivery_create(&config);
	if (d == NULL)
		abort();
	if (webhook_delivery_start(d) < 0 &&
	    webhook_delivery_error(d)[0] == '\0')
		abort();
	webhook_delivery_destroy(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webhook_settings set;
	const char *host;
	char *url;

	if (size >= RETENTION_URL_MAX + 16)
		return 0;
	url = malloc(size + 1);
	if (url == NULL)
		abort();
	memcpy(url, data, size);
	url[size] = '\0';
	webhook_settings_init(&set);
	if (webhook_settings_set(&set, URL_KEY, url) < 0) {
		check_redacted(url, set.error);
		free(url);
		return 0;
	}
	if (url[0] != '\0') {
		if (strcmp(set.url, url) != 0)
			abort();
		host = strncasecmp(url, "https://", 8) == 0 ? url + 8 :
			strncasecmp(url, "http://", 7) == 0 ? url + 7 : NULL;
		if (host == NULL || *host == '\0' || *host == '/' ||
		    *host == ':')
			abort();
		for (const char *p = url; *p != '\0'; p++) {
			if ((unsigned char)*p <= 0x20 || *p == 0x7f)
				abort();
		}
		check_start(&set);
	}
	free(url);
	return 0;
}
