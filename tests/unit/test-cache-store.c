/* Unit tests for cache/store.c, each in a fresh temporary directory. */
#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCOUNT "imaps://me@mail.example.org:993"

typedef struct {
	char *base; /* made by the test; the cache root lies below it */
	char *root;
} Fixture;

static int remove_all(const char *path)
{
	g_autoptr(GDir) d = NULL;
	const char *name;
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	chmod(path, 0700);
	d = g_dir_open(path, 0, NULL);
	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *child = g_build_filename(path, name, NULL);

		remove_all(child);
	}
	return rmdir(path);
}

static void fixture_set_up(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) err = NULL;

	f->base = g_dir_make_tmp("imapfs-cache-XXXXXX", &err);
	g_assert_no_error(err);
	f->root = g_build_filename(f->base, "cache", NULL);
}

static void fixture_tear_down(Fixture *f, gconstpointer data)
{
	g_assert_cmpint(remove_all(f->base), ==, 0);
	g_free(f->base);
	g_free(f->root);
}

static CacheStore *open_ok(const char *root, const char *account)
{
	g_autoptr(GError) err = NULL;
	CacheStore *s = cache_store_open(root, account, &err);

	g_assert_no_error(err);
	g_assert_nonnull(s);
	return s;
}

static void assert_mode(const char *path, mode_t type, mode_t mode)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		g_error("stat %s: %s", path, g_strerror(errno));
	g_assert_cmpuint(st.st_mode & S_IFMT, ==, type);
	g_assert_cmpuint(st.st_mode & 07777, ==, mode);
}

static void assert_absent(const char *path)
{
	struct stat st;

	g_assert_cmpint(lstat(path, &st), ==, -1);
	g_assert_cmpint(errno, ==, ENOENT);
}

static guint count_entries(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	guint n = 0;

	g_assert_nonnull(d);
	while (g_dir_read_name(d))
		n++;
	return n;
}

static char *tmp_dir(CacheStore *s)
{
	return g_build_filename(cache_store_dir(s), "tmp", NULL);
}

static char *expected_key(const char *s)
{
	g_autofree char *sum =
	    g_compute_checksum_for_string(G_CHECKSUM_SHA256, s, -1);
	GString *k = g_string_new_len(sum, 16);

	g_string_append_c(k, '-');
	for (const char *p = s; *p && k->len < 16 + 1 + 40; p++)
		g_string_append_c(
		    k, (g_ascii_isalnum(*p) || strchr("._@-", *p)) ? *p : '_');
	return g_string_free(k, FALSE);
}

static char *body_path(CacheStore *s, const char *folder, uint32_t uv,
		       uint32_t uid)
{
	g_autofree char *key = expected_key(folder);

	return g_strdup_printf("%s/folders/%s/%u/%u", cache_store_dir(s), key,
			       uv, uid);
}

static void put_body(CacheStore *s, const char *folder, uint32_t uv,
		     uint32_t uid, const char *text)
{
	g_autoptr(GError) err = NULL;
	CacheBodyWriter *w = cache_body_writer_new(s, &err);

	g_assert_no_error(err);
	g_assert_cmpint(cache_body_writer_write(w, text, strlen(text)), ==, 0);
	g_assert_cmpint(cache_body_writer_commit(w, folder, uv, uid), ==, 0);
}

