/* Pending records of a plan's events (see the header). */

#include "lib.h"
#include "str.h"
#include "strnum.h"
#include "hex-binary.h"
#include "randgen.h"
#include "ioloop.h"
#include "pop3-retention-protocol.h"
#include "pop3-retention-pending.h"

#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A writer locks its file right after creating it: an unlocked file
   without the magic line is taken for left over only once it is this
   old. */
#define PENDING_EMPTY_GRACE_SECS 60
#define PENDING_MAGIC_LEN (sizeof(POP3_RETENTION_PENDING_MAGIC) - 1)

struct pop3_retention_pending {
	char *path;
	int fd;
};

/* dir, and the outbox directory above it if missing */
static int mkdir_parents_0700(const char *dir, const char **error_r)
{
	const char *p;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	p = strrchr(dir, '/');
	if (errno == ENOENT && p != NULL && p != dir) {
		const char *parent = t_strdup_until(dir, p);

		if ((mkdir(parent, 0700) == 0 || errno == EEXIST) &&
		    (mkdir(dir, 0700) == 0 || errno == EEXIST))
			return 0;
	}
	*error_r = t_strdup_printf("mkdir(%s) failed: %m", dir);
	return -1;
}

struct pop3_retention_pending *
pop3_retention_pending_create(const char *dir, const char **error_r)
{
	struct pop3_retention_pending *pending;
	unsigned char rand[8];
	const char *path;
	int fd;

	if (mkdir_parents_0700(dir, error_r) < 0)
		return NULL;
	random_fill(rand, sizeof(rand));
	path = t_strdup_printf("%s/%ld.%ld.%s", dir, (long)ioloop_time,
			       (long)getpid(),
			       binary_to_hex(rand, sizeof(rand)));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW |
		  O_CLOEXEC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return NULL;
	}
	if (flock(fd, LOCK_EX) < 0 ||
	    write(fd, POP3_RETENTION_PENDING_MAGIC, PENDING_MAGIC_LEN) !=
	    (ssize_t)PENDING_MAGIC_LEN) {
		*error_r = t_strdup_printf("flock/write(%s) failed: %m", path);
		i_close_fd(&fd);
		i_unlink(path);
		return NULL;
	}
	pending = i_new(struct pop3_retention_pending, 1);
	pending->path = i_strdup(path);
	pending->fd = fd;
	return pending;
}

int pop3_retention_pending_append(struct pop3_retention_pending *pending,
				  int64_t created_ms, const char *fields,
				  const char **error_r)
{
	string_t *str = t_str_new(strlen(fields) + 32);
	ssize_t ret;

	pop3_retention_str_append_int64(str, created_ms);
	str_append_c(str, '\t');
	str_append(str, fields);
	str_append_c(str, '\n');
	/* one write: a line is whole, or torn only by a kill before the
	   commit (then the reconciler skips it) */
	ret = write(pending->fd, str_data(str), str_len(str));
	if (ret != (ssize_t)str_len(str)) {
		if (ret >= 0)
			errno = ENOSPC;
		*error_r = t_strdup_printf("write(%s) failed: %m",
					   pending->path);
		return -1;
	}
	return 0;
}

void pop3_retention_pending_settle(struct pop3_retention_pending **_pending,
				   struct event *event)
{
	struct pop3_retention_pending *pending = *_pending;

	if (pending == NULL)
		return;
	*_pending = NULL;
	/* unlinked while still locked: nobody reconciles it meanwhile */
	if (unlink(pending->path) < 0 && errno != ENOENT) {
		e_error(event, "unlink(%s) failed: %m (the next session "
			"reconciles its events again, by webhook-id nothing "
			"is sent twice)", pending->path);
	}
	i_close_fd(&pending->fd);
	i_free(pending->path);
	i_free(pending);
}

/* Names pop3_retention_pending_create() makes: digits, dots, hex. */
static bool pending_name_is_valid(const char *name)
{
	if (*name == '\0' || *name == '.')
		return FALSE;
	for (; *name != '\0'; name++) {
		if (!i_isxdigit(*name) && *name != '.')
			return FALSE;
	}
	return TRUE;
}

