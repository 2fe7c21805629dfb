/* Standard Webhooks signing against known answers: RFC 4231 for the
   HMAC, the spec's published vector for the whole scheme, and values
   computed independently with Python's hmac/base64 for rotation and edge
   cases. One cmocka test per table row. */

#include "pop3-retention-config.h"
#include "webhook-sign.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* The Standard Webhooks spec's test vector (used by its Go and Python
   suites). */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_KEY_HEX "31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* A second secret (bytes 0..31) and its signature of the spec's message,
   from Python: base64(hmac.new(key, b"id.ts.body", sha256).digest()) */
#define ROT_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define ROT_KEY_HEX \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define ROT_SIG "v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI="
/* 128 and 129 bytes ((i * 7 + 3) % 256): the largest accepted key, and
   one byte more, both 172 base64 characters */
#define B64_128 \
	"AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVM" \
	"U1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWc" \
	"o6qxuL/GzdTb4unw9/4FDBMaISgvNj1ES1JZYGdudXw="
#define HEX_128 \
	"030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dc" \
	"e3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bc" \
	"c3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b727980878e959c" \
	"a3aab1b8bfc6cdd4dbe2e9f0f7fe050c131a21282f363d444b525960676e757c"
#define B64_129 \
	"AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVM" \
	"U1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWc" \
	"o6qxuL/GzdTb4unw9/4FDBMaISgvNj1ES1JZYGdudXyD"
/* 23, 24 and 25 bytes (0x40, 0x41, ...): around the smallest key */
#define B64_23 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVY="
#define B64_24 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZX"
#define B64_25 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWA=="
#define HEX_24 "404142434445464748494a4b4c4d4e4f5051525354555657"
#define HEX_25 HEX_24 "58"

/* Hex repetition, so that RFC 4231's long keys stay readable */
#define R3(s) s s s
#define R5(s) s s s s s
#define R10(s) R5(s) R5(s)
#define R20(s) R10(s) R10(s)
#define R50(s) R10(R5(s))
#define R131(s) R10(R10(s)) R10(R3(s)) s

/* Every case struct starts with its name, which run_table() reads. */
struct hmac_case {
	const char *name;
	const char *key_hex;
	const char *data;     /* text, or NULL to use data_hex */
	const char *data_hex;
	/* RFC 4231 case 5 truncates the output to 128 bits: only that
	   many hex digits are given and compared. */
	const char *mac_hex;
};

static const struct hmac_case hmac_cases[] = {
	{ "rfc4231 case 1", R20("0b"), "Hi There", NULL,
	  "b0344c61d8db38535ca8afceaf0bf12b"
	  "881dc200c9833da726e9376c2e32cff7" },
	{ "rfc4231 case 2", "4a656665", "what do ya want for nothing?", NULL,
	  "5bdcc146bf60754e6a042426089575c7"
	  "5a003f089d2739839dec58b964ec3843" },
	{ "rfc4231 case 3", R20("aa"), NULL, R50("dd"),
	  "773ea91e36800e46854db8ebd09181a7"
	  "2959098b3ef8c122d9635514ced565fe" },
	{ "rfc4231 case 4",
	  "0102030405060708090a0b0c0d0e0f10111213141516171819", NULL,
	  R50("cd"),
	  "82558a389a443c0ea4cc819899f2083a"
	  "85f0faa3e578f8077a2e3ff46729665b" },
	{ "rfc4231 case 5 (truncated to 128 bits)", R20("0c"),
	  "Test With Truncation", NULL,
	  "a3b6167473100ee06e0c796c2955552b" },
	{ "rfc4231 case 6", R131("aa"),
	  "Test Using Larger Than Block-Size Key - Hash Key First", NULL,
	  "60e431591ee0b67f0d8a26aacbf5b77f"
	  "8e0bc6213728c5140546040f0ee37f54" },
	{ "rfc4231 case 7", R131("aa"),
	  "This is a test using a larger than block-size key and a larger "
	  "than block-size data. The key needs to be hashed before being "
	  "used by the HMAC algorithm.", NULL,
	  "9b09ffa71b942fcb27635fbcd5b0e944"
	  "bfdc63644f0713938a7f51535c3a35e2" },
	/* Python: hmac.new(b"", b"", sha256) */
	{ "empty key and data", "", "", NULL,
	  "b613679a0814d9ec772f95d778c35fc5"
	  "ff1697c493715653c6c712144292c5ad" },
};

