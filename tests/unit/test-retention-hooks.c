/* Whole POP3 sessions driven through the hooks by the in-memory host:
   login (session begin), RETR/TOP/DELE/RSET, QUIT or a dropped
   connection, sweeps. Each row is a script and the maildrop and events
   it must leave behind. */

#include "pop3-retention-config.h"
#include "memhost.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test-table.h"

#define DAY 86400

struct scenario {
	const char *name;
	/* "key=value;key=value" without the pop3_retention_ prefix */
	const char *settings;
	/* d@T deliver | login@T | retr:N@T | top:N@T | dele:N | rset |
	   quit@T | drop | sweep@T | list=U,U (listing by uid) | lose:U
	   (state of uid U lost) | failrm:U (removal of U fails) |
	   failcommit (the next QUIT's commit fails) | killbefore /
	   killafter (the next QUIT's process is killed right before /
	   right after its commit) */
	const char *script;
	/* what stays on disk: "1 2h 3" (h: hidden) */
	const char *disk;
	/* events in order: type:uid[*][(reason)], * = first_retrieval */
	const char *events;
};

static const struct scenario scenarios[] = {
	{ "off: RFC 1939 DELE removes at QUIT", "",
	  "d@1 d@1 login@10 retr:1@11 dele:2 quit@12", "1",
	  "retrieved:1* deleted:2(dele)" },
	{ "off: no QUIT, nothing removed", "",
	  "d@1 d@1 login@10 dele:1 dele:2 drop", "1 2", "" },
	{ "off: RSET undoes DELE", "",
	  "d@1 login@10 dele:1 rset quit@11", "1", "" },
	{ "delete-after-download: retrieved removed without DELE",
	  "policy=delete-after-download",
	  "d@1 d@1 login@10 retr:1@11 quit@12", "2",
	  "retrieved:1* expired:1(downloaded)" },
	{ "delete-after-download: dropped connection keeps everything",
	  "policy=delete-after-download",
	  "d@1 login@10 retr:1@11 drop login@20 list=1 quit@21", "1",
	  "retrieved:1*" },
	{ "delete-after-download: TOP is not a download",
	  "policy=delete-after-download",
	  "d@1 login@10 top:1@11 quit@12", "1", "" },
	{ "delete-after-download: TOP counts with top_counts",
	  "policy=delete-after-download;top_counts=yes",
	  "d@1 login@10 top:1@11 quit@12", "",
	  "retrieved:1* expired:1(downloaded)" },
	{ "keep: removed at the first login after the window",
	  "policy=keep;keep=30d",
	  "d@1 login@10 retr:1@100 quit@101 login@200 list=1 drop "
	  "login@2592099 list=1 drop login@2592100 list= quit@2592101",
	  "", "retrieved:1* expired:1(keep-expired)" },
	{ "keep: the window starts at the first download only",
	  "policy=keep;keep=1d",
	  "d@1 login@10 retr:1@100 quit@101 login@50000 retr:1@50000 "
	  "quit@50001 login@86500 list= quit@86501", "",
	  "retrieved:1* retrieved:1 expired:1(keep-expired)" },
	{ "keep: retrieval without QUIT still starts the clock",
	  "policy=keep;keep=1d",
	  "d@1 login@10 retr:1@100 drop sweep@86500", "",
	  "retrieved:1* expired:1(keep-expired)" },
	{ "keep: DELE of a retrieved message hides it until the window ends",
	  "policy=keep;keep=1d",
	  "d@1 login@10 retr:1@100 dele:1 quit@101 login@200 list= quit@201 "
	  "sweep@86600", "", "retrieved:1* retained:1(keep) "
	  "expired:1(retention-ended)" },
	{ "keep: DELE of a never retrieved message is a plain DELE",
	  "policy=keep;keep=1d", "d@1 login@10 dele:1 quit@11", "",
	  "deleted:1(dele)" },
	{ "keep: lost state delays, never hastens",
	  "policy=keep;keep=1d",
	  "d@1 login@10 retr:1@100 quit@101 lose:1 sweep@90000 "
	  "login@90000 list=1 retr:1@90000 quit@90001 sweep@176399 "
	  "sweep@176400", "",
	  "retrieved:1* retrieved:1 expired:1(keep-expired)" },
	{ "floor: DELE hides, removal once the floor passes",
	  "min=7d",
	  "d@1 login@10 dele:1 quit@11 login@20 list= quit@21 "
	  "sweep@604800 sweep@604801", "",
	  "retained:1(min) expired:1(retention-ended)" },
	{ "floor: the floor does not hide what nobody deleted",
	  "min=7d", "d@1 login@10 retr:1@11 quit@12 login@20 list=1 drop",
	  "1", "retrieved:1*" },
	{ "ceiling: old messages removed at login, retrieved or not",
	  "max=30d", "d@1 d@2000000 login@2592001 list=2 quit@2592002", "2",
	  "expired:1(max-exceeded)" },
	{ "hold: DELE hides, nothing is removed even past the ceiling",
	  "hold=yes;max=1d;policy=delete-after-download",
	  "d@1 login@10 retr:1@11 dele:1 quit@12 sweep@999999 login@999999 "
	  "list= quit@1000000", "1h", "retrieved:1* retained:1(hold)" },
	{ "hold lifted: retained messages go at the next sweep",
	  "hold=yes", "d@1 login@10 dele:1 quit@11", "1h",
	  "retained:1(hold)" },
	{ "dry run: decides, logs and notifies, changes nothing",
	  "policy=delete-after-download;dry_run=yes",
	  "d@1 d@1 login@10 retr:1@11 dele:2 quit@12", "1 2",
	  "retrieved:1* expired:1(downloaded) deleted:2(dele)" },
	{ "visible_since: older messages are not listed and not removed",
	  "visible_since=1970-01-02;policy=delete-after-download",
	  "d@1 d@90000 login@100000 list=2 retr:1@100001 quit@100002", "1",
	  "retrieved:2* expired:2(downloaded)" },
	{ "failed removal keeps the message and the rest proceeds", "",
	  "d@1 d@1 failrm:1 login@10 dele:1 dele:2 quit@11", "1",
	  "deleted:2(dele)" },
	{ "events filter: only deletions are sent",
	  "webhook_events=message.deleted",
	  "d@1 d@1 login@10 retr:1@11 dele:2 quit@12", "1",
	  "deleted:2(dele)" },
	{ "failed QUIT commit: nothing removed, no removal event",
	  "policy=delete-after-download",
	  "d@1 d@1 login@10 retr:1@11 dele:2 failcommit quit@12", "1 2",
	  "retrieved:1*" },
	{ "failed QUIT commit: the next QUIT reports what it removes",
	  "min=1d",
	  "d@1 d@1 login@10 dele:1 dele:2 failcommit quit@11 login@20 "
	  "dele:1 quit@21 sweep@86401", "2",
	  "retained:1(min) expired:1(retention-ended)" },
	{ "killed after the QUIT commit: the next login reports the removals",
	  "policy=delete-after-download",
	  "d@1 d@1 d@1 login@10 retr:1@11 dele:2 killafter quit@12 "
	  "login@20 list=3 quit@21", "3",
	  "retrieved:1* expired:1(downloaded) deleted:2(dele)" },
	{ "killed after the QUIT commit: retains are reported too", "min=1d",
	  "d@1 d@1 login@10 dele:1 killafter quit@11 login@20 list=2 quit@21",
	  "1h 2", "retained:1(min)" },
	{ "killed before the QUIT commit: nothing removed, nothing reported",
	  "policy=delete-after-download",
	  "d@1 d@1 login@10 retr:1@11 dele:2 killbefore quit@12 login@20 "
	  "list=1,2 quit@21", "1 2", "retrieved:1*" },
	{ "killed after the QUIT commit: a sweep reports what it removes",
	  "",
	  "d@1 d@1 login@10 dele:1 killafter quit@11 sweep@20", "2",
	  "deleted:1(dele)" },
};

