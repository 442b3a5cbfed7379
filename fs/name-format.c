/* fs/name-format.c: --name-format parsing and message names built from it
 * (see fs/name-format.h).
 *
 * Pure: GMime parses the From and Content-Type values; the names.c
 * sanitiser makes each field safe. Invariant: every name starts with the
 * UID followed by a non-digit (or ".eml"), and is at most FS_NAME_MAX
 * bytes of valid UTF-8 ending ".eml".
 */
#include "fs/name-format.h"

#include <gmime/gmime.h>
#include <string.h>

#include "fs/names.h"

typedef enum { FIELD_DATE, FIELD_FROM, FIELD_SUBJECT } Field;

typedef struct {
	char *sep; /* literal text before the field, not empty */
	Field field;
} Part;

struct FsNameFormat {
	GArray *parts; /* Part, in order */
	uint32_t tag;  /* 0 for the default */
};

static const struct {
	const char *name;
	Field field;
} fields[] = {
	{ "{date}", FIELD_DATE },
	{ "{from}", FIELD_FROM },
	{ "{subject}", FIELD_SUBJECT },
};

static void part_clear(gpointer p)
{
	g_free(((Part *)p)->sep);
}

void fs_name_format_free(FsNameFormat *fmt)
{
	if (!fmt)
		return;
	g_array_unref(fmt->parts);
	g_free(fmt);
}

static FsNameFormat *format_error(FsNameFormat *fmt, GError **error,
				  const char *spec, const char *why)
{
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--name-format=%s: %s (write {uid} first, then any of "
		    "{date}, {from} and {subject}, each after a separator, "
		    "e.g. '{uid} {date} {subject}')",
		    spec, why);
	fs_name_format_free(fmt);
	return NULL;
}

/* The field named at p, or -1; *len gets the length of its name. */
static int field_at(const char *p, size_t *len)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
		size_t n = strlen(fields[i].name);

		if (strncmp(p, fields[i].name, n) == 0) {
			*len = n;
			return (int)fields[i].field;
		}
	}
	return -1;
}

FsNameFormat *fs_name_format_parse(const char *spec, GError **error)
{
	FsNameFormat *fmt = g_new0(FsNameFormat, 1);
	const char *p;

	fmt->parts = g_array_new(FALSE, TRUE, sizeof(Part));
	g_array_set_clear_func(fmt->parts, part_clear);
	if (!spec)
		spec = FS_NAME_FORMAT_DEFAULT;
	/* Any nonzero hash will do: it only tells formats apart. */
	if (strcmp(spec, FS_NAME_FORMAT_DEFAULT) != 0)
		fmt->tag = g_str_hash(spec) | 1u;
	if (!g_utf8_validate(spec, -1, NULL))
		return format_error(fmt, error, spec, "not UTF-8");
	if (strncmp(spec, "{uid}", 5) != 0)
		return format_error(fmt, error, spec, "{uid} must come first");
	for (p = spec + 5; *p;) {
		const char *sep = p;
		size_t flen = 0;
		Part part;
		int f;

		while (*p && *p != '{' && *p != '}' && *p != '/')
			p++;
		if (*p == '/' || *p == '}')
			return format_error(fmt, error, spec,
					    "'/' and '}' cannot be in a name");
		if (p == sep)
			return format_error(fmt, error, spec,
					    "fields need a separator");
		if (g_ascii_isdigit(*sep))
			return format_error(fmt, error, spec,
					    "a digit cannot follow {uid}");
		if (!*p)
			return format_error(fmt, error, spec,
					    "text after the last field");
		f = field_at(p, &flen);
		if (f < 0)
			return format_error(fmt, error, spec,
					    strncmp(p, "{uid}", 5) == 0
						? "{uid} only once"
						: "unknown field");
		part.sep = g_strndup(sep, (gsize)(p - sep));
		part.field = (Field)f;
		g_array_append_val(fmt->parts, part);
		p += flen;
	}
	return fmt;
}