/* Whole content of an fd from cache_store_open_body(); closes it. */
static GBytes *read_fd(int fd)
{
	GByteArray *b = g_byte_array_new();
	uint8_t buf[4096];
	ssize_t n;

	g_assert_cmpint(fd, >=, 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		g_byte_array_append(b, buf, (guint)n);
	g_assert_cmpint(n, ==, 0);
	close(fd);
	return g_byte_array_free_to_bytes(b);
}

static void assert_body(CacheStore *s, const char *folder, uint32_t uv,
			uint32_t uid, const char *text)
{
	g_autoptr(GBytes) got =
	    read_fd(cache_store_open_body(s, folder, uv, uid));

	g_assert_cmpmem(g_bytes_get_data(got, NULL), g_bytes_get_size(got),
			text, strlen(text));
}

/* A strict umask must not change the modes. */
static void test_layout_modes(Fixture *f, gconstpointer data)
{
	g_autofree char *root = g_build_filename(f->root, "a", "b", NULL);
	g_autofree char *mid = g_build_filename(f->root, "a", NULL);
	g_autofree char *key = expected_key(ACCOUNT);
	g_autofree char *dir = g_build_filename(root, key, NULL);
	g_autofree char *path = NULL, *fdir = NULL, *fkey = NULL;
	g_autoptr(GPtrArray) folders = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	CacheFolderIndex *idx = cache_folder_index_new();
	mode_t old = umask(0277);
	CacheStore *s = open_ok(root, ACCOUNT);
	uint32_t id;

	g_assert_cmpstr(cache_store_dir(s), ==, dir);
	g_assert_cmpstr(key, ==,
			"d8eecbd73fe44581-imaps___me@mail.example.org_993");
	assert_mode(f->root, S_IFDIR, 0700);
	assert_mode(mid, S_IFDIR, 0700);
	assert_mode(root, S_IFDIR, 0700);
	assert_mode(dir, S_IFDIR, 0700);
	path = g_build_filename(dir, "folders", NULL);
	assert_mode(path, S_IFDIR, 0700);
	g_clear_pointer(&path, g_free);
	path = g_build_filename(dir, "tmp", NULL);
	assert_mode(path, S_IFDIR, 0700);
	g_clear_pointer(&path, g_free);
	path = g_build_filename(dir, "lock", NULL);
	assert_mode(path, S_IFREG, 0600);
	g_clear_pointer(&path, g_free);

	put_body(s, "INBOX", 7, 42, "hello");
	fkey = expected_key("INBOX");
	fdir = g_build_filename(dir, "folders", fkey, NULL);
	assert_mode(fdir, S_IFDIR, 0700);
	path = g_build_filename(fdir, "7", NULL);
	assert_mode(path, S_IFDIR, 0700);
	g_clear_pointer(&path, g_free);
	path = g_build_filename(fdir, "7", "42", NULL);
	assert_mode(path, S_IFREG, 0600);
	g_clear_pointer(&path, g_free);

	idx->uidvalidity = 7;
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	path = g_build_filename(fdir, "index", NULL);
	assert_mode(path, S_IFREG, 0600);
	g_clear_pointer(&path, g_free);

	g_ptr_array_add(folders, cache_folder_entry_new("INBOX", '/', 0));
	g_assert_cmpint(cache_store_save_folders(s, folders), ==, 0);
	path = g_build_filename(dir, "folders.list", NULL);
	assert_mode(path, S_IFREG, 0600);
	g_clear_pointer(&path, g_free);

	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 7, &id), ==, 0);
	path = g_build_filename(dir, "ids", NULL);
	assert_mode(path, S_IFREG, 0600);
	g_clear_pointer(&path, g_free);

	/* Nothing but the expected entries. */
	g_assert_cmpuint(count_entries(dir), ==, 5);
	g_assert_cmpuint(count_entries(root), ==, 1);
	g_assert_cmpuint(count_entries(f->base), ==, 1);

	cache_store_free(s);
	cache_folder_index_free(idx);
	umask(old);
}

