/* fs/parts-mime.c: the parts layout's view of one message, built with
 * GMime (MIME structure, transfer decoding, RFC 2047/2231 names, charsets).
 *
 * fs_parts_build() parses the message from its cache file (GMime keeps
 * offsets into the stream, not copies) and writes every file it shows to
 * an unlinked temp file: attachments streamed through GMime's decoders,
 * text.txt and text.html converted to UTF-8. The result is an immutable
 * tree owned by the caller; nothing here keeps state, so it may run on
 * any number of threads at once (g_mime_init() must have run).
 *
 * Sections are numbered as IMAP numbers them (RFC 3501 6.4.5): "1.2" is
 * the second child of the first; an attached message's parts continue its
 * own section. Broken mail gives best-effort files: GMime recovers from
 * truncated multiparts and bad base64, an unknown charset falls back to
 * UTF-8 or ISO-8859-1, and nesting past PARTS_MAX_DEPTH is left in
 * message.eml.
 */
#define _GNU_SOURCE
#include "fs/parts-mime.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_BYTES 255

typedef struct {
	const char *tmpdir;
	GPtrArray *items; /* of the directory being built */
	GHashTable *used; /* names taken in it */
	GMimeObject *plain, *html;
	int depth;
} Dir;

void fs_parts_item_free(PartsItem *item)
{
	if (!item)
		return;
	if (item->fd >= 0)
		close(item->fd);
	if (item->children)
		g_ptr_array_unref(item->children);
	g_free(item->section);
	g_free(item->encoding);
	g_free(item->name);
	g_free(item);
}

int fs_parts_temp_file(const char *dir)
{
	g_autofree char *path = NULL;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	path = g_build_filename(dir, "part-XXXXXX", NULL);
	fd = g_mkstemp_full(path, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* ---- names ---- */

static const char *ext_for(const char *mime_type)
{
	static const char *const map[][2] = {
		{ "text/plain", "txt" },        { "text/html", "html" },
		{ "text/calendar", "ics" },     { "text/csv", "csv" },
		{ "image/png", "png" },         { "image/jpeg", "jpg" },
		{ "image/gif", "gif" },         { "image/webp", "webp" },
		{ "image/svg+xml", "svg" },     { "application/pdf", "pdf" },
		{ "application/zip", "zip" },   { "message/rfc822", "eml" },
		{ "application/json", "json" }, { "text/xml", "xml" },
	};

	for (size_t i = 0; mime_type && i < G_N_ELEMENTS(map); i++)
		if (g_ascii_strcasecmp(mime_type, map[i][0]) == 0)
			return map[i][1];
	if (mime_type && g_ascii_strncasecmp(mime_type, "text/", 5) == 0)
		return "txt";
	return "bin";
}

/* The longest prefix of s of at most max bytes that ends on a character
 * boundary (s is valid UTF-8). */
static size_t utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

char *fs_parts_file_name(const char *name, const char *section,
			 const char *mime_type)
{
	g_autofree char *valid = NULL;
	GString *out = g_string_new(NULL);
	const char *p;

	if (name) {
		valid = g_utf8_make_valid(name, -1);
		for (p = valid; *p; p++) {
			unsigned char c = (unsigned char)*p;

			g_string_append_c(out, (c < 0x20 || c == 0x7f ||
						c == '/' || c == '\\')
						   ? '_'
						   : (char)c);
		}
		g_strstrip(out->str);
		out->len = strlen(out->str);
	}
	if (out->len == 0 || strcmp(out->str, ".") == 0 ||
	    strcmp(out->str, "..") == 0) {
		g_string_printf(out, "part-%s.%s", *section ? section : "1",
				ext_for(mime_type));
	}
	g_string_truncate(out, utf8_cut(out->str, NAME_MAX_BYTES - 12));
	return g_string_free(out, FALSE);
}

/* name, or "name (2).ext", "name (3).ext"... when taken. Takes name. */
static char *unique_name(GHashTable *used, char *name)
{
	const char *dot = strrchr(name, '.');
	int stem = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
	char *try = g_strdup(name);

	for (int n = 2; g_hash_table_contains(used, try); n++) {
		g_free(try);
		try =
		    g_strdup_printf("%.*s (%d)%s", stem, name, n, name + stem);
	}
	g_free(name);
	g_hash_table_add(used, g_strdup(try));
	return try;
}

PartsItem *fs_parts_item_add(GPtrArray *items, GHashTable *used, char *name,
			     bool dir)
{
	PartsItem *it = g_new0(PartsItem, 1);

	it->name = unique_name(used, name);
	it->dir = dir;
	it->fd = -1;
	g_ptr_array_add(items, it);
	return it;
}

static PartsItem *add_item(Dir *d, char *name, bool dir)
{
	return fs_parts_item_add(d->items, d->used, name, dir);
}

/* A file holding len bytes of data. */
static void add_bytes(Dir *d, const char *name, const void *data, size_t len)
{
	int fd = fs_parts_temp_file(d->tmpdir);
	PartsItem *it;
	size_t done = 0;

	if (fd < 0)
		return;
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return;
		}
		done += (size_t)n;
	}
	it = add_item(d, g_strdup(name), false);
	it->fd = fd;
	it->size = len;
}

