/* The service's reader of drop files (see the header and
   pop3-retention-protocol.h, "Drop files"). */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "strnum.h"
#include "str-sanitize.h"
#include "hex-binary.h"
#include "randgen.h"
#include "ioloop.h"
#include "pop3-retention-protocol.h"
#include "pop3-retention-drop.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* inotify may report a producer's close before its lock is released:
   such a file is looked at again after this long. */
#define DROP_CLOSE_RECHECK_MSECS 10
/* After the spool could not take an event: the next try. */
#define DROP_RETRY_MSECS 1000
/* A producer locks its file right after creating it: an unlocked empty
   file is taken for complete only once it is this old (its producer was
   killed in between). */
#define DROP_EMPTY_GRACE_SECS 60
/* inotify events: a new file, every write, a producer's close */
#define DROP_INOTIFY_MASK (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | \
			   IN_MODIFY | IN_ONLYDIR)
/* One read: at least a whole line of the longest kind. */
#define DROP_READ_SIZE (POP3_RETENTION_PROTOCOL_LINE_MAX * 2)
#define DROP_MAGIC_LEN (sizeof(POP3_RETENTION_DROP_MAGIC) - 1)
/* A bigger drop file is not read: a session's events are far below
   it (an event line is well under 8 KiB). */
#define DROP_FILE_MAX (64 * 1024 * 1024)
/* A file of at least this size with less than half of it in blocks is
   sparse (a producer writes every byte): not read. */
#define DROP_SPARSE_MIN (1024 * 1024)
/* What is kept of rejected lines: per drop file, and in all of the
   rejected directory. */
#define DROP_REJECTED_FILE_MAX (64 * 1024)
#define DROP_REJECTED_TOTAL_MAX (4 * 1024 * 1024)
/* Rejected lines logged per drop file (then one line saying so). */
#define DROP_REJECT_LOG_PER_FILE 10
/* Lines the reader logs about what producers put in the directory, per
   minute (then one line counting the rest). */
#define DROP_LOG_PER_MINUTE 100

struct drop_file {
	char *name;
	int fd;
	/* its owner: the user its events must name (see the header) */
	uid_t uid;
	/* rejected lines logged */
	unsigned int rejects_logged;
	/* its rejected file is full */
	bool rejects_full;
	/* the events before this offset are in a committed spool batch */
	off_t committed;
	/* the events before this offset were handed to the service */
	off_t read;
	/* inotify reported a close: look for the lock's release */
	bool close_seen;
	/* the producer let go of it: nothing more will come */
	bool complete;
	/* complete and read to its end */
	bool done;
	/* named by the inotify events being handled */
	bool touched;
	/* grew past DROP_FILE_MAX: not read further, left alone */
	bool skipped;
};

struct drop_reader {
	struct event *event;
	char *dir, *rejected_dir;
	struct drop_reader_callbacks cb;
	void *context;

	int dir_fd;
	/* POP3_RETENTION_DROP_ALIVE, write-locked while this reader
	   runs */
	int alive_fd;
	int inotify_fd;
	struct io *io;
	/* a reported close waits for its lock's release */
	struct timeout *to_recheck;
	struct timeout *to_retry;
	/* the first read of the files found at the start */
	struct timeout *to_start;

	HASH_TABLE(char *, struct drop_file *) files;

	unsigned char *buf;
	/* bytes in rejected_dir */
	uoff_t rejected_total;
	/* DROP_LOG_PER_MINUTE: the minute and its lines */
	time_t log_minute;
	unsigned int log_lines, log_dropped;
	/* the spool refused an append: wait for to_retry */
	bool blocked;
	/* inside a read of the files: committed() must not remove them */
	bool reading;
	bool rejected_dir_made;
};

static void drop_reader_update_mode(struct drop_reader *r);

/* ---- preparation (as root) ---- */

