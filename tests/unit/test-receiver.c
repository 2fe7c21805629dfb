/* The unit tests' HTTP receiver (see the header). */

#define _GNU_SOURCE /* pipe2() */
#include "test-receiver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int test_receiver_start(struct test_receiver *rcv, const char *script,
			const char *log_path, const char *secret1,
			const char *secret2, char *error, size_t error_size)
{
	const char *env = getenv("WEBHOOK_RECEIVER");
	int in[2], out[2];
	char line[32];
	struct pollfd pfd;
	size_t len = 0;
	ssize_t ret;

	if (env != NULL)
		script = env;
	rcv->pid = 0;
	rcv->stdin_fd = -1;
	rcv->port = 0;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		snprintf(error, error_size, "pipe: %s", strerror(errno));
		return -1;
	}
	rcv->pid = fork();
	if (rcv->pid < 0) {
		snprintf(error, error_size, "fork: %s", strerror(errno));
		rcv->pid = 0;
		return -1;
	}
	if (rcv->pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execl(TEST_RECEIVER_PYTHON, TEST_RECEIVER_PYTHON, script,
		      log_path, secret1, secret2, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	rcv->stdin_fd = in[1];
	/* the port, on one line */
	while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
		pfd.fd = out[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		ret = read(out[0], line + len, sizeof(line) - 1 - len);
		if (ret <= 0)
			break;
		len += (size_t)ret;
	}
	close(out[0]);
	line[len] = '\0';
	if (sscanf(line, "%d", &rcv->port) != 1 || rcv->port <= 0) {
		snprintf(error, error_size, "the receiver did not start "
			 "(%s %s)", TEST_RECEIVER_PYTHON, script);
		return -1;
	}
	return 0;
}

void test_receiver_stop(struct test_receiver *rcv)
{
	int status;

	if (rcv->pid <= 0)
		return;
	close(rcv->stdin_fd);
	rcv->stdin_fd = -1;
	kill(rcv->pid, SIGTERM);
	(void)waitpid(rcv->pid, &status, 0);
	rcv->pid = 0;
}

unsigned int test_receiver_requests(const char *log_path)
{
	unsigned int count = 0;
	FILE *f;
	int ch;

	f = fopen(log_path, "r");
	if (f == NULL)
		return 0;
	while ((ch = getc(f)) != EOF) {
		if (ch == '\n')
			count++;
	}
	fclose(f);
	return count;
}
