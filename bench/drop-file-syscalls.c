/* What the kernel charges for the system calls of the drop-file hand-off
   (plugin/dovecot/pop3-retention-events.c and -drop.c), without Dovecot:

       cc -O2 -o /tmp/drop-file-syscalls bench/drop-file-syscalls.c
       mkdir -p /dev/shm/dfs && /tmp/drop-file-syscalls /dev/shm/dfs
       mkdir -p /var/tmp/dfs && /tmp/drop-file-syscalls /var/tmp/dfs

   DIR must be empty and is watched with inotify with the mask the
   service uses for the drop directory (its queue is drained between
   the steps). It prints the CPU time (getrusage) per operation,
   averaged over N (default 20,000) repetitions:
   - the pop3 process's check that the service runs (open of .alive,
     a failing shared flock(), close);
   - creating and locking a session's file and closing it, empty;
   - the same with ten 200-byte write()s, as a session of ten RETRs;
   - the service's unlink() of such files (empty and written);
   - one 200-byte write() alone, and getppid() for scale.
   A tight loop: caches stay warm, so a real session pays more. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu_secs(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 +
		r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static void drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void report(const char *what, double start, int n)
{
	printf("%-44s %8.2f us\n", what, (cpu_secs() - start) / n * 1e6);
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void create_files(const char *dir, const char *prefix, int n,
			 int writes, const char *line, size_t len)
{
	char path[4096];
	mode_t old;
	int i, k, fd;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s.%d", dir, prefix, i);
		old = umask(0);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
			  O_NOFOLLOW | O_CLOEXEC, 0644);
		umask(old);
		if (fd == -1 || flock(fd, LOCK_EX) < 0)
			die(path);
		for (k = 0; k < writes; k++) {
			if (write(fd, line, len) != (ssize_t)len)
				die("write");
		}
		close(fd);
	}
}

static void unlink_files(const char *dir, const char *prefix, int n)
{
	char path[4096];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s.%d", dir, prefix, i);
		if (unlink(path) < 0)
			die(path);
	}
}

int main(int argc, char **argv)
{
	const char *dir;
	char alive[4096], path[4096], line[200];
	int n, i, in, afd, fd;
	double t;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	n = 20000;
	if (argc > 2) {
		char *end;
		long v;

		errno = 0;
		v = strtol(argv[2], &end, 10);
		if (errno != 0 || *end != '\0' || v < 1 || v > 10000000) {
			fprintf(stderr, "N: expected 1 to 10000000, not '%s'\n",
				argv[2]);
			return 2;
		}
		n = (int)v;
	}
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';

	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in == -1 || inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO |
					  IN_CLOSE_WRITE | IN_MODIFY |
					  IN_ONLYDIR) < 0)
		die(dir);
	snprintf(alive, sizeof(alive), "%s/.alive", dir);
	afd = open(alive, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	if (afd == -1 || flock(afd, LOCK_EX) < 0)
		die(alive);

	t = cpu_secs();
	for (i = 0; i < n; i++) {
		fd = open(alive, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1 || flock(fd, LOCK_SH | LOCK_NB) == 0)
			die("the .alive check");
		close(fd);
	}
	report("pop3: .alive check (open, flock, close)", t, n);
	drain(in);

	t = cpu_secs();
	create_files(dir, "e", n, 0, line, sizeof(line));
	report("pop3: create + flock + close, empty", t, n);
	drain(in);
	t = cpu_secs();
	unlink_files(dir, "e", n);
	report("service: unlink, empty", t, n);
	drain(in);

	t = cpu_secs();
	create_files(dir, "w", n, 10, line, sizeof(line));
	report("pop3: create + flock + 10 writes + close", t, n);
	drain(in);
	t = cpu_secs();
	unlink_files(dir, "w", n);
	report("service: unlink, 2 KB", t, n);
	drain(in);

	snprintf(path, sizeof(path), "%s/single", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd == -1)
		die(path);
	t = cpu_secs();
	for (i = 0; i < n * 10; i++) {
		if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line))
			die("write");
		if (i % 10 == 9 && ftruncate(fd, 0) < 0)
			die("ftruncate");
	}
	report("write 200 B (an ftruncate every 10th)", t, n * 10);
	close(fd);
	unlink(path);
	t = cpu_secs();
	for (i = 0; i < n * 10; i++)
		(void)getppid();
	report("getppid (for scale)", t, n * 10);
	close(afd);
	unlink(alive);
	return 0;
}
