/* Event ids and JSON bodies. jansson does the escaping, so no JSON is
   written by hand; the key order is the insertion order (jansson >= 2.8
   always keeps it, JSON_PRESERVE_ORDER asks older versions to). */

#include "pop3-retention-config.h"
#include "retention-event.h"
#include "retention-event-codec.h"
#include "webhook-crypto.h"

#include <jansson.h>
#include <openssl/evp.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "YYYY-MM-DDTHH:MM:SSZ" and the NUL */
#define TIME_STR_SIZE 21
/* No legitimate value is longer than an RFC 5322 header line. The cap
   keeps the body thin (the spec suggests under about 20 KB) even when a
   Message-ID header is hostile. */
#define EVENT_STRING_MAX 998
/* Bumped if the id's input encoding ever changes, so that old and new
   ids can never collide. */
#define EVENT_ID_DOMAIN "pop3-retention event id v1"
#define EVENT_ID_PREFIX "evt_"
#define EVENT_ID_HEX_LEN 32

/* jansson names no maximum for json_int_t */
#if JSON_INTEGER_IS_LONG_LONG
#define JSON_INT_MAX LLONG_MAX
#else
#define JSON_INT_MAX LONG_MAX
#endif

_Static_assert(RETENTION_EVENT_ID_SIZE ==
	       sizeof(EVENT_ID_PREFIX) - 1 + EVENT_ID_HEX_LEN + 1,
	       "RETENTION_EVENT_ID_SIZE does not match the id format");

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
   forms, no surrogates, nothing above U+10FFFF), or 0. Stops at the NUL
   because a NUL is never a continuation byte. */
static bool byte_in(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

static size_t utf8_sequence_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0x80)
		return 1;
	if (byte_in(p[0], 0xc2, 0xdf))
		return byte_in(p[1], 0x80, 0xbf) ? 2 : 0;
	if (byte_in(p[0], 0xe0, 0xef)) {
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
		if (byte_in(p[1], lo, hi) && byte_in(p[2], 0x80, 0xbf))
			return 3;
		return 0;
	}
	if (byte_in(p[0], 0xf0, 0xf4)) {
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
		if (byte_in(p[1], lo, hi) && byte_in(p[2], 0x80, 0xbf) &&
		    byte_in(p[3], 0x80, 0xbf))
			return 4;
		return 0;
	}
	return 0;
}

/* jansson refuses strings that are not UTF-8, and a Message-ID or an old
   client's mailbox name may be raw 8-bit: rather than lose the event,
   each byte that is not part of a valid sequence becomes U+FFFD. The
   result is cut at a character boundary after EVENT_STRING_MAX bytes. */
static json_t *string_json(const char *str)
{
	static const char replacement[] = "\xef\xbf\xbd";
	char out[EVENT_STRING_MAX];
	const unsigned char *p;
	const char *unit;
	size_t out_len = 0, len, unit_len;

	if (str == NULL)
		return json_null();
	/* the common case: valid and short, used as it is */
	for (p = (const unsigned char *)str; *p != '\0'; p += len) {
		len = utf8_sequence_len(p);
		if (len == 0)
			break;
	}
	if (*p == '\0' && (size_t)(p - (const unsigned char *)str) <=
	    sizeof(out)) {
		return json_stringn_nocheck(str,
			(size_t)(p - (const unsigned char *)str));
	}
	for (p = (const unsigned char *)str; *p != '\0'; p += len) {
		len = utf8_sequence_len(p);
		if (len > 0) {
			unit = (const char *)p;
			unit_len = len;
		} else {
			len = 1;
			unit = replacement;
			unit_len = sizeof(replacement) - 1;
		}
		if (unit_len > sizeof(out) - out_len)
			break;
		memcpy(out + out_len, unit, unit_len);
		out_len += unit_len;
	}
	/* valid by construction */
	return json_stringn_nocheck(out, out_len);
}