/* A file holding what write() puts into a GMime stream. */
static void add_streamed(Dir *d, char *name,
			 void (*write_fn)(GMimeObject *o, GMimeStream *s),
			 GMimeObject *obj)
{
	int fd = fs_parts_temp_file(d->tmpdir);
	GMimeStream *out;
	struct stat st;
	PartsItem *it;

	if (fd < 0) {
		g_free(name);
		return;
	}
	out = g_mime_stream_fs_new(dup(fd));
	write_fn(obj, out);
	g_mime_stream_flush(out);
	g_object_unref(out);
	if (fstat(fd, &st) < 0) {
		close(fd);
		g_free(name);
		return;
	}
	it = add_item(d, name, false);
	it->fd = fd;
	it->size = (uint64_t)st.st_size;
}

static void write_decoded(GMimeObject *o, GMimeStream *s)
{
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));

	if (w)
		g_mime_data_wrapper_write_to_stream(w, s);
}

static void write_object(GMimeObject *o, GMimeStream *s)
{
	g_mime_object_write_to_stream(o, NULL, s);
}

/* ---- text ---- */

/* The decoded bytes of a leaf part, in memory (text parts only). */
static GByteArray *decoded_bytes(GMimeObject *part)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *out = g_byte_array_new();
	GByteArray *buf;

	write_decoded(part, mem);
	buf = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_byte_array_append(out, buf->data, buf->len);
	g_object_unref(mem);
	return out;
}

/* data in charset as UTF-8: the declared charset, else UTF-8 when valid,
 * else ISO-8859-1 (which cannot fail). */
static char *to_utf8(const char *data, size_t len, const char *charset,
		     size_t *out_len)
{
	char *out;
	gsize written = 0;

	*out_len = 0;
	if (len == 0)
		return g_strdup("");
	if (charset && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0) {
		out = g_convert(data, (gssize)len, "UTF-8",
				g_mime_charset_iconv_name(charset), NULL,
				&written, NULL);
		if (out) {
			*out_len = written;
			return out;
		}
	}
	if (g_utf8_validate(data, (gssize)len, NULL) ||
	    (charset && g_ascii_strcasecmp(charset, "utf-8") == 0)) {
		out = g_utf8_make_valid(data, (gssize)len);
		*out_len = strlen(out);
		return out;
	}
	out = g_convert(data, (gssize)len, "UTF-8", "ISO-8859-1", NULL,
			&written, NULL);
	*out_len = out ? written : 0;
	return out ? out : g_strdup("");
}

/* CRLF to LF in place. */
static void to_lf(GString *s)
{
	size_t j = 0;

	for (size_t i = 0; i < s->len; i++)
		if (!(s->str[i] == '\r' && i + 1 < s->len &&
		      s->str[i + 1] == '\n'))
			s->str[j++] = s->str[i];
	g_string_truncate(s, j);
}

