/* A Maildir as a POP3 maildrop. See shim-maildir.h.

   Why this shape:
   - A message is found by its base name, not by its full file name: any
     MUA beside us may rename cur/<base>:2,<flags> at any time, so an
     operation whose file name has gone looks the base up in cur/ again
     before it calls the message removed.
   - The maildrop lock is an open file description lock (F_OFD_SETLK)
     where the kernel has them: a classic fcntl lock belongs to the
     process, so two sessions of one pop3-retentiond process would both
     get it, and closing any descriptor of the file would drop it. Both
     kinds go to the NFS lock service alike.
   Reading a message (sizes, RETR/TOP, Message-ID) is in
   shim-maildir-read.c, moving it into a folder in shim-maildir-move.c. */

#define _GNU_SOURCE /* F_OFD_SETLK */

#include "pop3-retention-config.h"
#include "shim-maildir.h"
#include "shim-maildir-private.h"
#include "shim-params.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define LOCK_FNAME "pop3-retentiond.lock"
#define DIGEST_HEX_LEN 40

struct md_msg {
	struct shim_maildir_msg pub;
	/* the file name in cur/ at scan, and after its NUL the base (one
	   block, so base stays where it is until close) */
	char *fname;
	/* the name found after another client renamed the file, or NULL */
	char *renamed;
	char uidl_digest[DIGEST_HEX_LEN + 1];
	bool removed;
};

struct shim_maildir {
	char *dir;
	int lock_fd;
	struct md_msg *msgs;
	unsigned int count;
};

static void msg_free(struct md_msg *msg)
{
	free(msg->fname);
	free(msg->renamed);
	msg->fname = msg->renamed = NULL;
}

static const char *msg_fname(const struct md_msg *msg)
{
	return msg->renamed != NULL ? msg->renamed : msg->fname;
}

void shim_maildir_error(char *error, size_t error_size, const char *fmt, ...)
{
	va_list args;

	if (error_size == 0)
		return;
	va_start(args, fmt);
	vsnprintf(error, error_size, fmt, args);
	va_end(args);
}

int shim_maildir_path_fmt(char *path, size_t size, char *error,
			  size_t error_size, const char *fmt, ...)
{
	va_list args;
	int ret;

	va_start(args, fmt);
	ret = vsnprintf(path, size, fmt, args);
	va_end(args);
	if (ret < 0 || (size_t)ret >= size) {
		shim_maildir_error(error, error_size, "path too long under %s",
				   fmt);
		return -1;
	}
	return 0;
}

static int mkdir_missing(const char *path, char *error, size_t error_size)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		shim_maildir_error(error, error_size, "mkdir(%s) failed: %s",
				   path, strerror(errno));
		return -1;
	}
	return 0;
}

int shim_maildir_mkdirs(const char *dir, bool self, char *error,
			size_t error_size)
{
	static const char *const subdirs[] = {"new", "cur", "tmp"};
	char path[SHIM_PATH_MAX];
	unsigned int i;

	if (self && mkdir_missing(dir, error, error_size) < 0)
		return -1;
	for (i = 0; i < 3; i++) {
		if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
					  "%s/%s", dir, subdirs[i]) < 0 ||
		    mkdir_missing(path, error, error_size) < 0)
			return -1;
	}
	return 0;
}

struct shim_maildir *shim_maildir_open(const char *dir, char *error,
				       size_t error_size)
{
	struct shim_maildir *md;

	if (dir[0] == '\0' || strlen(dir) > SHIM_PATH_MAX - 64) {
		shim_maildir_error(error, error_size,
				   "maildir path empty or too long");
		return NULL;
	}
	if (shim_maildir_mkdirs(dir, true, error, error_size) < 0)
		return NULL;
	md = calloc(1, sizeof(*md));
	if (md == NULL || (md->dir = strdup(dir)) == NULL) {
		free(md);
		shim_maildir_error(error, error_size,
				   "out of memory opening %s", dir);
		return NULL;
	}
	md->lock_fd = -1;
	return md;
}

