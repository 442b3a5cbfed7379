/* imap/search-run.c: a user's search sent to the server (commands from
 * imap/search.c), over one mailbox or many.
 *
 * Stateless, on a connection the caller holds alone. Three ways, best
 * first: one ESEARCH with MULTISEARCH for all mailboxes; EXAMINE and UID
 * SEARCH per mailbox, pipelined in batches (untagged answers belong to the
 * oldest command still waiting, or to the TAG an ESEARCH answer names);
 * the same one by one when the criteria need synchronising literals.
 * Pipelined EXAMINEs bypass imap_conn_examine(), so the connection is told
 * to forget its selected mailbox afterwards. A mailbox selected already
 * gets a NOOP before its SEARCH: the session may predate new messages.
 */
#include "imap/search-run.h"

#include <errno.h>
#include <string.h>

#include "imap/conn-private.h"
#include "imap/ops.h"
#include "imap/search.h"

/* Mailboxes per pipelined batch: about 10 KB of commands, which a socket
 * buffer takes whole while the answers wait. */
#define BATCH_TARGETS 100

typedef struct {
	ImapConn *conn;
	ImapSearchTarget *targets;
	GHashTable *by_mailbox; /* MULTISEARCH: raw name -> target */
	/* Pipelines: which target each line is for, and whether it is the
	 * SEARCH (else the EXAMINE) */
	ImapSearchTarget **line_target;
	bool *line_search;
	ImapSearchTarget *only; /* one command: every answer is for it */
} RunCtx;

static unsigned search_caps(const ImapConn *conn)
{
	unsigned caps = 0;

	if (imap_conn_has_cap(conn, "LITERAL+"))
		caps |= IMAP_SEARCH_LITERAL_PLUS;
	if (imap_conn_has_cap(conn, "LITERAL-"))
		caps |= IMAP_SEARCH_LITERAL_MINUS;
	if (imap_conn_has_cap(conn, "X-GM-EXT-1"))
		caps |= IMAP_SEARCH_GMAIL;
	return caps;
}

static int cmp_u32(gconstpointer a, gconstpointer b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void sort_unique(GArray *uids)
{
	guint out = 0;

	g_array_sort(uids, cmp_u32);
	for (guint i = 0; i < uids->len; i++)
		if (out == 0 || g_array_index(uids, uint32_t, i) !=
				    g_array_index(uids, uint32_t, out - 1))
			g_array_index(uids, uint32_t, out++) =
			    g_array_index(uids, uint32_t, i);
	g_array_set_size(uids, out);
}

/* The target an untagged answer belongs to, and whether that command is
 * the SEARCH. */
static ImapSearchTarget *owner(RunCtx *ctx, const ImapSearchSource *src,
			       bool *search)
{
	int i;

	*search = true;
	if (ctx->only)
		return ctx->only;
	if (ctx->by_mailbox)
		return src->mailbox
			   ? g_hash_table_lookup(ctx->by_mailbox, src->mailbox)
			   : NULL;
	i = imap_conn_batch_index(ctx->conn, src->tag);
	if (i < 0)
		return NULL;
	*search = ctx->line_search[i];
	return ctx->line_target[i];
}

static int run_untagged(void *user_data, ImapResponse *r)
{
	RunCtx *ctx = user_data;
	ImapSearchSource src = { 0 };
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	ImapSearchTarget *t;
	bool search;
	uint64_t v;
	int rc;

	rc = imap_search_parse(r, uids, &src);
	t = owner(ctx, &src, &search);
	if (t && rc != 0 && search) {
		if (rc < 0 && t->status == 0)
			t->status = rc;
		else if (rc > 0)
			g_array_append_vals(t->uids, uids->data, uids->len);
		if (src.uidvalidity)
			t->uidvalidity = src.uidvalidity;
	} else if (t && !search && r->code &&
		   strcmp(r->code, "UIDVALIDITY") == 0 &&
		   imap_value_get_u64(imap_list_get(&r->code_args, 0), &v) &&
		   v <= UINT32_MAX) {
		t->uidvalidity = (uint32_t)v;
	}
	imap_search_source_clear(&src);
	/* Never fail the command: that would fail the whole pipeline. */
	return 0;
}

/* A refusal (the connection is fine) is the query's fault. */
static int refused(ImapConn *conn, int rc)
{
	if (rc < 0 && !imap_conn_is_broken(conn) && rc != -EAGAIN &&
	    rc != -EACCES)
		return -EINVAL;
	return rc;
}

/* ---- one ESEARCH for all ---- */

static int run_multi(ImapConn *conn, GPtrArray *crit, ImapSearchTarget *t,
		     size_t n, GError **error)
{
	g_autoptr(GHashTable) by = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GString) line = g_string_new("ESEARCH IN (mailboxes (");
	RunCtx ctx = { .conn = conn, .targets = t, .by_mailbox = by };
	char *saved;
	int rc;

	for (size_t i = 0; i < n; i++) {
		g_autofree char *q = imap_conn_quote(conn, t[i].mailbox);

		if (!q) {
			t[i].status = -EINVAL;
			continue;
		}
		g_hash_table_insert(by, t[i].mailbox, &t[i]);
		g_string_append_printf(line, "%s%s", i ? " " : "", q);
	}
	g_string_append_printf(line, ")) RETURN (ALL) %s",
			       (char *)crit->pdata[0]);
	saved = crit->pdata[0];
	crit->pdata[0] = line->str;
	rc = imap_conn_command_chunks(conn, (char **)crit->pdata, crit->len,
				      run_untagged, &ctx, error);
	crit->pdata[0] = saved;
	return refused(conn, rc);
}