/* The part's text as UTF-8 with LF line ends. */
static GString *part_text(GMimeObject *part)
{
	g_autoptr(GByteArray) raw = decoded_bytes(part);
	const char *cs =
	    g_mime_object_get_content_type_parameter(part, "charset");
	size_t n;
	char *utf8 = to_utf8((const char *)raw->data, raw->len, cs, &n);
	GString *s = g_string_new_len(utf8, (gssize)n);

	g_free(utf8);
	to_lf(s);
	return s;
}

static void header_line(GString *out, const char *field, const char *value)
{
	g_autofree char *valid = NULL;

	if (!value || !*value)
		return;
	valid = g_utf8_make_valid(value, -1);
	g_string_append_printf(out, "%s: %s\n", field, g_strstrip(valid));
}

static void address_line(GString *out, const char *field, GMimeMessage *msg,
			 GMimeAddressType type)
{
	InternetAddressList *l = g_mime_message_get_addresses(msg, type);
	g_autofree char *s = NULL;

	if (l && internet_address_list_length(l) > 0)
		s = internet_address_list_to_string(l, NULL, FALSE);
	header_line(out, field, s);
}

/* text.txt: a short decoded header block, then the body text. */
static void add_text(Dir *d, GMimeMessage *msg)
{
	GString *out = g_string_new(NULL);

	address_line(out, "From", msg, GMIME_ADDRESS_TYPE_FROM);
	address_line(out, "To", msg, GMIME_ADDRESS_TYPE_TO);
	address_line(out, "Cc", msg, GMIME_ADDRESS_TYPE_CC);
	header_line(out, "Date",
		    g_mime_object_get_header(GMIME_OBJECT(msg), "Date"));
	header_line(out, "Subject", g_mime_message_get_subject(msg));
	g_string_append_c(out, '\n');
	if (d->plain) {
		GString *t = part_text(d->plain);

		g_string_append_len(out, t->str, (gssize)t->len);
		g_string_free(t, TRUE);
	} else if (d->html) {
		GString *t = part_text(d->html);
		g_autofree char *plain = fs_parts_html_to_text(t->str, t->len);

		g_string_append(out, plain);
		g_string_free(t, TRUE);
	}
	add_bytes(d, "text.txt", out->str, out->len);
	g_string_free(out, TRUE);
	if (d->html) {
		GString *t = part_text(d->html);

		add_bytes(d, "text.html", t->str, t->len);
		g_string_free(t, TRUE);
	}
}

/* text.txt of what GMime cannot parse at all: the bytes as text. */
static void add_raw_text(Dir *d, int fd, uint64_t offset, uint64_t size)
{
	GString *raw = g_string_sized_new((gsize)MIN(size, 1u << 20));
	GString *out = g_string_new("\n");
	char buf[65536];
	size_t len;
	char *utf8;

	while (raw->len < size && raw->len < (1u << 24)) {
		ssize_t n = pread(fd, buf, MIN(sizeof(buf), size - raw->len),
				  (off_t)(offset + raw->len));

		if (n <= 0)
			break;
		g_string_append_len(raw, buf, n);
	}
	utf8 = to_utf8(raw->str, raw->len, NULL, &len);
	g_string_append_len(out, utf8, (gssize)len);
	to_lf(out);
	add_bytes(d, "text.txt", out->str, out->len);
	g_free(utf8);
	g_string_free(raw, TRUE);
	g_string_free(out, TRUE);
}

/* ---- structure ---- */

static bool is_attachment(GMimeObject *o)
{
	GMimeContentDisposition *cd = g_mime_object_get_content_disposition(o);

	return cd && g_mime_content_disposition_is_attachment(cd);
}

/* "Content-Type: text" with no subtype, which GMime reads as
 * application/octet-stream and mail readers as text/plain. */
static bool bare_text(GMimeObject *o)
{
	const char *v = g_mime_object_get_header(o, "Content-Type");

	while (v && g_ascii_isspace(*v))
		v++;
	return v && g_ascii_strncasecmp(v, "text", 4) == 0 &&
	       (v[4] == '\0' || v[4] == ';' || g_ascii_isspace(v[4]));
}

/* The first text/plain and text/html leaves that are not attachments,
 * not looking into attached messages. */
