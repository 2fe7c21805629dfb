/* The decision table: policy x floor x ceiling x hold x retrieved x DELE
   x QUIT, each row saying why; then invariants checked over the whole
   product of those dimensions. */

#include "pop3-retention-config.h"
#include "retention-policy.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define DAY 86400
#define NOW (1000 * DAY)

enum { KEEP = RETENTION_ACTION_KEEP, HIDE = RETENTION_ACTION_HIDE,
       RETAIN = RETENTION_ACTION_RETAIN, REMOVE = RETENTION_ACTION_REMOVE };
enum { BEGIN = RETENTION_MOMENT_BEGIN, UPDATE = RETENTION_MOMENT_UPDATE,
       NOQUIT = RETENTION_MOMENT_END_NO_QUIT,
       SWEEP = RETENTION_MOMENT_SWEEP };

struct row {
	const char *why;
	/* "policy=keep;keep=30d;min=7d;max=90d;hold=yes" (prefix implied) */
	const char *settings;
	/* facts: arrived/first retrieved as days before NOW (-1: 0/unknown) */
	int arrived_days_ago;
	int first_days_ago;
	bool state_unknown, hidden, retrieved, deleted;
	int moment;
	int action;
	enum retention_reason reason;
	/* due_at as days before NOW (negative: after), or NODUE */
	int due_days_ago;
};
#define NODUE 99999
#define UNSET (-9999)

