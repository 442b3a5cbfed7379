/* Unit tests for fs/name-format.c: --name-format parsing (and its errors),
 * names built from it, and raw 8-bit subjects read in the message's
 * declared charset (EUC-KR, KOI8-R, latin1). */
#include "fs/name-format.h"
#include "fs/names.h"

#include <glib.h>
#include <string.h>

static char *name_of(const FsNameFormat *fmt, uint32_t uid, const char *subject,
		     const char *ctype, const char *from, int64_t date)
{
	FsNameFields f = { uid,   subject, subject ? strlen(subject) : 0,
			   ctype, from,    date };

	return fs_name_format_message(fmt, &f);
}

static void test_parse(void)
{
	static const char *const good[] = {
		"{uid}",
		"{uid} {subject}",
		"{uid} {date} {from} - {subject}",
		"{uid}_{subject}_{from}",
		"{uid} ({date}) {subject}",
	};
	static const struct {
		const char *spec, *why;
	} bad[] = {
		{ "{subject} {uid}", "*{uid} must come first*" },
		{ "", "*{uid} must come first*" },
		{ "{uid}{subject}", "*separator*" },
		{ "{uid}2{subject}", "*digit*" },
		{ "{uid} {subject}.txt", "*text after*" },
		{ "{uid} {sender}", "*unknown field*" },
		{ "{uid} {uid}", "*only once*" },
		{ "{uid} a/b {subject}", "*'/'*" },
		{ "{uid} {subject", "*unknown field*" },
		{ "{uid} \xff {subject}", "*UTF-8*" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(FsNameFormat) f = fs_name_format_parse(good[i], &err);

		g_assert_no_error(err);
		g_assert_nonnull(f);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(FsNameFormat) f =
		    fs_name_format_parse(bad[i].spec, &err);

		g_assert_null(f);
		g_assert_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
		if (!g_pattern_match_simple(bad[i].why, err->message))
			g_error("%s: %s", bad[i].spec, err->message);
		g_assert_nonnull(strstr(err->message, "e.g."));
	}
}

/* The default format gives exactly today's names; other formats add the
 * fields, dropping a separator whose field is empty. */
static void test_names(void)
{
	g_autoptr(FsNameFormat) def = fs_name_format_parse(NULL, NULL);
	g_autoptr(FsNameFormat) all =
	    fs_name_format_parse("{uid} {date} {from} - {subject}", NULL);
	static const char *const subjects[] = {
		"hello", "=?UTF-8?B?R3LDvMOfZQ==?=", "", "a/b: c", ".hidden",
	};
	char *n;

	g_assert_cmpuint(fs_name_format_tag(def), ==, 0);
	g_assert_cmpuint(fs_name_format_tag(all), !=, 0);
	g_assert_false(fs_name_format_uses_from(def));
	g_assert_true(fs_name_format_uses_from(all));
	for (size_t i = 0; i < G_N_ELEMENTS(subjects); i++) {
		g_autofree char *want =
		    fs_name_for_message(42, subjects[i], strlen(subjects[i]));
		g_autofree char *got =
		    name_of(def, 42, subjects[i], "text/plain", NULL, 0);

		g_assert_cmpstr(got, ==, want);
	}
	n = name_of(all, 7, "Re: plan", NULL,
		    "=?ISO-8859-1?Q?J=F6rg?= <j@example.org>", 1704186000);
	g_assert_cmpstr(n, ==, "7 2024-01-02 Jörg - Re- plan.eml");
	g_free(n);
	n = name_of(all, 7, NULL, NULL, "bare@example.org", 0);
	g_assert_cmpstr(n, ==, "7 1970-01-01 bare@example.org.eml");
	g_free(n);
	/* Long fields are cut to 255 bytes in all, at a character. */
	{
		GString *s = g_string_new(NULL);
		g_autofree char *from = NULL;

		for (int i = 0; i < 100; i++)
			g_string_append(s, "ü");
		from = g_strdup_printf("\"%s\" <x@y>", s->str);
		n = name_of(all, 4000000000u, s->str, "text/plain", from, 0);
		g_assert_cmpuint(strlen(n), <=, FS_NAME_MAX);
		g_assert_true(g_utf8_validate(n, -1, NULL));
		g_assert_true(g_str_has_suffix(n, ".eml"));
		g_assert_true(g_str_has_prefix(n, "4000000000 1970-01-01 "));
		g_free(n);
		g_string_free(s, TRUE);
	}
}

/* Raw 8-bit subjects: the declared charset first, then UTF-8, then
 * windows-1252. */
static void test_declared_charset(void)
{
	g_autoptr(FsNameFormat) def = fs_name_format_parse(NULL, NULL);
	static const char euckr[] =
	    "[\xb1\xa4\xb0\xed] \xbf\xe4\xc1\xf2 \xb9\xb9\xc7\xd8";
	static const char latin1[] = "Gr\xfc\xdf"
				     "e aus K\xf6ln";
	static const struct {
		const char *subject, *ctype, *want;
	} cases[] = {
		{ euckr, "text/plain; charset=euc-kr",
		  "35 [광고] 요즘 뭐해.eml" },
		{ euckr, "multipart/mixed; boundary=x; charset=\"EUC-KR\"",
		  "35 [광고] 요즘 뭐해.eml" },
		{ latin1, "text/plain; charset=iso-8859-1",
		  "35 Grüße aus Köln.eml" },
		{ latin1, NULL, "35 Grüße aus Köln.eml" },
		{ latin1, "text/plain; charset=utf-8",
		  "35 Grüße aus Köln.eml" },
		{ "\xf0\xd2\xc9\xd7\xc5\xd4", "text/plain; charset=koi8-r",
		  "35 Привет.eml" },
		/* A charset iconv does not know: UTF-8, then windows-1252. */
		{ "Gr\xc3\xbc\xc3\x9f"
		  "e",
		  "text/plain; charset=x-nonsense", "35 Grüße.eml" },
		/* Encoded words keep their own charset. */
		{ "=?UTF-8?Q?caf=C3=A9?= \xb1\xa4\xb0\xed",
		  "text/plain; charset=euc-kr", "35 café 광고.eml" },
	};

	g_autofree char *big5 =
	    fs_name_declared_charset("text/plain; charset=Big5");
	g_autofree char *none = fs_name_declared_charset("text/plain");

	g_assert_cmpstr(big5, ==, "Big5");
	g_assert_null(none);
	g_assert_null(fs_name_declared_charset(NULL));
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *n =
		    name_of(def, 35, cases[i].subject, cases[i].ctype, NULL, 0);

		g_assert_cmpstr(n, ==, cases[i].want);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/name-format/parse", test_parse);
	g_test_add_func("/name-format/names", test_names);
	g_test_add_func("/name-format/declared-charset", test_declared_charset);
	return g_test_run();
}
