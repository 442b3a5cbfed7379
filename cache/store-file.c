/* cache/store-file.c: the small file helpers of the cache store, and the
 * one directory walker that every scan of the tree goes through.
 *
 * Ownership: no state; paths and fds are the callers' unless said.
 * Locking: none; callers decide which lock, if any, a call runs under.
 * Invariants: every function returns 0 (or an fd) or -errno; a final name
 * only ever appears through rename() of a complete temp file.
 */
#include "cache/store-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RENAME_TRIES 4

/* mkdir 0700 whatever the umask; an existing directory is fine. */
int store_ensure_dir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return chmod(path, 0700) < 0 ? -errno : 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Create root and its missing parents, each 0700 whatever the umask. Levels
 * are made one by one so that a strict umask cannot lock us out. */
int store_make_root(const char *root)
{
	g_autoptr(GPtrArray) missing = g_ptr_array_new_with_free_func(g_free);
	char *p = g_strdup(root);
	struct stat st;

	while (stat(p, &st) < 0) {
		char *parent;

		if (errno != ENOENT) {
			int r = -errno;

			g_free(p);
			return r;
		}
		parent = g_path_get_dirname(p);
		g_ptr_array_add(missing, p);
		if (strcmp(parent, p) == 0) {
			g_free(parent);
			return -ENOENT;
		}
		p = parent;
	}
	g_free(p);
	for (guint i = missing->len; i-- > 0;) {
		int r = store_ensure_dir(g_ptr_array_index(missing, i));

		if (r < 0)
			return r;
	}
	if (stat(root, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int store_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int store_close_checked(int fd)
{
	/* On Linux the fd is gone even when close() says EINTR. */
	if (close(fd) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Whole regular file behind fd (not closed), at most max bytes (-EFBIG
 * beyond); st describes the file that was read. */
int store_read_fd(int fd, uint64_t max, GBytes **out, struct stat *st)
{
	GByteArray *buf;
	size_t used = 0;
	int r = 0;

	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if ((uint64_t)st->st_size > max)
		return -EFBIG;
	buf = g_byte_array_sized_new(
	    (guint)MIN((uint64_t)st->st_size + 1, 64u << 20));
	for (;;) {
		ssize_t n;

		if (buf->len - used < 65536)
			g_byte_array_set_size(buf, (guint)used + 65536 +
						       (guint)used / 2);
		n = read(fd, buf->data + used, buf->len - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (r < 0) {
		g_byte_array_unref(buf);
		return r;
	}
	g_byte_array_set_size(buf, (guint)used);
	*out = g_byte_array_free_to_bytes(buf);
	return 0;
}

int store_read_file(const char *path, GBytes **out, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return -errno;
	r = store_read_fd(fd, UINT64_MAX, out, st);
	close(fd);
	return r;
}

/* A file that failed to decode is removed, unless a writer has replaced it
 * with a new one since it was read. */
void store_discard_file(const char *path, const struct stat *was,
			const char *why)
{
	struct stat now;

	g_message("cache: removing unreadable %s: %s", path, why);
	if (lstat(path, &now) == 0 && now.st_dev == was->st_dev &&
	    now.st_ino == was->st_ino)
		unlink(path);
}

/* A new 0600 temp file in tmp/; returns an fd or -errno. */
int store_make_temp(const CacheStore *store, const char *prefix, char **path)
{
	char *tmpl = g_strdup_printf("%s/%s-XXXXXX", store->tmp_dir, prefix);
	int fd, r;

	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		g_free(tmpl);
		return r;
	}
	if (fchmod(fd, 0600) < 0) {
		r = -errno;
		close(fd);
		unlink(tmpl);
		g_free(tmpl);
		return r;
	}
	*path = tmpl;
	return fd;
}

/* rename(), creating the missing parent directories on ENOENT. Bounded
 * because a concurrent drop_folder may remove them again. */
int store_rename_into(const char *tmp, const char *final, const char *dir1,
		      const char *dir2)
{
	for (int i = 0;; i++) {
		int r;

		if (rename(tmp, final) == 0)
			return 0;
		r = -errno;
		if (r != -ENOENT || i == RENAME_TRIES)
			return r;
		if (dir1 && (r = store_ensure_dir(dir1)) < 0)
			return r;
		if (dir2 && (r = store_ensure_dir(dir2)) < 0)
			return r;
	}
}

int store_write_file_atomic_fn(const CacheStore *store, const char *prefix,
			       int (*write_fn)(int fd, const void *data),
			       const void *data, const char *final,
			       const char *dir)
{
	g_autofree char *tmp = NULL;
	int fd, r, rc;

	fd = store_make_temp(store, prefix, &tmp);
	if (fd < 0)
		return fd;
	r = write_fn(fd, data);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	rc = store_close_checked(fd);
	if (r == 0)
		r = rc;
	if (r == 0)
		r = store_rename_into(tmp, final, dir, NULL);
	if (r < 0)
		unlink(tmp);
	return r;
}

typedef struct {
	const void *data;
	size_t len;
} Buffer;

static int write_buffer(int fd, const void *data)
{
	const Buffer *b = data;

	return store_write_all(fd, b->data, b->len);
}

/* Temp file, fsync, rename: after a crash either the old or the new file. */
int store_write_file_atomic(const CacheStore *store, const char *prefix,
			    const void *data, size_t len, const char *final,
			    const char *dir)
{
	Buffer b = { data, len };

	return store_write_file_atomic_fn(store, prefix, write_buffer, &b,
					  final, dir);
}

/* At most len bytes from the start of path: a header is all some callers
 * need of a large file. */
int store_read_head(const char *path, size_t len, GBytes **out, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;
	char *buf;
	size_t used = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		r = -errno;
	else if (!S_ISREG(st->st_mode))
		r = -EINVAL;
	if (r < 0) {
		close(fd);
		return r;
	}
	buf = g_malloc(len ? len : 1);
	while (used < len) {
		ssize_t n = read(fd, buf + used, len - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		g_free(buf);
		return r;
	}
	*out = g_bytes_new_take(buf, used);
	return 0;
}

/* ---- walking directories ---- */

int store_walk_dir(int fd, StoreWalkFn fn, void *data)
{
	struct dirent *de;
	DIR *d;
	int r = 0, dfd = dup(fd);

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	/* The dup shares the offset of fd: start from the beginning. */
	rewinddir(d);
	while (r == 0 && (errno = 0, de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			r = fn(fd, de, data);
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

int store_open_subdir(int dirfd, const char *name, int *fd)
{
	*fd = openat(dirfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
		return 0;
	return -errno;
}

static int add_name(int dirfd, const struct dirent *de, void *data)
{
	g_ptr_array_add(data, g_strdup(de->d_name));
	return 0;
}

int store_list_dir(int fd, GPtrArray **out)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	int r = store_walk_dir(fd, add_name, names);

	if (r < 0) {
		g_ptr_array_unref(names);
		return r;
	}
	*out = names;
	return 0;
}

int store_remove_tree_at(int dirfd, const char *name, int depth)
{
	g_autoptr(GPtrArray) names = NULL;
	int fd, r;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth <= 0)
		return -errno;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* Names first: removing entries while reading a directory may skip
	 * some. */
	r = store_list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++)
		r = store_remove_tree_at(fd, g_ptr_array_index(names, i),
					 depth - 1);
	close(fd);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		r = -errno;
	return r;
}

int store_clear_dir(const char *path)
{
	g_autoptr(GPtrArray) names = NULL;
	int fd, r;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = store_list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++)
		r = store_remove_tree_at(fd, g_ptr_array_index(names, i),
					 TREE_DEPTH);
	close(fd);
	return r;
}
