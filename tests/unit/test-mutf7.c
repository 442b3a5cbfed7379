/* Unit tests for imap/mutf7.c: known vectors both ways, strict rejection of
 * every non-canonical or malformed input, and random round trips. */
#include "imap/mutf7.h"

#include <glib.h>
#include <string.h>

typedef struct {
	const char *mutf7;
	const char *utf8;
} Pair;

static const Pair pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
	{ "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "&-", "&" },
	{ "&-&-", "&&" },
	{ "a&-b&-", "a&b&" },
	{ "&AOQ-&-", "\xc3\xa4&" },
	{ "&AOQ--", "\xc3\xa4-" },
	{ "-&AOQ-", "-\xc3\xa4" },
	{ "&AOQA9g-", "\xc3\xa4\xc3\xb6" },
	{ "&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc" },
	/* U+1F600 as the surrogate pair D83D DE00 */
	{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
	{ "a&2D3eAA-b", "a\xf0\x9f\x98\x80"
			"b" },
	{ "&ZeVnLNg93gCKng-",
	  "\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80\xe8\xaa\x9e" },
	{ "&2,,f,w-", "\xf4\x8f\xbf\xbf" }, /* U+10FFFF */
	{ "&,,8-", "\xef\xbf\xbf" },        /* U+FFFF */
	{ "a&AAE-b", "a\001b" },            /* controls are encoded */
	{ "&AIA-", "\xc2\x80" },
	{ "&AH8-", "\x7f" },
	{ "Sent Items", "Sent Items" },
	{ "[Gmail]/&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-",
	  "[Gmail]/\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb"
	  "\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5" },
};

static void test_known_pairs(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
		const Pair *p = &pairs[i];
		g_autofree char *dec =
		    imap_mutf7_decode(p->mutf7, strlen(p->mutf7));
		g_autofree char *enc =
		    imap_mutf7_encode(p->utf8, strlen(p->utf8));

		g_assert_nonnull(dec);
		g_assert_cmpstr(dec, ==, p->utf8);
		g_assert_nonnull(enc);
		g_assert_cmpstr(enc, ==, p->mutf7);
	}
}

static void test_length_respected(void)
{
	g_autofree char *a = imap_mutf7_decode("&AOQ-xyz", 5);
	g_autofree char *b = imap_mutf7_encode("\xc3\xa4xyz", 2);
	g_autofree char *c = imap_mutf7_decode(NULL, 0);
	g_autofree char *d = imap_mutf7_encode(NULL, 0);

	g_assert_cmpstr(a, ==, "\xc3\xa4");
	g_assert_cmpstr(b, ==, "&AOQ-");
	g_assert_cmpstr(c, ==, "");
	g_assert_cmpstr(d, ==, "");
	/* "&AOQ-" cut before its '-' is unterminated */
	g_assert_null(imap_mutf7_decode("&AOQ-", 4));
}

static const char *const bad_mutf7[] = {
	"&",               /* unterminated shift */
	"&AOQ",            /* unterminated shift */
	"abc&AOQ",         /* unterminated shift */
	"&-&",             /* unterminated after the escape */
	"Entw\xc3\xbcrfe", /* raw 8-bit */
	"\x80",            /* raw 8-bit */
	"a\001b",          /* raw control character */
	"a\tb",            /* raw tab */
	"a\x7f",           /* raw DEL */
	"&AGE-",           /* 'a' encoded */
	"&ACY-",           /* '&' encoded */
	"&ACA-",           /* ' ' encoded */
	"&AH4-",           /* '~' encoded */
	"&AOQAYQ-",        /* 'a' encoded after a valid unit */
	"&AOR-",           /* non-zero padding bits */
	"&AOQA9h-",        /* non-zero padding bits */
	"&AOQA-",          /* 8 bits left over: a needless character */
	"&AOQA9gD-",       /* 8 bits left over */
	"&A-",             /* 6 bits, no whole unit */
	"&AO-",            /* 12 bits, no whole unit */
	"&AOQ_-",          /* '_' is not modified base64 */
	"&AOQ/-",          /* '/' belongs to plain base64, not here */
	"&AOQ=-",          /* no padding in modified base64 */
	"&AO Q-",          /* space inside the shift */
	"&AO\xc3\xa4Q-",   /* 8-bit inside the shift */
	"&&-",             /* '&' inside the shift */
	"&2D0-",           /* lone high surrogate */
	"&3gA-",           /* lone low surrogate */
	"&3gDYPQ-",        /* low then high */
	"&2D0A5A-",        /* high then a BMP character */
	"&2D3YPd4A-",      /* high, high, low */
	"&2D0-&3gA-",      /* pair split over two shifts */
	"&AOQ-&APY-",      /* null shift between runs: RFC 3501 forbids */
	"&AAA-",           /* U+0000 */
	"&AOQAAA-",        /* U+0000 after a valid unit */
};

