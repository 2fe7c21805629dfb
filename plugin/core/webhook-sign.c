/* Standard Webhooks v1: HMAC-SHA256 over "id.timestamp.body", base64.
   The spec has no C reference library, so this follows the reference
   ones: an optional "whsec_" prefix on secrets, padded standard base64
   (decoded as strictly as Go's decoder, since a mangled secret file
   should fail at start-up rather than sign with the wrong key), and a
   constant-time comparison of the base64 text. */

#include "pop3-retention-config.h"
#include "webhook-sign.h"
#include "webhook-crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"
#define SECRET_PREFIX_LEN (sizeof(SECRET_PREFIX) - 1)
#define HMAC_SHA256_LEN 32
/* SHA-256's block: HMAC pads its key to it */
#define HMAC_BLOCK_LEN 64
/* base64 of the 32-byte MAC, without the NUL */
#define MAC_B64_LEN 44
#define SIGNATURE_VERSION "v1,"
#define SIGNATURE_VERSION_LEN (sizeof(SIGNATURE_VERSION) - 1)
/* base64 of the largest accepted secret, padding included */
#define SECRET_B64_MAX (((WEBHOOK_SECRET_MAX_BYTES + 2) / 3) * 4)
/* EVP_DecodeBlock() writes 3 bytes per 4 characters, padding included */
#define SECRET_DECODE_SIZE (SECRET_B64_MAX / 4 * 3)
/* One secret line of a secret file, with the prefix and the NUL. Longer
   lines cannot hold a usable secret. */
#define SECRET_LINE_SIZE (SECRET_PREFIX_LEN + SECRET_B64_MAX + 1)
/* INT64_MIN has 20 characters */
#define TIMESTAMP_STR_SIZE 24

#define STR_(x) #x
#define STR(x) STR_(x)
#define ERROR_TOO_LONG \
	"webhook secret is too long (at most " \
	STR(WEBHOOK_SECRET_MAX_BYTES) " bytes of key)"
#define ERROR_TOO_SHORT \
	"webhook secret is too short (at least " \
	STR(WEBHOOK_SECRET_MIN_BYTES) " bytes of key; make one with " \
	"openssl rand -base64 32)"
#define ERROR_BAD_BASE64 \
	"webhook secret is not valid base64 " \
	"(expected whsec_ followed by padded base64)"

_Static_assert(WEBHOOK_SIGNATURE_LEN == SIGNATURE_VERSION_LEN + MAC_B64_LEN,
	       "WEBHOOK_SIGNATURE_LEN does not match a v1 signature");

struct hmac_part {
	const void *data;
	size_t len;
};

/* A context keyed for HMAC-SHA256 with key, or NULL on an OpenSSL
   failure. Freeing it (EVP_MAC_CTX_free) cleanses the key schedule. */