void drop_dir_prepare(const char *dir, const char *socket_path, uid_t uid,
		      gid_t fallback_gid)
{
	struct stat st;
	mode_t mode = 01700;
	gid_t gid = fallback_gid;

	/* the same access as the socket: who may connect may drop */
	if (stat(socket_path, &st) == 0) {
		gid = st.st_gid;
		if ((st.st_mode & 0020) != 0)
			mode |= 0030;
		if ((st.st_mode & 0002) != 0)
			mode |= 0003;
	} else {
		i_warning("stat(%s) failed: %m: the drop directory %s is "
			  "open to the service's own group only", socket_path,
			  dir);
		mode |= 0030;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		i_fatal("mkdir(%s) failed: %m (state_dir must exist)", dir);
	if (lstat(dir, &st) < 0)
		i_fatal("lstat(%s) failed: %m", dir);
	if (!S_ISDIR(st.st_mode))
		i_fatal("%s is not a directory", dir);
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    chown(dir, uid, gid) < 0)
		i_fatal("chown(%s) failed: %m", dir);
	if ((st.st_mode & 07777) != mode && chmod(dir, mode) < 0)
		i_fatal("chmod(%s) failed: %m", dir);
}

/* ---- what producers put in the directory ---- */

/* Log (as an error) what a producer did, at most DROP_LOG_PER_MINUTE
   lines a minute: whoever may write to the directory must not be able
   to flood the log. */
static void ATTR_FORMAT(2, 3)
drop_log(struct drop_reader *r, const char *fmt, ...)
{
	va_list args;

	if (ioloop_time / 60 != r->log_minute) {
		if (r->log_dropped > 0) {
			e_error(r->event, "%u more messages about the drop "
				"directory %s were not logged (at most %u a "
				"minute)", r->log_dropped, r->dir,
				DROP_LOG_PER_MINUTE);
		}
		r->log_minute = ioloop_time / 60;
		r->log_lines = 0;
		r->log_dropped = 0;
	}
	if (r->log_lines >= DROP_LOG_PER_MINUTE) {
		r->log_dropped++;
		return;
	}
	r->log_lines++;
	va_start(args, fmt);
	T_BEGIN {
		e_error(r->event, "%s", t_strdup_vprintf(fmt, args));
	} T_END;
	va_end(args);
}

/* Is name of the form producers give their files,
   "<unix time>.<pid>.<16 lower-case hex digits>"? Others are not read,
   and their names are not logged as they are. */
static bool drop_name_is_valid(const char *name)
{
	unsigned int part, n;

	for (part = 0; part < 2; part++) {
		n = 0;
		while (i_isdigit(*name)) {
			name++;
			n++;
		}
		if (n == 0 || n > 20 || *name++ != '.')
			return FALSE;
	}
	for (n = 0; n < 16; n++, name++) {
		if (!i_isdigit(*name) && (*name < 'a' || *name > 'f'))
			return FALSE;
	}
	return *name == '\0';
}

/* Keep a line that is not an event in the rejected file, within
   DROP_REJECTED_FILE_MAX for the file and DROP_REJECTED_TOTAL_MAX for
   them all. */
