/* Segment files: creating them, their outcome logs, reading and
   repairing them at open, quarantining what is corrupt, and deleting
   them once their events are done and the recent window is over (see
   webhook-spool.h). */

#define _GNU_SOURCE /* renameat2() */
#include "pop3-retention-config.h"
#include "webhook-spool-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the list ---- */

void spool_seg_file_name(const struct spool_segment *seg, const char *suffix,
			 char buf[SEG_FILE_SIZE])
{
	snprintf(buf, SEG_FILE_SIZE, "%s%s", seg->name, suffix);
}

void spool_seg_list_add(struct spool_segment **list, struct spool_segment *seg)
{
	seg->prev = NULL;
	seg->next = *list;
	if (seg->next != NULL)
		seg->next->prev = seg;
	*list = seg;
}

void spool_seg_list_remove(struct spool_segment **list,
			   struct spool_segment *seg)
{
	if (seg->prev != NULL)
		seg->prev->next = seg->next;
	else
		*list = seg->next;
	if (seg->next != NULL)
		seg->next->prev = seg->prev;
	seg->prev = seg->next = NULL;
}

void spool_seg_list_free(struct spool_segment **list)
{
	struct spool_segment *seg;

	while ((seg = *list) != NULL) {
		spool_seg_list_remove(list, seg);
		spool_seg_free(seg);
	}
}

struct spool_segment *spool_seg_new(const char *name)
{
	static uint64_t serials;
	struct spool_segment *seg;

	seg = calloc(1, sizeof(*seg));
	if (seg == NULL)
		return NULL;
	memcpy(seg->name, name, strlen(name) + 1);
	seg->fd = seg->log_fd = -1;
	seg->serial = ++serials;
	return seg;
}

void spool_seg_free(struct spool_segment *seg)
{
	spool_close_fd(&seg->fd);
	spool_close_fd(&seg->log_fd);
	free(seg->obuf);
	free(seg->ids);
	free(seg);
}

/* Write the segment's buffered outcome lines to its log (one write).
   On failure the lines are dropped (their events are sent again after a
   restart, as after any lost outcome) and -1 returned with the error. */
static int seg_flush(struct webhook_spool *spool, struct spool_segment *seg)
{
	char file[SEG_FILE_SIZE];
	int ret = 0;

	if (seg->olen == 0)
		return 0;
	spool_seg_file_name(seg, ".log", file);
	if (seg->log_fd < 0) {
		seg->log_fd = openat(spool->seg_fd, file,
				     O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
					     O_NOFOLLOW,
				     0600);
		if (seg->log_fd < 0) {
			spool_set_error(spool, "open(%s/seg/%s) failed: %s",
					spool->dir, file, strerror(errno));
			ret = -1;
			goto out;
		}
		/* a new directory entry, made durable by sync() */
		spool->seg_dirty = true;
	}
	seg->log_dirty = true;
	if ((seg->log_broken && spool_write_full(seg->log_fd, "\n", 1) < 0) ||
	    spool_write_full(seg->log_fd, seg->obuf, seg->olen) < 0) {
		spool_set_error(spool, "write(%s/seg/%s) failed: %s",
				spool->dir, file, strerror(errno));
		seg->log_broken = true;
		ret = -1;
		goto out;
	}
	seg->log_broken = false;
out:
	seg->olen = 0;
	spool->outcome_segs--;
	return ret;
}

/* seg_flush() where the caller has no way to report it: logged */
static void seg_flush_logged(struct webhook_spool *spool,
			     struct spool_segment *seg)
{
	if (seg_flush(spool, seg) < 0)
		spool_log_error(spool);
}

/* The segment is done and its window over: unlink it now, its log once
   the unlink is durable (webhook_spool_sync()); its ids are no longer
   held. */
