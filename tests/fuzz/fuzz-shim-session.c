/* libFuzzer target: pop3-retentiond's command parser and session state
   machine, the real code (shim-proto, -auth, -trans, -session over a
   real Maildir), fed the input as a client's byte stream through a
   socketpair and one libevent loop.

   Built by tests/fuzz/build.sh with clang -fsanitize=fuzzer,address,
   undefined; run briefly by ./quickstart test, longer as README.md says. */

#define _GNU_SOURCE /* nftw() */

#include "shim-config.h"
#include "shim-crypt.h"
#include "shim-passwd.h"
#include "shim-server.h"
#include "fuzz-tree.h"

#include <event2/event.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct shim_server server;
static char maildir[512];
static char top_dir[] = "/tmp/fuzz-shim.XXXXXX";

static void remove_top_dir(void)
{
	fuzz_tree_remove(top_dir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

/* Three messages, as the seed corpus expects (DELE + QUIT removes). */
static void fill_maildir(void)
{
	static const char *const names[] = { "1.a.fuzz", "2.b.fuzz",
					     "3.c.fuzz" };
	char path[768];
	unsigned int i;

	for (i = 0; i < 3; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/cur/%s:2,", maildir, names[i]);
		if (stat(path, &st) == 0)
			continue;
		write_file(path, "From: a@example.com\nSubject: fuzz\n"
			   "Message-ID: <x@y>\n\nbody\n.dot line\nend\n");
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[768], text[1024], error[1024];
	const char *dir = top_dir;

	(void)argc;
	(void)argv;
	if (mkdtemp(top_dir) == NULL)
		abort();
	atexit(remove_top_dir);
	snprintf(maildir, sizeof(maildir), "%s/alice/Maildir", dir);
	snprintf(path, sizeof(path), "%s/alice", dir);
	mkdir(path, 0700);
	mkdir(maildir, 0700);
	snprintf(path, sizeof(path), "%s/cur", maildir);
	mkdir(path, 0700);
	fill_maildir();
	snprintf(path, sizeof(path), "%s/users", dir);
	snprintf(text, sizeof(text), "alice:{PLAIN}pass::::%s/alice::"
		 "userdb_pop3_retention_policy=delete-after-download\n", dir);
	write_file(path, text);
	snprintf(path, sizeof(path), "%s/conf", dir);
	snprintf(text, sizeof(text), "passwd_file = %s/users\n"
		 "plaintext_auth = always\nstate_dir = %s\n"
		 "pop3_retention_min = 0\n", dir, dir);
	write_file(path, text);

	shim_config_init(&server.config);
	if (shim_config_load(&server.config, path, error, sizeof(error)) < 0 ||
	    shim_passwd_load(server.config.passwd_file, &server.passwd, error,
			     sizeof(error)) < 0) {
		fprintf(stderr, "fuzz setup: %s\n", error);
		abort();
	}
	server.base = event_base_new();
	server.crypt = shim_crypt_pool_create(server.base, 1, error,
					      sizeof(error));
	if (server.base == NULL || server.crypt == NULL)
		abort();
	snprintf(server.expire_site, sizeof(server.expire_site), "0");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin;
	unsigned int i, quiet = 0;
	size_t off = 0;
	int fds[2];

	fill_maildir();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		abort();
	(void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(fds[1], F_SETFL, O_NONBLOCK);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	shim_client_create(&server, fds[0], (struct sockaddr *)&sin, false);

	/* feed the input while the loop runs; drain the replies; wait for
	   a password check (its result comes through the pool's pipe), not
	   for a failed login's delay */
	for (i = 0; i < 20000 && server.clients != NULL && quiet < 20; i++) {
		const struct shim_client *c = server.clients;
		char sink[65536];
		bool moved = false;

		if (off < size) {
			ssize_t n = write(fds[1], data + off, size - off);

			if (n > 0) {
				off += (size_t)n;
				moved = true;
			}
		}
		while (read(fds[1], sink, sizeof(sink)) > 0)
			moved = true;
		if (c->auth_delaying)
			break;
		(void)event_base_loop(server.base, c->crypt_job != NULL ?
				      EVLOOP_ONCE : EVLOOP_NONBLOCK);
		/* the client may be gone now: look it up again */
		c = server.clients;
		quiet = moved || (c != NULL && c->crypt_job != NULL) ?
			0 : quiet + 1;
	}
	/* a session still open ends without QUIT */
	while (server.clients != NULL)
		shim_client_destroy(server.clients);
	close(fds[1]);
	(void)event_base_loop(server.base, EVLOOP_NONBLOCK);
	return 0;
}