static void test_body_round_trip(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autoptr(GError) err = NULL;
	g_autofree char *tmp = tmp_dir(s);
	g_autofree uint8_t *data1 = g_malloc(3 * 1024 * 1024 + 17);
	size_t len = 3 * 1024 * 1024 + 17, off = 0;
	CacheBodyWriter *w;
	GBytes *got;
	struct stat st;
	int fd;

	for (size_t i = 0; i < len; i++)
		data1[i] = (uint8_t)(i * 7 + i / 251);
	g_assert_cmpint(cache_store_open_body(s, "INBOX", 5, 1), ==, -ENOENT);

	w = cache_body_writer_new(s, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(cache_body_writer_size(w), ==, 0);
	g_assert_cmpuint(count_entries(tmp), ==, 1);
	for (size_t chunk = 1; off < len; chunk = chunk * 3 + 1) {
		size_t n = MIN(chunk, len - off);

		g_assert_cmpint(cache_body_writer_write(w, data1 + off, n), ==,
				0);
		off += n;
		g_assert_cmpuint(cache_body_writer_size(w), ==, off);
	}
	g_assert_cmpint(cache_body_writer_write(w, "", 0), ==, 0);
	g_assert_cmpint(cache_body_writer_commit(w, "INBOX", 5, 1), ==, 0);
	g_assert_cmpuint(count_entries(tmp), ==, 0);

	fd = cache_store_open_body(s, "INBOX", 5, 1);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
	g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
	g_assert_cmpint(fstat(fd, &st), ==, 0);
	g_assert_cmpint(st.st_size, ==, (off_t)len);
	got = read_fd(fd);
	g_assert_cmpmem(g_bytes_get_data(got, NULL), g_bytes_get_size(got),
			data1, len);
	g_bytes_unref(got);

	/* Neighbours are not cached. */
	g_assert_cmpint(cache_store_open_body(s, "INBOX", 5, 2), ==, -ENOENT);
	g_assert_cmpint(cache_store_open_body(s, "INBOX", 6, 1), ==, -ENOENT);
	g_assert_cmpint(cache_store_open_body(s, "Other", 5, 1), ==, -ENOENT);
	g_assert_cmpint(cache_store_open_body(s, "INBOX", 0, 1), ==, -ENOENT);

	/* Two fetches raced: the second commit replaces the first. */
	put_body(s, "INBOX", 5, 9, "same bytes\r\n");
	put_body(s, "INBOX", 5, 9, "same bytes\r\n");
	assert_body(s, "INBOX", 5, 9, "same bytes\r\n");

	/* An empty body is a valid file. */
	put_body(s, "INBOX", 5, 10, "");
	assert_body(s, "INBOX", 5, 10, "");
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	cache_store_free(s);
}

static void test_abort(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *tmp = tmp_dir(s);
	g_autofree char *folders =
	    g_build_filename(cache_store_dir(s), "folders", NULL);
	CacheBodyWriter *w;

	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, "partial", 7), ==, 0);
	g_assert_cmpuint(count_entries(tmp), ==, 1);
	cache_body_writer_abort(w);
	cache_body_writer_abort(NULL);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(count_entries(folders), ==, 0);

	/* A refused commit frees the writer and leaves nothing either. */
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, "x", 1), ==, 0);
	g_assert_cmpint(cache_body_writer_commit(w, "INBOX", 5, 0), ==,
			-EINVAL);
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_commit(w, "INBOX", 0, 5), ==,
			-EINVAL);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(count_entries(folders), ==, 0);
	cache_store_free(s);
}

static void test_stale_tmp(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *tmp = tmp_dir(s);
	g_autofree char *stale = g_build_filename(tmp, "body-abc123", NULL);
	g_autofree char *sub = g_build_filename(tmp, "odd-dir", NULL);
	g_autofree char *subfile = g_build_filename(sub, "x", NULL);
	g_autofree char *half = g_build_filename(tmp, "body-XXXXXX", NULL);
	int fd;

	put_body(s, "INBOX", 1, 1, "kept");
	/* What a crash in the middle of a fetch leaves. */
	fd = g_mkstemp(half);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(write(fd, "half", 4), ==, 4);
	close(fd);
	g_assert_true(g_file_set_contents(stale, "junk", -1, NULL));
	g_assert_cmpint(mkdir(sub, 0700), ==, 0);
	g_assert_true(g_file_set_contents(subfile, "junk", -1, NULL));
	g_assert_cmpuint(count_entries(tmp), ==, 3);
	cache_store_free(s);

	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	assert_body(s, "INBOX", 1, 1, "kept");
	cache_store_free(s);
}