uint32_t fs_name_format_tag(const FsNameFormat *fmt)
{
	return fmt ? fmt->tag : 0;
}

bool fs_name_format_uses_from(const FsNameFormat *fmt)
{
	for (guint i = 0; fmt && i < fmt->parts->len; i++)
		if (g_array_index(fmt->parts, Part, i).field == FIELD_FROM)
			return true;
	return false;
}

static gpointer gmime_init_once(gpointer unused)
{
	g_mime_init();
	return NULL;
}

static void gmime_ready(void)
{
	static GOnce once = G_ONCE_INIT;

	g_once(&once, gmime_init_once, NULL);
}

char *fs_name_declared_charset(const char *content_type)
{
	GMimeContentType *ct;
	char *cs = NULL;

	if (!content_type || !*content_type)
		return NULL;
	gmime_ready();
	ct = g_mime_content_type_parse(NULL, content_type);
	if (ct) {
		cs = g_strdup(g_mime_content_type_get_parameter(ct, "charset"));
		g_object_unref(ct);
	}
	return cs;
}

/* The sender's display name, else address, decoded and sanitised. */
static char *from_part(const char *from)
{
	InternetAddressList *list;
	InternetAddress *a;
	char *out = NULL;

	if (!from || !*from)
		return g_strdup("");
	gmime_ready();
	list = internet_address_list_parse(NULL, from);
	if (list && internet_address_list_length(list) > 0) {
		const char *name, *addr = NULL;

		a = internet_address_list_get_address(list, 0);
		name = internet_address_get_name(a);
		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			addr = internet_address_mailbox_get_addr(
			    INTERNET_ADDRESS_MAILBOX(a));
		out = fs_name_text_part(name && *name ? name : addr);
	}
	if (list)
		g_object_unref(list);
	return out ? out : fs_name_text_part(from);
}

static char *field_value(Field f, const FsNameFields *m)
{
	switch (f) {
	case FIELD_DATE: {
		g_autoptr(GDateTime) d =
		    g_date_time_new_from_unix_utc(m->internaldate);

		return d ? g_date_time_format(d, "%Y-%m-%d") : g_strdup("");
	}
	case FIELD_FROM:
		return from_part(m->from);
	case FIELD_SUBJECT: {
		g_autofree char *cs = NULL;

		/* The declared charset matters only for raw 8-bit bytes: most
		 * subjects never need the Content-Type parsed. */
		for (size_t i = 0; i < m->subject_len && !cs; i++)
			if (m->subject[i] & 0x80)
				cs = fs_name_declared_charset(m->content_type);
		return fs_name_subject_part(m->subject, m->subject_len, cs);
	}
	}
	return g_strdup("");
}

char *fs_name_format_message(const FsNameFormat *fmt, const FsNameFields *m)
{
	g_autoptr(GString) name = NULL;
	size_t max;

	if (!fmt)
		return fs_name_for_message(m->uid, m->subject, m->subject_len);
	name = g_string_new(NULL);
	g_string_printf(name, "%" G_GUINT32_FORMAT, m->uid);
	max = FS_NAME_MAX - strlen(".eml");
	for (guint i = 0; i < fmt->parts->len; i++) {
		const Part *p = &g_array_index(fmt->parts, Part, i);
		g_autofree char *v = field_value(p->field, m);
		size_t room;
		const char *end;

		if (!*v)
			continue;
		if (name->len + strlen(p->sep) >= max)
			break;
		g_string_append(name, p->sep);
		/* Cut at a character boundary to fit. */
		room = max - name->len;
		if (strlen(v) > room) {
			g_utf8_validate_len(v, room, &end);
			v[end - v] = '\0';
		}
		g_string_append(name, v);
	}
	g_string_append(name, ".eml");
	return g_string_free(g_steal_pointer(&name), FALSE);
}
