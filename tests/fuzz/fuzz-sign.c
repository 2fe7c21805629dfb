/* libFuzzer target: Standard Webhooks verification (webhook-sign.c), the
   real webhook_secret_parse(), webhook_secrets_parse(), webhook_sign(),
   the webhook_signer and webhook_verify().

   Input: four lines, then the body:
     <secret>\n<msg-id>\n<timestamp>\n<webhook-signature header>\n<body>
   and the whole input as a secret file's content. Invariants: the
   fuzzed header verifies (or not) without error; under a secret that
   parses, a signature we make verifies, the signer makes the same one,
   and one with a character changed does not verify. */

#include "pop3-retention-config.h"
#include "webhook-sign.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*p, end) as a NUL-terminated copy. */
static char *next_line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t len = (size_t)((nl != NULL ? nl : end) - *p);
	char *line = malloc(len + 1);

	if (line == NULL)
		abort();
	memcpy(line, *p, len);
	line[len] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return line;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Sign under secret, check that the signature verifies, that the
   signer agrees, and that a changed one does not verify. */
static void check_roundtrip(const struct webhook_secret *secret,
			    const char *msg_id, int64_t timestamp,
			    const uint8_t *body, size_t body_len,
			    unsigned int pick)
{
	char header[WEBHOOK_SIGNATURE_HEADER_SIZE];
	char header2[WEBHOOK_SIGNATURE_HEADER_SIZE];
	struct webhook_secrets secrets;
	struct webhook_signer *signer;
	size_t pos;
	char c;

	memset(&secrets, 0, sizeof(secrets));
	secrets.secrets[0] = *secret;
	secrets.count = 1;
	if (webhook_sign(&secrets, msg_id, timestamp, body, body_len,
			 header) < 0 ||
	    strlen(header) != WEBHOOK_SIGNATURE_LEN)
		abort();
	if (webhook_verify(secret, msg_id, timestamp, body, body_len,
			   header) != 1)
		abort();
	signer = webhook_signer_create(&secrets);
	if (signer == NULL ||
	    webhook_signer_sign(signer, msg_id, timestamp, body, body_len,
				header2) < 0 ||
	    strcmp(header, header2) != 0)
		abort();
	webhook_signer_destroy(&signer);
	/* one base64 character of the MAC changed (not the last, whose
	   low bits are padding) */
	pos = 3 + pick % (WEBHOOK_SIGNATURE_LEN - 3 - 2);
	c = b64[(strchr(b64, header[pos]) - b64 + 1 + pick % 63) % 64];
	header[pos] = c;
	if (webhook_verify(secret, msg_id, timestamp, body, body_len,
			   header) != 0)
		abort();
	webhook_secrets_clear(&secrets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct webhook_secrets file_secrets;
	struct webhook_secret secret;
	char *secret_text, *msg_id, *ts_text, *header, *content, *endp;
	const char *error;
	int64_t timestamp;
	int ret;

	content = malloc(size + 1);
	if (content == NULL)
		abort();
	memcpy(content, data, size);
	content[size] = '\0';
	if (webhook_secrets_parse(content, size, &file_secrets, &error) == 0) {
		if (file_secrets.count == 0 ||
		    file_secrets.count > WEBHOOK_SECRETS_MAX)
			abort();
		webhook_secrets_clear(&file_secrets);
	}
	free(content);

	secret_text = next_line(&p, end);
	msg_id = next_line(&p, end);
	ts_text = next_line(&p, end);
	header = next_line(&p, end);
	timestamp = strtoll(ts_text, &endp, 10);
	if (webhook_secret_parse(secret_text, &secret, &error) == 0) {
		if (secret.key_len < WEBHOOK_SECRET_MIN_BYTES ||
		    secret.key_len > WEBHOOK_SECRET_MAX_BYTES)
			abort();
		ret = webhook_verify(&secret, msg_id, timestamp, p,
				     (size_t)(end - p), header);
		if (ret != 0 && ret != 1)
			abort();
		check_roundtrip(&secret, msg_id, timestamp, p,
				(size_t)(end - p), (unsigned int)size);
	} else if (error == NULL || error[0] == '\0') {
		abort();
	}
	free(secret_text);
	free(msg_id);
	free(ts_text);
	free(header);
	return 0;
}
