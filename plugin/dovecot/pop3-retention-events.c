/* Event hand-off from a pop3 process to the pop3-retention service
   through a drop file (see the header and pop3-retention-protocol.h). */

#include "lib.h"
#include "str.h"
#include "hex-binary.h"
#include "randgen.h"
#include "ioloop.h"
#include "pop3-retention-events.h"
#include "pop3-retention-protocol.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct pop3_retention_events {
	struct event *event;
	char *drop_dir;
	char *outbox_dir;

	/* the drop file, -1 before the first event */
	int fd;
	/* its size: a failed write is cut back to it */
	off_t size;
	char *drop_path;
	/* the drop directory cannot be used: the outbox for the rest */
	bool drop_failed;

	unsigned int outboxed;
};

/* Durable before it returns: the outbox is the fallback path, and an
   event must survive a kill of this process right after. */
static void outbox_write(struct pop3_retention_events *events,
			 const char *line)
{
	const char *error;
	int written;

	written = pop3_retention_outbox_write(events->outbox_dir, &line, 1,
					      &error);
	if (written > 0)
		events->outboxed++;
	else {
		e_error(events->event, "An event was lost: neither the drop "
			"directory %s nor the outbox took it: %s",
			events->drop_dir, error);
	}
}

static void drop_failed(struct pop3_retention_events *events,
			const char *what)
{
	e_warning(events->event, "Can't hand events to the pop3-retention "
		  "service: %s; events go to the outbox %s", what,
		  events->outbox_dir);
	events->drop_failed = TRUE;
	if (events->fd != -1)
		i_close_fd(&events->fd);
}

/* Why open() of path in the drop directory failed. */
static const char *
drop_open_error(struct pop3_retention_events *events, const char *path)
{
	if (errno == ENOENT) {
		return t_strdup_printf("nobody reads the drop directory %s "
				       "(is service pop3-retention "
				       "configured?)", events->drop_dir);
	}
	return t_strdup_printf("open(%s) failed: %m", path);
}

/* Is .alive (fd) the service's: a regular file owned by the drop
   directory's owner that nobody else may write? Anybody who may create
   files in the directory may create one while the service never ran. */
static const char *
drop_alive_foreign(struct pop3_retention_events *events, int fd,
		   const char *path)
{
	struct stat st, dir_st;

	if (fstat(fd, &st) < 0)
		return t_strdup_printf("fstat(%s) failed: %m", path);
	if (stat(events->drop_dir, &dir_st) < 0)
		return t_strdup_printf("stat(%s) failed: %m", events->drop_dir);
	if (!S_ISREG(st.st_mode) || st.st_uid != dir_st.st_uid ||
	    (st.st_mode & 0022) != 0) {
		return t_strdup_printf("%s is not the service's (uid %s, mode "
				       "%04o): taken for a service that is "
				       "not running", path, dec2str(st.st_uid),
				       (unsigned int)(st.st_mode & 07777));
	}
	return NULL;
}

/* Is the service reading the drop directory? A drop file lives in
   memory until the service spools it: with nobody to read it, the
   outbox (on disk) is the safe place. The service holds a write lock
   on .alive, which only it can take (pop3-retention-protocol.h); this
   only asks (F_GETLK) and takes no lock. */
static int drop_service_alive(struct pop3_retention_events *events)
{
	const char *path = t_strdup_printf("%s/%s", events->drop_dir,
					   POP3_RETENTION_DROP_ALIVE);
	const char *error;
	struct flock fl;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		drop_failed(events, drop_open_error(events, path));
		return -1;
	}
	error = drop_alive_foreign(events, fd, path);
	if (error == NULL) {
		i_zero(&fl);
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_GETLK, &fl) < 0) {
			error = t_strdup_printf("fcntl(%s, F_GETLK) failed: "
						"%m", path);
		} else if (fl.l_type == F_UNLCK) {
			error = "the pop3-retention service is not running";
		}
	}
	i_close_fd(&fd);
	if (error != NULL) {
		drop_failed(events, error);
		return -1;
	}
	return 0;
}

