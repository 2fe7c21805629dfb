/* Durable queue of webhook events, maildir style.

   Why this shape:
   - One immutable file per event, state in the name. Recording an
     attempt is a rename() inside new/: atomic, no data rewritten, so a
     crash leaves either the old or the new name, never a torn file.
     Rewriting the file (write + rename over) would need an fsync of the
     new data before every rename to be as safe.
   - Batched durability. A producer appends a batch into tmp/, then
     commit() does one syncfs() (every file's data and inode reach the
     disk in one journal commit), renames the files into new/, and does
     one fsync() of new/. A file never appears in new/ before its bytes
     are on disk, and tmp/ leftovers of a crash are simply deleted:
     never delivered half-written. fdatasync() per file would cost one
     journal commit per event; syncfs() also flushes unrelated dirty data
     of the same filesystem, which is why the spool belongs in a state
     directory, and why batches should be large.
   - Outcomes are made durable in groups by webhook_spool_sync(): the
     engine calls it at most every 100 ms, and when it stops.
   - The index is a binary heap keyed by due time, rebuilt from the file
     names and headers at open; bodies are read only when an event is
     checked out, and verified against the SHA-256 in the header. */

#define _GNU_SOURCE /* syncfs() */
#include "pop3-retention-config.h"
#include "webhook-spool.h"

#include <openssl/evp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_MAGIC "pop3-retention-spool 1"
/* magic, id, created, length, sha256 lines and the blank line fit */
#define HEADER_MAX 512
/* "<ms>.<pid>.<seq>.<8 hex>,<attempts>,<next_ms>": 19+1+10+1+10+1+8+1+
   7+1+19 characters at most, and the NUL */
#define NAME_SIZE 96
#define SHA256_LEN 32
#define SPOOL_DIR_MAX (PATH_MAX - 64)
#define ATTEMPTS_MAX 1000000
/* An unreadable event is tried again after this long. */
#define IO_RETRY_MS 5000
/* An event that could not be moved to dead/ is sent again after this. */
#define DEAD_LETTER_RETRY_MS 60000
#define LOG_LINE_MAX 1024
#define CREATE_TRIES 10

struct spool_name {
	int64_t ms;
	uint32_t pid;
	uint32_t seq;
	uint32_t rnd;
	uint32_t attempts;
	int64_t next_ms;
};

struct spool_entry {
	struct spool_name name;
	int64_t created_ms;
	int64_t due_ms;
};

struct spool_header {
	char id[WEBHOOK_SPOOL_ID_MAX];
	int64_t created_ms;
	size_t body_len;
	unsigned char sha256[SHA256_LEN];
	size_t header_len;
};

struct spool_checkout {
	/* first member: the public event is the checkout's address */
	struct webhook_spool_event event;
	struct webhook_spool *owner;
	struct spool_entry entry;
	struct spool_checkout *prev, *next;
	char id[WEBHOOK_SPOOL_ID_MAX];
	unsigned char body[];
};

struct batch_item {
	struct spool_entry entry;
	/* import across filesystems: the original, in the outbox's new/ */
	char src_name[NAME_SIZE];
	bool committed;
};

struct webhook_spool {
	char dir[SPOOL_DIR_MAX];
	bool dir_too_long;
	unsigned int flags;
	bool opened;

	int dir_fd, lock_fd, tmp_fd, new_fd, dead_fd, corrupt_fd;

	struct spool_entry *heap;
	unsigned int heap_count, heap_size;
	struct spool_checkout *checkouts;
	unsigned int checkout_count;
	struct batch_item *batch;
	unsigned int batch_count;

	unsigned int dead_count, corrupt_count, unindexed;
	int64_t first_delay_ms;
	uint32_t seq, rnd;
	bool new_dirty, dead_dirty, corrupt_dirty;

	void (*log)(void *context, enum webhook_log_level level,
		    const char *message);
	void *log_context;
	char error[WEBHOOK_SPOOL_ERROR_MAX];
};

enum load_result {
	LOAD_OK = 0,
	LOAD_CORRUPT,
	LOAD_GONE,
	LOAD_IO_ERROR,
};

static void __attribute__((format(printf, 2, 3)))
set_error(struct webhook_spool *spool, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(spool->error, sizeof(spool->error), fmt, args);
	va_end(args);
}

static void __attribute__((format(printf, 3, 4)))
spool_log(struct webhook_spool *spool, enum webhook_log_level level,
	  const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list args;

	if (spool->log == NULL)
		return;
	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	spool->log(spool->log_context, level, line);
}

static int64_t wall_clock_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* ---- names and headers ---- */

/* Strict unsigned decimal: digits only, no sign, no leading zero, no
   overflow, at most max. */
static bool parse_decimal(const char *s, size_t len, uint64_t max,
			  uint64_t *value_r)
{
	uint64_t value = 0;
	size_t i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (value > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		value = value * 10 + (uint64_t)(s[i] - '0');
	}
	if (value > max)
		return false;
	*value_r = value;
	return true;
}

/* The field up to terminator (or the end of the string when terminator
   is '\0'). */