static struct retention_settings
settings_parse(const char *settings, unsigned int row, const char *name)
{
	struct retention_settings set;
	char buf[512], *item, *save = NULL;

	retention_settings_init(&set);
	snprintf(buf, sizeof(buf), "%s", settings);
	for (item = strtok_r(buf, ";", &save); item != NULL;
	     item = strtok_r(NULL, ";", &save)) {
		char key[128], *eq = strchr(item, '=');

		assert_non_null(eq);
		*eq = '\0';
		snprintf(key, sizeof(key), "pop3_retention_%s", item);
		if (retention_settings_set(&set, key, eq + 1) < 0)
			fail_msg("row %u (%s): %s", row, name, set.error);
	}
	if (retention_settings_check(&set) < 0)
		fail_msg("row %u (%s): %s", row, name, set.error);
	return set;
}

static struct retention_settings settings_from(const struct scenario *sc,
					       unsigned int row)
{
	return settings_parse(sc->settings, row, sc->name);
}

static time_t at_time(const char *tok)
{
	const char *at = strchr(tok, '@');

	return at == NULL ? 0 : (time_t)strtoll(at + 1, NULL, 10);
}

static unsigned int arg_num(const char *tok)
{
	const char *colon = strchr(tok, ':');

	return colon == NULL ? 0 : (unsigned int)strtoul(colon + 1, NULL, 10);
}