static const struct row rows[] = {
	/* policy off: plain RFC 1939 */
	{ "off: untouched message stays", "", 10, UNSET, false, false, false,
	  false, UPDATE, KEEP, RETENTION_REASON_NONE, NODUE },
	{ "off: retrieved but not DELEd stays", "", 10, 1, false, false, true,
	  false, UPDATE, KEEP, RETENTION_REASON_NONE, NODUE },
	{ "off: DELE + QUIT removes", "", 10, UNSET, false, false, false, true,
	  UPDATE, REMOVE, RETENTION_REASON_DELE, 0 },
	{ "off: DELE without QUIT removes nothing (RFC 1939 6)", "", 10, UNSET,
	  false, false, false, true, NOQUIT, KEEP, RETENTION_REASON_NO_QUIT,
	  NODUE },
	{ "off: DELE only counts at UPDATE, not at a later begin", "", 10,
	  UNSET, false, false, false, true, BEGIN, KEEP,
	  RETENTION_REASON_NONE, NODUE },
	/* delete-after-download */
	{ "dad: retrieved + QUIT removes without DELE",
	  "policy=delete-after-download", 10, 0, false, false, true, false,
	  UPDATE, REMOVE, RETENTION_REASON_DOWNLOADED, 0 },
	{ "dad: retrieved + DELE reports the DELE",
	  "policy=delete-after-download", 10, 0, false, false, true, true,
	  UPDATE, REMOVE, RETENTION_REASON_DELE, 0 },
	{ "dad: not retrieved stays", "policy=delete-after-download", 10,
	  UNSET, false, false, false, false, UPDATE, KEEP,
	  RETENTION_REASON_NONE, NODUE },
	{ "dad: retrieved in an earlier session is not removed later",
	  "policy=delete-after-download", 10, 5, false, false, false, false,
	  UPDATE, KEEP, RETENTION_REASON_NONE, NODUE },
	{ "dad: retrieved, no QUIT: kept", "policy=delete-after-download", 10,
	  0, false, false, true, false, NOQUIT, KEEP, RETENTION_REASON_NO_QUIT,
	  NODUE },
	/* keep */
	{ "keep: window not over: kept, due at first + keep",
	  "policy=keep;keep=30d", 40, 10, false, false, false, false, BEGIN,
	  KEEP, RETENTION_REASON_NONE, -20 },
	{ "keep: window over: removed at begin", "policy=keep;keep=30d", 40,
	  30, false, false, false, false, BEGIN, REMOVE,
	  RETENTION_REASON_KEEP_EXPIRED, 0 },
	{ "keep: window over: removed by a sweep", "policy=keep;keep=30d", 40,
	  31, false, false, false, false, SWEEP, REMOVE,
	  RETENTION_REASON_KEEP_EXPIRED, 1 },
	{ "keep: never retrieved: nothing starts the clock",
	  "policy=keep;keep=30d", 400, UNSET, false, false, false, false,
	  SWEEP, KEEP, RETENTION_REASON_NONE, NODUE },
	{ "keep: retrieved now: due keep from now", "policy=keep;keep=30d",
	  400, 0, false, false, true, false, UPDATE, KEEP,
	  RETENTION_REASON_NONE, -30 },
	{ "keep: DELE of a retrieved message is retained until the window",
	  "policy=keep;keep=30d", 40, 10, false, false, false, true, UPDATE,
	  RETAIN, RETENTION_REASON_KEEP, -20 },
	{ "keep: DELE after the window removes", "policy=keep;keep=30d", 40,
	  30, false, false, false, true, UPDATE, REMOVE, RETENTION_REASON_DELE,
	  0 },
	{ "keep: DELE of a never retrieved message removes",
	  "policy=keep;keep=30d", 40, UNSET, false, false, false, true, UPDATE,
	  REMOVE, RETENTION_REASON_DELE, 0 },
	{ "keep: lost state keeps (fail safe)", "policy=keep;keep=30d", 400,
	  UNSET, true, false, false, false, SWEEP, KEEP,
	  RETENTION_REASON_UNKNOWN_STATE, NODUE },
	{ "keep: lost state + DELE retains (fail safe)",
	  "policy=keep;keep=30d", 400, UNSET, true, false, false, true, UPDATE,
	  RETAIN, RETENTION_REASON_UNKNOWN_STATE, NODUE },
	{ "keep: hidden, window over: removed", "policy=keep;keep=30d", 40,
	  30, false, true, false, false, BEGIN, REMOVE,
	  RETENTION_REASON_RETENTION_ENDED, 0 },
	{ "keep: hidden, window not over: stays hidden",
	  "policy=keep;keep=30d", 40, 10, false, true, false, false, BEGIN,
	  HIDE, RETENTION_REASON_KEEP, -20 },
	/* floor */
	{ "floor: DELE of a young message is retained until the floor",
	  "min=7d", 2, UNSET, false, false, false, true, UPDATE, RETAIN,
	  RETENTION_REASON_MIN, -5 },
	{ "floor: DELE of an old message removes", "min=7d", 8, UNSET, false,
	  false, false, true, UPDATE, REMOVE, RETENTION_REASON_DELE, 0 },
	{ "floor: exactly at the floor removes", "min=7d", 7, UNSET, false,
	  false, false, true, UPDATE, REMOVE, RETENTION_REASON_DELE, 0 },
	{ "floor: hidden and floor passed: removed", "min=7d", 7, UNSET, false,
	  true, false, false, SWEEP, REMOVE, RETENTION_REASON_RETENTION_ENDED,
	  0 },
	{ "floor: hidden, floor not passed: hidden", "min=7d", 6, UNSET, false,
	  true, false, false, BEGIN, HIDE, RETENTION_REASON_MIN, -1 },
	{ "floor: unknown arrival blocks removal", "min=7d", UNSET, UNSET,
	  false, false, false, true, UPDATE, RETAIN,
	  RETENTION_REASON_UNKNOWN_STATE, NODUE },
	{ "floor: dad under the floor retains", "policy=delete-after-download;"
	  "min=7d", 1, 0, false, false, true, false, UPDATE, RETAIN,
	  RETENTION_REASON_MIN, -6 },
	{ "floor beats keep: keep over, floor not", "policy=keep;keep=1d;"
	  "min=30d", 10, 5, false, false, false, false, SWEEP, KEEP,
	  RETENTION_REASON_NONE, -20 },
	{ "floor beats keep on DELE: retained by the floor",
	  "policy=keep;keep=1d;min=30d", 10, 5, false, false, false, true,
	  UPDATE, RETAIN, RETENTION_REASON_MIN, -20 },
	/* ceiling */
	{ "ceiling: old unretrieved message removed", "max=90d", 90, UNSET,
	  false, false, false, false, BEGIN, REMOVE,
	  RETENTION_REASON_MAX_EXCEEDED, 0 },
	{ "ceiling: young message kept, due at arrival + max", "max=90d", 10,
	  UNSET, false, false, false, false, SWEEP, KEEP,
	  RETENTION_REASON_NONE, -80 },
	{ "ceiling beats keep", "policy=keep;keep=365d;max=90d", 100, 1, false,
	  false, false, false, SWEEP, REMOVE, RETENTION_REASON_MAX_EXCEEDED,
	  10 },
	{ "ceiling: unknown arrival never expires", "max=90d", UNSET, UNSET,
	  false, false, false, false, SWEEP, KEEP, RETENTION_REASON_NONE,
	  NODUE },
	{ "ceiling, no QUIT: nothing removed", "max=90d", 100, UNSET, false,
	  false, false, false, NOQUIT, KEEP, RETENTION_REASON_NO_QUIT, 10 },
	{ "floor beats ceiling: floor = ceiling, both passed", "min=30d;"
	  "max=30d", 30, UNSET, false, false, false, false, SWEEP, REMOVE,
	  RETENTION_REASON_MAX_EXCEEDED, 0 },
	/* hold */
	{ "hold: DELE retained indefinitely", "hold=yes", 10, UNSET, false,
	  false, false, true, UPDATE, RETAIN, RETENTION_REASON_HOLD, NODUE },
	{ "hold beats ceiling", "hold=yes;max=1d", 10, UNSET, false, false,
	  false, false, SWEEP, KEEP, RETENTION_REASON_HOLD, NODUE },
	{ "hold beats keep", "hold=yes;policy=keep;keep=1d", 10, 5, false,
	  false, false, false, BEGIN, KEEP, RETENTION_REASON_HOLD, NODUE },
	{ "hold beats dad", "hold=yes;policy=delete-after-download", 10, 0,
	  false, false, true, false, UPDATE, RETAIN, RETENTION_REASON_HOLD,
	  NODUE },
	{ "hold: hidden stays hidden", "hold=yes", 10, UNSET, false, true,
	  false, false, BEGIN, HIDE, RETENTION_REASON_HOLD, NODUE },
	{ "hold lifted: hidden message removed", "", 10, UNSET, false, true,
	  false, false, SWEEP, REMOVE, RETENTION_REASON_RETENTION_ENDED, 0 },
	{ "hidden, no QUIT: stays hidden", "", 10, UNSET, false, true, false,
	  false, NOQUIT, HIDE, RETENTION_REASON_NO_QUIT, 0 },
	{ "hidden + DELE cannot happen (not listed): stays hidden", "min=7d",
	  1, UNSET, false, true, false, true, UPDATE, HIDE,
	  RETENTION_REASON_MIN, -6 },
	/* visible_since (1000 - 5 days before NOW) */
	{ "visible_since: older message hidden at begin",
	  "visible_since=1972-09-21", 10, UNSET, false, false, false, false,
	  BEGIN, HIDE, RETENTION_REASON_VISIBLE_SINCE, NODUE },
	{ "visible_since: newer message listed", "visible_since=1972-09-21",
	  1, UNSET, false, false, false, false, BEGIN, KEEP,
	  RETENTION_REASON_NONE, NODUE },
	{ "visible_since: unknown arrival listed", "visible_since=1972-09-21",
	  UNSET, UNSET, false, false, false, false, BEGIN, KEEP,
	  RETENTION_REASON_NONE, NODUE },
	{ "visible_since does not remove", "visible_since=1972-09-21;"
	  "policy=delete-after-download", 10, UNSET, false, false, false,
	  false, SWEEP, HIDE, RETENTION_REASON_VISIBLE_SINCE, NODUE },
	/* dry run decides the same */
	{ "dry run decides as if", "dry_run=yes", 10, UNSET, false, false,
	  false, true, UPDATE, REMOVE, RETENTION_REASON_DELE, 0 },
};

