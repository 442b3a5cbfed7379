/* imap/bodystructure.c: BODYSTRUCTURE values to ImapBodyPart trees.
 *
 * Pure and stateless. The recursion is bounded by IMAP_BODY_MAX_DEPTH
 * (the parser's own list-depth limit is lower still), so hostile nesting
 * can neither blow the stack nor allocate without bound: the part count
 * and string lengths are checked as the tree grows. Section numbers
 * follow RFC 3501 6.4.5: the children of a multipart at "2" are "2.1",
 * "2.2"; the body of a message/rfc822 at "2" is "2.1" when it is not a
 * multipart, else its children are "2.1", "2.2".
 */
#include "imap/bodystructure.h"

#include <errno.h>
#include <string.h>

typedef struct {
	size_t parts;
} Budget;

void imap_body_part_free(ImapBodyPart *part)
{
	if (!part)
		return;
	g_free(part->type);
	g_free(part->subtype);
	g_free(part->section);
	if (part->params)
		g_ptr_array_unref(part->params);
	g_free(part->encoding);
	g_free(part->disposition);
	if (part->disp_params)
		g_ptr_array_unref(part->disp_params);
	g_free(part->subject);
	imap_body_part_free(part->message);
	if (part->children)
		g_ptr_array_unref(part->children);
	g_free(part);
}

/* A string field: 0 with *out (NULL for NIL), -EPROTO, -E2BIG. */
static int get_string(const ImapValue *v, bool lower, char **out)
{
	const char *s;
	size_t len;

	*out = NULL;
	if (!v)
		return -EPROTO;
	if (v->type == IMAP_VALUE_NIL)
		return 0;
	s = imap_value_get_string(v, &len);
	if (!s)
		return -EPROTO;
	if (len > IMAP_BODY_MAX_STRING)
		return -E2BIG;
	*out = lower ? g_ascii_strdown(s, (gssize)len) : g_strndup(s, len);
	return 0;
}

/* "(name value name value ...)" or NIL into a new array. */
static int get_params(const ImapValue *v, GPtrArray **out)
{
	*out = g_ptr_array_new_with_free_func(g_free);
	if (!v || v->type == IMAP_VALUE_NIL)
		return 0;
	if (v->type != IMAP_VALUE_LIST || v->len % 2 != 0)
		return -EPROTO;
	for (size_t i = 0; i < v->len; i++) {
		char *s;
		int rc = get_string(&v->items[i], i % 2 == 0, &s);

		if (rc < 0)
			return rc;
		g_ptr_array_add(*out, s ? s : g_strdup(""));
	}
	return 0;
}

const char *imap_body_param(const GPtrArray *params, const char *name)
{
	for (guint i = 0; params && i + 1 < params->len; i += 2)
		if (g_ascii_strcasecmp(params->pdata[i], name) == 0)
			return params->pdata[i + 1];
	return NULL;
}

/* Optional disposition "(type (params))" at v; malformed ones are
 * ignored. */
static int get_disposition(const ImapValue *v, ImapBodyPart *p)
{
	int rc;

	if (!v || v->type != IMAP_VALUE_LIST || v->len < 1)
		return 0;
	rc = get_string(&v->items[0], true, &p->disposition);
	if (rc == -E2BIG)
		return rc;
	if (rc < 0)
		return 0;
	rc = get_params(imap_list_get(v, 1), &p->disp_params);
	return rc == -E2BIG ? rc : 0;
}

static char *join_section(const char *base, size_t n)
{
	return *base ? g_strdup_printf("%s.%zu", base, n)
		     : g_strdup_printf("%zu", n);
}

static int parse_part(const ImapValue *v, const char *section, int depth,
		      Budget *b, ImapBodyPart **out);

static int parse_multipart(const ImapValue *v, const char *section, int depth,
			   Budget *b, ImapBodyPart *p)
{
	size_t n = 0;
	int rc;

	p->type = g_strdup("multipart");
	p->children =
	    g_ptr_array_new_with_free_func((GDestroyNotify)imap_body_part_free);
	while (n < v->len && v->items[n].type == IMAP_VALUE_LIST) {
		g_autofree char *s = join_section(section, n + 1);
		ImapBodyPart *c = NULL;

		rc = parse_part(&v->items[n], s, depth + 1, b, &c);
		if (rc < 0)
			return rc;
		g_ptr_array_add(p->children, c);
		n++;
	}
	if (n == 0 || n >= v->len)
		return -EPROTO;
	rc = get_string(&v->items[n], true, &p->subtype);
	if (rc < 0 || !p->subtype)
		return rc < 0 ? rc : -EPROTO;
	/* extension data: params, disposition, language, location */
	rc = get_params(imap_list_get(v, n + 1), &p->params);
	if (rc == -E2BIG)
		return rc;
	return get_disposition(imap_list_get(v, n + 2), p);
}