static void test_invalid_decode(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad_mutf7); i++) {
		const char *s = bad_mutf7[i];
		char *r = imap_mutf7_decode(s, strlen(s));

		if (r)
			g_error("decode(\"%s\") gave \"%s\", want NULL", s, r);
	}
	/* an embedded NUL byte */
	g_assert_null(imap_mutf7_decode("a\0b", 3));
	g_assert_null(imap_mutf7_decode(NULL, 3));
}

static void test_invalid_encode(void)
{
	static const char *const bad[] = {
		"\xff",         "\xc3",
		"a\xc3",        "\xc0\xaf",
		"\xe0\x80\xaf", "\xed\xa0\x80",
		"\xed\xbf\xbf", "\xf4\x90\x80\x80",
		"\x80",         "Entw\xfcrfe",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		g_assert_null(imap_mutf7_encode(bad[i], strlen(bad[i])));
	g_assert_null(imap_mutf7_encode("a\0b", 3));
	g_assert_null(imap_mutf7_encode(NULL, 1));
}

static void append_random_char(GString *s, GRand *r)
{
	static const gunichar pool[] = {
		'a',    '&',    '-',     ' ',     '~',      '/',    0x01,
		0x7f,   0x80,   0xe4,    0x3000,  0x65e5,   0xd7ff, 0xe000,
		0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff,
	};
	gunichar c;

	switch (g_rand_int_range(r, 0, 4)) {
	case 0:
		c = (gunichar)g_rand_int_range(r, 1, 0x80);
		break;
	case 1:
		c = (gunichar)g_rand_int_range(r, 0x80, 0xd800);
		break;
	case 2:
		c = (gunichar)g_rand_int_range(r, 0x10000, 0x110000);
		break;
	default:
		c = pool[g_rand_int_range(r, 0, G_N_ELEMENTS(pool))];
		break;
	}
	g_string_append_unichar(s, c);
}

/* Any UTF-8 string survives encode then decode, and the encoding uses only
 * printable ASCII. */
static void test_random_utf8(void)
{
	g_autoptr(GRand) r = g_rand_new_with_seed(1234);

	for (int n = 0; n < 20000; n++) {
		g_autoptr(GString) s = g_string_new(NULL);
		int k = g_rand_int_range(r, 0, 12);

		for (int j = 0; j < k; j++)
			append_random_char(s, r);
		g_autofree char *enc = imap_mutf7_encode(s->str, s->len);
		g_assert_nonnull(enc);
		for (const char *p = enc; *p; p++)
			g_assert_true(*p >= 0x20 && *p <= 0x7e);
		g_autofree char *dec = imap_mutf7_decode(enc, strlen(enc));
		g_assert_nonnull(dec);
		g_assert_cmpstr(dec, ==, s->str);
	}
}

/* Random strings over the alphabet that matters: whatever decodes must
 * encode back to exactly the same bytes (strictness). */
static void test_random_mutf7(void)
{
	static const char alpha[] = "&-&-AAAOQDYPd2D3eg9+,/a b\x80";
	g_autoptr(GRand) r = g_rand_new_with_seed(99);
	unsigned decoded = 0;

	for (int n = 0; n < 200000; n++) {
		char buf[16];
		int k = g_rand_int_range(r, 0, (int)sizeof(buf));

		for (int j = 0; j < k; j++)
			buf[j] =
			    alpha[g_rand_int_range(r, 0, sizeof(alpha) - 1)];
		g_autofree char *dec = imap_mutf7_decode(buf, (size_t)k);
		if (!dec)
			continue;
		decoded++;
		g_assert_true(g_utf8_validate(dec, -1, NULL));
		g_autofree char *enc = imap_mutf7_encode(dec, strlen(dec));
		g_assert_nonnull(enc);
		g_assert_cmpmem(enc, strlen(enc), buf, (size_t)k);
	}
	/* the alphabet is rich enough that many inputs are valid */
	g_assert_cmpuint(decoded, >, 1000);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mutf7/known-pairs", test_known_pairs);
	g_test_add_func("/mutf7/length", test_length_respected);
	g_test_add_func("/mutf7/invalid-decode", test_invalid_decode);
	g_test_add_func("/mutf7/invalid-encode", test_invalid_encode);
	g_test_add_func("/mutf7/random-utf8", test_random_utf8);
	g_test_add_func("/mutf7/random-mutf7", test_random_mutf7);
	return g_test_run();
}