static void msgs_free(struct shim_maildir *md)
{
	unsigned int i;

	for (i = 0; i < md->count; i++)
		msg_free(&md->msgs[i]);
	free(md->msgs);
	md->msgs = NULL;
	md->count = 0;
}

void shim_maildir_close(struct shim_maildir **_md)
{
	struct shim_maildir *md = *_md;

	if (md == NULL)
		return;
	*_md = NULL;
	shim_maildir_unlock(md);
	msgs_free(md);
	free(md->dir);
	free(md);
}

int shim_maildir_lock(struct shim_maildir *md, char *error, size_t error_size)
{
	struct flock fl;
	char path[SHIM_PATH_MAX];
	int fd, cmd = F_SETLK;

	if (md->lock_fd >= 0)
		return 1;
	if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
				  "%s/%s", md->dir, LOCK_FNAME) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		shim_maildir_error(error, error_size, "open(%s) failed: %s",
				   path, strerror(errno));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
	cmd = F_OFD_SETLK;
#endif
	if (fcntl(fd, cmd, &fl) < 0) {
		int err = errno;

		close(fd);
		if (err == EACCES || err == EAGAIN)
			return 0;
		shim_maildir_error(error, error_size,
				   "fcntl(%s, F_WRLCK) failed: %s", path,
				   strerror(err));
		return -1;
	}
	md->lock_fd = fd;
	return 1;
}

void shim_maildir_unlock(struct shim_maildir *md)
{
	if (md->lock_fd < 0)
		return;
	/* closing the only descriptor releases the lock */
	close(md->lock_fd);
	md->lock_fd = -1;
}

static bool uidl_valid(const char *base)
{
	size_t len = 0;

	for (; base[len] != '\0'; len++) {
		unsigned char c = (unsigned char)base[len];

		if (c < 0x21 || c > 0x7e || len >= SHIM_UIDL_MAX)
			return false;
	}
	return len > 0;
}

