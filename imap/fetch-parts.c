/* imap/fetch-parts.c: BODYSTRUCTURE, BINARY.SIZE and single sections for
 * the parts layout. Stateless; each call is one or two commands on the
 * caller's connection. Answers are matched by UID, and a section's data
 * item by its exact name ("BINARY[1.2]", "BODY[1.2]"), so untagged data
 * for other messages or unsolicited FLAGS updates pass through. */
#include "imap/fetch-parts.h"

#include <errno.h>
#include <string.h>

/* Sections per BINARY.SIZE command: keeps the line short. */
#define SIZES_PER_COMMAND 200

typedef struct {
	uint32_t uid;
	ImapBodyPart *structure;
	GHashTable *by_section; /* section -> ImapBodyPart*, for sizes */
	int rc;
} StructCtx;

/* The FETCH attribute list of r when it is about uid, else NULL. */
static const ImapValue *fetch_of(ImapResponse *r, uint32_t uid)
{
	uint32_t u;
	const ImapValue *list = imap_fetch_answer(r, &u);

	return list && u == uid ? list : NULL;
}

static int structure_untagged(void *user_data, ImapResponse *r)
{
	StructCtx *ctx = user_data;
	const ImapValue *list = fetch_of(r, ctx->uid), *bs;

	if (!list || ctx->structure)
		return 0;
	bs = imap_fetch_get(list, "BODYSTRUCTURE");
	if (bs)
		ctx->rc = imap_bodystructure_parse(bs, &ctx->structure);
	return 0;
}

static int sizes_untagged(void *user_data, ImapResponse *r)
{
	StructCtx *ctx = user_data;
	const ImapValue *list = fetch_of(r, ctx->uid);

	for (size_t i = 0; list && i + 1 < list->len; i += 2) {
		const ImapValue *key = &list->items[i];
		g_autofree char *section = NULL;
		ImapBodyPart *p;
		uint64_t n;

		if (key->type != IMAP_VALUE_ATOM ||
		    g_ascii_strncasecmp(key->str, "BINARY.SIZE[", 12) != 0 ||
		    !imap_value_get_u64(&list->items[i + 1], &n))
			continue;
		section = g_strndup(key->str + 12, strcspn(key->str + 12, "]"));
		p = g_hash_table_lookup(ctx->by_section, section);
		if (p) {
			p->binary_size = n;
			p->has_binary_size = true;
		}
	}
	return 0;
}

static void collect_leaf(const ImapBodyPart *leaf, void *data)
{
	if (!leaf->message)
		g_hash_table_insert(data, leaf->section, (gpointer)leaf);
}

static int fetch_sizes(ImapConn *conn, StructCtx *ctx, GError **error)
{
	g_autoptr(GString) items = g_string_new(NULL);
	GHashTableIter it;
	gpointer key;
	unsigned n = 0;
	int rc = 0;

	ctx->by_section = g_hash_table_new(g_str_hash, g_str_equal);
	imap_body_foreach_leaf(ctx->structure, collect_leaf, ctx->by_section);
	g_hash_table_iter_init(&it, ctx->by_section);
	while (rc == 0) {
		bool more = g_hash_table_iter_next(&it, &key, NULL);

		if (more)
			g_string_append_printf(items, " BINARY.SIZE[%s]",
					       (const char *)key);
		if (more && ++n % SIZES_PER_COMMAND != 0)
			continue;
		if (items->len)
			rc = imap_conn_command(conn, sizes_untagged, ctx, error,
					       "UID FETCH %u (UID%s)", ctx->uid,
					       items->str);
		g_string_truncate(items, 0);
		if (!more)
			break;
	}
	g_hash_table_unref(ctx->by_section);
	return rc;
}

int imap_fetch_structure(ImapConn *conn, uint32_t uid, ImapBodyPart **out,
			 GError **error)
{
	StructCtx ctx = { .uid = uid };
	int rc;

	*out = NULL;
	for (unsigned step = 0;; step++) {
		rc = imap_conn_command(conn, structure_untagged, &ctx, error,
				       "UID FETCH %u (UID BODYSTRUCTURE)", uid);
		/* No answer: maybe new to this session (imap_catch_up()). */
		if (rc < 0 || ctx.structure || ctx.rc < 0 ||
		    step == IMAP_CATCH_UP_STEPS)
			break;
		rc = imap_catch_up(conn, step, error);
		if (rc < 0)
			break;
	}
	if (rc == 0 && (!ctx.structure || ctx.rc < 0)) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "no usable BODYSTRUCTURE for UID %u", uid);
		rc = -EIO;
	}
	if (rc == 0 && !imap_conn_has_cap(conn, "BINARY"))
		rc = -ENOTSUP;
	else if (rc == 0)
		rc = fetch_sizes(conn, &ctx, error);
	if (rc < 0 && rc != -ENOTSUP)
		g_clear_pointer(&ctx.structure, imap_body_part_free);
	*out = ctx.structure;
	return rc;
}

typedef struct {
	uint32_t uid;
	char *item; /* "BINARY[1.2]" */
	ImapBodyFn fn;
	void *user_data;
	bool seen;
	int rc;
} SectionCtx;

static int section_untagged(void *user_data, ImapResponse *r)
{
	SectionCtx *ctx = user_data;
	const ImapValue *list = fetch_of(r, ctx->uid);

	for (size_t i = 0; list && !ctx->seen && i + 1 < list->len; i += 2) {
		ImapValue *v = (ImapValue *)&list->items[i + 1];

		if (!imap_value_is_atom(&list->items[i], ctx->item))
			continue;
		ctx->seen = true;
		ctx->rc = ctx->fn(
		    ctx->user_data, ctx->uid,
		    &(ImapBody){
			.streamed = imap_conn_take_literal(v),
			.data = v->type == IMAP_VALUE_STRING ? v->str : NULL,
			.len = v->type == IMAP_VALUE_STRING ? v->len : 0,
			.nil = v->type == IMAP_VALUE_NIL,
		    });
	}
	return 0;
}

int imap_fetch_section(ImapConn *conn, uint32_t uid, const char *section,
		       bool binary, const ImapLiteralSink *sink,
		       void *sink_data, ImapBodyFn fn, void *user_data,
		       GError **error)
{
	const char *kind = binary ? "BINARY" : "BODY";
	g_autofree char *item = g_strdup_printf("%s[%s]", kind, section);
	SectionCtx ctx = { uid, item, fn, user_data, false, 0 };
	int rc;

	for (unsigned step = 0;; step++) {
		rc = imap_conn_command_sink(
		    conn, sink, sink_data, section_untagged, &ctx, error,
		    "UID FETCH %u (UID %s.PEEK[%s])", uid, kind, section);
		/* No answer: maybe new to this session (imap_catch_up()). */
		if (rc < 0 || ctx.seen || step == IMAP_CATCH_UP_STEPS)
			break;
		rc = imap_catch_up(conn, step, error);
		if (rc < 0)
			break;
	}
	if (rc == 0 && !ctx.seen) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "no %s for UID %u", item, uid);
		rc = -EIO;
	}
	return rc < 0 ? rc : ctx.rc;
}
