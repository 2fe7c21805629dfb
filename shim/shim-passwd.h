#ifndef SHIM_PASSWD_H
#define SHIM_PASSWD_H

/* Users of pop3-retentiond, from a file in Dovecot's passwd-file format,
   so that one file serves both hosts:

     user:password:uid:gid:gecos:home:shell:extra_fields

   Only user and password are required; uid, gid, gecos and shell are
   accepted and ignored. extra_fields are blank-separated key=value
   pairs (userdb_pop3_retention_keep=30d ...). Blank lines and lines
   starting with '#' are skipped. A password is "{SCHEME}data" or, with
   no scheme, a crypt(3) string (Dovecot's default scheme CRYPT).

   Schemes: CRYPT, SHA512-CRYPT, SHA256-CRYPT, MD5-CRYPT, BLF-CRYPT
   (where libcrypt has bcrypt) and yescrypt ($y$ strings) go through
   crypt_r(3); PLAIN, CLEAR and CLEARTEXT are compared as they are (the
   server warns at start-up when a file has them). */

#include <stdbool.h>
#include <stddef.h>

struct shim_passwd_user {
	const char *name;
	/* the password field as written */
	const char *password;
	/* "" when absent */
	const char *home;
	unsigned int extra_count;
	const char *const *extra_keys;
	const char *const *extra_values;
};

struct shim_passwd;

/* Load path. Returns 0 with *passwd_r, or -1 with error naming the file
   and line (a line without a password field, a duplicate user, a line
   over SHIM_PASSWD_LINE_MAX, more than SHIM_PASSWD_EXTRA_MAX extra
   fields, an extra field without '=', an unsupported scheme). */
int shim_passwd_load(const char *path, struct shim_passwd **passwd_r,
		     char *error, size_t error_size);
void shim_passwd_free(struct shim_passwd **passwd);

/* The user called name, or NULL. Valid until free. */
const struct shim_passwd_user *
shim_passwd_lookup(const struct shim_passwd *passwd, const char *name);
/* Every user, for sweeps: idx < shim_passwd_count(). */
unsigned int shim_passwd_count(const struct shim_passwd *passwd);
const struct shim_passwd_user *
shim_passwd_user(const struct shim_passwd *passwd, unsigned int idx);
/* Users whose password is stored in plain text. */
unsigned int shim_passwd_plain_count(const struct shim_passwd *passwd);

/* Whether this build can check stored (its scheme is known and, for
   crypt schemes, libcrypt supports the hash's prefix). */
bool shim_passwd_scheme_supported(const char *stored);
/* Check password against stored. Returns 1 match, 0 mismatch, -1 with
   error (unsupported or malformed hash). Compares in constant time.
   Blocking (crypt_r(3) takes milliseconds): the server calls it from
   its crypt worker pool (shim-crypt.h), never from the event loop. */
int shim_passwd_verify(const char *stored, const char *password,
		       char *error, size_t error_size);

#endif