/* ---- one mailbox after the other (synchronising literals) ---- */

static int run_serial(ImapConn *conn, const char *search, GPtrArray *crit,
		      ImapSearchTarget *t, size_t n, GError **error)
{
	g_autofree char *first =
	    g_strdup_printf("%s %s", search, (char *)crit->pdata[0]);
	char *saved = crit->pdata[0];
	int rc = 0;

	crit->pdata[0] = first;
	for (size_t i = 0; i < n && rc == 0; i++) {
		ImapMailboxState st;
		RunCtx ctx = { .conn = conn, .targets = t, .only = &t[i] };
		g_autoptr(GError) local = NULL;
		const char *sel = imap_conn_selected(conn);
		bool kept = sel && strcmp(sel, t[i].mailbox) == 0;

		t[i].status =
		    imap_conn_examine(conn, t[i].mailbox, &st, &local);
		/* Selected already: see what arrived since. */
		if (t[i].status == 0 && kept)
			t[i].status = imap_catch_up(conn, 0, &local);
		if (t[i].status < 0) {
			rc = imap_conn_is_broken(conn) ? t[i].status : 0;
			if (rc < 0)
				g_propagate_error(error,
						  g_steal_pointer(&local));
			continue;
		}
		t[i].uidvalidity = st.uidvalidity;
		rc = refused(conn, imap_conn_command_chunks(
				       conn, (char **)crit->pdata, crit->len,
				       run_untagged, &ctx, error));
	}
	crit->pdata[0] = saved;
	return rc;
}

/* ---- pipelined ---- */

/* One batch of targets t[0..n): EXAMINE and SEARCH each (NOOP and SEARCH
 * when the one mailbox is selected already). *bad gets a target whose
 * SEARCH was refused. */
