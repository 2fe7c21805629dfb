/* The spool's index and public API (webhook-spool.h): a binary heap
   of small entries keyed by due time (O(log n) per operation; ids and
   bodies stay in the segment and are read with the record at
   checkout), the writer's batch, checkouts and their outcomes. */

#include "pop3-retention-config.h"
#include "webhook-spool-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_owner(const struct webhook_spool *spool)
{
	return spool->opened && (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;
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

int64_t spool_first_due(const struct webhook_spool *spool, int64_t created_ms)
{
	/* created_ms is read from a record's header, which no hash
	   covers: saturate rather than overflow (first_delay_ms >= 0) */
	if (created_ms > INT64_MAX - spool->first_delay_ms)
		return INT64_MAX;
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
	size = spool->heap_size == 0 ? 64 : spool->heap_size * 2;
	heap = realloc(spool->heap, sizeof(*heap) * size);
	if (heap == NULL)
		return -1;
	spool->heap = heap;
	spool->heap_size = size;
	return 0;
}

int spool_heap_push(struct webhook_spool *spool,
		    const struct spool_entry *entry)
{
	if (heap_reserve(spool) < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s: out of memory: an "
			  "event of seg/%s.seg waits for the next start",
			  spool->dir, entry->seg->name);
		return -1;
	}
	spool->heap[spool->heap_count] = *entry;
	heap_sift_up(spool->heap, spool->heap_count);
	spool->heap_count++;
	return 0;
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

/* ---- writing ---- */

static int wbuf_flush(struct webhook_spool *spool)
{
	char file[SEG_FILE_SIZE];

	if (spool->wbuf_len == 0)
		return 0;
	if (spool_write_full(spool->wseg->fd, spool->wbuf, spool->wbuf_len) <
	    0) {
		spool_seg_file_name(spool->wseg, ".seg", file);
		spool_set_error(spool, "write(%s/seg/%s) failed: %s",
				spool->dir, file, strerror(errno));
		return -1;
	}
	spool->wseg->size += (int64_t)spool->wbuf_len;
	spool->wbuf_len = 0;
	return 0;
}

/* Forget the batch (and its ids), cutting what was written of it off
   the segment. */
static void batch_discard(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;
	unsigned int i;

	for (i = 0; i < spool->batch_count; i++)
		spool_ids_remove(&spool->ids, &spool->batch[i].id);
	spool->batch_count = 0;
	spool->wbuf_len = 0;
	if (seg == NULL || seg->size == spool->batch_start)
		return;
	if (ftruncate(seg->fd, (off_t)spool->batch_start) < 0) {
		/* the bytes stay: a later batch would follow garbage */
		spool_wseg_retire(spool);
		return;
	}
	seg->size = spool->batch_start;
}

/* Index the events of a batch that is durable. Returns 0, or -1 when
   memory runs out (then the segment keeps no list of its ids: they
   stay held until the next start). */
static void batch_publish(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;
	struct spool_id_digest *ids;
	struct batch_item *item;
	struct spool_entry entry;
	uint32_t i, records = seg->records + spool->batch_count;

	if (records > seg->ids_size && seg->ids_size != UINT32_MAX) {
		ids = realloc(seg->ids,
			      sizeof(*ids) *
				      (records + WEBHOOK_SPOOL_BATCH_MAX));
		if (ids != NULL) {
			seg->ids = ids;
			seg->ids_size = records + WEBHOOK_SPOOL_BATCH_MAX;
		} else {
			free(seg->ids);
			seg->ids = NULL;
			seg->ids_size = UINT32_MAX;
		}
	}
	for (i = 0; i < spool->batch_count; i++) {
		item = &spool->batch[i];
		if (seg->ids != NULL)
			seg->ids[seg->records + i] = item->id;
		memset(&entry, 0, sizeof(entry));
		entry.seg = seg;
		entry.offset = item->offset;
		entry.created_ms = item->created_ms;
		entry.index = seg->records + i;
		entry.rec_len = item->rec_len;
		entry.due_ms = spool_first_due(spool, entry.created_ms);
		seg->live++;
		(void)spool_heap_push(spool, &entry);
	}
	seg->records = records;
	spool->batch_count = 0;
	spool->batch_start = seg->size;
}

static int commit_batch(struct webhook_spool *spool)
{
	struct spool_segment *seg = spool->wseg;
	char file[SEG_FILE_SIZE];

	if (spool->batch_count == 0)
		return 0;
	spool_seg_file_name(seg, ".seg", file);
	if (wbuf_flush(spool) < 0) {
		batch_discard(spool);
		spool_wseg_retire(spool);
		return -1;
	}
	if (spool_fdatasync(seg->fd) < 0 ||
	    (spool->wseg_new && spool_fsync_dir(spool->seg_fd) < 0)) {
		/* what reached the disk is unknown: cut the batch off and
		   leave the segment for good */
		spool_set_error(spool, "commit: sync of %s/seg/%s failed: %s",
				spool->dir, file, strerror(errno));
		batch_discard(spool);
		spool_wseg_retire(spool);
		return -1;
	}
	spool->wseg_new = false;
	batch_publish(spool);
	if (seg->size >= WEBHOOK_SPOOL_SEGMENT_BYTES ||
	    seg->records >= WEBHOOK_SPOOL_SEGMENT_EVENTS)
		spool_wseg_retire(spool);
	return 0;
}

static int append_check(struct webhook_spool *spool, const char *id,
			const void *body, size_t body_len, int64_t created_ms)
{
	if (!spool->opened || (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		spool_set_error(spool,
				"append: spool %s is not open for "
				"writing",
				spool->dir);
		return -1;
	}
	if (id == NULL || !spool_id_is_valid(id, strlen(id))) {
		spool_set_error(spool, "append: invalid webhook-id");
		return -1;
	}
	if (body == NULL || body_len == 0 ||
	    body_len > WEBHOOK_SPOOL_BODY_MAX) {
		spool_set_error(spool,
				"append: event %s: body of %zu bytes "
				"(1..%d allowed)",
				id, body_len, WEBHOOK_SPOOL_BODY_MAX);
		return -1;
	}
	if (created_ms < 0) {
		spool_set_error(spool,
				"append: event %s: negative creation "
				"time",
				id);
		return -1;
	}
	if (spool->batch == NULL) {
		spool->batch =
			calloc(WEBHOOK_SPOOL_BATCH_MAX, sizeof(*spool->batch));
		spool->wbuf = malloc(WBUF_SIZE);
		if (spool->batch == NULL || spool->wbuf == NULL) {
			free(spool->batch);
			free(spool->wbuf);
			spool->batch = NULL;
			spool->wbuf = NULL;
			spool_set_error(spool, "append: out of memory");
			return -1;
		}
	}
	return 0;
}

/* ---- public API ---- */

struct webhook_spool *webhook_spool_create(const char *dir, unsigned int flags)
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
	spool->dir_fd = spool->lock_fd = spool->seg_fd = -1;
	spool->dead_fd = spool->corrupt_fd = -1;
	spool->recent_ms = WEBHOOK_SPOOL_RECENT_MS;
	spool->ro_counts.oldest_created_ms = -1;
	spool->ro_counts.next_due_ms = -1;
	return spool;
}

static void close_all(struct webhook_spool *spool)
{
	spool_close_fd(&spool->seg_fd);
	spool_close_fd(&spool->dead_fd);
	spool_close_fd(&spool->corrupt_fd);
	/* closing the lock file releases the flock() */
	spool_close_fd(&spool->lock_fd);
	spool_close_fd(&spool->dir_fd);
}

void webhook_spool_destroy(struct webhook_spool **_spool)
{
	struct webhook_spool *spool = *_spool;
	struct spool_checkout *co, *next;

	if (spool == NULL)
		return;
	*_spool = NULL;
	batch_discard(spool);
	spool->wseg = NULL;
	for (co = spool->checkouts; co != NULL; co = next) {
		next = co->next;
		free(co);
	}
	/* what the last outcomes say survives a kill, not a power loss
	   (the caller syncs first for that) */
	if (spool_seg_flush_all(spool) < 0)
		spool_log_error(spool);
	/* the logs of doomed segments stay until the next open finds
	   them without a segment */
	spool_seg_list_free(&spool->segments);
	spool_seg_list_free(&spool->doomed);
	spool_ids_free(&spool->ids);
	free(spool->batch);
	free(spool->wbuf);
	free(spool->heap);
	free(spool->rcache);
	close_all(spool);
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

static int lock_spool(struct webhook_spool *spool)
{
	spool->lock_fd =
		openat(spool->dir_fd, "lock",
		       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (spool->lock_fd < 0) {
		spool_set_error(spool, "open(%s/lock) failed: %s", spool->dir,
				strerror(errno));
		return -1;
	}
	if (flock(spool->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			spool_set_error(spool,
					"%s is in use by another "
					"process",
					spool->dir);
		} else {
			spool_set_error(spool, "flock(%s/lock) failed: %s",
					spool->dir, strerror(errno));
		}
		return -1;
	}
	return 0;
}

static int open_subdirs(struct webhook_spool *spool, bool owner)
{
	if (owner &&
	    (mkdirat(spool->dir_fd, "seg", 0700) < 0 ||
	     mkdirat(spool->dir_fd, "dead", 0700) < 0 ||
	     mkdirat(spool->dir_fd, "corrupt", 0700) < 0) &&
	    errno != EEXIST) {
		spool_set_error(spool, "mkdir in %s failed: %s", spool->dir,
				strerror(errno));
		return -1;
	}
	/* read-only: missing ones count as empty */
	spool->seg_fd = spool_open_dir_at(spool->dir_fd, "seg");
	spool->dead_fd = spool_open_dir_at(spool->dir_fd, "dead");
	spool->corrupt_fd = spool_open_dir_at(spool->dir_fd, "corrupt");
	if (owner && (spool->seg_fd < 0 || spool->dead_fd < 0 ||
		      spool->corrupt_fd < 0)) {
		spool_set_error(spool, "open(%s/seg|dead|corrupt) failed: %s",
				spool->dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_dir(struct webhook_spool *spool)
{
	bool owner = (spool->flags & WEBHOOK_SPOOL_READ_ONLY) == 0;

	if (spool->opened) {
		spool_set_error(spool, "%s: spool already open", spool->dir);
		return -1;
	}
	if (spool->dir_too_long || spool->dir[0] == '\0') {
		spool_set_error(spool, "spool directory name is empty or too "
				       "long");
		return -1;
	}
	if (owner && mkdir(spool->dir, 0700) < 0 && errno != EEXIST) {
		spool_set_error(spool, "mkdir(%s) failed: %s", spool->dir,
				strerror(errno));
		return -1;
	}
	spool->dir_fd = open(spool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool->dir_fd < 0) {
		spool_set_error(spool, "open(%s) failed: %s", spool->dir,
				strerror(errno));
		return -1;
	}
	if ((owner && lock_spool(spool) < 0) ||
	    open_subdirs(spool, owner) < 0 || spool_seg_scan_dir(spool) < 0)
		return -1;
	/* the owner moved what it quarantined there; a READ_ONLY open
	   also counts the segments that need a repair */
	if (owner) {
		spool_seg_cleanup_at_open(spool);
		spool->corrupt_count = spool_count_dir(spool->corrupt_fd);
	} else {
		spool->corrupt_count += spool_count_dir(spool->corrupt_fd);
	}
	spool->dead_count = spool_count_dir(spool->dead_fd);
	spool->opened = true;
	return 0;
}

int webhook_spool_open(struct webhook_spool *spool)
{
	spool->error[0] = '\0';
	if (open_dir(spool) == 0)
		return 0;
	if (!spool->opened) {
		spool_seg_list_free(&spool->segments);
		spool_seg_list_free(&spool->doomed);
		spool_ids_free(&spool->ids);
		spool->heap_count = 0;
		close_all(spool);
	}
	return -1;
}

void webhook_spool_set_recent(struct webhook_spool *spool, int64_t recent_ms)
{
	spool->recent_ms = recent_ms < 0 ? 0 : recent_ms;
}

int webhook_spool_append(struct webhook_spool *spool, const char *id,
			 const void *body, size_t body_len, int64_t created_ms)
{
	char header[REC_HEADER_MAX];
	struct spool_id_digest digest;
	struct batch_item *item;
	size_t rec_len;
	int header_len;

	spool->error[0] = '\0';
	if (append_check(spool, id, body, body_len, created_ms) < 0)
		return -1;
	spool_id_digest(id, strlen(id), &digest);
	if (spool_ids_has(&spool->ids, &digest))
		return 1;
	if (spool->batch_count == WEBHOOK_SPOOL_BATCH_MAX &&
	    commit_batch(spool) < 0)
		return -1;
	if (spool_indexed(spool) + spool->batch_count >=
	    WEBHOOK_SPOOL_EVENTS_MAX) {
		spool_set_error(spool, "append: spool %s is full (%d events)",
				spool->dir, WEBHOOK_SPOOL_EVENTS_MAX);
		return -1;
	}
	header_len =
		spool_rec_header_format(header, id, created_ms, body, body_len);
	if (header_len < 0) {
		spool_set_error(spool, "append: event %s: SHA-256 failed", id);
		return -1;
	}
	if (spool->wseg == NULL && spool_wseg_create(spool) < 0)
		return -1;
	rec_len = (size_t)header_len + body_len + 1;
	if (spool->wbuf_len + rec_len > WBUF_SIZE && wbuf_flush(spool) < 0) {
		batch_discard(spool);
		spool_wseg_retire(spool);
		return -1;
	}
	if (spool_ids_add(&spool->ids, &digest) < 0) {
		spool_set_error(spool, "append: out of memory");
		return -1;
	}
	item = &spool->batch[spool->batch_count++];
	item->offset = spool->wseg->size + (int64_t)spool->wbuf_len;
	item->created_ms = created_ms;
	item->rec_len = (uint32_t)rec_len;
	item->id = digest;
	memcpy(spool->wbuf + spool->wbuf_len, header, (size_t)header_len);
	memcpy(spool->wbuf + spool->wbuf_len + header_len, body, body_len);
	spool->wbuf[spool->wbuf_len + rec_len - 1] = '\n';
	spool->wbuf_len += rec_len;
	return 0;
}

int webhook_spool_commit(struct webhook_spool *spool)
{
	spool->error[0] = '\0';
	if (!spool->opened || (spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0) {
		spool_set_error(spool,
				"commit: spool %s is not open for "
				"writing",
				spool->dir);
		return -1;
	}
	return commit_batch(spool);
}

void webhook_spool_abort(struct webhook_spool *spool)
{
	batch_discard(spool);
}

void webhook_spool_set_first_delay(struct webhook_spool *spool,
				   int64_t delay_ms)
{
	unsigned int i;

	spool->first_delay_ms = delay_ms < 0 ? 0 : delay_ms;
	for (i = 0; i < spool->heap_count; i++) {
		if (spool->heap[i].attempts == 0) {
			spool->heap[i].due_ms = spool_first_due(
				spool, spool->heap[i].created_ms);
		}
	}
	heapify(spool);
}

int64_t webhook_spool_next_due(const struct webhook_spool *spool)
{
	return spool->heap_count == 0 ? -1 : spool->heap[0].due_ms;
}

/* ---- checkouts ---- */

static struct spool_checkout *checkout_of(const struct webhook_spool *spool,
					  struct webhook_spool_event *event)
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
		return spool_read_full(seg->fd, rec, entry->rec_len,
				       (off_t)entry->offset);
	if (spool->rcache_serial != seg->serial ||
	    entry->offset < spool->rcache_start ||
	    entry->offset + entry->rec_len >
		    spool->rcache_start + (int64_t)spool->rcache_len) {
		if (!near)
			return spool_read_full(seg->fd, rec, entry->rec_len,
					       (off_t)entry->offset);
		spool->rcache_serial = 0;
		if (spool->rcache == NULL &&
		    (spool->rcache = malloc(READ_CACHE_SIZE)) == NULL)
			return spool_read_full(seg->fd, rec, entry->rec_len,
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
			return spool_read_full(seg->fd, rec, entry->rec_len,
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
		spool_set_error(spool, "checkout: out of memory");
		return -1;
	}
	ret = checkout_read(spool, entry, co->rec);
	spool_seg_file_name(entry->seg, ".seg", file);
	if (ret < 0) {
		spool_set_error(spool, "pread(%s/seg/%s) failed: %s",
				spool->dir, file, strerror(errno));
		free(co);
		return -1;
	}
	if ((size_t)ret == entry->rec_len &&
	    spool_rec_header_parse(co->rec, entry->rec_len, &hdr, &reason) ==
		    1 &&
	    hdr.header_len + hdr.body_len + 1 == entry->rec_len &&
	    co->rec[entry->rec_len - 1] == '\n') {
		reason = NULL;
	} else if (reason == NULL) {
		reason = "bad record";
	}
	if (reason != NULL) {
		/* the next try reads the disk again */
		spool->rcache_serial = 0;
		spool_set_error(spool,
				"pread(%s/seg/%s): record at offset "
				"%" PRId64 " changed on disk (%s)",
				spool->dir, file, entry->offset, reason);
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
	co->event.id = (const char *)co->rec + 2;
	co->event.body = co->rec + hdr.header_len;
	co->event.body_len = hdr.body_len;
	co->event.created_ms = entry->created_ms;
	co->event.attempts = entry->attempts;
	co->event.due_ms = entry->due_ms;
	*co_r = co;
	return 0;
}

int webhook_spool_checkout(struct webhook_spool *spool, int64_t now_ms,
			   struct webhook_spool_event **event_r)
{
	struct spool_checkout *co;
	struct spool_entry entry;

	*event_r = NULL;
	spool->error[0] = '\0';
	if (!is_owner(spool)) {
		spool_set_error(spool,
				"checkout: spool %s is not open as "
				"its owner",
				spool->dir);
		return -1;
	}
	if (spool->heap_count == 0 || spool->heap[0].due_ms > now_ms)
		return 0;
	heap_pop(spool, &entry);
	if (checkout_load(spool, &entry, &co) < 0) {
		entry.due_ms = now_ms + IO_RETRY_MS;
		(void)spool_heap_push(spool, &entry);
		return -1;
	}
	co->next = spool->checkouts;
	if (co->next != NULL)
		co->next->prev = co;
	spool->checkouts = co;
	spool->checkout_count++;
	*event_r = &co->event;
	return 1;
}

int webhook_spool_delivered(struct webhook_spool *spool,
			    struct webhook_spool_event **event)
{
	struct spool_entry entry;
	int ret;

	spool->error[0] = '\0';
	checkout_free(spool, event, &entry);
	ret = spool_seg_outcome(spool, entry.seg, true, "D %" PRIu32 "\n",
				entry.index);
	entry.seg->live--;
	spool_seg_maybe_done(spool, entry.seg);
	return ret;
}

int webhook_spool_reschedule(struct webhook_spool *spool,
			     struct webhook_spool_event **event, int64_t due_ms)
{
	struct spool_entry entry;
	uint32_t attempts;
	int ret;

	spool->error[0] = '\0';
	checkout_free(spool, event, &entry);
	attempts = entry.attempts < ATTEMPTS_MAX ? entry.attempts + 1
						 : entry.attempts;
	ret = spool_seg_outcome(spool, entry.seg, true,
				"R %" PRIu32 " %" PRIu32 " %" PRId64 "\n",
				entry.index, attempts, due_ms < 0 ? 0 : due_ms);
	if (ret == 0)
		entry.attempts = attempts;
	entry.due_ms = due_ms;
	(void)spool_heap_push(spool, &entry);
	return ret;
}

int webhook_spool_dead_letter(struct webhook_spool *spool,
			      struct webhook_spool_event **event)
{
	struct spool_checkout *co = checkout_of(spool, *event);
	struct spool_entry entry;
	uint32_t attempts;
	int ret;

	spool->error[0] = '\0';
	attempts = co->entry.attempts < ATTEMPTS_MAX ? co->entry.attempts + 1
						     : co->entry.attempts;
	ret = spool_dead_file_write(spool, co, attempts);
	checkout_free(spool, event, &entry);
	if (ret < 0) {
		entry.due_ms += DEAD_LETTER_RETRY_MS;
		(void)spool_heap_push(spool, &entry);
		return -1;
	}
	spool->dead_count++;
	ret = spool_seg_outcome(spool, entry.seg, false, "X %" PRIu32 "\n",
				entry.index);
	entry.seg->live--;
	spool_seg_maybe_done(spool, entry.seg);
	return ret;
}

void webhook_spool_release(struct webhook_spool *spool,
			   struct webhook_spool_event **event)
{
	struct spool_entry entry;

	checkout_free(spool, event, &entry);
	(void)spool_heap_push(spool, &entry);
}

/* ---- durability ---- */

int webhook_spool_flush(struct webhook_spool *spool)
{
	spool->error[0] = '\0';
	return spool->outcome_segs == 0 ? 0 : spool_seg_flush_all(spool);
}

int webhook_spool_sync(struct webhook_spool *spool)
{
	struct spool_segment *seg;
	int ret = 0;

	spool->error[0] = '\0';
	if (!is_owner(spool))
		return 0;
	spool_seg_prune(spool);
	if (spool_seg_flush_all(spool) < 0)
		ret = -1;
	for (seg = spool->segments; seg != NULL; seg = seg->next) {
		if (!seg->log_dirty || seg->log_fd < 0)
			continue;
		seg->log_dirty = false;
		if (spool_fdatasync(seg->log_fd) < 0 && ret == 0) {
			spool_set_error(spool,
					"sync: fdatasync(%s/seg/%s.log)"
					" failed: %s",
					spool->dir, seg->name, strerror(errno));
			ret = -1;
		}
	}
	if (spool->seg_dirty) {
		if (spool_fsync_dir(spool->seg_fd) < 0) {
			if (ret == 0) {
				spool_set_error(spool,
						"sync: fsync(%s/seg) "
						"failed: %s",
						spool->dir, strerror(errno));
			}
			/* the unlinks may not be durable: keep the logs */
			return -1;
		}
		spool->seg_dirty = false;
	}
	spool_seg_doomed_logs_remove(spool);
	return ret;
}

static void counts_add(struct webhook_spool_counts *counts,
		       const struct spool_entry *entry)
{
	if (entry->attempts > 0)
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
	if ((spool->flags & WEBHOOK_SPOOL_READ_ONLY) != 0)
		*counts_r = spool->ro_counts;
	else {
		counts_r->oldest_created_ms = -1;
		counts_r->next_due_ms = webhook_spool_next_due(spool);
	}
	counts_r->pending += spool_indexed(spool);
	counts_r->checked_out = spool->checkout_count;
	counts_r->dead = spool->dead_count;
	counts_r->corrupt = spool->corrupt_count;
	for (i = 0; i < spool->heap_count; i++)
		counts_add(counts_r, &spool->heap[i]);
	for (co = spool->checkouts; co != NULL; co = co->next)
		counts_add(counts_r, &co->entry);
}
