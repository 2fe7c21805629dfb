/* doveadm pop3-retention flush|queue: the commands that talk to the
   pop3-retention service (pop3-retention-protocol.h) — handing users'
   webhook outboxes over to it, and showing its queue — and their
   blocking client of its socket. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "net.h"
#include "mail-namespace.h"
#include "mail-user.h"
#include "mailbox-list.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "doveadm.h"
#include "doveadm-print.h"
#include "doveadm-settings.h"
#include "doveadm-pop3-retention.h"
#include "pop3-retention-protocol.h"

#include "retention-event.h"
#include "webhook-spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a command waits for the pop3-retention service to answer
   (each answer; a batch is committed with one sync). */
#define SERVICE_TIMEOUT_MSECS (30 * 1000)
/* Outbox events sent to the service per round trip: each is answered
   once the whole batch is durable. */
#define FLUSH_BATCH_MAX 100

/* A blocking client of the pop3-retention service's line protocol
   (pop3-retention-protocol.h), with a deadline on every wait. */

struct service_client {
	char *path;
	int fd;
	buffer_t *input;
	size_t input_pos;
};

static void service_client_close(struct service_client **_client)
{
	struct service_client *client = *_client;

	if (client == NULL)
		return;
	*_client = NULL;
	i_close_fd(&client->fd);
	buffer_free(&client->input);
	i_free(client->path);
	i_free(client);
}

static int service_client_wait(struct service_client *client, short events,
			       const char **error_r)
{
	struct pollfd pfd;
	int ret;

	i_zero(&pfd);
	pfd.fd = client->fd;
	pfd.events = events;
	ret = poll(&pfd, 1, SERVICE_TIMEOUT_MSECS);
	if (ret < 0 && errno != EINTR) {
		*error_r = t_strdup_printf("poll(%s) failed: %m", client->path);
		return -1;
	}
	if (ret == 0) {
		*error_r = t_strdup_printf("%s: no answer in %u s",
					   client->path,
					   SERVICE_TIMEOUT_MSECS / 1000);
		return -1;
	}
	return 0;
}

static int service_client_send(struct service_client *client,
			       const void *data, size_t size,
			       const char **error_r)
{
	const unsigned char *p = data;
	ssize_t ret;

	while (size > 0) {
		ret = write(client->fd, p, size);
		if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (service_client_wait(client, POLLOUT, error_r) < 0)
				return -1;
			continue;
		}
		if (ret <= 0) {
			*error_r = t_strdup_printf("write(%s) failed: %m",
						   client->path);
			return -1;
		}
		p += ret;
		size -= (size_t)ret;
	}
	return 0;
}

/* The next line, without its LF, valid until the next read. */
static int service_client_read_line(struct service_client *client,
				    const char **line_r, const char **error_r)
{
	const unsigned char *data, *nl;
	unsigned char *buf;
	size_t avail;
	ssize_t ret;

	for (;;) {
		data = client->input->data;
		avail = client->input->used - client->input_pos;
		nl = memchr(data + client->input_pos, '\n', avail);
		if (nl != NULL) {
			*line_r = t_strndup(data + client->input_pos,
					    (size_t)(nl - (data +
							   client->input_pos)));
			client->input_pos = (size_t)(nl - data) + 1;
			return 0;
		}
		if (client->input_pos > 0) {
			buffer_delete(client->input, 0, client->input_pos);
			client->input_pos = 0;
		}
		if (client->input->used >= POP3_RETENTION_PROTOCOL_LINE_MAX) {
			*error_r = t_strdup_printf("%s: answer line too long",
						   client->path);
			return -1;
		}
		buf = buffer_append_space_unsafe(client->input, 4096);
		ret = read(client->fd, buf, 4096);
		buffer_set_used_size(client->input, client->input->used -
				     4096 + (ret > 0 ? (size_t)ret : 0));
		if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (service_client_wait(client, POLLIN, error_r) < 0)
				return -1;
			continue;
		}
		if (ret < 0) {
			*error_r = t_strdup_printf("read(%s) failed: %m",
						   client->path);
			return -1;
		}
		if (ret == 0) {
			*error_r = t_strdup_printf("%s: the service closed the "
						   "connection", client->path);
			return -1;
		}
	}
}