/* message/rfc822: envelope, body, lines after the seven basic fields. */
static int parse_message(const ImapValue *v, const char *section, int depth,
			 Budget *b, ImapBodyPart *p)
{
	const ImapValue *env = imap_list_get(v, 7);
	const ImapValue *body = imap_list_get(v, 8);
	g_autofree char *inner = NULL;
	int rc;

	if (!env || !body || body->type != IMAP_VALUE_LIST)
		return -EPROTO;
	if (env->type == IMAP_VALUE_LIST && env->len >= 2) {
		rc = get_string(&env->items[1], false, &p->subject);
		if (rc == -E2BIG)
			return rc;
	}
	/* A multipart body's children number from the part itself. */
	if (body->len > 0 && body->items[0].type == IMAP_VALUE_LIST)
		inner = g_strdup(section);
	else
		inner = join_section(section, 1);
	return parse_part(body, inner, depth + 1, b, &p->message);
}

static int parse_single(const ImapValue *v, const char *section, int depth,
			Budget *b, ImapBodyPart *p)
{
	size_t ext;
	int rc;

	if (v->len < 7)
		return -EPROTO;
	if ((rc = get_string(&v->items[0], true, &p->type)) < 0 ||
	    (rc = get_string(&v->items[1], true, &p->subtype)) < 0 ||
	    (rc = get_params(&v->items[2], &p->params)) < 0 ||
	    (rc = get_string(&v->items[5], true, &p->encoding)) < 0)
		return rc;
	if (!p->type || !p->subtype ||
	    !imap_value_get_u64(&v->items[6], &p->size))
		return -EPROTO;
	ext = 7; /* body-fld-md5 follows the basic fields */
	if (strcmp(p->type, "text") == 0) {
		ext = 8; /* lines */
	} else if (strcmp(p->type, "message") == 0 &&
		   (strcmp(p->subtype, "rfc822") == 0 ||
		    strcmp(p->subtype, "global") == 0) &&
		   v->len >= 10) {
		rc = parse_message(v, section, depth, b, p);
		if (rc < 0)
			return rc;
		ext = 10; /* envelope, body, lines */
	}
	return get_disposition(imap_list_get(v, ext + 1), p);
}

static int parse_part(const ImapValue *v, const char *section, int depth,
		      Budget *b, ImapBodyPart **out)
{
	ImapBodyPart *p;
	int rc;

	*out = NULL;
	if (!v || v->type != IMAP_VALUE_LIST || v->len == 0)
		return -EPROTO;
	if (depth > IMAP_BODY_MAX_DEPTH || ++b->parts > IMAP_BODY_MAX_PARTS)
		return -E2BIG;
	p = g_new0(ImapBodyPart, 1);
	p->section = g_strdup(section);
	if (v->items[0].type == IMAP_VALUE_LIST)
		rc = parse_multipart(v, section, depth, b, p);
	else
		rc = parse_single(v, section, depth, b, p);
	if (rc < 0) {
		imap_body_part_free(p);
		return rc;
	}
	if (!p->params)
		p->params = g_ptr_array_new_with_free_func(g_free);
	*out = p;
	return 0;
}

int imap_bodystructure_parse(const ImapValue *v, ImapBodyPart **out)
{
	Budget b = { 0 };

	/* A top-level single part is section 1; a multipart has none. */
	if (v && v->type == IMAP_VALUE_LIST && v->len > 0 &&
	    v->items[0].type != IMAP_VALUE_LIST)
		return parse_part(v, "1", 0, &b, out);
	return parse_part(v, "", 0, &b, out);
}

void imap_body_foreach_leaf(const ImapBodyPart *part,
			    void (*fn)(const ImapBodyPart *leaf, void *data),
			    void *data)
{
	if (part->children) {
		for (guint i = 0; i < part->children->len; i++)
			imap_body_foreach_leaf(part->children->pdata[i], fn,
					       data);
		return;
	}
	fn(part, data);
	if (part->message)
		imap_body_foreach_leaf(part->message, fn, data);
}