static void settings_from(const char *str, struct retention_settings *set,
			  unsigned int row)
{
	char buf[256], *p = buf;

	retention_settings_init(set);
	snprintf(buf, sizeof(buf), "%s", str);
	while (*p != '\0') {
		char *end = strchr(p, ';'), *eq, key[300];

		if (end != NULL)
			*end = '\0';
		eq = strchr(p, '=');
		if (eq == NULL)
			fail_msg("row %u: bad settings '%s'", row, str);
		*eq = '\0';
		snprintf(key, sizeof(key), "pop3_retention_%s", p);
		if (retention_settings_set(set, key, eq + 1) < 0)
			fail_msg("row %u: %s", row, set->error);
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (retention_settings_check(set) < 0)
		fail_msg("row %u: %s", row, set->error);
}

static time_t days_ago(int days)
{
	return days == UNSET ? 0 : NOW - (time_t)days * DAY;
}

static void test_row(void **state)
{
	const struct row *r = *state;
	unsigned int i = (unsigned int)(r - rows);
	struct retention_settings set;
	struct retention_facts facts;
	struct retention_decision d;
	time_t want_due;

	settings_from(r->settings, &set, i);
	memset(&facts, 0, sizeof(facts));
	facts.arrived_at = days_ago(r->arrived_days_ago);
	facts.first_retrieved_at = days_ago(r->first_days_ago);
	facts.state_unknown = r->state_unknown;
	facts.hidden = r->hidden;
	facts.retrieved = r->retrieved;
	facts.deleted = r->deleted;
	retention_policy_decide(&set, &facts, NOW,
				(enum retention_moment)r->moment, &d);
	if ((int)d.action != r->action || d.reason != r->reason)
		fail_msg("row %u (%s): got %s/%s, want %s/%s", i, r->why,
			 retention_action_name(d.action),
			 retention_reason_name(d.reason),
			 retention_action_name(r->action),
			 retention_reason_name(r->reason));
	want_due = r->due_days_ago == NODUE ? 0 : days_ago(r->due_days_ago);
	if (d.due_at != want_due)
		fail_msg("row %u (%s): due %lld, want %lld", i, r->why,
			 (long long)d.due_at, (long long)want_due);
}

/* ---- invariants over the whole product ---- */

struct combo {
	int policy, floor, ceiling, hold, first, hidden, retrieved, deleted,
		moment, arrival;
};

static const char *const policy_settings[] = {
	"", "policy=delete-after-download", "policy=keep;keep=30d" };
/* floor: none, 7d; ceiling: none, 90d */
static const char *const floor_settings[] = { "", "min=7d" };
static const char *const ceiling_settings[] = { "", "max=90d" };
/* arrival: unknown, 1 day ago (young), 100 days ago (old) */
static const int arrivals[] = { UNSET, 1, 100 };
/* first retrieval: never, 1 day ago, 60 days ago, unknown state */
static const int firsts[] = { UNSET, 1, 60, -2 };

static void combo_settings(const struct combo *c,
			   struct retention_settings *set)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s%s%s%s%s%s%s",
		 policy_settings[c->policy],
		 *policy_settings[c->policy] != '\0' ? ";" : "",
		 floor_settings[c->floor], c->floor ? ";" : "",
		 ceiling_settings[c->ceiling], c->ceiling ? ";" : "",
		 c->hold ? "hold=yes" : "");
	/* trim a trailing ';' */
	if (buf[0] != '\0' && buf[strlen(buf) - 1] == ';')
		buf[strlen(buf) - 1] = '\0';
	settings_from(buf, set, 0);
}

