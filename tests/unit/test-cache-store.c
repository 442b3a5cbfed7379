/* Unit tests for cache/store.c, each in a fresh temporary directory. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* unshare */
#endif
#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCOUNT "imaps://me@mail.example.org:993"

typedef struct {
	char *base; /* made by the test; the cache root lies below it */
	char *root;
	char *mnt; /* a tmpfs mounted by the test, or NULL */
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
	if (f->mnt) {
		g_assert_cmpint(umount2(f->mnt, MNT_DETACH), ==, 0);
		g_free(f->mnt);
	}
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
	bool seen[201] = { false };

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
			      "imapfs process (pid %ld)",
			      cache_store_dir(s), (long)getpid());
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
	CacheMessage m = { .uid = 12,
			   .size_exact = false,
			   .size = 345,
			   .internaldate = 1700000000,
			   .name = "12 Hi.eml" };
	CacheIndexBuilder *bld = cache_index_builder_new(NULL);
	CacheMessage got_m;
	g_autofree char *raw = NULL;
	gsize raw_len;

	g_assert_null(cache_store_load_index(s, "INBOX"));
	g_assert_null(cache_store_load_folders(s));

	g_assert_true(cache_index_builder_add(bld, &m));
	cache_folder_index_free(idx);
	idx = cache_index_builder_finish(bld,
					 &(CacheFolderIndex){
					     .uidvalidity = 77,
					     .uidnext = 13,
					     .exists = 1,
					     .highestmodseq = 99,
					 },
					 NULL);
	g_assert_nonnull(idx);
	/* A size corrected in place is saved with the index. */
	g_assert_true(cache_folder_index_set_size(idx, 12, 346, true));
	g_assert_false(cache_folder_index_set_size(idx, 13, 1, true));
	g_assert_cmpint(cache_store_save_index(s, "INBOX", idx), ==, 0);
	got = cache_store_load_index(s, "INBOX");
	g_assert_nonnull(got);
	g_assert_cmpuint(got->uidvalidity, ==, 77);
	g_assert_cmpuint(got->uidnext, ==, 13);
	g_assert_cmpuint(got->highestmodseq, ==, 99);
	g_assert_cmpuint(cache_folder_index_count(got), ==, 1);
	g_assert_true(cache_folder_index_find(got, 12, &got_m, NULL));
	g_assert_cmpstr(got_m.name, ==, "12 Hi.eml");
	g_assert_cmpuint(got_m.size, ==, 346);
	g_assert_true(got_m.size_exact);
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

/* ---- size bound and LRU ---- */

static uint8_t pattern_byte(uint64_t i, uint32_t seed)
{
	return (uint8_t)(i * 31 + i / 7 + seed * 101);
}

static uint8_t *pattern(size_t len, uint32_t seed)
{
	uint8_t *p = g_malloc(len + 1);

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
	return p;
}

/* A body of size bytes in chunks of chunk bytes; returns what commit
 * returns. */
static int put_sized(CacheStore *s, const char *folder, uint32_t uv,
		     uint32_t uid, size_t size)
{
	g_autofree uint8_t *data = pattern(size, uid);
	CacheBodyWriter *w = cache_body_writer_new(s, NULL);

	g_assert_nonnull(w);
	g_assert_cmpint(cache_body_writer_write(w, data, size), ==, 0);
	return cache_body_writer_commit(w, folder, uv, uid);
}

static bool cached(CacheStore *s, const char *folder, uint32_t uv, uint32_t uid)
{
	int fd = cache_store_open_body(s, folder, uv, uid);

	if (fd == -ENOENT)
		return false;
	g_assert_cmpint(fd, >=, 0);
	close(fd);
	return true;
}

/* Bytes and number of the body files on disk. */
static uint64_t disk_body_bytes(CacheStore *s, guint *count)
{
	g_autofree char *top =
	    g_build_filename(cache_store_dir(s), "folders", NULL);
	g_autoptr(GDir) d = g_dir_open(top, 0, NULL);
	const char *fk;
	uint64_t sum = 0;

	*count = 0;
	g_assert_nonnull(d);
	while ((fk = g_dir_read_name(d))) {
		g_autofree char *fdir = g_build_filename(top, fk, NULL);
		g_autoptr(GDir) d2 = g_dir_open(fdir, 0, NULL);
		const char *uv;

		while (d2 && (uv = g_dir_read_name(d2))) {
			g_autofree char *uvdir =
			    g_build_filename(fdir, uv, NULL);
			g_autoptr(GDir) d3 = g_dir_open(uvdir, 0, NULL);
			const char *uid;

			while (d3 && (uid = g_dir_read_name(d3))) {
				g_autofree char *p =
				    g_build_filename(uvdir, uid, NULL);
				struct stat st;

				g_assert_cmpint(lstat(p, &st), ==, 0);
				sum += (uint64_t)st.st_size;
				(*count)++;
			}
		}
	}
	return sum;
}