static void reject_keep(struct drop_reader *r, struct drop_file *f,
			const void *data, size_t size, const char *path)
{
	struct stat st;
	int fd;

	if (r->rejected_total + size + 1 > DROP_REJECTED_TOTAL_MAX) {
		f->rejects_full = TRUE;
		drop_log(r, "The rejected lines in %s reached %u bytes: "
			 "further lines of this file are not kept",
			 r->rejected_dir, DROP_REJECTED_TOTAL_MAX);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW |
		  O_CLOEXEC, 0600);
	if (fd == -1) {
		e_error(r->event, "open(%s) failed: %m", path);
		return;
	}
	if (fstat(fd, &st) < 0) {
		e_error(r->event, "fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return;
	}
	if ((uoff_t)st.st_size + size + 1 > DROP_REJECTED_FILE_MAX) {
		f->rejects_full = TRUE;
		drop_log(r, "Drop file %s/%s: %s holds %u bytes: further "
			 "lines of this file are not kept", r->dir, f->name,
			 path, DROP_REJECTED_FILE_MAX);
		i_close_fd(&fd);
		return;
	}
	if (write(fd, data, size) != (ssize_t)size || write(fd, "\n", 1) != 1)
		e_error(r->event, "write(%s) failed: %m", path);
	else
		r->rejected_total += size + 1;
	i_close_fd(&fd);
}

static void reject(struct drop_reader *r, struct drop_file *f,
		   const void *data, size_t size, const char *reason)
{
	const char *path;

	if (f->rejects_full &&
	    f->rejects_logged > DROP_REJECT_LOG_PER_FILE)
		return;
	if (!r->rejected_dir_made) {
		if (mkdir(r->rejected_dir, 0700) < 0 && errno != EEXIST) {
			e_error(r->event, "mkdir(%s) failed: %m",
				r->rejected_dir);
		}
		r->rejected_dir_made = TRUE;
	}
	path = t_strdup_printf("%s/%s", r->rejected_dir, f->name);
	if (f->rejects_logged < DROP_REJECT_LOG_PER_FILE) {
		drop_log(r, "Drop file %s/%s: not an event (%s): the line "
			 "is kept in %s", r->dir, f->name, reason, path);
	} else if (f->rejects_logged == DROP_REJECT_LOG_PER_FILE) {
		drop_log(r, "Drop file %s/%s: further rejected lines are "
			 "not logged", r->dir, f->name);
	}
	if (f->rejects_logged <= DROP_REJECT_LOG_PER_FILE)
		f->rejects_logged++;
	if (!f->rejects_full)
		reject_keep(r, f, data, size, path);
}

/* The bytes in the rejected directory, for DROP_REJECTED_TOTAL_MAX. */
static uoff_t drop_rejected_size(const char *dir)
{
	struct dirent *d;
	struct stat st;
	uoff_t total = 0;
	DIR *dirp;

	dirp = opendir(dir);
	if (dirp == NULL)
		return 0;
	while ((d = readdir(dirp)) != NULL) {
		if (fstatat(dirfd(dirp), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			total += (uoff_t)st.st_size;
	}
	(void)closedir(dirp);
	return total;
}

/* Is the file too big to be a producer's, or sparse? Logged. */
static bool drop_file_size_refused(struct drop_reader *r, const char *name,
				   const struct stat *st)
{
	if (st->st_size > DROP_FILE_MAX) {
		drop_log(r, "Drop file %s/%s is larger than %u bytes: not "
			 "read, left alone", r->dir, name, DROP_FILE_MAX);
		return TRUE;
	}
	if (st->st_size >= DROP_SPARSE_MIN &&
	    (uoff_t)st->st_blocks * 512 < (uoff_t)st->st_size / 2) {
		drop_log(r, "Drop file %s/%s is sparse (%lld bytes, %lld in "
			 "blocks): not read, left alone", r->dir, name,
			 (long long)st->st_size,
			 (long long)st->st_blocks * 512);
		return TRUE;
	}
	return FALSE;
}

/* ---- the files ---- */

static void drop_file_free(struct drop_file *f)
{
	if (f->fd != -1)
		i_close_fd(&f->fd);
	i_free(f->name);
	i_free(f);
}

static struct drop_file *drop_file_get(struct drop_reader *r,
				       const char *name)
{
	struct drop_file *f;
	struct stat st;
	int fd;

	f = hash_table_lookup(r->files, name);
	if (f != NULL || name[0] == '.' || name[0] == '\0')
		return f;
	if (!drop_name_is_valid(name)) {
		/* never opened; the name only sanitized and capped */
		drop_log(r, "%s holds a file whose name is not a drop file's "
			 "(\"%s\"): ignored", r->dir, str_sanitize(name, 40));
		return NULL;
	}
	fd = openat(r->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT) {
			e_error(r->event, "open(%s/%s) failed: %m", r->dir,
				name);
		}
		return NULL;
	}
	/* nothing but a producer's own file: a hard link to another file
	   is not read (nor removed) */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		drop_log(r, "%s/%s is not a drop file (not a regular "
			 "file with one link): left alone", r->dir, name);
		i_close_fd(&fd);
		return NULL;
	}
	if (drop_file_size_refused(r, name, &st)) {
		i_close_fd(&fd);
		return NULL;
	}
	f = i_new(struct drop_file, 1);
	f->name = i_strdup(name);
	f->fd = fd;
	f->uid = st.st_uid;
	/* read from its start: after a restart, the events already in the
	   spool are skipped there (their webhook-ids are held) */
	f->committed = f->read = 0;
	hash_table_insert(r->files, f->name, f);
	return f;
}

/* Move past n bytes that brought no event (a rejected line): when
   nothing before them waits for a commit, there is nothing to wait for,
   so a file of nothing but rejected lines is removed too. */
static void drop_file_skip(struct drop_file *f, off_t n)
{
	if (f->committed == f->read)
		f->committed += n;
	f->read += n;
}

/* Hand the complete lines from f->read on to the service. Returns -1 if
   the service could not take one (r->blocked), 0 otherwise. */
static int drop_file_read_lines(struct drop_reader *r, struct drop_file *f)
{
	const unsigned char *data, *nl;
	const char *reason;
	size_t size, pos, len;
	ssize_t n;
	int ret;

	for (;;) {
		if (f->read > DROP_FILE_MAX) {
			drop_log(r, "Drop file %s/%s is larger than %u bytes: "
				 "not read further, left alone", r->dir,
				 f->name, DROP_FILE_MAX);
			f->skipped = TRUE;
			return 0;
		}
		n = pread(f->fd, r->buf, DROP_READ_SIZE, f->read);
		if (n < 0) {
			e_error(r->event, "pread(%s/%s) failed: %m", r->dir,
				f->name);
			return 0;
		}
		if (n == 0)
			return 0;
		data = r->buf;
		size = (size_t)n;
		pos = 0;
		if (f->read == 0) {
			if (size < DROP_MAGIC_LEN && !f->complete &&
			    memcmp(data, POP3_RETENTION_DROP_MAGIC, size) == 0)
				return 0;
			if (size >= DROP_MAGIC_LEN &&
			    memcmp(data, POP3_RETENTION_DROP_MAGIC,
				   DROP_MAGIC_LEN) == 0) {
				pos = DROP_MAGIC_LEN;
				drop_file_skip(f, (off_t)pos);
			}
		}
		while ((nl = memchr(data + pos, '\n', size - pos)) != NULL) {
			len = (size_t)(nl - (data + pos));
			T_BEGIN {
				if (memchr(data + pos, '\0', len) != NULL) {
					reason = "a NUL byte";
					ret = 0;
				} else {
					ret = r->cb.event(t_strndup(data + pos,
								    len), f->uid,
							  &reason, r->context);
				}
				if (ret == 0) {
					reject(r, f, data + pos, len, reason);
				}
			} T_END;
			if (ret < 0) {
				r->blocked = TRUE;
				return -1;
			}
			pos += len + 1;
			if (ret == 0)
				drop_file_skip(f, (off_t)(len + 1));
			else
				f->read += (off_t)(len + 1);
		}
		if (pos == 0 && size == DROP_READ_SIZE) {
			/* no LF in a whole buffer */
			reject(r, f, data, size, t_strdup_printf(
				"a line longer than %u bytes",
				POP3_RETENTION_PROTOCOL_LINE_MAX));
			drop_file_skip(f, (off_t)size);
			continue;
		}
		if (size < DROP_READ_SIZE)
			return 0;
	}
}

/* Read what f has now; notice when its producer is gone. */
static void drop_file_read(struct drop_reader *r, struct drop_file *f)
{
	struct stat st;
	bool have_st = FALSE;

	if (f->done || f->skipped || r->blocked)
		return;
	for (;;) {
		if (drop_file_read_lines(r, f) < 0 || f->skipped)
			return;
		if (f->complete)
			break;
		if (flock(f->fd, LOCK_SH | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK) {
				e_error(r->event, "flock(%s/%s) failed: %m",
					r->dir, f->name);
			}
			return;
		}
		if (fstat(f->fd, &st) < 0) {
			e_error(r->event, "fstat(%s/%s) failed: %m", r->dir,
				f->name);
			(void)flock(f->fd, LOCK_UN);
			return;
		}
		if (st.st_size == 0 &&
		    st.st_mtime > ioloop_time - DROP_EMPTY_GRACE_SECS) {
			/* just created, not locked yet: let go at once, its
			   producer waits for this lock */
			(void)flock(f->fd, LOCK_UN);
			return;
		}
		/* unlocked: the producer is gone, the size is final; read
		   what it wrote before it let go */
		f->complete = TRUE;
		have_st = TRUE;
	}
	if (!have_st && fstat(f->fd, &st) < 0) {
		e_error(r->event, "fstat(%s/%s) failed: %m", r->dir, f->name);
		return;
	}
	if (st.st_size > f->read) {
		/* a producer killed in the middle of a write */
		ssize_t n = pread(f->fd, r->buf, DROP_READ_SIZE, f->read);

		if (n > 0) {
			reject(r, f, r->buf, (size_t)n,
			       "an unterminated last line");
		}
		drop_file_skip(f, st.st_size - f->read);
	}
	f->done = TRUE;
}

/* Remove the complete files whose events are all committed. */
static void drop_reader_reap(struct drop_reader *r)
{
	struct hash_iterate_context *iter;
	ARRAY(struct drop_file *) gone;
	struct drop_file *f, *const *fp;
	char *name;

	t_array_init(&gone, 8);
	iter = hash_table_iterate_init(r->files);
	while (hash_table_iterate(iter, r->files, &name, &f)) {
		if (f->done && f->committed == f->read)
			array_push_back(&gone, &f);
	}
	hash_table_iterate_deinit(&iter);
	array_foreach(&gone, fp) {
		f = *fp;
		if (unlinkat(r->dir_fd, f->name, 0) < 0 && errno != ENOENT) {
			/* read again, and spooled again, at the next start:
			   better than lost */
			e_error(r->event, "unlink(%s/%s) failed: %m", r->dir,
				f->name);
		}
		hash_table_remove(r->files, f->name);
		drop_file_free(f);
	}
}

static void drop_reader_read_files(struct drop_reader *r, bool all)
{
	struct hash_iterate_context *iter;
	ARRAY(struct drop_file *) files;
	struct drop_file *f, *const *fp;
	char *name;

	t_array_init(&files, 32);
	iter = hash_table_iterate_init(r->files);
	while (hash_table_iterate(iter, r->files, &name, &f)) {
		if (all || f->touched || (f->close_seen && !f->complete))
			array_push_back(&files, &f);
		f->touched = FALSE;
	}
	hash_table_iterate_deinit(&iter);

	r->reading = TRUE;
	array_foreach(&files, fp)
		drop_file_read(r, *fp);
	r->reading = FALSE;
	/* the events go with the next commit; files that brought none
	   may be finished now */
	r->cb.appended(r->context);
	drop_reader_reap(r);
}

static void drop_reader_scan_dir(struct drop_reader *r)
{
	struct dirent *d;
	DIR *dir;

	dir = opendir(r->dir);
	if (dir == NULL) {
		e_error(r->event, "opendir(%s) failed: %m", r->dir);
		return;
	}
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] != '.')
			(void)drop_file_get(r, d->d_name);
	}
	if (closedir(dir) < 0)
		e_error(r->event, "closedir(%s) failed: %m", r->dir);
}