typedef void check_fn(const struct combo *c,
		      const struct retention_settings *set,
		      const struct retention_facts *facts,
		      const struct retention_decision *d, const char *desc);

static unsigned int for_each_combo(check_fn *check)
{
	struct combo c;
	unsigned int n = 0;

	for (c.policy = 0; c.policy < 3; c.policy++)
	for (c.floor = 0; c.floor < 2; c.floor++)
	for (c.ceiling = 0; c.ceiling < 2; c.ceiling++)
	for (c.hold = 0; c.hold < 2; c.hold++)
	for (c.arrival = 0; c.arrival < 3; c.arrival++)
	for (c.first = 0; c.first < 4; c.first++)
	for (c.hidden = 0; c.hidden < 2; c.hidden++)
	for (c.retrieved = 0; c.retrieved < 2; c.retrieved++)
	for (c.deleted = 0; c.deleted < 2; c.deleted++)
	for (c.moment = 0; c.moment < 4; c.moment++) {
		struct retention_settings set;
		struct retention_facts facts;
		struct retention_decision d;
		char desc[256];

		combo_settings(&c, &set);
		memset(&facts, 0, sizeof(facts));
		facts.arrived_at = days_ago(arrivals[c.arrival]);
		if (firsts[c.first] == -2)
			facts.state_unknown = true;
		else
			facts.first_retrieved_at = days_ago(firsts[c.first]);
		if (c.retrieved && facts.first_retrieved_at == 0) {
			/* the core sets it when a session retrieves */
			facts.first_retrieved_at = NOW;
			facts.state_unknown = false;
		}
		facts.hidden = c.hidden;
		facts.retrieved = c.retrieved;
		facts.deleted = c.deleted;
		retention_policy_decide(&set, &facts, NOW,
					(enum retention_moment)c.moment, &d);
		snprintf(desc, sizeof(desc),
			 "policy=%d floor=%d ceiling=%d hold=%d arrival=%d "
			 "first=%d hidden=%d retrieved=%d deleted=%d "
			 "moment=%d -> %s/%s",
			 c.policy, c.floor, c.ceiling, c.hold, c.arrival,
			 c.first, c.hidden, c.retrieved, c.deleted, c.moment,
			 retention_action_name(d.action),
			 retention_reason_name(d.reason));
		check(&c, &set, &facts, &d, desc);
		n++;
	}
	return n;
}