static void seg_delete(struct webhook_spool *spool, struct spool_segment *seg)
{
	char file[SEG_FILE_SIZE];
	uint32_t i;

	/* its log must say why, should the unlink not survive a crash */
	seg_flush_logged(spool, seg);
	spool_seg_file_name(seg, ".seg", file);
	if (unlinkat(spool->seg_fd, file, 0) < 0 && errno != ENOENT) {
		/* harmless: the next open finds it done again */
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "unlink(%s/seg/%s) failed: %s", spool->dir, file,
			  strerror(errno));
	}
	for (i = 0; i < seg->records && seg->ids != NULL; i++)
		spool_ids_remove(&spool->ids, &seg->ids[i]);
	spool_close_fd(&seg->fd);
	spool_close_fd(&seg->log_fd);
	spool_seg_list_remove(&spool->segments, seg);
	spool_seg_list_add(&spool->doomed, seg);
	spool->seg_dirty = true;
}

void spool_seg_maybe_done(struct webhook_spool *spool,
			  struct spool_segment *seg)
{
	if (seg->live > 0 || seg->writing || seg->keep || seg->done_ms != 0)
		return;
	seg->done_ms = spool_wall_ms();
	/* nothing more is read from it */
	spool_close_fd(&seg->fd);
	if (spool->recent_ms == 0)
		seg_delete(spool, seg);
}

static struct spool_segment *seg_list_last(struct spool_segment *seg)
{
	while (seg != NULL && seg->next != NULL)
		seg = seg->next;
	return seg;
}

void spool_seg_prune(struct webhook_spool *spool)
{
	struct spool_segment *seg, *prev;
	int64_t now = spool_wall_ms(), bytes = 0;
	struct stat st;
	char file[SEG_FILE_SIZE];

	/* the list is newest first: walk it from the oldest end */
	for (seg = seg_list_last(spool->segments); seg != NULL; seg = prev) {
		prev = seg->prev;
		if (seg->done_ms == 0)
			continue;
		if (seg->size == 0) {
			spool_seg_file_name(seg, ".seg", file);
			if (fstatat(spool->seg_fd, file, &st,
				    AT_SYMLINK_NOFOLLOW) == 0)
				seg->size = st.st_size;
		}
		bytes += seg->size;
	}
	for (seg = seg_list_last(spool->segments); seg != NULL; seg = prev) {
		prev = seg->prev;
		if (seg->done_ms == 0)
			continue;
		if (seg->done_ms + spool->recent_ms > now &&
		    bytes <= WEBHOOK_SPOOL_RECENT_BYTES)
			continue;
		bytes -= seg->size;
		seg_delete(spool, seg);
	}
}

int spool_seg_flush_all(struct webhook_spool *spool)
{
	struct spool_segment *seg;
	int ret = 0;

	for (seg = spool->segments; seg != NULL && spool->outcome_segs > 0;
	     seg = seg->next) {
		if (seg_flush(spool, seg) < 0)
			ret = -1;
	}
	return ret;
}

/* Add one outcome line to the segment's buffer; with hold false, write
   it (and what waited) at once. */
