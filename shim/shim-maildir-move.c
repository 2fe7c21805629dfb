/* Moving a message into a Maildir++ folder (move: of a retention
   policy). See shim-maildir.h.

   The file is linked into the folder's cur/, the folder's cur/ is
   fsynced, and only then is the original unlinked: a crash in between
   leaves two copies, never none, and the retry finds the link (the same
   inode) and completes the unlink. Where the filesystem has no hard
   links, rename() is the same guarantee in one step. */

#include "pop3-retention-config.h"
#include "shim-maildir.h"
#include "shim-maildir-private.h"
#include "shim-params.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A folder name of move: ("Archive/2024"), before the Maildir++ dots */
#define FOLDER_NAME_MAX 255

/* "Archive/2024" -> <dir>/.Archive.2024 */
static int folder_path(const struct shim_maildir *md, const char *folder,
		       char *path, size_t size, char *error, size_t error_size)
{
	const char *dir = shim_maildir_path(md);
	size_t i, len = strlen(folder), dir_len = strlen(dir);
	char c;

	if (len == 0 || len > FOLDER_NAME_MAX || folder[0] == '.' ||
	    folder[0] == '/' || folder[len - 1] == '/' ||
	    folder[len - 1] == '.' || strstr(folder, "..") != NULL ||
	    strstr(folder, "//") != NULL || strstr(folder, "/.") != NULL ||
	    strstr(folder, "./") != NULL) {
		shim_maildir_error(error, error_size,
				   "invalid folder name \"%.*s\"",
				   FOLDER_NAME_MAX, folder);
		return -1;
	}
	if (dir_len + 2 + len + 1 > size) {
		shim_maildir_error(error, error_size, "path too long: %s/.%s",
				   dir, folder);
		return -1;
	}
	memcpy(path, dir, dir_len);
	path[dir_len] = '/';
	path[dir_len + 1] = '.';
	for (i = 0; i < len; i++) {
		c = folder[i];
		if ((unsigned char)c < 0x20 || c == 0x7f) {
			shim_maildir_error(error, error_size,
					   "invalid folder name: control "
					   "character in %s/.%s",
					   dir, folder);
			return -1;
		}
		path[dir_len + 2 + i] = c == '/' ? '.' : c;
	}
	path[dir_len + 2 + len] = '\0';
	return 0;
}

static int folder_create(const char *path, char *error, size_t error_size)
{
	char marker[SHIM_PATH_MAX];
	int fd;

	if (shim_maildir_mkdirs(path, true, error, error_size) < 0 ||
	    shim_maildir_path_fmt(marker, sizeof(marker), error, error_size,
				  "%s/maildirfolder", path) < 0)
		return -1;
	fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		shim_maildir_error(error, error_size, "open(%s) failed: %s",
				   marker, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int fsync_dir(const char *path)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	if (close(fd) < 0)
		ret = -1;
	return ret;
}

static bool same_file(const char *path1, const char *path2)
{
	struct stat st1, st2;

	return lstat(path1, &st1) == 0 && lstat(path2, &st2) == 0 &&
	       st1.st_dev == st2.st_dev && st1.st_ino == st2.st_ino;
}

struct move_context {
	/* <folder>/cur */
	char cur[SHIM_PATH_MAX];
};

/* Link src into the folder, make that durable, then unlink src: a crash
   leaves two copies, never none. A retry after such a crash finds the
   link in place (the same inode) and completes the unlink. */
static int op_move(const char *src, void *context)
{
	struct move_context *ctx = context;
	char dst[SHIM_PATH_MAX];
	int ret;

	ret = snprintf(dst, sizeof(dst), "%s/%s", ctx->cur,
		       strrchr(src, '/') + 1);
	if (ret < 0 || (size_t)ret >= sizeof(dst)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (link(src, dst) < 0) {
		int err = errno;

		if (err == EEXIST && same_file(src, dst)) {
			/* completed below */
		} else if (err == EPERM || err == EOPNOTSUPP) {
			/* no hard links here: rename is atomic too */
			if (access(dst, F_OK) == 0) {
				errno = EEXIST;
				return -1;
			}
			if (rename(src, dst) < 0)
				return -1;
			return fsync_dir(ctx->cur);
		} else {
			errno = err;
			return -1;
		}
	}
	if (fsync_dir(ctx->cur) < 0)
		return -1;
	if (unlink(src) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

int shim_maildir_move(struct shim_maildir *md, unsigned int idx,
		      const char *folder, char *error, size_t error_size)
{
	struct move_context ctx;
	char path[SHIM_PATH_MAX], what[SHIM_PATH_MAX + 16];

	if (folder_path(md, folder, path, sizeof(path), error,
			error_size) < 0 ||
	    folder_create(path, error, error_size) < 0 ||
	    shim_maildir_path_fmt(ctx.cur, sizeof(ctx.cur), error, error_size,
				  "%s/cur", path) < 0)
		return -1;
	snprintf(what, sizeof(what), "move into %s", path);
	return shim_maildir_msg_op(md, idx, op_move, &ctx, what, true, error,
				   error_size);
}
