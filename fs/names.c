/* fs/names.c: file and directory names shown by the mount.
 *
 * Stateless; every result is a new string owned by the caller. Names must be
 * stable across runs and GLib versions, so nothing here consults locale or
 * GLib's Unicode tables: the few character classes we need are listed below.
 * The only outside dependency is iconv (through g_convert) for charsets of
 * RFC 2047 encoded words other than UTF-8 and windows-1252/latin1.
 *
 * Message subjects are decoded in two passes: RFC 2047 and raw 8-bit text to
 * UTF-8 (which may still hold NUL and control characters), then a sanitiser
 * that yields the readable, safe subject part of the file name.
 */
#include "fs/names.h"
#include "imap/mutf7.h"

#include <glib.h>
#include <string.h>

#define NAMES_SUBJECT_MAX 180
#define NAMES_HASH_SUFFIX 9 /* "~" + 8 hex digits */
#define NAMES_CHARSET_MAX 64

static uint32_t names_hash(const char *raw, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a, 32 bits */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)raw[i];
		h *= 16777619u;
	}
	return h;
}

/* ---- raw bytes to UTF-8 ---- */

/* windows-1252 0x80-0x9f; 0 where undefined (read as latin1 then). */
static const uint16_t names_cp1252[32] = {
	0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017d, 0,
	0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

static void names_append_cp1252_byte(GString *out, unsigned char b)
{
	gunichar c = b;

	if (b >= 0x80 && b <= 0x9f && names_cp1252[b - 0x80])
		c = names_cp1252[b - 0x80];
	if (c)
		g_string_append_unichar(out, c);
	else
		g_string_append_c(out, '\0');
}

static void names_append_cp1252(GString *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		names_append_cp1252_byte(out, (unsigned char)p[i]);
}

/* Text of unknown charset: each valid UTF-8 sequence is kept, every other
 * byte is read as windows-1252. So pure UTF-8 and pure latin1 both come out
 * right, and a stray byte does not spoil the rest. */
static void names_append_raw(GString *out, const char *p, size_t n)
{
	const char *end = p + n;

	while (p < end) {
		const char *valid_end;

		g_utf8_validate_len(p, (gsize)(end - p), &valid_end);
		g_string_append_len(out, p, valid_end - p);
		p = valid_end;
		if (p < end)
			names_append_cp1252_byte(out, (unsigned char)*p++);
	}
}

static bool names_charset_is(const char *cs, const char *const *names)
{
	for (; *names; names++)
		if (!g_ascii_strcasecmp(cs, *names))
			return true;
	return false;
}

static void names_append_charset(GString *out, const char *charset,
				 const char *p, size_t n)
{
	/* Labels that are UTF-8 or ASCII in name only are too often wrong to
	 * trust; latin1 labels are read as windows-1252 as mail readers do. */
	static const char *const raw_names[] = {
		"utf-8",        "utf8",      "us-ascii", "ascii",
		"unknown-8bit", "x-unknown", NULL
	};
	static const char *const cp1252_names[] = {
		"iso-8859-1", "iso8859-1",    "iso_8859-1", "latin1", "l1",
		"cp819",      "windows-1252", "cp1252",     NULL
	};
	g_autofree char *conv = NULL;
	gsize written = 0;

	if (!n)
		return;
	if (names_charset_is(charset, raw_names)) {
		names_append_raw(out, p, n);
		return;
	}
	if (names_charset_is(charset, cp1252_names)) {
		names_append_cp1252(out, p, n);
		return;
	}
	conv = g_convert(p, (gssize)n, "UTF-8", charset, NULL, &written, NULL);
	if (conv)
		names_append_raw(out, conv, written);
	else
		names_append_raw(out, p, n);
}

/* Raw 8-bit text outside encoded words: the message's declared charset
 * first (the Content-Type charset of its header), then as above (UTF-8,
 * then windows-1252). Only charsets other than UTF-8 and latin1 change
 * anything: for those the old reading already is the right one. */
static void names_append_declared(GString *out, const char *charset,
				  const char *p, size_t n)
{
	static const char *const plain[] = {
		"utf-8",        "utf8",      "us-ascii",   "ascii",
		"iso-8859-1",   "iso8859-1", "iso_8859-1", "latin1",
		"windows-1252", "cp1252",    NULL
	};
	g_autofree char *conv = NULL;
	gsize written = 0;
	bool ascii = true;

	for (size_t i = 0; i < n && ascii; i++)
		ascii = !(p[i] & 0x80);
	if (!ascii && charset && *charset && !names_charset_is(charset, plain))
		conv = g_convert(p, (gssize)n, "UTF-8", charset, NULL, &written,
				 NULL);
	if (conv)
		names_append_raw(out, conv, written);
	else
		names_append_raw(out, p, n);
}

/* ---- RFC 2047 ---- */

static int names_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Lenient on missing padding and non-zero pad bits, strict on the rest. */
static bool names_decode_b(const char *p, size_t n, GString *out)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	size_t ndata = 0;
	bool pad = false;

	for (size_t i = 0; i < n; i++) {
		int v;

		if (p[i] == '=') {
			pad = true;
			continue;
		}
		v = names_b64_value((unsigned char)p[i]);
		if (v < 0 || pad)
			return false;
		ndata++;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			g_string_append_c(out, (char)((bits >> nbits) & 0xff));
			bits &= (1u << nbits) - 1;
		}
	}
	return ndata % 4 != 1;
}

