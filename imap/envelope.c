/* imap/envelope.c: ENVELOPE and Gmail FETCH items to strings (see
 * imap/envelope.h). Pure and stateless: the parser already bounded the
 * response (line length, list depth, items); this bounds what it keeps.
 */
#include "imap/envelope.h"

#include <string.h>

#include "imap/mutf7.h"

void imap_envelope_free(ImapEnvelope *env)
{
	if (!env)
		return;
	g_free(env->date);
	g_free(env->subject);
	g_free(env->from);
	g_free(env->sender);
	g_free(env->reply_to);
	g_free(env->to);
	g_free(env->cc);
	g_free(env->bcc);
	g_free(env->in_reply_to);
	g_free(env->message_id);
	g_free(env->gm_labels);
	g_free(env->gm_msgid);
	g_free(env->gm_thrid);
	g_free(env);
}

/* A string value without NUL bytes, cut to the limit; NULL for NIL. */
static char *dup_string(const ImapValue *v)
{
	size_t len = 0;
	const char *s = imap_value_get_string(v, &len);
	const char *nul;

	if (!s)
		return NULL;
	nul = memchr(s, '\0', len);
	if (nul)
		len = (size_t)(nul - s);
	return g_strndup(s, MIN(len, IMAP_ENVELOPE_MAX_LEN));
}

static bool needs_quotes(const char *s)
{
	for (; *s; s++)
		if (strchr("()<>[]:;@\\,.\"", *s))
			return true;
	return false;
}

/* name as an RFC 5322 quoted string. */
static void append_quoted(GString *out, const char *name)
{
	g_string_append_c(out, '"');
	for (; *name; name++) {
		if (*name == '"' || *name == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *name);
	}
	g_string_append_c(out, '"');
}

/* name as an RFC 5322 phrase: quoted when it holds specials. */
static void append_phrase(GString *out, const char *name)
{
	if (needs_quotes(name))
		append_quoted(out, name);
	else
		g_string_append(out, name);
}

/* One address (name adl mailbox host) appended to out; group markers
 * (host NIL) open "mailbox:" or close ";". */
static void append_address(GString *out, const ImapValue *a, bool *first,
			   bool *in_group)
{
	g_autofree char *name = dup_string(imap_list_get(a, 0));
	g_autofree char *mbox = dup_string(imap_list_get(a, 2));
	g_autofree char *host = dup_string(imap_list_get(a, 3));

	if (!host) {
		if (mbox) { /* start of a group */
			if (!*first)
				g_string_append(out, ", ");
			append_phrase(out, mbox);
			g_string_append(out, ": ");
			*first = true;
			*in_group = true;
		} else if (*in_group) {
			g_string_append_c(out, ';');
			*first = false;
			*in_group = false;
		}
		return;
	}
	if (!*first)
		g_string_append(out, ", ");
	*first = false;
	if (name && *name) {
		append_phrase(out, name);
		g_string_append(out, " <");
	}
	g_string_append_printf(out, "%s@%s", mbox ? mbox : "", host);
	if (name && *name)
		g_string_append_c(out, '>');
}

static char *address_list(const ImapValue *v)
{
	GString *out;
	bool first = true, in_group = false;

	if (!v || v->type != IMAP_VALUE_LIST)
		return NULL;
	out = g_string_new(NULL);
	for (size_t i = 0; i < v->len && i < IMAP_ENVELOPE_MAX_ADDRS; i++) {
		const ImapValue *a = &v->items[i];

		if (a->type != IMAP_VALUE_LIST || a->len != 4)
			continue;
		append_address(out, a, &first, &in_group);
		if (out->len > IMAP_ENVELOPE_MAX_LEN)
			break;
	}
	if (in_group)
		g_string_append_c(out, ';');
	return g_string_free(out, FALSE);
}

/* X-GM-LABELS ("\\Inbox" "My label" Work): labels joined by spaces, those
 * with spaces quoted, modified UTF-7 decoded. */
static char *gmail_labels(const ImapValue *v)
{
	GString *out;

	if (!v || v->type != IMAP_VALUE_LIST)
		return NULL;
	out = g_string_new(NULL);
	for (size_t i = 0; i < v->len && out->len < IMAP_ENVELOPE_MAX_LEN;
	     i++) {
		g_autofree char *raw = dup_string(&v->items[i]);
		g_autofree char *dec = NULL;
		const char *label;

		if (!raw)
			continue;
		dec = imap_mutf7_decode(raw, strlen(raw));
		label = dec ? dec : raw;
		if (out->len)
			g_string_append_c(out, ' ');
		if (strchr(label, ' ') || strchr(label, '"'))
			append_quoted(out, label);
		else
			g_string_append(out, label);
	}
	return g_string_free(out, FALSE);
}

static char *decimal(const ImapValue *v)
{
	uint64_t n;

	if (!imap_value_get_u64(v, &n))
		return NULL;
	return g_strdup_printf("%" G_GUINT64_FORMAT, n);
}

ImapEnvelope *imap_envelope_parse(const ImapValue *fetch_list)
{
	const ImapValue *e;
	ImapEnvelope *env;

	if (!fetch_list || fetch_list->type != IMAP_VALUE_LIST)
		return NULL;
	e = imap_fetch_get(fetch_list, "ENVELOPE");
	if (!e || e->type != IMAP_VALUE_LIST || e->len != 10)
		return NULL;
	env = g_new0(ImapEnvelope, 1);
	env->date = dup_string(&e->items[0]);
	env->subject = dup_string(&e->items[1]);
	env->from = address_list(&e->items[2]);
	env->sender = address_list(&e->items[3]);
	env->reply_to = address_list(&e->items[4]);
	env->to = address_list(&e->items[5]);
	env->cc = address_list(&e->items[6]);
	env->bcc = address_list(&e->items[7]);
	env->in_reply_to = dup_string(&e->items[8]);
	env->message_id = dup_string(&e->items[9]);
	env->gm_labels =
	    gmail_labels(imap_fetch_get(fetch_list, "X-GM-LABELS"));
	env->gm_msgid = decimal(imap_fetch_get(fetch_list, "X-GM-MSGID"));
	env->gm_thrid = decimal(imap_fetch_get(fetch_list, "X-GM-THRID"));
	return env;
}