static int uidl_digest(const char *base, char hex[DIGEST_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len, i;

	if (EVP_Digest(base, strlen(base), md, &md_len, EVP_sha1(),
		       NULL) != 1 || md_len * 2 != DIGEST_HEX_LEN)
		return -1;
	for (i = 0; i < md_len; i++) {
		hex[i * 2] = digits[md[i] >> 4];
		hex[i * 2 + 1] = digits[md[i] & 0x0f];
	}
	hex[DIGEST_HEX_LEN] = '\0';
	return 0;
}

/* ",W=<n>" in base, Dovecot's RFC 1939 size. */
static bool size_from_name(const char *base, uint64_t *size_r)
{
	const char *p = base, *end;
	unsigned long long n;
	char *num_end;

	while ((p = strstr(p, ",W=")) != NULL) {
		p += 3;
		end = p + strspn(p, "0123456789");
		if (end == p || (*end != ',' && *end != '\0'))
			continue;
		errno = 0;
		n = strtoull(p, &num_end, 10);
		if (errno != 0 || num_end != end)
			continue;
		*size_r = n;
		return true;
	}
	return false;
}

/* new/ -> cur/, adding ":2," when the name has no info part. */
static int scan_new(struct shim_maildir *md, char *error, size_t error_size)
{
	char from[SHIM_PATH_MAX], to[SHIM_PATH_MAX];
	const char *info;
	struct dirent *d;
	DIR *dir;
	int ret = 0;

	if (shim_maildir_path_fmt(from, sizeof(from), error, error_size,
				  "%s/new", md->dir) < 0)
		return -1;
	dir = opendir(from);
	if (dir == NULL) {
		shim_maildir_error(error, error_size, "opendir(%s) failed: %s",
				   from, strerror(errno));
		return -1;
	}
	while (ret == 0 && (errno = 0, d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		info = strchr(d->d_name, ':') == NULL ? ":2," : "";
		if (shim_maildir_path_fmt(from, sizeof(from), error, error_size,
					  "%s/new/%s", md->dir,
					  d->d_name) < 0 ||
		    shim_maildir_path_fmt(to, sizeof(to), error, error_size,
					  "%s/cur/%s%s", md->dir, d->d_name,
					  info) < 0) {
			ret = -1;
		} else if (rename(from, to) < 0 && errno != ENOENT) {
			shim_maildir_error(error, error_size,
					   "rename(%s, %s) failed: %s", from,
					   to, strerror(errno));
			ret = -1;
		}
	}
	if (ret == 0 && errno != 0) {
		shim_maildir_error(error, error_size,
				   "readdir(%s/new) failed: %s", md->dir,
				   strerror(errno));
		ret = -1;
	}
	closedir(dir);
	return ret;
}

static int cmp_arrival(const void *p1, const void *p2)
{
	const struct md_msg *m1 = p1, *m2 = p2;

	if (m1->pub.arrived_at != m2->pub.arrived_at)
		return m1->pub.arrived_at < m2->pub.arrived_at ? -1 : 1;
	return strcmp(m1->pub.base, m2->pub.base);
}

/* The listing keeps the SHIM_MESSAGES_MAX oldest messages: once that
   many are in, md->msgs is a max-heap on (arrived_at, base), so memory
   stays bounded however many files cur/ holds. */
static void heap_sift_down(struct md_msg *heap, unsigned int count,
			   unsigned int i)
{
	struct md_msg tmp;
	unsigned int child;

	while ((child = 2 * i + 1) < count) {
		if (child + 1 < count &&
		    cmp_arrival(&heap[child + 1], &heap[child]) > 0)
			child++;
		if (cmp_arrival(&heap[child], &heap[i]) <= 0)
			break;
		tmp = heap[i];
		heap[i] = heap[child];
		heap[child] = tmp;
		i = child;
	}
}

static int msg_add(struct shim_maildir *md, unsigned int *alloc,
		   const char *fname, time_t mtime)
{
	size_t len = strlen(fname), base_len = strcspn(fname, ":");
	struct md_msg msg;
	unsigned int i;

	memset(&msg, 0, sizeof(msg));
	msg.fname = malloc(len + 1 + base_len + 1);
	if (msg.fname == NULL)
		return -1;
	memcpy(msg.fname, fname, len + 1);
	memcpy(msg.fname + len + 1, fname, base_len);
	msg.fname[len + 1 + base_len] = '\0';
	msg.pub.base = msg.fname + len + 1;
	msg.pub.arrived_at = mtime;

	if (md->count == SHIM_MESSAGES_MAX) {
		/* newer than the newest kept: for a later session */
		if (cmp_arrival(&msg, &md->msgs[0]) >= 0) {
			msg_free(&msg);
			return 0;
		}
		msg_free(&md->msgs[0]);
		md->msgs[0] = msg;
		heap_sift_down(md->msgs, md->count, 0);
		return 0;
	}
	if (md->count == *alloc) {
		unsigned int n = *alloc == 0 ? 64 : *alloc * 2;
		struct md_msg *p;

		if (n > SHIM_MESSAGES_MAX)
			n = SHIM_MESSAGES_MAX;
		p = reallocarray(md->msgs, n, sizeof(*p));
		if (p == NULL) {
			msg_free(&msg);
			return -1;
		}
		md->msgs = p;
		*alloc = n;
	}
	md->msgs[md->count++] = msg;
	if (md->count == SHIM_MESSAGES_MAX) {
		for (i = md->count / 2; i > 0; i--)
			heap_sift_down(md->msgs, md->count, i - 1);
	}
	return 0;
}

static int scan_cur(struct shim_maildir *md, char *error, size_t error_size)
{
	char path[SHIM_PATH_MAX];
	unsigned int alloc = 0;
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int ret = 0;

	if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
				  "%s/cur", md->dir) < 0)
		return -1;
	dir = opendir(path);
	if (dir == NULL) {
		shim_maildir_error(error, error_size, "opendir(%s) failed: %s",
				   path, strerror(errno));
		return -1;
	}
	while (ret == 0 && (errno = 0, d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || d->d_name[0] == ':')
			continue;
		if (fstatat(dirfd(dir), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			shim_maildir_error(error, error_size,
					   "stat(%s/%s) failed: %s", path,
					   d->d_name, strerror(errno));
			ret = -1;
		} else if (S_ISREG(st.st_mode) &&
			   msg_add(md, &alloc, d->d_name, st.st_mtime) < 0) {
			shim_maildir_error(error, error_size,
					   "out of memory listing %s", path);
			ret = -1;
		}
	}
	if (ret == 0 && errno != 0) {
		shim_maildir_error(error, error_size, "readdir(%s) failed: %s",
				   path, strerror(errno));
		ret = -1;
	}
	closedir(dir);
	return ret;
}

static int cmp_base_fname(const void *p1, const void *p2)
{
	const struct md_msg *m1 = p1, *m2 = p2;
	int ret = strcmp(m1->pub.base, m2->pub.base);

	return ret != 0 ? ret : strcmp(m1->fname, m2->fname);
}

/* Two files with one base (a copy left by a crash, a MUA's race) would
   be two messages with one UIDL: only the first name is listed. */
static void drop_duplicates(struct shim_maildir *md)
{
	unsigned int i, n = 0;

	if (md->count == 0)
		return;
	qsort(md->msgs, md->count, sizeof(*md->msgs), cmp_base_fname);
	for (i = 0; i < md->count; i++) {
		if (n > 0 &&
		    strcmp(md->msgs[n - 1].pub.base, md->msgs[i].pub.base) == 0)
			msg_free(&md->msgs[i]);
		else
			md->msgs[n++] = md->msgs[i];
	}
	md->count = n;
}

/* Fill in UIDL and size. Returns 1, 0 when the file vanished, -1. */
static int msg_complete(struct shim_maildir *md, struct md_msg *msg,
			shim_maildir_size_lookup_t *size_lookup, void *context,
			char *error, size_t error_size)
{
	char path[SHIM_PATH_MAX];

	if (uidl_valid(msg->pub.base)) {
		msg->pub.uidl = msg->pub.base;
	} else if (uidl_digest(msg->pub.base, msg->uidl_digest) == 0) {
		msg->pub.uidl = msg->uidl_digest;
	} else {
		shim_maildir_error(error, error_size,
				   "SHA-1 failed for %s/cur/%s", md->dir,
				   msg->fname);
		return -1;
	}
	if ((size_lookup != NULL &&
	     size_lookup(context, msg->pub.base, &msg->pub.size) == 1) ||
	    size_from_name(msg->pub.base, &msg->pub.size))
		return 1;
	if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
				  "%s/cur/%s", md->dir, msg->fname) < 0)
		return -1;
	return shim_msg_size_read(path, &msg->pub.size, error, error_size);
}

