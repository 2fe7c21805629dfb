/* libFuzzer target: the spool's record and segment reader
   (webhook-spool-record.c, webhook-spool-segment.c), through its real
   read path: the input is written as a segment file and its outcome
   log in a fresh spool directory, which webhook_spool_open() then reads
   as a status command would (READ_ONLY) and as the owner (verify,
   repair, quarantine, replay the log, index); every event is checked
   out and given an outcome, and the spool is opened once more.

   Input: the segment's bytes, then optionally the line "--log--" and
   the outcome log's bytes. Invariants: every event checked out has a
   valid id and its body; a repaired spool opens again with nothing
   more to quarantine and the same events pending. */

#define _GNU_SOURCE /* nftw(), memmem() */

#include "pop3-retention-config.h"
#include "webhook-spool.h"
#include "fuzz-tree.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEPARATOR "--log--\n"
#define SEG_BASE "1765000000000-1-1"
/* events created before it are due; a retry is due after it */
#define NOW_MS (INT64_MAX / 2)
#define CHECKOUTS_MAX 4096
#define HELD_MAX 64

/* tmpfs: the spool fdatasync()s, which a disk makes slow */
static char top_dir[] = "/dev/shm/fuzz-spool.XXXXXX";
static char spool_dir[64];

static void remove_spool(void)
{
	fuzz_tree_remove(spool_dir);
}

static void remove_top_dir(void)
{
	fuzz_tree_remove(top_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(top_dir) == NULL)
		abort();
	atexit(remove_top_dir);
	snprintf(spool_dir, sizeof(spool_dir), "%s/spool", top_dir);
	return 0;
}

static void write_file(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/seg/%s", spool_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) ||
	    close(fd) < 0)
		abort();
}

static void log_nothing(void *context, enum webhook_log_level level,
			const char *message)
{
	(void)context;
	(void)level;
	if (message == NULL)
		abort();
}

static struct webhook_spool *open_spool(unsigned int flags)
{
	struct webhook_spool *spool = webhook_spool_create(spool_dir, flags);

	if (spool == NULL)
		abort();
	webhook_spool_set_log(spool, log_nothing, NULL);
	if (webhook_spool_open(spool) < 0) {
		fprintf(stderr, "open: %s\n", webhook_spool_error(spool));
		abort();
	}
	/* as the delivery engine does for a schedule "5s ..." */
	if ((flags & WEBHOOK_SPOOL_READ_ONLY) == 0)
		webhook_spool_set_first_delay(spool, 5000);
	return spool;
}

static void check_event(const struct webhook_spool_event *event)
{
	size_t len = strlen(event->id);

	if (len == 0 || len >= WEBHOOK_SPOOL_ID_MAX ||
	    strspn(event->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		   "qrstuvwxyz0123456789_-") != len ||
	    event->body_len == 0 || event->body_len > WEBHOOK_SPOOL_BODY_MAX ||
	    event->body[event->body_len] != '\0')
		abort();
}

/* Check every due event out and give each an outcome in turn. */
static void drain(struct webhook_spool *spool)
{
	struct webhook_spool_event *event, *held[HELD_MAX];
	unsigned int i, nheld = 0;

	for (i = 0; i < CHECKOUTS_MAX; i++) {
		if (webhook_spool_checkout(spool, NOW_MS, &event) != 1)
			break;
		check_event(event);
		switch (i % 4) {
		case 0:
			(void)webhook_spool_delivered(spool, &event);
			break;
		case 1:
			(void)webhook_spool_reschedule(spool, &event,
						       NOW_MS + 1000);
			break;
		case 2:
			(void)webhook_spool_dead_letter(spool, &event);
			break;
		default:
			if (nheld < HELD_MAX)
				held[nheld++] = event;
			else
				(void)webhook_spool_delivered(spool, &event);
			break;
		}
		if (event != NULL)
			abort();
	}
	while (nheld > 0)
		webhook_spool_release(spool, &held[--nheld]);
	if (webhook_spool_sync(spool) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webhook_spool_counts counts, counts2;
	struct webhook_spool *spool;
	const uint8_t *sep;
	char path[128];

	remove_spool();
	if (mkdir(spool_dir, 0700) < 0)
		abort();
	/* as an owner made them: a status command creates nothing */
	for (unsigned int i = 0; i < 3; i++) {
		static const char *const subdirs[] = { "seg", "dead",
						       "corrupt" };

		snprintf(path, sizeof(path), "%s/%s", spool_dir, subdirs[i]);
		if (mkdir(path, 0700) < 0)
			abort();
	}
	sep = memmem(data, size, SEPARATOR, sizeof(SEPARATOR) - 1);
	write_file(SEG_BASE ".seg", data, sep != NULL ?
		   (size_t)(sep - data) : size);
	if (sep != NULL) {
		sep += sizeof(SEPARATOR) - 1;
		write_file(SEG_BASE ".log", sep, size - (size_t)(sep - data));
	}

	spool = open_spool(WEBHOOK_SPOOL_READ_ONLY);
	webhook_spool_counts(spool, &counts);
	webhook_spool_destroy(&spool);

	spool = open_spool(0);
	drain(spool);
	webhook_spool_counts(spool, &counts);
	webhook_spool_destroy(&spool);

	spool = open_spool(0);
	webhook_spool_counts(spool, &counts2);
	if (counts2.corrupt != counts.corrupt ||
	    counts2.pending != counts.pending ||
	    counts2.dead != counts.dead)
		abort();
	webhook_spool_destroy(&spool);
	return 0;
}
