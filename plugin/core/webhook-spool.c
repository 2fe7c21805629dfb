/* Durable queue of webhook events on append-only segment files.

   Why this shape:
   - No filesystem operation per event. The one-file-per-event layout
     this replaces paid a create, a rename, an open, a read and an unlink
     for every event, and on some filesystems (ext4 without a journal,
     mounted with discard) a create scans recently freed inodes and an
     unlink issues a synchronous discard: a few thousand events a second
     at best. Here an event costs a few hundred bytes of write(2) into a
     segment, a pread() at checkout and one short line in an outcome
     log; files are created and removed per segment (thousands of
     events).
   - Batched durability. commit() does one write(2) of the buffered
     batch and one fdatasync() of the segment; the events become visible
     to checkout only after it. A crash before that leaves at most an
     incomplete last record, which the next owner cuts off: never
     delivered half-written, and the records before it are intact
     because the file is only ever appended to.
   - Outcomes never rewrite a segment: they are appended to the
     segment's outcome log, so a kill -9 loses none of them (they are in
     the kernel before the call returns), and sync() makes them durable
     with one fdatasync() per log, at the engine's bounded rate. A
     segment is unlinked when all of its events are done; its log only
     after that unlink is durable (fsync of seg/), so that a power
     failure cannot bring back a segment without its outcomes.
   - One writer per segment. The owner writes its own segments; a
     producer in APPEND_ONLY mode writes its own and flock()s it while
     it does, so the owner neither repairs nor deletes a file that is
     still growing. A segment appears in seg/ (by rename) only once it
     is locked and has its header line.
   - The index is a binary heap of small entries keyed by due time
     (O(log n) per operation, the hot path at tens of thousands of
     events a second); ids and bodies stay in the segment and are read
     with the record at checkout.
   - One mutex around the whole state, held for microseconds: never
     while waiting for the disk in commit(), sync() or dead_letter(). */

#define _GNU_SOURCE /* renameat2() */
#include "pop3-retention-config.h"
#include "webhook-spool.h"
#include "webhook-crypto.h"

#include <openssl/evp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEG_MAGIC "pop3-retention-segment 1\n"
#define SEG_MAGIC_LEN (sizeof(SEG_MAGIC) - 1)
#define DEAD_MAGIC "pop3-retention-dead 1"
/* "<ms>-<pid>-<seq>" (19+1+10+1+10) and ".seg" or ".log", and the NUL */
#define SEG_NAME_SIZE 64
#define SEG_FILE_SIZE (SEG_NAME_SIZE + 16)
/* "E <id> <ms> <len> <sha256>\n": 2+127+1+19+1+5+1+64+1 */
#define REC_HEADER_MAX 256
#define REC_MAX (REC_HEADER_MAX + WEBHOOK_SPOOL_BODY_MAX + 1)
/* Segments are read at open in chunks of this (at least REC_MAX). */
#define SCAN_BUF_SIZE (1024 * 1024)
/* A batch is buffered and written in pieces of at most this. */
#define WBUF_SIZE (256 * 1024)
/* An outcome log beyond this is not a log we wrote. */
#define OUTCOME_LOG_MAX (256 * 1024 * 1024)
#define OUTCOME_LINE_MAX 64
/* A segment's outcome lines wait in memory up to this many bytes (see
   webhook_spool_flush()) */
#define OUTCOME_BUF_SIZE 4096
/* Checkouts read this much of a segment at a time: events go out in the
   order they were appended, so the next ones come from memory */
#define READ_CACHE_SIZE (64 * 1024)
#define SHA256_LEN 32
#define SPOOL_DIR_MAX (PATH_MAX - 64)
#define ATTEMPTS_MAX 1000000
/* An unreadable event is tried again after this long. */
#define IO_RETRY_MS 5000
/* An event that could not be moved to dead/ is sent again after this. */
#define DEAD_LETTER_RETRY_MS 60000
/* The owner looks for segments released by other writers this often. */
#define RESCAN_MS 1000
#define LOG_LINE_MAX 1024
#define CREATE_TRIES 10

/* The old one-file-per-event format, read only to migrate it. */
#define OLD_MAGIC "pop3-retention-spool 1"
#define OLD_HEADER_MAX 512
#define OLD_NAME_SIZE 96

struct spool_segment {
	struct spool_segment *prev, *next;
	char name[SEG_NAME_SIZE];	/* without ".seg" */
	int fd;				/* the segment; -1 when deferred */
	int log_fd;			/* its outcome log; -1 until needed */
	uint32_t records;		/* committed records */
	uint32_t live;			/* of those, not delivered or dead */
	uint32_t deferred;		/* pending, not indexed (index full) */
	pid_t writer_pid;		/* who writes it (writing only) */
	int64_t size;			/* writer: bytes in the file */
	bool writing;			/* our current segment */
	bool keep;			/* holds unquarantined bad bytes */
	bool log_dirty;			/* written since the last sync */
	bool log_broken;		/* a failed write may have left half a
					   line: start the next on a new one */
	/* outcome lines not written yet (webhook_spool_flush()) */
	char *obuf;
	size_t olen;
	/* unique in the process (the read cache's key: a freed segment's
	   address may come back) */
	uint64_t serial;
};

struct spool_entry {
	struct spool_segment *seg;
	int64_t offset;			/* of the record in the segment */
	int64_t created_ms;
	int64_t due_ms;
	uint32_t index;			/* record number in the segment */
	uint32_t rec_len;		/* header line, body, newline */
	uint32_t attempts;
};

struct spool_checkout {
	/* first member: the public event is the checkout's address */
	struct webhook_spool_event event;
	struct webhook_spool *owner;
	struct spool_entry entry;
	struct spool_checkout *prev, *next;
	unsigned char *rendered;	/* the body to send, if rendered */
	unsigned char rec[];		/* the record, NUL-terminated */
};

struct batch_item {
	int64_t offset;
	int64_t created_ms;
	uint32_t rec_len;
	/* migrated old-format events carry their delivery state */
	uint32_t attempts;
	int64_t next_ms;
};

struct rec_header {
	char id[WEBHOOK_SPOOL_ID_MAX];
	int64_t created_ms;
	size_t body_len;
	unsigned char sha256[SHA256_LEN];
	size_t header_len;		/* with its newline */
};

struct webhook_spool {
	pthread_mutex_t mutex;
	char dir[SPOOL_DIR_MAX];
	bool dir_too_long;
	unsigned int flags;
	bool opened;

	int dir_fd, lock_fd, seg_fd, dead_fd, corrupt_fd;

	struct spool_entry *heap;
	unsigned int heap_count, heap_size;
	struct spool_checkout *checkouts;
	unsigned int checkout_count;
	/* owner: every segment known (adopted, own, deferred) */
	struct spool_segment *segments;
	/* unlinked segments whose logs go after the next fsync of seg/ */
	struct spool_segment *doomed;

	/* the writer's state: the producer thread's alone, so commit() can
	   use it without the mutex */
	struct spool_segment *wseg;
	bool wseg_new;			/* created since the last commit */
	unsigned char *wbuf;
	size_t wbuf_len;
	struct batch_item *batch;
	unsigned int batch_count;
	int64_t batch_start;		/* wseg->size when the batch began */
	uint32_t seq;

	unsigned int dead_count, corrupt_count, unindexed;
	/* READ_ONLY: what open() counted */
	struct webhook_spool_counts ro_counts;
	int64_t first_delay_ms;
	int64_t next_rescan_ms;		/* monotonic */
	bool rescan_wanted;		/* a writer holds a segment */
	bool seg_dirty;			/* seg/ changed since its last fsync */
	/* segments with outcome lines in their obuf */
	unsigned int outcome_segs;
	/* read cache for checkouts: bytes [rcache_start, +rcache_len) of
	   the segment with serial rcache_serial (0: none) */
	unsigned char *rcache;
	uint64_t rcache_serial;
	int64_t rcache_start;
	size_t rcache_len;
	/* where the last record checked out ended: a miss near it is
	   read with its neighbours, one far from it is not */
	uint64_t last_serial;
	int64_t last_end;

	void (*log)(void *context, enum webhook_log_level level,
		    const char *message);
	void *log_context;
	webhook_spool_render_fn *render;
	void *render_context;
	/* the last error of any thread; each thread's own is in tls_error */
	char error[WEBHOOK_SPOOL_ERROR_MAX];
};

/* Errors per thread, so that two threads sharing a spool each read
   their own. */
static __thread const struct webhook_spool *tls_error_spool;
static __thread char tls_error[WEBHOOK_SPOOL_ERROR_MAX];

static void __attribute__((format(printf, 2, 3)))
set_error(struct webhook_spool *spool, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(tls_error, sizeof(tls_error), fmt, args);
	va_end(args);
	tls_error_spool = spool;
	memcpy(spool->error, tls_error, sizeof(spool->error));
}

/* Error text for a buffer of the caller's (paths may be long: the text
   is cut, which vsnprintf() does without a compiler warning). */
static void __attribute__((format(printf, 3, 4)))
format_error(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, size, fmt, args);
	va_end(args);
}

