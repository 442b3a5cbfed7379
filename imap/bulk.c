/* imap/bulk.c: pipelined listings of many folders (see bulk.h).
 *
 * Stateless, on a connection the caller holds alone. Pipelined EXAMINEs
 * bypass imap_conn_examine(), so the connection is told to forget its
 * selected mailbox afterwards. A FETCH after an EXAMINE that failed may
 * see no mailbox, or (on a server that keeps the old one selected) the
 * previous folder's messages: such a target's status is the EXAMINE's
 * refusal and its messages must be ignored.
 */
#include "imap/bulk.h"

#include <errno.h>
#include <string.h>

#include "imap/conn-private.h"

/* Folders per pipelined batch: about 20 KB of commands, which a socket
 * buffer takes whole while the answers wait. */
#define BATCH_TARGETS 100

typedef struct {
	ImapConn *conn;
	ImapBulkTarget *t;
	ImapBulkMetaFn fn;
	void *user_data;
	GString *keywords;
	/* per line: its target, and whether it is the FETCH */
	size_t line_target[2 * BATCH_TARGETS];
	bool line_fetch[2 * BATCH_TARGETS];
	size_t cur; /* target of the FETCH answer being parsed */
} BulkCtx;

static void bulk_meta(void *user_data, const ImapMessageMeta *m)
{
	BulkCtx *ctx = user_data;

	ctx->fn(ctx->user_data, ctx->cur, m);
}

static int bulk_untagged(void *user_data, ImapResponse *r)
{
	BulkCtx *ctx = user_data;
	int i = imap_conn_batch_index(ctx->conn, NULL);

	if (i < 0)
		return 0;
	ctx->cur = ctx->line_target[i];
	if (ctx->line_fetch[i])
		imap_fetch_meta_parse(r, ctx->keywords, bulk_meta, ctx);
	else
		imap_mailbox_state_note(&ctx->t[ctx->cur].state, r);
	/* Never fail the command: that would fail the whole pipeline. */
	return 0;
}

static int run_batch(BulkCtx *ctx, size_t first, size_t n, unsigned fields,
		     GError **error)
{
	g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
	const char *params =
	    (imap_conn_modseq_caps(ctx->conn) & IMAP_MODSEQ_CONDSTORE)
		? " (CONDSTORE)"
		: "";
	int statuses[2 * BATCH_TARGETS];
	int rc;

	for (size_t i = first; i < first + n; i++) {
		g_autofree char *q =
		    imap_conn_quote(ctx->conn, ctx->t[i].mailbox);

		memset(&ctx->t[i].state, 0, sizeof(ctx->t[i].state));
		if (!q) {
			ctx->t[i].status = -EINVAL;
			continue;
		}
		ctx->t[i].status = 0;
		ctx->line_target[lines->len] = i;
		ctx->line_fetch[lines->len] = false;
		g_ptr_array_add(lines,
				g_strdup_printf("EXAMINE %s%s", q, params));
		if (!ctx->t[i].fetch)
			continue;
		ctx->line_target[lines->len] = i;
		ctx->line_fetch[lines->len] = true;
		g_ptr_array_add(lines,
				imap_fetch_meta_line(ctx->conn, "1:*", fields));
	}
	if (lines->len == 0)
		return 0;
	rc = imap_conn_pipeline(ctx->conn, (char **)lines->pdata, lines->len,
				statuses, bulk_untagged, ctx, error);
	imap_conn_forget_selected(ctx->conn);
	if (rc < 0)
		return rc;
	/* A refusal is that folder's alone: the pipeline's error is not
	 * the caller's. */
	g_clear_error(error);
	for (guint k = 0; k < lines->len; k++) {
		ImapBulkTarget *x = &ctx->t[ctx->line_target[k]];

		/* Some servers refuse "1:*" in an empty mailbox. */
		if (ctx->line_fetch[k] && x->state.exists == 0)
			continue;
		if (statuses[k] != 0 && x->status == 0)
			x->status = statuses[k] < 0 ? statuses[k] : -EIO;
	}
	for (size_t i = first; i < first + n; i++) {
		ImapBulkTarget *x = &ctx->t[i];

		if (x->status == 0 && x->state.uidvalidity == 0)
			x->status = -EPROTO;
		/* Mail arrived in a folder thought empty: not listed. */
		if (x->status == 0 && !x->fetch && x->state.exists > 0)
			x->status = -EAGAIN;
	}
	return 0;
}

int imap_bulk_list(ImapConn *conn, ImapBulkTarget *t, size_t n, unsigned fields,
		   ImapBulkMetaFn fn, void *user_data, GError **error)
{
	g_autoptr(GString) keywords = g_string_new(NULL);
	BulkCtx *ctx = g_new0(BulkCtx, 1);
	int rc = 0;

	ctx->conn = conn;
	ctx->t = t;
	ctx->fn = fn;
	ctx->user_data = user_data;
	ctx->keywords = keywords;
	for (size_t first = 0; rc == 0 && first < n; first += BATCH_TARGETS)
		rc = run_batch(ctx, first, MIN(BATCH_TARGETS, n - first),
			       fields, error);
	g_free(ctx);
	return rc;
}
