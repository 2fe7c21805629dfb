/* Event fields on the wire and outbox files (see the header). */

#include "lib.h"
#include "str.h"
#include "strnum.h"
#include "safe-mkstemp.h"
#include "write-full.h"
#include "pop3-retention-protocol.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* An outbox file holds up to this many events and bytes; more events
   make more files. */
#define OUTBOX_FILE_EVENTS_MAX 256
#define OUTBOX_FILE_MAX (4 * 1024 * 1024)

/* Without printf: this runs for every event a pop3 process hands
   over. */
void pop3_retention_str_append_int64(string_t *dest, int64_t value)
{
	char buf[MAX_INT_STRLEN];

	if (value < 0) {
		str_append_c(dest, '-');
		/* two's complement: also right for the most negative */
		str_append(dest, dec2str_buf(buf, -(uintmax_t)value));
	} else {
		str_append(dest, dec2str_buf(buf, (uintmax_t)value));
	}
}

void pop3_retention_event_encode(string_t *dest,
				 const struct retention_event *event)
{
	char *buf = t_buffer_get(RETENTION_EVENT_ENCODED_MAX);
	int len;

	len = retention_event_encode(event, buf, RETENTION_EVENT_ENCODED_MAX);
	i_assert(len >= 0);
	/* keep only what was written, before dest may grow on the data
	   stack */
	t_buffer_alloc((size_t)len + 1);
	str_append_data(dest, buf, (size_t)len);
}

static int mkdir_if_missing(const char *path, const char **error_r)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*error_r = t_strdup_printf("mkdir(%s) failed: %m", path);
		return -1;
	}
	return 0;
}

/* Write lines[0..count) as one outbox file; durable once the caller
   fsyncs new/. */
static int outbox_write_file(const char *dir, const char *const *lines,
			     unsigned int count, const char **error_r)
{
	string_t *path = t_str_new(256), *content;
	const char *final;
	unsigned int i;
	int fd;

	str_printfa(path, "%s/tmp/%ld.", dir, (long)time(NULL));
	fd = safe_mkstemp(path, 0600, (uid_t)-1, (gid_t)-1);
	if (fd == -1) {
		*error_r = t_strdup_printf("safe_mkstemp(%s) failed: %m",
					   str_c(path));
		return -1;
	}
	content = t_str_new(256 * count + 32);
	str_append(content, POP3_RETENTION_OUTBOX_MAGIC);
	for (i = 0; i < count; i++) {
		str_append(content, lines[i]);
		str_append_c(content, '\n');
	}
	if (write_full(fd, str_data(content), str_len(content)) < 0 ||
	    fdatasync(fd) < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m",
					   str_c(path));
		i_close_fd(&fd);
		i_unlink(str_c(path));
		return -1;
	}
	i_close_fd(&fd);
	final = t_strdup_printf("%s/new/%s", dir,
				strrchr(str_c(path), '/') + 1);
	if (rename(str_c(path), final) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   str_c(path), final);
		i_unlink(str_c(path));
		return -1;
	}
	return 0;
}

int pop3_retention_outbox_write(const char *dir, const char *const *lines,
				unsigned int count, const char **error_r)
{
	const char *new_dir = t_strconcat(dir, "/new", NULL);
	unsigned int i, n, written = 0;
	size_t bytes;
	int fd;

	if (mkdir_if_missing(dir, error_r) < 0 ||
	    mkdir_if_missing(t_strconcat(dir, "/tmp", NULL), error_r) < 0 ||
	    mkdir_if_missing(new_dir, error_r) < 0)
		return -1;
	for (i = 0; i < count; i += n) {
		/* as many events per file as fit: one fdatasync each */
		bytes = strlen(POP3_RETENTION_OUTBOX_MAGIC);
		for (n = 0; i + n < count && n < OUTBOX_FILE_EVENTS_MAX; n++) {
			bytes += strlen(lines[i + n]) + 1;
			if (bytes > OUTBOX_FILE_MAX && n > 0)
				break;
		}
		if (outbox_write_file(dir, lines + i, n, error_r) < 0)
			break;
		written += n;
	}
	/* one fsync of new/ makes every rename of the batch durable */
	fd = open(new_dir, O_RDONLY | O_DIRECTORY);
	if (fd == -1 || fsync(fd) < 0) {
		*error_r = t_strdup_printf("fsync(%s) failed: %m", new_dir);
		written = 0;
	}
	if (fd != -1)
		i_close_fd(&fd);
	return written > 0 || count == 0 ? (int)written : -1;
}

int pop3_retention_outbox_read(const char *path,
			       const char *const **lines_r,
			       const char **error_r)
{
	const size_t magic_len = strlen(POP3_RETENTION_OUTBOX_MAGIC);
	struct stat st;
	char *buf;
	ssize_t ret;
	size_t len = 0;
	int fd;

	/* whoever can write the outbox may have put a FIFO (open() would
	   wait for a writer) or a symbolic link (to another file) here */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
		  O_CLOEXEC);
	if (fd == -1 && errno == ELOOP) {
		*error_r = t_strdup_printf("%s is not a regular file (a "
					   "symbolic link)", path);
		return -2;
	}
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = t_strdup_printf("%s is not a regular file (mode "
					   "%06o)", path,
					   (unsigned int)st.st_mode);
		i_close_fd(&fd);
		return -2;
	}
	/* room for the NUL that ends the text */
	buf = t_malloc_no0(OUTBOX_FILE_MAX + 2);
	do {
		ret = read(fd, buf + len, OUTBOX_FILE_MAX + 1 - len);
		if (ret > 0)
			len += (size_t)ret;
	} while ((ret > 0 || (ret < 0 && errno == EINTR)) &&
		 len <= OUTBOX_FILE_MAX);
	i_close_fd(&fd);
	if (ret < 0) {
		*error_r = t_strdup_printf("read(%s) failed: %m", path);
		return -1;
	}
	buf[len] = '\0';
	if (len > OUTBOX_FILE_MAX || len < magic_len + 2 ||
	    memcmp(buf, POP3_RETENTION_OUTBOX_MAGIC, magic_len) != 0 ||
	    buf[len - 1] != '\n' || buf[magic_len] == '\n' ||
	    memchr(buf, '\0', len) != NULL ||
	    strstr(buf + magic_len, "\n\n") != NULL) {
		*error_r = t_strdup_printf("%s: not a complete outbox file",
					   path);
		return -1;
	}
	buf[len - 1] = '\0';
	*lines_r = (const char *const *)t_strsplit(buf + magic_len, "\n");
	return 1;
}