static void assert_tracked_matches_disk(CacheStore *s)
{
	guint n;
	uint64_t disk = disk_body_bytes(s, &n);

	g_assert_cmpuint(cache_store_body_bytes(s), ==, disk);
}

static void test_lru_order(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);

	g_assert_cmpint(cache_store_set_limit(s, 1000), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);
	for (uint32_t uid = 1; uid <= 4; uid++)
		g_assert_cmpint(put_sized(s, "INBOX", 7, uid, 200), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 800);

	/* Reading 1 makes 2 the least recently used. Unknown bodies and
	 * folders are ignored. */
	cache_store_touch_body(s, "INBOX", 7, 1);
	cache_store_touch_body(s, "INBOX", 7, 99);
	cache_store_touch_body(s, "INBOX", 8, 1);
	cache_store_touch_body(s, "Nope", 7, 1);

	/* Exactly at the bound: nothing goes. */
	g_assert_cmpint(put_sized(s, "INBOX", 7, 5, 200), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 1000);
	for (uint32_t uid = 1; uid <= 5; uid++)
		g_assert_true(cached(s, "INBOX", 7, uid));

	/* Over it: down to 90% with the new body, oldest first (2, 3). */
	g_assert_cmpint(put_sized(s, "INBOX", 7, 6, 200), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 800);
	g_assert_true(cached(s, "INBOX", 7, 1));
	g_assert_false(cached(s, "INBOX", 7, 2));
	g_assert_false(cached(s, "INBOX", 7, 3));
	g_assert_true(cached(s, "INBOX", 7, 4));
	g_assert_true(cached(s, "INBOX", 7, 5));
	g_assert_true(cached(s, "INBOX", 7, 6));

	/* Order now 4 1 5 6; touch 4 and 1: 5 and 6 go next. */
	cache_store_touch_body(s, "INBOX", 7, 4);
	cache_store_touch_body(s, "INBOX", 7, 1);
	g_assert_cmpint(put_sized(s, "Sent", 7, 1, 350), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 750);
	g_assert_false(cached(s, "INBOX", 7, 5));
	g_assert_false(cached(s, "INBOX", 7, 6));
	g_assert_true(cached(s, "INBOX", 7, 4));
	g_assert_true(cached(s, "INBOX", 7, 1));
	g_assert_true(cached(s, "Sent", 7, 1));
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

static void test_bound_held(Fixture *f, gconstpointer data)
{
	const uint64_t max = 50000;
	CacheStore *s = open_ok(f->root, ACCOUNT);
	uint32_t rnd = 12345;
	guint n;

	g_assert_cmpint(cache_store_set_limit(s, max), ==, 0);
	for (uint32_t i = 1; i <= 600; i++) {
		const char *folder = i % 3 ? "INBOX" : "Archive/2023";
		size_t size;

		rnd = rnd * 1103515245u + 12345u;
		size = 1 + (rnd >> 8) % 6000;
		g_assert_cmpint(put_sized(s, folder, 3, i, size), ==, 0);
		g_assert_true(cached(s, folder, 3, i));
		g_assert_cmpuint(cache_store_body_bytes(s), <=, max);
		if (i % 4 == 0)
			cache_store_touch_body(s, "INBOX", 3, i / 2);
		if (i % 50 == 0)
			assert_tracked_matches_disk(s);
	}
	g_assert_cmpuint(cache_store_body_bytes(s), >=, max / 2);
	g_assert_cmpuint(disk_body_bytes(s, &n), ==, cache_store_body_bytes(s));
	g_assert_cmpuint(n, <, 600);
	g_assert_cmpuint(n, >, 5);
	cache_store_free(s);
}