int shim_maildir_scan(struct shim_maildir *md,
		      shim_maildir_size_lookup_t *size_lookup, void *context,
		      char *error, size_t error_size)
{
	unsigned int i, n = 0;
	int ret;

	msgs_free(md);
	if (scan_new(md, error, error_size) < 0 ||
	    scan_cur(md, error, error_size) < 0) {
		msgs_free(md);
		return -1;
	}
	drop_duplicates(md);
	if (md->count > 0)
		qsort(md->msgs, md->count, sizeof(*md->msgs), cmp_arrival);
	for (i = 0; i < md->count; i++) {
		ret = msg_complete(md, &md->msgs[i], size_lookup, context,
				   error, error_size);
		if (ret < 0) {
			while (i < md->count)
				msg_free(&md->msgs[i++]);
			md->count = n;
			msgs_free(md);
			return -1;
		}
		if (ret == 0)
			msg_free(&md->msgs[i]);
		else
			md->msgs[n++] = md->msgs[i];
	}
	md->count = n;
	return 0;
}

unsigned int shim_maildir_count(const struct shim_maildir *md)
{
	return md->count;
}

const struct shim_maildir_msg *shim_maildir_msg(const struct shim_maildir *md,
						unsigned int idx)
{
	return idx < md->count ? &md->msgs[idx].pub : NULL;
}

