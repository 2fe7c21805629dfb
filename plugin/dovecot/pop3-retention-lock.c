/* The retention lock of a user's maildrop (see the header). */

#include "lib.h"
#include "file-lock.h"
#include "mail-namespace.h"
#include "mail-storage-settings.h"
#include "mailbox-list.h"
#include "mail-user.h"
#include "pop3-retention-compat.h"
#include "pop3-retention-lock.h"

#include <fcntl.h>
#include <unistd.h>

static int lock_path(struct mail_user *user, const char **path_r,
		     const char **error_r)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	enum mailbox_list_path_type type;
	const char *dir;

	if (ns == NULL) {
		*error_r = "No INBOX namespace";
		return -1;
	}
	if (mailbox_list_get_root_path(ns->list, MAILBOX_LIST_PATH_TYPE_INDEX,
				       &dir))
		type = MAILBOX_LIST_PATH_TYPE_INDEX;
	else if (mailbox_list_get_root_path(ns->list,
					    MAILBOX_LIST_PATH_TYPE_DIR, &dir))
		type = MAILBOX_LIST_PATH_TYPE_DIR;
	else {
		*error_r = "The storage has no root or index directory for "
			   "the retention lock";
		return -1;
	}
	if (mailbox_list_mkdir_root(ns->list, dir, type) < 0) {
		*error_r = t_strdup_printf(
			"Couldn't create the directory %s: %s", dir,
			mailbox_list_get_last_internal_error(ns->list, NULL));
		return -1;
	}
	*path_r = t_strconcat(dir, "/", POP3_RETENTION_LOCK_FNAME, NULL);
	return 0;
}

int pop3_retention_lock(struct mail_user *user, bool exclusive,
			unsigned int timeout_secs, struct file_lock **lock_r,
			const char **error_r)
{
	const struct mail_storage_settings *mail_set =
		pop3_retention_user_mail_set(user);
	struct file_lock_settings set;
	const char *path;
	int fd, ret;

	*lock_r = NULL;
	if (lock_path(user, &path, error_r) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	i_zero(&set);
	set.lock_method = mail_set->parsed_lock_method ==
				  FILE_LOCK_METHOD_DOTLOCK ?
			  FILE_LOCK_METHOD_FCNTL : mail_set->parsed_lock_method;
	set.close_on_free = TRUE;
	if (exclusive)
		ret = file_try_lock(fd, path, F_WRLCK, &set, lock_r, error_r);
	else {
		ret = file_wait_lock(fd, path, F_RDLCK, &set, timeout_secs,
				     lock_r, error_r);
	}
	if (ret <= 0)
		i_close_fd(&fd);
	return ret;
}
