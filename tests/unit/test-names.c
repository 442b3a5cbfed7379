/* Unit tests for fs/names.c: exact names for subjects (folding, RFC 2047 in
 * several charsets, raw 8-bit, sanitising, length cuts), UID parsing, folder
 * escaping and disambiguation, and invariants over random inputs. */
#include "fs/names.h"

#include <glib.h>
#include <string.h>

typedef struct {
	const char *subject; /* NUL-terminated unless len is set */
	const char *name;    /* expected file name for UID 1 */
	size_t len;
} Case;

static void check_cases(const Case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const Case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->subject);
		g_autofree char *got = fs_name_for_message(1, c->subject, len);

		if (strcmp(got, c->name))
			g_error("case %zu: subject \"%s\": got \"%s\", want "
				"\"%s\"",
				i, c->subject, got, c->name);
	}
}

static void test_message_basic(void)
{
	static const Case cases[] = {
		{ "Re: quarterly numbers", "1 Re- quarterly numbers.eml" },
		{ " Hello", "1 Hello.eml" },
		{ "Hello\r\n", "1 Hello.eml" },
		{ "", "1.eml" },
		{ "   \t\r\n  ", "1.eml" },
		{ "...", "1.eml" },
		{ ". . .", "1.eml" },
		{ "...hidden", "1 hidden.eml" },
		{ ". . .x", "1 x.eml" },
		{ "a.b.", "1 a.b..eml" },
		{ "a/b:c\\d*e?f\"g<h>i|j", "1 a-b-c-d-e-f-g-h-i-j.eml" },
		{ "a\tb\x01"
		  "c\x7f"
		  "d\x1b"
		  "e",
		  "1 a b c d e.eml" },
		{ "  a   b  \t c  ", "1 a b c.eml" },
		{ "50% off & more ~ #1 [x] {y}",
		  "1 50% off & more ~ #1 [x] {y}.eml" },
		/* folded headers */
		{ "This is a\r\n long subject",
		  "1 This is a long subject.eml" },
		{ "a\r\n\tb", "1 a b.eml" },
		{ "a\r\n \r\n b", "1 a b.eml" },
		{ "a\nb", "1 a b.eml" },
		/* embedded NUL, length respected */
		{ "a\0b", "1 a b.eml", 3 },
		{ "abcdef", "1 abc.eml", 3 },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_null(void)
{
	g_autofree char *a = fs_name_for_message(7, NULL, 0);
	g_autofree char *b = fs_name_for_message(7, NULL, 5);
	g_autofree char *c = fs_name_for_message(7, "x", 0);
	g_autofree char *d = fs_name_for_message(UINT32_MAX, "x", 1);
	g_autofree char *e =
	    fs_name_for_message(1042, "Re: quarterly numbers", 21);

	g_assert_cmpstr(a, ==, "7.eml");
	g_assert_cmpstr(b, ==, "7.eml");
	g_assert_cmpstr(c, ==, "7.eml");
	g_assert_cmpstr(d, ==, "4294967295 x.eml");
	g_assert_cmpstr(e, ==, "1042 Re- quarterly numbers.eml");
}

static void test_message_unicode_cleanup(void)
{
	static const Case cases[] = {
		/* bidi override, isolates, zero width, BOM, soft hyphen */
		{ "invoice\xe2\x80\xaegpj.exe", "1 invoicegpj.exe.eml" },
		{ "a\xe2\x81\xa6"
		  "b\xe2\x81\xa9"
		  "c",
		  "1 abc.eml" },
		{ "a\xe2\x80\x8b"
		  "b\xef\xbb\xbf"
		  "c\xc2\xad"
		  "d",
		  "1 abcd.eml" },
		{ "\xef\xbb\xbfHello", "1 Hello.eml" },
		/* C1 controls, NBSP, ideographic space, line separator */
		{ "a\xc2\x85"
		  "b",
		  "1 a b.eml" },
		{ "a\xc2\xa0\xe3\x80\x80"
		  "b\xe2\x80\xa8"
		  "c",
		  "1 a b c.eml" },
		/* fullwidth solidus is not '/', and stays */
		{ "a\xef\xbc\x8f"
		  "b",
		  "1 a\xef\xbc\x8f"
		  "b.eml" },
		/* a dropped format character does not leave two spaces */
		{ "a \xe2\x80\xae b", "1 a b.eml" },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_rfc2047(void)
{
	static const Case cases[] = {
		{ "=?utf-8?B?w6TDtsO8?=", "1 äöü.eml" },
		{ "=?UTF-8?b?w6TDtsO8?=", "1 äöü.eml" },
		{ "=?iso-8859-1?Q?Entw=FCrfe?=", "1 Entwürfe.eml" },
		{ "=?iso-8859-1?q?Entw=fcrfe?=", "1 Entwürfe.eml" },
		{ "Re: =?utf-8?q?caf=C3=A9?= menu", "1 Re- café menu.eml" },
		/* RFC 2047 section 8 examples */
		{ "(=?ISO-8859-1?Q?a?=)", "1 (a).eml" },
		{ "(=?ISO-8859-1?Q?a?= b)", "1 (a b).eml" },
		{ "(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "1 (ab).eml" },
		{ "(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "1 (ab).eml" },
		{ "(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)",
		  "1 (ab).eml" },
		{ "(=?ISO-8859-1?Q?a_b?=)", "1 (a b).eml" },
		{ "(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "1 (a b).eml" },
		/* adjacent without white space, and word glued to text */
		{ "=?utf-8?Q?a?==?utf-8?Q?b?=", "1 ab.eml" },
		{ "=?utf-8?Q?a?=b c=?utf-8?Q?d?=", "1 ab cd.eml" },
		/* white space before/after words is kept, then collapsed */
		{ "x =?utf-8?Q?a?= y", "1 x a y.eml" },
		/* RFC 2231 language suffix */
		{ "=?utf-8*en?Q?hello?=", "1 hello.eml" },
		/* missing B padding is tolerated */
		{ "=?utf-8?B?YQ?=", "1 a.eml" },
		/* decoded controls and '/' are sanitised like raw ones */
		{ "=?utf-8?Q?a=0D=0Ab=00c=09d?=", "1 a b c d.eml" },
		{ "=?utf-8?Q?a=2Fb=3Ac?=", "1 a-b-c.eml" },
		{ "=?utf-8?Q?=2E=2Ehidden?=", "1 hidden.eml" },
		{ "=?utf-8?Q?a=E2=80=AEb?=", "1 ab.eml" },
		/* invalid bytes in a UTF-8 word, and an unknown charset: read
		 * as windows-1252 */
		{ "=?utf-8?Q?caf=E9?=", "1 café.eml" },
		{ "=?x-no-such-charset?Q?caf=E9?=", "1 café.eml" },
		{ "=?us-ascii?Q?caf=C3=A9?=", "1 café.eml" },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_charsets(void)
{
	static const Case cases[] = {
		{ "=?iso-2022-jp?B?GyRCRnxLXDhsJE4lRiU5JUgbKEI=?=",
		  "1 日本語のテスト.eml" },
		{ "Re: =?ISO-2022-JP?B?GyRCMnE1RCROO3FOQRsoQg==?=",
		  "1 Re- 会議の資料.eml" },
		{ "=?gb2312?B?1tDOxNPKvP6y4srU?=", "1 中文邮件测试.eml" },
		{ "=?koi8-r?B?8NLJ18XUIM3J0g==?=", "1 Привет мир.eml" },
		{ "=?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=", "1 Привет.eml" },
		{ "=?windows-1252?Q?=93Smart_quotes=94_=96_=805?=",
		  "1 “Smart quotes” – €5.eml" },
		/* latin1 labels are read as windows-1252, as readers do */
		{ "=?iso-8859-1?Q?=93x=94?=", "1 “x”.eml" },
		{ "=?iso-8859-15?B?R3L832UgYXVzIEv2bG4=?=",
		  "1 Grüße aus Köln.eml" },
		{ "=?iso-8859-7?B?xevr5+3p6tw=?=", "1 Ελληνικά.eml" },
		{ "=?euc-kr?B?x9Gxub7u?=", "1 한국어.eml" },
		{ "=?shift_jis?B?g2WDWINn?=", "1 テスト.eml" },
		{ "=?big5?B?wWPF6aSkpOU=?=", "1 繁體中文.eml" },
		/* mixed charsets in one subject */
		{ "=?koi8-r?Q?=F0=D2=C9=D7=C5=D4?= =?gb2312?B?1tDOxA==?=",
		  "1 Привет中文.eml" },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_split_chars(void)
{
	static const Case cases[] = {
		/* "日本" with the first character split over two words */
		{ "=?utf-8?B?5pc=?= =?utf-8?B?peacrA==?=", "1 日本.eml" },
		/* the same over a fold, with differing case in the label */
		{ "=?UTF-8?B?5pc=?=\r\n =?utf-8?B?peacrA==?=", "1 日本.eml" },
		/* an emoji split 1 + 3 bytes, B then Q */
		{ "=?utf-8?B?8A==?= =?utf-8?Q?=9F=98=80?=", "1 😀.eml" },
		/* a gb2312 character split over two words */
		{ "=?gb2312?Q?=D6?= =?gb2312?Q?=D0=CE=C4?=", "1 中文.eml" },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_malformed_words(void)
{
	static const Case cases[] = {
		{ "=?utf-8?Q?caf=C?=", "1 =-utf-8-Q-caf=C-=.eml" },
		{ "=?utf-8?Q?caf=?=", "1 =-utf-8-Q-caf=-=.eml" },
		{ "=?utf-8?X?abc?=", "1 =-utf-8-X-abc-=.eml" },
		{ "=?utf-8?B?###?=", "1 =-utf-8-B-###-=.eml" },
		{ "=?utf-8?B?Y?=", "1 =-utf-8-B-Y-=.eml" },
		{ "=?utf-8?B?YQ==YQ?=", "1 =-utf-8-B-YQ==YQ-=.eml" },
		{ "=?utf-8?Q?a b?=", "1 =-utf-8-Q-a b-=.eml" },
		{ "=??Q?a?=", "1 =--Q-a-=.eml" },
		{ "=?utf-8?Q?"
		  "?=",
		  "1 =-utf-8-Q--=.eml" },
		{ "=?utf 8?Q?a?=", "1 =-utf 8-Q-a-=.eml" },
		{ "=?utf/8?Q?a?=", "1 =-utf-8-Q-a-=.eml" },
		{ "=?utf-8?Q?abc", "1 =-utf-8-Q-abc.eml" },
		{ "=?utf-8?Q?abc?", "1 =-utf-8-Q-abc-.eml" },
		{ "=?", "1 =-.eml" },
		/* a malformed word between two good ones breaks adjacency */
		{ "=?utf-8?Q?a?= =?x?= =?utf-8?Q?b?=", "1 a =-x-= b.eml" },
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_raw_8bit(void)
{
	static const Case cases[] = {
		{ "Gr\xc3\xbc\xc3\x9f"
		  "e",
		  "1 Grüße.eml" },
		{ "Gr\xfc\xdf"
		  "e",
		  "1 Grüße.eml" },
		{ "\x93quoted\x94 \x80"
		  "5",
		  "1 “quoted” €5.eml" },
		{ "caf\xc3\xa9 \xe9t\xe9", "1 café été.eml" },
		{ "\xc3\x28", "1 Ã(.eml" },
		{ "\xff\xfe", "1 ÿþ.eml" },
		{ "\xed\xa0\x80", "1 í €.eml" }, /* encoded surrogate */
		{ "\xc0\xaf", "1 À¯.eml" },      /* overlong '/' */
		{ "a\x81"
		  "b",
		  "1 a b.eml" }, /* undefined in 1252 */
		{ "\xe6\x97\xa5\xe6\x9c", "1 日æœ.eml" }, /* truncated char */
	};

	check_cases(cases, G_N_ELEMENTS(cases));
}

static void test_message_length(void)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autoptr(GString) want = g_string_new(NULL);
	char *got;

	/* 300 bytes of 4-byte characters: 45 of them fit in 180 bytes */
	for (int i = 0; i < 75; i++)
		g_string_append(s, "😀");
	g_assert_cmpuint(s->len, ==, 300);
	g_string_append(want, "1 ");
	for (int i = 0; i < 45; i++)
		g_string_append(want, "😀");
	g_string_append(want, ".eml");
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_cmpstr(got, ==, want->str);
	g_free(got);

	/* the same behind 3 ASCII bytes: 44 emoji (179 bytes), cut at the
	 * boundary rather than inside the 45th */
	g_string_prepend(s, "ab ");
	g_string_assign(want, "1 ab ");
	for (int i = 0; i < 44; i++)
		g_string_append(want, "😀");
	g_string_append(want, ".eml");
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_cmpstr(got, ==, want->str);
	g_assert_cmpuint(strlen(got), ==, 2 + 179 + 4);
	g_free(got);

	/* 300 bytes as an encoded word */
	g_string_truncate(s, 0);
	g_string_append(s, "=?utf-8?B?");
	for (int i = 0; i < 75; i++)
		g_string_append(s, "8J+YgA==");
	g_string_append(s, "?=");
	/* B words do not contain padding in the middle: it is literal */
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_true(g_str_has_prefix(got, "1 =-utf-8-B-8J+YgA==8J+Y"));
	g_free(got);
	g_string_truncate(s, 0);
	g_string_append(s, "=?utf-8?B?");
	for (int i = 0; i < 25; i++)
		g_string_append(s, "8J+YgPCfmIDwn5iA");
	g_string_append(s, "?=");
	g_string_assign(want, "1 ");
	for (int i = 0; i < 45; i++)
		g_string_append(want, "😀");
	g_string_append(want, ".eml");
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_cmpstr(got, ==, want->str);
	g_free(got);

	/* a space at the cut is not left trailing */
	g_string_truncate(s, 0);
	for (int i = 0; i < 180; i++)
		g_string_append_c(s, 'a');
	g_string_append(s, " b");
	g_string_assign(want, "1 ");
	for (int i = 0; i < 180; i++)
		g_string_append_c(want, 'a');
	g_string_append(want, ".eml");
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_cmpstr(got, ==, want->str);
	g_free(got);
	g_string_truncate(s, 179);
	g_string_append(s, " b");
	got = fs_name_for_message(1, s->str, s->len);
	g_assert_cmpuint(strlen(got), ==, 2 + 179 + 4);
	g_assert_true(g_str_has_suffix(got, "a.eml"));
	g_free(got);

	/* 100 three-byte characters: 60 fit */
	g_string_truncate(s, 0);
	g_string_assign(want, "4294967295 ");
	for (int i = 0; i < 100; i++) {
		g_string_append(s, "日");
		if (i < 60)
			g_string_append(want, "日");
	}
	g_string_append(want, ".eml");
	got = fs_name_for_message(UINT32_MAX, s->str, s->len);
	g_assert_cmpstr(got, ==, want->str);
	g_assert_cmpuint(strlen(got), <=, FS_NAME_MAX);
	g_free(got);
}

static void test_parse_uid(void)
{
	static const struct {
		const char *name;
		bool ok;
		uint32_t uid;
	} cases[] = {
		{ "1042 Re- quarterly numbers.eml", true, 1042 },
		{ "1.eml", true, 1 },
		{ "7 x", true, 7 },
		{ "12a", true, 12 },
		{ "4294967295 x.eml", true, UINT32_MAX },
		{ "4294967296 x.eml", false, 0 },
		{ "99999999999999999999999 x", false, 0 },
		{ "0 x.eml", false, 0 },
		{ "0.eml", false, 0 },
		{ "01 x.eml", false, 0 },
		{ "123", false, 0 },
		{ "", false, 0 },
		{ ".hidden", false, 0 },
		{ ".directory", false, 0 },
		{ "desktop.ini", false, 0 },
		{ "-1 x", false, 0 },
		{ "+1 x", false, 0 },
		{ " 1 x", false, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		uint32_t uid = 0xdeadbeef;
		bool ok = fs_name_parse_uid(cases[i].name, &uid);

		g_assert_cmpint(ok, ==, cases[i].ok);
		g_assert_cmpuint(uid, ==, ok ? cases[i].uid : 0xdeadbeef);
	}
	g_assert_false(fs_name_parse_uid(NULL, NULL));
	g_assert_true(fs_name_parse_uid("5 x", NULL));
}

typedef struct {
	const char *raw;
	size_t len; /* 0: strlen */
	const char *name;
} FolderCase;

static void test_folder(void)
{
	static const FolderCase cases[] = {
		{ "INBOX", 0, "INBOX" },
		{ "Entw&APw-rfe", 0, "Entwürfe" },
		{ "&ZeVnLIqe-", 0, "日本語" },
		{ "&2D3eAA-", 0, "😀" },
		{ "&-", 0, "&" },
		{ "50%", 0, "50%25" },
		{ "%", 0, "%25" },
		{ "a/b", 0, "a%2Fb" },
		{ ".", 0, "%2E" },
		{ "..", 0, "%2E%2E" },
		{ "...", 0, "..." },
		{ ".a", 0, ".a" },
		{ "", 0, "%" },
		{ "&AAE-", 0, "%01" },
		{ "a&AH8-b", 0, "a%7Fb" },
		{ "&AIU-", 0, "%C2%85" },
		{ " x ", 0, " x " },
		/* not modified UTF-7: the raw bytes, escaped */
		{ "&AOQ", 0, "&AOQ" },
		{ "&ACU-", 0, "&ACU-" },
		{ "Entw\xfcrfe", 0, "Entw%FCrfe" },
		{ "Entw\xc3\xbcrfe", 0, "Entwürfe" },
		{ "a\tb", 0, "a%09b" },
		{ "a\0b", 3, "a%00b" },
		{ "\xed\xa0\x80", 0, "%ED%A0%80" },
		{ "\xc2\x85/%", 0, "%C2%85%2F%25" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const FolderCase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->raw);
		g_autofree char *got = fs_name_for_folder(c->raw, len);

		if (strcmp(got, c->name))
			g_error("folder case %zu: got \"%s\", want \"%s\"", i,
				got, c->name);
	}
	g_autofree char *n = fs_name_for_folder(NULL, 0);
	g_assert_cmpstr(n, ==, "%");
}

static char *repeat(const char *s, int n)
{
	GString *g = g_string_new(NULL);

	for (int i = 0; i < n; i++)
		g_string_append(g, s);
	return g_string_free(g, FALSE);
}

static void test_folder_long(void)
{
	g_autofree char *a300 = repeat("a", 300);
	g_autofree char *a246 = repeat("a", 246);
	g_autofree char *a245 = repeat("a", 245);
	g_autofree char *a255 = repeat("a", 255);
	g_autofree char *emoji = repeat("😀", 75);
	g_autofree char *emoji61 = repeat("😀", 61);
	g_autofree char *mutf7 = repeat("&ZeU-a", 70);
	g_autofree char *cjk61 = repeat("日a", 61);
	g_autofree char *pct = g_strconcat(a245, "%%%%%%%%%%", NULL);
	char *got, *want;

	got = fs_name_for_folder(a300, 300);
	want = g_strconcat(a246, "~279e8f01", NULL);
	g_assert_cmpstr(got, ==, want);
	g_assert_cmpuint(strlen(got), ==, 255);
	g_free(got);
	g_free(want);

	/* exactly 255 bytes: kept as is */
	got = fs_name_for_folder(a255, 255);
	g_assert_cmpstr(got, ==, a255);
	g_free(got);

	/* raw UTF-8 (not mUTF-7): cut between 4-byte characters */
	got = fs_name_for_folder(emoji, strlen(emoji));
	want = g_strconcat(emoji61, "~1455cf38", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);

	/* decoded from mUTF-7; hash of the raw name */
	got = fs_name_for_folder(mutf7, strlen(mutf7));
	want = g_strconcat(cjk61, "~820a07cd", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);

	/* an escape is never cut in half */
	got = fs_name_for_folder(pct, strlen(pct));
	want = g_strconcat(a245, "~4f7a21be", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);
}

static void test_disambiguate(void)
{
	g_autofree char *a255 = repeat("a", 255);
	g_autofree char *a246 = repeat("a", 246);
	g_autofree char *a245 = repeat("a", 245);
	g_autofree char *a244 = repeat("a", 244);
	g_autofree char *e63 = repeat("😀", 63);
	g_autofree char *e61 = repeat("😀", 61);
	g_autofree char *p1 = g_strconcat(a245, "%25aaaaaaa", NULL);
	g_autofree char *p2 = g_strconcat(a244, "%25aaaaaaaa", NULL);
	g_autofree char *p3 = g_strconcat(a246, "%25aaaaaa", NULL);
	char *got, *want;

	got = fs_name_disambiguate("INBOX", "INBOX", 5);
	g_assert_cmpstr(got, ==, "INBOX~4a1e411b");
	g_free(got);
	got = fs_name_disambiguate("Trash", "Trash2", 6);
	g_assert_cmpstr(got, ==, "Trash~177503b5");
	g_free(got);
	got = fs_name_disambiguate("%", "", 0);
	g_assert_cmpstr(got, ==, "%~811c9dc5");
	g_free(got);

	got = fs_name_disambiguate(a255, "raw", 3);
	want = g_strconcat(a246, "~43ff12f1", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);

	got = fs_name_disambiguate(e63, "raw", 3);
	want = g_strconcat(e61, "~43ff12f1", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);

	/* the cut at 246 would fall inside "%25": back off before it */
	got = fs_name_disambiguate(p1, "Raw", 3);
	want = g_strconcat(a245, "~a689aa91", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);
	got = fs_name_disambiguate(p2, "Raw", 3);
	want = g_strconcat(a244, "~a689aa91", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);
	got = fs_name_disambiguate(p3, "Raw", 3);
	want = g_strconcat(a246, "~a689aa91", NULL);
	g_assert_cmpstr(got, ==, want);
	g_free(got);
	g_free(want);
}

/* ---- invariants over random inputs ---- */

static bool is_format_char(gunichar c)
{
	return c == 0xad || (c >= 0x200b && c <= 0x200f) ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) ||
	       c == 0xfeff || (c >= 0xe0000 && c <= 0xe007f);
}

static void check_common(const char *name)
{
	g_assert_nonnull(name);
	g_assert_cmpuint(strlen(name), >, 0);
	g_assert_cmpuint(strlen(name), <=, FS_NAME_MAX);
	g_assert_true(g_utf8_validate(name, -1, NULL));
	g_assert_cmpstr(name, !=, ".");
	g_assert_cmpstr(name, !=, "..");
	for (const char *p = name; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		g_assert_cmpuint(c, !=, '/');
		g_assert_false(c < 0x20 || (c >= 0x7f && c <= 0x9f));
	}
}

static void check_message_name(uint32_t uid, const char *subject, size_t len)
{
	g_autofree char *name = fs_name_for_message(uid, subject, len);
	g_autofree char *again = fs_name_for_message(uid, subject, len);
	g_autofree char *prefix = g_strdup_printf("%" G_GUINT32_FORMAT, uid);
	uint32_t parsed = 0;
	const char *subj, *end;

	check_common(name);
	g_assert_cmpstr(name, ==, again);
	g_assert_true(fs_name_parse_uid(name, &parsed));
	g_assert_cmpuint(parsed, ==, uid);
	g_assert_true(g_str_has_suffix(name, ".eml"));
	g_assert_true(g_str_has_prefix(name, prefix));
	subj = name + strlen(prefix);
	end = name + strlen(name) - 4;
	if (subj == end)
		return;
	g_assert_cmpint(*subj, ==, ' ');
	subj++;
	g_assert_cmpuint((size_t)(end - subj), <=, 180);
	g_assert_true(subj < end);
	g_assert_cmpint(subj[0], !=, ' ');
	g_assert_cmpint(subj[0], !=, '.');
	g_assert_cmpint(end[-1], !=, ' ');
	g_assert_null(g_strstr_len(subj, end - subj, "  "));
	for (const char *p = subj; p < end; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		g_assert_false(is_format_char(c));
		if (c < 0x80)
			g_assert_null(strchr(":\\*?\"<>|", (int)c));
	}
}

static void check_folder_name(const char *raw, size_t len)
{
	g_autofree char *name = fs_name_for_folder(raw, len);
	g_autofree char *again = fs_name_for_folder(raw, len);
	g_autofree char *dis = fs_name_disambiguate(name, raw, len);

	check_common(name);
	g_assert_cmpstr(name, ==, again);
	check_common(dis);
	g_assert_true(strchr(dis, '~') != NULL);
}

static const char *const pieces[] = {
	"=?",
	"?=",
	"utf-8",
	"UTF-8",
	"iso-2022-jp",
	"gb2312",
	"koi8-r",
	"windows-1252",
	"?B?",
	"?Q?",
	"?q?",
	"5pc=",
	"peacrA==",
	"8J+YgA==",
	"=C3",
	"=A4",
	"=E2=80=AE",
	"_",
	" ",
	"  ",
	"\t",
	"\r\n ",
	"\r\n",
	"/",
	":",
	".",
	"..",
	"%",
	"&",
	"&-",
	"&AOQ-",
	"&ZeVnLIqe-",
	"-",
	"😀",
	"日本",
	"\xe2\x80\xae",
	"\xc2\x85",
	"\xef\xbb\xbf",
	"\xc3",
	"\xa4",
	"\xff",
	"\x80",
	"\0",
	"\x01",
	"\x7f",
	"a",
	"Re: ",
	"~",
	"\xed\xa0\x80",
	"\xc0\xaf",
	"\xf4\x90\x80\x80",
	"1",
	"0",
};

static void random_input(GRand *r, GString *s)
{
	int k = g_rand_int_range(r, 0, 40);

	g_string_truncate(s, 0);
	if (g_rand_int_range(r, 0, 10) == 0)
		k = 300; /* long inputs */
	for (int j = 0; j < k; j++) {
		if (g_rand_int_range(r, 0, 4) == 0) {
			g_string_append_c(s, (char)g_rand_int_range(r, 0, 256));
		} else {
			const char *p = pieces[g_rand_int_range(
			    r, 0, G_N_ELEMENTS(pieces))];

			g_string_append_len(s, p, *p ? (gssize)strlen(p) : 1);
		}
	}
}

static void test_random_invariants(void)
{
	g_autoptr(GRand) r = g_rand_new_with_seed(4242);
	g_autoptr(GString) s = g_string_new(NULL);

	for (int n = 0; n < 30000; n++) {
		uint32_t uid = g_rand_int(r);
		uint32_t parsed;

		if (uid == 0)
			uid = 1;
		random_input(r, s);
		check_message_name(uid, s->str, s->len);
		check_folder_name(s->str, s->len);
		/* parse_uid must agree with a straightforward reading */
		if (fs_name_parse_uid(s->str, &parsed)) {
			g_autofree char *digits =
			    g_strdup_printf("%" G_GUINT32_FORMAT, parsed);

			g_assert_true(g_str_has_prefix(s->str, digits));
			g_assert_false(g_ascii_isdigit(s->str[strlen(digits)]));
			g_assert_cmpint(s->str[strlen(digits)], !=, '\0');
		}
	}
}

/* Random plain text, B-encoded and split at any byte: the name shows the
 * text exactly. */
static void test_random_split_words(void)
{
	static const char *const chars[] = { "a", "Z", "9", "é", "ж", "日",
					     "😀", "-", "(", "ü", " b" };
	g_autoptr(GRand) r = g_rand_new_with_seed(7);

	for (int n = 0; n < 5000; n++) {
		g_autoptr(GString) text = g_string_new("x");
		g_autoptr(GString) subj = g_string_new(NULL);
		int k = g_rand_int_range(r, 0, 30);
		size_t cut;

		for (int j = 0; j < k; j++)
			g_string_append(
			    text,
			    chars[g_rand_int_range(r, 0, G_N_ELEMENTS(chars))]);
		g_string_append_c(text, 'y');
		cut = (size_t)g_rand_int_range(r, 1, (int)text->len);
		g_autofree char *b1 = g_base64_encode((guchar *)text->str, cut);
		g_autofree char *b2 =
		    g_base64_encode((guchar *)text->str + cut, text->len - cut);
		g_string_printf(subj, "=?utf-8?B?%s?=\r\n =?UTF-8?b?%s?=", b1,
				b2);
		g_autofree char *want = g_strdup_printf("9 %s.eml", text->str);
		g_autofree char *got =
		    fs_name_for_message(9, subj->str, subj->len);

		if (text->len <= 180)
			g_assert_cmpstr(got, ==, want);
		else
			check_common(got);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/names/message/basic", test_message_basic);
	g_test_add_func("/names/message/null", test_message_null);
	g_test_add_func("/names/message/unicode-cleanup",
			test_message_unicode_cleanup);
	g_test_add_func("/names/message/rfc2047", test_message_rfc2047);
	g_test_add_func("/names/message/charsets", test_message_charsets);
	g_test_add_func("/names/message/split-chars", test_message_split_chars);
	g_test_add_func("/names/message/malformed-words",
			test_message_malformed_words);
	g_test_add_func("/names/message/raw-8bit", test_message_raw_8bit);
	g_test_add_func("/names/message/length", test_message_length);
	g_test_add_func("/names/parse-uid", test_parse_uid);
	g_test_add_func("/names/folder/basic", test_folder);
	g_test_add_func("/names/folder/long", test_folder_long);
	g_test_add_func("/names/disambiguate", test_disambiguate);
	g_test_add_func("/names/random/invariants", test_random_invariants);
	g_test_add_func("/names/random/split-words", test_random_split_words);
	return g_test_run();
}