/* Create the session's drop file and lock it before anything is
   written: the service takes an unlocked file with data in it for a
   complete one (and an unlocked empty one only once it is old). */
static int drop_open(struct pop3_retention_events *events)
{
	unsigned char rand[8];
	const char *path;
	mode_t old_umask;
	int fd;

	if (drop_service_alive(events) < 0)
		return -1;
	random_fill(rand, sizeof(rand));
	path = t_strdup_printf("%s/%ld.%ld.%s", events->drop_dir,
			       (long)ioloop_time, (long)getpid(),
			       binary_to_hex(rand, sizeof(rand)));
	/* the service reads it through the directory's permissions,
	   whatever this process's umask (an fchmod() would cost a
	   journaled inode change per session) */
	old_umask = umask(0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW |
		  O_CLOEXEC, POP3_RETENTION_DROP_FILE_MODE);
	umask(old_umask);
	if (fd == -1) {
		drop_failed(events, drop_open_error(events, path));
		return -1;
	}
	events->fd = fd;
	/* blocking: the service may hold a shared lock for the moment it
	   takes to look at the file */
	if (flock(fd, LOCK_EX) < 0) {
		drop_failed(events, t_strdup_printf("flock(%s) failed: %m",
						    path));
		i_unlink(path);
		return -1;
	}
	events->size = 0;
	events->drop_path = i_strdup(path);
	return 0;
}

/* Append whole "<created_ms> TAB <fields> LF" lines, or nothing. */
static int drop_write(struct pop3_retention_events *events,
		      const char *data, size_t size)
{
	const char *error;
	ssize_t ret;

	ret = write(events->fd, data, size);
	if (ret == (ssize_t)size) {
		events->size += (off_t)size;
		return 0;
	}
	if (ret >= 0)
		errno = ENOSPC;
	error = t_strdup_printf("write(%s) failed: %m", events->drop_path);
	/* a partial line would be garbage to the service: cut it off */
	if (ret > 0 && ftruncate(events->fd, events->size) < 0) {
		e_error(events->event, "ftruncate(%s) failed: %m (the "
			"service will keep the torn line aside)",
			events->drop_path);
	}
	drop_failed(events, error);
	return -1;
}

struct pop3_retention_events *
pop3_retention_events_init(struct event *event, const char *drop_dir,
			   const char *outbox_dir)
{
	struct pop3_retention_events *events;

	events = i_new(struct pop3_retention_events, 1);
	events->event = event;
	event_ref(event);
	events->fd = -1;
	events->drop_dir = i_strdup(drop_dir);
	events->outbox_dir = i_strdup(outbox_dir);
	return events;
}

void pop3_retention_events_send(struct pop3_retention_events *events,
				int64_t created_ms, const char *fields)
{
	string_t *str;

	str = t_str_new(strlen(fields) + 64);
	if (events->fd == -1 && !events->drop_failed) {
		if (drop_open(events) == 0)
			str_append(str, POP3_RETENTION_DROP_MAGIC);
	}
	/* not str_printfa(): "%s" of the whole line went through printf */
	pop3_retention_str_append_int64(str, created_ms);
	str_append_c(str, '\t');
	str_append(str, fields);
	str_append_c(str, '\n');
	if (events->fd != -1 &&
	    drop_write(events, str_c(str), str_len(str)) == 0)
		return;
	/* the outbox line has no LF and no magic */
	outbox_write(events, t_strdup_printf("%lld\t%s",
					     (long long)created_ms, fields));
}

void pop3_retention_events_deinit(struct pop3_retention_events **_events)
{
	struct pop3_retention_events *events = *_events;

	if (events == NULL)
		return;
	*_events = NULL;
	/* unlocks it: the service takes it as complete */
	if (events->fd != -1)
		i_close_fd(&events->fd);
	if (events->outboxed > 0) {
		e_warning(events->event, "%u event(s) written to the outbox "
			  "%s: run doveadm pop3-retention flush",
			  events->outboxed, events->outbox_dir);
	}
	i_free(events->drop_path);
	i_free(events->drop_dir);
	i_free(events->outbox_dir);
	event_unref(&events->event);
	i_free(events);
}