static void test_bytes_tracked(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *tmp = tmp_dir(s);
	CacheBodyWriter *w;

	/* No bound: nothing is tracked, touch is a no-op. */
	g_assert_cmpint(put_sized(s, "INBOX", 1, 1, 111), ==, 0);
	cache_store_touch_body(s, "INBOX", 1, 1);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);

	/* The bound finds what is there. */
	g_assert_cmpint(cache_store_set_limit(s, 1 << 20), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 111);
	g_assert_cmpint(put_sized(s, "INBOX", 1, 2, 222), ==, 0);
	g_assert_cmpint(put_sized(s, "Sent", 1, 2, 333), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 666);

	/* The same body committed again is counted once. */
	g_assert_cmpint(put_sized(s, "Sent", 1, 2, 333), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 666);

	/* Aborted and refused commits count nothing. */
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, "abcdef", 6), ==, 0);
	cache_body_writer_abort(w);
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, "abcdef", 6), ==, 0);
	g_assert_cmpint(cache_body_writer_commit(w, "INBOX", 1, 0), ==,
			-EINVAL);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 666);

	/* Empty bodies are tracked with size 0. */
	put_body(s, "INBOX", 1, 3, "");
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 666);
	g_assert_cmpuint(count_entries(tmp), ==, 0);

	/* A larger bound keeps everything; no bound forgets the tracking;
	 * a new bound scans again. */
	g_assert_cmpint(cache_store_set_limit(s, 1 << 30), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 666);
	g_assert_cmpint(cache_store_set_limit(s, 0), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);
	g_assert_cmpint(put_sized(s, "INBOX", 1, 4, 1000), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);
	g_assert_cmpint(cache_store_set_limit(s, 1 << 20), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 1666);
	assert_tracked_matches_disk(s);

	/* A lower bound on a tracked cache evicts at once, to the bound. */
	g_assert_cmpint(cache_store_set_limit(s, 1500), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), <=, 1500);
	g_assert_true(cached(s, "INBOX", 1, 4));
	assert_tracked_matches_disk(s);
	cache_store_free(s);

	/* And after a remount. */
	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);
	g_assert_cmpint(cache_store_set_limit(s, 1 << 20), ==, 0);
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

static void set_mtime(CacheStore *s, const char *folder, uint32_t uv,
		      uint32_t uid, time_t when)
{
	g_autofree char *path = body_path(s, folder, uv, uid);
	struct timespec ts[2] = { { when, 0 }, { when, 0 } };

	g_assert_cmpint(utimensat(AT_FDCWD, path, ts, 0), ==, 0);
}

static void test_limit_existing(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *fdir = NULL, *stray = NULL, *zero = NULL;
	g_autofree char *link = NULL, *notnum = NULL;
	/* uid: mtime; A=1 oldest, then D=4, C=3, E=5, B=2. */
	const time_t when[] = {
		0, 1000000, 5000000, 3000000, 2000000, 4000000
	};

	for (uint32_t uid = 1; uid <= 5; uid++) {
		g_assert_cmpint(
		    put_sized(s, uid % 2 ? "INBOX" : "Sent", 9, uid, 100), ==,
		    0);
		set_mtime(s, uid % 2 ? "INBOX" : "Sent", 9, uid, when[uid]);
	}
	/* What the scan must not count: names we never write. */
	stray = body_path(s, "INBOX", 9, 1);
	fdir = g_path_get_dirname(stray);
	g_free(stray);
	stray = g_build_filename(fdir, "stray", NULL);
	zero = g_build_filename(fdir, "007", NULL);
	link = g_build_filename(fdir, "8", NULL);
	notnum = g_build_filename(fdir, "..", "index", NULL);
	g_assert_true(g_file_set_contents(stray, "12345", -1, NULL));
	g_assert_true(g_file_set_contents(zero, "12345", -1, NULL));
	g_assert_true(g_file_set_contents(notnum, "12345", -1, NULL));
	g_assert_cmpint(symlink(stray, link), ==, 0);
	cache_store_free(s);

	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpint(cache_store_set_limit(s, 300), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 300);
	g_assert_false(cached(s, "INBOX", 9, 1));
	g_assert_true(cached(s, "Sent", 9, 2));
	g_assert_true(cached(s, "INBOX", 9, 3));
	g_assert_false(cached(s, "Sent", 9, 4));
	g_assert_true(cached(s, "INBOX", 9, 5));
	/* Strays are left alone. */
	g_assert_true(g_file_test(stray, G_FILE_TEST_IS_REGULAR));
	g_assert_true(g_file_test(zero, G_FILE_TEST_IS_REGULAR));
	g_assert_true(g_file_test(notnum, G_FILE_TEST_IS_REGULAR));
	g_assert_true(g_file_test(link, G_FILE_TEST_IS_SYMLINK));

	/* Order from mtimes: C (3), E (5), B (2). A new body of 100 goes
	 * over the bound: down to 270, so C and E go. */
	g_assert_cmpint(put_sized(s, "INBOX", 9, 6, 100), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 200);
	g_assert_false(cached(s, "INBOX", 9, 3));
	g_assert_false(cached(s, "INBOX", 9, 5));
	g_assert_true(cached(s, "Sent", 9, 2));
	g_assert_true(cached(s, "INBOX", 9, 6));
	cache_store_free(s);
}