static json_t *time_json(time_t t)
{
	char buf[TIME_STR_SIZE];

	if (t == 0)
		return json_null();
	retention_time_format(t, buf, sizeof(buf));
	if (buf[0] == '\0')
		return json_null();
	return json_string_nocheck(buf);
}

static json_t *uint64_json(uint64_t value)
{
	/* json_int_t is signed; sizes never come near the limit. */
	if (value > (uint64_t)JSON_INT_MAX)
		value = (uint64_t)JSON_INT_MAX;
	return json_integer((json_int_t)value);
}

/* Keys are ASCII literals: jansson need not check them. */
static int obj_set(json_t *object, const char *key, json_t *value)
{
	return json_object_set_new_nocheck(object, key, value);
}

static int event_data_fill(json_t *data, const struct retention_event *event)
{
	int err = 0;

	err |= obj_set(data, "user", string_json(event->user));
	err |= obj_set(data, "mailbox",
		       string_json(event->mailbox));
	err |= obj_set(data, "uidl", string_json(event->uidl));
	err |= obj_set(data, "uid", json_integer(event->uid));
	err |= obj_set(data, "uidvalidity",
		       json_integer(event->uidvalidity));
	err |= obj_set(data, "message_id",
		       string_json(event->message_id));
	err |= obj_set(data, "size", uint64_json(event->size));
	err |= obj_set(data, "arrived_at",
		       time_json(event->arrived_at));
	err |= obj_set(data, "retrieved_at",
		       time_json(event->retrieved_at));
	err |= obj_set(data, "first_retrieval",
		       json_boolean(event->first_retrieval));
	err |= obj_set(
		data, "policy",
		json_string_nocheck(retention_policy_kind_name(event->policy)));
	err |= obj_set(data, "reason", string_json(event->reason));
	err |= obj_set(data, "retain_until",
		       time_json(event->retain_until));
	err |= obj_set(data, "session",
		       string_json(event->session));
	err |= obj_set(data, "remote_ip",
		       string_json(event->remote_ip));
	err |= obj_set(data, "dry_run",
		       json_boolean(event->dry_run));
	return err != 0 ? -1 : 0;
}

/* Typical bodies are about 500 bytes: dumped into a stack buffer and
   copied once (json_dumps() grows a buffer from 16 bytes, then copies). */
#define DUMP_BUF_SIZE 2048

static char *dump_json(const json_t *root)
{
	const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
	char buf[DUMP_BUF_SIZE], *body;
	size_t len;

	len = json_dumpb(root, buf, sizeof(buf), flags);
	if (len == 0 || len > sizeof(buf))
		return json_dumps(root, flags);
	body = malloc(len + 1);
	if (body == NULL)
		return NULL;
	memcpy(body, buf, len);
	body[len] = '\0';
	return body;
}

char *retention_event_to_json(const struct retention_event *event)
{
	json_t *root, *data;
	char *body = NULL;
	int err = 0;

	root = json_object();
	data = json_object();
	if (root == NULL || data == NULL || event_data_fill(data, event) < 0) {
		json_decref(root);
		json_decref(data);
		return NULL;
	}
	err |= obj_set(
		root, "type",
		json_string_nocheck(retention_event_type_name(event->type)));
	err |= obj_set(root, "timestamp",
		       time_json(event->timestamp));
	/* root owns data from here on, even if this fails */
	err |= obj_set(root, "data", data);
	if (err == 0)
		body = dump_json(root);
	json_decref(root);
	return body;
}

/* The id's input is an unambiguous encoding: fixed-width big-endian
   integers, and strings as a presence byte plus a length, so that
   ("ab", "c") and ("a", "bc"), or NULL and "", never hash alike. It does
   not depend on the host's byte order or type sizes. */
static int digest_uint64(EVP_MD_CTX *ctx, uint64_t value)
{
	unsigned char buf[8];
	unsigned int i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(value >> (56 - 8 * i));
	return EVP_DigestUpdate(ctx, buf, sizeof(buf)) == 1 ? 0 : -1;
}