/* Connect and exchange the VERSION lines. */
static int service_client_connect(const char *path,
				  struct service_client **client_r,
				  const char **error_r)
{
	struct service_client *client;
	const char *line, *const *args;
	int fd;

	fd = net_connect_unix(path);
	if (fd == -1) {
		*error_r = t_strdup_printf("net_connect_unix(%s) failed: %m",
					   path);
		return -1;
	}
	client = i_new(struct service_client, 1);
	client->fd = fd;
	client->path = i_strdup(path);
	client->input = buffer_create_dynamic(default_pool, 4096);
	if (service_client_send(client, POP3_RETENTION_HANDSHAKE,
				strlen(POP3_RETENTION_HANDSHAKE),
				error_r) < 0 ||
	    service_client_read_line(client, &line, error_r) < 0) {
		service_client_close(&client);
		return -1;
	}
	args = t_strsplit_tabescaped(line);
	if (str_array_length(args) < 4 || strcmp(args[0], "VERSION") != 0 ||
	    strcmp(args[1], POP3_RETENTION_PROTOCOL_NAME) != 0 ||
	    strcmp(args[2], dec2str(POP3_RETENTION_PROTOCOL_MAJOR)) != 0) {
		*error_r = t_strdup_printf("%s is not a compatible "
					   "pop3-retention socket (%s)", path,
					   str_sanitize(line, 80));
		service_client_close(&client);
		return -1;
	}
	*client_r = client;
	return 0;
}

/* flush */

struct flush_file {
	const char *name;
	unsigned int events, acked;
};

struct flush_event {
	unsigned int file_idx;
	const char *id;
	bool answered;
};

/* The files of the outbox's new/ (complete events), oldest first: the
   names start with the creation time. */
static int flush_list(const char *new_dir, ARRAY_TYPE(const_string) *names,
		      const char **error_r)
{
	struct dirent *de;
	DIR *dir;

	dir = opendir(new_dir);
	if (dir == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("opendir(%s) failed: %m", new_dir);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		const char *name = t_strdup(de->d_name);
		array_push_back(names, &name);
	}
	if (closedir(dir) < 0) {
		*error_r = t_strdup_printf("closedir(%s) failed: %m", new_dir);
		return -1;
	}
	array_sort(names, i_strcmp_p);
	return 0;
}

/* The user an outbox line ("<created_ms> TAB <event fields>") names,
   or NULL if the line does not decode (the service refuses it). */
static const char *outbox_line_user(const char *line)
{
	struct retention_event event;
	const char *p = strchr(line, '\t'), *error;

	if (p == NULL ||
	    retention_event_decode(t_strdup_noconst(p + 1), &event,
				   &error) < 0)
		return NULL;
	return event.user;
}

/* Move new/<name> to rejected/<name>: nothing of it is sent, and the
   next flush does not trip over it again. */
static void outbox_set_aside(const char *new_dir, const char *name,
			     const char *why)
{
	const char *dir, *from, *to;

	dir = t_strconcat(new_dir, "/../" POP3_RETENTION_OUTBOX_REJECTED,
			  NULL);
	from = t_strconcat(new_dir, "/", name, NULL);
	to = t_strconcat(dir, "/", name, NULL);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		i_error("pop3-retention: mkdir(%s) failed: %m", dir);
		return;
	}
	if (rename(from, to) < 0) {
		i_error("pop3-retention: rename(%s, %s) failed: %m", from, to);
		return;
	}
	i_error("pop3-retention: %s: set aside in %s, none of its events is "
		"sent", why, to);
}

/* Does every line of an outbox file name the outbox's owner? A user
   who can write the outbox (a shell or SFTP login) must not get events
   about others signed. */
static bool outbox_lines_are_owners(const char *path,
				    const char *const *lines,
				    const char *username, const char **why_r)
{
	const char *user;

	for (; *lines != NULL; lines++) {
		user = outbox_line_user(*lines);
		if (user != NULL && strcmp(user, username) != 0) {
			*why_r = t_strdup_printf(
				"%s holds an event of user %s, not %s", path,
				str_sanitize(user, 64), username);
			return FALSE;
		}
	}
	return TRUE;
}

/* Send the events of one batch of outbox files and unlink each file
   whose every event the service acknowledged (a file with a refused
   event stays whole: the acknowledged ones in it are sent again with
   it, under the same webhook-ids). Counts events in *flushed and
   *kept. Returns 0, or -1 with error_r when the connection failed
   (then *unsent_r counts the events of the batch not acknowledged). */