static void test_drop_accounting(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);

	g_assert_cmpint(cache_store_set_limit(s, 1000000), ==, 0);
	g_assert_cmpint(put_sized(s, "INBOX", 5, 1, 100), ==, 0);
	g_assert_cmpint(put_sized(s, "INBOX", 5, 2, 200), ==, 0);
	g_assert_cmpint(put_sized(s, "INBOX", 6, 1, 300), ==, 0);
	g_assert_cmpint(put_sized(s, "Other", 5, 1, 400), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 1000);

	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 6), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 700);
	cache_store_touch_body(s, "INBOX", 5, 1);
	g_assert_cmpint(cache_store_drop_folder(s, "Nope", 0), ==, 0);
	g_assert_cmpint(cache_store_drop_folder(s, "Nope", 3), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 700);
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 0), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 400);
	assert_tracked_matches_disk(s);

	/* A body can come back; eviction sees only what is left. */
	g_assert_cmpint(put_sized(s, "INBOX", 6, 1, 50), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 450);
	g_assert_cmpint(cache_store_set_limit(s, 400), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 50);
	g_assert_false(cached(s, "Other", 5, 1));
	g_assert_true(cached(s, "INBOX", 6, 1));
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

/* Checks an fd from commit_fd: close-on-exec, at offset 0, exactly the
 * bytes of pattern(len, seed). Closes it. */
static void assert_uncached(int fd, size_t len, uint32_t seed)
{
	g_autofree uint8_t *want = pattern(len, seed);
	g_autoptr(GBytes) got = NULL;

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
	g_assert_cmpint(lseek(fd, 0, SEEK_CUR), ==, 0);
	got = read_fd(fd);
	g_assert_cmpmem(g_bytes_get_data(got, NULL), g_bytes_get_size(got),
			want, len);
}

static void test_oversize(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *tmp = tmp_dir(s);
	g_autofree uint8_t *big = pattern(1500, 77);
	CacheBodyWriter *w;
	int fd = 42;

	g_assert_cmpint(cache_store_set_limit(s, 1000), ==, 0);
	for (uint32_t uid = 1; uid <= 3; uid++)
		g_assert_cmpint(put_sized(s, "INBOX", 1, uid, 300), ==, 0);

	/* Larger than the whole bound: served, not cached, nothing
	 * evicted. */
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, big, 1500), ==, 0);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 1, 77, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 1500, 77);
	g_assert_false(cached(s, "INBOX", 1, 77));
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 900);
	g_assert_cmpint(put_sized(s, "INBOX", 1, 78, 1001), ==, -ENOSPC);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	for (uint32_t uid = 1; uid <= 3; uid++)
		g_assert_true(cached(s, "INBOX", 1, uid));

	/* Exactly the bound: everything else goes. */
	g_assert_cmpint(put_sized(s, "INBOX", 1, 79, 1000), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 1000);
	for (uint32_t uid = 1; uid <= 3; uid++)
		g_assert_false(cached(s, "INBOX", 1, uid));

	/* commit_fd on success and on other errors leaves fd at -1. */
	fd = 42;
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_write(w, "x", 1), ==, 0);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 1, 80, &fd), ==,
			0);
	g_assert_cmpint(fd, ==, -1);
	fd = 42;
	w = cache_body_writer_new(s, NULL);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 0, 80, &fd), ==,
			-EINVAL);
	g_assert_cmpint(fd, ==, -1);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

typedef struct {
	CacheStore *store;
	int seed;
} LruThread;

static gpointer lru_thread(gpointer data)
{
	LruThread *t = data;
	g_autofree char *folder = g_strdup_printf("T%d", t->seed);
	uint32_t rnd = (uint32_t)t->seed * 7919u + 1;

	for (uint32_t uid = 1; uid <= 150; uid++) {
		rnd = rnd * 1103515245u + 12345u;
		g_assert_cmpint(
		    put_sized(t->store, folder, 1, uid, 1 + (rnd >> 8) % 3000),
		    ==, 0);
		cache_store_touch_body(t->store, folder, 1, 1 + rnd % uid);
		cache_store_touch_body(t->store, "T0", 1, uid);
		if (uid % 40 == 0)
			g_assert_cmpint(
			    cache_store_drop_folder(t->store, folder, 2), ==,
			    0);
	}
	return NULL;
}

static void test_lru_threads(Fixture *f, gconstpointer data)
{
	const uint64_t max = 60000;
	CacheStore *s = open_ok(f->root, ACCOUNT);
	LruThread t[8];
	GThread *th[8];

	g_assert_cmpint(cache_store_set_limit(s, max), ==, 0);
	for (int i = 0; i < 8; i++) {
		t[i].store = s;
		t[i].seed = i;
		th[i] = g_thread_new("lru", lru_thread, &t[i]);
	}
	for (int i = 0; i < 8; i++)
		g_thread_join(th[i]);
	/* Bodies being committed may hold eviction back for a moment: at
	 * most one per thread over the bound. */
	g_assert_cmpuint(cache_store_body_bytes(s), <=, max + 8 * 3000);
	assert_tracked_matches_disk(s);
	/* The next commit brings it under the bound again. */
	g_assert_cmpint(put_sized(s, "T0", 1, 1000, 10), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), <=, max);
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

/* ---- disk full, on a small tmpfs ---- */

