/* cache/pack.c: append-only pack files of small bodies (see pack.h).
 *
 * Ownership: a CachePack owns its directory path, the fds of its segments
 * and its table of records. Locking: lock guards everything mutable; the
 * only I/O under it is on the pack's own segments (appends, the CRC check
 * of one record, the scan at open), never on the network.
 */
#include "cache/pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache/crc32.h"

#define RECORD_MAGIC 0x31424D49u /* "IMB1" little-endian */
#define MAX_SEGMENT 0x7fffffffu
#define CREATE_TRIES 4

typedef struct {
	int fd;
	uint64_t size;
} Segment;

typedef struct {
	uint32_t segment;
	uint32_t len;
	uint64_t offset; /* of the body, past the header */
	uint32_t crc;
	bool verified;
} Record;

struct CachePack {
	gint refs;
	char *dir;
	uint64_t segment_max;
	GMutex lock;
	GHashTable *segments; /* segment number -> Segment* */
	GHashTable *records;  /* uid -> Record* */
	uint32_t last;        /* highest segment number seen */
	bool retired;         /* its directory went: no more appends */
};

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

bool cache_pack_parse_name(const char *name, uint32_t *segment)
{
	const char *n;
	guint64 v;

	if (!g_str_has_prefix(name, CACHE_PACK_PREFIX))
		return false;
	n = name + strlen(CACHE_PACK_PREFIX);
	if (n[0] < '1' || n[0] > '9' ||
	    !g_ascii_string_to_unsigned(n, 10, 1, MAX_SEGMENT, &v, NULL))
		return false;
	*segment = (uint32_t)v;
	return true;
}

static char *segment_path(const CachePack *pack, uint32_t segment)
{
	return g_strdup_printf("%s/" CACHE_PACK_PREFIX "%" G_GUINT32_FORMAT,
			       pack->dir, segment);
}