static int digest_string(EVP_MD_CTX *ctx, const char *str)
{
	unsigned char present = str != NULL ? 1 : 0;
	size_t len = str != NULL ? strlen(str) : 0;

	if (EVP_DigestUpdate(ctx, &present, 1) != 1 ||
	    digest_uint64(ctx, len) < 0)
		return -1;
	if (len > 0 && EVP_DigestUpdate(ctx, str, len) != 1)
		return -1;
	return 0;
}

static int event_id_digest(const struct retention_event *event,
			   unsigned char md_r[EVP_MAX_MD_SIZE])
{
	const EVP_MD *sha256 = webhook_crypto_sha256();
	EVP_MD_CTX *ctx;
	unsigned int md_len = 0;
	int ret = -1;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, sha256 != NULL ? sha256 : EVP_sha256(),
			      NULL) == 1 &&
	    digest_string(ctx, EVENT_ID_DOMAIN) == 0 &&
	    digest_string(ctx, retention_event_type_name(event->type)) == 0 &&
	    digest_string(ctx, event->user) == 0 &&
	    digest_string(ctx, event->mailbox) == 0 &&
	    digest_uint64(ctx, event->uidvalidity) == 0 &&
	    digest_uint64(ctx, event->uid) == 0 &&
	    digest_string(ctx, event->session) == 0 &&
	    digest_uint64(ctx, (uint64_t)(int64_t)event->timestamp) == 0 &&
	    /* absent when 0: the ids of events written before seq
	       existed do not change */
	    (event->seq == 0 || digest_uint64(ctx, event->seq) == 0) &&
	    EVP_DigestFinal_ex(ctx, md_r, &md_len) == 1 &&
	    md_len * 2 >= EVENT_ID_HEX_LEN)
		ret = 0;
	EVP_MD_CTX_free(ctx);
	return ret;
}

void retention_event_id(const struct retention_event *event,
			char id_r[RETENTION_EVENT_ID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t pos = sizeof(EVENT_ID_PREFIX) - 1;
	unsigned int i;

	/* The header gives this no way to fail, and any fallback id would
	   either collide (receivers drop events as duplicates) or change
	   between retries. SHA-256 only fails when OpenSSL cannot allocate,
	   which Dovecot treats as fatal too. */
	if (event_id_digest(event, md) < 0) {
		fputs("pop3-retention: SHA-256 failed computing an event id\n",
		      stderr);
		abort();
	}
	memcpy(id_r, EVENT_ID_PREFIX, pos);
	for (i = 0; i < EVENT_ID_HEX_LEN / 2; i++) {
		id_r[pos++] = hex[md[i] >> 4];
		id_r[pos++] = hex[md[i] & 0x0f];
	}
	id_r[pos] = '\0';
}

int retention_event_render(void *context, const unsigned char *stored,
			   size_t stored_len, unsigned char **body_r,
			   size_t *body_len_r, const char **error_r)
{
	const size_t prefix_len = sizeof(RETENTION_EVENT_RECORD_PREFIX) - 1;
	struct retention_event event;
	char *fields, *json;

	(void)context;
	if (stored_len < prefix_len ||
	    memcmp(stored, RETENTION_EVENT_RECORD_PREFIX, prefix_len) != 0)
		return 0;
	fields = malloc(stored_len - prefix_len + 1);
	if (fields == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	memcpy(fields, stored + prefix_len, stored_len - prefix_len);
	fields[stored_len - prefix_len] = '\0';
	if (strlen(fields) != stored_len - prefix_len) {
		free(fields);
		*error_r = "NUL byte in a compact event record";
		return -1;
	}
	if (retention_event_decode(fields, &event, error_r) < 0) {
		free(fields);
		return -1;
	}
	json = retention_event_to_json(&event);
	free(fields);
	if (json == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	*body_r = (unsigned char *)json;
	*body_len_r = strlen(json);
	return 1;
}