/* Mount a tmpfs with opts at base/mnt and put the cache root there. False
 * (the test is skipped) when this process cannot mount. */
static bool mount_small(Fixture *f, const char *opts)
{
	g_autofree char *mnt = g_build_filename(f->base, "mnt", NULL);

	g_assert_cmpint(mkdir(mnt, 0700), ==, 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) < 0) {
		g_autofree char *msg = g_strdup_printf(
		    "cannot mount a tmpfs: %s", g_strerror(errno));

		g_test_skip(msg);
		return false;
	}
	f->mnt = g_steal_pointer(&mnt);
	g_free(f->root);
	f->root = g_build_filename(f->mnt, "cache", NULL);
	return true;
}

/* Fill the tmpfs with a file; returns its fd. */
static int fill_disk(Fixture *f)
{
	g_autofree char *path = g_build_filename(f->mnt, "filler", NULL);
	static const char buf[4096];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	g_assert_cmpint(fd, >=, 0);
	for (;;) {
		ssize_t n = write(fd, buf, sizeof(buf));

		if (n < 0) {
			g_assert_cmpint(errno, ==, ENOSPC);
			break;
		}
	}
	return fd;
}

/* Use up all inodes but keep free of them (again and again). */
static void fill_inodes(Fixture *f, guint keep)
{
	g_autofree char *dir = g_build_filename(f->mnt, "inodes", NULL);
	guint n = 0;

	g_assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
	for (;; n++) {
		g_autofree char *p = g_strdup_printf("%s/%u", dir, n);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0) {
			g_assert_cmpint(errno, ==, ENOSPC);
			break;
		}
		close(fd);
	}
	g_assert_cmpuint(n, >=, keep);
	while (keep--) {
		g_autofree char *p = g_strdup_printf("%s/%u", dir, --n);

		g_assert_cmpint(unlink(p), ==, 0);
	}
}

static guint count_fds(void)
{
	return count_entries("/proc/self/fd");
}

/* Write pattern(len, seed) in chunks of chunk bytes; every write works. */
static CacheBodyWriter *write_chunked(CacheStore *s, size_t len, size_t chunk,
				      uint32_t seed)
{
	g_autofree uint8_t *data = pattern(len, seed);
	g_autoptr(GError) err = NULL;
	CacheBodyWriter *w = cache_body_writer_new(s, &err);

	g_assert_no_error(err);
	g_assert_nonnull(w);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = MIN(chunk, len - off);

		g_assert_cmpint(cache_body_writer_write(w, data + off, n), ==,
				0);
		g_assert_cmpuint(cache_body_writer_size(w), ==, off + n);
	}
	return w;
}

static void test_disk_full(Fixture *f, gconstpointer data)
{
	CacheStore *s;
	g_autofree char *tmp = NULL;
	CacheBodyWriter *w;
	guint fds;
	int fd, filler;

	if (!mount_small(f, "size=256k,mode=0700"))
		return;
	s = open_ok(f->root, ACCOUNT);
	tmp = tmp_dir(s);
	fds = count_fds();

	/* The disk fills in the middle of a body, inside a chunk. */
	w = write_chunked(s, 300000, 7001, 1);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 1, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 300000, 1);
	g_assert_false(cached(s, "INBOX", 3, 1));
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(count_fds(), ==, fds);

	/* The space is back: a body that fits is cached. */
	w = write_chunked(s, 100000, 4096, 2);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 2, &fd), ==,
			0);
	g_assert_cmpint(fd, ==, -1);
	assert_uncached(cache_store_open_body(s, "INBOX", 3, 2), 100000, 2);

	/* The plain commit drops the bytes of a body in memory. */
	w = write_chunked(s, 200000, 65536, 3);
	g_assert_cmpint(cache_body_writer_commit(w, "INBOX", 3, 3), ==,
			-ENOSPC);
	g_assert_false(cached(s, "INBOX", 3, 3));
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	w = write_chunked(s, 200000, 65536, 3);
	cache_body_writer_abort(w);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(count_fds(), ==, fds);

	/* Full before the body starts: the writer starts in memory. */
	filler = fill_disk(f);
	w = write_chunked(s, 5000, 1000, 4);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 4, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 5000, 4);
	g_assert_false(cached(s, "INBOX", 3, 4));
	/* An empty body needs no block: it is stored. */
	w = write_chunked(s, 0, 1, 5);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 5, &fd), ==,
			0);
	g_assert_cmpint(fd, ==, -1);
	assert_body(s, "INBOX", 3, 5, "");
	close(filler);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpuint(count_fds(), ==, fds);
	assert_uncached(cache_store_open_body(s, "INBOX", 3, 2), 100000, 2);
	cache_store_free(s);
}