static void test_ids(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *ids_path =
	    g_build_filename(cache_store_dir(s), "ids", NULL);
	uint32_t a, b, c, d, e, x;
	int fd;

	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 0, &a), ==, 0);
	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 7, &b), ==, 0);
	g_assert_cmpint(cache_store_folder_id(s, "Sent", 7, &c), ==, 0);
	g_assert_cmpint(cache_store_folder_id(s, "", 0, &d), ==, 0);
	g_assert_cmpuint(a, ==, 1);
	g_assert_cmpuint(b, ==, 2);
	g_assert_cmpuint(c, ==, 3);
	g_assert_cmpuint(d, ==, 4);
	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 7, &x), ==, 0);
	g_assert_cmpuint(x, ==, b);
	for (int i = 0; i < 3000; i++) {
		g_autofree char *name = g_strdup_printf("Folder/%d", i);

		g_assert_cmpint(cache_store_folder_id(s, name, 1, &x), ==, 0);
		g_assert_cmpuint(x, ==, 5 + i);
	}
	cache_store_free(s);

	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpint(cache_store_folder_id(s, "Sent", 7, &x), ==, 0);
	g_assert_cmpuint(x, ==, c);
	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 0, &x), ==, 0);
	g_assert_cmpuint(x, ==, a);
	g_assert_cmpint(cache_store_folder_id(s, "", 0, &x), ==, 0);
	g_assert_cmpuint(x, ==, d);
	for (int i = 0; i < 3000; i++) {
		g_autofree char *name = g_strdup_printf("Folder/%d", i);

		g_assert_cmpint(cache_store_folder_id(s, name, 1, &x), ==, 0);
		g_assert_cmpuint(x, ==, 5 + i);
	}
	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 8, &e), ==, 0);
	g_assert_cmpuint(e, ==, 3005);
	cache_store_free(s);

	/* A torn tail (system crash mid-append) loses only that record. */
	fd = open(ids_path, O_WRONLY | O_APPEND);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(write(fd, "\x05\x00\x00\x00\x09\x00", 6), ==, 6);
	close(fd);
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
			      "*damaged after byte*keeping 3005 folder ids");
	s = open_ok(f->root, ACCOUNT);
	g_test_assert_expected_messages();
	g_assert_cmpint(cache_store_folder_id(s, "INBOX", 8, &x), ==, 0);
	g_assert_cmpuint(x, ==, e);
	g_assert_cmpint(cache_store_folder_id(s, "Drafts", 1, &x), ==, 0);
	g_assert_cmpuint(x, ==, 3006);
	cache_store_free(s);
	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpint(cache_store_folder_id(s, "Drafts", 1, &x), ==, 0);
	g_assert_cmpuint(x, ==, 3006);
	g_assert_cmpint(cache_store_folder_id(s, "Sent", 7, &x), ==, 0);
	g_assert_cmpuint(x, ==, c);
	cache_store_free(s);

	/* A file that is not an ids file at all: start again from 1. */
	g_assert_true(g_file_set_contents(ids_path, "garbage", -1, NULL));
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "*damaged*");
	s = open_ok(f->root, ACCOUNT);
	g_test_assert_expected_messages();
	g_assert_cmpint(cache_store_folder_id(s, "Sent", 7, &x), ==, 0);
	g_assert_cmpuint(x, ==, 1);
	cache_store_free(s);
	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpint(cache_store_folder_id(s, "Sent", 7, &x), ==, 0);
	g_assert_cmpuint(x, ==, 1);
	cache_store_free(s);
}

typedef struct {
	CacheStore *store;
	int seed;
	uint32_t ids[200];
} IdThread;

static gpointer id_thread(gpointer data)
{
	IdThread *t = data;

	for (int i = 0; i < 200; i++) {
		/* Every thread asks for the same pairs in its own order. */
		int k = (i * 7 + t->seed * 13) % 200;
		g_autofree char *name = g_strdup_printf("F%d", k);
		g_autofree char *body = g_strdup_printf("body %d", k);

		g_assert_cmpint(
		    cache_store_folder_id(t->store, name, 3, &t->ids[k]), ==,
		    0);
		put_body(t->store, name, 3, 1, body);
	}
	return NULL;
}

static void test_threads(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	IdThread t[8];
	GThread *th[8];
	bool seen[201] = {false};

	for (int i = 0; i < 8; i++) {
		t[i].store = s;
		t[i].seed = i;
		th[i] = g_thread_new("ids", id_thread, &t[i]);
	}
	for (int i = 0; i < 8; i++)
		g_thread_join(th[i]);
	for (int k = 0; k < 200; k++) {
		g_autofree char *name = g_strdup_printf("F%d", k);
		g_autofree char *body = g_strdup_printf("body %d", k);

		for (int i = 1; i < 8; i++)
			g_assert_cmpuint(t[i].ids[k], ==, t[0].ids[k]);
		g_assert_cmpuint(t[0].ids[k], >=, 1);
		g_assert_cmpuint(t[0].ids[k], <=, 200);
		g_assert_false(seen[t[0].ids[k]]);
		seen[t[0].ids[k]] = true;
		assert_body(s, name, 3, 1, body);
	}
	cache_store_free(s);

	s = open_ok(f->root, ACCOUNT);
	for (int k = 0; k < 200; k++) {
		g_autofree char *name = g_strdup_printf("F%d", k);
		uint32_t x;

		g_assert_cmpint(cache_store_folder_id(s, name, 3, &x), ==, 0);
		g_assert_cmpuint(x, ==, t[0].ids[k]);
	}
	cache_store_free(s);
}

