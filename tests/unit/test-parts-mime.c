/* tests/unit/test-parts-mime.c: fs/parts-mime.c, the parts layout's GMime
 * side: part names, HTML to text, and whole trees built from messages,
 * broken ones included. */
#include "fs/parts-mime.h"

#include <gmime/gmime.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static char *tmpdir;

static void test_names(void)
{
	static const struct {
		const char *name, *section, *type, *want;
	} cases[] = {
		{ "invoice.pdf", "2", "application/pdf", "invoice.pdf" },
		{ "a/b\\c\x01.txt", "2", NULL, "a_b_c_.txt" },
		{ "  spaced  ", "3", NULL, "spaced" },
		{ NULL, "1.2", "image/png", "part-1.2.png" },
		{ "", "4", "text/x-weird", "part-4.txt" },
		{ "..", "5", "application/x-what", "part-5.bin" },
		{ NULL, "", "text/plain", "part-1.txt" },
		{ "caf\xe9.txt", "2", NULL, "caf\xef\xbf\xbd.txt" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = fs_parts_file_name(
		    cases[i].name, cases[i].section, cases[i].type);

		g_assert_cmpstr(got, ==, cases[i].want);
	}
	{
		g_autofree char *big = g_strnfill(400, 'x');
		g_autofree char *got = fs_parts_file_name(big, "1", NULL);

		g_assert_cmpuint(strlen(got), <=, 255);
	}
}

static void test_html(void)
{
	static const struct {
		const char *html, *want;
	} cases[] = {
		{ "<p>Caf&eacute; &amp; co</p><p>next</p>",
		  "Café & co\nnext\n" },
		{ "a<br>b<br><br>c", "a\nb\n\nc\n" },
		{ "<style>p{}</style><script>x<y</script>t", "t\n" },
		{ "&#233;&#xE9;&bogus; &", "éé&bogus; &\n" },
		{ "<!-- <p>hidden</p> -->shown", "shown\n" },
		{ "  lots \r\n of\tspace ", "lots of space \n" },
		{ "<unclosed", "" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got =
		    fs_parts_html_to_text(cases[i].html, strlen(cases[i].html));

		g_assert_cmpstr(got, ==, cases[i].want);
	}
}

/* The tree of msg, built from a temp file. */
static PartsItem *build(const char *msg)
{
	g_autofree char *path = g_build_filename(tmpdir, "msg", NULL);
	PartsItem *root;
	int fd;

	g_assert_true(g_file_set_contents(path, msg, -1, NULL));
	fd = open(path, O_RDONLY);
	g_assert_cmpint(fd, >=, 0);
	root = fs_parts_build(fd, 0, strlen(msg), tmpdir);
	close(fd);
	unlink(path);
	g_assert_nonnull(root);
	return root;
}

static char *contents(PartsItem *dir, const char *name)
{
	for (guint i = 0; i < dir->children->len; i++) {
		PartsItem *c = dir->children->pdata[i];
		char *buf;

		if (strcmp(c->name, name) != 0)
			continue;
		buf = g_malloc0(c->size + 1);
		g_assert_cmpint(pread(c->fd, buf, c->size, (off_t)c->offset),
				==, (ssize_t)c->size);
		return buf;
	}
	return NULL;
}

#define HEAD "From: a@example.org\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n"

static void test_build(void)
{
	PartsItem *r = build(
	    HEAD "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		 "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		 "Gr=FC=DFe\r\n--b\r\nContent-Type: application/pdf\r\n"
		 "Content-Disposition: attachment; filename=a.pdf\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
		 "--b\r\nContent-Type: application/pdf; name=a.pdf\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n");
	g_autofree char *txt = contents(r, "text.txt");
	g_autofree char *a = contents(r, "a.pdf");
	g_autofree char *a2 = contents(r, "a (2).pdf");
	g_autofree char *raw = contents(r, "message.eml");

	g_assert_cmpstr(txt, ==,
			"From: a@example.org\nSubject: grüße\n\nGrüße");
	g_assert_cmpstr(a, ==, "%PDF");
	g_assert_cmpstr(a2, ==, "ABC");
	g_assert_true(g_str_has_prefix(raw, "From: a@example.org\r\n"));
	fs_parts_item_free(r);
}

static void test_broken(void)
{
	GString *deep = g_string_new(HEAD);
	PartsItem *r;
	g_autofree char *txt = NULL;

	/* 1,000-deep nesting: the walk stops at PARTS_MAX_DEPTH */
	for (int i = 0; i < 1000; i++)
		g_string_append_printf(deep,
				       "Content-Type: multipart/mixed; "
				       "boundary=d%d\r\n\r\n--d%d\r\n",
				       i, i);
	g_string_append(deep, "Content-Type: text/plain\r\n\r\nbottom\r\n");
	r = build(deep->str);
	txt = contents(r, "message.eml");
	g_assert_nonnull(txt);
	fs_parts_item_free(r);
	g_clear_pointer(&txt, g_free);
	g_string_free(deep, TRUE);

	/* nothing GMime can read as a message: the bytes as text */
	r = build("");
	txt = contents(r, "text.txt");
	g_assert_nonnull(txt);
	fs_parts_item_free(r);

	/* a wrong charset, bad base64, an unknown encoding, no end */
	r = build(HEAD "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		       "--b\r\nContent-Type: text/plain; charset=x-nope\r\n\r\n"
		       "caf\xe9\r\n--b\r\nContent-Type: image/png\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n!!@@##\r\n"
		       "--b\r\nContent-Type: image/gif\r\n"
		       "Content-Transfer-Encoding: x-what\r\n\r\nGIF8");
	g_free(txt);
	txt = contents(r, "text.txt");
	g_assert_true(g_str_has_suffix(txt, "\n\ncafé"));
	g_assert_cmpuint(r->children->len, ==, 4);
	fs_parts_item_free(r);
}

int main(int argc, char **argv)
{
	int rc;

	g_test_init(&argc, &argv, NULL);
	g_mime_init();
	tmpdir = g_dir_make_tmp("imapfs-parts-XXXXXX", NULL);
	g_test_add_func("/parts-mime/names", test_names);
	g_test_add_func("/parts-mime/html", test_html);
	g_test_add_func("/parts-mime/build", test_build);
	g_test_add_func("/parts-mime/broken", test_broken);
	rc = g_test_run();
	rmdir(tmpdir);
	g_free(tmpdir);
	return rc;
}