static void find_body(Dir *d, GMimeObject *o, int depth)
{
	GMimeContentType *ct;

	if (depth > PARTS_MAX_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);

		for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
			find_body(d, g_mime_multipart_get_part(mp, i),
				  depth + 1);
		return;
	}
	if (!GMIME_IS_PART(o) || is_attachment(o))
		return;
	ct = g_mime_object_get_content_type(o);
	if (!d->plain &&
	    (g_mime_content_type_is_type(ct, "text", "plain") || bare_text(o)))
		d->plain = o;
	else if (!d->html && g_mime_content_type_is_type(ct, "text", "html"))
		d->html = o;
}

static char *join_section(const char *base, int n)
{
	return *base ? g_strdup_printf("%s.%d", base, n)
		     : g_strdup_printf("%d", n);
}

static void build_message(Dir *d, GMimeMessage *msg, const char *base, int fd,
			  uint64_t offset, uint64_t size);

/* The directory of an attached message. */
static void add_message_dir(Dir *d, GMimeObject *o, const char *section)
{
	GMimeMessage *inner =
	    g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
	const char *fname =
	    g_mime_object_get_content_disposition_parameter(o, "filename");
	g_autofree char *stem = NULL;
	Dir sub = { .tmpdir = d->tmpdir, .depth = d->depth + 1 };
	PartsItem *it;

	if (!fname && inner)
		fname = g_mime_message_get_subject(inner);
	if (fname && *fname)
		stem = g_strdup(fname);
	else
		stem = g_strdup_printf("message-%s", section);
	if (g_str_has_suffix(stem, ".eml"))
		stem[strlen(stem) - 4] = '\0';
	it = add_item(d, fs_parts_file_name(stem, section, "message/rfc822"),
		      true);
	it->children =
	    g_ptr_array_new_with_free_func((GDestroyNotify)fs_parts_item_free);
	sub.items = it->children;
	sub.used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (inner)
		build_message(&sub, inner, section, -1, 0, 0);
	else
		add_bytes(&sub, "text.txt", "\n", 1);
	g_hash_table_unref(sub.used);
}

static void walk_part(Dir *d, GMimeObject *o, const char *section, int depth)
{
	if (depth > PARTS_MAX_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);

		for (int i = 0; i < g_mime_multipart_get_count(mp); i++) {
			g_autofree char *s = join_section(section, i + 1);

			walk_part(d, g_mime_multipart_get_part(mp, i), s,
				  depth + 1);
		}
		return;
	}
	if (GMIME_IS_MESSAGE_PART(o)) {
		if (d->depth < PARTS_MAX_DEPTH)
			add_message_dir(d, o, section);
		return;
	}
	if (!GMIME_IS_PART(o) || o == d->plain || o == d->html)
		return;
	{
		GMimeContentType *ct = g_mime_object_get_content_type(o);
		g_autofree char *type = g_mime_content_type_get_mime_type(ct);
		const char *fname = g_mime_part_get_filename(GMIME_PART(o));

		add_streamed(d, fs_parts_file_name(fname, section, type),
			     write_decoded, o);
	}
}

/* message.eml (the raw bytes when fd >= 0, else as GMime writes the
 * attached message), text.txt, text.html, then the other parts. */
static void build_message(Dir *d, GMimeMessage *msg, const char *base, int fd,
			  uint64_t offset, uint64_t size)
{
	GMimeObject *body = msg ? g_mime_message_get_mime_part(msg) : NULL;

	if (fd >= 0) {
		PartsItem *it = add_item(d, g_strdup("message.eml"), false);

		it->fd = dup(fd);
		it->offset = offset;
		it->size = size;
	} else if (msg) {
		add_streamed(d, g_strdup("message.eml"), write_object,
			     GMIME_OBJECT(msg));
	}
	if (!msg)
		return;
	if (body)
		find_body(d, body, 0);
	add_text(d, msg);
	if (!body)
		return;
	if (GMIME_IS_MULTIPART(body)) {
		walk_part(d, body, base, 0);
	} else {
		g_autofree char *s = join_section(base, 1);

		walk_part(d, body, s, 0);
	}
}