int spool_seg_outcome(struct webhook_spool *spool, struct spool_segment *seg,
		      bool hold, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

int spool_seg_outcome(struct webhook_spool *spool, struct spool_segment *seg,
		      bool hold, const char *fmt, ...)
{
	char line[OUTCOME_LINE_MAX + 1];
	va_list args;
	int ret, len;

	va_start(args, fmt);
	len = vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	if (len < 0 || (size_t)len >= sizeof(line))
		abort();
	ret = 0;
	if (seg->olen + (size_t)len > OUTCOME_BUF_SIZE)
		ret = seg_flush(spool, seg);
	if (seg->obuf == NULL) {
		seg->obuf = malloc(OUTCOME_BUF_SIZE);
		if (seg->obuf == NULL) {
			spool_set_error(spool,
					"outcome of seg/%s.seg: out "
					"of memory",
					seg->name);
			return -1;
		}
	}
	if (seg->olen == 0)
		spool->outcome_segs++;
	memcpy(seg->obuf + seg->olen, line, (size_t)len);
	seg->olen += (size_t)len;
	if (!hold && seg_flush(spool, seg) < 0)
		ret = -1;
	return ret;
}

/* ---- repairs at open ---- */

/* Copy the bytes of a segment from offset on into corrupt/ and cut
   them off. Returns 0, or -1 (logged) if the copy failed: the bytes
   then stay where they are. */
static int seg_quarantine_tail(struct webhook_spool *spool, const char *file,
			       int fd, int64_t offset, int64_t size,
			       const char *reason)
{
	char qname[SEG_FILE_SIZE + 24];
	unsigned char *buf;
	int64_t pos;
	ssize_t ret;
	size_t chunk;
	int out, failed = 0;

	snprintf(qname, sizeof(qname), "%s.%" PRId64, file, offset);
	buf = malloc(SCAN_BUF_SIZE);
	out = buf == NULL ? -1
			  : openat(spool->corrupt_fd, qname,
				   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
					   O_NOFOLLOW,
				   0600);
	if (out < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: corrupt record at offset %" PRId64
			  " (%s), and open(%s/corrupt/%s) failed: %s; left "
			  "in place",
			  spool->dir, file, offset, reason, spool->dir, qname,
			  strerror(errno));
		free(buf);
		return -1;
	}
	for (pos = offset; pos < size && failed == 0; pos += ret) {
		chunk = size - pos > SCAN_BUF_SIZE ? SCAN_BUF_SIZE
						   : (size_t)(size - pos);
		ret = spool_read_full(fd, buf, chunk, (off_t)pos);
		if (ret <= 0 || spool_write_full(out, buf, (size_t)ret) < 0)
			failed = -1;
	}
	if (failed == 0 && (spool_fdatasync(out) < 0 ||
			    spool_fsync_dir(spool->corrupt_fd) < 0))
		failed = -1;
	(void)close(out);
	free(buf);
	if (failed < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: corrupt record at offset %" PRId64
			  " (%s), and copying it to %s/corrupt/%s failed: %s;"
			  " left in place",
			  spool->dir, file, offset, reason, spool->dir, qname,
			  strerror(errno));
		(void)unlinkat(spool->corrupt_fd, qname, 0);
		return -1;
	}
	if (ftruncate(fd, (off_t)offset) < 0 || spool_fdatasync(fd) < 0) {
		/* the copy is safe; the next open cuts again */
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "ftruncate(%s/seg/%s) failed: %s", spool->dir, file,
			  strerror(errno));
	}
	spool->corrupt_count++;
	spool_log(spool, WEBHOOK_LOG_WARNING,
		  "%s/seg/%s: corrupt record at offset %" PRId64 " (%s): "
		  "%" PRId64 " bytes moved to corrupt/%s",
		  spool->dir, file, offset, reason, size - offset, qname);
	return 0;
}

/* A file in seg/ that is no segment at all: move it and its log aside. */
static void seg_quarantine_file(struct webhook_spool *spool, const char *name)
{
	char file[SEG_FILE_SIZE];

	snprintf(file, sizeof(file), "%s.seg", name);
	if (renameat(spool->seg_fd, file, spool->corrupt_fd, file) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: not a segment (bad header line), and "
			  "moving it to corrupt/ failed: %s",
			  spool->dir, file, strerror(errno));
		return;
	}
	snprintf(file, sizeof(file), "%s.log", name);
	if (renameat(spool->seg_fd, file, spool->corrupt_fd, file) == 0)
		spool->corrupt_count++;
	(void)spool_fsync_dir(spool->corrupt_fd);
	spool->seg_dirty = true;
	spool->corrupt_count++;
	spool_log(spool, WEBHOOK_LOG_WARNING,
		  "%s/seg/%s.seg: not a segment (bad header line): moved to "
		  "corrupt/",
		  spool->dir, name);
}

static void ro_count(struct webhook_spool *spool, const struct scan_rec *rec)
{
	struct webhook_spool_counts *c = &spool->ro_counts;
	int64_t due = rec->attempts > 0
			      ? rec->due_ms
			      : spool_first_due(spool, rec->created_ms);

	c->pending++;
	if (rec->attempts > 0)
		c->retrying++;
	if (c->oldest_created_ms < 0 || rec->created_ms < c->oldest_created_ms)
		c->oldest_created_ms = rec->created_ms;
	if (c->next_due_ms < 0 || due < c->next_due_ms)
		c->next_due_ms = due;
}

/* The ids of a segment's records, held by the spool as long as the
   segment is on disk. */