static void test_disk_full_inodes(Fixture *f, gconstpointer data)
{
	CacheStore *s;
	g_autofree char *tmp = NULL;
	CacheBodyWriter *w;
	guint fds;
	int fd;

	if (!mount_small(f, "size=1m,nr_inodes=64,mode=0700"))
		return;
	s = open_ok(f->root, ACCOUNT);
	tmp = tmp_dir(s);
	fds = count_fds();

	/* One inode left: the temp file takes it, the folder directories
	 * cannot be made, so the rename fails. */
	fill_inodes(f, 1);
	w = write_chunked(s, 50000, 999, 1);
	g_assert_cmpuint(count_entries(tmp), ==, 1);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 1, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 50000, 1);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_false(cached(s, "INBOX", 3, 1));

	/* None left: not even a temp file. */
	fill_inodes(f, 0);
	w = write_chunked(s, 5000, 999, 2);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 2, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 5000, 2);
	g_assert_cmpuint(count_fds(), ==, fds);
	cache_store_free(s);
}

static void test_disk_full_evicts(Fixture *f, gconstpointer data)
{
	CacheStore *s;
	g_autofree char *tmp = NULL;
	CacheBodyWriter *w;
	guint n;
	int fd, filler;

	if (!mount_small(f, "size=256k,mode=0700"))
		return;
	s = open_ok(f->root, ACCOUNT);
	tmp = tmp_dir(s);

	/* A bound larger than the disk: a full disk evicts old bodies and
	 * the write goes on, on disk. */
	g_assert_cmpint(cache_store_set_limit(s, 10 << 20), ==, 0);
	for (uint32_t uid = 1; uid <= 40; uid++) {
		w = write_chunked(s, 20000, 4000, uid);
		g_assert_cmpint(
		    cache_body_writer_commit_fd(w, "INBOX", 3, uid, &fd), ==,
		    0);
		g_assert_cmpint(fd, ==, -1);
	}
	g_assert_cmpuint(disk_body_bytes(s, &n), ==, cache_store_body_bytes(s));
	g_assert_cmpuint(n, >=, 8);
	g_assert_cmpuint(n, <=, 12);
	for (uint32_t uid = 40; uid > 40 - n; uid--)
		assert_uncached(cache_store_open_body(s, "INBOX", 3, uid),
				20000, uid);
	g_assert_false(cached(s, "INBOX", 3, 40 - n));
	g_assert_false(cached(s, "INBOX", 3, 1));

	/* Nothing more to evict: memory after all. */
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 0), ==, 0);
	g_assert_cmpint(put_sized(s, "INBOX", 3, 1, 1000), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 1000);
	filler = fill_disk(f);
	w = write_chunked(s, 30000, 3000, 2);
	g_assert_cmpint(cache_body_writer_commit_fd(w, "INBOX", 3, 2, &fd), ==,
			-ENOSPC);
	assert_uncached(fd, 30000, 2);
	g_assert_false(cached(s, "INBOX", 3, 1));
	g_assert_cmpuint(cache_store_body_bytes(s), ==, 0);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	close(filler);
	assert_tracked_matches_disk(s);
	cache_store_free(s);
}

/* ---- small bodies in packs ---- */

static GBytes *small_body(uint32_t uid)
{
	size_t len = 1 + (uid * 2654435761u) % 5000;
	char *p = g_malloc(len);

	for (size_t i = 0; i < len; i++)
		p[i] = (char)(' ' + (uid + i * 7) % 90);
	return g_bytes_new_take(p, len);
}

static void assert_found_body(CacheStore *s, const char *folder, uint32_t uv,
			      uint32_t uid, GBytes *want)
{
	g_autofree char *got = NULL;
	CacheBody b;

	g_assert_cmpint(cache_store_find_body(s, folder, uv, uid, &b), ==, 0);
	g_assert_cmpuint(b.size, ==, g_bytes_get_size(want));
	got = g_malloc(b.size);
	g_assert_cmpint(pread(b.fd, got, b.size, (off_t)b.offset), ==,
			(ssize_t)b.size);
	g_assert_cmpmem(got, b.size, g_bytes_get_data(want, NULL), b.size);
	close(b.fd);
}

static void put_small(CacheStore *s, const char *folder, uint32_t uv,
		      uint32_t uid)
{
	g_autoptr(GBytes) b = small_body(uid);

	g_assert_cmpint(cache_store_put_body(s, folder, uv, uid,
					     g_bytes_get_data(b, NULL),
					     g_bytes_get_size(b)),
			==, 0);
}