static void segment_free(gpointer p)
{
	Segment *s = p;

	if (s->fd >= 0)
		close(s->fd);
	g_free(s);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void remember(CachePack *pack, uint32_t uid, uint32_t segment,
		     uint64_t offset, uint32_t len, uint32_t crc, bool verified)
{
	Record *r = g_new(Record, 1);

	r->segment = segment;
	r->len = len;
	r->offset = offset;
	r->crc = crc;
	r->verified = verified;
	g_hash_table_replace(pack->records, GUINT_TO_POINTER(uid), r);
}

/* Read the records of an open segment; a torn or damaged tail is cut off
 * (what follows it cannot be trusted to be aligned on records). The
 * headers are read SCAN_CHUNK bytes at a time: most records are small, and
 * a read per header made opening a folder's pack cost a system call per
 * message. */
#define SCAN_CHUNK (64u << 10)
static void scan_segment(CachePack *pack, uint32_t segment, Segment *s)
{
	g_autofree uint8_t *chunk = g_malloc(SCAN_CHUNK);
	uint64_t off = 0, chunk_off = 0, chunk_len = 0;

	while (off + CACHE_PACK_RECORD_HEADER <= s->size) {
		const uint8_t *h;
		uint32_t uid, len;

		if (off < chunk_off ||
		    off + CACHE_PACK_RECORD_HEADER > chunk_off + chunk_len) {
			chunk_len = MIN((uint64_t)SCAN_CHUNK, s->size - off);
			chunk_off = off;
			if (pread_all(s->fd, chunk, chunk_len, off) < 0)
				break;
		}
		h = chunk + (off - chunk_off);
		uid = get_le32(h + 4);
		len = get_le32(h + 8);
		if (get_le32(h) != RECORD_MAGIC ||
		    get_le32(h + 16) != cache_crc32c(h, 16) || uid == 0 ||
		    len == 0 || len > CACHE_PACK_BODY_MAX ||
		    off + CACHE_PACK_RECORD_HEADER + len > s->size)
			break;
		remember(pack, uid, segment, off + CACHE_PACK_RECORD_HEADER,
			 len, get_le32(h + 12), false);
		off += CACHE_PACK_RECORD_HEADER + len;
	}
	if (off < s->size) {
		g_message("cache: %s/" CACHE_PACK_PREFIX "%" G_GUINT32_FORMAT
			  ": cutting off a damaged tail of %" G_GUINT64_FORMAT
			  " bytes",
			  pack->dir, segment, s->size - off);
		if (ftruncate(s->fd, (off_t)off) == 0)
			s->size = off;
	}
}

static gint number_cmp(gconstpointer a, gconstpointer b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void scan(CachePack *pack)
{
	g_autoptr(GArray) numbers = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	DIR *d = opendir(pack->dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		uint32_t n;

		if (cache_pack_parse_name(de->d_name, &n))
			g_array_append_val(numbers, n);
		else if (g_str_has_prefix(de->d_name, CACHE_PACK_PREFIX))
			/* Never written by imapfs: say so, a segment missed
			 * in silence costs every body in it. */
			g_message("cache: %s/%s is not a pack segment name; "
				  "left alone",
				  pack->dir, de->d_name);
	}
	closedir(d);
	/* In order, so that a UID stored twice keeps its last copy. */
	g_array_sort(numbers, number_cmp);
	for (guint i = 0; i < numbers->len; i++) {
		uint32_t n = g_array_index(numbers, uint32_t, i);
		g_autofree char *path = segment_path(pack, n);
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		Segment *s;

		/* Even a segment that cannot be opened (out of fds, say)
		 * holds its number: new segments go past it. */
		pack->last = MAX(pack->last, n);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		s = g_new(Segment, 1);
		s->fd = fd;
		s->size = (uint64_t)st.st_size;
		g_hash_table_insert(pack->segments, GUINT_TO_POINTER(n), s);
		scan_segment(pack, n, s);
	}
}

CachePack *cache_pack_open(const char *dir, uint64_t segment_max)
{
	CachePack *pack = g_new0(CachePack, 1);

	pack->refs = 1;
	pack->dir = g_strdup(dir);
	pack->segment_max = MAX(segment_max, 64 * 1024);
	g_mutex_init(&pack->lock);
	pack->segments = g_hash_table_new_full(NULL, NULL, NULL, segment_free);
	pack->records = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	scan(pack);
	return pack;
}

CachePack *cache_pack_ref(CachePack *pack)
{
	g_atomic_int_inc(&pack->refs);
	return pack;
}

void cache_pack_unref(CachePack *pack)
{
	if (!pack || !g_atomic_int_dec_and_test(&pack->refs))
		return;
	g_hash_table_unref(pack->records);
	g_hash_table_unref(pack->segments);
	g_mutex_clear(&pack->lock);
	g_free(pack->dir);
	g_free(pack);
}

/* Under lock: the segment to append len more bytes to, a new one when
 * the last is full (or gone). */
static int writable_segment(CachePack *pack, uint64_t len, uint32_t *number,
			    Segment **out)
{
	Segment *s = pack->last
			 ? g_hash_table_lookup(pack->segments,
					       GUINT_TO_POINTER(pack->last))
			 : NULL;
	g_autofree char *path = NULL;
	int fd;

	if (s && (s->size == 0 || s->size + len <= pack->segment_max)) {
		*number = pack->last;
		*out = s;
		return 0;
	}
	if (pack->last >= MAX_SEGMENT)
		return -EFBIG;
	/* A segment that exists already was made by someone this pack
	 * does not know of (seen once under load; a scan that could not
	 * open a segment, or a pack racing a drop of its directory, both
	 * fixed since): skip past it instead of failing every put from now
	 * on. ENOENT: a drop removed the directory between the mkdir and
	 * the create; make it again, a bounded number of times. */
	for (int tries = 0;;) {
		fd = g_mkdir_with_parents(pack->dir, 0700);
		if (fd == 0) {
			path = segment_path(pack, pack->last + 1);
			fd = open(path,
				  O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
				      O_NOFOLLOW,
				  0600);
		}
		if (fd < 0 && errno == ENOENT && ++tries < CREATE_TRIES) {
			g_clear_pointer(&path, g_free);
			continue;
		}
		if (fd < 0 && !path)
			break; /* mkdir failed */
		if (fd >= 0 || errno != EEXIST || pack->last + 1 >= MAX_SEGMENT)
			break;
		g_debug("cache: pack segment %s exists already; using the next",
			path);
		g_clear_pointer(&path, g_free);
		pack->last++;
	}
	if (fd < 0)
		return -errno;
	s = g_new(Segment, 1);
	s->fd = fd;
	s->size = 0;
	pack->last++;
	g_hash_table_insert(pack->segments, GUINT_TO_POINTER(pack->last), s);
	*number = pack->last;
	*out = s;
	return 0;
}

int cache_pack_put(CachePack *pack, uint32_t uid, const void *data, size_t len,
		   uint32_t *segment, uint64_t *segment_size)
{
	uint8_t h[CACHE_PACK_RECORD_HEADER];
	struct iovec iov[2];
	uint32_t crc, number = 0;
	uint64_t start, done = 0, total;
	Segment *s = NULL;
	int r;

	g_return_val_if_fail(pack && data, -EINVAL);
	if (uid == 0 || len == 0 || len > CACHE_PACK_BODY_MAX)
		return -EINVAL;
	crc = cache_crc32c(data, len);
	put_le32(h, RECORD_MAGIC);
	put_le32(h + 4, uid);
	put_le32(h + 8, (uint32_t)len);
	put_le32(h + 12, crc);
	put_le32(h + 16, cache_crc32c(h, 16));
	total = CACHE_PACK_RECORD_HEADER + len;

	g_mutex_lock(&pack->lock);
	r = pack->retired ? -ESTALE
			  : writable_segment(pack, total, &number, &s);
	if (r < 0)
		goto out;
	start = s->size;
	while (done < total) {
		ssize_t n;
		int cnt = 0;

		if (done < sizeof(h)) {
			iov[cnt].iov_base = h + done;
			iov[cnt++].iov_len = sizeof(h) - done;
			iov[cnt].iov_base = (void *)data;
			iov[cnt++].iov_len = len;
		} else {
			iov[cnt].iov_base = (char *)data + (done - sizeof(h));
			iov[cnt++].iov_len = len - (done - sizeof(h));
		}
		n = pwritev(s->fd, iov, cnt, (off_t)(start + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			/* Leave no partial record behind: the next append
			 * starts where this one did. */
			if (ftruncate(s->fd, (off_t)start) < 0)
				g_message("cache: cannot cut %s back: %s",
					  pack->dir, g_strerror(errno));
			goto out;
		}
		done += (uint64_t)n;
	}
	s->size = start + total;
	remember(pack, uid, number, start + CACHE_PACK_RECORD_HEADER,
		 (uint32_t)len, crc, true);
	*segment = number;
	*segment_size = s->size;
out:
	g_mutex_unlock(&pack->lock);
	return r;
}

int cache_pack_prepare(CachePack *pack)
{
	uint32_t number;
	Segment *s;
	int r;

	g_return_val_if_fail(pack, -EINVAL);
	g_mutex_lock(&pack->lock);
	r = pack->retired ? -ESTALE : writable_segment(pack, 0, &number, &s);
	g_mutex_unlock(&pack->lock);
	return r;
}

/* Under lock: the record of uid and its segment, or NULL (a record whose
 * segment went is forgotten). */
static Record *lookup(CachePack *pack, uint32_t uid, Segment **s)
{
	Record *r = g_hash_table_lookup(pack->records, GUINT_TO_POINTER(uid));

	if (!r)
		return NULL;
	*s = g_hash_table_lookup(pack->segments, GUINT_TO_POINTER(r->segment));
	if (!*s) {
		g_hash_table_remove(pack->records, GUINT_TO_POINTER(uid));
		return NULL;
	}
	return r;
}

/* Under lock: is r's body intact? Its CRC is checked once per record and
 * open. With body, the bytes are read (and handed over) even when checked
 * before. A damaged record is forgotten. */
static bool check(CachePack *pack, uint32_t uid, Record *r, Segment *s,
		  char **body)
{
	g_autofree char *buf = NULL;

	if (r->verified && !body)
		return true;
	buf = g_malloc(r->len);
	if (pread_all(s->fd, buf, r->len, r->offset) == 0 &&
	    (r->verified || cache_crc32c(buf, r->len) == r->crc)) {
		r->verified = true;
		if (body)
			*body = g_steal_pointer(&buf);
		return true;
	}
	g_message("cache: the cached body of UID %" G_GUINT32_FORMAT
		  " in %s is damaged: fetching it again",
		  uid, pack->dir);
	g_hash_table_remove(pack->records, GUINT_TO_POINTER(uid));
	return false;
}

int cache_pack_find(CachePack *pack, uint32_t uid, int *fd, uint64_t *offset,
		    uint32_t *len, uint32_t *segment)
{
	Segment *s = NULL;
	Record *r;
	int rc = -ENOENT;

	g_mutex_lock(&pack->lock);
	r = lookup(pack, uid, &s);
	if (r && check(pack, uid, r, s, NULL)) {
		*fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		rc = *fd < 0 ? -errno : 0;
		*offset = r->offset;
		*len = r->len;
		*segment = r->segment;
	}
	g_mutex_unlock(&pack->lock);
	return rc;
}

bool cache_pack_has(CachePack *pack, uint32_t uid)
{
	Segment *s = NULL;
	bool has;

	g_mutex_lock(&pack->lock);
	has = lookup(pack, uid, &s) != NULL;
	g_mutex_unlock(&pack->lock);
	return has;
}

int cache_pack_read(CachePack *pack, uint32_t uid, size_t max, GBytes **out,
		    uint32_t *segment)
{
	Segment *s = NULL;
	char *body = NULL;
	Record *r;
	int rc = -ENOENT;

	g_mutex_lock(&pack->lock);
	r = lookup(pack, uid, &s);
	if (r && r->len > max) {
		rc = -EFBIG;
	} else if (r && check(pack, uid, r, s, &body)) {
		*out = g_bytes_new_take(body, r->len);
		*segment = r->segment;
		rc = 0;
	}
	g_mutex_unlock(&pack->lock);
	return rc;
}

static gboolean in_segment(gpointer key, gpointer value, gpointer data)
{
	return ((Record *)value)->segment == GPOINTER_TO_UINT(data);
}

void cache_pack_drop_segment(CachePack *pack, uint32_t segment)
{
	g_autofree char *path = segment_path(pack, segment);

	g_mutex_lock(&pack->lock);
	if (unlink(path) < 0 && errno != ENOENT)
		g_debug("cache: cannot remove %s: %s", path, g_strerror(errno));
	g_hash_table_foreach_remove(pack->records, in_segment,
				    GUINT_TO_POINTER(segment));
	g_hash_table_remove(pack->segments, GUINT_TO_POINTER(segment));
	g_mutex_unlock(&pack->lock);
}

void cache_pack_retire(CachePack *pack)
{
	g_mutex_lock(&pack->lock);
	pack->retired = true;
	g_hash_table_remove_all(pack->records);
	g_hash_table_remove_all(pack->segments);
	g_mutex_unlock(&pack->lock);
}

unsigned cache_pack_count(CachePack *pack)
{
	unsigned n;

	g_mutex_lock(&pack->lock);
	n = g_hash_table_size(pack->records);
	g_mutex_unlock(&pack->lock);
	return n;
}