/* ---- inotify ---- */

/* Mark the files the queued inotify events name. Returns FALSE if the
   queue overflowed (then every file must be looked at). */
static bool drop_reader_inotify_drain(struct drop_reader *r)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	struct drop_file *f;
	bool overflow = FALSE;
	ssize_t n;
	size_t pos;

	while ((n = read(r->inotify_fd, buf, sizeof(buf))) > 0) {
		for (pos = 0; pos < (size_t)n;
		     pos += sizeof(*ev) + ev->len) {
			ev = (const void *)(buf + pos);
			if ((ev->mask & IN_Q_OVERFLOW) != 0) {
				overflow = TRUE;
				continue;
			}
			if (ev->len == 0)
				continue;
			f = drop_file_get(r, ev->name);
			if (f == NULL)
				continue;
			f->touched = TRUE;
			if ((ev->mask & IN_CLOSE_WRITE) != 0)
				f->close_seen = TRUE;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		e_error(r->event, "read(inotify) failed: %m");
	return !overflow;
}

static void drop_reader_wake(struct drop_reader *r)
{
	bool all;

	all = !drop_reader_inotify_drain(r);
	if (all)
		drop_reader_scan_dir(r);
	drop_reader_read_files(r, all);
	drop_reader_update_mode(r);
}

static void drop_reader_inotify(struct drop_reader *r)
{
	T_BEGIN {
		drop_reader_wake(r);
	} T_END;
}

static void drop_reader_retry(struct drop_reader *r)
{
	timeout_remove(&r->to_retry);
	r->blocked = FALSE;
	T_BEGIN {
		drop_reader_inotify_drain(r);
		drop_reader_read_files(r, TRUE);
	} T_END;
	drop_reader_update_mode(r);
}

static bool drop_reader_recheck_needed(struct drop_reader *r)
{
	struct hash_iterate_context *iter;
	struct drop_file *f;
	char *name;
	bool needed = FALSE;

	iter = hash_table_iterate_init(r->files);
	while (!needed && hash_table_iterate(iter, r->files, &name, &f))
		needed = f->close_seen && !f->complete;
	hash_table_iterate_deinit(&iter);
	return needed;
}

/* inotify, and a short timeout only while a reported close waits for
   its lock's release; after a failed append or commit, only the retry
   timeout. */
static void drop_reader_update_mode(struct drop_reader *r)
{
	if (r->blocked) {
		io_remove(&r->io);
		timeout_remove(&r->to_recheck);
		if (r->to_retry == NULL) {
			r->to_retry = timeout_add(DROP_RETRY_MSECS,
						  drop_reader_retry, r);
		}
		return;
	}
	if (r->io == NULL) {
		r->io = io_add(r->inotify_fd, IO_READ,
			       drop_reader_inotify, r);
	}
	if (!drop_reader_recheck_needed(r))
		timeout_remove(&r->to_recheck);
	else if (r->to_recheck == NULL) {
		r->to_recheck = timeout_add_short(DROP_CLOSE_RECHECK_MSECS,
						  drop_reader_inotify, r);
	}
}

/* ---- API ---- */

/* A new POP3_RETENTION_DROP_ALIVE, write-locked: created under a random
   name (others cannot list the directory), locked, then renamed over
   whatever .alive is there (the directory's sticky bit lets only its
   owner, this service, replace it). So no other process holds a lock
   on it, or can take one (others may only read it), and nothing here
   waits for a lock. Returns the fd. Fatal on errors. */
static int drop_alive_create(struct drop_reader *r)
{
	unsigned char rand[8];
	const char *tmp;
	struct flock fl;
	unsigned int try;
	int fd;

	for (try = 0;; try++) {
		random_fill(rand, sizeof(rand));
		tmp = t_strdup_printf("%s.%s", POP3_RETENTION_DROP_ALIVE,
				      binary_to_hex(rand, sizeof(rand)));
		fd = openat(r->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1)
			i_fatal("open(%s/%s) failed: %m", r->dir, tmp);
		i_zero(&fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			break;
		/* somebody guessed the name and holds a read lock */
		e_error(r->event, "fcntl(%s/%s, F_SETLK) failed: %m", r->dir,
			tmp);
		i_close_fd(&fd);
		(void)unlinkat(r->dir_fd, tmp, 0);
		if (try == 2)
			i_fatal("Cannot lock a new %s/%s", r->dir, tmp);
	}
	/* producers read it; only this service may write it, so only this
	   service can hold a write lock on it */
	if (fchmod(fd, POP3_RETENTION_DROP_ALIVE_MODE) < 0)
		i_fatal("fchmod(%s/%s) failed: %m", r->dir, tmp);
	if (renameat(r->dir_fd, tmp, r->dir_fd,
		     POP3_RETENTION_DROP_ALIVE) < 0) {
		i_fatal("rename(%s/%s, %s) failed: %m", r->dir, tmp,
			POP3_RETENTION_DROP_ALIVE);
	}
	return fd;
}

static void drop_reader_first_read(struct drop_reader *r)
{
	timeout_remove(&r->to_start);
	T_BEGIN {
		drop_reader_read_files(r, TRUE);
	} T_END;
	drop_reader_update_mode(r);
}

struct drop_reader *
drop_reader_init(const char *dir, const char *rejected_dir,
		 struct event *event,
		 const struct drop_reader_callbacks *callbacks,
		 void *context)
{
	struct drop_reader *r;

	r = i_new(struct drop_reader, 1);
	r->event = event;
	event_ref(event);
	r->dir = i_strdup(dir);
	r->rejected_dir = i_strdup(rejected_dir);
	r->cb = *callbacks;
	r->context = context;
	r->buf = i_malloc(DROP_READ_SIZE);
	r->rejected_total = drop_rejected_size(rejected_dir);
	hash_table_create(&r->files, default_pool, 64, str_hash, strcmp);
	r->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_fd == -1)
		i_fatal("open(%s) failed: %m", dir);
	/* tells producers that somebody reads the files: without it they
	   use their outboxes (see pop3-retention-protocol.h) */
	r->alive_fd = drop_alive_create(r);
	r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->inotify_fd == -1)
		i_fatal("inotify_init1() failed: %m");
	if (inotify_add_watch(r->inotify_fd, dir, DROP_INOTIFY_MASK) < 0)
		i_fatal("inotify_add_watch(%s) failed: %m", dir);

	T_BEGIN {
		drop_reader_scan_dir(r);
	} T_END;
	/* not read here: the callbacks may commit (and call back into this
	   reader) in the middle of reading, which they can do only once
	   the caller has the reader */
	r->to_start = timeout_add_short(0, drop_reader_first_read, r);
	return r;
}