static int flush_batch(struct service_client *service, const char *new_dir,
		       const char *username, const char *const *names,
		       unsigned int count, unsigned int *flushed,
		       unsigned int *kept, unsigned int *set_aside,
		       unsigned int *unsent_r, const char **error_r)
{
	ARRAY(struct flush_file) files;
	ARRAY(struct flush_event) batch;
	struct flush_file *ff;
	struct flush_event *fe, *found;
	string_t *str = t_str_new(4096);
	const char *path, *line, *const *args, *const *lines, *error, *why;
	unsigned int i, seq = 0, waiting = 0;
	int ret;

	*unsent_r = 0;
	t_array_init(&files, count);
	t_array_init(&batch, count);
	for (i = 0; i < count; i++) {
		path = t_strconcat(new_dir, "/", names[i], NULL);
		ret = pop3_retention_outbox_read(path, &lines, &error);
		if (ret == 0)
			continue; /* flushed by someone else meanwhile */
		if (ret == -2 ||
		    (ret > 0 && !outbox_lines_are_owners(path, lines, username,
							 &why))) {
			outbox_set_aside(new_dir, names[i],
					 ret == -2 ? error : why);
			(*set_aside)++;
			continue;
		}
		if (ret < 0) {
			/* left for the admin to look at */
			i_error("pop3-retention: %s", error);
			(*kept)++;
			continue;
		}
		ff = array_append_space(&files);
		ff->name = names[i];
		for (; *lines != NULL; lines++) {
			fe = array_append_space(&batch);
			fe->file_idx = array_count(&files) - 1;
			fe->id = dec2str(++seq);
			str_printfa(str, "E\t%s\t%s\n", fe->id, *lines);
			ff->events++;
			waiting++;
		}
	}
	if (waiting == 0)
		return 0;
	if (service_client_send(service, str_data(str), str_len(str),
				error_r) < 0) {
		*unsent_r = waiting;
		return -1;
	}

	while (waiting > 0) {
		if (service_client_read_line(service, &line, error_r) < 0) {
			*unsent_r = waiting;
			return -1;
		}
		args = t_strsplit_tabescaped(line);
		if (args[0] == NULL || args[1] == NULL ||
		    (strcmp(args[0], "A") != 0 && strcmp(args[0], "R") != 0))
			continue;
		found = NULL;
		array_foreach_modifiable(&batch, fe) {
			if (!fe->answered && strcmp(fe->id, args[1]) == 0) {
				found = fe;
				break;
			}
		}
		if (found == NULL)
			continue;
		fe = found;
		fe->answered = TRUE;
		waiting--;
		if (args[0][0] == 'R') {
			i_warning("pop3-retention: The service refused event "
				  "%s (%s): kept in the outbox", fe->id,
				  args[2] != NULL ? args[2] : "");
			(*kept)++;
			continue;
		}
		ff = array_idx_modifiable(&files, fe->file_idx);
		ff->acked++;
		(*flushed)++;
	}
	array_foreach_modifiable(&files, ff) {
		if (ff->acked != ff->events)
			continue;
		/* durable in the service's spool: the copy here goes */
		path = t_strconcat(new_dir, "/", ff->name, NULL);
		if (unlink(path) < 0 && errno != ENOENT) {
			/* it will be sent again; receivers dedupe on the
			   webhook-id */
			i_error("pop3-retention: unlink(%s) failed: %m", path);
		}
	}
	return 0;
}

/* Events in the outbox files names[0..count) (unreadable files count
   one), for the "kept" column when they are not sent. */
static unsigned int flush_count_events(const char *new_dir,
				       const char *const *names,
				       unsigned int count)
{
	const char *const *lines, *error;
	unsigned int i, events = 0;
	int ret;

	for (i = 0; i < count; i++) T_BEGIN {
		ret = pop3_retention_outbox_read(t_strconcat(new_dir, "/",
							     names[i], NULL),
						 &lines, &error);
		if (ret < 0)
			events++;
		else if (ret > 0)
			events += str_array_length(lines);
	} T_END;
	return events;
}

static void flush_print_row(unsigned int flushed, unsigned int kept)
{
	doveadm_print_num(flushed);
	doveadm_print_num(kept);
}

