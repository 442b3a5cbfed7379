/* imap/mutf7.c: modified UTF-7 (RFC 3501 section 5.1.3).
 *
 * Stateless; every result is a new string owned by the caller.
 *
 * Decoding is strict so that encoding is its exact inverse: whenever
 * imap_mutf7_decode(x) succeeds, imap_mutf7_encode() of the result gives x
 * back byte for byte. That rules out every input with more than one spelling:
 * printable ASCII inside a shift, a shift that could be shorter, non-zero
 * padding bits, and two shifts back to back ("&AOQ-&APY-", a null shift that
 * RFC 3501 forbids; we reject it). U+0000 is rejected too, since the result
 * is a C string.
 */
#include "imap/mutf7.h"

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

static const char mutf7_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Value of a modified base64 character, or -1. */
static int mutf7_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool mutf7_is_direct(gunichar c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Decode the base64 run in[0..n) (between "&" and "-") and append the UTF-8
 * to out. Returns 0 or -EINVAL. */
static int mutf7_decode_run(const unsigned char *in, size_t n, GString *out)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	gunichar high = 0; /* pending high surrogate, 0 if none */
	size_t units = 0;

	for (size_t i = 0; i < n; i++) {
		int v = mutf7_b64_value(in[i]);

		if (v < 0)
			return -EINVAL;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		gunichar u = (bits >> nbits) & 0xffff;

		bits &= (1u << nbits) - 1;
		units++;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return -EINVAL;
			g_string_append_unichar(
			    out,
			    0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -EINVAL;
		} else if (u == 0 || mutf7_is_direct(u)) {
			return -EINVAL;
		} else {
			g_string_append_unichar(out, u);
		}
	}
	/* A minimal encoding leaves at most 4 bits, and they are zero. */
	if (units == 0 || high || nbits >= 6 || bits != 0)
		return -EINVAL;
	return 0;
}

char *imap_mutf7_decode(const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	g_autoptr(GString) out = g_string_sized_new(len + 1);
	bool after_run = false; /* the previous token was a base64 run */

	if (!in && len)
		return NULL;
	for (size_t i = 0; i < len;) {
		if (p[i] != '&') {
			if (!mutf7_is_direct(p[i]))
				return NULL;
			g_string_append_c(out, (char)p[i]);
			after_run = false;
			i++;
			continue;
		}
		size_t start = ++i;

		while (i < len && p[i] != '-')
			i++;
		if (i == len)
			return NULL;
		if (i == start) {
			g_string_append_c(out, '&');
			after_run = false;
		} else {
			if (after_run)
				return NULL;
			if (mutf7_decode_run(p + start, i - start, out) < 0)
				return NULL;
			after_run = true;
		}
		i++; /* the '-' */
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

static void mutf7_put_units(GString *out, uint32_t *bits, unsigned *nbits,
			    gunichar u)
{
	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		g_string_append_c(out, mutf7_alphabet[(*bits >> *nbits) & 63]);
	}
	*bits &= (1u << *nbits) - 1;
}

/* Flush the last bits, zero-padded, and shift back to ASCII. */
static void mutf7_close_run(GString *out, uint32_t bits, unsigned nbits)
{
	if (nbits)
		g_string_append_c(out,
				  mutf7_alphabet[(bits << (6 - nbits)) & 63]);
	g_string_append_c(out, '-');
}

char *imap_mutf7_encode(const char *utf8, size_t len)
{
	g_autoptr(GString) out = NULL;
	const char *p = utf8, *end;
	bool in_run = false;
	uint32_t bits = 0;
	unsigned nbits = 0;

	if (!utf8) {
		if (len)
			return NULL;
		utf8 = p = "";
	}
	if (len && !g_utf8_validate_len(utf8, len, NULL))
		return NULL; /* also rejects NUL */
	out = g_string_sized_new(len + 8);
	end = utf8 + len;
	while (p < end) {
		gunichar c = g_utf8_get_char(p);

		p = g_utf8_next_char(p);
		if (mutf7_is_direct(c)) {
			if (in_run) {
				mutf7_close_run(out, bits, nbits);
				in_run = false;
				bits = nbits = 0;
			}
			if (c == '&')
				g_string_append(out, "&-");
			else
				g_string_append_c(out, (char)c);
			continue;
		}
		if (!in_run) {
			g_string_append_c(out, '&');
			in_run = true;
		}
		if (c >= 0x10000) {
			c -= 0x10000;
			mutf7_put_units(out, &bits, &nbits, 0xd800 + (c >> 10));
			mutf7_put_units(out, &bits, &nbits,
					0xdc00 + (c & 0x3ff));
		} else {
			mutf7_put_units(out, &bits, &nbits, c);
		}
	}
	if (in_run)
		mutf7_close_run(out, bits, nbits);
	return g_string_free(g_steal_pointer(&out), FALSE);
}
