#ifndef TEST_RECEIVER_H
#define TEST_RECEIVER_H

/* The real HTTP receiver of the unit tests: webhook-receiver.py
   (python3's http.server) on 127.0.0.1, started as a child process. It
   verifies every signature with Python's hmac and logs each request as
   one JSON line (see the script's docstring). */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TEST_RECEIVER_PYTHON "/usr/bin/python3"

struct test_receiver {
	pid_t pid;
	int stdin_fd;
	int port;
};

/* Start the receiver logging to log_path and verifying with secret1 (and
   secret2 unless NULL). Returns 0, or -1 with the reason in error. The
   script is $WEBHOOK_RECEIVER, or script if that is not set. */
int test_receiver_start(struct test_receiver *rcv, const char *script,
			const char *log_path, const char *secret1,
			const char *secret2, char *error, size_t error_size);

/* Stop it (closing its stdin makes it exit; SIGTERM to be sure) and wait
   for it. Does nothing if it is not running. */
void test_receiver_stop(struct test_receiver *rcv);

/* The number of requests logged so far (lines of log_path). */
unsigned int test_receiver_requests(const char *log_path);

#endif