static void clear_error(struct webhook_spool *spool)
{
	tls_error_spool = spool;
	tls_error[0] = '\0';
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

/* Lock for a public call and start it with no error. */
static void spool_enter(struct webhook_spool *spool)
{
	if (pthread_mutex_lock(&spool->mutex) != 0)
		abort();
	clear_error(spool);
}

static void spool_leave(struct webhook_spool *spool)
{
	(void)pthread_mutex_unlock(&spool->mutex);
}

static int64_t wall_clock_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
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

static bool is_owner(const struct webhook_spool *spool)
{
	return spool->opened &&
		(spool->flags & (WEBHOOK_SPOOL_READ_ONLY |
				 WEBHOOK_SPOOL_APPEND_ONLY)) == 0;
}

static bool spool_is_owner(struct webhook_spool *spool, const char *func)
{
	if (!is_owner(spool)) {
		set_error(spool, "%s: spool %s is not open as its owner", func,
			  spool->dir);
		return false;
	}
	return true;
}

/* ---- parsing ---- */

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

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool parse_sha256_hex(const char *s, size_t len,
			     unsigned char md_r[SHA256_LEN])
{
	unsigned int i;
	int hi, lo;

	if (len != SHA256_LEN * 2)
		return false;
	for (i = 0; i < SHA256_LEN; i++) {
		hi = hex_value(s[2 * i]);
		lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		md_r[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
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

	const EVP_MD *md = webhook_crypto_sha256();

	if (EVP_Digest(data, len, md_r, &md_len,
		       md != NULL ? md : EVP_sha256(), NULL) != 1 ||
	    md_len != SHA256_LEN)
		return -1;
	return 0;
}

static void sha256_hex(const unsigned char md[SHA256_LEN],
		       char hex_r[SHA256_LEN * 2 + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned int i;

	for (i = 0; i < SHA256_LEN; i++) {
		hex_r[2 * i] = digits[md[i] >> 4];
		hex_r[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex_r[SHA256_LEN * 2] = '\0';
}

/* Split a line (without its newline) at single spaces. Returns the
   number of fields, or -1 if there are more than max or one is empty. */
static int split_fields(const char *line, size_t len, const char **fields,
			size_t *lens, int max)
{
	const char *p = line, *end = line + len, *sp;
	int n = 0;

	while (p <= end) {
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp == NULL)
			sp = end;
		if (n == max || sp == p)
			return -1;
		fields[n] = p;
		lens[n++] = (size_t)(sp - p);
		p = sp + 1;
	}
	return n;
}

/* Parse the record header line at the start of buf (len bytes
   available). Returns 1, 0 if buf holds no newline but is shorter than
   the longest header line (it may be cut off), -1 with a static reason
   if it is bad. */
static int rec_header_parse(const unsigned char *buf, size_t len,
			    struct rec_header *hdr_r, const char **reason_r)
{
	const unsigned char *nl;
	const char *f[5];
	size_t flen[5];
	uint64_t num;

	nl = memchr(buf, '\n', len < REC_HEADER_MAX ? len : REC_HEADER_MAX);
	if (nl == NULL) {
		if (len < REC_HEADER_MAX)
			return 0;
		*reason_r = "record header line too long";
		return -1;
	}
	if (split_fields((const char *)buf, (size_t)(nl - buf), f, flen,
			 5) != 5 || flen[0] != 1 || f[0][0] != 'E') {
		*reason_r = "bad record header";
		return -1;
	}
	if (!id_is_valid(f[1], flen[1])) {
		*reason_r = "bad record id";
		return -1;
	}
	memcpy(hdr_r->id, f[1], flen[1]);
	hdr_r->id[flen[1]] = '\0';
	if (!parse_decimal(f[2], flen[2], INT64_MAX, &num)) {
		*reason_r = "bad record creation time";
		return -1;
	}
	hdr_r->created_ms = (int64_t)num;
	if (!parse_decimal(f[3], flen[3], WEBHOOK_SPOOL_BODY_MAX, &num) ||
	    num == 0) {
		*reason_r = "bad record length";
		return -1;
	}
	hdr_r->body_len = (size_t)num;
	if (!parse_sha256_hex(f[4], flen[4], hdr_r->sha256)) {
		*reason_r = "bad record sha256";
		return -1;
	}
	hdr_r->header_len = (size_t)(nl - buf) + 1;
	return 1;
}

/* "<digits>-<digits>-<digits>" followed by suffix: a segment's file
   name. The base name (without the suffix) goes to base_r. */
static bool seg_name_parse(const char *name, const char *suffix,
			   char base_r[SEG_NAME_SIZE])
{
	size_t len = strlen(name), suffix_len = strlen(suffix), i;
	unsigned int dashes = 0;

	if (len <= suffix_len || len - suffix_len >= SEG_NAME_SIZE ||
	    strcmp(name + len - suffix_len, suffix) != 0)
		return false;
	len -= suffix_len;
	for (i = 0; i < len; i++) {
		if (name[i] == '-') {
			if (i == 0 || name[i - 1] == '-' || ++dashes > 2)
				return false;
		} else if (name[i] < '0' || name[i] > '9') {
			return false;
		}
	}
	if (dashes != 2 || name[len - 1] == '-')
		return false;
	memcpy(base_r, name, len);
	base_r[len] = '\0';
	return true;
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

static int fdatasync_fd(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
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

/* ---- the heap ---- */

static bool entry_before(const struct spool_entry *a,
			 const struct spool_entry *b)
{
	if (a->due_ms != b->due_ms)
		return a->due_ms < b->due_ms;
	if (a->created_ms != b->created_ms)
		return a->created_ms < b->created_ms;
	if (a->index != b->index)
		return a->index < b->index;
	return a->offset < b->offset;
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

/* When an event is due: a never-attempted one after the first delay,
   a retried one when its reschedule said. */
static int64_t first_due(const struct webhook_spool *spool,
			 int64_t created_ms)
{
	return created_ms + spool->first_delay_ms;
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

/* Queue an entry whose due time is set. Fails only when memory does
   (callers check the limit first): the event then stays on disk,
   counted as unindexed, and is indexed at the next open. */
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

/* ---- segments ---- */

static void seg_file_name(const struct spool_segment *seg,
			  const char *suffix, char buf[SEG_FILE_SIZE])
{
	snprintf(buf, SEG_FILE_SIZE, "%s%s", seg->name, suffix);
}

static void seg_list_add(struct spool_segment **list,
			 struct spool_segment *seg)
{
	seg->prev = NULL;
	seg->next = *list;
	if (seg->next != NULL)
		seg->next->prev = seg;
	*list = seg;
}

static void seg_list_remove(struct spool_segment **list,
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

static struct spool_segment *seg_new(const char *name)
{
	struct spool_segment *seg;

	seg = calloc(1, sizeof(*seg));
	if (seg == NULL)
		return NULL;
	static atomic_uint_least64_t serials;

	memcpy(seg->name, name, strlen(name) + 1);
	seg->fd = seg->log_fd = -1;
	seg->serial = atomic_fetch_add(&serials, 1) + 1;
	return seg;
}

static void seg_free(struct spool_segment *seg)
{
	close_fd(&seg->fd);
	close_fd(&seg->log_fd);
	free(seg->obuf);
	free(seg);
}

static void seg_flush_logged(struct webhook_spool *spool,
			     struct spool_segment *seg);

static struct spool_segment *seg_find(struct webhook_spool *spool,
				      const char *name)
{
	struct spool_segment *seg;

	for (seg = spool->segments; seg != NULL; seg = seg->next) {
		if (strcmp(seg->name, name) == 0)
			return seg;
	}
	for (seg = spool->doomed; seg != NULL; seg = seg->next) {
		if (strcmp(seg->name, name) == 0)
			return seg;
	}
	return NULL;
}

/* The segment is done: unlink it now, and its log once the unlink is
   durable (webhook_spool_sync()). */
static void seg_delete(struct webhook_spool *spool, struct spool_segment *seg)
{
	char file[SEG_FILE_SIZE];

	/* its log must say why, should the unlink not survive a crash */
	seg_flush_logged(spool, seg);
	seg_file_name(seg, ".seg", file);
	if (unlinkat(spool->seg_fd, file, 0) < 0 && errno != ENOENT) {
		/* harmless: the next open finds it done again */
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "unlink(%s/seg/%s) failed: %s", spool->dir, file,
			  strerror(errno));
	}
	close_fd(&seg->fd);
	close_fd(&seg->log_fd);
	seg_list_remove(&spool->segments, seg);
	seg_list_add(&spool->doomed, seg);
	spool->seg_dirty = true;
}

static void seg_maybe_delete(struct webhook_spool *spool,
			     struct spool_segment *seg)
{
	if (seg->live == 0 && seg->deferred == 0 && !seg->writing &&
	    !seg->keep)
		seg_delete(spool, seg);
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
	seg_file_name(seg, ".log", file);
	if (seg->log_fd < 0) {
		seg->log_fd = openat(spool->seg_fd, file,
				     O_WRONLY | O_APPEND | O_CREAT |
				     O_CLOEXEC | O_NOFOLLOW, 0600);
		if (seg->log_fd < 0) {
			set_error(spool, "open(%s/seg/%s) failed: %s",
				  spool->dir, file, strerror(errno));
			ret = -1;
			goto out;
		}
		/* a new directory entry, made durable by sync() */
		spool->seg_dirty = true;
	}
	seg->log_dirty = true;
	if ((seg->log_broken && write_full(seg->log_fd, "\n", 1) < 0) ||
	    write_full(seg->log_fd, seg->obuf, seg->olen) < 0) {
		set_error(spool, "write(%s/seg/%s) failed: %s", spool->dir,
			  file, strerror(errno));
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
	if (seg_flush(spool, seg) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR, "%s",
			  webhook_spool_error(spool));
		clear_error(spool);
	}
}

static int flush_all(struct webhook_spool *spool)
{
	struct spool_segment *seg;
	int ret = 0;

	for (seg = spool->segments;
	     seg != NULL && spool->outcome_segs > 0; seg = seg->next) {
		if (seg_flush(spool, seg) < 0)
			ret = -1;
	}
	return ret;
}

/* Add one outcome line to the segment's buffer; with hold false, write
   it (and what waited) at once. */
static int seg_outcome(struct webhook_spool *spool, struct spool_segment *seg,
		       bool hold, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int seg_outcome(struct webhook_spool *spool, struct spool_segment *seg,
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
			set_error(spool, "outcome of seg/%s.seg: out of memory",
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

/* ---- reading segments ---- */

struct scan_rec {
	int64_t offset;
	int64_t created_ms;
	int64_t due_ms;			/* from an R line */
	uint32_t rec_len;
	uint32_t attempts;
	bool done;
};

struct seg_scan {
	struct scan_rec *recs;
	uint32_t count, size;
	int64_t file_size;
	int64_t good_end;		/* after the last good record */
	const char *bad_reason;		/* a bad record at good_end */
	bool bad_magic;			/* not a segment at all */
	bool truncated;			/* an incomplete record at good_end */
};

static int scan_add(struct seg_scan *scan, int64_t offset,
		    int64_t created_ms, uint32_t rec_len)
{
	struct scan_rec *recs;
	uint32_t size;

	if (scan->count == scan->size) {
		size = scan->size == 0 ? 256 : scan->size * 2;
		recs = realloc(scan->recs, sizeof(*recs) * size);
		if (recs == NULL)
			return -1;
		scan->recs = recs;
		scan->size = size;
	}
	memset(&scan->recs[scan->count], 0, sizeof(*scan->recs));
	scan->recs[scan->count].offset = offset;
	scan->recs[scan->count].created_ms = created_ms;
	scan->recs[scan->count].rec_len = rec_len;
	scan->count++;
	return 0;
}

/* Does a record header start anywhere in buf after a newline? Tells a
   record cut short at the end of the file (a crash) from a bad length
   in the middle (corruption). */
static bool has_record_start(const unsigned char *buf, size_t len)
{
	const unsigned char *p = buf, *end = buf + len, *nl;
	struct rec_header hdr;
	const char *reason;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p = nl + 1;
		if (p < end && *p == 'E' &&
		    rec_header_parse(p, (size_t)(end - p), &hdr,
				     &reason) == 1)
			return true;
	}
	return false;
}

/* Parse a segment up to its first bad or incomplete record, verifying
   every body. Returns 0, or -1 with errno on a read error. */
static int seg_parse(int fd, struct seg_scan *scan)
{
	unsigned char *buf, *p, md[SHA256_LEN];
	int64_t size, pos, buf_off = 0;
	size_t buf_len = 0, avail, want, need;
	struct rec_header hdr;
	const char *reason;
	struct stat st;
	ssize_t ret;
	int hret;

	memset(scan, 0, sizeof(*scan));
	if (fstat(fd, &st) < 0)
		return -1;
	size = st.st_size;
	scan->file_size = size;
	buf = malloc(SCAN_BUF_SIZE);
	if (buf == NULL)
		return -1;
	pos = 0;
	while (pos < size) {
		want = size - pos > REC_MAX ? REC_MAX : (size_t)(size - pos);
		if (pos + (int64_t)want > buf_off + (int64_t)buf_len) {
			buf_off = pos;
			ret = read_full(fd, buf, size - pos > SCAN_BUF_SIZE ?
					SCAN_BUF_SIZE : (size_t)(size - pos),
					(off_t)pos);
			if (ret < 0) {
				free(buf);
				return -1;
			}
			buf_len = (size_t)ret;
			if (buf_len < want) {
				/* it shrank under us: its end is here */
				size = pos + (int64_t)buf_len;
				continue;
			}
		}
		p = buf + (pos - buf_off);
		avail = (size_t)(buf_off + (int64_t)buf_len - pos);
		if (pos == 0) {
			if (avail < SEG_MAGIC_LEN &&
			    memcmp(p, SEG_MAGIC, avail) == 0) {
				scan->truncated = true;
				break;
			}
			if (avail < SEG_MAGIC_LEN ||
			    memcmp(p, SEG_MAGIC, SEG_MAGIC_LEN) != 0) {
				scan->bad_magic = true;
				break;
			}
			pos = SEG_MAGIC_LEN;
			continue;
		}
		hret = rec_header_parse(p, avail, &hdr, &reason);
		if (hret == 0) {
			/* avail is all that is left, and shorter than a
			   header line */
			scan->truncated = true;
			break;
		}
		if (hret < 0) {
			scan->bad_reason = reason;
			break;
		}
		need = hdr.header_len + hdr.body_len + 1;
		if (need > avail) {
			/* it runs past the end of the file */
			if (has_record_start(p + hdr.header_len,
					     avail - hdr.header_len))
				scan->bad_reason = "bad record length";
			else
				scan->truncated = true;
			break;
		}
		if (p[need - 1] != '\n') {
			scan->bad_reason = "bad record length";
			break;
		}
		if (sha256(p + hdr.header_len, hdr.body_len, md) < 0 ||
		    memcmp(md, hdr.sha256, SHA256_LEN) != 0) {
			scan->bad_reason = "body does not match its sha256";
			break;
		}
		if (scan_add(scan, pos, hdr.created_ms, (uint32_t)need) < 0) {
			free(buf);
			errno = ENOMEM;
			return -1;
		}
		pos += (int64_t)need;
	}
	scan->good_end = scan->bad_magic ? 0 : pos;
	free(buf);
	return 0;
}

/* Apply an outcome log to the records of a scan. A last line without
   its newline is a write cut short: ignored, and cut off when repair is
   set so that the next line starts clean. */
static void log_replay(struct webhook_spool *spool, const char *file,
		       int log_fd, struct seg_scan *scan, bool repair)
{
	const char *f[4], *line, *end, *nl;
	unsigned int garbage = 0, beyond = 0;
	uint64_t idx, attempts, due;
	struct scan_rec *rec;
	struct stat st;
	size_t flen[4];
	char *buf;
	ssize_t len;
	int n;

	if (fstat(log_fd, &st) < 0 || st.st_size == 0)
		return;
	if (st.st_size > OUTCOME_LOG_MAX) {
		spool_log(spool, WEBHOOK_LOG_ERROR, "%s/seg/%s: too large "
			  "(%" PRId64 " bytes), ignored", spool->dir, file,
			  (int64_t)st.st_size);
		return;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL)
		return;
	len = read_full(log_fd, buf, (size_t)st.st_size, 0);
	if (len < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR, "read(%s/seg/%s) failed: "
			  "%s", spool->dir, file, strerror(errno));
		free(buf);
		return;
	}
	line = buf;
	end = buf + len;
	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL) {
			spool_log(spool, WEBHOOK_LOG_DEBUG,
				  "%s/seg/%s: ignoring a truncated last line",
				  spool->dir, file);
			if (repair &&
			    ftruncate(log_fd, (off_t)(line - buf)) < 0) {
				spool_log(spool, WEBHOOK_LOG_WARNING,
					  "ftruncate(%s/seg/%s) failed: %s",
					  spool->dir, file, strerror(errno));
			}
			break;
		}
		n = split_fields(line, (size_t)(nl - line), f, flen, 4);
		line = nl + 1;
		if (n < 2 || flen[0] != 1 ||
		    !parse_decimal(f[1], flen[1], UINT32_MAX, &idx) ||
		    !((n == 2 && (f[0][0] == 'D' || f[0][0] == 'X')) ||
		      (n == 4 && f[0][0] == 'R' &&
		       parse_decimal(f[2], flen[2], ATTEMPTS_MAX,
				     &attempts) &&
		       parse_decimal(f[3], flen[3], INT64_MAX, &due)))) {
			garbage++;
			continue;
		}
		if (idx >= scan->count) {
			/* a record cut off or quarantined since */
			beyond++;
			continue;
		}
		rec = &scan->recs[idx];
		if (f[0][0] == 'R') {
			rec->attempts = (uint32_t)attempts;
			rec->due_ms = (int64_t)due;
		} else {
			rec->done = true;
		}
	}
	if (garbage > 0) {
		spool_log(spool, WEBHOOK_LOG_WARNING,
			  "%s/seg/%s: %u unreadable lines ignored",
			  spool->dir, file, garbage);
	}
	if (beyond > 0) {
		spool_log(spool, WEBHOOK_LOG_DEBUG,
			  "%s/seg/%s: %u outcomes for records past the end "
			  "ignored", spool->dir, file, beyond);
	}
	free(buf);
}

/* Copy the bytes of a segment from offset on into corrupt/ and cut
   them off. Returns 0, or -1 (logged) if the copy failed: the bytes
   then stay where they are. */
static int seg_quarantine_tail(struct webhook_spool *spool,
			       const char *file, int fd, int64_t offset,
			       int64_t size, const char *reason)
{
	char qname[SEG_FILE_SIZE + 24];
	unsigned char *buf;
	int64_t pos;
	ssize_t ret;
	size_t chunk;
	int out, failed = 0;

	snprintf(qname, sizeof(qname), "%s.%" PRId64, file, offset);
	buf = malloc(SCAN_BUF_SIZE);
	out = buf == NULL ? -1 :
		openat(spool->corrupt_fd, qname, O_WRONLY | O_CREAT |
		       O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: corrupt record at offset %" PRId64
			  " (%s), and open(%s/corrupt/%s) failed: %s; left "
			  "in place", spool->dir, file, offset, reason,
			  spool->dir, qname, strerror(errno));
		free(buf);
		return -1;
	}
	for (pos = offset; pos < size && failed == 0; pos += ret) {
		chunk = size - pos > SCAN_BUF_SIZE ? SCAN_BUF_SIZE :
			(size_t)(size - pos);
		ret = read_full(fd, buf, chunk, (off_t)pos);
		if (ret <= 0 || write_full(out, buf, (size_t)ret) < 0)
			failed = -1;
	}
	if (failed == 0 &&
	    (fdatasync_fd(out) < 0 || fsync_dir(spool->corrupt_fd) < 0))
		failed = -1;
	(void)close(out);
	free(buf);
	if (failed < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: corrupt record at offset %" PRId64
			  " (%s), and copying it to %s/corrupt/%s failed: %s;"
			  " left in place", spool->dir, file, offset, reason,
			  spool->dir, qname, strerror(errno));
		(void)unlinkat(spool->corrupt_fd, qname, 0);
		return -1;
	}
	if (ftruncate(fd, (off_t)offset) < 0 || fdatasync_fd(fd) < 0) {
		/* the copy is safe; the next open cuts again */
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "ftruncate(%s/seg/%s) failed: %s", spool->dir, file,
			  strerror(errno));
	}
	spool->corrupt_count++;
	spool_log(spool, WEBHOOK_LOG_WARNING,
		  "%s/seg/%s: corrupt record at offset %" PRId64 " (%s): "
		  "%" PRId64 " bytes moved to corrupt/%s", spool->dir, file,
		  offset, reason, size - offset, qname);
	return 0;
}

/* A file in seg/ that is no segment at all: move it and its log aside. */
static void seg_quarantine_file(struct webhook_spool *spool,
				const char *name)
{
	char file[SEG_FILE_SIZE];

	snprintf(file, sizeof(file), "%s.seg", name);
	if (renameat(spool->seg_fd, file, spool->corrupt_fd, file) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: not a segment (bad header line), and "
			  "moving it to corrupt/ failed: %s", spool->dir, file,
			  strerror(errno));
		return;
	}
	snprintf(file, sizeof(file), "%s.log", name);
	if (renameat(spool->seg_fd, file, spool->corrupt_fd, file) == 0)
		spool->corrupt_count++;
	(void)fsync_dir(spool->corrupt_fd);
	spool->seg_dirty = true;
	spool->corrupt_count++;
	spool_log(spool, WEBHOOK_LOG_WARNING,
		  "%s/seg/%s.seg: not a segment (bad header line): moved to "
		  "corrupt/", spool->dir, name);
}

static void ro_count(struct webhook_spool *spool, const struct scan_rec *rec)
{
	struct webhook_spool_counts *c = &spool->ro_counts;
	int64_t due = rec->attempts > 0 ? rec->due_ms :
		first_due(spool, rec->created_ms);

	c->pending++;
	if (rec->attempts > 0)
		c->retrying++;
	if (c->oldest_created_ms < 0 || rec->created_ms < c->oldest_created_ms)
		c->oldest_created_ms = rec->created_ms;
	if (c->next_due_ms < 0 || due < c->next_due_ms)
		c->next_due_ms = due;
}

/* Read segment <name>.seg found in seg/. The owner repairs it, indexes
   its pending events, or deletes it when they are all done; READ_ONLY
   only counts. A segment that a writer holds is left for later.
   Returns 0, or -1 with the error when memory runs out. */
static int seg_adopt(struct webhook_spool *spool, const char *name)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;
	char file[SEG_FILE_SIZE], log_file[SEG_FILE_SIZE];
	struct spool_segment *seg = NULL;
	struct spool_entry entry;
	struct seg_scan scan;
	uint32_t i, pending = 0;
	struct stat st;
	int fd, log_fd = -1;

	snprintf(file, sizeof(file), "%s.seg", name);
	snprintf(log_file, sizeof(log_file), "%s.log", name);
	fd = openat(spool->seg_fd, file, (owner ? O_RDWR : O_RDONLY) |
		    O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT) {
			spool_log(spool, WEBHOOK_LOG_ERROR,
				  "open(%s/seg/%s) failed: %s", spool->dir,
				  file, strerror(errno));
		}
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		spool_log(spool, WEBHOOK_LOG_ERROR, "%s/seg/%s: not a regular "
			  "file, ignored", spool->dir, file);
		(void)close(fd);
		return 0;
	}
	if (owner) {
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			/* a producer is writing it: later */
			spool->rescan_wanted = true;
			(void)close(fd);
			return 0;
		}
		/* no writer ever comes back to a released segment */
		(void)flock(fd, LOCK_UN);
	}
	if (seg_parse(fd, &scan) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR, "read(%s/seg/%s) failed: "
			  "%s", spool->dir, file, strerror(errno));
		free(scan.recs);
		(void)close(fd);
		return 0;
	}
	if (scan.bad_magic) {
		if (owner) {
			seg_quarantine_file(spool, name);
		} else {
			spool->corrupt_count++;
			spool_log(spool, WEBHOOK_LOG_WARNING, "%s/seg/%s: not "
				  "a segment (bad header line)", spool->dir,
				  file);
		}
		free(scan.recs);
		(void)close(fd);
		return 0;
	}
	if (scan.bad_reason != NULL) {
		if (!owner) {
			spool->corrupt_count++;
			spool_log(spool, WEBHOOK_LOG_WARNING,
				  "%s/seg/%s: corrupt record at offset %"
				  PRId64 " (%s)", spool->dir, file,
				  scan.good_end, scan.bad_reason);
		} else if (seg_quarantine_tail(spool, file, fd, scan.good_end,
					       scan.file_size,
					       scan.bad_reason) < 0) {
			seg = seg_new(name);
			if (seg != NULL)
				seg->keep = true;
		}
	} else if (scan.truncated && owner) {
		spool_log(spool, WEBHOOK_LOG_DEBUG,
			  "%s/seg/%s: incomplete record at offset %" PRId64
			  " (never committed) cut off", spool->dir, file,
			  scan.good_end);
		if (ftruncate(fd, (off_t)scan.good_end) < 0) {
			spool_log(spool, WEBHOOK_LOG_WARNING,
				  "ftruncate(%s/seg/%s) failed: %s",
				  spool->dir, file, strerror(errno));
		}
	}
	log_fd = openat(spool->seg_fd, log_file,
			(owner ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC |
			O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (log_fd >= 0)
		log_replay(spool, log_file, log_fd, &scan, owner);
	else if (errno != ENOENT)
		spool_log(spool, WEBHOOK_LOG_ERROR, "open(%s/seg/%s) failed: "
			  "%s", spool->dir, log_file, strerror(errno));
	for (i = 0; i < scan.count; i++) {
		if (!scan.recs[i].done)
			pending++;
	}
	if (!owner) {
		for (i = 0; i < scan.count; i++) {
			if (!scan.recs[i].done)
				ro_count(spool, &scan.recs[i]);
		}
		free(scan.recs);
		close_fd(&log_fd);
		(void)close(fd);
		return 0;
	}
	if (seg == NULL && (seg = seg_new(name)) == NULL) {
		set_error(spool, "%s/seg/%s: out of memory", spool->dir, file);
		free(scan.recs);
		close_fd(&log_fd);
		(void)close(fd);
		return -1;
	}
	seg->records = scan.count;
	seg_list_add(&spool->segments, seg);
	if (pending > 0 &&
	    spool_indexed(spool) + pending > WEBHOOK_SPOOL_EVENTS_MAX) {
		/* indexed once there is room (checkout's rescan) */
		seg->deferred = pending;
		spool->unindexed += pending;
		free(scan.recs);
		close_fd(&log_fd);
		(void)close(fd);
		return 0;
	}
	seg->fd = fd;
	seg->log_fd = log_fd;
	for (i = 0; i < scan.count; i++) {
		if (scan.recs[i].done)
			continue;
		memset(&entry, 0, sizeof(entry));
		entry.seg = seg;
		entry.offset = scan.recs[i].offset;
		entry.created_ms = scan.recs[i].created_ms;
		entry.index = i;
		entry.rec_len = scan.recs[i].rec_len;
		entry.attempts = scan.recs[i].attempts;
		entry.due_ms = entry.attempts > 0 ? scan.recs[i].due_ms :
			first_due(spool, entry.created_ms);
		seg->live++;
		heap_push(spool, &entry);
	}
	free(scan.recs);
	seg_maybe_delete(spool, seg);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Look through seg/. At open the owner also removes what crashes left:
   segments a producer never finished creating (dot files no writer
   holds) and logs whose segment is gone. Later scans only adopt
   segments not known yet, and deferred ones once there is room. */
static int seg_scan_dir(struct webhook_spool *spool, bool at_open)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;
	char base[SEG_NAME_SIZE], file[SEG_FILE_SIZE], **names = NULL, **tmp;
	unsigned int i, count = 0, size = 0;
	struct spool_segment *seg;
	struct dirent *de;
	struct stat st;
	int ret = 0, fd;
	DIR *dir;

	if (spool->seg_fd < 0)
		return 0;
	spool->rescan_wanted = false;
	if ((dir = opendir_at(spool->seg_fd)) == NULL) {
		set_error(spool, "opendir(%s/seg) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.') {
			if (!at_open || !owner)
				continue;
			/* ".<name>.new": a creation cut short, never
			   visible; unless a producer is at it right now */
			fd = openat(spool->seg_fd, de->d_name, O_RDONLY |
				    O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
			if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
				(void)unlinkat(spool->seg_fd, de->d_name, 0);
			close_fd(&fd);
			continue;
		}
		if (seg_name_parse(de->d_name, ".log", base)) {
			if (!at_open || !owner)
				continue;
			snprintf(file, sizeof(file), "%s.seg", base);
			if (fstatat(spool->seg_fd, file, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 &&
			    errno == ENOENT &&
			    unlinkat(spool->seg_fd, de->d_name, 0) == 0)
				spool->seg_dirty = true;
			continue;
		}
		if (!seg_name_parse(de->d_name, ".seg", base)) {
			if (at_open)
				spool_log(spool, WEBHOOK_LOG_WARNING,
					  "%s/seg/%s: unexpected file, "
					  "ignored", spool->dir, de->d_name);
			continue;
		}
		seg = owner ? seg_find(spool, base) : NULL;
		if (seg != NULL &&
		    (seg->deferred == 0 ||
		     spool_indexed(spool) + seg->deferred >
		     WEBHOOK_SPOOL_EVENTS_MAX))
			continue;
		if (seg != NULL) {
			/* room now: read it again */
			spool->unindexed -= seg->deferred;
			seg_flush_logged(spool, seg);
			seg_list_remove(&spool->segments, seg);
			seg_free(seg);
		}
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
		set_error(spool, "%s/seg: out of memory", spool->dir);
		ret = -1;
	}
	/* oldest first, so that the index fills with them */
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

/* ---- writing ---- */

/* getpid() is a system call; every append asks, so the answer is kept
   and forgotten in a forked child. */
static pid_t cached_pid;
static pthread_once_t cached_pid_once = PTHREAD_ONCE_INIT;

static void cached_pid_forget(void)
{
	__atomic_store_n(&cached_pid, 0, __ATOMIC_RELAXED);
}

static void cached_pid_init(void)
{
	(void)pthread_atfork(NULL, NULL, cached_pid_forget);
}

static pid_t my_pid(void)
{
	pid_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);

	(void)pthread_once(&cached_pid_once, cached_pid_init);
	if (pid == 0) {
		pid = getpid();
		__atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
	}
	return pid;
}

/* Start a new segment for this writer. It appears in seg/ only once it
   is locked (APPEND_ONLY) and has its header line, so the owner never
   mistakes it for the leftover of a crash. */
static int wseg_create(struct webhook_spool *spool)
{
	bool append_only = (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0;
	char name[SEG_NAME_SIZE], tmp[SEG_FILE_SIZE], file[SEG_FILE_SIZE];
	struct spool_segment *seg;
	const char *what = NULL;
	unsigned int i;
	int fd = -1;

	for (i = 0; i < CREATE_TRIES && what == NULL; i++) {
		snprintf(name, sizeof(name), "%" PRId64 "-%ld-%" PRIu32,
			 wall_clock_ms(), (long)getpid(), ++spool->seq);
		snprintf(tmp, sizeof(tmp), ".%s.new", name);
		snprintf(file, sizeof(file), "%s.seg", name);
		fd = openat(spool->seg_fd, tmp, O_RDWR | O_APPEND | O_CREAT |
			    O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			set_error(spool, "append: open(%s/seg/%s) failed: %s",
				  spool->dir, tmp, strerror(errno));
			return -1;
		}
		if (append_only && flock(fd, LOCK_EX | LOCK_NB) < 0)
			what = "flock";
		else if (write_full(fd, SEG_MAGIC, SEG_MAGIC_LEN) < 0)
			what = "write";
		else if (rename_noreplace(spool->seg_fd, tmp, file) == 0)
			break;
		else if (errno != EEXIST)
			what = "rename";
		if (what != NULL) {
			set_error(spool, "append: %s(%s/seg/%s) failed: %s",
				  what, spool->dir, tmp, strerror(errno));
		}
		(void)unlinkat(spool->seg_fd, tmp, 0);
		close_fd(&fd);
	}
	if (fd < 0) {
		if (what == NULL) {
			set_error(spool, "append: no unique segment name in "
				  "%s/seg", spool->dir);
		}
		return -1;
	}
	seg = seg_new(name);
	if (seg == NULL) {
		set_error(spool, "append: out of memory");
		/* an empty segment: the owner deletes it */
		(void)close(fd);
		return -1;
	}
	seg->fd = fd;
	seg->size = SEG_MAGIC_LEN;
	seg->writing = true;
	seg->writer_pid = my_pid();
	if (!append_only)
		seg_list_add(&spool->segments, seg);
	spool->wseg = seg;
	spool->wseg_new = true;
	spool->batch_start = seg->size;
	return 0;
}

/* The writer is done with its segment: it is full, or broken. */
static void wseg_retire(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;

	if (seg == NULL)
		return;
	spool->wseg = NULL;
	seg->writing = false;
	if ((spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0) {
		/* closing releases the flock: the owner may adopt it */
		seg_free(seg);
		return;
	}
	seg_maybe_delete(spool, seg);
}

static int wbuf_flush(struct webhook_spool *spool)
{
	char file[SEG_FILE_SIZE];

	if (spool->wbuf_len == 0)
		return 0;
	if (write_full(spool->wseg->fd, spool->wbuf, spool->wbuf_len) < 0) {
		seg_file_name(spool->wseg, ".seg", file);
		set_error(spool, "write(%s/seg/%s) failed: %s", spool->dir,
			  file, strerror(errno));
		return -1;
	}
	spool->wseg->size += (int64_t)spool->wbuf_len;
	spool->wbuf_len = 0;
	return 0;
}

/* Forget the batch, cutting what was written of it off the segment. */
static void batch_discard(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;

	spool->batch_count = 0;
	spool->wbuf_len = 0;
	if (seg == NULL || seg->size == spool->batch_start)
		return;
	if (ftruncate(seg->fd, (off_t)spool->batch_start) < 0) {
		/* the bytes stay: a later batch would follow garbage */
		wseg_retire(spool);
		return;
	}
	seg->size = spool->batch_start;
}

/* A forked child inherits the writer's segment; two processes appending
   to it would interleave. The child starts its own. */
static void writer_check_fork(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;

	if (seg == NULL || seg->writer_pid == my_pid())
		return;
	spool->wseg = NULL;
	spool->batch_count = 0;
	spool->wbuf_len = 0;
	seg->writing = false;
	if ((spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0)
		seg_free(seg);
}

/* Index the events of a batch that is durable. */
static void batch_publish(struct webhook_spool *spool, unsigned int count)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) == 0;
	struct spool_segment *seg = spool->wseg;
	struct batch_item *item;
	struct spool_entry entry;
	unsigned int i;

	for (i = 0; i < count && owner; i++) {
		item = &spool->batch[i];
		memset(&entry, 0, sizeof(entry));
		entry.seg = seg;
		entry.offset = item->offset;
		entry.created_ms = item->created_ms;
		entry.index = seg->records + i;
		entry.rec_len = item->rec_len;
		entry.attempts = item->attempts;
		entry.due_ms = entry.attempts > 0 ? item->next_ms :
			first_due(spool, entry.created_ms);
		/* a migrated attempt count; sync() makes it durable */
		if (entry.attempts > 0 &&
		    seg_outcome(spool, seg, false, "R %" PRIu32 " %" PRIu32
				" %" PRId64 "\n", entry.index, entry.attempts,
				item->next_ms) < 0) {
			spool_log(spool, WEBHOOK_LOG_WARNING, "%s",
				  webhook_spool_error(spool));
		}
		seg->live++;
		heap_push(spool, &entry);
	}
	seg->records += count;
	spool->batch_count = 0;
	spool->batch_start = seg->size;
}

/* Commit with the mutex held; it is dropped during the fdatasync(). */
static int commit_locked(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;
	char file[SEG_FILE_SIZE];
	unsigned int count = spool->batch_count;
	bool new_seg = spool->wseg_new;
	bool dir_failed = false;
	int ret = 0, err = 0;

	if (count == 0)
		return 0;
	seg_file_name(seg, ".seg", file);
	if (wbuf_flush(spool) < 0) {
		batch_discard(spool);
		wseg_retire(spool);
		return -1;
	}
	/* only this thread writes the segment, and no other thread deletes
	   it while it is being written */
	spool_leave(spool);
	if (fdatasync_fd(seg->fd) < 0) {
		ret = -1;
		err = errno;
	} else if (new_seg && fsync_dir(spool->seg_fd) < 0) {
		dir_failed = true;
		ret = -1;
		err = errno;
	}
	if (pthread_mutex_lock(&spool->mutex) != 0)
		abort();
	if (ret < 0) {
		/* what reached the disk is unknown: cut the batch off and
		   leave the segment for good */
		if (dir_failed) {
			set_error(spool, "commit: fsync(%s/seg) failed: %s",
				  spool->dir, strerror(err));
		} else {
			set_error(spool, "commit: fdatasync(%s/seg/%s) "
				  "failed: %s", spool->dir, file,
				  strerror(err));
		}
		batch_discard(spool);
		wseg_retire(spool);
		return -1;
	}
	spool->wseg_new = false;
	batch_publish(spool, count);
	if (seg->size >= WEBHOOK_SPOOL_SEGMENT_BYTES ||
	    seg->records >= WEBHOOK_SPOOL_SEGMENT_EVENTS)
		wseg_retire(spool);
	return 0;
}

/* Append with the mutex held. attempts/next_ms: a migrated event's
   delivery state (0 otherwise). */
static int append_locked(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len,
			 int64_t created_ms, uint32_t attempts,
			 int64_t next_ms)
{
	char header[REC_HEADER_MAX], hex[SHA256_LEN * 2 + 1];
	unsigned char md[SHA256_LEN];
	struct batch_item *item;
	size_t rec_len;
	int header_len;

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
		spool->wbuf = malloc(WBUF_SIZE);
		if (spool->batch == NULL || spool->wbuf == NULL) {
			free(spool->batch);
			free(spool->wbuf);
			spool->batch = NULL;
			spool->wbuf = NULL;
			set_error(spool, "append: out of memory");
			return -1;
		}
	}
	writer_check_fork(spool);
	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX &&
	    commit_locked(spool) < 0)
		return -1;
	if ((spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) == 0 &&
	    spool_indexed(spool) + spool->unindexed + spool->batch_count >=
	    WEBHOOK_SPOOL_EVENTS_MAX) {
		set_error(spool, "append: spool %s is full (%d events)",
			  spool->dir, WEBHOOK_SPOOL_EVENTS_MAX);
		return -1;
	}
	if (sha256(body, body_len, md) < 0) {
		set_error(spool, "append: event %s: SHA-256 failed", id);
		return -1;
	}
	sha256_hex(md, hex);
	header_len = snprintf(header, sizeof(header), "E %s %" PRId64 " %zu "
			      "%s\n", id, created_ms, body_len, hex);
	if (header_len < 0 || (size_t)header_len >= sizeof(header))
		abort();
	if (spool->wseg == NULL && wseg_create(spool) < 0)
		return -1;
	rec_len = (size_t)header_len + body_len + 1;
	if (spool->wbuf_len + rec_len > WBUF_SIZE && wbuf_flush(spool) < 0) {
		batch_discard(spool);
		wseg_retire(spool);
		return -1;
	}
	item = &spool->batch[spool->batch_count++];
	item->offset = spool->wseg->size + (int64_t)spool->wbuf_len;
	item->created_ms = created_ms;
	item->rec_len = (uint32_t)rec_len;
	item->attempts = attempts;
	item->next_ms = next_ms;
	memcpy(spool->wbuf + spool->wbuf_len, header, (size_t)header_len);
	memcpy(spool->wbuf + spool->wbuf_len + header_len, body, body_len);
	spool->wbuf[spool->wbuf_len + rec_len - 1] = '\n';
	spool->wbuf_len += rec_len;
	return 0;
}

/* ---- the old one-file-per-event format, migrated at open ---- */

struct old_header {
	char id[WEBHOOK_SPOOL_ID_MAX];
	int64_t created_ms;
	size_t body_len;
	unsigned char sha256[SHA256_LEN];
	size_t header_len;
};

enum load_result {
	LOAD_OK = 0,
	LOAD_CORRUPT,
	LOAD_GONE,
	LOAD_IO_ERROR,
};

/* "<created_ms>.<pid>.<seq>.<8 hex>,<attempts>,<next_ms>": only the
   delivery state is kept. */
static bool old_name_parse(const char *name, uint32_t *attempts_r,
			   int64_t *next_ms_r)
{
	const char *p = name, *end;
	uint64_t value;
	unsigned int i;

	if (strnlen(name, OLD_NAME_SIZE) >= OLD_NAME_SIZE)
		return false;
	for (i = 0; i < 3; i++) {
		end = strchr(p, '.');
		if (end == NULL ||
		    !parse_decimal(p, (size_t)(end - p), i == 0 ? INT64_MAX :
				   UINT32_MAX, &value))
			return false;
		p = end + 1;
	}
	for (i = 0; i < 8; i++) {
		if (hex_value(p[i]) < 0)
			return false;
	}
	p += 8;
	if (*p++ != ',' || (end = strchr(p, ',')) == NULL ||
	    !parse_decimal(p, (size_t)(end - p), ATTEMPTS_MAX, &value))
		return false;
	*attempts_r = (uint32_t)value;
	p = end + 1;
	if (!parse_decimal(p, strlen(p), INT64_MAX, &value))
		return false;
	*next_ms_r = (int64_t)value;
	return true;
}

/* The next line of buf at *pos, which must start with prefix; its value
   (after the prefix, before the newline) in value_r/len_r. */
static bool old_header_line(const unsigned char *buf, size_t len,
			    size_t *pos, const char *prefix,
			    const char **value_r, size_t *len_r)
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

static const char *old_header_parse(const unsigned char *buf, size_t len,
				    struct old_header *hdr_r)
{
	const char *value;
	size_t pos = 0, value_len;
	uint64_t num;

	memset(hdr_r, 0, sizeof(*hdr_r));
	if (len > OLD_HEADER_MAX)
		len = OLD_HEADER_MAX;
	if (!old_header_line(buf, len, &pos, OLD_MAGIC, &value,
			     &value_len) || value_len != 0)
		return "bad format line";
	if (!old_header_line(buf, len, &pos, "id ", &value, &value_len) ||
	    !id_is_valid(value, value_len))
		return "bad id line";
	memcpy(hdr_r->id, value, value_len);
	hdr_r->id[value_len] = '\0';
	if (!old_header_line(buf, len, &pos, "created ", &value,
			     &value_len) ||
	    !parse_decimal(value, value_len, INT64_MAX, &num))
		return "bad created line";
	hdr_r->created_ms = (int64_t)num;
	if (!old_header_line(buf, len, &pos, "length ", &value, &value_len) ||
	    !parse_decimal(value, value_len, WEBHOOK_SPOOL_BODY_MAX, &num) ||
	    num == 0)
		return "bad length line";
	hdr_r->body_len = (size_t)num;
	if (!old_header_line(buf, len, &pos, "sha256 ", &value, &value_len) ||
	    !parse_sha256_hex(value, value_len, hdr_r->sha256))
		return "bad sha256 line";
	if (!old_header_line(buf, len, &pos, "", &value, &value_len) ||
	    value_len != 0)
		return "no blank line after the header";
	hdr_r->header_len = pos;
	return NULL;
}

/* Read and verify a whole old-format file. On LOAD_OK *buf_r is
   malloc()ed (the caller frees it) and holds header and body. */
static enum load_result old_load_file(int dir_fd, const char *name,
				      unsigned char **buf_r,
				      struct old_header *hdr_r,
				      const char **reason_r)
{
	unsigned char md[SHA256_LEN], *buf;
	struct stat st;
	ssize_t len;
	int fd;

	*buf_r = NULL;
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
	if (fstat(fd, &st) < 0) {
		(void)close(fd);
		return LOAD_IO_ERROR;
	}
	if (!S_ISREG(st.st_mode) ||
	    st.st_size > OLD_HEADER_MAX + WEBHOOK_SPOOL_BODY_MAX) {
		(void)close(fd);
		*reason_r = S_ISREG(st.st_mode) ? "too large" :
			"not a regular file";
		return LOAD_CORRUPT;
	}
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
	*reason_r = old_header_parse(buf, (size_t)len, hdr_r);
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

/* Unlink every entry of an old tmp/ (never committed) and the
   directory. Returns the number of files removed. */
static unsigned int old_remove_tmp(int dir_fd)
{
	unsigned int removed = 0;
	struct dirent *de;
	int tmp_fd;
	DIR *dir;

	tmp_fd = open_dir_at(dir_fd, "tmp");
	if (tmp_fd < 0)
		return 0;
	if ((dir = opendir_at(tmp_fd)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0 &&
			    unlinkat(tmp_fd, de->d_name, 0) == 0)
				removed++;
		}
		closedir(dir);
	}
	(void)close(tmp_fd);
	(void)unlinkat(dir_fd, "tmp", AT_REMOVEDIR);
	return removed;
}

struct migration {
	int new_fd;
	char (*names)[OLD_NAME_SIZE];	/* of the batch, to unlink */
	unsigned int migrated, left;
	bool failed;
};

/* Commit the batch and make its migrated attempt counts durable; only
   then unlink the old files. A crash in between sends those events
   twice, with the same webhook-id. */
static int migration_flush(struct webhook_spool *spool, struct migration *m)
{
	struct spool_segment *seg;
	unsigned int i, count = spool->batch_count;

	if (count == 0)
		return 0;
	if (commit_locked(spool) < 0)
		return -1;
	for (seg = spool->segments; seg != NULL; seg = seg->next) {
		if (seg->log_dirty && fdatasync_fd(seg->log_fd) < 0) {
			set_error(spool, "fdatasync(%s/seg/%s.log) failed: %s",
				  spool->dir, seg->name, strerror(errno));
			return -1;
		}
		seg->log_dirty = false;
	}
	if (spool->seg_dirty && fsync_dir(spool->seg_fd) < 0) {
		set_error(spool, "fsync(%s/seg) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	spool->seg_dirty = false;
	for (i = 0; i < count; i++)
		(void)unlinkat(m->new_fd, m->names[i], 0);
	m->migrated += count;
	return 0;
}

static void migrate_one(struct webhook_spool *spool, struct migration *m,
			const char *name)
{
	const char *reason = NULL;
	struct old_header hdr;
	enum load_result res;
	unsigned char *buf;
	uint32_t attempts = 0;
	int64_t next_ms = 0;

	if (!old_name_parse(name, &attempts, &next_ms)) {
		res = LOAD_CORRUPT;
		reason = "bad file name";
		buf = NULL;
	} else {
		res = old_load_file(m->new_fd, name, &buf, &hdr, &reason);
	}
	switch (res) {
	case LOAD_OK:
		break;
	case LOAD_GONE:
		return;
	case LOAD_CORRUPT:
		if (renameat(m->new_fd, name, spool->corrupt_fd, name) < 0) {
			spool_log(spool, WEBHOOK_LOG_ERROR,
				  "%s/new/%s: corrupt spool file (%s), and "
				  "moving it to corrupt/ failed: %s",
				  spool->dir, name, reason, strerror(errno));
			m->left++;
			return;
		}
		(void)fsync_dir(spool->corrupt_fd);
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/new/%s: corrupt spool file (%s): moved to "
			  "corrupt/", spool->dir, name, reason);
		return;
	case LOAD_IO_ERROR:
		spool_log(spool, WEBHOOK_LOG_ERROR, "read(%s/new/%s) failed: "
			  "%s; left for the next start", spool->dir, name,
			  strerror(errno));
		m->left++;
		return;
	}
	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX &&
	    migration_flush(spool, m) < 0) {
		m->failed = true;
		free(buf);
		return;
	}
	if (append_locked(spool, hdr.id, buf + hdr.header_len, hdr.body_len,
			  hdr.created_ms, attempts, next_ms) < 0) {
		m->failed = true;
		free(buf);
		return;
	}
	memcpy(m->names[spool->batch_count - 1], name, strlen(name) + 1);
	free(buf);
}

/* Move the events of an old-format spool (new/, one file each) into a
   segment, keeping their attempt counts. Returns 0, or -1 with the
   error if a batch could not be committed (nothing is lost: the old
   files of that batch stay). */
static int migrate_old_format(struct webhook_spool *spool)
{
	struct migration m;
	struct dirent *de;
	unsigned int removed;
	DIR *dir;

	removed = old_remove_tmp(spool->dir_fd);
	if (removed > 0) {
		spool_log(spool, WEBHOOK_LOG_INFO,
			  "%s/tmp: removed %u uncommitted files of the old "
			  "spool format", spool->dir, removed);
	}
	memset(&m, 0, sizeof(m));
	m.new_fd = open_dir_at(spool->dir_fd, "new");
	if (m.new_fd < 0) {
		if (errno == ENOENT)
			return 0;
		set_error(spool, "open(%s/new) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	m.names = calloc(WEBHOOK_SPOOL_BATCH_MAX, sizeof(*m.names));
	if (m.names == NULL || (dir = opendir_at(m.new_fd)) == NULL) {
		set_error(spool, "opendir(%s/new) failed: %s", spool->dir,
			  m.names == NULL ? "out of memory" : strerror(errno));
		free(m.names);
		(void)close(m.new_fd);
		return -1;
	}
	while (!m.failed && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (spool_indexed(spool) + spool->unindexed +
		    spool->batch_count >= WEBHOOK_SPOOL_EVENTS_MAX) {
			m.left++;
			continue;
		}
		migrate_one(spool, &m, de->d_name);
	}
	closedir(dir);
	if (!m.failed && migration_flush(spool, &m) < 0)
		m.failed = true;
	if (m.failed)
		batch_discard(spool);
	(void)fsync_dir(m.new_fd);
	(void)close(m.new_fd);
	free(m.names);
	if (m.migrated > 0) {
		spool_log(spool, WEBHOOK_LOG_INFO,
			  "%s: migrated %u events of the old spool format "
			  "(new/) into seg/", spool->dir, m.migrated);
	}
	if (m.failed)
		return -1;
	if (m.left > 0) {
		/* the next open tries them again */
		spool->unindexed += m.left;
		return 0;
	}
	if (unlinkat(spool->dir_fd, "new", AT_REMOVEDIR) == 0)
		(void)fsync_dir(spool->dir_fd);
	return 0;
}

/* ---- public API ---- */

/* The delivery threads hold the mutex for a few microseconds at a time
   (a pread() or a one-line write()). An adaptive mutex spins that long
   before it sleeps: a contended checkout then costs no context switch,
   which on a VM costs more than the wait. */
static int spool_mutex_init(pthread_mutex_t *mutex)
{
	pthread_mutexattr_t attr;
	int ret;

	if (pthread_mutexattr_init(&attr) != 0)
		return -1;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	(void)pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	ret = pthread_mutex_init(mutex, &attr);
	(void)pthread_mutexattr_destroy(&attr);
	return ret;
}

struct webhook_spool *webhook_spool_create(const char *dir,
					   unsigned int flags)
{
	struct webhook_spool *spool;

	spool = calloc(1, sizeof(*spool));
	if (spool == NULL)
		return NULL;
	if (spool_mutex_init(&spool->mutex) != 0) {
		free(spool);
		return NULL;
	}
	if (strlen(dir) >= sizeof(spool->dir))
		spool->dir_too_long = true;
	else
		memcpy(spool->dir, dir, strlen(dir) + 1);
	spool->flags = flags;
	spool->dir_fd = spool->lock_fd = spool->seg_fd = -1;
	spool->dead_fd = spool->corrupt_fd = -1;
	spool->ro_counts.oldest_created_ms = -1;
	spool->ro_counts.next_due_ms = -1;
	return spool;
}

static void seg_list_free(struct spool_segment **list)
{
	struct spool_segment *seg;

	while ((seg = *list) != NULL) {
		seg_list_remove(list, seg);
		seg_free(seg);
	}
}

static void close_all(struct webhook_spool *spool)
{
	close_fd(&spool->seg_fd);
	close_fd(&spool->dead_fd);
	close_fd(&spool->corrupt_fd);
	/* closing the lock file releases the flock() */
	close_fd(&spool->lock_fd);
	close_fd(&spool->dir_fd);
}

void webhook_spool_destroy(struct webhook_spool **_spool)
{
	struct webhook_spool *spool = *_spool;
	struct spool_checkout *co, *next;

	if (spool == NULL)
		return;
	*_spool = NULL;
	writer_check_fork(spool);
	batch_discard(spool);
	if (spool->wseg != NULL &&
	    (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0)
		seg_free(spool->wseg);
	spool->wseg = NULL;
	for (co = spool->checkouts; co != NULL; co = next) {
		next = co->next;
		free(co);
	}
	/* what the last outcomes say survives a kill, not a power loss
	   (the caller syncs first for that) */
	if (flush_all(spool) < 0)
		spool_log(spool, WEBHOOK_LOG_ERROR, "%s",
			  webhook_spool_error(spool));
	/* the logs of doomed segments stay until the next open finds
	   them without a segment */
	seg_list_free(&spool->segments);
	seg_list_free(&spool->doomed);
	free(spool->batch);
	free(spool->wbuf);
	free(spool->heap);
	free(spool->rcache);
	close_all(spool);
	(void)pthread_mutex_destroy(&spool->mutex);
	free(spool);
}

void webhook_spool_set_log(struct webhook_spool *spool,
			   void (*log)(void *context,
				       enum webhook_log_level level,
				       const char *message),
			   void *context)
{
	spool_enter(spool);
	spool->log = log;
	spool->log_context = context;
	spool_leave(spool);
}

const char *webhook_spool_error(const struct webhook_spool *spool)
{
	if (tls_error_spool == spool)
		return tls_error;
	/* another thread's, or none */
	return spool->error;
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

static int open_subdirs(struct webhook_spool *spool, bool owner,
			bool read_only)
{
	int new_fd;

	if (!read_only &&
	    (mkdir_at(spool->dir_fd, "seg") < 0 ||
	     (owner && (mkdir_at(spool->dir_fd, "dead") < 0 ||
			mkdir_at(spool->dir_fd, "corrupt") < 0)))) {
		set_error(spool, "mkdir in %s failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	/* read-only: missing ones count as empty */
	spool->seg_fd = open_dir_at(spool->dir_fd, "seg");
	if (spool->seg_fd < 0 && (!read_only || errno != ENOENT)) {
		set_error(spool, "open(%s/seg) failed: %s", spool->dir,
			  strerror(errno));
		return -1;
	}
	if (!owner && !read_only)
		return 0;
	spool->dead_fd = open_dir_at(spool->dir_fd, "dead");
	spool->corrupt_fd = open_dir_at(spool->dir_fd, "corrupt");
	if (owner && (spool->dead_fd < 0 || spool->corrupt_fd < 0)) {
		set_error(spool, "open(%s/dead|corrupt) failed: %s",
			  spool->dir, strerror(errno));
		return -1;
	}
	if (read_only) {
		/* an old-format spool not migrated yet */
		new_fd = open_dir_at(spool->dir_fd, "new");
		spool->unindexed = count_dir(new_fd);
		close_fd(&new_fd);
	}
	return 0;
}

/* Segments found done at open were unlinked: make that durable and
   remove their logs now rather than at the first sync(). */
static void seg_cleanup_at_open(struct webhook_spool *spool)
{
	char file[SEG_FILE_SIZE];
	struct spool_segment *seg;

	if (spool->doomed == NULL)
		return;
	if (fsync_dir(spool->seg_fd) < 0) {
		spool_log(spool, WEBHOOK_LOG_WARNING, "fsync(%s/seg) failed: "
			  "%s", spool->dir, strerror(errno));
		return;
	}
	spool->seg_dirty = false;
	while ((seg = spool->doomed) != NULL) {
		seg_file_name(seg, ".log", file);
		if (unlinkat(spool->seg_fd, file, 0) == 0)
			spool->seg_dirty = true;
		seg_list_remove(&spool->doomed, seg);
		seg_free(seg);
	}
}

static int open_locked(struct webhook_spool *spool)
{
	bool read_only = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0;
	bool append_only = (spool->flags & WEBHOOK_SPOOL_APPEND_ONLY) != 0;
	bool owner = !read_only && !append_only;

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
	if (open_subdirs(spool, owner, read_only) < 0)
		return -1;
	if (append_only) {
		spool->opened = true;
		return 0;
	}
	if (owner && lock_spool(spool) < 0)
		return -1;
	if (seg_scan_dir(spool, true) < 0)
		return -1;
	if (owner) {
		/* migration appends through the writer */
		spool->opened = true;
		if (migrate_old_format(spool) < 0) {
			spool->opened = false;
			return -1;
		}
		spool->next_rescan_ms = mono_ms() + RESCAN_MS;
		spool->corrupt_count = count_dir(spool->corrupt_fd);
		seg_cleanup_at_open(spool);
	}
	spool->dead_count = count_dir(spool->dead_fd);
	if (read_only)
		spool->corrupt_count += count_dir(spool->corrupt_fd);
	spool->opened = true;
	return 0;
}

int webhook_spool_open(struct webhook_spool *spool)
{
	int ret;

	spool_enter(spool);
	ret = open_locked(spool);
	if (ret < 0 && !spool->opened) {
		batch_discard(spool);
		spool->wseg = NULL;
		seg_list_free(&spool->segments);
		seg_list_free(&spool->doomed);
		spool->heap_count = 0;
		spool->unindexed = 0;
		close_all(spool);
	}
	spool_leave(spool);
	return ret;
}

int webhook_spool_append(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len,
			 int64_t created_ms)
{
	int ret;

	spool_enter(spool);
	ret = append_locked(spool, id, body, body_len, created_ms, 0, 0);
	spool_leave(spool);
	return ret;
}

int webhook_spool_commit(struct webhook_spool *spool)
{
	int ret = -1;

	spool_enter(spool);
	if (!spool->opened || (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		set_error(spool, "commit: spool %s is not open for writing",
			  spool->dir);
	} else {
		writer_check_fork(spool);
		ret = commit_locked(spool);
	}
	spool_leave(spool);
	return ret;
}

void webhook_spool_abort(struct webhook_spool *spool)
{
	spool_enter(spool);
	writer_check_fork(spool);
	batch_discard(spool);
	spool_leave(spool);
}

void webhook_spool_set_first_delay(struct webhook_spool *spool,
				   int64_t delay_ms)
{
	unsigned int i;

	spool_enter(spool);
	spool->first_delay_ms = delay_ms < 0 ? 0 : delay_ms;
	for (i = 0; i < spool->heap_count; i++) {
		if (spool->heap[i].attempts == 0) {
			spool->heap[i].due_ms =
				first_due(spool, spool->heap[i].created_ms);
		}
	}
	heapify(spool);
	spool_leave(spool);
}

static int64_t next_due_locked(const struct webhook_spool *spool)
{
	int64_t due = spool->heap_count == 0 ? -1 : spool->heap[0].due_ms;
	int64_t rescan;

	if (spool->rescan_wanted) {
		/* come back to adopt what a writer still holds */
		rescan = wall_clock_ms() + RESCAN_MS;
		if (due < 0 || rescan < due)
			due = rescan;
	}
	return due;
}

int64_t webhook_spool_next_due(const struct webhook_spool *_spool)
{
	/* the mutex is the only thing a const spool changes */
	struct webhook_spool *spool = (struct webhook_spool *)_spool;
	int64_t due;

	spool_enter(spool);
	due = next_due_locked(spool);
	spool_leave(spool);
	return due;
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
	free(co->rendered);
	free(co);
}

/* Read an entry's record into rec: from the read cache; through it
   (one pread() of the READ_CACHE_SIZE-aligned block that holds the
   record, or of READ_CACHE_SIZE bytes from the record on if it crosses
   the block's end) when the record lies within READ_CACHE_SIZE of the
   one checked out last, so that a backlog going out in about the order
   it was appended (events of concurrent sessions interleave by their
   creation times) is read in large pieces; else directly (events due in
   an order unrelated to the file's, e.g. retries, would make every
   large read a waste). Returns the bytes read, -1 with errno.

   Cached bytes stay valid: a segment is only appended to, and a
   record's bytes are all written before it is indexed (the commit). A
   read may end inside a record being written; that record is then not
   covered, and the next checkout that needs it reads again. A batch
   that failed to commit is never indexed and its segment takes no
   more appends. */
static ssize_t checkout_read(struct webhook_spool *spool,
			     const struct spool_entry *entry,
			     unsigned char *rec)
{
	const struct spool_segment *seg = entry->seg;
	int64_t start, distance;
	bool near;
	ssize_t ret;

	distance = entry->offset - spool->last_end;
	near = spool->last_serial == seg->serial &&
		distance > -READ_CACHE_SIZE && distance < READ_CACHE_SIZE;
	spool->last_serial = seg->serial;
	spool->last_end = entry->offset + entry->rec_len;
	if (entry->rec_len > READ_CACHE_SIZE)
		return read_full(seg->fd, rec, entry->rec_len,
				 (off_t)entry->offset);
	if (spool->rcache_serial != seg->serial ||
	    entry->offset < spool->rcache_start ||
	    entry->offset + entry->rec_len >
	    spool->rcache_start + (int64_t)spool->rcache_len) {
		if (!near)
			return read_full(seg->fd, rec, entry->rec_len,
					 (off_t)entry->offset);
		spool->rcache_serial = 0;
		if (spool->rcache == NULL &&
		    (spool->rcache = malloc(READ_CACHE_SIZE)) == NULL)
			return read_full(seg->fd, rec, entry->rec_len,
					 (off_t)entry->offset);
		start = entry->offset - entry->offset % READ_CACHE_SIZE;
		if (entry->offset + entry->rec_len > start + READ_CACHE_SIZE)
			start = entry->offset;
		do {
			ret = pread(seg->fd, spool->rcache, READ_CACHE_SIZE,
				    (off_t)start);
		} while (ret < 0 && errno == EINTR);
		if (ret < 0)
			return -1;
		if (start + ret < entry->offset + (int64_t)entry->rec_len) {
			/* a short read (a signal, or the file ends before
			   the record): the exact length, as before */
			return read_full(seg->fd, rec, entry->rec_len,
					 (off_t)entry->offset);
		}
		spool->rcache_serial = seg->serial;
		spool->rcache_start = start;
		spool->rcache_len = (size_t)ret;
	}
	memcpy(rec, spool->rcache + (entry->offset - spool->rcache_start),
	       entry->rec_len);
	return (ssize_t)entry->rec_len;
}

/* Read an entry's record. The record was verified when it was indexed;
   a mismatch now means the file changed under us. */
static int checkout_load(struct webhook_spool *spool,
			 const struct spool_entry *entry,
			 struct spool_checkout **co_r)
{
	struct spool_checkout *co;
	struct rec_header hdr;
	const char *reason = "short read";
	char file[SEG_FILE_SIZE];
	ssize_t ret;

	co = malloc(sizeof(*co) + entry->rec_len + 1);
	if (co == NULL) {
		set_error(spool, "checkout: out of memory");
		return -1;
	}
	ret = checkout_read(spool, entry, co->rec);
	seg_file_name(entry->seg, ".seg", file);
	if (ret < 0) {
		set_error(spool, "pread(%s/seg/%s) failed: %s", spool->dir,
			  file, strerror(errno));
		free(co);
		return -1;
	}
	if ((size_t)ret == entry->rec_len &&
	    rec_header_parse(co->rec, entry->rec_len, &hdr, &reason) == 1 &&
	    hdr.header_len + hdr.body_len + 1 == entry->rec_len &&
	    co->rec[entry->rec_len - 1] == '\n') {
		reason = NULL;
	} else if (reason == NULL) {
		reason = "bad record";
	}
	if (reason != NULL) {
		/* the next try reads the disk again */
		spool->rcache_serial = 0;
		set_error(spool, "pread(%s/seg/%s): record at offset %" PRId64
			  " changed on disk (%s)", spool->dir, file,
			  entry->offset, reason);
		free(co);
		return -1;
	}
	/* "E <id> ..." and body, NUL-terminated in place */
	co->rec[2 + strlen(hdr.id)] = '\0';
	co->rec[entry->rec_len - 1] = '\0';
	memset(&co->event, 0, sizeof(co->event));
	co->owner = spool;
	co->entry = *entry;
	co->prev = NULL;
	co->rendered = NULL;
	co->event.id = (const char *)co->rec + 2;
	co->event.body = co->rec + hdr.header_len;
	co->event.body_len = hdr.body_len;
	co->event.created_ms = entry->created_ms;
	co->event.attempts = entry->attempts;
	co->event.due_ms = entry->due_ms;
	*co_r = co;
	return 0;
}

void webhook_spool_set_render(struct webhook_spool *spool,
			      webhook_spool_render_fn *render,
			      void *context)
{
	spool->render = render;
	spool->render_context = context;
}

/* Without the mutex: the caller owns the checkout now. Returns -1 with
   error_r (static) if the body cannot be rendered. */
static int checkout_render(struct webhook_spool *spool,
			   struct spool_checkout *co, const char **error_r)
{
	unsigned char *body = NULL;
	size_t body_len = 0;
	int ret;

	*error_r = "render failed";
	ret = spool->render(spool->render_context, co->event.body,
			    co->event.body_len, &body, &body_len, error_r);
	if (ret == 0)
		return 0;
	if (ret < 0 || body == NULL) {
		free(body);
		return -1;
	}
	co->rendered = body;
	co->event.body = body;
	co->event.body_len = body_len;
	return 0;
}

int webhook_spool_checkout(struct webhook_spool *spool, int64_t now_ms,
			   struct webhook_spool_event **event_r)
{
	struct spool_checkout *co = NULL;
	struct spool_entry entry;
	const char *error;
	int64_t mono;
	int ret = 0;

	*event_r = NULL;
	spool_enter(spool);
	if (!spool_is_owner(spool, "checkout")) {
		spool_leave(spool);
		return -1;
	}
	mono = mono_ms();
	if (mono >= spool->next_rescan_ms) {
		spool->next_rescan_ms = mono + RESCAN_MS;
		if (seg_scan_dir(spool, false) < 0) {
			/* not fatal: what is indexed still goes out */
			spool_log(spool, WEBHOOK_LOG_ERROR, "%s",
				  webhook_spool_error(spool));
			clear_error(spool);
		}
	}
	if (spool->heap_count > 0 && spool->heap[0].due_ms <= now_ms) {
		heap_pop(spool, &entry);
		if (checkout_load(spool, &entry, &co) < 0) {
			entry.due_ms = now_ms + IO_RETRY_MS;
			heap_push(spool, &entry);
			ret = -1;
		} else {
			co->next = spool->checkouts;
			if (co->next != NULL)
				co->next->prev = co;
			spool->checkouts = co;
			spool->checkout_count++;
			*event_r = &co->event;
			ret = 1;
		}
	}
	spool_leave(spool);
	if (ret == 1 && spool->render != NULL &&
	    checkout_render(spool, co, &error) < 0) {
		/* back into the heap, tried again a little later */
		struct webhook_spool_event *event = &co->event;
		char id[WEBHOOK_SPOOL_ID_MAX], file[SEG_FILE_SIZE];
		uint32_t index = co->entry.index;

		snprintf(id, sizeof(id), "%s", co->event.id);
		seg_file_name(co->entry.seg, ".seg", file);
		spool_enter(spool);
		checkout_free(spool, &event, &entry);
		entry.due_ms = now_ms + IO_RETRY_MS;
		heap_push(spool, &entry);
		set_error(spool, "event %s (seg/%s #%" PRIu32 "): its stored "
			  "body cannot be rendered: %s", id, file, index,
			  error);
		spool_leave(spool);
		*event_r = NULL;
		ret = -1;
	}
	return ret;
}

int webhook_spool_delivered(struct webhook_spool *spool,
			    struct webhook_spool_event **event)
{
	struct spool_entry entry;
	int ret;

	spool_enter(spool);
	checkout_free(spool, event, &entry);
	ret = seg_outcome(spool, entry.seg, true, "D %" PRIu32 "\n",
			  entry.index);
	entry.seg->live--;
	seg_maybe_delete(spool, entry.seg);
	spool_leave(spool);
	return ret;
}

int webhook_spool_reschedule(struct webhook_spool *spool,
			     struct webhook_spool_event **event,
			     int64_t due_ms)
{
	struct spool_entry entry;
	uint32_t attempts;
	int ret;

	spool_enter(spool);
	checkout_free(spool, event, &entry);
	attempts = entry.attempts < ATTEMPTS_MAX ? entry.attempts + 1 :
		entry.attempts;
	ret = seg_outcome(spool, entry.seg, true, "R %" PRIu32 " %" PRIu32 " %"
			  PRId64 "\n", entry.index, attempts,
			  due_ms < 0 ? 0 : due_ms);
	if (ret == 0)
		entry.attempts = attempts;
	entry.due_ms = due_ms;
	heap_push(spool, &entry);
	spool_leave(spool);
	return ret;
}

/* Write the event into dead/ and make it durable, without the mutex:
   the caller owns the checkout, and the directory fds do not change
   while the spool is open. */
static int dead_file_write(struct webhook_spool *spool,
			   const struct spool_checkout *co,
			   uint32_t attempts, char *error, size_t error_size)
{
	char name[SEG_NAME_SIZE + 16], tmp[SEG_NAME_SIZE + 24];
	char header[OLD_HEADER_MAX], hex[SHA256_LEN * 2 + 1];
	unsigned char md[SHA256_LEN];
	const char *what = "write";
	int fd, len;

	snprintf(name, sizeof(name), "%s.%" PRIu32, co->entry.seg->name,
		 co->entry.index);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	if (sha256(co->event.body, co->event.body_len, md) < 0) {
		format_error(error, error_size, "dead letter %s: SHA-256 failed",
			 co->event.id);
		return -1;
	}
	sha256_hex(md, hex);
	len = snprintf(header, sizeof(header), DEAD_MAGIC "\nid %s\n"
		       "created %" PRId64 "\nattempts %" PRIu32 "\n"
		       "length %zu\nsha256 %s\n\n", co->event.id,
		       co->event.created_ms, attempts, co->event.body_len,
		       hex);
	if (len < 0 || (size_t)len >= sizeof(header))
		abort();
	fd = openat(spool->dead_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		format_error(error, error_size, "open(%s/dead/%s) failed: %s",
			 spool->dir, tmp, strerror(errno));
		return -1;
	}
	if (write_full(fd, header, (size_t)len) < 0 ||
	    write_full(fd, co->event.body, co->event.body_len) < 0 ||
	    (what = "fdatasync", fdatasync_fd(fd) < 0)) {
		format_error(error, error_size, "%s(%s/dead/%s) failed: %s", what,
			 spool->dir, tmp, strerror(errno));
		(void)close(fd);
		(void)unlinkat(spool->dead_fd, tmp, 0);
		return -1;
	}
	(void)close(fd);
	if (renameat(spool->dead_fd, tmp, spool->dead_fd, name) < 0) {
		format_error(error, error_size, "rename(%s/dead/%s) failed: %s",
			 spool->dir, tmp, strerror(errno));
		(void)unlinkat(spool->dead_fd, tmp, 0);
		return -1;
	}
	if (fsync_dir(spool->dead_fd) < 0) {
		format_error(error, error_size, "fsync(%s/dead) failed: %s",
			 spool->dir, strerror(errno));
		return -1;
	}
	return 0;
}

int webhook_spool_dead_letter(struct webhook_spool *spool,
			      struct webhook_spool_event **event)
{
	struct spool_checkout *co = checkout_of(spool, *event);
	char error[WEBHOOK_SPOOL_ERROR_MAX];
	struct spool_entry entry;
	uint32_t attempts;
	int ret;

	attempts = co->entry.attempts < ATTEMPTS_MAX ?
		co->entry.attempts + 1 : co->entry.attempts;
	ret = dead_file_write(spool, co, attempts, error, sizeof(error));
	spool_enter(spool);
	checkout_free(spool, event, &entry);
	if (ret < 0) {
		set_error(spool, "%s", error);
		entry.due_ms += DEAD_LETTER_RETRY_MS;
		heap_push(spool, &entry);
		spool_leave(spool);
		return -1;
	}
	spool->dead_count++;
	ret = seg_outcome(spool, entry.seg, false, "X %" PRIu32 "\n",
			  entry.index);
	entry.seg->live--;
	seg_maybe_delete(spool, entry.seg);
	spool_leave(spool);
	return ret;
}

void webhook_spool_release(struct webhook_spool *spool,
			   struct webhook_spool_event **event)
{
	struct spool_entry entry;

	spool_enter(spool);
	checkout_free(spool, event, &entry);
	heap_push(spool, &entry);
	spool_leave(spool);
}

int webhook_spool_flush(struct webhook_spool *spool)
{
	int ret;

	spool_enter(spool);
	ret = spool->outcome_segs == 0 ? 0 : flush_all(spool);
	spool_leave(spool);
	return ret;
}

int webhook_spool_sync(struct webhook_spool *spool)
{
	char error[WEBHOOK_SPOOL_ERROR_MAX] = "";
	struct spool_segment *seg, *doomed;
	unsigned int i, count = 0;
	bool seg_dirty;
	int *fds = NULL, ret = 0;

	spool_enter(spool);
	if (!is_owner(spool)) {
		spool_leave(spool);
		return 0;
	}
	if (flush_all(spool) < 0)
		ret = -1;
	for (seg = spool->segments; seg != NULL; seg = seg->next) {
		if (seg->log_dirty)
			count++;
	}
	if (count > 0 && (fds = calloc(count, sizeof(*fds))) == NULL) {
		set_error(spool, "sync: out of memory");
		spool_leave(spool);
		return -1;
	}
	/* copies: a segment may be deleted while the mutex is free */
	count = 0;
	for (seg = spool->segments; seg != NULL; seg = seg->next) {
		if (!seg->log_dirty)
			continue;
		seg->log_dirty = false;
		fds[count] = dup(seg->log_fd);
		if (fds[count] < 0) {
			set_error(spool, "sync: dup(%s/seg/%s.log) failed: %s",
				  spool->dir, seg->name, strerror(errno));
			seg->log_dirty = true;
			ret = -1;
			continue;
		}
		count++;
	}
	seg_dirty = spool->seg_dirty;
	spool->seg_dirty = false;
	doomed = spool->doomed;
	spool->doomed = NULL;
	spool_leave(spool);

	for (i = 0; i < count; i++) {
		if (fdatasync_fd(fds[i]) < 0 && error[0] == '\0') {
			format_error(error, sizeof(error), "sync: fdatasync() of "
				 "an outcome log in %s/seg failed: %s",
				 spool->dir, strerror(errno));
		}
		(void)close(fds[i]);
	}
	free(fds);
	if (seg_dirty && fsync_dir(spool->seg_fd) < 0 && error[0] == '\0') {
		format_error(error, sizeof(error), "sync: fsync(%s/seg) failed: "
			 "%s", spool->dir, strerror(errno));
	}

	spool_enter(spool);
	if (ret < 0 && error[0] == '\0')
		format_error(error, sizeof(error), "%s", spool->error);
	if (ret < 0 || error[0] != '\0') {
		if (error[0] != '\0')
			set_error(spool, "%s", error);
		/* the unlinks may not be durable: keep the logs */
		if (seg_dirty)
			spool->seg_dirty = true;
		while ((seg = doomed) != NULL) {
			seg_list_remove(&doomed, seg);
			seg_list_add(&spool->doomed, seg);
		}
		spool_leave(spool);
		return -1;
	}
	while ((seg = doomed) != NULL) {
		char file[SEG_FILE_SIZE];

		seg_file_name(seg, ".log", file);
		if (unlinkat(spool->seg_fd, file, 0) == 0)
			spool->seg_dirty = true;
		seg_list_remove(&doomed, seg);
		seg_free(seg);
	}
	spool_leave(spool);
	return 0;
}

void webhook_spool_counts(const struct webhook_spool *_spool,
			  struct webhook_spool_counts *counts_r)
{
	/* the mutex is the only thing a const spool changes */
	struct webhook_spool *spool = (struct webhook_spool *)_spool;
	const struct spool_checkout *co;
	const struct spool_entry *entry;
	unsigned int i;

	spool_enter(spool);
	memset(counts_r, 0, sizeof(*counts_r));
	if ((spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0)
		*counts_r = spool->ro_counts;
	else {
		counts_r->oldest_created_ms = -1;
		counts_r->next_due_ms = spool->heap_count == 0 ? -1 :
			spool->heap[0].due_ms;
	}
	counts_r->pending += spool_indexed(spool) + spool->unindexed;
	counts_r->checked_out = spool->checkout_count;
	counts_r->dead = spool->dead_count;
	counts_r->corrupt = spool->corrupt_count;
	counts_r->unindexed = spool->unindexed;
	for (i = 0; i < spool->heap_count; i++) {
		entry = &spool->heap[i];
		if (entry->attempts > 0)
			counts_r->retrying++;
		if (counts_r->oldest_created_ms < 0 ||
		    entry->created_ms < counts_r->oldest_created_ms)
			counts_r->oldest_created_ms = entry->created_ms;
	}
	for (co = spool->checkouts; co != NULL; co = co->next) {
		if (co->entry.attempts > 0)
			counts_r->retrying++;
		if (counts_r->oldest_created_ms < 0 ||
		    co->entry.created_ms < counts_r->oldest_created_ms)
			counts_r->oldest_created_ms = co->entry.created_ms;
	}
	spool_leave(spool);
}