static void test_pack_bodies(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	CacheBody b;

	for (uint32_t uid = 2; uid <= 200; uid++)
		put_small(s, uid % 2 ? "INBOX" : "Archive/2023", 9, uid);
	/* A body in a file of its own (a large one) is found too. */
	put_body(s, "INBOX", 9, 1, "own file");
	for (uint32_t uid = 2; uid <= 200; uid++) {
		g_autoptr(GBytes) want = small_body(uid);

		assert_found_body(s, uid % 2 ? "INBOX" : "Archive/2023", 9, uid,
				  want);
		/* Not a file of its own. */
		g_assert_cmpint(
		    cache_store_open_body(s, uid % 2 ? "INBOX" : "Archive/2023",
					  9, uid),
		    ==, -ENOENT);
	}
	g_assert_cmpint(cache_store_find_body(s, "INBOX", 9, 2, &b), ==,
			-ENOENT); /* the other folder's */
	g_assert_cmpint(cache_store_find_body(s, "INBOX", 8, 1, &b), ==,
			-ENOENT);
	/* Whether cached, the cheap way: in the pack, in a file, or not. */
	g_assert_true(cache_store_has_body(s, "INBOX", 9, 3));
	g_assert_true(cache_store_has_body(s, "INBOX", 9, 1));
	g_assert_true(cache_store_has_body(s, "Archive/2023", 9, 2));
	g_assert_false(cache_store_has_body(s, "INBOX", 9, 2));
	g_assert_false(cache_store_has_body(s, "INBOX", 8, 1));
	g_assert_false(cache_store_has_body(s, "INBOX", 9, 0));
	g_assert_false(cache_store_has_body(s, "Nowhere", 9, 1));
	g_assert_cmpint(cache_store_put_body(s, "INBOX", 0, 5, "x", 1), ==,
			-EINVAL);
	cache_store_free(s);

	s = open_ok(f->root, ACCOUNT);
	{
		g_autoptr(GBytes) own = g_bytes_new_static("own file", 8);

		assert_found_body(s, "INBOX", 9, 1, own);
	}
	for (uint32_t uid = 2; uid <= 200; uid++) {
		g_autoptr(GBytes) want = small_body(uid);

		assert_found_body(s, uid % 2 ? "INBOX" : "Archive/2023", 9, uid,
				  want);
	}
	/* A new UIDVALIDITY drops the old pack, open or not. */
	put_small(s, "INBOX", 10, 3);
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 10), ==, 0);
	g_assert_cmpint(cache_store_find_body(s, "INBOX", 9, 3, &b), ==,
			-ENOENT);
	{
		g_autoptr(GBytes) want = small_body(3);
		g_autoptr(GBytes) other = small_body(4);

		assert_found_body(s, "INBOX", 10, 3, want);
		assert_found_body(s, "Archive/2023", 9, 4, other);
	}
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 0), ==, 0);
	g_assert_cmpint(cache_store_find_body(s, "INBOX", 10, 3, &b), ==,
			-ENOENT);
	put_small(s, "INBOX", 10, 3); /* the directory comes back */
	cache_store_free(s);
}

typedef struct {
	CacheStore *store;
	uint32_t first;
	gint *stop;
} PackPutter;

static gpointer pack_put_thread(gpointer data)
{
	PackPutter *t = data;

	for (uint32_t uid = t->first; !g_atomic_int_get(t->stop); uid += 2) {
		g_autoptr(GBytes) b = small_body(uid);

		/* Never EEXIST: one pack per directory, even across drops. */
		g_assert_cmpint(cache_store_put_body(t->store, "INBOX", 5, uid,
						     g_bytes_get_data(b, NULL),
						     g_bytes_get_size(b)),
				==, 0);
	}
	return NULL;
}

/* Drops of a folder racing with puts of small bodies to the UIDVALIDITY
 * being dropped (a fetch that started before the folder was recreated):
 * every put succeeds, and a pack opened after a drop starts afresh. */
static void test_pack_drop_race(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *fkey = expected_key("INBOX");
	g_autofree char *uv5 =
	    g_build_filename(cache_store_dir(s), "folders", fkey, "5", NULL);
	g_autofree char *tmp = tmp_dir(s);
	gint stop = 0;
	PackPutter p[2] = { { s, 1, &stop }, { s, 2, &stop } };
	GThread *th[2];
	CacheBody b;

	for (int i = 0; i < 2; i++)
		th[i] = g_thread_new("putter", pack_put_thread, &p[i]);
	for (int i = 0; i < 200; i++)
		g_assert_cmpint(
		    cache_store_drop_folder(s, "INBOX", i % 2 ? 6 : 0), ==, 0);
	g_atomic_int_set(&stop, 1);
	for (int i = 0; i < 2; i++)
		g_thread_join(th[i]);
	g_assert_cmpuint(count_entries(tmp), ==, 0);
	g_assert_cmpint(cache_store_drop_folder(s, "INBOX", 0), ==, 0);
	assert_absent(uv5);
	g_assert_cmpint(cache_store_find_body(s, "INBOX", 5, 1, &b), ==,
			-ENOENT);
	put_small(s, "INBOX", 5, 7);
	{
		g_autoptr(GBytes) want = small_body(7);

		assert_found_body(s, "INBOX", 5, 7, want);
	}
	cache_store_free(s);
}

