/* The spool's formats: record header lines, outcome log lines and
   dead-letter files (webhook-spool.h), the checks of what is read back,
   file helpers, and the set of webhook-ids the spool holds. */

#include "pop3-retention-config.h"
#include "webhook-spool-private.h"
#include "webhook-crypto.h"

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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors and logs ---- */

void spool_set_error(struct webhook_spool *spool, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(spool->error, sizeof(spool->error), fmt, args);
	va_end(args);
}

void spool_log(struct webhook_spool *spool, enum webhook_log_level level,
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

void spool_log_error(struct webhook_spool *spool)
{
	spool_log(spool, WEBHOOK_LOG_ERROR, "%s", spool->error);
	spool->error[0] = '\0';
}

int64_t spool_wall_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void spool_close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* ---- parsing ---- */

bool spool_parse_decimal(const char *s, size_t len, uint64_t max,
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

bool spool_id_is_valid(const char *id, size_t len)
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

int spool_sha256(const void *data, size_t len, unsigned char md_r[SHA256_LEN])
{
	unsigned int md_len = 0;

	const EVP_MD *md = webhook_crypto_sha256();

	if (EVP_Digest(data, len, md_r, &md_len, md != NULL ? md : EVP_sha256(),
		       NULL) != 1 ||
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
int spool_split_fields(const char *line, size_t len, const char **fields,
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
int spool_rec_header_parse(const unsigned char *buf, size_t len,
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
	if (spool_split_fields((const char *)buf, (size_t)(nl - buf), f, flen,
			       5) != 5 ||
	    flen[0] != 1 || f[0][0] != 'E') {
		*reason_r = "bad record header";
		return -1;
	}
	if (!spool_id_is_valid(f[1], flen[1])) {
		*reason_r = "bad record id";
		return -1;
	}
	memcpy(hdr_r->id, f[1], flen[1]);
	hdr_r->id[flen[1]] = '\0';
	if (!spool_parse_decimal(f[2], flen[2], INT64_MAX, &num)) {
		*reason_r = "bad record creation time";
		return -1;
	}
	hdr_r->created_ms = (int64_t)num;
	if (!spool_parse_decimal(f[3], flen[3], WEBHOOK_SPOOL_BODY_MAX, &num) ||
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
bool spool_seg_name_parse(const char *name, const char *suffix,
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

int spool_rec_header_format(char *buf, const char *id, int64_t created_ms,
			    const void *body, size_t body_len)
{
	char hex[SHA256_LEN * 2 + 1];
	unsigned char md[SHA256_LEN];
	int len;

	if (spool_sha256(body, body_len, md) < 0)
		return -1;
	sha256_hex(md, hex);
	len = snprintf(buf, REC_HEADER_MAX, "E %s %" PRId64 " %zu %s\n", id,
		       created_ms, body_len, hex);
	if (len < 0 || len >= REC_HEADER_MAX)
		abort();
	return len;
}

void spool_id_digest(const char *id, size_t len,
		     struct spool_id_digest *digest_r)
{
	unsigned char md[SHA256_LEN];
	unsigned int i;

	if (spool_sha256(id, len, md) < 0) {
		/* OpenSSL cannot allocate: fatal, as for the event ids */
		fputs("pop3-retention: SHA-256 failed in the spool\n", stderr);
		abort();
	}
	memcpy(digest_r->b, md, ID_DIGEST_LEN);
	for (i = 0; i < ID_DIGEST_LEN; i++) {
		if (digest_r->b[i] != 0)
			return;
	}
	digest_r->b[0] = 1;
}

/* ---- file I/O ---- */

int spool_write_full(int fd, const void *data, size_t len)
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

ssize_t spool_read_full(int fd, void *buf, size_t len, off_t offset)
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

int spool_fdatasync(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int spool_fsync_dir(int fd)
{
	if (fd < 0)
		return 0;
	while (fsync(fd) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int spool_open_dir_at(int dir_fd, const char *name)
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

	fd = spool_open_dir_at(dir_fd, ".");
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
unsigned int spool_count_dir(int dir_fd)
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

/* ---- reading segments ---- */

static int scan_add(struct seg_scan *scan, int64_t offset,
		    const struct rec_header *hdr, uint32_t rec_len)
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
	scan->recs[scan->count].created_ms = hdr->created_ms;
	scan->recs[scan->count].rec_len = rec_len;
	spool_id_digest(hdr->id, strlen(hdr->id), &scan->recs[scan->count].id);
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
		    spool_rec_header_parse(p, (size_t)(end - p), &hdr,
					   &reason) == 1)
			return true;
	}
	return false;
}

/* Parse a segment up to its first bad or incomplete record, verifying
   every body. Returns 0, or -1 with errno on a read error. */
int spool_seg_parse(int fd, struct seg_scan *scan)
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
			ret = spool_read_full(fd, buf,
					      size - pos > SCAN_BUF_SIZE
						      ? SCAN_BUF_SIZE
						      : (size_t)(size - pos),
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
		hret = spool_rec_header_parse(p, avail, &hdr, &reason);
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
		if (spool_sha256(p + hdr.header_len, hdr.body_len, md) < 0 ||
		    memcmp(md, hdr.sha256, SHA256_LEN) != 0) {
			scan->bad_reason = "body does not match its sha256";
			break;
		}
		if (scan_add(scan, pos, &hdr, (uint32_t)need) < 0) {
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
void spool_log_replay(struct webhook_spool *spool, const char *file, int log_fd,
		      struct seg_scan *scan, bool repair)
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
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "%s/seg/%s: too large "
			  "(%" PRId64 " bytes), ignored",
			  spool->dir, file, (int64_t)st.st_size);
		return;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL)
		return;
	len = spool_read_full(log_fd, buf, (size_t)st.st_size, 0);
	if (len < 0) {
		spool_log(spool, WEBHOOK_LOG_ERROR,
			  "read(%s/seg/%s) failed: %s",
			  spool->dir, file, strerror(errno));
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
		n = spool_split_fields(line, (size_t)(nl - line), f, flen, 4);
		line = nl + 1;
		if (n < 2 || flen[0] != 1 ||
		    !spool_parse_decimal(f[1], flen[1], UINT32_MAX, &idx) ||
		    !((n == 2 && (f[0][0] == 'D' || f[0][0] == 'X')) ||
		      (n == 4 && f[0][0] == 'R' &&
		       spool_parse_decimal(f[2], flen[2], ATTEMPTS_MAX,
					   &attempts) &&
		       spool_parse_decimal(f[3], flen[3], INT64_MAX, &due)))) {
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
			  "%s/seg/%s: %u unreadable lines ignored", spool->dir,
			  file, garbage);
	}
	if (beyond > 0) {
		spool_log(spool, WEBHOOK_LOG_DEBUG,
			  "%s/seg/%s: %u outcomes for records past the end "
			  "ignored",
			  spool->dir, file, beyond);
	}
	free(buf);
}

/* ---- dead letters ---- */

/* dead/<segment>.<record>: a text header, a blank line, the body. */
int spool_dead_file_write(struct webhook_spool *spool,
			  const struct spool_checkout *co, uint32_t attempts)
{
	char name[SEG_NAME_SIZE + 16], tmp[SEG_NAME_SIZE + 24];
	char header[DEAD_HEADER_MAX], hex[SHA256_LEN * 2 + 1];
	unsigned char md[SHA256_LEN];
	const char *what = "write";
	int fd, len;

	snprintf(name, sizeof(name), "%s.%" PRIu32, co->entry.seg->name,
		 co->entry.index);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	if (spool_sha256(co->event.body, co->event.body_len, md) < 0) {
		spool_set_error(spool, "dead letter %s: SHA-256 failed",
				co->event.id);
		return -1;
	}
	sha256_hex(md, hex);
	len = snprintf(header, sizeof(header),
		       DEAD_MAGIC "\nid %s\n"
				  "created %" PRId64 "\nattempts %" PRIu32 "\n"
				  "length %zu\nsha256 %s\n\n",
		       co->event.id, co->event.created_ms, attempts,
		       co->event.body_len, hex);
	if (len < 0 || (size_t)len >= sizeof(header))
		abort();
	fd = openat(spool->dead_fd, tmp,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		spool_set_error(spool, "open(%s/dead/%s) failed: %s",
				spool->dir, tmp, strerror(errno));
		return -1;
	}
	if (spool_write_full(fd, header, (size_t)len) < 0 ||
	    spool_write_full(fd, co->event.body, co->event.body_len) < 0 ||
	    (what = "fdatasync", spool_fdatasync(fd) < 0)) {
		spool_set_error(spool, "%s(%s/dead/%s) failed: %s", what,
				spool->dir, tmp, strerror(errno));
		(void)close(fd);
		(void)unlinkat(spool->dead_fd, tmp, 0);
		return -1;
	}
	(void)close(fd);
	if (renameat(spool->dead_fd, tmp, spool->dead_fd, name) < 0) {
		spool_set_error(spool, "rename(%s/dead/%s) failed: %s",
				spool->dir, tmp, strerror(errno));
		(void)unlinkat(spool->dead_fd, tmp, 0);
		return -1;
	}
	if (spool_fsync_dir(spool->dead_fd) < 0) {
		spool_set_error(spool, "fsync(%s/dead) failed: %s", spool->dir,
				strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the ids held ---- */

static unsigned int ids_slot(const struct spool_ids *ids,
			     const struct spool_id_digest *id)
{
	uint32_t h;

	/* the digest is uniformly distributed already */
	memcpy(&h, id->b, sizeof(h));
	return h & (ids->size - 1);
}

static bool ids_empty(const struct spool_id_digest *slot)
{
	unsigned int i;

	for (i = 0; i < ID_DIGEST_LEN; i++) {
		if (slot->b[i] != 0)
			return false;
	}
	return true;
}

/* Index of id's slot, or of the empty slot where it would go. */
static unsigned int ids_find(const struct spool_ids *ids,
			     const struct spool_id_digest *id)
{
	unsigned int i = ids_slot(ids, id);

	while (!ids_empty(&ids->slots[i]) &&
	       memcmp(ids->slots[i].b, id->b, ID_DIGEST_LEN) != 0)
		i = (i + 1) & (ids->size - 1);
	return i;
}

bool spool_ids_has(const struct spool_ids *ids,
		   const struct spool_id_digest *id)
{
	if (ids->count == 0)
		return false;
	return !ids_empty(&ids->slots[ids_find(ids, id)]);
}

static int ids_grow(struct spool_ids *ids)
{
	struct spool_ids bigger;
	unsigned int i;

	bigger.size = ids->size == 0 ? 1024 : ids->size * 2;
	bigger.count = ids->count;
	bigger.slots = calloc(bigger.size, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return -1;
	for (i = 0; i < ids->size; i++) {
		if (!ids_empty(&ids->slots[i]))
			bigger.slots[ids_find(&bigger, &ids->slots[i])] =
				ids->slots[i];
	}
	free(ids->slots);
	*ids = bigger;
	return 0;
}

int spool_ids_add(struct spool_ids *ids, const struct spool_id_digest *id)
{
	unsigned int i;

	/* at most half full: probes stay short */
	if ((ids->count + 1) * 2 > ids->size && ids_grow(ids) < 0)
		return -1;
	i = ids_find(ids, id);
	if (ids_empty(&ids->slots[i])) {
		ids->slots[i] = *id;
		ids->count++;
	}
	return 0;
}

/* Backward-shift deletion: the probe chains of the ids after it stay
   unbroken without tombstones. */
void spool_ids_remove(struct spool_ids *ids, const struct spool_id_digest *id)
{
	unsigned int i, j, home, mask = ids->size - 1;

	if (ids->count == 0)
		return;
	i = ids_find(ids, id);
	if (ids_empty(&ids->slots[i]))
		return;
	memset(&ids->slots[i], 0, sizeof(ids->slots[i]));
	ids->count--;
	for (j = (i + 1) & mask; !ids_empty(&ids->slots[j]);
	     j = (j + 1) & mask) {
		home = ids_slot(ids, &ids->slots[j]);
		/* j's entry may move to i if i lies between home and j */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			ids->slots[i] = ids->slots[j];
			memset(&ids->slots[j], 0, sizeof(ids->slots[j]));
			i = j;
		}
	}
}

void spool_ids_free(struct spool_ids *ids)
{
	free(ids->slots);
	ids->slots = NULL;
	ids->size = ids->count = 0;
}
