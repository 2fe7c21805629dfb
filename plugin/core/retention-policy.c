/* Pure retention decisions. See retention-policy.h and
   docs/architecture.md for the rules; tests/unit/test-retention-policy.c
   holds the decision table. */

#include "pop3-retention-config.h"
#include "retention-policy.h"

#include <stdio.h>
#include <string.h>

/* When a message becomes removable, and what stands in the way. */
struct removal_due {
	/* 0: never (blocked or no rule applies) */
	time_t at;
	/* the rule that removes it at `at` */
	enum retention_reason reason;
	/* why `at` is 0 although a rule wanted the message gone */
	enum retention_reason block;
	/* the floor pushed `at` later than the rule alone */
	bool floor_bound;
};

/* wanted: a client asked for removal (DELE now, an earlier retained DELE,
   or delete-after-download); it is carried out as soon as the rules of
   higher precedence allow. */
static void compute_due(const struct retention_settings *set,
			const struct retention_facts *facts, bool wanted,
			time_t now, struct removal_due *due_r)
{
	bool have = false;
	time_t best = 0;
	enum retention_reason reason = RETENTION_REASON_NONE;

#define CONSIDER(t, why)                        \
	do {                                    \
		if (!have || (t) < best) {      \
			best = (t);             \
			reason = (why);         \
			have = true;            \
		}                               \
	} while (0)

	memset(due_r, 0, sizeof(*due_r));
	if (set->max_secs != 0 && facts->arrived_at != 0)
		CONSIDER(facts->arrived_at + (time_t)set->max_secs,
			 RETENTION_REASON_MAX_EXCEEDED);
	if (set->policy == RETENTION_POLICY_KEEP) {
		if (facts->first_retrieved_at != 0) {
			CONSIDER(facts->first_retrieved_at +
					 (time_t)set->keep.secs,
				 wanted ? RETENTION_REASON_RETENTION_ENDED :
					  RETENTION_REASON_KEEP_EXPIRED);
		} else if (wanted && !facts->state_unknown) {
			/* keep concerns retrieved messages only: a DELE of a
			   message never retrieved is an ordinary DELE */
			CONSIDER(now, RETENTION_REASON_RETENTION_ENDED);
		}
	} else if (wanted) {
		CONSIDER(now, RETENTION_REASON_RETENTION_ENDED);
	}
#undef CONSIDER

	if (!have) {
		if (wanted || (set->policy == RETENTION_POLICY_KEEP &&
			       facts->state_unknown))
			due_r->block = RETENTION_REASON_UNKNOWN_STATE;
		return;
	}
	if (set->min_secs != 0) {
		time_t floor_end;

		if (facts->arrived_at == 0) {
			/* age unknown: the floor can never be shown passed */
			due_r->block = RETENTION_REASON_UNKNOWN_STATE;
			return;
		}
		floor_end = facts->arrived_at + (time_t)set->min_secs;
		if (floor_end > best) {
			best = floor_end;
			due_r->floor_bound = true;
		}
	}
	if (set->hold) {
		due_r->block = RETENTION_REASON_HOLD;
		return;
	}
	due_r->at = best;
	due_r->reason = reason;
}

/* Why a message the client wants gone is retained instead. */
static enum retention_reason retain_reason(const struct retention_settings *set,
					   const struct removal_due *due)
{
	if (due->at == 0) {
		return due->block != RETENTION_REASON_NONE ?
			       due->block :
			       RETENTION_REASON_UNKNOWN_STATE;
	}
	if (due->floor_bound || set->policy != RETENTION_POLICY_KEEP)
		return RETENTION_REASON_MIN;
	return RETENTION_REASON_KEEP;
}

static bool is_visible(const struct retention_settings *set,
		       const struct retention_facts *facts)
{
	/* an unknown arrival is listed: hiding is not removal, but a
	   message must not vanish from POP3 on a guess either */
	return set->visible_since == 0 || facts->arrived_at == 0 ||
	       facts->arrived_at >= set->visible_since;
}

void retention_policy_decide(const struct retention_settings *set,
			     const struct retention_facts *facts, time_t now,
			     enum retention_moment moment,
			     struct retention_decision *decision_r)
{
	struct removal_due due;
	bool wanted_now = false;