static void test_pack_bound(Fixture *f, gconstpointer data)
{
	const uint64_t max = 400000;
	CacheStore *s = open_ok(f->root, ACCOUNT);
	guint n;

	g_assert_cmpint(cache_store_set_limit(s, max), ==, 0);
	for (uint32_t uid = 1; uid <= 600; uid++) {
		const char *folder = uid % 3 ? "INBOX" : "Archive/2023";
		g_autoptr(GBytes) want = small_body(uid);

		put_small(s, folder, 3, uid);
		/* The body just stored is never its own commit's victim. */
		assert_found_body(s, folder, 3, uid, want);
		g_assert_cmpuint(cache_store_body_bytes(s), <=, max);
		if (uid % 50 == 0)
			assert_tracked_matches_disk(s);
	}
	g_assert_cmpuint(cache_store_body_bytes(s), >=, max / 2);
	/* Old segments went: their bodies are gone as a whole. */
	{
		CacheBody b;

		g_assert_cmpint(cache_store_find_body(s, "INBOX", 3, 1, &b), ==,
				-ENOENT);
	}
	g_assert_cmpuint(disk_body_bytes(s, &n), ==, cache_store_body_bytes(s));
	cache_store_free(s);

	/* A new mount finds the segments and accounts for them. */
	s = open_ok(f->root, ACCOUNT);
	g_assert_cmpint(cache_store_set_limit(s, max), ==, 0);
	assert_tracked_matches_disk(s);
	{
		g_autoptr(GBytes) want = small_body(599);

		assert_found_body(s, "INBOX", 3, 599, want);
	}
	/* A smaller bound evicts whole segments at once. */
	g_assert_cmpint(cache_store_set_limit(s, max / 4), ==, 0);
	g_assert_cmpuint(cache_store_body_bytes(s), <=, max / 4);
	assert_tracked_matches_disk(s);
	/* A body too large for a segment under the bound is refused. */
	{
		g_autofree char *big = g_malloc0(max / 4 / 16 + 1);

		g_assert_cmpint(cache_store_put_body(s, "INBOX", 3, 9999, big,
						     max / 4 / 16 + 1),
				==, -ENOSPC);
	}
	cache_store_free(s);
}

#define ADD(name, func)                                                        \
	g_test_add(name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

/* An account that never mounted leaves nothing: not its directory, nor a
 * root this open made; what was there before stays. */
static void test_free_new(Fixture *f, gconstpointer data)
{
	CacheStore *s = open_ok(f->root, ACCOUNT);
	g_autofree char *dir = g_strdup(cache_store_dir(s));
	g_autofree char *other = NULL;

	g_assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
	cache_store_free_new(s);
	g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
	g_assert_false(g_file_test(f->root, G_FILE_TEST_EXISTS));

	/* Another account's cache keeps the root. */
	s = open_ok(f->root, "imaps://other@example.org:993");
	other = g_strdup(cache_store_dir(s));
	cache_store_free(s);
	s = open_ok(f->root, ACCOUNT);
	cache_store_free_new(s);
	g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
	g_assert_true(g_file_test(other, G_FILE_TEST_IS_DIR));

	/* A cache that existed before is kept. */
	s = open_ok(f->root, "imaps://other@example.org:993");
	cache_store_free_new(s);
	g_assert_true(g_file_test(other, G_FILE_TEST_IS_DIR));
}

int main(int argc, char **argv)
{
	/* Where we may mount (root), do it in a mount namespace of our own,
	 * so that a test that aborts leaves no tmpfs behind. Before any
	 * thread exists: unshare() refuses otherwise. */
	if (unshare(CLONE_NEWNS) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		g_error("cannot make mounts private: %s", g_strerror(errno));
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
	ADD("/cache-store/lru-order", test_lru_order);
	ADD("/cache-store/bound-held", test_bound_held);
	ADD("/cache-store/bytes-tracked", test_bytes_tracked);
	ADD("/cache-store/limit-existing", test_limit_existing);
	ADD("/cache-store/drop-accounting", test_drop_accounting);
	ADD("/cache-store/oversize", test_oversize);
	ADD("/cache-store/lru-threads", test_lru_threads);
	ADD("/cache-store/disk-full", test_disk_full);
	ADD("/cache-store/disk-full-inodes", test_disk_full_inodes);
	ADD("/cache-store/disk-full-evicts", test_disk_full_evicts);
	ADD("/cache-store/pack-bodies", test_pack_bodies);
	ADD("/cache-store/pack-bound", test_pack_bound);
	ADD("/cache-store/pack-drop-race", test_pack_drop_race);
	ADD("/cache-store/free-new", test_free_new);
	return g_test_run();
}