static void pending_lines(const char *path, char *data, size_t size,
			  struct event *event,
			  pop3_retention_pending_line_cb_t *cb, void *context)
{
	char *line = data, *end = data + size, *nl, *tab;
	int64_t created_ms;

	while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
		*nl = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL ||
		    str_to_int64(t_strdup_until(line, tab), &created_ms) < 0) {
			e_error(event, "%s: not an event line: skipped",
				path);
		} else T_BEGIN {
			cb(created_ms, tab + 1, context);
		} T_END;
		line = nl + 1;
	}
	/* a line without its LF: the writer was killed writing it, before
	   its commit */
}

/* Reconcile one file: 1 done (deleted), 0 left (its writer lives),
   -1 error. */
static int pending_file(const char *dir, const char *name,
			struct event *event,
			pop3_retention_pending_line_cb_t *cb, void *context)
{
	const char *path = t_strdup_printf("%s/%s", dir, name);
	struct stat st;
	char *data;
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ELOOP) {
		e_error(event, "%s is a symbolic link, not a pending file: "
			"deleted", path);
		i_unlink(path);
		return -1;
	}
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		e_error(event, "open(%s) failed: %m", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			e_error(event, "flock(%s) failed: %m", path);
		i_close_fd(&fd);
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		e_error(event, "fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_size > POP3_RETENTION_PENDING_FILE_MAX) {
		e_error(event, "%s is not a pending file (a regular file of "
			"at most %u bytes with one link): deleted", path,
			POP3_RETENTION_PENDING_FILE_MAX);
		i_close_fd(&fd);
		i_unlink(path);
		return -1;
	}
	if ((size_t)st.st_size < PENDING_MAGIC_LEN &&
	    st.st_mtime > ioloop_time - PENDING_EMPTY_GRACE_SECS) {
		/* just created, not locked yet */
		i_close_fd(&fd);
		return 0;
	}
	data = t_malloc_no0((size_t)st.st_size + 1);
	ret = pread(fd, data, (size_t)st.st_size, 0);
	i_close_fd(&fd);
	if (ret < 0) {
		e_error(event, "read(%s) failed: %m", path);
		return -1;
	}
	if ((size_t)ret >= PENDING_MAGIC_LEN &&
	    memcmp(data, POP3_RETENTION_PENDING_MAGIC,
		   PENDING_MAGIC_LEN) == 0 &&
	    memchr(data, '\0', (size_t)ret) == NULL) {
		pending_lines(path, data + PENDING_MAGIC_LEN,
			      (size_t)ret - PENDING_MAGIC_LEN, event, cb,
			      context);
	} else if (ret > 0) {
		e_error(event, "%s is not a pending file: deleted", path);
	}
	/* its events are handed over: read again they would only be
	   skipped by webhook-id */
	i_unlink_if_exists(path);
	return 1;
}

int pop3_retention_pending_reconcile(const char *dir, struct event *event,
				     pop3_retention_pending_line_cb_t *cb,
				     void *context)
{
	struct dirent *d;
	DIR *dirp;
	unsigned int seen = 0;
	int done = 0;

	dirp = opendir(dir);
	if (dirp == NULL) {
		if (errno != ENOENT)
			e_error(event, "opendir(%s) failed: %m", dir);
		return 0;
	}
	while ((d = readdir(dirp)) != NULL &&
	       seen < POP3_RETENTION_PENDING_FILES_MAX) {
		if (d->d_name[0] == '.')
			continue;
		seen++;
		if (!pending_name_is_valid(d->d_name)) {
			e_error(event, "%s: a file that is not a pending file "
				"(bad name): left alone", dir);
			continue;
		}
		T_BEGIN {
			if (pending_file(dir, d->d_name, event, cb,
					 context) > 0)
				done++;
		} T_END;
	}
	if (closedir(dirp) < 0)
		e_error(event, "closedir(%s) failed: %m", dir);
	return done;
}

void pop3_retention_test_kill_point(const char *point)
{
	const char *value = getenv("POP3_RETENTION_TEST_KILL");

	if (value != NULL && strcmp(value, point) == 0)
		(void)kill(getpid(), SIGKILL);
}