static EVP_MAC_CTX *hmac_ctx_keyed(const void *key, size_t key_len)
{
	char digest_name[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC *mac, *mac_owned;
	EVP_MAC_CTX *ctx;

	mac = webhook_crypto_hmac();
	if (mac != NULL)
		mac_owned = NULL;
	else {
		mac = mac_owned = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
		if (mac == NULL)
			return NULL;
	}
	ctx = EVP_MAC_CTX_new(mac);
	/* the context holds its own reference */
	EVP_MAC_free(mac_owned);
	if (ctx == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest_name, 0);
	params[1] = OSSL_PARAM_construct_end();
	/* To EVP_MAC_init() a NULL key means "keep the previous one", which
	   fails on a fresh context: an empty key needs a non-NULL pointer. */
	if (EVP_MAC_init(ctx, key_len > 0 ? key : (const void *)"", key_len,
			 params) != 1) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The MAC of the parts under the key of ctx, just keyed by
   hmac_ctx_keyed(). The MAC is streamed over the parts so that signing
   never copies (or has to bound) the body. */
static int hmac_parts(EVP_MAC_CTX *ctx,
		      const struct hmac_part *parts, unsigned int count,
		      unsigned char mac_r[HMAC_SHA256_LEN])
{
	size_t mac_len = 0;
	unsigned int i;

	for (i = 0; i < count; i++) {
		if (parts[i].len > 0 &&
		    EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1)
			goto fail;
	}
	if (EVP_MAC_final(ctx, mac_r, &mac_len, HMAC_SHA256_LEN) != 1 ||
	    mac_len != HMAC_SHA256_LEN)
		goto fail;
	return 0;
fail:
	OPENSSL_cleanse(mac_r, HMAC_SHA256_LEN);
	return -1;
}

static int hmac_sha256_parts(const void *key, size_t key_len,
			     const struct hmac_part *parts, unsigned int count,
			     unsigned char mac_r[HMAC_SHA256_LEN])
{
	EVP_MAC_CTX *ctx;
	int ret;

	ctx = hmac_ctx_keyed(key, key_len);
	if (ctx == NULL) {
		OPENSSL_cleanse(mac_r, HMAC_SHA256_LEN);
		return -1;
	}
	ret = hmac_parts(ctx, parts, count, mac_r);
	EVP_MAC_CTX_free(ctx);
	return ret;
}

int webhook_hmac_sha256(const void *key, size_t key_len, const void *data,
			size_t data_len, unsigned char mac_r[32])
{
	struct hmac_part part = { data, data_len };

	if ((key == NULL && key_len > 0) || (data == NULL && data_len > 0)) {
		OPENSSL_cleanse(mac_r, HMAC_SHA256_LEN);
		return -1;
	}
	return hmac_sha256_parts(key, key_len, &part, 1, mac_r);
}

/* HMAC-SHA256 keyed once for a signer: the digest states after the
   key's inner and outer pads (RFC 2104). OpenSSL's own HMAC context
   keeps a copy of the raw key for its whole life; these states do not,
   and the key cannot be read back from them. */
struct hmac_key {
	EVP_MD_CTX *inner, *outer;
};

struct webhook_signer {
	/* one key per secret, in the secrets' order */
	struct hmac_key keys[WEBHOOK_SECRETS_MAX];
	/* the state a signature is computed in, copied from a key's */
	EVP_MD_CTX *work;
	unsigned int count;
};

static const EVP_MD *hmac_md(void)
{
	const EVP_MD *md = webhook_crypto_sha256();

	return md != NULL ? md : EVP_sha256();
}

static void hmac_key_free(struct hmac_key *key)
{
	/* freeing a digest context cleanses its state */
	EVP_MD_CTX_free(key->inner);
	EVP_MD_CTX_free(key->outer);
	key->inner = key->outer = NULL;
}

static int hmac_key_init(struct hmac_key *key, const unsigned char *raw,
			 size_t raw_len)
{
	unsigned char block[HMAC_BLOCK_LEN], pad[HMAC_BLOCK_LEN];
	const EVP_MD *md = hmac_md();
	unsigned int i, len;
	int ret = -1;

	memset(block, 0, sizeof(block));
	if (raw_len <= sizeof(block))
		memcpy(block, raw, raw_len);
	else if (EVP_Digest(raw, raw_len, block, &len, md, NULL) != 1)
		goto out;
	key->inner = EVP_MD_CTX_new();
	key->outer = EVP_MD_CTX_new();
	if (key->inner == NULL || key->outer == NULL)
		goto out;
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x36;
	if (EVP_DigestInit_ex(key->inner, md, NULL) != 1 ||
	    EVP_DigestUpdate(key->inner, pad, sizeof(pad)) != 1)
		goto out;
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x5c;
	if (EVP_DigestInit_ex(key->outer, md, NULL) != 1 ||
	    EVP_DigestUpdate(key->outer, pad, sizeof(pad)) != 1)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	OPENSSL_cleanse(pad, sizeof(pad));
	if (ret < 0)
		hmac_key_free(key);
	return ret;
}

/* The MAC of the parts under key, computed in work. */
static int hmac_key_parts(const struct hmac_key *key, EVP_MD_CTX *work,
			  const struct hmac_part *parts, unsigned int count,
			  unsigned char mac_r[HMAC_SHA256_LEN])
{
	unsigned char inner[HMAC_SHA256_LEN];
	unsigned int i, len = 0;
	int ret = -1;

	if (EVP_MD_CTX_copy_ex(work, key->inner) != 1)
		goto out;
	for (i = 0; i < count; i++) {
		if (parts[i].len > 0 &&
		    EVP_DigestUpdate(work, parts[i].data, parts[i].len) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(work, inner, &len) != 1 ||
	    len != HMAC_SHA256_LEN ||
	    EVP_MD_CTX_copy_ex(work, key->outer) != 1 ||
	    EVP_DigestUpdate(work, inner, sizeof(inner)) != 1 ||
	    EVP_DigestFinal_ex(work, mac_r, &len) != 1 ||
	    len != HMAC_SHA256_LEN)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(inner, sizeof(inner));
	if (ret < 0)
		OPENSSL_cleanse(mac_r, HMAC_SHA256_LEN);
	return ret;
}

/* base64 of HMAC-SHA256(key, "msg_id.timestamp.body"), NUL-terminated:
   under the signer's key idx or, with signer NULL, under secret's key */
static int signature_compute(const struct webhook_secret *secret,
			     const struct webhook_signer *signer,
			     unsigned int idx,
			     const char *msg_id, int64_t timestamp,
			     const void *body, size_t body_len,
			     char b64_r[MAC_B64_LEN + 1])
{
	char ts_str[TIMESTAMP_STR_SIZE];
	unsigned char mac[HMAC_SHA256_LEN];
	struct hmac_part parts[5];
	int len, ret;

	if (secret != NULL && secret->key_len > WEBHOOK_SECRET_MAX_BYTES)
		return -1;
	len = snprintf(ts_str, sizeof(ts_str), "%" PRId64, timestamp);
	if (len < 0 || (size_t)len >= sizeof(ts_str))
		return -1;

	parts[0] = (struct hmac_part){ msg_id, strlen(msg_id) };
	parts[1] = (struct hmac_part){ ".", 1 };
	parts[2] = (struct hmac_part){ ts_str, (size_t)len };
	parts[3] = (struct hmac_part){ ".", 1 };
	parts[4] = (struct hmac_part){ body, body_len };
	if (signer != NULL) {
		ret = hmac_key_parts(&signer->keys[idx], signer->work, parts,
				     5, mac);
	} else
		ret = hmac_sha256_parts(secret->key, secret->key_len, parts,
					5, mac);
	if (ret < 0)
		return -1;
	if (EVP_EncodeBlock((unsigned char *)b64_r, mac, sizeof(mac)) !=
	    MAC_B64_LEN) {
		OPENSSL_cleanse(mac, sizeof(mac));
		return -1;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}


/* The header from one signature per secret: under the signer's contexts
   if signer is not NULL, else under the secrets' keys. */
static int sign_header(const struct webhook_secrets *secrets,
		       struct webhook_signer *signer, const char *msg_id,
		       int64_t timestamp, const void *body, size_t body_len,
		       char header_r[WEBHOOK_SIGNATURE_HEADER_SIZE])
{
	char b64[MAC_B64_LEN + 1];
	unsigned int i, count;
	size_t pos = 0;
	int ret;

	/* cppcheck-suppress nullPointer ; secrets is set when signer is not */
	count = signer != NULL ? signer->count : secrets->count;
	for (i = 0; i < count; i++) {
		if (signer != NULL) {
			ret = signature_compute(NULL, signer, i, msg_id,
						timestamp, body, body_len,
						b64);
		} else {
			ret = signature_compute(&secrets->secrets[i], NULL,
						0, msg_id, timestamp, body,
						body_len, b64);
		}
		if (ret < 0) {
			OPENSSL_cleanse(b64, sizeof(b64));
			header_r[0] = '\0';
			return -1;
		}
		if (i > 0)
			header_r[pos++] = ' ';
		memcpy(header_r + pos, SIGNATURE_VERSION,
		       SIGNATURE_VERSION_LEN);
		pos += SIGNATURE_VERSION_LEN;
		memcpy(header_r + pos, b64, MAC_B64_LEN);
		pos += MAC_B64_LEN;
	}
	header_r[pos] = '\0';
	OPENSSL_cleanse(b64, sizeof(b64));
	return 0;
}

int webhook_sign(const struct webhook_secrets *secrets, const char *msg_id,
		 int64_t timestamp, const void *body, size_t body_len,
		 char header_r[WEBHOOK_SIGNATURE_HEADER_SIZE])
{
	header_r[0] = '\0';
	if (secrets == NULL || secrets->count == 0 ||
	    secrets->count > WEBHOOK_SECRETS_MAX || msg_id == NULL ||
	    (body == NULL && body_len > 0))
		return -1;
	return sign_header(secrets, NULL, msg_id, timestamp, body, body_len,
			   header_r);
}

struct webhook_signer *
webhook_signer_create(const struct webhook_secrets *secrets)
{
	struct webhook_signer *signer;
	unsigned int i;

	if (secrets == NULL || secrets->count == 0 ||
	    secrets->count > WEBHOOK_SECRETS_MAX)
		return NULL;
	signer = calloc(1, sizeof(*signer));
	if (signer == NULL)
		return NULL;
	signer->work = EVP_MD_CTX_new();
	for (i = 0; signer->work != NULL && i < secrets->count; i++) {
		if (secrets->secrets[i].key_len > WEBHOOK_SECRET_MAX_BYTES ||
		    hmac_key_init(&signer->keys[i], secrets->secrets[i].key,
				  secrets->secrets[i].key_len) < 0)
			break;
		signer->count++;
	}
	if (signer->work == NULL || signer->count != secrets->count)
		webhook_signer_destroy(&signer);
	return signer;
}

int webhook_signer_sign(struct webhook_signer *signer, const char *msg_id,
			int64_t timestamp, const void *body, size_t body_len,
			char header_r[WEBHOOK_SIGNATURE_HEADER_SIZE])
{
	header_r[0] = '\0';
	if (signer == NULL || msg_id == NULL ||
	    (body == NULL && body_len > 0))
		return -1;
	return sign_header(NULL, signer, msg_id, timestamp, body, body_len,
			   header_r);
}

void webhook_signer_destroy(struct webhook_signer **signer)
{
	unsigned int i;

	if (*signer == NULL)
		return;
	for (i = 0; i < (*signer)->count; i++)
		hmac_key_free(&(*signer)->keys[i]);
	EVP_MD_CTX_free((*signer)->work);
	free(*signer);
	*signer = NULL;
}

int webhook_verify(const struct webhook_secret *secret, const char *msg_id,
		   int64_t timestamp, const void *body, size_t body_len,
		   const char *header)
{
	char expected[MAC_B64_LEN + 1];
	const char *p, *end;
	int ret = 0;

	if (secret == NULL || msg_id == NULL || header == NULL ||
	    (body == NULL && body_len > 0))
		return -1;
	if (signature_compute(secret, NULL, 0, msg_id, timestamp, body,
			      body_len, expected) < 0)
		return -1;

	/* Comparing the base64 text rather than decoded bytes accepts only
	   the canonical encoding and never decodes untrusted input. Entries
	   of other versions (v1a, future ones) are skipped, as the spec
	   asks. */
	for (p = header; *p != '\0'; p = end) {
		while (*p == ' ')
			p++;
		end = p + strcspn(p, " ");
		if ((size_t)(end - p) == WEBHOOK_SIGNATURE_LEN &&
		    memcmp(p, SIGNATURE_VERSION, SIGNATURE_VERSION_LEN) == 0 &&
		    CRYPTO_memcmp(p + SIGNATURE_VERSION_LEN, expected,
				  MAC_B64_LEN) == 0) {
			ret = 1;
			break;
		}
	}
	OPENSSL_cleanse(expected, sizeof(expected));
	return ret;
}

static bool base64_char_is_valid(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* EVP_DecodeBlock() skips surrounding whitespace and counts padding as
   output bytes, so check the text ourselves first: only the standard
   alphabet, a length that is a multiple of 4, at most two '=' and only at
   the end. Returns the number of padding characters, or -1. */
static int base64_check(const char *text, size_t len)
{
	size_t i, pad = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (text[len - 1] == '=') {
		pad++;
		if (text[len - 2] == '=')
			pad++;
	}
	for (i = 0; i < len - pad; i++) {
		if (!base64_char_is_valid((unsigned char)text[i]))
			return -1;
	}
	return (int)pad;
}

int webhook_secret_parse(const char *text, struct webhook_secret *secret_r,
			 const char **error_r)
{
	unsigned char decoded[SECRET_DECODE_SIZE];
	size_t len;
	int pad, decoded_len;

	OPENSSL_cleanse(secret_r, sizeof(*secret_r));
	secret_r->key_len = 0;
	if (text == NULL) {
		*error_r = "webhook secret is empty";
		return -1;
	}
	if (strncmp(text, SECRET_PREFIX, SECRET_PREFIX_LEN) == 0)
		text += SECRET_PREFIX_LEN;
	len = strlen(text);
	if (len == 0) {
		*error_r = "webhook secret is empty";
		return -1;
	}
	if (len > SECRET_B64_MAX) {
		*error_r = ERROR_TOO_LONG;
		return -1;
	}
	pad = base64_check(text, len);
	if (pad < 0) {
		*error_r = ERROR_BAD_BASE64;
		return -1;
	}
	decoded_len = EVP_DecodeBlock(decoded, (const unsigned char *)text,
				      (int)len);
	if (decoded_len < 0 || decoded_len < pad) {
		OPENSSL_cleanse(decoded, sizeof(decoded));
		*error_r = ERROR_BAD_BASE64;
		return -1;
	}
	decoded_len -= pad;
	if ((size_t)decoded_len > WEBHOOK_SECRET_MAX_BYTES) {
		OPENSSL_cleanse(decoded, sizeof(decoded));
		*error_r = ERROR_TOO_LONG;
		return -1;
	}
	if ((size_t)decoded_len < WEBHOOK_SECRET_MIN_BYTES) {
		OPENSSL_cleanse(decoded, sizeof(decoded));
		*error_r = ERROR_TOO_SHORT;
		return -1;
	}
	memcpy(secret_r->key, decoded, (size_t)decoded_len);
	secret_r->key_len = (size_t)decoded_len;
	OPENSSL_cleanse(decoded, sizeof(decoded));
	return 0;
}

static bool char_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int webhook_secrets_parse(const char *content, size_t len,
			  struct webhook_secrets *secrets_r,
			  const char **error_r)
{
	char line[SECRET_LINE_SIZE];
	const char *p, *end, *start, *stop, *nl;
	size_t line_len;
	int ret = 0;

	OPENSSL_cleanse(secrets_r, sizeof(*secrets_r));
	secrets_r->count = 0;
	if (content == NULL)
		len = 0;
	else if (memchr(content, '\0', len) != NULL) {
		*error_r = "webhook secret file contains a NUL byte";
		return -1;
	}
	p = content;
	end = len > 0 ? content + len : content;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		stop = nl != NULL ? nl : end;
		start = p;
		p = nl != NULL ? nl + 1 : end;

		while (start < stop && char_is_space(*start))
			start++;
		while (stop > start && char_is_space(stop[-1]))
			stop--;
		if (start == stop)
			continue;
		if (secrets_r->count == WEBHOOK_SECRETS_MAX) {
			*error_r = "webhook secret file has more than two "
				   "secrets (one, or two during a rotation)";
			ret = -1;
			break;
		}
		line_len = (size_t)(stop - start);
		if (line_len >= sizeof(line)) {
			*error_r = ERROR_TOO_LONG;
			ret = -1;
			break;
		}
		memcpy(line, start, line_len);
		line[line_len] = '\0';
		ret = webhook_secret_parse(
			line, &secrets_r->secrets[secrets_r->count], error_r);
		if (ret < 0)
			break;
		secrets_r->count++;
	}
	OPENSSL_cleanse(line, sizeof(line));
	if (ret == 0 && secrets_r->count == 0) {
		*error_r = "webhook secret file contains no secret";
		ret = -1;
	}
	if (ret < 0)
		webhook_secrets_clear(secrets_r);
	return ret;
}

void webhook_secrets_clear(struct webhook_secrets *secrets)
{
	OPENSSL_cleanse(secrets, sizeof(*secrets));
	secrets->count = 0;
}