static void test_lock(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	CacheStore *other;
	g_autoptr(GError) err = NULL;
	g_autofree char *msg = NULL;

	g_assert_null(cache_store_open(f->root, ACCOUNT, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_AGAIN);
	msg = g_strdup_printf("cache directory %s is in use by another "
			      "imapfs process",
			      cache_store_dir(s));
	g_assert_cmpstr(err->message, ==, msg);
	g_clear_error(&err);

	/* Another account under the same root is independent. */
	other = open_ok(f->root, "imaps://you@mail.example.org");
	g_assert_cmpstr(cache_store_dir(other), !=, cache_store_dir(s));
	cache_store_free(other);

	cache_store_free(s);
	s = open_ok(f->root, ACCOUNT);
	cache_store_free(s);
}

static void test_drop_folder(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *fkey = expected_key("INBOX");
	g_autofree char *fdir =
	    g_build_filename(cache_store_dir(s), "folders", fkey, NULL);
	g_autofree char *index_path = g_build_filename(fdir, "index", NULL);
	g_autofree char *uv5 = g_build_filename(fdir, "5", NULL);
	g_autofree char *uv6 = g_build_filename(fdir, "6", NULL);
	g_autofree char *uv7 = g_build_filename(fdir, "7", NULL);
	CacheFolderIndex *idx = cache_folder_index_new();

	put_body(s, "INBOX", 5, 1, "five");
	put_body(s, "INBOX", 6, 1, "six");
	put_body(s, "INBOX", 6, 2, "six too");
	put_body(s, "INBOX", 7, 1, "seven");
	put_body(s, "Other", 5, 1, "other five");
	idx->uidvalidity = 6;
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	g_assert_cmpint(cache_store_save_index(s, "Other", idx), ==, 0);

	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 6), ==, 0);
	assert_absent(uv5);
	assert_absent(uv7);
	assert_body(s, "INBOX", 6, 1, "six");
	assert_body(s, "INBOX", 6, 2, "six too");
	assert_mode(index_path, S_IFREG, 0600);
	g_assert_cmpuint(count_entries(fdir), ==, 2);

	/* A new UIDVALIDITY: old bodies and the old index go. */
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 9), ==, 0);
	assert_absent(uv6);
	assert_absent(index_path);
	g_assert_cmpuint(count_entries(fdir), ==, 0);
	g_assert_null(cache_store_load_index(s, "INBOX"));

	/* 0 removes everything of the folder, and only of that folder. */
	put_body(s, "INBOX", 9, 3, "nine");
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 0), ==, 0);
	assert_absent(fdir);
	g_assert_cmpint(cache_store_open_body(s, "INBOX", 9, 3), ==, -ENOENT);
	assert_body(s, "Other", 5, 1, "other five");
	cache_folder_index_free(idx);
	idx = cache_store_load_index(s, "Other");
	g_assert_nonnull(idx);
	g_assert_cmpuint(idx->uidvalidity, ==, 6);

	/* Unknown folders are fine; a body can come back after a drop. */
	g_assert_cmpint(cache_store_drop_folder(s, "Nope", 0), ==, 0);
	g_assert_cmpint(cache_store_drop_folder(s, "Nope", 4), ==, 0);
	put_body(s, "INBOX", 9, 3, "nine again");
	assert_body(s, "INBOX", 9, 3, "nine again");
	cache_folder_index_free(idx);
	cache_store_free(s);
}