static bool names_decode_q(const char *p, size_t n, GString *out)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '_') {
			g_string_append_c(out, ' ');
		} else if (p[i] == '=') {
			int hi, lo;

			if (i + 2 >= n)
				return false;
			hi = g_ascii_xdigit_value(p[i + 1]);
			lo = g_ascii_xdigit_value(p[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			g_string_append_c(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			g_string_append_c(out, p[i]);
		}
	}
	return true;
}

static bool names_is_charset_char(unsigned char c)
{
	return g_ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
	       c == ':' || c == '+';
}

/* Parse an encoded word "=?charset?B|Q?text?=" at p. On success returns its
 * length, puts the charset (language suffix dropped) in charset and appends
 * the decoded bytes to bytes; returns 0 if p holds no well-formed word. */
static size_t names_parse_word(const char *p, size_t n,
			       char charset[NAMES_CHARSET_MAX + 1],
			       GString *bytes)
{
	size_t i = 2, cs_len = 0, text;
	bool in_lang = false;
	char enc;
	bool ok;

	if (n < 2 || p[0] != '=' || p[1] != '?')
		return 0;
	for (; i < n && p[i] != '?'; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '*' && !in_lang) {
			in_lang = true; /* RFC 2231 "charset*lang" */
			continue;
		}
		if (!names_is_charset_char(c) || i - 2 >= NAMES_CHARSET_MAX)
			return 0;
		if (!in_lang)
			charset[cs_len++] = (char)c;
	}
	charset[cs_len] = '\0';
	if (!cs_len || i + 3 >= n || p[i + 2] != '?')
		return 0;
	enc = g_ascii_toupper(p[i + 1]);
	if (enc != 'B' && enc != 'Q')
		return 0;
	i += 3;
	text = i;
	for (; i < n && p[i] != '?'; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return 0;
	if (i == text || i + 1 >= n || p[i + 1] != '=')
		return 0;
	if (enc == 'B')
		ok = names_decode_b(p + text, i - text, bytes);
	else
		ok = names_decode_q(p + text, i - text, bytes);
	return ok ? i + 2 : 0;
}

static bool names_is_lwsp(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return false;
	return true;
}

/* Subject header value to UTF-8 (possibly with NULs and controls).
 * Encoded words are recognised even when not delimited by white space, as
 * mail readers do. White space between two encoded words is dropped, and the
 * bytes of adjacent words in the same charset are converted together, so a
 * character split across two words comes out whole. */
static GString *names_decode_subject(const char *s, size_t len,
				     const char *declared)
{
	GString *out = g_string_sized_new(len + 1);
	g_autoptr(GString) group = g_string_new(NULL); /* pending word bytes */
	g_autoptr(GString) word = g_string_new(NULL);
	char group_cs[NAMES_CHARSET_MAX + 1] = "";
	char cs[NAMES_CHARSET_MAX + 1];
	bool have_group = false;
	size_t raw_start = 0, i = 0;

	while (i < len) {
		size_t wlen;

		if (s[i] != '=' || i + 1 >= len || s[i + 1] != '?') {
			i++;
			continue;
		}
		g_string_truncate(word, 0);
		wlen = names_parse_word(s + i, len - i, cs, word);
		if (!wlen) {
			i++;
			continue;
		}
		if (!have_group ||
		    !names_is_lwsp(s + raw_start, i - raw_start)) {
			if (have_group)
				names_append_charset(out, group_cs, group->str,
						     group->len);
			names_append_declared(out, declared, s + raw_start,
					      i - raw_start);
			have_group = false;
		}
		if (have_group && g_ascii_strcasecmp(group_cs, cs)) {
			names_append_charset(out, group_cs, group->str,
					     group->len);
			have_group = false;
		}
		if (!have_group) {
			g_string_truncate(group, 0);
			memcpy(group_cs, cs, sizeof(cs));
			have_group = true;
		}
		g_string_append_len(group, word->str, word->len);
		i += wlen;
		raw_start = i;
	}
	if (have_group)
		names_append_charset(out, group_cs, group->str, group->len);
	names_append_declared(out, declared, s + raw_start, len - raw_start);
	return out;
}

/* ---- sanitiser ---- */

typedef struct {
	gunichar lo, hi;
} NamesRange;

/* General category Cf (format) in Unicode 15.0: bidi overrides and
 * isolates, zero-width characters, soft hyphen, BOM, tags. */
static const NamesRange names_format[] = {
	{ 0x00ad, 0x00ad },   { 0x0600, 0x0605 },   { 0x061c, 0x061c },
	{ 0x06dd, 0x06dd },   { 0x070f, 0x070f },   { 0x0890, 0x0891 },
	{ 0x08e2, 0x08e2 },   { 0x180e, 0x180e },   { 0x200b, 0x200f },
	{ 0x202a, 0x202e },   { 0x2060, 0x2064 },   { 0x2066, 0x206f },
	{ 0xfeff, 0xfeff },   { 0xfff9, 0xfffb },   { 0x110bd, 0x110bd },
	{ 0x110cd, 0x110cd }, { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 },
	{ 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f },
};

/* Zs, Zl, Zp: white space (U+0020 itself handled by the caller). */
static const NamesRange names_space[] = {
	{ 0x00a0, 0x00a0 }, { 0x1680, 0x1680 }, { 0x2000, 0x200a },
	{ 0x2028, 0x2029 }, { 0x202f, 0x202f }, { 0x205f, 0x205f },
	{ 0x3000, 0x3000 },
};

static bool names_in(gunichar c, const NamesRange *r, size_t n)
{
	/* No table has an ASCII entry: most subjects are checked no
	 * further (a hundred thousand of them on a cold ls -l). */
	if (c < 0x80)
		return false;
	for (size_t i = 0; i < n; i++)
		if (c >= r[i].lo && c <= r[i].hi)
			return true;
	return false;
}

/* Characters that file managers or SMB shares choke on. */
static bool names_troublesome(gunichar c)
{
	switch (c) {
	case '/':
	case ':':
	case '\\':
	case '*':
	case '?':
	case '"':
	case '<':
	case '>':
	case '|':
		return true;
	default:
		return false;
	}
}

/* Decoded subject to the subject part of a file name: controls and white
 * space collapse to single spaces, characters that file managers or SMB
 * shares choke on become '-', format characters go, leading dots and spaces
 * go, and the result is cut to NAMES_SUBJECT_MAX bytes at a character
 * boundary. May return "". */
static char *names_sanitise(const GString *in)
{
	GString *out = g_string_sized_new(MIN(in->len, NAMES_SUBJECT_MAX) + 8);
	const char *p = in->str, *end = in->str + in->len;
	bool space = false; /* a space is owed before the next character */

	while (p < end) {
		gunichar c = g_utf8_get_char(p);
		const char *next = g_utf8_next_char(p);

		if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == ' ' ||
		    names_in(c, names_space, G_N_ELEMENTS(names_space))) {
			space = out->len > 0;
		} else if (names_in(c, names_format,
				    G_N_ELEMENTS(names_format))) {
			/* dropped */
		} else if (c == '.' && out->len == 0) {
			/* leading dots would hide or confuse */
		} else {
			size_t clen = (size_t)(next - p);

			if (out->len + space + clen > NAMES_SUBJECT_MAX)
				break;
			if (space)
				g_string_append_c(out, ' ');
			space = false;
			if (c < 0x80 && names_troublesome(c))
				g_string_append_c(out, '-');
			else
				g_string_append_len(out, p, clen);
		}
		p = next;
	}
	return g_string_free(out, FALSE);
}