static int cmd_flush_run(struct doveadm_mail_cmd_context *ctx,
			 struct mail_user *user)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	ARRAY_TYPE(const_string) names;
	const char *outbox_dir, *new_dir, *socket_path, *error;
	const char *const *all;
	unsigned int i, count, n, flushed = 0, kept = 0, set_aside = 0;
	unsigned int unsent;
	int ret = 0, fd;

	doveadm_pop3_retention_cmd_row_begin(pctx, user);
	outbox_dir = t_strconcat(mailbox_list_get_root_forced(
		ns->list, MAILBOX_LIST_PATH_TYPE_INDEX), "/",
		POP3_RETENTION_OUTBOX_DIR, NULL);
	new_dir = t_strconcat(outbox_dir, "/new", NULL);
	t_array_init(&names, 32);
	if (flush_list(new_dir, &names, &error) < 0) {
		i_error("pop3-retention: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		flush_print_row(0, 0);
		return -1;
	}
	all = array_get(&names, &count);
	if (count == 0) {
		flush_print_row(0, 0);
		return 0;
	}

	socket_path = t_strconcat(user->set->base_dir, "/",
				  POP3_RETENTION_SOCKET_NAME, NULL);
	if (pctx->service == NULL &&
	    service_client_connect(socket_path, &pctx->service, &error) < 0) {
		i_error("pop3-retention: The pop3-retention service is "
			"unreachable (%s): nothing flushed, the %u outbox "
			"file(s) stay in %s", error, count, outbox_dir);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		flush_print_row(0, flush_count_events(new_dir, all, count));
		return -1;
	}
	for (i = 0; i < count; i += n) {
		n = I_MIN(count - i, FLUSH_BATCH_MAX);
		T_BEGIN {
			ret = flush_batch(pctx->service, new_dir,
					  user->username, all + i, n,
					  &flushed, &kept, &set_aside,
					  &unsent, &error);
			if (ret < 0)
				error = p_strdup(ctx->pool, error);
		} T_END;
		if (ret < 0) {
			/* what was not sent yet stays too */
			kept += unsent +
				flush_count_events(new_dir, all + i + n,
						   count - i - n);
			i_error("pop3-retention: Flushing the outbox %s "
				"failed: %s; %u event(s) not flushed stay "
				"there", outbox_dir, error, kept);
			service_client_close(&pctx->service);
			doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
			break;
		}
	}
	if (flushed > 0) {
		/* the unlinks, once for the user: losing them in a crash
		   only means sending those events again */
		fd = open(new_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd != -1) {
			(void)fsync(fd);
			i_close_fd(&fd);
		}
	}
	if ((kept > 0 || set_aside > 0) && ret == 0)
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
	flush_print_row(flushed, kept);
	/* a connection per user: the service drops idle ones */
	service_client_close(&pctx->service);
	return ret < 0 || kept > 0 || set_aside > 0 ? -1 : 0;
}