struct sign_case {
	const char *name;
	const char *secrets[WEBHOOK_SECRETS_MAX];
	unsigned int secret_count;
	const char *msg_id;
	int64_t timestamp;
	const char *body;
	const char *header;
};

static const struct sign_case sign_cases[] = {
	{ "spec vector", { SPEC_SECRET, NULL }, 1,
	  SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG },
	{ "spec vector, secret without whsec_",
	  { "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL }, 1,
	  SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG },
	{ "second secret alone", { ROT_SECRET, NULL }, 1,
	  SPEC_ID, SPEC_TS, SPEC_BODY, ROT_SIG },
	{ "rotation: old then new", { SPEC_SECRET, ROT_SECRET }, 2,
	  SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG " " ROT_SIG },
	{ "rotation: new then old", { ROT_SECRET, SPEC_SECRET }, 2,
	  SPEC_ID, SPEC_TS, SPEC_BODY, ROT_SIG " " SPEC_SIG },
	/* Python, over "msg_1.0." */
	{ "empty body, timestamp 0", { SPEC_SECRET, NULL }, 1,
	  "msg_1", 0, "", "v1,ij2G0S51rXTp+PMwqJOjeWFLEpktT32X6cQ9P08rbws=" },
	/* Python, over "msg_1.-5.x" */
	{ "negative timestamp", { SPEC_SECRET, NULL }, 1,
	  "msg_1", -5, "x", "v1,V1Ze5+vKvACxLtXvToNu7P/eeWutz8j3WKB+Kod0XSE=" },
	/* Python; a key longer than SHA-256's block is hashed first */
	{ "128-byte key", { "whsec_" B64_128, NULL }, 1,
	  SPEC_ID, SPEC_TS, SPEC_BODY,
	  "v1,iGH/fEnQIOxuhX2PoBWUjAIjNugE/2eE4V+fqG+sfMA=" },
};

struct verify_case {
	const char *name;
	const char *secret;
	const char *msg_id;
	int64_t timestamp;
	const char *body;
	const char *header;
	int result;
};

static const struct verify_case verify_cases[] = {
	{ "spec vector", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  SPEC_SIG, 1 },
	{ "tampered body", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  "{\"test\": 2432232315}", SPEC_SIG, 0 },
	{ "body re-serialized", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  "{\"test\":2432232314}", SPEC_SIG, 0 },
	{ "tampered id", SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJel",
	  SPEC_TS, SPEC_BODY, SPEC_SIG, 0 },
	{ "tampered timestamp", SPEC_SECRET, SPEC_ID, SPEC_TS + 1,
	  SPEC_BODY, SPEC_SIG, 0 },
	{ "wrong secret", ROT_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  SPEC_SIG, 0 },
	{ "rotation header, match first", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, SPEC_SIG " " ROT_SIG, 1 },
	{ "rotation header, match second", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, ROT_SIG " " SPEC_SIG, 1 },
	{ "rotation header, other secret", ROT_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, SPEC_SIG " " ROT_SIG, 1 },
	{ "extra spaces around entries", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, "   " ROT_SIG "    " SPEC_SIG "  ", 1 },
	{ "v1a entry with a v1 signature is ignored", SPEC_SECRET, SPEC_ID,
	  SPEC_TS, SPEC_BODY,
	  "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0 },
	{ "v2 entry is ignored", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0 },
	{ "v1a entry before a v1 entry", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, "v1a,c29tZSBlZDI1NTE5IHNpZ25hdHVyZQ== " SPEC_SIG, 1 },
	{ "upper-case version", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0 },
	{ "signature without version", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0 },
	{ "version without signature", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, "v1,", 0 },
	{ "truncated signature", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", 0 },
	{ "signature with trailing bytes", SPEC_SECRET, SPEC_ID, SPEC_TS,
	  SPEC_BODY, SPEC_SIG "AAAA", 0 },
	{ "non-canonical base64 of the right MAC", SPEC_SECRET, SPEC_ID,
	  SPEC_TS, SPEC_BODY,
	  "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", 0 },
	{ "comma-separated list", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  SPEC_SIG "," ROT_SIG, 0 },
	{ "empty header", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, "", 0 },
	{ "only spaces", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, "    ",
	  0 },
	{ "garbage", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  "this is not, a signature v1 ,,, v1,!!!", 0 },
	{ "binary garbage", SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY,
	  "\x01\xff\x80v1,\xfe", 0 },
};

struct secret_case {
	const char *name;
	const char *text;
	/* NULL: parsing must fail with an error containing error_part */
	const char *key_hex;
	const char *error_part;
};

static const struct secret_case secret_cases[] = {
	{ "spec secret", SPEC_SECRET, SPEC_KEY_HEX, NULL },
	{ "without whsec_ prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	  SPEC_KEY_HEX, NULL },
	{ "one padding character", ROT_SECRET, ROT_KEY_HEX, NULL },
	{ "two padding characters", "whsec_" B64_25, HEX_25, NULL },
	{ "24 bytes, the smallest", "whsec_" B64_24, HEX_24, NULL },
	{ "23 bytes", "whsec_" B64_23, NULL, "too short" },
	{ "1 byte", "whsec_YQ==", NULL, "too short" },
	{ "128 bytes, the largest", "whsec_" B64_128, HEX_128, NULL },
	{ "empty", "", NULL, "empty" },
	{ "prefix only", "whsec_", NULL, "empty" },
	{ "129 bytes", "whsec_" B64_129, NULL, "too long" },
	{ "far too long", "whsec_" B64_128 B64_128, NULL, "too long" },
	{ "invalid characters", "whsec_!!!!", NULL, "base64" },
	{ "url-safe alphabet", "whsec_-_-_", NULL, "base64" },
	{ "missing padding", "whsec_YQ", NULL, "base64" },
	{ "padding in the middle", "whsec_YQ==YQ==", NULL, "base64" },
	{ "three padding characters", "whsec_Y===", NULL, "base64" },
	{ "only padding", "whsec_====", NULL, "base64" },
	{ "inner space", "whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw", NULL,
	  "base64" },
	{ "leading space", " whsec_YQ==", NULL, "base64" },
	{ "trailing newline", "whsec_YQ==\n", NULL, "base64" },
	{ "doubled prefix", "whsec_whsec_YQ==", NULL, "base64" },
	{ "asymmetric key prefix", "whsk_YQ==", NULL, "base64" },
};

struct secrets_file_case {
	const char *name;
	const char *content;
	/* 0: strlen(content) */
	size_t len;
	/* count == 0: parsing must fail with an error containing
	   error_part */
	unsigned int count;
	const char *secrets[WEBHOOK_SECRETS_MAX];
	const char *error_part;
};

static const struct secrets_file_case secrets_file_cases[] = {
	{ "one secret", SPEC_SECRET "\n", 0, 1, { SPEC_SECRET, NULL },
	  NULL },
	{ "one secret, no final newline", SPEC_SECRET, 0, 1,
	  { SPEC_SECRET, NULL }, NULL },
	{ "two secrets", SPEC_SECRET "\n" ROT_SECRET "\n", 0, 2,
	  { SPEC_SECRET, ROT_SECRET }, NULL },
	{ "two secrets, order kept", ROT_SECRET "\n" SPEC_SECRET, 0, 2,
	  { ROT_SECRET, SPEC_SECRET }, NULL },
	{ "blank lines, whitespace, CRLF",
	  "\r\n \t\r\n  " SPEC_SECRET " \t\r\n\n\n\t" ROT_SECRET "\t\r\n\n  ",
	  0, 2, { SPEC_SECRET, ROT_SECRET }, NULL },
	{ "three secrets", SPEC_SECRET "\n" ROT_SECRET "\n" SPEC_SECRET "\n",
	  0, 0, { NULL, NULL }, "more than two" },
	{ "three secrets among blank lines",
	  "\n" SPEC_SECRET "\n\n" ROT_SECRET "\n\nwhsec_YQ==\n\n", 0, 0,
	  { NULL, NULL }, "more than two" },
	{ "empty file", "", 0, 0, { NULL, NULL }, "no secret" },
	{ "only whitespace", " \n\t\r\n\n", 0, 0, { NULL, NULL },
	  "no secret" },
	{ "NUL byte", SPEC_SECRET "\n\0" ROT_SECRET "\n",
	  sizeof(SPEC_SECRET "\n\0" ROT_SECRET "\n") - 1, 0, { NULL, NULL },
	  "NUL" },
	{ "bad second secret", SPEC_SECRET "\nwhsec_!!!!\n", 0, 0,
	  { NULL, NULL }, "base64" },
	{ "bad first secret", "whsec_YQ\n" SPEC_SECRET "\n", 0, 0,
	  { NULL, NULL }, "base64" },
	{ "empty secret line", "whsec_\n", 0, 0, { NULL, NULL }, "empty" },
	{ "short second secret", SPEC_SECRET "\nwhsec_" B64_23 "\n", 0, 0,
	  { NULL, NULL }, "too short" },
	{ "overlong line", "whsec_" B64_128 B64_128 B64_128 "\n", 0, 0,
	  { NULL, NULL }, "too long" },
	{ "two secrets on one line", SPEC_SECRET " " ROT_SECRET "\n", 0, 0,
	  { NULL, NULL }, "base64" },
};

/* Every failure names the table row. */
static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

static size_t hex_decode(size_t idx, const char *name, const char *hex,
			 unsigned char *out, size_t out_size)
{
	size_t i, len = strlen(hex);
	unsigned int byte;

	if (len % 2 != 0 || len / 2 > out_size)
		case_fail(idx, name, "bad hex in the table: %s", hex);
	for (i = 0; i < len / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			case_fail(idx, name, "bad hex in the table: %s", hex);
		out[i] = (unsigned char)byte;
	}
	return len / 2;
}

static void hex_encode(const unsigned char *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static void secret_parse_or_fail(size_t idx, const char *name,
				 const char *text,
				 struct webhook_secret *secret_r)
{
	const char *error = NULL;

	if (webhook_secret_parse(text, secret_r, &error) != 0)
		case_fail(idx, name, "secret %s did not parse: %s", text,
			  error);
}

static void test_hmac(void **state)
{
	const struct hmac_case *c = *state;
	size_t idx = (size_t)(c - hmac_cases);
	unsigned char key[256], data[256], mac[32];
	char mac_hex[65];
	size_t key_len, data_len, cmp_len;

	key_len = hex_decode(idx, c->name, c->key_hex, key, sizeof(key));
	if (c->data != NULL) {
		data_len = strlen(c->data);
		memcpy(data, c->data, data_len);
	} else {
		data_len = hex_decode(idx, c->name, c->data_hex, data,
				      sizeof(data));
	}
	if (webhook_hmac_sha256(key, key_len, data, data_len, mac) != 0)
		case_fail(idx, c->name, "webhook_hmac_sha256() failed");
	hex_encode(mac, sizeof(mac), mac_hex);
	cmp_len = strlen(c->mac_hex);
	if (strncmp(mac_hex, c->mac_hex, cmp_len) != 0)
		case_fail(idx, c->name, "MAC %.*s, expected %s",
			  (int)cmp_len, mac_hex, c->mac_hex);
}

static void test_sign(void **state)
{
	const struct sign_case *c = *state;
	size_t idx = (size_t)(c - sign_cases);
	struct webhook_secrets secrets;
	char header[WEBHOOK_SIGNATURE_HEADER_SIZE];
	unsigned int i;
	int ret;

	memset(&secrets, 0, sizeof(secrets));
	for (i = 0; i < c->secret_count; i++) {
		secret_parse_or_fail(idx, c->name, c->secrets[i],
				     &secrets.secrets[i]);
	}
	secrets.count = c->secret_count;

	ret = webhook_sign(&secrets, c->msg_id, c->timestamp, c->body,
			   strlen(c->body), header);
	if (ret != 0)
		case_fail(idx, c->name, "webhook_sign() returned %d", ret);
	if (strcmp(header, c->header) != 0)
		case_fail(idx, c->name, "header \"%s\", expected \"%s\"",
			  header, c->header);
	/* every secret of a rotation must verify the header on its own */
	for (i = 0; i < c->secret_count; i++) {
		ret = webhook_verify(&secrets.secrets[i], c->msg_id,
				     c->timestamp, c->body, strlen(c->body),
				     header);
		if (ret != 1)
			case_fail(idx, c->name,
				  "secret %u does not verify its own header "
				  "(%d)", i, ret);
	}
	webhook_secrets_clear(&secrets);
}

/* A signer (keyed once) gives webhook_sign()'s header for every
   message it signs, also after signing others: each signature starts
   from the key's states, not from where the last one ended. */
static void test_signer(void **state)
{
	const struct sign_case *c = *state;
	size_t idx = (size_t)(c - sign_cases);
	struct webhook_secrets secrets;
	struct webhook_signer *signer;
	char header[WEBHOOK_SIGNATURE_HEADER_SIZE];
	char other[WEBHOOK_SIGNATURE_HEADER_SIZE];
	char expected[WEBHOOK_SIGNATURE_HEADER_SIZE];
	const char *other_body = "{\"type\":\"message.deleted\"}";
	unsigned int i, round;

	memset(&secrets, 0, sizeof(secrets));
	for (i = 0; i < c->secret_count; i++) {
		secret_parse_or_fail(idx, c->name, c->secrets[i],
				     &secrets.secrets[i]);
	}
	secrets.count = c->secret_count;
	signer = webhook_signer_create(&secrets);
	if (signer == NULL)
		case_fail(idx, c->name, "webhook_signer_create() failed");
	if (webhook_sign(&secrets, c->msg_id, c->timestamp + 1, other_body,
			 strlen(other_body), expected) != 0)
		case_fail(idx, c->name, "webhook_sign() failed");
	for (round = 0; round < 3; round++) {
		if (webhook_signer_sign(signer, c->msg_id, c->timestamp,
					c->body, strlen(c->body),
					header) != 0)
			case_fail(idx, c->name, "round %u: "
				  "webhook_signer_sign() failed", round);
		if (strcmp(header, c->header) != 0)
			case_fail(idx, c->name, "round %u: header \"%s\", "
				  "expected \"%s\"", round, header,
				  c->header);
		if (webhook_signer_sign(signer, c->msg_id, c->timestamp + 1,
					other_body, strlen(other_body),
					other) != 0)
			case_fail(idx, c->name, "round %u: "
				  "webhook_signer_sign() failed", round);
		if (strcmp(other, expected) != 0 ||
		    strcmp(other, header) == 0)
			case_fail(idx, c->name, "round %u: other message's "
				  "header \"%s\", expected \"%s\"", round,
				  other, expected);
	}
	webhook_signer_destroy(&signer);
	if (signer != NULL)
		case_fail(idx, c->name, "webhook_signer_destroy() left the "
			  "pointer");
	webhook_secrets_clear(&secrets);
}

static void test_verify(void **state)
{
	const struct verify_case *c = *state;
	size_t idx = (size_t)(c - verify_cases);
	struct webhook_secret secret;
	int ret;

	secret_parse_or_fail(idx, c->name, c->secret, &secret);
	ret = webhook_verify(&secret, c->msg_id, c->timestamp, c->body,
			     strlen(c->body), c->header);
	if (ret != c->result)
		case_fail(idx, c->name,
			  "webhook_verify() returned %d, expected %d "
			  "for header \"%s\"", ret, c->result, c->header);
}

static bool memory_is_zero(const void *mem, size_t size)
{
	const unsigned char *p = mem;
	size_t i;

	for (i = 0; i < size; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static void test_secret_parse(void **state)
{
	const struct secret_case *c = *state;
	size_t idx = (size_t)(c - secret_cases);
	struct webhook_secret secret;
	unsigned char key[WEBHOOK_SECRET_MAX_BYTES];
	const char *error = NULL, *b64;
	size_t key_len;
	int ret;

	memset(&secret, 0xa5, sizeof(secret));
	ret = webhook_secret_parse(c->text, &secret, &error);
	if (c->key_hex == NULL) {
		if (ret != -1)
			case_fail(idx, c->name, "parsed, expected an error");
		if (error == NULL || strstr(error, c->error_part) == NULL)
			case_fail(idx, c->name,
				  "error \"%s\" does not mention \"%s\"",
				  error == NULL ? "(null)" : error,
				  c->error_part);
		/* the error is logged: it must never echo the secret */
		b64 = strncmp(c->text, "whsec_", 6) == 0 ? c->text + 6 :
			c->text;
		if (*b64 != '\0' && strstr(error, b64) != NULL)
			case_fail(idx, c->name, "error contains the secret");
		if (!memory_is_zero(&secret, sizeof(secret)))
			case_fail(idx, c->name,
				  "secret not wiped after an error");
		return;
	}
	if (ret != 0)
		case_fail(idx, c->name, "error \"%s\", expected a key",
			  error == NULL ? "(null)" : error);
	key_len = hex_decode(idx, c->name, c->key_hex, key, sizeof(key));
	if (secret.key_len != key_len)
		case_fail(idx, c->name, "key is %zu bytes, expected %zu",
			  secret.key_len, key_len);
	if (memcmp(secret.key, key, key_len) != 0)
		case_fail(idx, c->name, "key bytes differ");
	if (!memory_is_zero(secret.key + key_len,
			    sizeof(secret.key) - key_len))
		case_fail(idx, c->name, "bytes after the key not zeroed");
}

static void test_secrets_file(void **state)
{
	const struct secrets_file_case *c = *state;
	size_t idx = (size_t)(c - secrets_file_cases);
	struct webhook_secrets secrets;
	struct webhook_secret expected;
	const char *error = NULL;
	size_t len = c->len != 0 ? c->len : strlen(c->content);
	unsigned int i;
	int ret;

	memset(&secrets, 0xa5, sizeof(secrets));
	ret = webhook_secrets_parse(c->content, len, &secrets, &error);
	if (c->count == 0) {
		if (ret != -1)
			case_fail(idx, c->name, "parsed, expected an error");
		if (error == NULL || strstr(error, c->error_part) == NULL)
			case_fail(idx, c->name,
				  "error \"%s\" does not mention \"%s\"",
				  error == NULL ? "(null)" : error,
				  c->error_part);
		if (!memory_is_zero(&secrets, sizeof(secrets)))
			case_fail(idx, c->name,
				  "secrets not wiped after an error");
		return;
	}
	if (ret != 0)
		case_fail(idx, c->name, "error \"%s\"",
			  error == NULL ? "(null)" : error);
	if (secrets.count != c->count)
		case_fail(idx, c->name, "%u secrets, expected %u",
			  secrets.count, c->count);
	for (i = 0; i < c->count; i++) {
		secret_parse_or_fail(idx, c->name, c->secrets[i], &expected);
		if (secrets.secrets[i].key_len != expected.key_len ||
		    memcmp(secrets.secrets[i].key, expected.key,
			   expected.key_len) != 0)
			case_fail(idx, c->name, "secret %u differs from %s",
				  i, c->secrets[i]);
	}
	webhook_secrets_clear(&secrets);
	if (!memory_is_zero(&secrets, sizeof(secrets)))
		case_fail(idx, c->name, "webhook_secrets_clear() left bytes");
}

/* Calls the API outside its contract: each must fail cleanly. */
static void test_misuse(void **state)
{
	struct webhook_secrets secrets;
	char header[WEBHOOK_SIGNATURE_HEADER_SIZE];
	int ret;

	(void)state;
	memset(&secrets, 0, sizeof(secrets));
	memset(header, 'x', sizeof(header));
	ret = webhook_sign(&secrets, SPEC_ID, SPEC_TS, SPEC_BODY,
			   strlen(SPEC_BODY), header);
	if (ret != -1 || header[0] != '\0')
		fail_msg("misuse: signing without a secret returned %d, "
			 "header \"%.10s\"", ret, header);

	secrets.count = 1;
	secret_parse_or_fail(0, "misuse", SPEC_SECRET, &secrets.secrets[0]);
	ret = webhook_sign(&secrets, NULL, SPEC_TS, SPEC_BODY,
			   strlen(SPEC_BODY), header);
	if (ret != -1)
		fail_msg("misuse: signing without an id returned %d", ret);
	ret = webhook_verify(&secrets.secrets[0], SPEC_ID, SPEC_TS,
			     SPEC_BODY, strlen(SPEC_BODY), NULL);
	if (ret != -1)
		fail_msg("misuse: verifying a NULL header returned %d", ret);
	secrets.count = WEBHOOK_SECRETS_MAX + 1;
	ret = webhook_sign(&secrets, SPEC_ID, SPEC_TS, SPEC_BODY,
			   strlen(SPEC_BODY), header);
	if (ret != -1)
		fail_msg("misuse: signing with %u secrets returned %d",
			 secrets.count, ret);
	if (webhook_signer_create(&secrets) != NULL)
		fail_msg("misuse: a signer with %u secrets", secrets.count);
	secrets.count = 0;
	if (webhook_signer_create(&secrets) != NULL)
		fail_msg("misuse: a signer without a secret");
	if (webhook_signer_sign(NULL, SPEC_ID, SPEC_TS, SPEC_BODY,
				strlen(SPEC_BODY), header) != -1 ||
	    header[0] != '\0')
		fail_msg("misuse: signing without a signer");
	webhook_secrets_clear(&secrets);
}

int main(void)
{
	static const struct CMUnitTest misuse_tests[] = {
		cmocka_unit_test(test_misuse),
	};
	int failed = 0;

	failed += RUN_TABLE("webhook_hmac_sha256", test_hmac, hmac_cases);
	failed += RUN_TABLE("webhook_sign", test_sign, sign_cases);
	failed += RUN_TABLE("webhook_signer", test_signer, sign_cases);
	failed += RUN_TABLE("webhook_verify", test_verify, verify_cases);
	failed += RUN_TABLE("webhook_secret_parse", test_secret_parse,
			    secret_cases);
	failed += RUN_TABLE("webhook_secrets_parse", test_secrets_file,
			    secrets_file_cases);
	failed += cmocka_run_group_tests_name("webhook misuse", misuse_tests,
					      NULL, NULL);
	return failed == 0 ? 0 : 1;
}
