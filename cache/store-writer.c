/* cache/store-writer.c: the body writer of the cache store, and its
 * fallback to an anonymous memory file when the disk is full.
 *
 * Ownership: a CacheBodyWriter owns its fd (a temp file, or a memfd once
 * the disk is full) and its temp path, and borrows the store, which must
 * outlive it. One thread uses a writer at a time.
 *
 * Locking: none of its own; the LRU calls (store-limit.c) take lru_lock.
 * Commits rely on O_EXCL temp names and the atomicity of rename().
 *
 * Invariants: a writer's fd holds exactly size bytes; tmp_path == NULL
 * means memory mode. A final body name only appears through rename() of a
 * complete temp file, made in tmp/ or next to the final name (STALE_PREFIX,
 * removed at the next open after a crash).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "cache/store-private.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct CacheBodyWriter {
	CacheStore *store;
	int fd;              /* temp file, or memfd in memory mode */
	char *tmp_path;      /* NULL in memory mode */
	uint64_t size;       /* bytes written to fd */
	uint64_t evict_mark; /* size at the last eviction for space */
	int error;           /* first write error, sticky */
};

static int memfd_open(void)
{
	int fd = memfd_create("imapfs-body", MFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* A write to memory failing with ENOSPC is not a full disk: keep -ENOSPC
 * for that meaning alone. */
static int memory_error(int r)
{
	return store_disk_full(r) ? -ENOMEM : r;
}

/* Copy the first len bytes of src to dst (at its offset). */
static int copy_fd(int src, int dst, uint64_t len)
{
	g_autofree char *buf = g_malloc(65536);
	uint64_t off = 0;

	while (off < len) {
		ssize_t n =
		    pread(src, buf, (size_t)MIN(len - off, 65536u), (off_t)off);
		int r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than we wrote */
		r = store_write_all(dst, buf, (size_t)n);
		if (r < 0)
			return memory_error(r);
		off += (uint64_t)n;
	}
	return 0;
}

int cache_memfile_from_bytes(const void *data, size_t len)
{
	int fd = memfd_open(), r;

	if (fd < 0)
		return fd;
	r = store_write_all(fd, data, len);
	if (r < 0) {
		close(fd);
		return memory_error(r);
	}
	return fd;
}

/* The disk is full: move the body written so far into a memfd and remove
 * the temp file. w->fd must be readable (the temp fd, or a reopened one). */
static int writer_to_memory(CacheBodyWriter *w)
{
	int mfd = memfd_open(), r;

	if (mfd < 0)
		return mfd;
	r = copy_fd(w->fd, mfd, w->size);
	if (r < 0) {
		close(mfd);
		return r;
	}
	close(w->fd);
	w->fd = mfd;
	unlink(w->tmp_path);
	g_clear_pointer(&w->tmp_path, g_free);
	g_debug("cache: disk full, a body of %" G_GUINT64_FORMAT
		" bytes so far goes on in memory",
		w->size);
	return 0;
}

CacheBodyWriter *cache_body_writer_new_at(CacheStore *store, const char *folder,
					  uint32_t uidvalidity, GError **error)
{
	g_autofree char *key = store_folder_key(store, folder);
	g_autofree char *fdir =
	    g_strdup_printf("%s/%s", store->folders_dir, key);
	g_autofree char *uvdir =
	    g_strdup_printf("%s/%" G_GUINT32_FORMAT, fdir, uidvalidity);
	g_autofree char *tmpl =
	    g_strdup_printf("%s/" STALE_PREFIX "XXXXXX", uvdir);
	CacheBodyWriter *w;
	int fd;

	if (uidvalidity == 0)
		return cache_body_writer_new(store, error);
	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* First body of this folder and UIDVALIDITY. The template
		 * was overwritten by the failed attempt: rebuild it. */
		g_free(tmpl);
		tmpl = g_strdup_printf("%s/" STALE_PREFIX "XXXXXX", uvdir);
		if (store_ensure_dir(fdir) == 0 && store_ensure_dir(uvdir) == 0)
			fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return cache_body_writer_new(store, error); /* full disk etc. */
	w = g_new0(CacheBodyWriter, 1);
	w->store = store;
	w->fd = fd;
	w->tmp_path = g_steal_pointer(&tmpl);
	w->evict_mark = UINT64_MAX;
	return w;
}

CacheBodyWriter *cache_body_writer_new(CacheStore *store, GError **error)
{
	CacheBodyWriter *w;
	char *path = NULL;
	int fd;

	g_return_val_if_fail(store, NULL);
	fd = store_make_temp(store, "body", &path);
	if (store_disk_full(fd) && store_evict_for_space(store, 0))
		fd = store_make_temp(store, "body", &path);
	if (store_disk_full(fd)) {
		fd = memfd_open();
		if (fd < 0) {
			store_set_errno_error(error, fd, "keep a body in",
					      "memory");
			return NULL;
		}
	} else if (fd < 0) {
		store_set_errno_error(error, fd, "create a temp file in",
				      store->tmp_dir);
		return NULL;
	}
	w = g_new0(CacheBodyWriter, 1);
	w->store = store;
	w->fd = fd;
	w->tmp_path = path;
	w->evict_mark = UINT64_MAX;
	return w;
}

int cache_body_writer_write(CacheBodyWriter *w, const void *buf, size_t len)
{
	const char *p = buf;

	g_return_val_if_fail(w, -EINVAL);
	if (w->error)
		return w->error;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			w->size += (uint64_t)n;
			continue;
		}
		r = n < 0 ? -errno : -EIO;
		if (r == -EINTR)
			continue;
		if (!w->tmp_path || !store_disk_full(r)) {
			w->error = w->tmp_path ? r : memory_error(r);
			return w->error;
		}
		/* Evict again only once the last eviction let us go on. */
		if (w->evict_mark != w->size) {
			w->evict_mark = w->size;
			if (store_evict_for_space(w->store, len))
				continue;
		}
		r = writer_to_memory(w);
		if (r < 0) {
			w->error = r;
			return r;
		}
	}
	return 0;
}