/* A descriptor of fd's file with a file offset of its own: GMime's
 * streams seek and read, and the cache hands out dup()s of one pack
 * descriptor to every reader (cache/pack.c). */
static int private_fd(int fd)
{
	char path[64];
	int own;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	own = open(path, O_RDONLY | O_CLOEXEC);
	return own >= 0 ? own : dup(fd);
}

/* Does the message end in a boundary line without a line break? GMime
 * would then keep the CR of the last part's final CRLF. */
static bool ends_in_bare_boundary(int fd, uint64_t offset, uint64_t size)
{
	char tail[256];
	size_t n = (size_t)MIN(size, sizeof(tail));
	ssize_t got = pread(fd, tail, n, (off_t)(offset + size - n));
	ssize_t i;

	if (got <= 0 || tail[got - 1] == '\n')
		return false;
	for (i = got - 1; i >= 0 && tail[i] != '\n'; i--)
		;
	return i >= 0 && got - i > 3 && tail[i + 1] == '-' &&
	       tail[i + 2] == '-';
}

/* The bytes of the message for the parser, with a line break after a
 * final boundary that lacks one. */
static GMimeStream *input(int fd, uint64_t offset, uint64_t size)
{
	GMimeStream *raw = g_mime_stream_fs_new_with_bounds(
	    private_fd(fd), (gint64)offset, (gint64)(offset + size));
	GMimeStream *cat, *eol;

	if (size == 0 || !ends_in_bare_boundary(fd, offset, size))
		return raw;
	cat = g_mime_stream_cat_new();
	eol = g_mime_stream_mem_new_with_buffer("\r\n", 2);
	g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), raw);
	g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), eol);
	g_object_unref(raw);
	g_object_unref(eol);
	return cat;
}

/* The message in [offset, offset + size) of fd, or NULL. Mail that
 * starts with blank lines (some archives write them) is parsed from its
 * first non-blank line. */
static GMimeMessage *parse(int fd, uint64_t offset, uint64_t size)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		GMimeStream *in = input(fd, offset, size);
		GMimeParser *parser = g_mime_parser_new_with_stream(in);
		GMimeMessage *msg =
		    g_mime_parser_construct_message(parser, NULL);
		char buf[4096];
		ssize_t n;
		size_t skip = 0;

		g_object_unref(parser);
		g_object_unref(in);
		if (msg || attempt == 1)
			return msg;
		n = pread(fd, buf, MIN(sizeof(buf), size), (off_t)offset);
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n')
				skip = (size_t)i + 1;
			else if (!g_ascii_isspace(buf[i]))
				break;
		}
		if (skip == 0)
			return NULL;
		offset += skip;
		size -= skip;
	}
	return NULL;
}

PartsItem *fs_parts_build(int fd, uint64_t offset, uint64_t size,
			  const char *tmpdir)
{
	PartsItem *root = g_new0(PartsItem, 1);
	Dir d = { .tmpdir = tmpdir };
	GMimeMessage *msg;
	int probe = fs_parts_temp_file(tmpdir);

	if (probe < 0) {
		g_free(root);
		errno = -probe;
		return NULL;
	}
	close(probe);
	root->dir = true;
	root->fd = -1;
	root->children =
	    g_ptr_array_new_with_free_func((GDestroyNotify)fs_parts_item_free);
	d.items = root->children;
	d.used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	msg = parse(fd, offset, size);
	build_message(&d, msg, "", fd, offset, size);
	if (msg)
		g_object_unref(msg);
	else
		add_raw_text(&d, fd, offset, size);
	g_hash_table_unref(d.used);
	return root;
}

/* ---- HTML to text ---- */

static bool ascii_prefix(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && g_ascii_strncasecmp(s, word, n) == 0;
}

/* Skip from s past the first case-insensitive match of word. */
static size_t skip_past(const char *s, size_t len, const char *word)
{
	for (size_t i = 0; i < len; i++)
		if (ascii_prefix(s + i, len - i, word))
			return i + strlen(word);
	return len;
}

