#ifndef WEBHOOK_SIGN_H
#define WEBHOOK_SIGN_H

/* Standard Webhooks v1 signatures (HMAC-SHA256 over "id.timestamp.body",
   base64), with OpenSSL. Secrets are "whsec_" + base64 of the key bytes;
   during a rotation two secrets sign each request. */

#include <stddef.h>
#include <stdint.h>

/* The spec asks for 24..64 random bytes; accept a little more so that
   secrets from other generators still work, but never less: a shorter
   key can be guessed offline from one signed request. */
#define WEBHOOK_SECRET_MIN_BYTES 24
#define WEBHOOK_SECRET_MAX_BYTES 128
#define WEBHOOK_SECRETS_MAX 2
/* "v1," + base64(32 bytes) = 3 + 44 */
#define WEBHOOK_SIGNATURE_LEN 47
/* every signature plus a separating space, and the NUL */
#define WEBHOOK_SIGNATURE_HEADER_SIZE \
	(WEBHOOK_SECRETS_MAX * (WEBHOOK_SIGNATURE_LEN + 1))

struct webhook_secret {
	unsigned char key[WEBHOOK_SECRET_MAX_BYTES];
	size_t key_len;
};

struct webhook_secrets {
	struct webhook_secret secrets[WEBHOOK_SECRETS_MAX];
	unsigned int count;
};

/* Decode one "whsec_…" secret (the prefix is optional, as in the
   reference libraries). The rest must be padded standard base64 with no
   whitespace, and decode to WEBHOOK_SECRET_MIN_BYTES..
   WEBHOOK_SECRET_MAX_BYTES bytes. Returns 0, or -1 with a static reason
   in error_r (which never contains the secret); secret_r is wiped on
   error. */
int webhook_secret_parse(const char *text, struct webhook_secret *secret_r,
			 const char **error_r);

/* Parse the content of a secret file: one or two non-empty lines, each a
   secret; blank lines and surrounding whitespace are ignored.
   Returns 0, or -1 with a static reason in error_r. */
int webhook_secrets_parse(const char *content, size_t len,
			  struct webhook_secrets *secrets_r,
			  const char **error_r);

/* HMAC-SHA256 of data under key, the primitive webhook_sign() and
   webhook_verify() are built on; public so that the unit tests can check
   it against RFC 4231. key may be empty. Writes 32 bytes to mac_r and
   returns 0, or wipes mac_r and returns -1 on an OpenSSL failure. */
int webhook_hmac_sha256(const void *key, size_t key_len, const void *data,
			size_t data_len, unsigned char mac_r[32]);

/* Wipe every key (OPENSSL_cleanse). */
void webhook_secrets_clear(struct webhook_secrets *secrets);

/* Build the webhook-signature header value: one "v1,<base64>" per
   secret, separated by a space. header_r must hold
   WEBHOOK_SIGNATURE_HEADER_SIZE bytes. Returns 0, -1 on an OpenSSL
   failure or when there is no secret. */
int webhook_sign(const struct webhook_secrets *secrets, const char *msg_id,
		 int64_t timestamp, const void *body, size_t body_len,
		 char header_r[WEBHOOK_SIGNATURE_HEADER_SIZE]);

/* The same signatures as webhook_sign(), from keys prepared once
   (the SHA-256 states after each key's inner and outer pad; each
   signature starts from copies of them): for a delivery engine that
   signs every request under the same secrets. Not thread-safe: one
   signer per thread. */
struct webhook_signer;

/* Returns NULL when there is no secret, a key is too long, or on an
   OpenSSL or allocation failure. The signer keeps no copy of the
   secrets' bytes (the key cannot be read back from the digest states),
   so the caller may wipe them right after. */
struct webhook_signer *
webhook_signer_create(const struct webhook_secrets *secrets);

/* As webhook_sign(). */
int webhook_signer_sign(struct webhook_signer *signer, const char *msg_id,
			int64_t timestamp, const void *body, size_t body_len,
			char header_r[WEBHOOK_SIGNATURE_HEADER_SIZE]);

/* Free (cleansing the digest states), NULL the pointer; *signer may be
   NULL. */
void webhook_signer_destroy(struct webhook_signer **signer);

/* Verify a webhook-signature header (space-separated list of
   "version,signature") against one secret, in constant time per
   candidate. Returns 1 if any v1 signature matches, 0 if none does, -1 on
   an internal error. Only the canonical base64 of the MAC matches. The
   timestamp tolerance is the caller's to check. Used by tests and by the
   demo sink. */
int webhook_verify(const struct webhook_secret *secret, const char *msg_id,
		   int64_t timestamp, const void *body, size_t body_len,
		   const char *header);

#endif
