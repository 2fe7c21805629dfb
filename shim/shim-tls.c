/* TLS for pop3-retentiond: one SSL_CTX for STLS and implicit TLS. */

#include "shim-server.h"

#include <stdio.h>
#include <openssl/err.h>

static void tls_error(char *error, size_t error_size, const char *what,
		      const char *path)
{
	unsigned long e = ERR_get_error();
	char reason[256];

	ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(error, error_size, "%s %s: %s", what, path,
		 e == 0 ? "unknown error" : reason);
	ERR_clear_error();
}

SSL_CTX *shim_tls_ctx_create(const char *cert_file, const char *key_file,
			     char *error, size_t error_size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error(error, error_size, "SSL_CTX_new", "");
		return NULL;
	}
	/* RFC 8996 / DESIGN.md: TLS 1.2 or newer */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
				SSL_OP_NO_RENEGOTIATION) == 0) {
		tls_error(error, error_size, "SSL_CTX options", "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error(error, error_size, "ssl_cert", cert_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_error(error, error_size, "ssl_key", key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(error, error_size, "ssl_key does not match ssl_cert",
			  key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