static int seg_hold_ids(struct webhook_spool *spool, struct spool_segment *seg,
			const struct seg_scan *scan)
{
	uint32_t i;

	if (scan->count == 0)
		return 0;
	seg->ids = malloc(sizeof(*seg->ids) * scan->count);
	if (seg->ids == NULL)
		return -1;
	seg->ids_size = scan->count;
	for (i = 0; i < scan->count; i++) {
		seg->ids[i] = scan->recs[i].id;
		if (spool_ids_add(&spool->ids, &seg->ids[i]) < 0)
			return -1;
	}
	return 0;
}

/* When the last outcome of a done segment was written: its window
   runs from there. */
static int64_t seg_done_ms(int seg_fd, int log_fd)
{
	struct stat st;

	if ((log_fd >= 0 && fstat(log_fd, &st) == 0) || fstat(seg_fd, &st) == 0)
		return (int64_t)st.st_mtim.tv_sec * 1000 +
		       st.st_mtim.tv_nsec / 1000000;
	return 1;
}

static void seg_index(struct webhook_spool *spool, struct spool_segment *seg,
		      const struct seg_scan *scan)
{
	struct spool_entry entry;
	uint32_t i;

	for (i = 0; i < scan->count; i++) {
		if (scan->recs[i].done)
			continue;
		memset(&entry, 0, sizeof(entry));
		entry.seg = seg;
		entry.offset = scan->recs[i].offset;
		entry.created_ms = scan->recs[i].created_ms;
		entry.index = i;
		entry.rec_len = scan->recs[i].rec_len;
		entry.attempts = scan->recs[i].attempts;
		entry.due_ms =
			entry.attempts > 0
				? scan->recs[i].due_ms
				: spool_first_due(spool, entry.created_ms);
		seg->live++;
		(void)spool_heap_push(spool, &entry);
	}
}

/* Cut off what cannot be read (quarantining it when it is corrupt, not
   just a last write cut short). Returns false if the bytes could not be
   moved aside: then the segment is kept whatever its events' state. */
static bool seg_repair(struct webhook_spool *spool, const char *file, int fd,
		       const struct seg_scan *scan)
{
	if (scan->bad_reason != NULL) {
		return seg_quarantine_tail(spool, file, fd, scan->good_end,
					   scan->file_size,
					   scan->bad_reason) == 0;
	}
	if (scan->truncated) {
		spool_log(spool, WEBHOOK_LOG_DEBUG,
			  "%s/seg/%s: incomplete record at offset %" PRId64
			  " (never committed) cut off",
			  spool->dir, file, scan->good_end);
		if (ftruncate(fd, (off_t)scan->good_end) < 0) {
			spool_log(spool, WEBHOOK_LOG_WARNING,
				  "ftruncate(%s/seg/%s) failed: %s", spool->dir,
				  file, strerror(errno));
		}
	}
	return true;
}

static void seg_count_read_only(struct webhook_spool *spool, const char *file,
				const struct seg_scan *scan)
{
	uint32_t i;

	if (scan->bad_reason != NULL) {
		spool->corrupt_count++;
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "%s/seg/%s: corrupt record at offset %" PRId64
			  " (%s)",
			  spool->dir, file, scan->good_end, scan->bad_reason);
	}
	for (i = 0; i < scan->count; i++) {
		if (!scan->recs[i].done)
			ro_count(spool, &scan->recs[i]);
	}
}

/* Read segment <name>.seg found in seg/. The owner repairs it, indexes
   its pending events and holds its ids; a segment whose events are all
   done stays for the rest of its recent window. READ_ONLY only counts.
   Returns 0, or -1 with the error when memory runs out. */