static bool key_is_safe(const char *name)
{
	size_t len = strlen(name);

	if (len < 17 || len > 57 || name[16] != '-')
		return false;
	for (size_t i = 0; i < 16; i++)
		if (!g_ascii_isxdigit(name[i]) || g_ascii_isupper(name[i]))
			return false;
	for (size_t i = 17; i < len; i++)
		if (!g_ascii_isalnum(name[i]) && !strchr("._@-", name[i]))
			return false;
	return true;
}

static void test_hostile_names(Fixture *f, gconstpointer data)
{
	CacheStore *s;
	g_autofree char *folders = NULL;
	g_autofree char *account_dir = NULL;
	GString *longname = g_string_new(NULL);
	const char *names[8];
	g_autoptr(GDir) d = NULL;
	const char *entry;
	guint n = 0;

	for (int i = 0; i < 100; i++)
		g_string_append(longname, "../");
	g_assert_cmpuint(longname->len, ==, 300);
	names[0] = "../../etc";
	names[1] = "a/b";
	names[2] = "";
	names[3] = longname->str;
	names[4] = "..";
	names[5] = ".";
	names[6] = "a_b";
	names[7] = "/abs\n\t\x7f\xff Grüße";

	/* The account string is hostile too. */
	s = open_ok(f->root, "../../../../tmp/x/..");
	account_dir = g_strdup(cache_store_dir(s));
	g_assert_true(g_str_has_prefix(account_dir, f->root));
	g_assert_true(key_is_safe(account_dir + strlen(f->root) + 1));
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		g_autofree char *text = g_strdup_printf("body %u", i);
		CacheFolderIndex *idx = cache_folder_index_new();
		CacheFolderIndex *back;
		uint32_t id;

		idx->uidvalidity = 3;
		put_body(s, names[i], 3, 1, text);
		g_assert_cmpint(cache_store_save_index(s, names[i], idx), ==,
				0);
		back = cache_store_load_index(s, names[i]);
		g_assert_nonnull(back);
		g_assert_cmpuint(back->uidvalidity, ==, 3);
		cache_folder_index_free(back);
		cache_folder_index_free(idx);
		g_assert_cmpint(cache_store_folder_id(s, names[i], 3, &id), ==,
				0);
		g_assert_cmpuint(id, ==, i + 1);
	}
	/* Distinct names, distinct bodies (even "a/b" and "a_b"). */
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		g_autofree char *text = g_strdup_printf("body %u", i);
		g_autofree char *path = body_path(s, names[i], 3, 1);

		assert_body(s, names[i], 3, 1, text);
		assert_mode(path, S_IFREG, 0600);
	}

	/* Every folder directory is one safe component under folders/. */
	folders = g_build_filename(account_dir, "folders", NULL);
	d = g_dir_open(folders, 0, NULL);
	g_assert_nonnull(d);
	while ((entry = g_dir_read_name(d))) {
		g_autofree char *sub = g_build_filename(folders, entry, NULL);

		g_assert_true(key_is_safe(entry));
		assert_mode(sub, S_IFDIR, 0700);
		n++;
	}
	g_assert_cmpuint(n, ==, G_N_ELEMENTS(names));

	/* Nothing escaped: the base holds only the root, the root only the
	 * account directory. */
	g_assert_cmpuint(count_entries(f->base), ==, 1);
	g_assert_cmpuint(count_entries(f->root), ==, 1);

	g_assert_cmpint(cache_store_drop_folder(s, "../../etc", 0), ==, 0);
	g_assert_cmpuint(count_entries(folders), ==, G_N_ELEMENTS(names) - 1);
	assert_body(s, "..", 3, 1, "body 4");
	cache_store_free(s);
	g_string_free(longname, TRUE);
}