static void check_listing(struct memhost *host, const char *want,
			  unsigned int row, const struct scenario *sc)
{
	char got[256] = "";
	size_t len = 0;
	unsigned int i;

	for (i = 0; i < host->listing_count; i++) {
		unsigned int m = host->session_map[host->listing[i]];

		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%u",
					i == 0 ? "" : ",",
					host->messages[m].uid);
	}
	if (strcmp(got, want) != 0)
		fail_msg("row %u (%s): listing '%s', want '%s'", row, sc->name,
			 got, want);
}

static void run_script(struct memhost *host, const struct scenario *sc,
		       unsigned int row)
{
	char buf[512], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", sc->script);
	for (tok = strtok_r(buf, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		time_t t = at_time(tok);

		if (strncmp(tok, "d@", 2) == 0)
			(void)memhost_deliver(host, t);
		else if (strncmp(tok, "login@", 6) == 0)
			assert_int_equal(memhost_login(host, t), 0);
		else if (strncmp(tok, "retr:", 5) == 0) {
			if (memhost_retr(host, arg_num(tok), t) < 0)
				fail_msg("row %u (%s): %s failed", row,
					 sc->name, tok);
		} else if (strncmp(tok, "top:", 4) == 0)
			assert_int_equal(memhost_top(host, arg_num(tok), t), 0);
		else if (strncmp(tok, "dele:", 5) == 0) {
			if (memhost_dele(host, arg_num(tok)) < 0)
				fail_msg("row %u (%s): %s failed", row,
					 sc->name, tok);
		} else if (strcmp(tok, "rset") == 0)
			memhost_rset(host);
		else if (strncmp(tok, "quit@", 5) == 0)
			memhost_quit(host, t);
		else if (strcmp(tok, "drop") == 0)
			memhost_drop(host);
		else if (strncmp(tok, "sweep@", 6) == 0)
			memhost_sweep(host, t);
		else if (strncmp(tok, "list=", 5) == 0)
			check_listing(host, tok + 5, row, sc);
		else if (strncmp(tok, "lose:", 5) == 0) {
			int m = memhost_find(host, arg_num(tok));

			assert_true(m >= 0);
			host->messages[m].first_retrieved_at = 0;
			host->messages[m].state_lost = true;
		} else if (strncmp(tok, "failrm:", 7) == 0) {
			host->fail_remove_uid_set = true;
			host->fail_remove_uid = arg_num(tok);
		} else if (strcmp(tok, "failcommit") == 0)
			host->fail_commit = true;
		else if (strcmp(tok, "killbefore") == 0)
			host->kill_before_commit = true;
		else if (strcmp(tok, "killafter") == 0)
			host->kill_after_commit = true;
		else
			fail_msg("row %u: bad script token '%s'", row, tok);
	}
}

static void format_disk(const struct memhost *host, char *buf, size_t size)
{
	size_t len = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < host->count; i++) {
		const struct memhost_message *msg = &host->messages[i];

		if (msg->removed)
			continue;
		len += (size_t)snprintf(buf + len, size - len, "%s%u%s",
					len == 0 ? "" : " ", msg->uid,
					msg->hidden ? "h" : "");
	}
}