static int run_batch(ImapConn *conn, const char *search_line,
		     ImapSearchTarget *t, size_t n, ImapSearchTarget **bad,
		     GError **error)
{
	g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
	ImapSearchTarget *line_target[2 * BATCH_TARGETS];
	bool line_search[2 * BATCH_TARGETS];
	int statuses[2 * BATCH_TARGETS];
	const char *sel = imap_conn_selected(conn);
	RunCtx ctx = { .conn = conn,
		       .targets = t,
		       .line_target = line_target,
		       .line_search = line_search };
	bool keep = false; /* the one mailbox was selected: it stays */
	int rc;

	for (size_t i = 0; i < n; i++) {
		g_autofree char *q = imap_conn_quote(conn, t[i].mailbox);

		if (!q) {
			t[i].status = -EINVAL;
			continue;
		}
		keep = n == 1 && sel && strcmp(sel, t[i].mailbox) == 0;
		line_target[lines->len] = &t[i];
		line_search[lines->len] = false;
		/* Selected already: NOOP first, in the same round trip, so
		 * that the search sees what arrived since (imap_catch_up()). */
		g_ptr_array_add(lines, keep ? g_strdup("NOOP")
					    : g_strdup_printf("EXAMINE %s", q));
		line_target[lines->len] = &t[i];
		line_search[lines->len] = true;
		g_ptr_array_add(lines, g_strdup(search_line));
	}
	if (lines->len == 0)
		return 0;
	rc = imap_conn_pipeline(conn, (char **)lines->pdata, lines->len,
				statuses, run_untagged, &ctx, error);
	if (!keep)
		imap_conn_forget_selected(conn);
	if (rc < 0)
		return rc;
	for (guint i = 0; i < lines->len; i++) {
		ImapSearchTarget *x = line_target[i];

		if (statuses[i] == 0 || x->status < 0)
			continue;
		x->status = statuses[i];
		if (line_search[i] && !*bad)
			*bad = x;
	}
	return 0;
}

/* The server's words for a refused search: that one search alone. */
static int explain_refusal(ImapConn *conn, const char *search_line,
			   ImapSearchTarget *t, GError **error)
{
	RunCtx ctx = { .conn = conn, .targets = t, .only = t };
	int rc;

	g_clear_error(error);
	rc = imap_conn_examine(conn, t->mailbox, NULL, error);
	if (rc == 0)
		rc = imap_conn_command(conn, run_untagged, &ctx, error, "%s",
				       search_line);
	if (rc == 0 || !*error) {
		g_clear_error(error);
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_BAD,
			    "the server refused the search");
	}
	return imap_conn_is_broken(conn) ? rc : -EINVAL;
}

static int run_pipelined(ImapConn *conn, const char *search_line,
			 ImapSearchTarget *t, size_t n, GError **error)
{
	ImapSearchTarget *bad = NULL;

	for (size_t i = 0; i < n; i += BATCH_TARGETS) {
		int rc =
		    run_batch(conn, search_line, t + i,
			      MIN(n - i, (size_t)BATCH_TARGETS), &bad, error);

		if (rc < 0)
			return rc;
		if (bad)
			return explain_refusal(conn, search_line, bad, error);
	}
	g_clear_error(error); /* refusals of single EXAMINEs */
	return 0;
}

int imap_search_run(ImapConn *conn, const char *query,
		    ImapSearchTarget *targets, size_t n, GError **error)
{
	g_autoptr(GPtrArray) crit = NULL;
	g_autofree char *why = NULL;
	const char *search = imap_conn_has_cap(conn, "ESEARCH")
				 ? "UID SEARCH RETURN (ALL)"
				 : "UID SEARCH";
	int rc;

	for (size_t i = 0; i < n; i++) {
		g_array_set_size(targets[i].uids, 0);
		targets[i].uidvalidity = 0;
		targets[i].status = 0;
	}
	if (imap_search_compile(query, search_caps(conn), &crit, &why) < 0) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_BAD, "%s", why);
		return -EINVAL;
	}
	if (n == 0)
		rc = 0;
	else if (imap_conn_has_cap(conn, "MULTISEARCH"))
		rc = run_multi(conn, crit, targets, n, error);
	else if (crit->len > 1)
		rc = run_serial(conn, search, crit, targets, n, error);
	else {
		g_autofree char *line =
		    g_strdup_printf("%s %s", search, (char *)crit->pdata[0]);

		rc = run_pipelined(conn, line, targets, n, error);
	}
	for (size_t i = 0; i < n; i++)
		sort_unique(targets[i].uids);
	return rc;
}