static int seg_adopt(struct webhook_spool *spool, const char *name)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;
	char file[SEG_FILE_SIZE], log_file[SEG_FILE_SIZE];
	struct spool_segment *seg;
	struct seg_scan scan;
	struct stat st;
	int fd, log_fd, ret = 0;
	bool repaired = true;

	snprintf(file, sizeof(file), "%s.seg", name);
	snprintf(log_file, sizeof(log_file), "%s.log", name);
	fd = openat(spool->seg_fd, file,
		    (owner ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW |
			    O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT) {
			spool_log(spool, WEBHOOK_LOG_ERROR,
				  "open(%s/seg/%s) failed: %s", spool->dir,
				  file, strerror(errno));
		}
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: not a regular "
			  "file, ignored",
			  spool->dir, file);
		(void)close(fd);
		return 0;
	}
	if (spool_seg_parse(fd, &scan) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "read(%s/seg/%s) failed: %s",
			  spool->dir, file, strerror(errno));
		free(scan.recs);
		(void)close(fd);
		return 0;
	}
	if (scan.bad_magic) {
		if (owner)
			seg_quarantine_file(spool, name);
		else {
			spool->corrupt_count++;
			spool_log(spool, WEBHOOK_LOG_WARNING,
				  "%s/seg/%s: not "
				  "a segment (bad header line)",
				  spool->dir, file);
		}
		free(scan.recs);
		(void)close(fd);
		return 0;
	}
	if (owner)
		repaired = seg_repair(spool, file, fd, &scan);
	log_fd = openat(spool->seg_fd, log_file,
			(owner ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC |
				O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (log_fd >= 0)
		spool_log_replay(spool, log_file, log_fd, &scan, owner);
	else if (errno != ENOENT)
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "open(%s/seg/%s) failed: %s",
			  spool->dir, log_file, strerror(errno));
	if (!owner) {
		seg_count_read_only(spool, file, &scan);
		free(scan.recs);
		spool_close_fd(&log_fd);
		(void)close(fd);
		return 0;
	}
	if ((seg = spool_seg_new(name)) == NULL ||
	    seg_hold_ids(spool, seg, &scan) < 0) {
		spool_set_error(spool, "%s/seg/%s: out of memory", spool->dir,
				file);
		if (seg != NULL)
			spool_seg_free(seg);
		free(scan.recs);
		spool_close_fd(&log_fd);
		(void)close(fd);
		return -1;
	}
	seg->keep = !repaired;
	seg->records = scan.count;
	seg->size = scan.good_end;
	seg->fd = fd;
	seg->log_fd = log_fd;
	spool_seg_list_add(&spool->segments, seg);
	seg_index(spool, seg, &scan);
	if (seg->live == 0 && !seg->keep) {
		seg->done_ms = seg_done_ms(fd, log_fd);
		spool_close_fd(&seg->fd);
	}
	free(scan.recs);
	return ret;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One entry of seg/ at open. The owner removes what crashes left: a
   segment whose creation was cut short (a dot file) and a log whose
   segment is gone. Returns the segment's base name in base_r, or
   false. */
static bool seg_dir_entry(struct webhook_spool *spool, bool owner,
			  const char *name, char base_r[SEG_NAME_SIZE])
{
	char file[SEG_FILE_SIZE];
	struct stat st;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	if (name[0] == '.') {
		/* ".<name>.new": a creation cut short, never visible */
		if (owner)
			(void)unlinkat(spool->seg_fd, name, 0);
		return false;
	}
	if (spool_seg_name_parse(name, ".log", base_r)) {
		if (!owner)
			return false;
		snprintf(file, sizeof(file), "%s.seg", base_r);
		if (fstatat(spool->seg_fd, file, &st, AT_SYMLINK_NOFOLLOW) <
			    0 &&
		    errno == ENOENT && unlinkat(spool->seg_fd, name, 0) == 0)
			spool->seg_dirty = true;
		return false;
	}
	if (!spool_seg_name_parse(name, ".seg", base_r)) {
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "%s/seg/%s: unexpected "
			  "file, ignored",
			  spool->dir, name);
		return false;
	}
	return true;
}