static void format_events(const struct memhost *host, char *buf, size_t size)
{
	size_t len = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < host->event_count; i++) {
		const struct memhost_event *e = &host->events[i];
		const char *type = retention_event_type_name(e->type) + 8;

		len += (size_t)snprintf(buf + len, size - len, "%s%s:%u%s",
					len == 0 ? "" : " ", type, e->uid,
					e->first_retrieval ? "*" : "");
		if (e->reason[0] != '\0')
			len += (size_t)snprintf(buf + len, size - len, "(%s)",
						e->reason);
	}
}

static void test_scenario(void **state)
{
	const struct scenario *sc = *state;
	unsigned int row = (unsigned int)(sc - scenarios);
	struct retention_settings set = settings_from(sc, row);
	struct memhost host;
	char disk[256], events[1024];
	unsigned int i;

	memhost_init(&host, &set);
	run_script(&host, sc, row);
	format_disk(&host, disk, sizeof(disk));
	format_events(&host, events, sizeof(events));
	if (strcmp(disk, sc->disk) != 0)
		fail_msg("row %u (%s): disk '%s', want '%s'", row, sc->name,
			 disk, sc->disk);
	if (strcmp(events, sc->events) != 0)
		fail_msg("row %u (%s): events '%s', want '%s'", row, sc->name,
			 events, sc->events);
	for (i = 0; i < host.event_count; i++) {
		if (host.events[i].dry_run != set.dry_run)
			fail_msg("row %u (%s): event %u dry_run mismatch", row,
				 sc->name, i);
		if (strncmp(host.events[i].id, "evt_", 4) != 0)
			fail_msg("row %u (%s): event %u id '%s'", row,
				 sc->name, i, host.events[i].id);
		/* every event is a fact of its own */
		for (unsigned int j = 0; j < i; j++) {
			if (strcmp(host.events[i].id, host.events[j].id) == 0)
				fail_msg("row %u (%s): events %u and %u share "
					 "the id %s", row, sc->name, j, i,
					 host.events[i].id);
		}
	}
	memhost_deinit(&host);
}

/* A session numbers its events 1, 2, ... in the order it hands them
   over; downloads of one message in the same second are distinct
   events. A new session starts again at 1. */
static void test_events_numbered(void **state)
{
	struct retention_settings set;
	struct memhost host;
	unsigned int i;

	(void)state;
	retention_settings_init(&set);
	assert_int_equal(retention_settings_set(&set, "pop3_retention_policy",
						"delete-after-download"), 0);
	memhost_init(&host, &set);
	(void)memhost_deliver(&host, 0);
	(void)memhost_deliver(&host, 0);
	assert_int_equal(memhost_login(&host, 10), 0);
	assert_int_equal(memhost_retr(&host, 1, 10), 0);
	assert_int_equal(memhost_retr(&host, 1, 10), 0);
	assert_int_equal(memhost_retr(&host, 1, 10), 0);
	memhost_quit(&host, 10);
	/* three downloads, then the removal at QUIT */
	assert_int_equal(host.event_count, 4);
	for (i = 0; i < host.event_count; i++)
		assert_int_equal(host.events[i].seq, i + 1);
	assert_true(host.events[0].first_retrieval);
	assert_false(host.events[1].first_retrieval);
	assert_string_not_equal(host.events[0].id, host.events[1].id);
	assert_string_not_equal(host.events[1].id, host.events[2].id);
	assert_string_not_equal(host.events[0].id, host.events[2].id);

	assert_int_equal(memhost_login(&host, 10), 0);
	assert_int_equal(memhost_retr(&host, 1, 10), 0);
	memhost_quit(&host, 10);
	assert_int_equal(host.event_count, 6);
	assert_int_equal(host.events[4].seq, 1);
	assert_int_equal(host.events[5].seq, 2);
	memhost_deinit(&host);
}

