#ifndef WEBHOOK_CRYPTO_H
#define WEBHOOK_CRYPTO_H

/* OpenSSL 3 algorithms fetched once per process. EVP_sha256() and a
   fetch per call look the algorithm up in the provider store (a global
   lock and a hash lookup) on every digest or MAC; the events' ids,
   the spool's record checksums and the signatures need one each per
   event. The core runs in one thread: the fetch is not locked. */

#include <openssl/evp.h>

/* SHA-256, or NULL if the default provider has none (then callers fall
   back to EVP_sha256()). Never freed: it lives as long as the process. */
const EVP_MD *webhook_crypto_sha256(void);

/* HMAC, or NULL (callers fall back to a fetch of their own). */
EVP_MAC *webhook_crypto_hmac(void);

#endif