char *fs_name_subject_part(const char *subject, size_t len, const char *charset)
{
	GString *decoded;
	char *subj;

	if (!subject || !len)
		return g_strdup("");
	decoded = names_decode_subject(subject, len, charset);
	subj = names_sanitise(decoded);
	g_string_free(decoded, TRUE);
	return subj;
}

char *fs_name_text_part(const char *text)
{
	g_autoptr(GString) in = g_string_new(NULL);

	if (text)
		names_append_raw(in, text, strlen(text));
	return names_sanitise(in);
}

char *fs_name_for_message(uint32_t uid, const char *subject, size_t len)
{
	g_autofree char *subj = fs_name_subject_part(subject, len, NULL);

	if (!*subj)
		return g_strdup_printf("%" G_GUINT32_FORMAT ".eml", uid);
	return g_strdup_printf("%" G_GUINT32_FORMAT " %s.eml", uid, subj);
}

bool fs_name_parse_uid(const char *name, uint32_t *uid)
{
	uint64_t v = 0;
	size_t i = 0;

	if (!name || name[0] < '1' || name[0] > '9')
		return false;
	for (; name[i] >= '0' && name[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(name[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	if (name[i] == '\0')
		return false;
	if (uid)
		*uid = (uint32_t)v;
	return true;
}

/* ---- folders ---- */

static void names_append_escape(GString *out, unsigned char b)
{
	g_string_append_printf(out, "%%%02X", b);
}

static char *names_with_hash(GString *s, size_t cut, const char *raw,
			     size_t raw_len)
{
	g_string_truncate(s, cut);
	g_string_append_printf(s, "~%08x", names_hash(raw, raw_len));
	return g_string_free(s, FALSE);
}

char *fs_name_for_folder(const char *raw, size_t len)
{
	g_autofree char *decoded = NULL;
	const char *p, *end;
	GString *out;
	size_t cut = 0; /* longest escaped prefix that leaves room for a hash */

	if (!raw)
		len = 0;
	decoded = imap_mutf7_decode(raw, len);
	p = decoded ? decoded : raw;
	end = p + (decoded ? strlen(decoded) : len);
	if (p == end)
		return g_strdup("%");
	if (end - p == 1 && p[0] == '.')
		return g_strdup("%2E");
	if (end - p == 2 && p[0] == '.' && p[1] == '.')
		return g_strdup("%2E%2E");
	out = g_string_sized_new((size_t)(end - p) + 16);
	while (p < end) {
		unsigned char b = (unsigned char)*p;
		size_t clen = 1;

		if (b == '%' || b == '/' || b < 0x20 || b == 0x7f) {
			names_append_escape(out, b);
		} else if (b < 0x80) {
			g_string_append_c(out, (char)b);
		} else {
			clen = (size_t)g_utf8_skip[b];
			if (clen > (size_t)(end - p) ||
			    !g_utf8_validate_len(p, clen, NULL)) {
				clen = 1;
				names_append_escape(out, b);
			} else if (g_utf8_get_char(p) <= 0x9f) {
				/* C1 controls are control characters too */
				names_append_escape(out, b);
				names_append_escape(out, (unsigned char)p[1]);
			} else {
				g_string_append_len(out, p, clen);
			}
		}
		p += clen;
		if (out->len <= FS_NAME_MAX - NAMES_HASH_SUFFIX)
			cut = out->len;
	}
	if (out->len > FS_NAME_MAX)
		return names_with_hash(out, cut, raw, len);
	return g_string_free(out, FALSE);
}

char *fs_name_disambiguate(const char *name, const char *raw, size_t raw_len)
{
	size_t n = name ? strlen(name) : 0;
	size_t cut = n;

	if (cut > FS_NAME_MAX - NAMES_HASH_SUFFIX) {
		cut = FS_NAME_MAX - NAMES_HASH_SUFFIX;
		while (cut > 0 && ((unsigned char)name[cut] & 0xc0) == 0x80)
			cut--;
		/* do not leave half of a "%XX" escape */
		if (cut >= 1 && name[cut - 1] == '%')
			cut -= 1;
		else if (cut >= 2 && name[cut - 2] == '%')
			cut -= 2;
	}
	return names_with_hash(g_string_new_len(name, (gssize)cut), cut, raw,
			       raw_len);
}