/* The hold-lifted row continues: with hold off, a sweep removes it. */
static void test_hold_lifted(void **state)
{
	struct retention_settings set;
	struct memhost host;

	(void)state;
	retention_settings_init(&set);
	assert_int_equal(retention_settings_set(&set, "pop3_retention_hold",
						"yes"), 0);
	memhost_init(&host, &set);
	(void)memhost_deliver(&host, 0);
	assert_int_equal(memhost_login(&host, 10), 0);
	assert_int_equal(memhost_dele(&host, 1), 0);
	memhost_quit(&host, 11);
	assert_true(host.messages[0].hidden && !host.messages[0].removed);
	host.set.hold = false;
	memhost_sweep(&host, 12);
	assert_true(host.messages[0].removed);
	assert_string_equal(host.events[host.event_count - 1].reason,
			    "retention-ended");
	memhost_deinit(&host);
}

/* Audit lines carry uid, uidl and reason. */
static void test_audit_lines(void **state)
{
	struct retention_settings set;
	struct memhost host;

	(void)state;
	retention_settings_init(&set);
	memhost_init(&host, &set);
	(void)memhost_deliver(&host, 0);
	assert_int_equal(memhost_login(&host, 10), 0);
	assert_int_equal(memhost_dele(&host, 1), 0);
	memhost_quit(&host, 11);
	assert_int_equal(host.audit_count, 1);
	assert_non_null(strstr(host.audit[0], "action=remove uid=1 "
					      "uidl=U00000001 reason=dele"));
	memhost_deinit(&host);
}

/* ---- events of applied plans wait for the host's commit ---- */

enum commit_outcome {
	COMMIT_OK,
	COMMIT_FAILED,
	/* the session is destroyed without retention_session_commit_done() */
	COMMIT_NEVER,
};

struct commit_case {
	const char *name;
	const char *settings;
	enum commit_outcome outcome;
	/* what retention_session_commit_done() returns */
	unsigned int done_count;
	/* events after the apply and a download that followed it */
	const char *events_held;
	/* events at the end */
	const char *events_done;
};

/* Every row: two messages, login, RETR 1, DELE 2, QUIT's plan applied,
   RETR 1 again (after the apply, before the commit is done), then the
   row's outcome. */
static const struct commit_case commit_cases[] = {
	{ "committed: held events released after the download's",
	  "policy=delete-after-download", COMMIT_OK, 2,
	  "retrieved:1* retrieved:1",
	  "retrieved:1* retrieved:1 expired:1(downloaded) deleted:2(dele)" },
	{ "not committed: held events dropped",
	  "policy=delete-after-download", COMMIT_FAILED, 2,
	  "retrieved:1* retrieved:1", "retrieved:1* retrieved:1" },
	{ "never committed: dropped with the session",
	  "policy=delete-after-download", COMMIT_NEVER, 0,
	  "retrieved:1* retrieved:1", "retrieved:1* retrieved:1" },
	{ "retains are held as well", "hold=yes", COMMIT_OK, 1,
	  "retrieved:1* retrieved:1",
	  "retrieved:1* retrieved:1 retained:2(hold)" },
	{ "dry run: held, released when the host is done",
	  "policy=delete-after-download;dry_run=yes", COMMIT_OK, 2,
	  "retrieved:1* retrieved:1",
	  "retrieved:1* retrieved:1 expired:1(downloaded) deleted:2(dele)" },
	{ "filtered out: nothing held",
	  "policy=delete-after-download;webhook_events=message.retrieved",
	  COMMIT_OK, 0, "retrieved:1* retrieved:1",
	  "retrieved:1* retrieved:1" },
	{ "not committed, filtered: nothing to drop",
	  "webhook_events=message.retrieved", COMMIT_FAILED, 0,
	  "retrieved:1* retrieved:1", "retrieved:1* retrieved:1" },
};

