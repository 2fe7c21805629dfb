/* Per-maildir retention state. See shim-state.h.

   Why this shape:
   - A hash table of entries (open addressing, linear probing, deletion
     by backward shift): a session sets the size of each of up to
     SHIM_MESSAGES_MAX messages and forgets each expunged one, so every
     change is O(1); a sorted array would move half of itself per
     insert. The file is sorted by base only when it is written.
   - The parser is strict: the file is only ever written by us, so
     anything unexpected is corruption, and the host then removes
     nothing (fail safe) rather than guessing. */

#include "pop3-retention-config.h"
#include "shim-state.h"
#include "shim-params.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_HEADER "pop3-retentiond-state 1"
/* " <time> <flag> <size>\n" at most: 19 + 1 + 20 digits, 3 blanks */
#define STATE_FIELDS_MAX 44
#define STATE_BASE_MAX (SHIM_STATE_LINE_MAX - STATE_FIELDS_MAX)
#define STATE_WRITE_BUF (64 * 1024)

struct state_rec {
	char *base;
	struct shim_state_entry entry;
};

struct shim_state {
	char *path;
	/* hash table of capacity (a power of 2), NULL for a free slot */
	struct state_rec **slots;
	unsigned int capacity, count;
	bool dirty;
};

static void __attribute__((format(printf, 3, 4)))
set_error(char *error, size_t error_size, const char *fmt, ...)
{
	va_list args;

	if (error_size == 0)
		return;
	va_start(args, fmt);
	vsnprintf(error, error_size, fmt, args);
	va_end(args);
}

static uint32_t hash_base(const char *base)
{
	/* FNV-1a */
	uint32_t h = 2166136261U;

	for (; *base != '\0'; base++) {
		h ^= (unsigned char)*base;
		h *= 16777619U;
	}
	return h;
}

static bool base_valid(const char *base)
{
	size_t len;

	for (len = 0; base[len] != '\0'; len++) {
		unsigned char c = (unsigned char)base[len];

		if (c <= 0x20 || c == 0x7f || c == '/' || len >= STATE_BASE_MAX)
			return false;
	}
	return len > 0;
}

/* The slot of base, or of the free slot where it would go. */
static unsigned int slot_find(const struct shim_state *state, const char *base)
{
	unsigned int mask = state->capacity - 1;
	unsigned int i = hash_base(base) & mask;

	while (state->slots[i] != NULL &&
	       strcmp(state->slots[i]->base, base) != 0)
		i = (i + 1) & mask;
	return i;
}

static int table_grow(struct shim_state *state)
{
	struct state_rec **old = state->slots;
	unsigned int i, old_capacity = state->capacity;
	unsigned int capacity = old_capacity == 0 ? 64 : old_capacity * 2;

	if (capacity < old_capacity)
		return -1;
	state->slots = calloc(capacity, sizeof(*state->slots));
	if (state->slots == NULL) {
		state->slots = old;
		return -1;
	}
	state->capacity = capacity;
	for (i = 0; i < old_capacity; i++) {
		if (old[i] != NULL)
			state->slots[slot_find(state, old[i]->base)] = old[i];
	}
	free(old);
	return 0;
}

/* The record of base, created (all zero) when missing; NULL on
   allocation failure. *created_r tells which. */
static struct state_rec *rec_get_or_add(struct shim_state *state,
					const char *base, bool *created_r)
{
	struct state_rec *rec;
	unsigned int i;

	*created_r = false;
	if (state->capacity > 0) {
		i = slot_find(state, base);
		if (state->slots[i] != NULL)
			return state->slots[i];
	}
	/* at most half full, so probes stay short */
	if ((state->count + 1) * 2 > state->capacity && table_grow(state) < 0)
		return NULL;
	rec = calloc(1, sizeof(*rec));
	if (rec == NULL || (rec->base = strdup(base)) == NULL) {
		free(rec);
		return NULL;
	}
	state->slots[slot_find(state, base)] = rec;
	state->count++;
	*created_r = true;
	return rec;
}

static void rec_free(struct state_rec **_rec)
{
	struct state_rec *rec = *_rec;

	*_rec = NULL;
	free(rec->base);
	free(rec);
}

/* Free slot i and move later records of its probe run back into the
   hole, so that every record stays reachable from its home slot. */