static void html_entity(GString *out, const char *s, size_t len, size_t *used)
{
	static const char *const named[][2] = {
		{ "amp", "&" },    { "lt", "<" },     { "gt", ">" },
		{ "quot", "\"" },  { "apos", "'" },   { "nbsp", " " },
		{ "eacute", "é" }, { "egrave", "è" }, { "agrave", "à" },
		{ "auml", "ä" },   { "ouml", "ö" },   { "uuml", "ü" },
		{ "Auml", "Ä" },   { "Ouml", "Ö" },   { "Uuml", "Ü" },
		{ "szlig", "ß" },  { "ccedil", "ç" }, { "copy", "©" },
		{ "reg", "®" },    { "euro", "€" },   { "hellip", "…" },
		{ "mdash", "—" },  { "ndash", "–" },  { "laquo", "«" },
		{ "raquo", "»" },
	};
	const char *semi = memchr(s, ';', MIN(len, (size_t)12));
	char name[12];
	size_t n;

	*used = 1;
	if (!semi) {
		g_string_append_c(out, '&');
		return;
	}
	n = (size_t)(semi - s) - 1;
	memcpy(name, s + 1, n);
	name[n] = '\0';
	*used = n + 2;
	if (name[0] == '#') {
		gunichar c = (gunichar)(name[1] == 'x' || name[1] == 'X'
					    ? strtoul(name + 2, NULL, 16)
					    : strtoul(name + 1, NULL, 10));

		if (g_unichar_validate(c) && c != 0)
			g_string_append_unichar(out, c);
		return;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(named); i++)
		if (strcmp(name, named[i][0]) == 0) {
			g_string_append(out, named[i][1]);
			return;
		}
	g_string_append_len(out, s, (gssize)*used);
}

/* One tag at s (starting '<'); returns the bytes it covers. */
static size_t html_tag(GString *out, const char *s, size_t len)
{
	static const char *const breaks[] = { "br",        "p",  "div", "li",
					      "tr",        "h1", "h2",  "h3",
					      "h4",        "h5", "h6",  "table",
					      "blockquote" };
	const char *gt = memchr(s, '>', len);
	size_t end = gt ? (size_t)(gt - s) + 1 : len;
	const char *p = s + 1;
	char name[12];
	size_t n = 0;

	if (ascii_prefix(s, len, "<!--"))
		return skip_past(s, len, "-->");
	if (*p == '/')
		p++;
	while (p < s + len && n < sizeof(name) - 1 && g_ascii_isalnum(*p))
		name[n++] = g_ascii_tolower(*p++);
	name[n] = '\0';
	if (s[1] != '/' &&
	    (strcmp(name, "script") == 0 || strcmp(name, "style") == 0 ||
	     strcmp(name, "head") == 0)) {
		g_autofree char *close = g_strdup_printf("</%s", name);

		end = skip_past(s, len, close);
		gt = memchr(s + end, '>', len - end);
		return gt ? (size_t)(gt - s) + 1 : len;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(breaks); i++)
		if (strcmp(name, breaks[i]) == 0) {
			if (out->len && out->str[out->len - 1] == ' ')
				g_string_truncate(out, out->len - 1);
			/* one line break per block, any number of <br> */
			if (i == 0 ||
			    (out->len && out->str[out->len - 1] != '\n'))
				g_string_append_c(out, '\n');
			break;
		}
	return end;
}

char *fs_parts_html_to_text(const char *html, size_t len)
{
	GString *out = g_string_new(NULL);
	size_t i = 0, used;

	while (i < len) {
		char c = html[i];

		if (c == '<') {
			i += html_tag(out, html + i, len - i);
		} else if (c == '&') {
			html_entity(out, html + i, len - i, &used);
			i += used;
		} else if (g_ascii_isspace(c)) {
			if (out->len && out->str[out->len - 1] != ' ' &&
			    out->str[out->len - 1] != '\n')
				g_string_append_c(out, ' ');
			i++;
		} else {
			g_string_append_c(out, c);
			i++;
		}
	}
	if (out->len && out->str[out->len - 1] != '\n')
		g_string_append_c(out, '\n');
	return g_string_free(out, FALSE);
}