static bool parse_name_field(const char **p, char terminator, uint64_t max,
			     uint64_t *value_r)
{
	const char *end = strchr(*p, terminator);

	if (end == NULL)
		return false;
	if (!parse_decimal(*p, (size_t)(end - *p), max, value_r))
		return false;
	*p = terminator == '\0' ? end : end + 1;
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool name_parse(const char *str, struct spool_name *name_r)
{
	const char *p = str;
	uint64_t v[5];
	uint32_t rnd = 0;
	unsigned int i;

	if (strnlen(str, NAME_SIZE) >= NAME_SIZE)
		return false;
	if (!parse_name_field(&p, '.', INT64_MAX, &v[0]) ||
	    !parse_name_field(&p, '.', UINT32_MAX, &v[1]) ||
	    !parse_name_field(&p, '.', UINT32_MAX, &v[2]))
		return false;
	for (i = 0; i < 8; i++) {
		if (hex_value(p[i]) < 0)
			return false;
		rnd = (rnd << 4) | (uint32_t)hex_value(p[i]);
	}
	p += 8;
	if (*p++ != ',')
		return false;
	if (!parse_name_field(&p, ',', ATTEMPTS_MAX, &v[3]) ||
	    !parse_name_field(&p, '\0', INT64_MAX, &v[4]))
		return false;
	name_r->ms = (int64_t)v[0];
	name_r->pid = (uint32_t)v[1];
	name_r->seq = (uint32_t)v[2];
	name_r->rnd = rnd;
	name_r->attempts = (uint32_t)v[3];
	name_r->next_ms = (int64_t)v[4];
	return true;
}

static void name_format(const struct spool_name *name, char buf[NAME_SIZE])
{
	snprintf(buf, NAME_SIZE,
		 "%" PRId64 ".%" PRIu32 ".%" PRIu32 ".%08" PRIx32
		 ",%" PRIu32 ",%" PRId64, name->ms, name->pid, name->seq,
		 name->rnd, name->attempts, name->next_ms);
}

static bool id_is_valid(const char *id, size_t len)
{
	size_t i;

	if (len == 0 || len >= WEBHOOK_SPOOL_ID_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int sha256(const void *data, size_t len,
		  unsigned char md_r[SHA256_LEN])
{
	unsigned int md_len = 0;

	if (EVP_Digest(data, len, md_r, &md_len, EVP_sha256(), NULL) != 1 ||
	    md_len != SHA256_LEN)
		return -1;
	return 0;
}

/* The next line of buf at *pos, which must start with prefix; its value
   (after the prefix, before the newline) in value_r/len_r. */
static bool header_line(const unsigned char *buf, size_t len, size_t *pos,
			const char *prefix, const char **value_r,
			size_t *len_r)
{
	size_t prefix_len = strlen(prefix);
	const unsigned char *start = buf + *pos, *nl;

	nl = memchr(start, '\n', len - *pos);
	if (nl == NULL || (size_t)(nl - start) < prefix_len ||
	    memcmp(start, prefix, prefix_len) != 0)
		return false;
	*value_r = (const char *)start + prefix_len;
	*len_r = (size_t)(nl - start) - prefix_len;
	*pos = (size_t)(nl - buf) + 1;
	return true;
}

/* Parse the header at the start of buf (len bytes available, the body
   possibly cut off). Returns NULL, or a static reason. */
static const char *header_parse(const unsigned char *buf, size_t len,
				struct spool_header *hdr_r)
{
	const char *value;
	size_t pos = 0, value_len, i;
	uint64_t num;
	int hi, lo;

	memset(hdr_r, 0, sizeof(*hdr_r));
	if (len > HEADER_MAX)
		len = HEADER_MAX;
	if (!header_line(buf, len, &pos, SPOOL_MAGIC, &value, &value_len) ||
	    value_len != 0)
		return "bad format line";
	if (!header_line(buf, len, &pos, "id ", &value, &value_len) ||
	    !id_is_valid(value, value_len))
		return "bad id line";
	memcpy(hdr_r->id, value, value_len);
	hdr_r->id[value_len] = '\0';
	if (!header_line(buf, len, &pos, "created ", &value, &value_len) ||
	    !parse_decimal(value, value_len, INT64_MAX, &num))
		return "bad created line";
	hdr_r->created_ms = (int64_t)num;
	if (!header_line(buf, len, &pos, "length ", &value, &value_len) ||
	    !parse_decimal(value, value_len, WEBHOOK_SPOOL_BODY_MAX, &num) ||
	    num == 0)
		return "bad length line";
	hdr_r->body_len = (size_t)num;
	if (!header_line(buf, len, &pos, "sha256 ", &value, &value_len) ||
	    value_len != SHA256_LEN * 2)
		return "bad sha256 line";
	for (i = 0; i < SHA256_LEN; i++) {
		hi = hex_value(value[2 * i]);
		lo = hex_value(value[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return "bad sha256 line";
		hdr_r->sha256[i] = (unsigned char)(hi << 4 | lo);
	}
	if (!header_line(buf, len, &pos, "", &value, &value_len) ||
	    value_len != 0)
		return "no blank line after the header";
	hdr_r->header_len = pos;
	return NULL;
}

static int header_format(const char *id, int64_t created_ms,
			 const void *body, size_t body_len,
			 char buf[HEADER_MAX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[SHA256_LEN];
	char hex[SHA256_LEN * 2 + 1];
	unsigned int i;
	int len;

	if (sha256(body, body_len, md) < 0)
		return -1;
	for (i = 0; i < SHA256_LEN; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex[SHA256_LEN * 2] = '\0';
	len = snprintf(buf, HEADER_MAX,
		       SPOOL_MAGIC "\nid %s\ncreated %" PRId64 "\nlength %zu\n"
		       "sha256 %s\n\n", id, created_ms, body_len, hex);
	if (len < 0 || len >= HEADER_MAX)
		return -1;
	return len;
}

/* ---- file I/O ---- */

static int write_full(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	ssize_t ret;

	while (len > 0) {
		ret = write(fd, p, len);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (ret == 0) {
			errno = EIO;
			return -1;
		}
		p += ret;
		len -= (size_t)ret;
	}
	return 0;
}

static ssize_t read_full(int fd, void *buf, size_t len, off_t offset)
{
	unsigned char *p = buf;
	size_t done = 0;
	ssize_t ret;

	while (done < len) {
		ret = pread(fd, p + done, len - done, offset + (off_t)done);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (ret == 0)
			break;
		done += (size_t)ret;
	}
	return (ssize_t)done;
}

/* Open a spool file for reading without following links or blocking on
   a FIFO, and check that it is a plausible regular file. */
static enum load_result open_event_file(int dir_fd, const char *name,
					int *fd_r, struct stat *st_r,
					const char **reason_r)
{
	int fd;

	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		    O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return LOAD_GONE;
		if (errno == ELOOP) {
			*reason_r = "a symbolic link";
			return LOAD_CORRUPT;
		}
		return LOAD_IO_ERROR;
	}
	if (fstat(fd, st_r) < 0) {
		(void)close(fd);
		return LOAD_IO_ERROR;
	}
	if (!S_ISREG(st_r->st_mode)) {
		(void)close(fd);
		*reason_r = "not a regular file";
		return LOAD_CORRUPT;
	}
	if (st_r->st_size > HEADER_MAX + WEBHOOK_SPOOL_BODY_MAX) {
		(void)close(fd);
		*reason_r = "too large";
		return LOAD_CORRUPT;
	}
	*fd_r = fd;
	return LOAD_OK;
}

/* Read the header only, and check that the size matches: what open()
   does for every file, so a backlog does not read every body. */
static enum load_result check_header(int dir_fd, const char *name,
				     struct spool_header *hdr_r,
				     const char **reason_r)
{
	unsigned char buf[HEADER_MAX];
	enum load_result res;
	struct stat st;
	ssize_t len;
	int fd = -1;

	res = open_event_file(dir_fd, name, &fd, &st, reason_r);
	if (res != LOAD_OK)
		return res;
	len = read_full(fd, buf, sizeof(buf), 0);
	(void)close(fd);
	if (len < 0)
		return LOAD_IO_ERROR;
	*reason_r = header_parse(buf, (size_t)len, hdr_r);
	if (*reason_r != NULL)
		return LOAD_CORRUPT;
	if ((uint64_t)st.st_size != hdr_r->header_len + hdr_r->body_len) {
		*reason_r = (uint64_t)st.st_size <
			hdr_r->header_len + hdr_r->body_len ?
			"truncated" : "trailing bytes after the body";
		return LOAD_CORRUPT;
	}
	return LOAD_OK;
}

/* Read and verify a whole file. On LOAD_OK *buf_r is malloc()ed (the
   caller frees it) and holds header and body. */
static enum load_result load_file(int dir_fd, const char *name,
				  unsigned char **buf_r,
				  struct spool_header *hdr_r,
				  const char **reason_r)
{
	unsigned char md[SHA256_LEN], *buf;
	enum load_result res;
	struct stat st;
	ssize_t len;
	int fd = -1;

	*buf_r = NULL;
	res = open_event_file(dir_fd, name, &fd, &st, reason_r);
	if (res != LOAD_OK)
		return res;
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		(void)close(fd);
		errno = ENOMEM;
		return LOAD_IO_ERROR;
	}
	len = read_full(fd, buf, (size_t)st.st_size, 0);
	(void)close(fd);
	if (len < 0) {
		free(buf);
		return LOAD_IO_ERROR;
	}
	*reason_r = header_parse(buf, (size_t)len, hdr_r);
	if (*reason_r == NULL &&
	    (size_t)len != hdr_r->header_len + hdr_r->body_len) {
		*reason_r = (size_t)len < hdr_r->header_len + hdr_r->body_len ?
			"truncated" : "trailing bytes after the body";
	}
	if (*reason_r == NULL &&
	    (sha256(buf + hdr_r->header_len, hdr_r->body_len, md) < 0 ||
	     memcmp(md, hdr_r->sha256, SHA256_LEN) != 0))
		*reason_r = "body does not match its sha256";
	if (*reason_r != NULL) {
		free(buf);
		return LOAD_CORRUPT;
	}
	buf[len] = '\0';
	*buf_r = buf;
	return LOAD_OK;
}

static int sync_fs_of(int fd)
{
#ifdef __linux__
	return syncfs(fd);
#else
	(void)fd;
	sync();
	return 0;
#endif
}

static int fsync_dir(int fd)
{
	if (fd < 0)
		return 0;
	while (fsync(fd) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

static int mkdir_at(int dir_fd, const char *name)
{
	if (mkdirat(dir_fd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int open_dir_at(int dir_fd, const char *name)
{
	return openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* A DIR stream on a fresh descriptor of dir_fd (readdir() must not move
   dir_fd's own offset, and closedir() closes the copy). NULL with errno
   set on failure. */
static DIR *opendir_at(int dir_fd)
{
	int fd, saved_errno;
	DIR *dir;

	fd = open_dir_at(dir_fd, ".");
	if (fd < 0)
		return NULL;
	dir = fdopendir(fd);
	if (dir == NULL) {
		saved_errno = errno;
		(void)close(fd);
		errno = saved_errno;
	}
	return dir;
}

/* Entries of a directory other than dot files. */
static unsigned int count_dir(int dir_fd)
{
	unsigned int count = 0;
	struct dirent *de;
	DIR *dir;

	if (dir_fd < 0 || (dir = opendir_at(dir_fd)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] != '.')
			count++;
	}
	closedir(dir);
	return count;
}

/* Unlink the regular files of a tmp/ directory: all of them
   (max_age_secs < 0), or those not modified for max_age_secs. Returns
   the number removed. */
static unsigned int clean_tmp(int tmp_fd, time_t max_age_secs)
{
	time_t now = time(NULL);
	unsigned int removed = 0;
	struct dirent *de;
	struct stat st;
	DIR *dir;

	if ((dir = opendir_at(tmp_fd)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(tmp_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		if (max_age_secs >= 0 && st.st_mtime > now - max_age_secs)
			continue;
		if (unlinkat(tmp_fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}

/* ---- the heap ---- */

static bool entry_before(const struct spool_entry *a,
			 const struct spool_entry *b)
{
	if (a->due_ms != b->due_ms)
		return a->due_ms < b->due_ms;
	if (a->created_ms != b->created_ms)
		return a->created_ms < b->created_ms;
	if (a->name.ms != b->name.ms)
		return a->name.ms < b->name.ms;
	if (a->name.pid != b->name.pid)
		return a->name.pid < b->name.pid;
	if (a->name.seq != b->name.seq)
		return a->name.seq < b->name.seq;
	return a->name.rnd < b->name.rnd;
}

static void heap_sift_down(struct spool_entry *heap, unsigned int count,
			   unsigned int i)
{
	struct spool_entry tmp;
	unsigned int child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= count)
			break;
		if (child + 1 < count &&
		    entry_before(&heap[child + 1], &heap[child]))
			child++;
		if (!entry_before(&heap[child], &heap[i]))
			break;
		tmp = heap[i];
		heap[i] = heap[child];
		heap[child] = tmp;
		i = child;
	}
}

static void heap_sift_up(struct spool_entry *heap, unsigned int i)
{
	struct spool_entry tmp;
	unsigned int parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (!entry_before(&heap[i], &heap[parent]))
			break;
		tmp = heap[i];
		heap[i] = heap[parent];
		heap[parent] = tmp;
		i = parent;
	}
}

static void heapify(struct webhook_spool *spool)
{
	unsigned int i;

	for (i = spool->heap_count / 2; i > 0; i--)
		heap_sift_down(spool->heap, spool->heap_count, i - 1);
}

static int64_t entry_due(const struct webhook_spool *spool,
			 const struct spool_entry *entry)
{
	int64_t first;

	if (entry->name.attempts > 0)
		return entry->name.next_ms;
	first = entry->created_ms + spool->first_delay_ms;
	return entry->name.next_ms > first ? entry->name.next_ms : first;
}

static unsigned int spool_indexed(const struct webhook_spool *spool)
{
	return spool->heap_count + spool->checkout_count;
}

/* Make room for one more entry. */
static int heap_reserve(struct webhook_spool *spool)
{
	struct spool_entry *heap;
	unsigned int size;

	if (spool->heap_count < spool->heap_size)
		return 0;
	if (spool_indexed(spool) >= WEBHOOK_SPOOL_EVENTS_MAX)
		return -1;
	size = spool->heap_size == 0 ? 64 : spool->heap_size * 2;
	if (size > WEBHOOK_SPOOL_EVENTS_MAX)
		size = WEBHOOK_SPOOL_EVENTS_MAX;
	heap = realloc(spool->heap, sizeof(*heap) * size);
	if (heap == NULL)
		return -1;
	spool->heap = heap;
	spool->heap_size = size;
	return 0;
}

/* Index an entry whose due time is already set. An entry that does not
   fit stays on disk and is counted as unindexed. */
static void heap_push(struct webhook_spool *spool,
		      const struct spool_entry *entry)
{
	if (heap_reserve(spool) < 0) {
		spool->unindexed++;
		return;
	}
	spool->heap[spool->heap_count] = *entry;
	heap_sift_up(spool->heap, spool->heap_count);
	spool->heap_count++;
}

static void heap_pop(struct webhook_spool *spool, struct spool_entry *entry_r)
{
	*entry_r = spool->heap[0];
	spool->heap_count--;
	if (spool->heap_count > 0) {
		spool->heap[0] = spool->heap[spool->heap_count];
		heap_sift_down(spool->heap, spool->heap_count, 0);
	}
}

/* ---- quarantine and scanning ---- */

static int quarantine_dir_fd(int parent_fd, int *fd)
{
	if (*fd >= 0)
		return *fd;
	if (mkdir_at(parent_fd, "corrupt") < 0)
		return -1;
	*fd = open_dir_at(parent_fd, "corrupt");
	return *fd;
}

/* Move an unusable file of the spool's new/ aside. */
static void quarantine(struct webhook_spool *spool, const char *name,
		       const char *reason)
{
	if ((spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		spool->corrupt_count++;
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "%s/new/%s: corrupt spool file (%s)", spool->dir,
			  name, reason);
		return;
	}
	if (renameat(spool->new_fd, name, spool->corrupt_fd, name) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/new/%s: corrupt spool file (%s), and moving it "
			  "to corrupt/ failed: %s", spool->dir, name, reason,
			  strerror(errno));
		return;
	}
	spool->corrupt_count++;
	spool->corrupt_dirty = true;
	spool->new_dirty = true;
	spool_log(spool, WEBHOOK_LOG_ERROR,
		  "%s/new/%s: corrupt spool file (%s): moved to corrupt/",
		  spool->dir, name, reason);
}

/* Index new/. Only called when nothing is indexed yet. */
static int scan_new(struct webhook_spool *spool)
{
	struct spool_header hdr;
	struct spool_entry entry;
	const char *reason = NULL;
	enum load_result res;
	struct dirent *de;
	DIR *dir;

	spool->unindexed = 0;
	if ((dir = opendir_at(spool->new_fd)) == NULL) {
		set_error(spool, "opendir(%s/new) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		memset(&entry, 0, sizeof(entry));
		if (!name_parse(de->d_name, &entry.name)) {
			quarantine(spool, de->d_name, "bad file name");
			continue;
		}
		if (spool_indexed(spool) >= WEBHOOK_SPOOL_EVENTS_MAX) {
			spool->unindexed++;
			continue;
		}
		res = check_header(spool->new_fd, de->d_name, &hdr, &reason);
		if (res == LOAD_GONE)
			continue;
		if (res == LOAD_CORRUPT) {
			quarantine(spool, de->d_name, reason);
			continue;
		}
		if (res == LOAD_IO_ERROR) {
			/* left alone; a later rescan may read it */
			spool_log(spool, WEBHOOK_LOG_ERROR,
				  "%s/new/%s: read failed: %s", spool->dir,
				  de->d_name, strerror(errno));
			spool->unindexed++;
			continue;
		}
		entry.created_ms = hdr.created_ms;
		entry.due_ms = entry_due(spool, &entry);
		if (heap_reserve(spool) < 0) {
			spool->unindexed++;
			continue;
		}
		/* heapified once at the end */
		spool->heap[spool->heap_count++] = entry;
	}
	closedir(dir);
	heapify(spool);
	if (spool->unindexed > 0) {
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "%s/new: %u events not indexed (index full or "
			  "unreadable); they are picked up once the queue "
			  "drains", spool->dir, spool->unindexed);
	}
	return 0;
}

/* ---- public API ---- */

struct webhook_spool *webhook_spool_create(const char *dir,
					   unsigned int flags)
{
	struct webhook_spool *spool;

	spool = calloc(1, sizeof(*spool));
	if (spool == NULL)
		return NULL;
	if (strlen(dir) >= sizeof(spool->dir))
		spool->dir_too_long = true;
	else
		memcpy(spool->dir, dir, strlen(dir) + 1);
	spool->flags = flags;
	spool->dir_fd = spool->lock_fd = spool->tmp_fd = -1;
	spool->new_fd = spool->dead_fd = spool->corrupt_fd = -1;
	if (getrandom(&spool->rnd, sizeof(spool->rnd), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(spool->rnd)) {
		/* only a tie-breaker after (ms, pid, seq): weak is fine */
		spool->rnd = (uint32_t)wall_clock_ms() ^
			((uint32_t)getpid() << 16);
	}
	return spool;
}

void webhook_spool_destroy(struct webhook_spool **_spool)
{
	struct webhook_spool *spool = *_spool;
	struct spool_checkout *co, *next;

	if (spool == NULL)
		return;
	*_spool = NULL;
	webhook_spool_abort(spool);
	for (co = spool->checkouts; co != NULL; co = next) {
		next = co->next;
		free(co);
	}
	free(spool->batch);
	free(spool->heap);
	close_fd(&spool->tmp_fd);
	close_fd(&spool->new_fd);
	close_fd(&spool->dead_fd);
	close_fd(&spool->corrupt_fd);
	/* closing the lock file releases the flock() */
	close_fd(&spool->lock_fd);
	close_fd(&spool->dir_fd);
	free(spool);
}

void webhook_spool_set_log(struct webhook_spool *spool,
			   void (*log)(void *context,
				       enum webhook_log_level level,
				       const char *message),
			   void *context)
{
	spool->log = log;
	spool->log_context = context;
}

const char *webhook_spool_error(const struct webhook_spool *spool)
{
	return spool->error;
}

static int open_subdirs(struct webhook_spool *spool)
{
	bool read_only = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0;
	bool owner = (spool->flags & (WEBHOOK_SPOOL_READ_ONLY |
				      WEBHOOK_SPOOL_APPEND_ONLY)) == 0;

	if (!read_only &&
	    (mkdir_at(spool->dir_fd, "tmp") < 0 ||
	     mkdir_at(spool->dir_fd, "new") < 0 ||
	     (owner && (mkdir_at(spool->dir_fd, "dead") < 0 ||
			mkdir_at(spool->dir_fd, "corrupt") < 0)))) {
		set_error(spool, "mkdir in %s failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	if (!read_only) {
		spool->tmp_fd = open_dir_at(spool->dir_fd, "tmp");
		if (spool->tmp_fd < 0) {
			set_error(spool, "open(%s/tmp) failed: %s",
				  spool->dir, strerror(errno));
			return -1;
		}
	}
	spool->new_fd = open_dir_at(spool->dir_fd, "new");
	if (spool->new_fd < 0) {
		set_error(spool, "open(%s/new) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	if (owner || read_only) {
		/* read-only: missing ones count as empty */
		spool->dead_fd = open_dir_at(spool->dir_fd, "dead");
		spool->corrupt_fd = open_dir_at(spool->dir_fd, "corrupt");
		if (owner && (spool->dead_fd < 0 || spool->corrupt_fd < 0)) {
			set_error(spool, "open(%s/dead|corrupt) failed: %s",
				  spool->dir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int lock_spool(struct webhook_spool *spool)
{
	spool->lock_fd = openat(spool->dir_fd, "lock",
				O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				0600);
	if (spool->lock_fd < 0) {
		set_error(spool, "open(%s/lock) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	if (flock(spool->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			set_error(spool, "%s is in use by another process",
				  spool->dir);
		} else {
			set_error(spool, "flock(%s/lock) failed: %s",
				  spool->dir, strerror(errno));
		}
		return -1;
	}
	return 0;
}

int webhook_spool_open(struct webhook_spool *spool)
{
	bool read_only = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0;
	bool append_only = (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0;
	unsigned int removed;

	spool->error[0] = '\0';
	if (spool->opened) {
		set_error(spool, "%s: spool already open", spool->dir);
		return -1;
	}
	if (spool->dir_too_long || spool->dir[0] == '\0') {
		set_error(spool, "spool directory name is empty or too long");
		return -1;
	}
	if (read_only && append_only) {
		set_error(spool, "%s: read-only and append-only", spool->dir);
		return -1;
	}
	if (!read_only && mkdir(spool->dir, 0700) < 0 && errno != EEXIST) {
		set_error(spool, "mkdir(%s) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	spool->dir_fd = open(spool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool->dir_fd < 0) {
		set_error(spool, "open(%s) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	if (open_subdirs(spool) < 0)
		goto fail;
	if (append_only) {
		spool->opened = true;
		return 0;
	}
	if (!read_only) {
		if (lock_spool(spool) < 0)
			goto fail;
		/* We own the directory: everything in tmp/ is a leftover of
		   a crash before commit, never acknowledged to anyone. */
		removed = clean_tmp(spool->tmp_fd, -1);
		if (removed > 0) {
			spool_log(spool, WEBHOOK_LOG_INFO,
				  "%s/tmp: removed %u uncommitted files",
				  spool->dir, removed);
		}
	}
	spool->corrupt_count = count_dir(spool->corrupt_fd);
	if (scan_new(spool) < 0)
		goto fail;
	spool->dead_count = count_dir(spool->dead_fd);
	spool->opened = true;
	return 0;
fail:
	close_fd(&spool->tmp_fd);
	close_fd(&spool->new_fd);
	close_fd(&spool->dead_fd);
	close_fd(&spool->corrupt_fd);
	close_fd(&spool->lock_fd);
	close_fd(&spool->dir_fd);
	spool->heap_count = 0;
	return -1;
}

static bool spool_is_owner(struct webhook_spool *spool, const char *func)
{
	const unsigned int not_owner = WEBHOOK_SPOOL_READ_ONLY |
		WEBHOOK_SPOOL_APPEND_ONLY;

	if (!spool->opened || (spool->flags & not_owner) != 0) {
		set_error(spool, "%s: spool %s is not open as its owner", func,
			  spool->dir);
		return false;
	}
	return true;
}

int webhook_spool_append(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len,
			 int64_t created_ms)
{
	char header[HEADER_MAX], name[NAME_SIZE];
	struct batch_item *item;
	int header_len, fd = -1;
	unsigned int i;

	spool->error[0] = '\0';
	if (!spool->opened || (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		set_error(spool, "append: spool %s is not open for writing",
			  spool->dir);
		return -1;
	}
	if (id == NULL || !id_is_valid(id, strlen(id))) {
		set_error(spool, "append: invalid webhook-id");
		return -1;
	}
	if (body == NULL || body_len == 0 ||
	    body_len > WEBHOOK_SPOOL_BODY_MAX) {
		set_error(spool, "append: event %s: body of %zu bytes (1..%d "
			  "allowed)", id, body_len, WEBHOOK_SPOOL_BODY_MAX);
		return -1;
	}
	if (created_ms < 0) {
		set_error(spool, "append: event %s: negative creation time",
			  id);
		return -1;
	}
	if (spool->batch == NULL) {
		spool->batch = calloc(WEBHOOK_SPOOL_BATCH_MAX,
				      sizeof(*spool->batch));
		if (spool->batch == NULL) {
			set_error(spool, "append: out of memory");
			return -1;
		}
	}
	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX &&
	    webhook_spool_commit(spool) < 0)
		return -1;
	if ((spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) == 0 &&
	    spool_indexed(spool) + spool->batch_count >=
	    WEBHOOK_SPOOL_EVENTS_MAX) {
		set_error(spool, "append: spool %s is full (%d events)",
			  spool->dir, WEBHOOK_SPOOL_EVENTS_MAX);
		return -1;
	}
	header_len = header_format(id, created_ms, body, body_len, header);
	if (header_len < 0) {
		set_error(spool, "append: event %s: cannot build the header",
			  id);
		return -1;
	}

	item = &spool->batch[spool->batch_count];
	memset(item, 0, sizeof(*item));
	item->entry.created_ms = created_ms;
	item->entry.name.ms = created_ms;
	item->entry.name.pid = (uint32_t)getpid();
	item->entry.name.rnd = spool->rnd;
	for (i = 0; i < CREATE_TRIES; i++) {
		item->entry.name.seq = ++spool->seq;
		name_format(&item->entry.name, name);
		fd = openat(spool->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL |
			    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		set_error(spool, "append: open(%s/tmp/%s) failed: %s",
			  spool->dir, name, strerror(errno));
		return -1;
	}
	if (write_full(fd, header, (size_t)header_len) < 0 ||
	    write_full(fd, body, body_len) < 0) {
		set_error(spool, "append: write(%s/tmp/%s) failed: %s",
			  spool->dir, name, strerror(errno));
		(void)close(fd);
		(void)unlinkat(spool->tmp_fd, name, 0);
		return -1;
	}
	if (close(fd) < 0) {
		set_error(spool, "append: close(%s/tmp/%s) failed: %s",
			  spool->dir, name, strerror(errno));
		(void)unlinkat(spool->tmp_fd, name, 0);
		return -1;
	}
	spool->batch_count++;
	return 0;
}

/* Commit the batch; originals of imported copies are unlinked from
   src_dir_fd once their copies are durable. */
static int batch_commit(struct webhook_spool *spool, int src_dir_fd,
			unsigned int *committed_r)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) == 0;
	char name[NAME_SIZE], rename_name[NAME_SIZE] = "";
	unsigned int i, count = spool->batch_count, committed = 0;
	int rename_errno = 0;
	bool durable, unlinked = false;
	struct batch_item *item;

	*committed_r = 0;
	if (count == 0)
		return 0;
	if (sync_fs_of(spool->tmp_fd) < 0) {
		set_error(spool, "commit: syncfs(%s) failed: %s", spool->dir,
			  strerror(errno));
		webhook_spool_abort(spool);
		return -1;
	}
	spool->batch_count = 0;
	for (i = 0; i < count; i++) {
		item = &spool->batch[i];
		name_format(&item->entry.name, name);
		item->committed = false;
		if (renameat(spool->tmp_fd, name, spool->new_fd, name) < 0) {
			if (rename_errno == 0) {
				rename_errno = errno;
				memcpy(rename_name, name, sizeof(name));
			}
			(void)unlinkat(spool->tmp_fd, name, 0);
			continue;
		}
		item->committed = true;
		committed++;
	}
	durable = committed == 0 || fsync_dir(spool->new_fd) == 0;
	if (!durable) {
		set_error(spool, "commit: fsync(%s/new) failed: %s",
			  spool->dir, strerror(errno));
	}
	for (i = 0; i < count; i++) {
		item = &spool->batch[i];
		if (!item->committed)
			continue;
		/* in new/, durable or not: index it (a duplicate after a
		   re-send is harmless, a forgotten file is not) */
		if (owner) {
			item->entry.due_ms = entry_due(spool, &item->entry);
			heap_push(spool, &item->entry);
		}
		if (durable && src_dir_fd >= 0 && item->src_name[0] != '\0' &&
		    unlinkat(src_dir_fd, item->src_name, 0) == 0)
			unlinked = true;
	}
	if (unlinked)
		(void)fsync_dir(src_dir_fd);
	if (!durable)
		return -1;
	*committed_r = committed;
	if (rename_errno != 0) {
		set_error(spool, "commit: %u of %u events committed: "
			  "rename(%s/tmp/%s) failed: %s", committed, count,
			  spool->dir, rename_name, strerror(rename_errno));
		return -1;
	}
	return 0;
}

int webhook_spool_commit(struct webhook_spool *spool)
{
	unsigned int committed;

	spool->error[0] = '\0';
	if (!spool->opened || (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		set_error(spool, "commit: spool %s is not open for writing",
			  spool->dir);
		return -1;
	}
	return batch_commit(spool, -1, &committed);
}

void webhook_spool_abort(struct webhook_spool *spool)
{
	char name[NAME_SIZE];
	unsigned int i;

	for (i = 0; i < spool->batch_count; i++) {
		name_format(&spool->batch[i].entry.name, name);
		(void)unlinkat(spool->tmp_fd, name, 0);
	}
	spool->batch_count = 0;
}

void webhook_spool_set_first_delay(struct webhook_spool *spool,
				   int64_t delay_ms)
{
	unsigned int i;

	spool->first_delay_ms = delay_ms < 0 ? 0 : delay_ms;
	for (i = 0; i < spool->heap_count; i++)
		spool->heap[i].due_ms = entry_due(spool, &spool->heap[i]);
	heapify(spool);
}

int64_t webhook_spool_next_due(const struct webhook_spool *spool)
{
	return spool->heap_count == 0 ? -1 : spool->heap[0].due_ms;
}

static struct spool_checkout *
checkout_of(struct webhook_spool *spool, struct webhook_spool_event *event)
{
	/* the event is the first member of its checkout */
	struct spool_checkout *co = (struct spool_checkout *)(void *)event;

	if (co->owner != spool)
		abort();
	return co;
}

/* Take a checkout off the list and free it, keeping its entry. */
static void checkout_free(struct webhook_spool *spool,
			  struct webhook_spool_event **event,
			  struct spool_entry *entry_r)
{
	struct spool_checkout *co = checkout_of(spool, *event);

	*event = NULL;
	*entry_r = co->entry;
	if (co->prev != NULL)
		co->prev->next = co->next;
	else
		spool->checkouts = co->next;
	if (co->next != NULL)
		co->next->prev = co->prev;
	spool->checkout_count--;
	free(co);
}

static enum load_result checkout_load(struct webhook_spool *spool,
				      const struct spool_entry *entry,
				      struct spool_checkout **co_r,
				      const char **reason_r)
{
	struct spool_header hdr;
	struct spool_checkout *co;
	enum load_result res;
	char name[NAME_SIZE];
	unsigned char *buf;

	name_format(&entry->name, name);
	res = load_file(spool->new_fd, name, &buf, &hdr, reason_r);
	if (res != LOAD_OK)
		return res;
	co = calloc(1, sizeof(*co) + hdr.body_len + 1);
	if (co == NULL) {
		free(buf);
		errno = ENOMEM;
		return LOAD_IO_ERROR;
	}
	co->owner = spool;
	co->entry = *entry;
	memcpy(co->id, hdr.id, sizeof(co->id));
	memcpy(co->body, buf + hdr.header_len, hdr.body_len);
	co->body[hdr.body_len] = '\0';
	free(buf);
	co->event.id = co->id;
	co->event.body = co->body;
	co->event.body_len = hdr.body_len;
	co->event.created_ms = hdr.created_ms;
	co->event.attempts = entry->name.attempts;
	co->event.due_ms = entry->due_ms;
	*co_r = co;
	return LOAD_OK;
}

int webhook_spool_checkout(struct webhook_spool *spool, int64_t now_ms,
			   struct webhook_spool_event **event_r)
{
	struct spool_checkout *co = NULL;
	struct spool_entry entry;
	const char *reason = NULL;
	enum load_result res;
	char name[NAME_SIZE];

	*event_r = NULL;
	spool->error[0] = '\0';
	if (!spool_is_owner(spool, "checkout"))
		return -1;
	if (spool->heap_count == 0 && spool->checkout_count == 0 &&
	    spool->unindexed > 0 && scan_new(spool) < 0)
		return -1;
	while (spool->heap_count > 0 && spool->heap[0].due_ms <= now_ms) {
		heap_pop(spool, &entry);
		name_format(&entry.name, name);
		res = checkout_load(spool, &entry, &co, &reason);
		switch (res) {
		case LOAD_OK:
			co->next = spool->checkouts;
			if (co->next != NULL)
				co->next->prev = co;
			spool->checkouts = co;
			spool->checkout_count++;
			*event_r = &co->event;
			return 1;
		case LOAD_CORRUPT:
			quarantine(spool, name, reason);
			break;
		case LOAD_GONE:
			spool_log(spool, WEBHOOK_LOG_WARNING,
				  "%s/new/%s: vanished from the spool",
				  spool->dir, name);
			break;
		case LOAD_IO_ERROR:
			set_error(spool, "read(%s/new/%s) failed: %s",
				  spool->dir, name, strerror(errno));
			entry.due_ms = now_ms + IO_RETRY_MS;
			heap_push(spool, &entry);
			return -1;
		}
	}
	return 0;
}

int webhook_spool_delivered(struct webhook_spool *spool,
			    struct webhook_spool_event **event)
{
	struct spool_entry entry;
	char name[NAME_SIZE];

	spool->error[0] = '\0';
	checkout_free(spool, event, &entry);
	name_format(&entry.name, name);
	spool->new_dirty = true;
	if (unlinkat(spool->new_fd, name, 0) < 0 && errno != ENOENT) {
		set_error(spool, "unlink(%s/new/%s) failed: %s", spool->dir,
			  name, strerror(errno));
		return -1;
	}
	return 0;
}

int webhook_spool_reschedule(struct webhook_spool *spool,
			     struct webhook_spool_event **event,
			     int64_t due_ms)
{
	struct spool_entry entry;
	struct spool_name old_name;
	char from[NAME_SIZE], to[NAME_SIZE];
	int ret = 0;

	spool->error[0] = '\0';
	checkout_free(spool, event, &entry);
	old_name = entry.name;
	name_format(&entry.name, from);
	if (entry.name.attempts < ATTEMPTS_MAX)
		entry.name.attempts++;
	entry.name.next_ms = due_ms < 0 ? 0 : due_ms;
	name_format(&entry.name, to);
	if (renameat(spool->new_fd, from, spool->new_fd, to) < 0) {
		set_error(spool, "rename(%s/new/%s) failed: %s", spool->dir,
			  from, strerror(errno));
		entry.name = old_name;
		ret = -1;
	}
	spool->new_dirty = true;
	entry.due_ms = due_ms;
	heap_push(spool, &entry);
	return ret;
}

int webhook_spool_dead_letter(struct webhook_spool *spool,
			      struct webhook_spool_event **event)
{
	struct spool_entry entry;
	struct spool_name old_name;
	char from[NAME_SIZE], to[NAME_SIZE];

	spool->error[0] = '\0';
	checkout_free(spool, event, &entry);
	old_name = entry.name;
	name_format(&entry.name, from);
	if (entry.name.attempts < ATTEMPTS_MAX)
		entry.name.attempts++;
	name_format(&entry.name, to);
	if (renameat(spool->new_fd, from, spool->dead_fd, to) < 0) {
		set_error(spool, "rename(%s/new/%s, dead/) failed: %s",
			  spool->dir, from, strerror(errno));
		entry.name = old_name;
		entry.due_ms += DEAD_LETTER_RETRY_MS;
		heap_push(spool, &entry);
		return -1;
	}
	spool->dead_count++;
	spool->new_dirty = true;
	spool->dead_dirty = true;
	return 0;
}

void webhook_spool_release(struct webhook_spool *spool,
			   struct webhook_spool_event **event)
{
	struct spool_entry entry;

	checkout_free(spool, event, &entry);
	heap_push(spool, &entry);
}

static int sync_dir_if_dirty(struct webhook_spool *spool, bool *dirty,
			     int fd, const char *name)
{
	if (!*dirty)
		return 0;
	*dirty = false;
	if (fsync_dir(fd) < 0) {
		set_error(spool, "fsync(%s/%s) failed: %s", spool->dir, name,
			  strerror(errno));
		return -1;
	}
	return 0;
}

int webhook_spool_sync(struct webhook_spool *spool)
{
	int ret = 0;

	spool->error[0] = '\0';
	if (sync_dir_if_dirty(spool, &spool->new_dirty, spool->new_fd,
			      "new") < 0)
		ret = -1;
	if (sync_dir_if_dirty(spool, &spool->dead_dirty, spool->dead_fd,
			      "dead") < 0)
		ret = -1;
	if (sync_dir_if_dirty(spool, &spool->corrupt_dirty,
			      spool->corrupt_fd, "corrupt") < 0)
		ret = -1;
	return ret;
}

/* ---- import ---- */

struct import_ctx {
	const char *outbox;
	int dir_fd, new_fd, corrupt_fd;
	unsigned int imported, moved;
	bool failed;
};

static void import_quarantine(struct webhook_spool *spool,
			      struct import_ctx *ctx, const char *name,
			      const char *reason)
{
	if (quarantine_dir_fd(ctx->dir_fd, &ctx->corrupt_fd) < 0 ||
	    renameat(ctx->new_fd, name, ctx->corrupt_fd, name) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/new/%s: corrupt outbox file (%s), and moving "
			  "it to corrupt/ failed: %s", ctx->outbox, name,
			  reason, strerror(errno));
		return;
	}
	(void)fsync_dir(ctx->corrupt_fd);
	spool_log(spool, WEBHOOK_LOG_ERROR,
		  "%s/new/%s: corrupt outbox file (%s): moved to corrupt/",
		  ctx->outbox, name, reason);
}

/* Write a copy of buf into tmp/ as a batch item. */
static int import_copy(struct webhook_spool *spool,
		       const struct spool_entry *entry, const char *src_name,
		       const unsigned char *buf, size_t len)
{
	struct batch_item *item;
	char name[NAME_SIZE];
	int fd;

	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX)
		return -1;
	name_format(&entry->name, name);
	fd = openat(spool->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		set_error(spool, "import: open(%s/tmp/%s) failed: %s",
			  spool->dir, name, strerror(errno));
		return -1;
	}
	if (write_full(fd, buf, len) < 0 || close(fd) < 0) {
		set_error(spool, "import: write(%s/tmp/%s) failed: %s",
			  spool->dir, name, strerror(errno));
		(void)unlinkat(spool->tmp_fd, name, 0);
		return -1;
	}
	item = &spool->batch[spool->batch_count++];
	memset(item, 0, sizeof(*item));
	item->entry = *entry;
	memcpy(item->src_name, src_name, strlen(src_name) + 1);
	return 0;
}

static void import_one(struct webhook_spool *spool, struct import_ctx *ctx,
		       const char *src_name)
{
	struct spool_header hdr;
	struct spool_entry entry;
	const char *reason = NULL;
	enum load_result res;
	char name[NAME_SIZE];
	unsigned char *buf;
	unsigned int committed;

	memset(&entry, 0, sizeof(entry));
	if (!name_parse(src_name, &entry.name)) {
		import_quarantine(spool, ctx, src_name, "bad file name");
		return;
	}
	res = load_file(ctx->new_fd, src_name, &buf, &hdr, &reason);
	if (res == LOAD_GONE)
		return;
	if (res == LOAD_CORRUPT) {
		import_quarantine(spool, ctx, src_name, reason);
		return;
	}
	if (res == LOAD_IO_ERROR) {
		set_error(spool, "import: read(%s/new/%s) failed: %s",
			  ctx->outbox, src_name, strerror(errno));
		ctx->failed = true;
		return;
	}
	/* a fresh name in this spool; the delivery state carries over */
	entry.name.ms = hdr.created_ms;
	entry.name.pid = (uint32_t)getpid();
	entry.name.seq = ++spool->seq;
	entry.name.rnd = spool->rnd;
	entry.created_ms = hdr.created_ms;
	name_format(&entry.name, name);
	if (renameat(ctx->new_fd, src_name, spool->new_fd, name) == 0) {
		entry.due_ms = entry_due(spool, &entry);
		heap_push(spool, &entry);
		ctx->moved++;
		ctx->imported++;
		free(buf);
		return;
	}
	if (errno != EXDEV) {
		set_error(spool, "import: rename(%s/new/%s) failed: %s",
			  ctx->outbox, src_name, strerror(errno));
		ctx->failed = true;
		free(buf);
		return;
	}
	/* another filesystem: copy, made durable with the batch */
	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX) {
		if (batch_commit(spool, ctx->new_fd, &committed) < 0)
			ctx->failed = true;
		ctx->imported += committed;
	}
	if (import_copy(spool, &entry, src_name, buf,
			hdr.header_len + hdr.body_len) < 0)
		ctx->failed = true;
	free(buf);
}

int webhook_spool_import_dir(struct webhook_spool *spool,
			     const char *outbox_dir, unsigned int *imported_r)
{
	struct import_ctx ctx;
	struct dirent *de;
	unsigned int committed, removed;
	int tmp_fd;
	DIR *dir;

	if (imported_r != NULL)
		*imported_r = 0;
	spool->error[0] = '\0';
	if (!spool_is_owner(spool, "import"))
		return -1;
	if (spool->batch_count > 0 && webhook_spool_commit(spool) < 0)
		return -1;
	if (spool->batch == NULL) {
		spool->batch = calloc(WEBHOOK_SPOOL_BATCH_MAX,
				      sizeof(*spool->batch));
		if (spool->batch == NULL) {
			set_error(spool, "import: out of memory");
			return -1;
		}
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.outbox = outbox_dir;
	ctx.new_fd = ctx.corrupt_fd = -1;
	ctx.dir_fd = open(outbox_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx.dir_fd < 0) {
		if (errno == ENOENT)
			return 0;
		set_error(spool, "import: open(%s) failed: %s", outbox_dir,
			  strerror(errno));
		return -1;
	}
	ctx.new_fd = open_dir_at(ctx.dir_fd, "new");
	if (ctx.new_fd < 0 && errno != ENOENT) {
		set_error(spool, "import: open(%s/new) failed: %s",
			  outbox_dir, strerror(errno));
		ctx.failed = true;
	}
	if (ctx.new_fd >= 0) {
		dir = opendir_at(ctx.new_fd);
		if (dir == NULL) {
			set_error(spool, "import: opendir(%s/new) failed: %s",
				  outbox_dir, strerror(errno));
			ctx.failed = true;
		} else {
			while ((de = readdir(dir)) != NULL) {
				if (de->d_name[0] == '.')
					continue;
				if (spool_indexed(spool) +
				    spool->batch_count >=
				    WEBHOOK_SPOOL_EVENTS_MAX) {
					spool_log(spool, WEBHOOK_LOG_WARNING,
						  "%s: spool full, import "
						  "of %s stopped", spool->dir,
						  outbox_dir);
					break;
				}
				import_one(spool, &ctx, de->d_name);
			}
			closedir(dir);
		}
		if (spool->batch_count > 0) {
			if (batch_commit(spool, ctx.new_fd, &committed) < 0)
				ctx.failed = true;
			ctx.imported += committed;
		}
		if (ctx.moved > 0 &&
		    (fsync_dir(spool->new_fd) < 0 ||
		     fsync_dir(ctx.new_fd) < 0)) {
			set_error(spool, "import: fsync failed: %s",
				  strerror(errno));
			ctx.failed = true;
		}
	}
	tmp_fd = open_dir_at(ctx.dir_fd, "tmp");
	if (tmp_fd >= 0) {
		removed = clean_tmp(tmp_fd, WEBHOOK_SPOOL_TMP_STALE_SECS);
		if (removed > 0) {
			spool_log(spool, WEBHOOK_LOG_INFO,
				  "%s/tmp: removed %u stale files",
				  outbox_dir, removed);
		}
		(void)close(tmp_fd);
	}
	close_fd(&ctx.corrupt_fd);
	close_fd(&ctx.new_fd);
	close_fd(&ctx.dir_fd);
	if (imported_r != NULL)
		*imported_r = ctx.imported;
	return ctx.failed ? -1 : 0;
}

/* ---- single files ---- */

int webhook_spool_read_file(const char *path,
			    char id_r[WEBHOOK_SPOOL_ID_MAX],
			    unsigned char **body_r, size_t *body_len_r,
			    int64_t *created_ms_r, char *error,
			    size_t error_size)
{
	const char *base = strrchr(path, '/'), *reason = NULL;
	struct spool_header hdr;
	struct spool_name name;
	enum load_result res;
	unsigned char *buf;

	*body_r = NULL;
	base = base == NULL ? path : base + 1;
	if (!name_parse(base, &name)) {
		snprintf(error, error_size, "%s: not a spool file name", path);
		return -1;
	}
	res = load_file(AT_FDCWD, path, &buf, &hdr, &reason);
	switch (res) {
	case LOAD_OK:
		break;
	case LOAD_GONE:
		return 0;
	case LOAD_CORRUPT:
		snprintf(error, error_size, "%s: corrupt spool file (%s)",
			 path, reason);
		return -1;
	case LOAD_IO_ERROR:
		snprintf(error, error_size, "read(%s) failed: %s", path,
			 strerror(errno));
		return -1;
	}
	/* the body to the front, NUL-terminated (load_file() put a NUL
	   after the whole file) */
	memmove(buf, buf + hdr.header_len, hdr.body_len + 1);
	memcpy(id_r, hdr.id, sizeof(hdr.id));
	*body_r = buf;
	*body_len_r = hdr.body_len;
	*created_ms_r = hdr.created_ms;
	return 1;
}

static void count_entry(const struct spool_entry *entry,
			struct webhook_spool_counts *counts)
{
	if (entry->name.attempts > 0)
		counts->retrying++;
	if (counts->oldest_created_ms < 0 ||
	    entry->created_ms < counts->oldest_created_ms)
		counts->oldest_created_ms = entry->created_ms;
}

void webhook_spool_counts(const struct webhook_spool *spool,
			  struct webhook_spool_counts *counts_r)
{
	const struct spool_checkout *co;
	unsigned int i;

	memset(counts_r, 0, sizeof(*counts_r));
	counts_r->oldest_created_ms = -1;
	counts_r->next_due_ms = webhook_spool_next_due(spool);
	counts_r->pending = spool_indexed(spool) + spool->unindexed;
	counts_r->checked_out = spool->checkout_count;
	counts_r->dead = spool->dead_count;
	counts_r->corrupt = spool->corrupt_count;
	counts_r->unindexed = spool->unindexed;
	for (i = 0; i < spool->heap_count; i++)
		count_entry(&spool->heap[i], counts_r);
	for (co = spool->checkouts; co != NULL; co = co->next)
		count_entry(&co->entry, counts_r);
}