void drop_reader_deinit(struct drop_reader **_r)
{
	struct drop_reader *r = *_r;
	struct hash_iterate_context *iter;
	struct drop_file *f;
	char *name;

	if (r == NULL)
		return;
	*_r = NULL;
	io_remove(&r->io);
	timeout_remove(&r->to_recheck);
	timeout_remove(&r->to_retry);
	timeout_remove(&r->to_start);
	iter = hash_table_iterate_init(r->files);
	while (hash_table_iterate(iter, r->files, &name, &f))
		drop_file_free(f);
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&r->files);
	i_close_fd(&r->inotify_fd);
	i_close_fd(&r->alive_fd);
	i_close_fd(&r->dir_fd);
	i_free(r->buf);
	i_free(r->dir);
	i_free(r->rejected_dir);
	event_unref(&r->event);
	i_free(r);
}

void drop_reader_committed(struct drop_reader *r, bool success)
{
	struct hash_iterate_context *iter;
	struct drop_file *f;
	char *name;
	bool rewound = FALSE;

	iter = hash_table_iterate_init(r->files);
	while (hash_table_iterate(iter, r->files, &name, &f)) {
		if (f->committed == f->read)
			continue;
		if (success)
			f->committed = f->read;
		else {
			/* read again later */
			f->read = f->committed;
			f->done = FALSE;
			rewound = TRUE;
		}
	}
	hash_table_iterate_deinit(&iter);
	if (rewound) {
		r->blocked = TRUE;
		drop_reader_update_mode(r);
	}
	if (!r->reading) T_BEGIN {
		drop_reader_reap(r);
	} T_END;
}

bool drop_reader_blocked(const struct drop_reader *r)
{
	return r->blocked;
}

unsigned int drop_reader_open_files(const struct drop_reader *r)
{
	return hash_table_count(r->files);
}
