#ifndef SHIM_PARAMS_H
#define SHIM_PARAMS_H

/* Every limit of pop3-retentiond, with why. */

/* RFC 2449 section 4: a command line is at most 255 octets, CRLF
   included. Longer lines get -ERR and are discarded whole. */
#define SHIM_COMMAND_MAX 255
/* RFC 2449 section 4: the first line of a reply, CRLF included. */
#define SHIM_REPLY_MAX 512
/* A user name or password from USER/PASS/AUTH PLAIN; RFC 5034's
   authzid/authcid/passwd, decoded, each fit a command line. */
#define SHIM_USER_MAX 255
#define SHIM_PASSWORD_MAX 255
/* A passwd-file line: Dovecot's passwd-file has no limit, but a line
   longer than this is not a user entry anyone writes by hand or tool. */
#define SHIM_PASSWD_LINE_MAX 8192
/* Extra fields per passwd-file user (one per setting, with room). */
#define SHIM_PASSWD_EXTRA_MAX 64
/* A config file line, and the config file itself. */
#define SHIM_CONFIG_LINE_MAX 4096
#define SHIM_CONFIG_SIZE_MAX (1024 * 1024)
/* listen / listen_tls lines */
#define SHIM_LISTEN_MAX 8
/* File names, paths. */
#define SHIM_PATH_MAX 4096
/* A Maildir base name (the UIDL, RFC 1939: 1-70 characters of 0x21-0x7E;
   longer names get a hashed UIDL) */
#define SHIM_UIDL_MAX 70
/* Messages listed in one session: beyond this, the newest are not
   listed (they are in the next session after some are removed). Bounds
   a session's memory (about 200 bytes each). */
#define SHIM_MESSAGES_MAX 100000
/* The state file of one maildir (one line per message with state). */
#define SHIM_STATE_LINE_MAX 512
#define SHIM_STATE_SIZE_MAX (64 * 1024 * 1024)
/* Reading a message: one read() of this size, then converted
   (CRLF, dot-stuffing) into at most twice as many octets. */
#define SHIM_READ_CHUNK 16384
/* Output queued for a client before the reader waits for it to drain:
   bounds memory per streaming session. */
#define SHIM_OUTPUT_HIGH_WATER (64 * 1024)
/* Idle autologout: RFC 1939 section 3 asks for at least 10 minutes. */
#define SHIM_IDLE_TIMEOUT_DEFAULT_SECS 600
#define SHIM_IDLE_TIMEOUT_MIN_SECS 600
/* After a failed login the reply waits this long (and doubles per
   failure on the connection, up to the maximum): slows guessing. */
#define SHIM_AUTH_FAIL_DELAY_MSECS 2000
#define SHIM_AUTH_FAIL_DELAY_MAX_MSECS 15000
/* Failed logins on one connection before it is closed. */
#define SHIM_AUTH_FAILURES_MAX 3
/* Unauthenticated time allowed on a connection. */
#define SHIM_LOGIN_TIMEOUT_SECS 60
/* Connections per client IP address, and in all. */
#define SHIM_CONNECTIONS_PER_IP_DEFAULT 20
#define SHIM_CONNECTIONS_MAX_DEFAULT 10000
/* Password hashing threads: crypt(3) with SHA512-CRYPT or yescrypt
   takes milliseconds; off the event loop so sessions do not stall. */
#define SHIM_CRYPT_WORKERS 2
/* Hashing jobs waiting for a worker; beyond this a login gets
   -ERR [SYS/TEMP] (a flood of logins cannot grow memory). */
#define SHIM_CRYPT_QUEUE_MAX 1024

#endif