uint64_t cache_body_writer_size(const CacheBodyWriter *w)
{
	return w->size;
}

static void writer_free(CacheBodyWriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	g_free(w->tmp_path);
	g_free(w);
}

/* Closed temp file, full disk at rename: reopen it to move it to memory. */
static int rename_failed_to_memory(CacheBodyWriter *w)
{
	w->fd = open(w->tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (w->fd < 0)
		return -errno;
	return writer_to_memory(w);
}

int cache_body_writer_commit_fd(CacheBodyWriter *w, const char *folder,
				uint32_t uidvalidity, uint32_t uid,
				int *uncached_fd)
{
	g_autofree char *key = NULL, *fdir = NULL, *uvdir = NULL;
	g_autofree char *final = NULL;
	CacheStore *store;
	bool reserved = false;
	int r;

	g_return_val_if_fail(w && uncached_fd, -EINVAL);
	*uncached_fd = -1;
	store = w->store;
	r = w->error;
	if (r == 0 && (!folder || uidvalidity == 0 || uid == 0))
		r = -EINVAL;
	if (r == 0 && !w->tmp_path)
		r = -ENOSPC; /* in memory since the disk filled */
	if (r == 0) {
		key = store_folder_key(store, folder);
		fdir = g_strdup_printf("%s/%s", store->folders_dir, key);
		uvdir =
		    g_strdup_printf("%s/%" G_GUINT32_FORMAT, fdir, uidvalidity);
		final = g_strdup_printf("%s/%" G_GUINT32_FORMAT, uvdir, uid);
		r = store_reserve_body(store, folder, key, uidvalidity, uid,
				       w->size, &reserved);
		if (r == -EFBIG) {
			/* Never fits: serve it from the temp file itself. */
			unlink(w->tmp_path);
			g_clear_pointer(&w->tmp_path, g_free);
			r = -ENOSPC;
		}
	}
	if (r == 0) {
		r = store_close_checked(w->fd);
		w->fd = -1;
		if (store_disk_full(r))
			r = -EIO; /* the bytes may not be on disk: not servable
				   */
	}
	if (r == 0) {
		/* An existing final file has the same bytes: replace it. */
		r = store_rename_into(w->tmp_path, final, fdir, uvdir);
		if (store_disk_full(r) && store_evict_for_space(store, 0))
			r = store_rename_into(w->tmp_path, final, fdir, uvdir);
		if (store_disk_full(r)) {
			r = rename_failed_to_memory(w);
			if (r == 0)
				r = -ENOSPC;
		}
	}
	if (key)
		store_finish_body(store, folder, key, uidvalidity, uid, w->size,
				  reserved, r == 0, final);
	if (r == -ENOSPC) {
		if (w->fd >= 0 && lseek(w->fd, 0, SEEK_SET) == 0) {
			*uncached_fd = w->fd;
			w->fd = -1;
		} else {
			r = -EIO; /* -ENOSPC promises an fd */
		}
	}
	if (r < 0 && w->tmp_path)
		unlink(w->tmp_path);
	writer_free(w);
	return r;
}

int cache_body_writer_commit(CacheBodyWriter *w, const char *folder,
			     uint32_t uidvalidity, uint32_t uid)
{
	int fd = -1;
	int r = cache_body_writer_commit_fd(w, folder, uidvalidity, uid, &fd);

	if (fd >= 0)
		close(fd);
	return r;
}

void cache_body_writer_abort(CacheBodyWriter *w)
{
	if (!w)
		return;
	if (w->tmp_path)
		unlink(w->tmp_path);
	writer_free(w);
}

/* ---- stale temp files ---- */

static int remove_stale(int dirfd, const struct dirent *de, void *data)
{
	if (g_str_has_prefix(de->d_name, STALE_PREFIX))
		unlinkat(dirfd, de->d_name, 0);
	return 0;
}

/* Each level below folders/ is walked by the next function; entries that
 * are no directories, or are gone, are skipped. */
static int walk_subdir(int dirfd, const struct dirent *de, StoreWalkFn fn)
{
	int fd;

	if (store_open_subdir(dirfd, de->d_name, &fd) < 0 || fd < 0)
		return 0;
	store_walk_dir(fd, fn, NULL);
	close(fd);
	return 0;
}

static int stale_in_uidvalidity(int dirfd, const struct dirent *de, void *data)
{
	return walk_subdir(dirfd, de, remove_stale);
}

static int stale_in_folder(int dirfd, const struct dirent *de, void *data)
{
	return walk_subdir(dirfd, de, stale_in_uidvalidity);
}

void store_remove_stale_temps(const char *folders_dir)
{
	int fd =
	    open(folders_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	store_walk_dir(fd, stale_in_folder, NULL);
	close(fd);
}