static void inv_hold(const struct combo *c,
		     const struct retention_settings *set,
		     const struct retention_facts *facts,
		     const struct retention_decision *d, const char *desc)
{
	(void)c; (void)facts;
	if (set->hold && (d->action == RETENTION_ACTION_REMOVE ||
			  d->due_at != 0))
		fail_msg("hold must remove nothing: %s", desc);
}

static void inv_no_quit(const struct combo *c,
			const struct retention_settings *set,
			const struct retention_facts *facts,
			const struct retention_decision *d, const char *desc)
{
	(void)set; (void)facts;
	if (c->moment == NOQUIT && (d->action == RETENTION_ACTION_REMOVE ||
				    d->action == RETENTION_ACTION_RETAIN))
		fail_msg("no QUIT must change nothing: %s", desc);
}

static void inv_floor(const struct combo *c,
		      const struct retention_settings *set,
		      const struct retention_facts *facts,
		      const struct retention_decision *d, const char *desc)
{
	(void)c;
	if (set->min_secs != 0 && d->action == RETENTION_ACTION_REMOVE &&
	    (facts->arrived_at == 0 ||
	     NOW < facts->arrived_at + (time_t)set->min_secs))
		fail_msg("nothing removed under the floor: %s", desc);
}

static void inv_remove_has_cause(const struct combo *c,
				 const struct retention_settings *set,
				 const struct retention_facts *facts,
				 const struct retention_decision *d,
				 const char *desc)
{
	bool cause = facts->hidden;

	if (c->moment == UPDATE)
		cause = cause || facts->deleted ||
			(set->policy == RETENTION_POLICY_DELETE_AFTER_DOWNLOAD &&
			 facts->retrieved);
	if (set->max_secs != 0 && facts->arrived_at != 0 &&
	    NOW >= facts->arrived_at + (time_t)set->max_secs)
		cause = true;
	if (set->policy == RETENTION_POLICY_KEEP &&
	    facts->first_retrieved_at != 0 &&
	    NOW >= facts->first_retrieved_at + (time_t)set->keep.secs)
		cause = true;
	if (d->action == RETENTION_ACTION_REMOVE && !cause)
		fail_msg("removed without a cause: %s", desc);
}

static void inv_ceiling_removes(const struct combo *c,
				const struct retention_settings *set,
				const struct retention_facts *facts,
				const struct retention_decision *d,
				const char *desc)
{
	if (c->moment != NOQUIT && !set->hold && set->max_secs != 0 &&
	    facts->arrived_at != 0 &&
	    NOW >= facts->arrived_at + (time_t)set->max_secs &&
	    NOW >= facts->arrived_at + (time_t)set->min_secs &&
	    d->action != RETENTION_ACTION_REMOVE)
		fail_msg("past the ceiling must be removed: %s", desc);
}

static void inv_due(const struct combo *c,
		    const struct retention_settings *set,
		    const struct retention_facts *facts,
		    const struct retention_decision *d, const char *desc)
{
	(void)set; (void)facts;
	if (c->moment == NOQUIT)
		return;
	if (d->action == RETENTION_ACTION_REMOVE &&
	    (d->due_at == 0 || d->due_at > NOW))
		fail_msg("removal before its due time: %s", desc);
	if (d->action != RETENTION_ACTION_REMOVE && d->due_at != 0 &&
	    d->due_at <= NOW)
		fail_msg("due but not removed: %s", desc);
}