int spool_seg_scan_dir(struct webhook_spool *spool)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;
	char base[SEG_NAME_SIZE], **names = NULL, **tmp;
	unsigned int i, count = 0, size = 0;
	struct dirent *de;
	int ret = 0, fd;
	DIR *dir;

	if (spool->seg_fd < 0)
		return 0;
	fd = spool_open_dir_at(spool->seg_fd, ".");
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		spool_set_error(spool, "opendir(%s/seg) failed: %s", spool->dir,
				strerror(errno));
		spool_close_fd(&fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!seg_dir_entry(spool, owner, de->d_name, base))
			continue;
		if (count == size) {
			size = size == 0 ? 64 : size * 2;
			tmp = realloc(names, sizeof(*names) * size);
			if (tmp == NULL)
				break;
			names = tmp;
		}
		if ((names[count] = strdup(base)) == NULL)
			break;
		count++;
	}
	closedir(dir);
	if (de != NULL) {
		spool_set_error(spool, "%s/seg: out of memory", spool->dir);
		ret = -1;
	}
	/* oldest first: the list ends up newest first */
	if (names != NULL)
		qsort(names, count, sizeof(*names), name_cmp);
	for (i = 0; i < count; i++) {
		if (ret == 0 && seg_adopt(spool, names[i]) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	return ret;
}

void spool_seg_cleanup_at_open(struct webhook_spool *spool)
{
	spool_seg_prune(spool);
	if (spool->doomed == NULL)
		return;
	if (spool_fsync_dir(spool->seg_fd) < 0) {
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "fsync(%s/seg) failed: %s", spool->dir,
			  strerror(errno));
		return;
	}
	spool->seg_dirty = false;
	spool_seg_doomed_logs_remove(spool);
}

void spool_seg_doomed_logs_remove(struct webhook_spool *spool)
{
	char file[SEG_FILE_SIZE];
	struct spool_segment *seg;

	while ((seg = spool->doomed) != NULL) {
		spool_seg_file_name(seg, ".log", file);
		if (unlinkat(spool->seg_fd, file, 0) == 0)
			spool->seg_dirty = true;
		spool_seg_list_remove(&spool->doomed, seg);
		spool_seg_free(seg);
	}
}

/* ---- the writer's segment ---- */

/* Rename without replacing an existing file where the kernel can. */
static int rename_noreplace(int dir_fd, const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
	if (renameat2(dir_fd, from, dir_fd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
#endif
	return renameat(dir_fd, from, dir_fd, to);
}

/* The segment appears in seg/ only once it has its header line, so that
   a crash never leaves a segment without one. */
int spool_wseg_create(struct webhook_spool *spool)
{
	char name[SEG_NAME_SIZE], tmp[SEG_FILE_SIZE], file[SEG_FILE_SIZE];
	struct spool_segment *seg;
	const char *what = NULL;
	unsigned int i;
	int fd = -1;

	for (i = 0; i < CREATE_TRIES && what == NULL; i++) {
		snprintf(name, sizeof(name), "%" PRId64 "-%ld-%" PRIu32,
			 spool_wall_ms(), (long)getpid(), ++spool->seq);
		snprintf(tmp, sizeof(tmp), ".%s.new", name);
		snprintf(file, sizeof(file), "%s.seg", name);
		fd = openat(spool->seg_fd, tmp,
			    O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC |
				    O_NOFOLLOW,
			    0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			spool_set_error(spool,
					"append: open(%s/seg/%s) "
					"failed: %s",
					spool->dir, tmp, strerror(errno));
			return -1;
		}
		if (spool_write_full(fd, SEG_MAGIC, SEG_MAGIC_LEN) < 0)
			what = "write";
		else if (rename_noreplace(spool->seg_fd, tmp, file) == 0)
			break;
		else if (errno != EEXIST)
			what = "rename";
		if (what != NULL) {
			spool_set_error(spool,
					"append: %s(%s/seg/%s) failed: %s",
					what, spool->dir, tmp, strerror(errno));
		}
		(void)unlinkat(spool->seg_fd, tmp, 0);
		spool_close_fd(&fd);
	}
	if (fd < 0) {
		if (what == NULL) {
			spool_set_error(spool,
					"append: no unique segment "
					"name in %s/seg",
					spool->dir);
		}
		return -1;
	}
	seg = spool_seg_new(name);
	if (seg == NULL) {
		spool_set_error(spool, "append: out of memory");
		/* an empty segment: done at the next open */
		(void)close(fd);
		return -1;
	}
	seg->fd = fd;
	seg->size = SEG_MAGIC_LEN;
	seg->writing = true;
	spool_seg_list_add(&spool->segments, seg);
	spool->wseg = seg;
	spool->wseg_new = true;
	spool->batch_start = seg->size;
	return 0;
}

void spool_wseg_retire(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;

	if (seg == NULL)
		return;
	spool->wseg = NULL;
	seg->writing = false;
	spool_seg_maybe_done(spool, seg);
}