static void slot_remove(struct shim_state *state, unsigned int i)
{
	unsigned int mask = state->capacity - 1, j = i, home;

	rec_free(&state->slots[i]);
	state->count--;
	for (;;) {
		j = (j + 1) & mask;
		if (state->slots[j] == NULL)
			break;
		home = hash_base(state->slots[j]->base) & mask;
		/* stays when home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		state->slots[i] = state->slots[j];
		state->slots[j] = NULL;
		i = j;
	}
}

static struct shim_state *state_new(const char *path)
{
	struct shim_state *state;

	state = calloc(1, sizeof(*state));
	if (state == NULL)
		return NULL;
	state->path = strdup(path);
	if (state->path == NULL) {
		free(state);
		return NULL;
	}
	return state;
}

void shim_state_free(struct shim_state **_state)
{
	struct shim_state *state = *_state;
	unsigned int i;

	if (state == NULL)
		return;
	*_state = NULL;
	for (i = 0; i < state->capacity; i++) {
		if (state->slots[i] != NULL)
			rec_free(&state->slots[i]);
	}
	free(state->slots);
	free(state->path);
	free(state);
}

/* A decimal number of digits only (no sign, no blanks), up to max. */
static int parse_number(const char *str, uint64_t max, uint64_t *num_r)
{
	unsigned long long n;
	char *end;

	if (str[0] < '0' || str[0] > '9')
		return -1;
	errno = 0;
	n = strtoull(str, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		return -1;
	*num_r = n;
	return 0;
}

/* One entry line without its "\n": "<base> <time> <flags> <size>". */
static int parse_entry(struct shim_state *state, char *line,
		       const char **reason_r)
{
	char *field[4], *p = line;
	struct state_rec *rec;
	uint64_t retrieved, size;
	unsigned int i;
	bool created;

	for (i = 0; i < 4; i++) {
		field[i] = p;
		p = strchr(p, ' ');
		if (i < 3) {
			if (p == NULL) {
				*reason_r = "too few fields";
				return -1;
			}
			*p++ = '\0';
		}
	}
	if (p != NULL) {
		*reason_r = "too many fields";
		return -1;
	}
	if (!base_valid(field[0])) {
		*reason_r = "invalid base name";
		return -1;
	}
	if (parse_number(field[1], INT64_MAX, &retrieved) < 0 ||
	    (time_t)retrieved < 0 || (uint64_t)(time_t)retrieved != retrieved) {
		*reason_r = "invalid retrieval time";
		return -1;
	}
	if (strcmp(field[2], "h") != 0 && strcmp(field[2], "-") != 0) {
		*reason_r = "invalid flags";
		return -1;
	}
	if (parse_number(field[3], UINT64_MAX, &size) < 0) {
		*reason_r = "invalid size";
		return -1;
	}
	rec = rec_get_or_add(state, field[0], &created);
	if (rec == NULL) {
		*reason_r = "out of memory";
		return -1;
	}
	if (!created) {
		*reason_r = "duplicate base name";
		return -1;
	}
	rec->entry.first_retrieved_at = (time_t)retrieved;
	rec->entry.hidden = field[2][0] == 'h';
	rec->entry.size = size;
	return 0;
}

/* One line without its "\n": NULL, or why it does not parse. */
static const char *parse_line(struct shim_state *state, char *line,
			      unsigned int line_num)
{
	const char *reason = NULL;

	if (line_num == 1) {
		return strcmp(line, STATE_HEADER) == 0 ? NULL :
			"not a state file header";
	}
	(void)parse_entry(state, line, &reason);
	return reason;
}

/* Split what fd holds into lines, one bounded line at a time. */
static int parse_fd(struct shim_state *state, int fd, char *error,
		    size_t error_size)
{
	char chunk[4096], line[SHIM_STATE_LINE_MAX + 1];
	const char *reason = NULL;
	size_t line_len = 0, total = 0, i;
	unsigned int line_num = 1;
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(error, error_size, "read(%s) failed: %s",
				  state->path, strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > SHIM_STATE_SIZE_MAX) {
			set_error(error, error_size,
				  "%s: larger than %d octets", state->path,
				  SHIM_STATE_SIZE_MAX);
			return -1;
		}
		for (i = 0; i < (size_t)n && reason == NULL; i++) {
			if (chunk[i] == '\n') {
				line[line_len] = '\0';
				reason = parse_line(state, line, line_num);
				line_len = 0;
				if (reason == NULL)
					line_num++;
			} else if (chunk[i] == '\0') {
				reason = "NUL octet";
			} else if (line_len == SHIM_STATE_LINE_MAX - 1) {
				reason = "line too long";
			} else {
				line[line_len++] = chunk[i];
			}
		}
		if (reason != NULL)
			break;
	}
	if (reason == NULL && line_len > 0)
		reason = "last line without a line end";
	else if (reason == NULL && line_num == 1)
		reason = "empty file";
	if (reason != NULL) {
		set_error(error, error_size, "%s line %u: %s", state->path,
			  line_num, reason);
		return -1;
	}
	return 0;
}

int shim_state_load(const char *path, struct shim_state **state_r, char *error,
		    size_t error_size)
{
	struct shim_state *state;
	struct stat st;
	int fd, ret;

	*state_r = NULL;
	if (strlen(path) > SHIM_PATH_MAX - 32) {
		set_error(error, error_size, "state path too long: %.64s...",
			  path);
		return -1;
	}
	state = state_new(path);
	if (state == NULL) {
		set_error(error, error_size, "out of memory loading %s", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		*state_r = state;
		return 0;
	}
	if (fd < 0) {
		set_error(error, error_size, "open(%s) failed: %s", path,
			  strerror(errno));
		shim_state_free(&state);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		set_error(error, error_size, "fstat(%s) failed: %s", path,
			  strerror(errno));
		ret = -1;
	} else if (!S_ISREG(st.st_mode)) {
		set_error(error, error_size, "%s: not a regular file", path);
		ret = -1;
	} else if (st.st_size > SHIM_STATE_SIZE_MAX) {
		set_error(error, error_size, "%s: larger than %d octets", path,
			  SHIM_STATE_SIZE_MAX);
		ret = -1;
	} else {
		ret = parse_fd(state, fd, error, error_size);
	}
	close(fd);
	if (ret < 0) {
		shim_state_free(&state);
		return -1;
	}
	*state_r = state;
	return 0;
}

const struct shim_state_entry *shim_state_get(const struct shim_state *state,
					      const char *base)
{
	unsigned int i;

	if (state->capacity == 0)
		return NULL;
	i = slot_find(state, base);
	return state->slots[i] == NULL ? NULL : &state->slots[i]->entry;
}

static struct shim_state_entry *entry_for_change(struct shim_state *state,
						 const char *base)
{
	struct state_rec *rec;
	bool created;

	if (!base_valid(base))
		return NULL;
	rec = rec_get_or_add(state, base, &created);
	if (rec == NULL)
		return NULL;
	if (created)
		state->dirty = true;
	return &rec->entry;
}

int shim_state_set_retrieved(struct shim_state *state, const char *base,
			     time_t first_retrieved_at)
{
	struct shim_state_entry *entry;

	if (first_retrieved_at < 0)
		return -1;
	entry = entry_for_change(state, base);
	if (entry == NULL)
		return -1;
	if (entry->first_retrieved_at != first_retrieved_at) {
		entry->first_retrieved_at = first_retrieved_at;
		state->dirty = true;
	}
	return 0;
}

int shim_state_set_hidden(struct shim_state *state, const char *base,
			  bool hidden)
{
	struct shim_state_entry *entry;

	entry = entry_for_change(state, base);
	if (entry == NULL)
		return -1;
	if (entry->hidden != hidden) {
		entry->hidden = hidden;
		state->dirty = true;
	}
	return 0;
}

int shim_state_set_size(struct shim_state *state, const char *base,
			uint64_t size)
{
	struct shim_state_entry *entry;

	entry = entry_for_change(state, base);
	if (entry == NULL)
		return -1;
	if (entry->size != size) {
		entry->size = size;
		state->dirty = true;
	}
	return 0;
}

void shim_state_forget(struct shim_state *state, const char *base)
{
	unsigned int i;

	if (state->capacity == 0)
		return;
	i = slot_find(state, base);
	if (state->slots[i] == NULL)
		return;
	slot_remove(state, i);
	state->dirty = true;
}

static int cmp_str_ptr(const void *p1, const void *p2)
{
	const char *const *s1 = p1, *const *s2 = p2;

	return strcmp(*s1, *s2);
}

void shim_state_prune(struct shim_state *state, const char *const *bases,
		      unsigned int count)
{
	const char **sorted;
	const char *base;
	unsigned int i;

	if (state->count == 0)
		return;
	sorted = calloc(count + 1, sizeof(*sorted));
	if (sorted == NULL) {
		/* keeping stale entries is harmless; pruning is a tidy-up */
		return;
	}
	if (count > 0)
		memcpy(sorted, bases, count * sizeof(*sorted));
	qsort(sorted, count, sizeof(*sorted), cmp_str_ptr);
	for (i = 0; i < state->capacity;) {
		if (state->slots[i] == NULL) {
			i++;
			continue;
		}
		base = state->slots[i]->base;
		if (bsearch(&base, sorted, count, sizeof(*sorted),
			    cmp_str_ptr) != NULL) {
			i++;
			continue;
		}
		/* the backward shift may move another record into slot i */
		slot_remove(state, i);
		state->dirty = true;
	}
	free(sorted);
}

bool shim_state_dirty(const struct shim_state *state)
{
	return state->dirty;
}

/* Buffered writes of the temp file. */
struct writer {
	int fd;
	size_t len;
	int error;
	char buf[STATE_WRITE_BUF];
};

static void writer_flush(struct writer *w)
{
	size_t done = 0;
	ssize_t n;

	while (w->error == 0 && done < w->len) {
		n = write(w->fd, w->buf + done, w->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			w->error = errno;
		else
			done += (size_t)n;
	}
	w->len = 0;
}

static void __attribute__((format(printf, 2, 3)))
writer_printf(struct writer *w, const char *fmt, ...)
{
	va_list args;
	int n;

	if (w->len + SHIM_STATE_LINE_MAX > sizeof(w->buf))
		writer_flush(w);
	va_start(args, fmt);
	n = vsnprintf(w->buf + w->len, sizeof(w->buf) - w->len, fmt, args);
	va_end(args);
	if (n < 0 || (size_t)n >= sizeof(w->buf) - w->len) {
		if (w->error == 0)
			w->error = EOVERFLOW;
		return;
	}
	w->len += (size_t)n;
}

static int cmp_rec_ptr(const void *p1, const void *p2)
{
	const struct state_rec *const *r1 = p1, *const *r2 = p2;

	return strcmp((*r1)->base, (*r2)->base);
}

/* Write the entries sorted by base into fd. Returns 0 or an errno. */
static int state_write(const struct shim_state *state, int fd)
{
	const struct state_rec **recs, *rec;
	struct writer *w;
	unsigned int i, n = 0;
	int ret;

	recs = calloc(state->count + 1, sizeof(*recs));
	w = calloc(1, sizeof(*w));
	if (recs == NULL || w == NULL) {
		free(recs);
		free(w);
		return ENOMEM;
	}
	for (i = 0; i < state->capacity; i++) {
		if (state->slots[i] != NULL)
			recs[n++] = state->slots[i];
	}
	qsort(recs, n, sizeof(*recs), cmp_rec_ptr);
	w->fd = fd;
	writer_printf(w, "%s\n", STATE_HEADER);
	for (i = 0; i < n; i++) {
		rec = recs[i];
		writer_printf(w, "%s %" PRId64 " %s %" PRIu64 "\n", rec->base,
			      (int64_t)rec->entry.first_retrieved_at,
			      rec->entry.hidden ? "h" : "-", rec->entry.size);
	}
	writer_flush(w);
	ret = w->error;
	free(w);
	free(recs);
	return ret;
}

static int fsync_parent(const char *path)
{
	char dir[SHIM_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, ret;

	if (slash == NULL) {
		memcpy(dir, ".", 2);
	} else if (slash == path) {
		memcpy(dir, "/", 2);
	} else {
		if ((size_t)(slash - path) >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	if (close(fd) < 0)
		ret = -1;
	return ret;
}

/* Write, fsync and close the temp file. Returns 0, or -1 with error
   (the temp file is left to the caller to unlink). */
static int state_write_temp(const struct shim_state *state, const char *temp,
			    bool durable, char *error, size_t error_size)
{
	int fd, err;

	fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0 && errno == EEXIST) {
		/* left by a crashed process that had our pid */
		if (unlink(temp) == 0) {
			fd = open(temp,
				  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					  O_CLOEXEC,
				  0600);
		}
	}
	if (fd < 0) {
		set_error(error, error_size, "open(%s) failed: %s", temp,
			  strerror(errno));
		return -1;
	}
	err = state_write(state, fd);
	if (err != 0) {
		set_error(error, error_size, "write(%s) failed: %s", temp,
			  strerror(err));
		close(fd);
		return -1;
	}
	if (durable && fsync(fd) < 0) {
		set_error(error, error_size, "fsync(%s) failed: %s", temp,
			  strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		set_error(error, error_size, "close(%s) failed: %s", temp,
			  strerror(errno));
		return -1;
	}
	return 0;
}

int shim_state_save(struct shim_state *state, bool durable, char *error,
		    size_t error_size)
{
	char temp[SHIM_PATH_MAX];
	int ret;

	if (!state->dirty)
		return 0;
	ret = snprintf(temp, sizeof(temp), "%s.tmp.%ld", state->path,
		       (long)getpid());
	if (ret < 0 || (size_t)ret >= sizeof(temp)) {
		set_error(error, error_size, "state path too long: %s",
			  state->path);
		return -1;
	}
	if (state_write_temp(state, temp, durable, error, error_size) < 0) {
		(void)unlink(temp);
		return -1;
	}
	if (rename(temp, state->path) < 0) {
		set_error(error, error_size, "rename(%s, %s) failed: %s", temp,
			  state->path, strerror(errno));
		(void)unlink(temp);
		return -1;
	}
	/* the new file is in place; until its directory entry is durable
	   the state stays dirty, so the next save makes it so */
	if (durable && fsync_parent(state->path) < 0) {
		set_error(error, error_size,
			  "fsync(directory of %s) failed: %s", state->path,
			  strerror(errno));
		return -1;
	}
	state->dirty = false;
	return 0;
}
