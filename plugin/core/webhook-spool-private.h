#ifndef WEBHOOK_SPOOL_PRIVATE_H
#define WEBHOOK_SPOOL_PRIVATE_H

/* What the spool's three files share; nothing outside them includes
   this. webhook-spool-record.c: the record, outcome-line and dead-letter
   formats, file helpers, the id set. webhook-spool-segment.c: segment
   files (create, read, repair, quarantine, outcome logs, retire).
   webhook-spool.c: the index and the public API. */

#include "webhook-spool.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
/* An id is known by the first bytes of its SHA-256 (see struct
   spool_ids). */
#define ID_DIGEST_LEN 16
#define DEAD_HEADER_MAX 512
#define SPOOL_DIR_MAX (PATH_MAX - 64)
#define ATTEMPTS_MAX 1000000
/* An unreadable event is tried again after this long. */
#define IO_RETRY_MS 5000
/* An event that could not be moved to dead/ is sent again after this. */
#define DEAD_LETTER_RETRY_MS 60000
#define LOG_LINE_MAX 1024
#define CREATE_TRIES 10

struct spool_id_digest {
	unsigned char b[ID_DIGEST_LEN];
};

/* The webhook-ids of every record in the segments on disk (pending,
   delivered or dead-lettered) and in the uncommitted batch, so that an
   event appended again is skipped. Open addressing with linear
   probing; a slot of all zero bytes is empty (a digest that is all zero
   is stored with its first byte set to 1: a false "held" for one id in
   2^128). */
struct spool_ids {
	struct spool_id_digest *slots;
	unsigned int size;		/* a power of two, or 0 */
	unsigned int count;
};

struct spool_segment {
	struct spool_segment *prev, *next;
	char name[SEG_NAME_SIZE];	/* without ".seg" */
	int fd;				/* the segment; -1 once done */
	int log_fd;			/* its outcome log; -1 until needed */
	uint32_t records;		/* committed records */
	uint32_t live;			/* of those, not delivered or dead */
	/* the ids of its records, in order (records of them) */
	struct spool_id_digest *ids;
	uint32_t ids_size;
	int64_t size;			/* writer: bytes in the file */
	/* Unix ms when its last event was done (0: not done); it is
	   kept, and its ids held, for the spool's recent window */
	int64_t done_ms;
	bool writing;			/* the writer's current segment */
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
	unsigned char rec[];		/* the record, NUL-terminated */
};

struct batch_item {
	int64_t offset;
	int64_t created_ms;
	uint32_t rec_len;
	struct spool_id_digest id;
};

struct rec_header {
	char id[WEBHOOK_SPOOL_ID_MAX];
	int64_t created_ms;
	size_t body_len;
	unsigned char sha256[SHA256_LEN];
	size_t header_len;		/* with its newline */
};

/* A segment as read from disk: its verified records, and what its
   outcome log says about them. */
struct scan_rec {
	int64_t offset;
	int64_t created_ms;
	int64_t due_ms;			/* from an R line */
	uint32_t rec_len;
	uint32_t attempts;
	struct spool_id_digest id;
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

struct webhook_spool {
	char dir[SPOOL_DIR_MAX];
	bool dir_too_long;
	unsigned int flags;
	bool opened;

	int dir_fd, lock_fd, seg_fd, dead_fd, corrupt_fd;

	struct spool_entry *heap;
	unsigned int heap_count, heap_size;
	struct spool_checkout *checkouts;
	unsigned int checkout_count;
	/* every segment on disk, newest first */
	struct spool_segment *segments;
	/* unlinked segments whose logs go after the next fsync of seg/ */
	struct spool_segment *doomed;
	struct spool_ids ids;
	int64_t recent_ms;

	/* the writer */
	struct spool_segment *wseg;
	bool wseg_new;			/* created since the last commit */
	unsigned char *wbuf;
	size_t wbuf_len;
	struct batch_item *batch;
	unsigned int batch_count;
	int64_t batch_start;		/* wseg->size when the batch began */
	uint32_t seq;