const char *shim_maildir_path(const struct shim_maildir *md)
{
	return md->dir;
}

/* Look msg's base up in cur/ again after its file name went away (flags
   changed by another client). Returns 1 found (msg->renamed set), 0
   gone, -1 error. */
static int msg_refind(struct shim_maildir *md, struct md_msg *msg, char *error,
		      size_t error_size)
{
	size_t base_len = strlen(msg->pub.base);
	char path[SHIM_PATH_MAX], *fname;
	struct dirent *d;
	DIR *dir;
	int ret = 0;

	if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
				  "%s/cur", md->dir) < 0)
		return -1;
	if ((dir = opendir(path)) == NULL) {
		shim_maildir_error(error, error_size, "opendir(%s) failed: %s",
				   path, strerror(errno));
		return -1;
	}
	while (ret == 0 && (d = readdir(dir)) != NULL) {
		if (strncmp(d->d_name, msg->pub.base, base_len) != 0 ||
		    (d->d_name[base_len] != ':' && d->d_name[base_len] != '\0'))
			continue;
		if ((fname = strdup(d->d_name)) == NULL) {
			shim_maildir_error(error, error_size, "out of memory");
			ret = -1;
			break;
		}
		free(msg->renamed);
		msg->renamed = fname;
		ret = 1;
	}
	closedir(dir);
	return ret;
}

int shim_maildir_msg_op(struct shim_maildir *md, unsigned int idx,
			shim_maildir_op_t *op, void *context, const char *what,
			bool removes, char *error, size_t error_size)
{
	struct md_msg *msg;
	char path[SHIM_PATH_MAX];
	unsigned int attempt;
	int ret, err = 0;

	if (idx >= md->count || md->msgs[idx].removed) {
		shim_maildir_error(error, error_size,
				   "message %u of %s: no such message", idx + 1,
				   md->dir);
		return -1;
	}
	msg = &md->msgs[idx];
	for (attempt = 0; attempt < 2; attempt++) {
		if (shim_maildir_path_fmt(path, sizeof(path), error, error_size,
					  "%s/cur/%s", md->dir,
					  msg_fname(msg)) < 0)
			return -1;
		if (op(path, context) == 0) {
			msg->removed = removes;
			return 0;
		}
		err = errno;
		if (err != ENOENT || attempt > 0)
			break;
		ret = msg_refind(md, msg, error, error_size);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			shim_maildir_error(error, error_size,
					   "%s(%s) failed: already removed",
					   what, path);
			return -1;
		}
	}
	shim_maildir_error(error, error_size, "%s(%s) failed: %s", what, path,
			   strerror(err));
	return -1;
}

static int op_unlink(const char *path, void *context)
{
	(void)context;
	return unlink(path);
}

int shim_maildir_expunge(struct shim_maildir *md, unsigned int idx, char *error,
			 size_t error_size)
{
	return shim_maildir_msg_op(md, idx, op_unlink, NULL, "unlink", true,
				   error, error_size);
}

static int op_open(const char *path, void *context)
{
	int *fd_r = context;

	*fd_r = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return *fd_r < 0 ? -1 : 0;
}

int shim_maildir_msg_open(struct shim_maildir *md, unsigned int idx,
			  char *error, size_t error_size)
{
	int fd = -1;

	if (shim_maildir_msg_op(md, idx, op_open, &fd, "open", false, error,
				error_size) < 0)
		return -1;
	return fd;
}