static void cmd_flush_init(struct pop3_retention_cmd_context *pctx ATTR_UNUSED)
{
	doveadm_print_header("flushed", "flushed",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("kept", "kept",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static void cmd_flush_deinit(struct doveadm_mail_cmd_context *ctx)
{
	struct pop3_retention_cmd_context *pctx =
		container_of(ctx, struct pop3_retention_cmd_context, ctx);

	service_client_close(&pctx->service);
}

struct doveadm_mail_cmd_context *doveadm_pop3_retention_flush_alloc(void)
{
	struct pop3_retention_cmd_context *pctx;

	pctx = doveadm_pop3_retention_cmd_alloc(TRUE);
	pctx->init = cmd_flush_init;
	pctx->ctx.v.run = cmd_flush_run;
	pctx->ctx.v.deinit = cmd_flush_deinit;
	return &pctx->ctx;
}

/* queue */

static void queue_print_headers(void)
{
	static const char *const numbers[] = {
		"pending", "retrying", "dead_lettered", "corrupt",
		"oldest_secs", "delivered", "failed", NULL
	};
	unsigned int i;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	for (i = 0; numbers[i] != NULL; i++) {
		doveadm_print_header(numbers[i], numbers[i],
				     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	}
	doveadm_print_header_simple("disabled");
	doveadm_print_header_simple("state");
}

/* Ask the service. Returns 0 with the Q line's fields, -1 with error_r
   (unreachable). */
static int queue_ask(const char *socket_path, const char *const **args_r,
		     const char **error_r)
{
	struct service_client *service;
	const char *line;
	int ret;

	if (service_client_connect(socket_path, &service, error_r) < 0)
		return -1;
	ret = service_client_send(service, "Q\n", 2, error_r);
	while (ret == 0) {
		ret = service_client_read_line(service, &line, error_r);
		if (ret == 0 && line[0] == 'Q' && line[1] == '\t') {
			*args_r = t_strsplit_tabescaped(line + 2);
			break;
		}
	}
	service_client_close(&service);
	if (ret == 0 && str_array_length(*args_r) < 9) {
		*error_r = t_strdup_printf("%s: malformed Q answer",
					   socket_path);
		return -1;
	}
	return ret;
}

/* The service is down: count the spool's files without touching them. */
static int queue_read_spool(const char *spool_dir, const char **error_r)
{
	struct webhook_spool *spool;
	struct webhook_spool_counts counts;
	int64_t oldest = -1;

	i_zero(&counts);
	counts.oldest_created_ms = -1;
	/* a spool that does not exist yet is empty */
	if (access(spool_dir, F_OK) == 0 || errno != ENOENT) {
		spool = webhook_spool_create(spool_dir,
					     WEBHOOK_SPOOL_READ_ONLY);
		if (spool == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		if (webhook_spool_open(spool) < 0) {
			*error_r = t_strdup(webhook_spool_error(spool));
			webhook_spool_destroy(&spool);
			return -1;
		}
		webhook_spool_counts(spool, &counts);
		webhook_spool_destroy(&spool);
	}
	if (counts.pending > 0 && counts.oldest_created_ms >= 0) {
		oldest = (int64_t)time(NULL) - counts.oldest_created_ms / 1000;
		if (oldest < 0)
			oldest = 0;
	}
	doveadm_print_num(counts.pending);
	doveadm_print_num(counts.retrying);
	doveadm_print_num(counts.dead);
	doveadm_print_num(counts.corrupt);
	doveadm_print(oldest < 0 ? "-" : dec2str(oldest));
	doveadm_print("-");
	doveadm_print("-");
	doveadm_print("-");
	doveadm_print("unreachable");
	return 0;
}

/* Drop files in dir (pop3-retention-protocol.h): events the service
   has not taken yet, or taken and not removed yet. */
static void queue_warn_drop_files(const char *dir, const char *why)
{
	struct dirent *d;
	unsigned int count = 0;
	DIR *dirp;

	dirp = opendir(dir);
	if (dirp == NULL)
		return;
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] != '.')
			count++;
	}
	(void)closedir(dirp);
	if (count > 0) {
		i_warning("pop3-retention: %u drop file(s) in %s wait %s",
			  count, dir, why);
	}
}

void doveadm_pop3_retention_queue(struct doveadm_cmd_context *cctx ATTR_UNUSED)
{
	const struct master_service_settings *mset =
#if DOVECOT_PREREQ(2, 4, 0)
		master_service_get_service_settings(master_service);
#else
		master_service_settings_get(master_service);
#endif
	const char *socket_path, *spool_dir, *drop_dir, *const *args, *error;
	const char *error2;
	unsigned int i;

	socket_path = t_strconcat(doveadm_settings->base_dir, "/",
				  POP3_RETENTION_SOCKET_NAME, NULL);
	drop_dir = t_strconcat(doveadm_settings->base_dir, "/",
			       POP3_RETENTION_DROP_DIR, NULL);
	spool_dir = t_strconcat(mset->state_dir, "/",
				POP3_RETENTION_SPOOL_DIR, NULL);
	queue_print_headers();
	if (queue_ask(socket_path, &args, &error) == 0) {
		/* pending retrying dead corrupt oldest disabled delivered
		   failed dead-lettered [in-flight state] */
		for (i = 0; i < 5; i++) {
			doveadm_print(strcmp(args[i], "-1") == 0 ?
				      "-" : args[i]);
		}
		doveadm_print(args[6]);
		doveadm_print(args[7]);
		doveadm_print(strcmp(args[5], "0") == 0 ? "no" : "yes");
		doveadm_print(args[9] != NULL && args[10] != NULL ?
			      args[10] : "delivering");
		if (args[9] != NULL && args[10] != NULL &&
		    strcmp(args[10], "standby") == 0) {
			queue_warn_drop_files(drop_dir, "for the service to "
					      "take the spool over");
		}
		return;
	}
	i_warning("pop3-retention: The pop3-retention service is unreachable "
		  "(%s): counts read from the spool %s", error, spool_dir);
	if (queue_read_spool(spool_dir, &error2) < 0) {
		i_error("pop3-retention: Reading the spool failed: %s", error2);
		doveadm_exit_code = EX_TEMPFAIL;
		return;
	}
	queue_warn_drop_files(drop_dir, "for the service");
	doveadm_exit_code = EX_TEMPFAIL;
}