static void inv_retain_only_at_update(const struct combo *c,
				      const struct retention_settings *set,
				      const struct retention_facts *facts,
				      const struct retention_decision *d,
				      const char *desc)
{
	(void)set;
	if (d->action == RETENTION_ACTION_RETAIN &&
	    (c->moment != UPDATE || facts->hidden))
		fail_msg("RETAIN outside UPDATE or twice: %s", desc);
}

static void inv_unknown_state(const struct combo *c,
			      const struct retention_settings *set,
			      const struct retention_facts *facts,
			      const struct retention_decision *d,
			      const char *desc)
{
	/* lost keep state alone never removes */
	if (set->policy == RETENTION_POLICY_KEEP && facts->state_unknown &&
	    !facts->hidden && !(c->moment == UPDATE && facts->deleted) &&
	    set->max_secs == 0 && d->action == RETENTION_ACTION_REMOVE)
		fail_msg("lost state hastened removal: %s", desc);
}

static const struct {
	const char *name;
	check_fn *check;
} invariants[] = {
	{ "invariant: hold removes nothing", inv_hold },
	{ "invariant: no QUIT changes nothing", inv_no_quit },
	{ "invariant: floor blocks removal", inv_floor },
	{ "invariant: every removal has a cause", inv_remove_has_cause },
	{ "invariant: past the ceiling is removed", inv_ceiling_removes },
	{ "invariant: due time consistent with action", inv_due },
	{ "invariant: RETAIN only at UPDATE", inv_retain_only_at_update },
	{ "invariant: lost state never hastens", inv_unknown_state },
};

static void test_invariant(void **state)
{
	check_fn *check = (check_fn *)*state;
	unsigned int n = for_each_combo(check);

	assert_int_equal(n, 3 * 2 * 2 * 2 * 3 * 4 * 2 * 2 * 2 * 4);
}

/* ---- EXPIRE ---- */

static const struct {
	const char *settings;
	const char *expire;
} expire_rows[] = {
	{ "", "NEVER" },
	{ "min=7d", "NEVER" },
	{ "policy=delete-after-download", "0" },
	{ "policy=delete-after-download;min=7d", "0" },
	{ "policy=keep;keep=30d", "30" },
	{ "policy=keep;keep=36h", "1" },
	{ "policy=keep;keep=3s", "0" },
	{ "policy=keep;keep=2d;min=5d", "5" },
	{ "policy=keep;keep=30d;max=10d", "10" },
	{ "max=90d", "90" },
	{ "max=90d;min=90d", "90" },
	{ "hold=yes;policy=delete-after-download", "NEVER" },
	{ "hold=yes;max=1d", "NEVER" },
};

static void test_expire(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(expire_rows) / sizeof(expire_rows[0]); i++) {
		struct retention_settings set;
		struct retention_expire e;
		char buf[16];

		settings_from(expire_rows[i].settings, &set, i);
		retention_policy_expire(&set, &e);
		retention_expire_format(&e, buf, sizeof(buf));
		if (strcmp(buf, expire_rows[i].expire) != 0)
			fail_msg("expire row %u (%s): got %s, want %s", i,
				 expire_rows[i].settings, buf,
				 expire_rows[i].expire);
	}
}

int main(void)
{
	const unsigned int nrows = sizeof(rows) / sizeof(rows[0]);
	const unsigned int ninv = sizeof(invariants) / sizeof(invariants[0]);
	struct CMUnitTest tests[sizeof(rows) / sizeof(rows[0]) +
				sizeof(invariants) / sizeof(invariants[0]) + 1];
	unsigned int i, n = 0;

	memset(tests, 0, sizeof(tests));
	for (i = 0; i < nrows; i++, n++) {
		tests[n].name = rows[i].why;
		tests[n].test_func = test_row;
		tests[n].initial_state = (void *)&rows[i];
	}
	for (i = 0; i < ninv; i++, n++) {
		tests[n].name = invariants[i].name;
		tests[n].test_func = test_invariant;
		tests[n].initial_state = (void *)invariants[i].check;
	}
	tests[n].name = "EXPIRE values";
	tests[n].test_func = test_expire;
	n++;
	return _cmocka_run_group_tests("retention-policy", tests, n, NULL,
				       NULL);
}