	unsigned int dead_count, corrupt_count;
	/* READ_ONLY: what open() counted */
	struct webhook_spool_counts ro_counts;
	int64_t first_delay_ms;
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
	char error[WEBHOOK_SPOOL_ERROR_MAX];
};

/* ---- webhook-spool-record.c ---- */

void spool_set_error(struct webhook_spool *spool, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void spool_log(struct webhook_spool *spool, enum webhook_log_level level,
	       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Log the spool's error (for callers that cannot report it) and clear
   it. */
void spool_log_error(struct webhook_spool *spool);
int64_t spool_wall_ms(void);
void spool_close_fd(int *fd);

/* Strict unsigned decimal: digits only, no sign, no leading zero, no
   overflow, at most max. */
bool spool_parse_decimal(const char *s, size_t len, uint64_t max,
			 uint64_t *value_r);
/* Split a line (without its newline) at single spaces. Returns the
   number of fields, or -1 if there are more than max or one is empty. */
int spool_split_fields(const char *line, size_t len, const char **fields,
		       size_t *lens, int max);
bool spool_id_is_valid(const char *id, size_t len);
int spool_sha256(const void *data, size_t len,
		 unsigned char md_r[SHA256_LEN]);
void spool_id_digest(const char *id, size_t len,
		     struct spool_id_digest *digest_r);

/* Parse the record header line at the start of buf (len bytes
   available). Returns 1, 0 if buf holds no newline but is shorter than
   the longest header line (it may be cut off), -1 with a static reason
   if it is bad. */
int spool_rec_header_parse(const unsigned char *buf, size_t len,
			   struct rec_header *hdr_r, const char **reason_r);
/* Format a record's header line into buf (REC_HEADER_MAX). Returns its
   length, or -1 if SHA-256 failed. */
int spool_rec_header_format(char *buf, const char *id, int64_t created_ms,
			    const void *body, size_t body_len);
/* "<digits>-<digits>-<digits>" followed by suffix: a segment's file
   name. The base name (without the suffix) goes to base_r. */
bool spool_seg_name_parse(const char *name, const char *suffix,
			  char base_r[SEG_NAME_SIZE]);
/* Parse a segment up to its first bad or incomplete record, verifying
   every body. Returns 0, or -1 with errno on a read error. */
int spool_seg_parse(int fd, struct seg_scan *scan);
/* Apply an outcome log to the records of a scan. A last line without
   its newline is a write cut short: ignored, and cut off when repair is
   set so that the next line starts clean. */
void spool_log_replay(struct webhook_spool *spool, const char *file,
		      int log_fd, struct seg_scan *scan, bool repair);
/* Write the checked-out event into dead/ durably. Returns 0, or -1
   with the error. */
int spool_dead_file_write(struct webhook_spool *spool,
			  const struct spool_checkout *co, uint32_t attempts);

int spool_write_full(int fd, const void *data, size_t len);
ssize_t spool_read_full(int fd, void *buf, size_t len, off_t offset);
int spool_fdatasync(int fd);
int spool_fsync_dir(int fd);
int spool_open_dir_at(int dir_fd, const char *name);
/* Entries of a directory other than dot files. */
unsigned int spool_count_dir(int dir_fd);

bool spool_ids_has(const struct spool_ids *ids,
		   const struct spool_id_digest *id);
/* Returns 0, or -1 when memory runs out. */
int spool_ids_add(struct spool_ids *ids, const struct spool_id_digest *id);
void spool_ids_remove(struct spool_ids *ids,
		      const struct spool_id_digest *id);
void spool_ids_free(struct spool_ids *ids);

/* ---- webhook-spool-segment.c ---- */

struct spool_segment *spool_seg_new(const char *name);
void spool_seg_free(struct spool_segment *seg);
void spool_seg_list_add(struct spool_segment **list,
			struct spool_segment *seg);
void spool_seg_list_remove(struct spool_segment **list,
			   struct spool_segment *seg);
void spool_seg_list_free(struct spool_segment **list);
void spool_seg_file_name(const struct spool_segment *seg, const char *suffix,
			 char buf[SEG_FILE_SIZE]);
/* The segment's last pending event is done (or it stopped being
   written): it is kept for the recent window, then deleted. */
void spool_seg_maybe_done(struct webhook_spool *spool,
			  struct spool_segment *seg);
/* Delete the done segments whose recent window is over (and the oldest
   ones beyond WEBHOOK_SPOOL_RECENT_BYTES). */
void spool_seg_prune(struct webhook_spool *spool);
/* Add one outcome line to the segment's buffer; with hold false, write
   it (and what waited) at once. */
int spool_seg_outcome(struct webhook_spool *spool, struct spool_segment *seg,
		      bool hold, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int spool_seg_flush_all(struct webhook_spool *spool);
/* Read every segment in seg/: the owner repairs each, indexes its
   pending events and holds its ids; READ_ONLY only counts. Returns 0,
   or -1 with the error. */
int spool_seg_scan_dir(struct webhook_spool *spool);
/* Segments found done at open were unlinked: make that durable and
   remove their logs. */
void spool_seg_cleanup_at_open(struct webhook_spool *spool);
/* The unlinks of the doomed segments are durable: remove their logs. */
void spool_seg_doomed_logs_remove(struct webhook_spool *spool);
/* Start a new segment for the writer. */
int spool_wseg_create(struct webhook_spool *spool);
/* The writer is done with its segment: it is full, or broken. */
void spool_wseg_retire(struct webhook_spool *spool);

/* ---- webhook-spool.c ---- */

/* When a never-attempted event is due. */
int64_t spool_first_due(const struct webhook_spool *spool,
			int64_t created_ms);
/* Queue an entry whose due time is set. Returns 0, or -1 when memory
   runs out (the event stays on disk and is indexed at the next open). */
int spool_heap_push(struct webhook_spool *spool,
		    const struct spool_entry *entry);

#endif
