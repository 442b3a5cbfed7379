/* libFuzzer target for imap/mutf7.c and fs/names.c: every function of both
 * headers runs on the input and every documented output invariant is checked.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-names.
 */
#include "tests/fuzz/fuzz-check.h"
#include "fs/names.h"
#include "imap/mutf7.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_control(gunichar c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

static bool is_format(gunichar c)
{
	return g_unichar_type(c) == G_UNICODE_FORMAT;
}

/* What every name must be: non-empty UTF-8, at most 255 bytes, no '/',
 * NUL or control characters, not "." or "..". */
static void check_name(const char *name)
{
	size_t len;

	CHECK(name);
	len = strlen(name);
	CHECK(len > 0 && len <= FS_NAME_MAX);
	CHECK(g_utf8_validate(name, (gssize)len, NULL));
	CHECK(strcmp(name, ".") && strcmp(name, ".."));
	for (const char *p = name; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		CHECK(c != '/' && !is_control(c));
	}
}

static void check_message(uint32_t uid, const char *subject, size_t len)
{
	g_autofree char *name = fs_name_for_message(uid, subject, len);
	g_autofree char *again = fs_name_for_message(uid, subject, len);
	g_autofree char *prefix = g_strdup_printf("%" G_GUINT32_FORMAT, uid);
	uint32_t parsed = 0;
	const char *subj, *end;

	check_name(name);
	CHECK(!strcmp(name, again)); /* deterministic */
	CHECK(fs_name_parse_uid(name, &parsed) && parsed == uid);
	CHECK(g_str_has_prefix(name, prefix));
	CHECK(g_str_has_suffix(name, ".eml"));
	subj = name + strlen(prefix);
	end = name + strlen(name) - 4;
	CHECK(subj <= end);
	if (subj == end)
		return;
	CHECK(*subj == ' ');
	subj++;
	CHECK(subj < end && end - subj <= 180);
	CHECK(*subj != ' ' && *subj != '.' && end[-1] != ' ');
	CHECK(!g_strstr_len(subj, end - subj, "  "));
	for (const char *p = subj; p < end; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		CHECK(!is_format(c));
		CHECK(c >= 0x80 || !strchr(":\\*?\"<>|", (int)c));
	}
}

/* Reference reading of a leading UID. */
static bool ref_parse_uid(const char *s, uint32_t *uid)
{
	char *end;
	unsigned long long v;

	if (s[0] < '1' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v > UINT32_MAX || *end == '\0')
		return false;
	*uid = (uint32_t)v;
	return true;
}

static void check_mutf7(const char *in, size_t size)
{
	g_autofree char *dec = imap_mutf7_decode(in, size);
	g_autofree char *enc = imap_mutf7_encode(in, size);

	if (dec) {
		g_autofree char *back = NULL;

		CHECK(g_utf8_validate(dec, -1, NULL));
		back = imap_mutf7_encode(dec, strlen(dec));
		CHECK(back);
		CHECK(strlen(back) == size && !memcmp(back, in, size));
	}
	if (g_utf8_validate_len(in, size, NULL)) {
		g_autofree char *back = NULL;

		CHECK(enc);
		for (const char *p = enc; *p; p++)
			CHECK(*p >= 0x20 && *p <= 0x7e);
		back = imap_mutf7_decode(enc, strlen(enc));
		CHECK(back);
		CHECK(strlen(back) == size && !memcmp(back, in, size));
	} else {
		CHECK(!enc);
	}
}

static void check_folder(const char *raw, size_t size)
{
	g_autofree char *name = fs_name_for_folder(raw, size);
	g_autofree char *again = fs_name_for_folder(raw, size);
	g_autofree char *dis = NULL;
	g_autofree char *dis_raw = NULL;
	g_autofree char *raw_str = g_strndup(raw, size);

	check_name(name);
	CHECK(!strcmp(name, again));
	dis = fs_name_disambiguate(name, raw, size);
	check_name(dis);
	CHECK(strcmp(dis, name) || strlen(name) == FS_NAME_MAX);
	/* garbage in: still bounded, no crash */
	dis_raw = fs_name_disambiguate(raw_str, raw, size);
	CHECK(dis_raw && strlen(dis_raw) <= FS_NAME_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	g_autofree char *str = g_strndup(in, size);
	uint32_t uid = 0, ref = 0, got = 0;
	bool ok;

	check_mutf7(in, size);

	for (size_t i = 0; i < size && i < 4; i++)
		uid = uid << 8 | data[i];
	check_message(uid ? uid : 1, in, size);
	check_message(UINT32_MAX, in, size);
	check_message(1, NULL, 0);

	ok = fs_name_parse_uid(str, &got);
	CHECK(ok == ref_parse_uid(str, &ref));
	CHECK(!ok || got == ref);

	check_folder(in, size);
	return 0;
}