static void test_index_files(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *fkey = expected_key("INBOX");
	g_autofree char *path = g_build_filename(cache_store_dir(s), "folders",
						 fkey, "index", NULL);
	g_autofree char *list_path =
	    g_build_filename(cache_store_dir(s), "folders.list", NULL);
	g_autoptr(GPtrArray) folders = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	g_autoptr(GPtrArray) back = NULL;
	CacheFolderIndex *idx = cache_folder_index_new();
	CacheFolderIndex *got;
	CacheMessage m = {12, true, 345, 1700000000, g_strdup("12 Hi.eml")};
	g_autofree char *raw = NULL;
	gsize raw_len;

	g_assert_null(cache_store_load_index(s, "INBOX"));
	g_assert_null(cache_store_load_folders(s));

	idx->uidvalidity = 77;
	idx->uidnext = 13;
	idx->exists = 1;
	idx->highestmodseq = 99;
	g_array_append_val(idx->messages, m);
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	got = cache_store_load_index(s, "INBOX");
	g_assert_nonnull(got);
	g_assert_cmpuint(got->uidvalidity, ==, 77);
	g_assert_cmpuint(got->uidnext, ==, 13);
	g_assert_cmpuint(got->highestmodseq, ==, 99);
	g_assert_cmpuint(got->messages->len, ==, 1);
	g_assert_cmpstr(cache_folder_index_find(got, 12)->name, ==,
			"12 Hi.eml");
	cache_folder_index_free(got);

	/* Saving again replaces the index. */
	idx->uidnext = 14;
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	got = cache_store_load_index(s, "INBOX");
	g_assert_cmpuint(got->uidnext, ==, 14);
	cache_folder_index_free(got);

	/* One flipped byte: NULL, and the file is gone. */
	g_assert_true(g_file_get_contents(path, &raw, &raw_len, NULL));
	raw[raw_len / 2] ^= 0x20;
	g_assert_true(g_file_set_contents(path, raw, (gssize)raw_len, NULL));
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
			      "*unreadable*checksum*");
	g_assert_null(cache_store_load_index(s, "INBOX"));
	g_test_assert_expected_messages();
	assert_absent(path);
	g_assert_null(cache_store_load_index(s, "INBOX"));

	/* Truncated to nothing. */
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	g_assert_true(g_file_set_contents(path, "", 0, NULL));
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
			      "*unreadable*");
	g_assert_null(cache_store_load_index(s, "INBOX"));
	g_test_assert_expected_messages();
	assert_absent(path);

	g_ptr_array_add(folders, cache_folder_entry_new("INBOX", '/', 0));
	g_ptr_array_add(folders, cache_folder_entry_new("[Gmail]", '/',
							CACHE_FOLDER_NOSELECT));
	g_assert_cmpint(cache_store_save_folders(s, folders), ==, 0);
	back = cache_store_load_folders(s);
	g_assert_nonnull(back);
	g_assert_cmpuint(back->len, ==, 2);
	g_assert_cmpstr(((CacheFolderEntry *)back->pdata[1])->name, ==,
			"[Gmail]");
	g_assert_cmpuint(((CacheFolderEntry *)back->pdata[1])->flags, ==,
			 CACHE_FOLDER_NOSELECT);
	g_assert_cmpint(((CacheFolderEntry *)back->pdata[0])->delimiter, ==,
			'/');
	g_assert_true(g_file_set_contents(list_path, "IMFSLST1", -1, NULL));
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
			      "*unreadable*");
	g_assert_null(cache_store_load_folders(s));
	g_test_assert_expected_messages();
	assert_absent(list_path);

	cache_folder_index_free(idx);
	cache_store_free(s);
}

static void test_bad_root(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *file = g_build_filename(f->base, "file", NULL);
	g_autofree char *below = g_build_filename(file, "cache", NULL);

	g_assert_null(cache_store_open("", ACCOUNT, &err));
	g_assert_nonnull(err);
	g_clear_error(&err);
	g_assert_true(g_file_set_contents(file, "x", -1, NULL));
	g_assert_null(cache_store_open(file, ACCOUNT, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR);
	g_clear_error(&err);
	g_assert_null(cache_store_open(below, ACCOUNT, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR);
}

#define ADD(name, func)                                                        \
	g_test_add(name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	ADD("/cache-store/layout-modes", test_layout_modes);
	ADD("/cache-store/body-round-trip", test_body_round_trip);
	ADD("/cache-store/abort", test_abort);
	ADD("/cache-store/stale-tmp", test_stale_tmp);
	ADD("/cache-store/ids", test_ids);
	ADD("/cache-store/threads", test_threads);
	ADD("/cache-store/lock", test_lock);
	ADD("/cache-store/drop-folder", test_drop_folder);
	ADD("/cache-store/hostile-names", test_hostile_names);
	ADD("/cache-store/index-files", test_index_files);
	ADD("/cache-store/bad-root", test_bad_root);
	return g_test_run();
}