	memset(decision_r, 0, sizeof(*decision_r));
	/* a hidden message is not listed, so a DELE cannot name it */
	if (moment == RETENTION_MOMENT_UPDATE && !facts->hidden) {
		wanted_now = facts->deleted ||
			     (set->policy ==
				      RETENTION_POLICY_DELETE_AFTER_DOWNLOAD &&
			      facts->retrieved);
	}
	compute_due(set, facts, wanted_now || facts->hidden, now, &due);
	decision_r->due_at = due.at;
	decision_r->due_reason = due.reason;

	if (moment == RETENTION_MOMENT_END_NO_QUIT) {
		/* RFC 1939 section 6: no UPDATE state, nothing removed */
		decision_r->action = facts->hidden ? RETENTION_ACTION_HIDE :
						     RETENTION_ACTION_KEEP;
		decision_r->reason = RETENTION_REASON_NO_QUIT;
		return;
	}

	if (wanted_now) {
		if (due.at != 0 && now >= due.at) {
			decision_r->action = RETENTION_ACTION_REMOVE;
			decision_r->reason =
				facts->deleted ? RETENTION_REASON_DELE :
						 RETENTION_REASON_DOWNLOADED;
		} else {
			decision_r->action = RETENTION_ACTION_RETAIN;
			decision_r->reason = retain_reason(set, &due);
		}
		return;
	}

	if (due.at != 0 && now >= due.at) {
		decision_r->action = RETENTION_ACTION_REMOVE;
		decision_r->reason = due.reason;
	} else if (facts->hidden) {
		decision_r->action = RETENTION_ACTION_HIDE;
		decision_r->reason = retain_reason(set, &due);
	} else if (!is_visible(set, facts)) {
		decision_r->action = RETENTION_ACTION_HIDE;
		decision_r->reason = RETENTION_REASON_VISIBLE_SINCE;
	} else {
		decision_r->action = RETENTION_ACTION_KEEP;
		decision_r->reason = due.block;
	}
}

const char *retention_reason_name(enum retention_reason reason)
{
	switch (reason) {
	case RETENTION_REASON_NONE:
		return "none";
	case RETENTION_REASON_DELE:
		return "dele";
	case RETENTION_REASON_DOWNLOADED:
		return "downloaded";
	case RETENTION_REASON_KEEP_EXPIRED:
		return "keep-expired";
	case RETENTION_REASON_MAX_EXCEEDED:
		return "max-exceeded";
	case RETENTION_REASON_RETENTION_ENDED:
		return "retention-ended";
	case RETENTION_REASON_HOLD:
		return "hold";
	case RETENTION_REASON_MIN:
		return "min";
	case RETENTION_REASON_KEEP:
		return "keep";
	case RETENTION_REASON_UNKNOWN_STATE:
		return "unknown-state";
	case RETENTION_REASON_VISIBLE_SINCE:
		return "visible-since";
	case RETENTION_REASON_NO_QUIT:
		return "no-quit";
	}
	return "unknown";
}

const char *retention_action_name(enum retention_action action)
{
	switch (action) {
	case RETENTION_ACTION_KEEP:
		return "keep";
	case RETENTION_ACTION_HIDE:
		return "hide";
	case RETENTION_ACTION_RETAIN:
		return "retain";
	case RETENTION_ACTION_REMOVE:
		return "remove";
	}
	return "unknown";
}

void retention_policy_expire(const struct retention_settings *set,
			     struct retention_expire *expire_r)
{
	bool have = false;
	unsigned int secs = 0;

	memset(expire_r, 0, sizeof(*expire_r));
	if (set->hold) {
		expire_r->never = true;
		return;
	}
	if (set->policy == RETENTION_POLICY_DELETE_AFTER_DOWNLOAD) {
		/* RFC 2449 6.7: the client may not leave mail on the server */
		expire_r->days = 0;
		return;
	}
	if (set->policy == RETENTION_POLICY_KEEP) {
		secs = set->keep.secs;
		have = true;
	}
	if (set->max_secs != 0 && (!have || set->max_secs < secs)) {
		secs = set->max_secs;
		have = true;
	}
	if (!have) {
		expire_r->never = true;
		return;
	}
	if (secs < set->min_secs)
		secs = set->min_secs;
	expire_r->days = secs / 86400;
}

void retention_expire_format(const struct retention_expire *expire, char *buf,
			     size_t size)
{
	if (expire->never)
		snprintf(buf, size, "NEVER");
	else
		snprintf(buf, size, "%u", expire->days);
}