static void check_events(const struct memhost *host, const char *want,
			 size_t row, const char *name, const char *when)
{
	char events[1024];
	unsigned int i;

	format_events(host, events, sizeof(events));
	if (strcmp(events, want) != 0)
		fail_msg("row %zu (%s): events %s '%s', want '%s'", row, name,
			 when, events, want);
	/* numbered in the order they reached the host */
	for (i = 0; i < host->event_count; i++) {
		if (host->events[i].seq != i + 1)
			fail_msg("row %zu (%s): event %u has seq %u", row,
				 name, i, host->events[i].seq);
	}
}

static void test_commit(void **state)
{
	const struct commit_case *c = *state;
	size_t row = (size_t)(c - commit_cases);
	struct retention_settings set =
		settings_parse(c->settings, (unsigned int)row, c->name);
	const struct retention_plan *plan;
	struct memhost host;
	unsigned int done;

	memhost_init(&host, &set);
	(void)memhost_deliver(&host, 1);
	(void)memhost_deliver(&host, 1);
	assert_int_equal(memhost_login(&host, 10), 0);
	assert_int_equal(memhost_retr(&host, 1, 11), 0);
	assert_int_equal(memhost_dele(&host, 2), 0);
	host.in_update = true;
	plan = retention_session_update(host.session, 12);
	(void)retention_session_apply(host.session, plan);
	/* cppcheck-suppress redundantAssignment ; the hooks read it via
	   host.session */
	host.in_update = false;
	/* a download is a fact at once, held events or not */
	assert_true(retention_session_retrieved(host.session, 0, false, 12));
	check_events(&host, c->events_held, row, c->name, "before the commit");

	switch (c->outcome) {
	case COMMIT_OK:
	case COMMIT_FAILED:
		done = retention_session_commit_done(host.session,
						     c->outcome == COMMIT_OK);
		if (done != c->done_count)
			fail_msg("row %zu (%s): commit_done() returned %u, "
				 "want %u", row, c->name, done, c->done_count);
		/* nothing is held twice */
		done = retention_session_commit_done(host.session, true);
		if (done != 0)
			fail_msg("row %zu (%s): a second commit_done() "
				 "returned %u", row, c->name, done);
		break;
	case COMMIT_NEVER:
		break;
	}
	retention_session_destroy(&host.session);
	check_events(&host, c->events_done, row, c->name, "at the end");
	memhost_deinit(&host);
}

int main(void)
{
	const unsigned int n = sizeof(scenarios) / sizeof(scenarios[0]);
	struct CMUnitTest tests[sizeof(scenarios) / sizeof(scenarios[0]) + 3];
	unsigned int i;
	int failed;

	for (i = 0; i < n; i++) {
		memset(&tests[i], 0, sizeof(tests[i]));
		tests[i].name = scenarios[i].name;
		tests[i].test_func = test_scenario;
		tests[i].initial_state = (void *)&scenarios[i];
	}
	memset(&tests[n], 0, sizeof(tests[n]) * 3);
	tests[n].name = "hold lifted: sweep removes retained";
	tests[n].test_func = test_hold_lifted;
	tests[n + 1].name = "audit lines name uid, uidl, reason";
	tests[n + 1].test_func = test_audit_lines;
	tests[n + 2].name = "events numbered in their session";
	tests[n + 2].test_func = test_events_numbered;
	failed = _cmocka_run_group_tests("retention-hooks", tests, n + 3, NULL,
					 NULL);
	failed += RUN_TABLE("retention_session_commit_done", test_commit,
			    commit_cases);
	return failed == 0 ? 0 : 1;
}
