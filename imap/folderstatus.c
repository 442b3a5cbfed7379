/* imap/folderstatus.c: pipelined STATUS of a list of folders and the
 * parsing of its answers.
 *
 * Stateless; the caller's callback sees each STATUS while the command
 * runs. Commands go out in one write (imap_conn_pipeline), so n folders
 * cost one round trip, not n.
 */
#include "imap/folderstatus.h"

#include <errno.h>
#include <string.h>

bool imap_folder_status_parse(const ImapResponse *r, ImapFolderStatus *st)
{
	const ImapValue *name, *items;
	size_t len = 0;

	if (r->kind != IMAP_RESPONSE_UNTAGGED || !r->name ||
	    strcmp(r->name, "STATUS") != 0 || r->args.len < 2)
		return false;
	name = imap_list_get(&r->args, 0);
	items = imap_list_get(&r->args, 1);
	if (name->type != IMAP_VALUE_ATOM && name->type != IMAP_VALUE_STRING)
		return false;
	if (items->type != IMAP_VALUE_LIST)
		return false;
	st->folder = imap_value_get_string(name, &len);
	if (!st->folder || memchr(st->folder, '\0', len))
		return false;
	st->changed = false;
	st->has_uidnext = st->has_messages = false;
	st->has_uidvalidity = st->has_modseq = false;
	for (size_t i = 0; i + 1 < items->len; i += 2) {
		const ImapValue *key = imap_list_get(items, i);
		uint64_t v;

		if (!imap_value_get_u64(imap_list_get(items, i + 1), &v))
			continue;
		if (imap_value_is_atom(key, "HIGHESTMODSEQ")) {
			st->has_modseq = true;
			st->highestmodseq = v;
			continue;
		}
		if (v > UINT32_MAX)
			continue;
		if (imap_value_is_atom(key, "UIDNEXT")) {
			st->has_uidnext = true;
			st->uidnext = (uint32_t)v;
		} else if (imap_value_is_atom(key, "MESSAGES")) {
			st->has_messages = true;
			st->messages = (uint32_t)v;
		} else if (imap_value_is_atom(key, "UIDVALIDITY")) {
			st->has_uidvalidity = true;
			st->uidvalidity = (uint32_t)v;
		}
	}
	return true;
}

typedef struct {
	ImapFolderStatusFn fn;
	void *user_data;
	const char *selected; /* asked about by NOOP, or NULL */
	bool reported;
} StatusCtx;

static int status_untagged(void *user_data, ImapResponse *r)
{
	StatusCtx *ctx = user_data;
	ImapFolderStatus st = { 0 };

	if (imap_folder_status_parse(r, &st)) {
		ctx->fn(ctx->user_data, &st);
		return 0;
	}
	/* News of the selected folder, which the NOOP asked for. */
	if (ctx->selected && !ctx->reported && r->name &&
	    (strcmp(r->name, "EXISTS") == 0 ||
	     strcmp(r->name, "EXPUNGE") == 0 ||
	     strcmp(r->name, "VANISHED") == 0)) {
		ctx->reported = true;
		st.folder = ctx->selected;
		st.changed = true;
		ctx->fn(ctx->user_data, &st);
	}
	return 0;
}

int imap_folder_status_many(ImapConn *conn, char *const *folders, size_t n,
			    ImapFolderStatusFn fn, void *user_data,
			    GError **error)
{
	g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
	const char *items =
	    (imap_conn_modseq_caps(conn) & IMAP_MODSEQ_CONDSTORE)
		? "(UIDNEXT MESSAGES UIDVALIDITY HIGHESTMODSEQ)"
		: "(UIDNEXT MESSAGES UIDVALIDITY)";
	StatusCtx ctx = { fn, user_data, NULL, false };
	const char *selected = imap_conn_selected(conn);
	g_autofree int *statuses = NULL;
	g_autoptr(GError) refused = NULL;
	int rc;

	for (size_t i = 0; i < n; i++) {
		g_autofree char *q = imap_conn_quote(conn, folders[i]);

		/* STATUS of the selected folder may tell its state as of
		 * the EXAMINE (Courier does): NOOP brings its news. */
		if (selected && strcmp(selected, folders[i]) == 0) {
			ctx.selected = selected;
			g_ptr_array_add(lines, g_strdup("NOOP"));
		} else if (q)
			g_ptr_array_add(
			    lines, g_strdup_printf("STATUS %s %s", q, items));
	}
	if (lines->len == 0)
		return 0;
	statuses = g_new0(int, lines->len);
	rc = imap_conn_pipeline(conn, (char **)lines->pdata, lines->len,
				statuses, status_untagged, &ctx, &refused);
	if (rc < 0 && refused)
		g_propagate_error(error, g_steal_pointer(&refused));
	return rc;
}
