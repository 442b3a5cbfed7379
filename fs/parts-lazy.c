/* fs/parts-lazy.c: the parts layout for a large message that is not
 * cached: its tree from BODYSTRUCTURE, and each attachment fetched alone
 * (BINARY.PEEK[section]) when it is first read.
 *
 * Building costs a BODYSTRUCTURE and a BINARY.SIZE fetch (so every size
 * is exact before a read), the header and the text parts' sections (for
 * text.txt and text.html, made by fs/parts-mime.c from a small stand-in
 * message of just those parts), and the sections of attached messages
 * (usually small; each becomes a subdirectory built from its bytes). The
 * names follow the rules of fs/parts-mime.c, part for part, so a tree
 * rebuilt from the whole message once it is cached shows the same names.
 * On a server without BINARY an attachment is fetched as BODY.PEEK[n]
 * and decoded here as it streams in (a GMime basic filter on a
 * GMimeStreamFilter over the temp file), so its exact size is known
 * only once it is fetched: fs/parts.c fetches it on first stat.
 * Single-part messages and anything unusual make fs_parts_lazy_build()
 * decline: the caller reads the whole message.
 *
 * No state of its own: the jobs' data is on the heap, owned by the pool
 * after a timeout (imap_pool_run()).
 */
#include "fs/parts-lazy.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap/fetch-parts.h"

/* ---- pool jobs ---- */

typedef struct {
	uint32_t uid;
	uint32_t uidvalidity;
	char *section;  /* NULL: the structure */
	bool binary;    /* BINARY.PEEK; for the structure: the server has it */
	char *encoding; /* decode BODY.PEEK bytes from it here; NULL: as is */
	char *tmpdir;
	int fd;           /* the section's bytes, in a temp file */
	uint64_t size;    /* bytes received */
	GMimeStream *out; /* with encoding: the decoder in front of fd */
	ImapBodyPart *structure;
} Job;

static void job_free(void *data)
{
	Job *j = data;

	g_clear_object(&j->out);
	if (j->fd >= 0)
		close(j->fd);
	imap_body_part_free(j->structure);
	g_free(j->encoding);
	g_free(j->section);
	g_free(j->tmpdir);
	g_free(j);
}

static int write_all(int fd, const void *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/* The section's bytes into the temp file, through the decoder if any. */
static int job_write(Job *j, const void *buf, size_t len)
{
	j->size += len;
	if (!j->out)
		return write_all(j->fd, buf, len);
	return g_mime_stream_write(j->out, buf, len) < 0 ? -EIO : 0;
}

/* Start the temp file (again: a retry on a fresh connection), with a
 * decoder in front of it when the bytes come encoded. */
static int job_open(Job *j)
{
	GMimeContentEncoding enc =
	    j->encoding ? g_mime_content_encoding_from_string(j->encoding)
			: GMIME_CONTENT_ENCODING_DEFAULT;
	GMimeStream *fs;
	GMimeFilter *filter;
	int fd2;

	g_clear_object(&j->out);
	if (j->fd >= 0)
		close(j->fd);
	j->size = 0;
	j->fd = fs_parts_temp_file(j->tmpdir);
	if (j->fd < 0)
		return j->fd;
	if (enc != GMIME_CONTENT_ENCODING_BASE64 &&
	    enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	    enc != GMIME_CONTENT_ENCODING_UUENCODE)
		return 0; /* 7bit, 8bit, binary or unknown: as is */
	fd2 = dup(j->fd);
	if (fd2 < 0)
		return -errno;
	fs = g_mime_stream_fs_new(fd2);
	j->out = g_mime_stream_filter_new(fs);
	g_object_unref(fs);
	filter = g_mime_filter_basic_new(enc, FALSE);
	g_mime_stream_filter_add(GMIME_STREAM_FILTER(j->out), filter);
	g_object_unref(filter);
	return 0;
}

/* The decoder's last bytes; j->size becomes the decoded size. */
static int job_finish(Job *j)
{
	struct stat st;

	if (!j->out)
		return 0;
	if (g_mime_stream_flush(j->out) < 0)
		return -EIO;
	g_clear_object(&j->out);
	if (fstat(j->fd, &st) < 0)
		return -errno;
	j->size = (uint64_t)st.st_size;
	return 0;
}

/* Streamed literals go straight into the job's temp file. */
static void *sink_begin(void *user_data, uint64_t size)
{
	return user_data;
}

static int sink_write(void *user_data, void *sink, const void *buf, size_t len)
{
	return job_write(sink, buf, len);
}

static void sink_discard(void *user_data, void *sink)
{
}

static const ImapLiteralSink section_sink = {
	.begin = sink_begin,
	.write = sink_write,
	.discard = sink_discard,
};

static int section_body(void *user_data, uint32_t uid, ImapBody *body)
{
	Job *j = user_data;

	if (body->nil)
		return -EIO;
	if (body->streamed)
		return 0; /* written by the sink already */
	return job_write(j, body->data, body->len);
}

static int job_run(ImapConn *conn, const ImapMailboxState *state, void *data,
		   GError **error)
{
	Job *j = data;
	int rc;

	if (state->uidvalidity != j->uidvalidity)
		return -ESTALE;
	if (!j->section) {
		imap_body_part_free(g_steal_pointer(&j->structure));
		rc = imap_fetch_structure(conn, j->uid, &j->structure, error);
		j->binary = rc == 0;
		return rc == -ENOTSUP && j->structure ? 0 : rc;
	}
	rc = job_open(j);
	if (rc == 0)
		rc = imap_fetch_section(conn, j->uid, j->section, j->binary,
					&section_sink, j, section_body, j,
					error);
	return rc < 0 ? rc : job_finish(j);
}

/* Run one fetch for uid. 0 with the job (the caller frees it), or
 * -errno. */
static int run_job(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
		   uint32_t uid, const char *section, bool binary,
		   const char *encoding, const char *tmpdir, Job **out)
{
	g_autoptr(GError) error = NULL;
	Job *j = g_new0(Job, 1);
	int rc;

	j->uid = uid;
	j->uidvalidity = uidvalidity;
	j->section = g_strdup(section);
	j->binary = binary;
	j->encoding = g_strdup(encoding);
	j->tmpdir = g_strdup(tmpdir);
	j->fd = -1;
	rc = imap_pool_run(mnt->pool, f->raw, job_run, j, job_free, &error);
	if (rc == -ETIMEDOUT)
		return rc; /* the pool frees j */
	if (rc < 0) {
		if (rc != -ENOTSUP)
			g_debug("parts of UID %u: %s", uid,
				error ? error->message : g_strerror(-rc));
		job_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

/* ---- names, as fs/parts-mime.c makes them ---- */

/* "x; k=v; ..." of params, for GMime to decode (RFC 2231, RFC 2047). */
static char *params_header(const char *lead, const GPtrArray *params)
{
	GString *s = g_string_new(lead);

	for (guint i = 0; params && i + 1 < params->len; i += 2) {
		const char *k = params->pdata[i], *v = params->pdata[i + 1];

		g_string_append_printf(s, "; %s=", k);
		if (g_str_has_suffix(k, "*")) { /* an extended value: as is */
			g_string_append(s, v);
			continue;
		}
		g_string_append_c(s, '"');
		for (; *v; v++) {
			if (*v == '"' || *v == '\\')
				g_string_append_c(s, '\\');
			g_string_append_c(s, *v);
		}
		g_string_append_c(s, '"');
	}
	return g_string_free(s, FALSE);
}

/* The decoded file name of p (disposition filename, else the type's
 * name), as g_mime_part_get_filename() gives it, or NULL. */
static char *part_filename(const ImapBodyPart *p)
{
	g_autofree char *disp = params_header("attachment", p->disp_params);
	g_autofree char *type = params_header("application/x-y", p->params);
	GMimeContentDisposition *cd =
	    g_mime_content_disposition_parse(NULL, disp);
	GMimeContentType *ct = g_mime_content_type_parse(NULL, type);
	const char *v =
	    cd ? g_mime_content_disposition_get_parameter(cd, "filename")
	       : NULL;
	char *out;

	if (!v && ct)
		v = g_mime_content_type_get_parameter(ct, "name");
	out = g_strdup(v);
	if (cd)
		g_object_unref(cd);
	if (ct)
		g_object_unref(ct);
	return out;
}

/* The decoded disposition filename of an attached message (its type's
 * name does not count, as in fs/parts-mime.c), or NULL. */
static char *disposition_filename(const ImapBodyPart *p)
{
	g_autofree char *disp = params_header("attachment", p->disp_params);
	GMimeContentDisposition *cd =
	    g_mime_content_disposition_parse(NULL, disp);
	char *out = cd ? g_strdup(g_mime_content_disposition_get_parameter(
			     cd, "filename"))
		       : NULL;

	if (cd)
		g_object_unref(cd);
	return out;
}

static bool is_attachment(const ImapBodyPart *p)
{
	return p->disposition && strcmp(p->disposition, "attachment") == 0;
}

static bool is_type(const ImapBodyPart *p, const char *type,
		    const char *subtype)
{
	return strcmp(p->type, type) == 0 && strcmp(p->subtype, subtype) == 0;
}

/* The text/plain and text/html parts text.txt and text.html show, found
 * as find_body() in fs/parts-mime.c finds them. */
static void find_body(const ImapBodyPart *p, const ImapBodyPart **plain,
		      const ImapBodyPart **html)
{
	if (p->children) {
		for (guint i = 0; i < p->children->len; i++)
			find_body(p->children->pdata[i], plain, html);
		return;
	}
	if (p->message || is_attachment(p))
		return;
	if (!*plain && is_type(p, "text", "plain"))
		*plain = p;
	else if (!*html && is_type(p, "text", "html"))
		*html = p;
}

/* ---- the tree ---- */

typedef struct {
	FsMount *mnt;
	FsFolder *f;
	uint32_t uidvalidity, uid;
	const char *tmpdir;
	const ImapBodyPart *plain, *html;
	bool binary; /* the server has BINARY */
	int rc;
} Build;

/* The bytes of section (BODY.PEEK), in a temp file: fd, or -errno. */
static int fetch_raw(Build *b, const char *section, uint64_t *size)
{
	Job *j = NULL;
	int fd, rc = run_job(b->mnt, b->f, b->uidvalidity, b->uid, section,
			     false, NULL, b->tmpdir, &j);

	if (rc < 0)
		return rc;
	fd = j->fd;
	*size = j->size;
	j->fd = -1;
	job_free(j);
	return fd;
}

/* Append the raw bytes of section to out. */
static int append_raw(Build *b, const char *section, GString *out)
{
	uint64_t size = 0;
	int fd = fetch_raw(b, section, &size);
	ssize_t n;

	if (fd < 0)
		return fd;
	if (size > (64u << 20)) {
		close(fd);
		return -EFBIG; /* a text part that large: read it all */
	}
	g_string_set_size(out, out->len + (gsize)size);
	n = pread(fd, out->str + out->len - size, (size_t)size, 0);
	close(fd);
	return n == (ssize_t)size ? 0 : -EIO;
}

/* Take the item named name from tree into items. */
static void steal_item(PartsItem *tree, const char *name, GPtrArray *items,
		       GHashTable *used)
{
	for (guint i = 0; i < tree->children->len; i++) {
		PartsItem *c = tree->children->pdata[i];

		if (strcmp(c->name, name) != 0)
			continue;
		g_hash_table_add(used, g_strdup(name));
		g_ptr_array_add(items,
				g_ptr_array_steal_index(tree->children, i));
		return;
	}
}

/* text.txt and text.html, from a stand-in message: the real header, and
 * the text parts under the top multipart's boundary. */
static int add_text(Build *b, const ImapBodyPart *top, GPtrArray *items,
		    GHashTable *used)
{
	const char *boundary = imap_body_param(top->params, "boundary");
	const ImapBodyPart *parts[2] = { b->plain, b->html };
	g_autoptr(GString) msg = g_string_new(NULL);
	PartsItem *tree;
	int fd, rc;

	if (!boundary || (rc = append_raw(b, "HEADER", msg)) < 0)
		return boundary ? rc : -EPROTO;
	for (int i = 0; i < 2; i++) {
		g_autofree char *mime = NULL;

		if (!parts[i])
			continue;
		mime = g_strdup_printf("%s.MIME", parts[i]->section);
		g_string_append_printf(msg, "--%s\r\n", boundary);
		if ((rc = append_raw(b, mime, msg)) < 0 ||
		    (rc = append_raw(b, parts[i]->section, msg)) < 0)
			return rc;
		g_string_append(msg, "\r\n");
	}
	g_string_append_printf(msg, "--%s--\r\n", boundary);
	fd = fs_parts_temp_file(b->tmpdir);
	if (fd < 0)
		return fd;
	rc = write_all(fd, msg->str, msg->len);
	tree = rc == 0 ? fs_parts_build(fd, 0, msg->len, b->tmpdir) : NULL;
	close(fd);
	if (!tree)
		return -EIO;
	steal_item(tree, "text.txt", items, used);
	steal_item(tree, "text.html", items, used);
	fs_parts_item_free(tree);
	return 0;
}

/* An attached message: a subdirectory built from its bytes. */
static void add_message(Build *b, const ImapBodyPart *p, GPtrArray *items,
			GHashTable *used)
{
	g_autofree char *stem = disposition_filename(p);
	uint64_t size = 0;
	PartsItem *it, *tree;
	int fd;

	if (!stem && p->subject)
		stem = g_mime_utils_header_decode_text(NULL, p->subject);
	if (!stem || !*stem) {
		g_free(stem);
		stem = g_strdup_printf("message-%s", p->section);
	}
	if (g_str_has_suffix(stem, ".eml"))
		stem[strlen(stem) - 4] = '\0';
	fd = fetch_raw(b, p->section, &size);
	if (fd < 0) {
		b->rc = fd;
		return;
	}
	tree = fs_parts_build(fd, 0, size, b->tmpdir);
	close(fd);
	if (!tree) {
		b->rc = -EIO;
		return;
	}
	it = fs_parts_item_add(
	    items, used, fs_parts_file_name(stem, p->section, "message/rfc822"),
	    true);
	it->children = g_steal_pointer(&tree->children);
	fs_parts_item_free(tree);
}

static void add_leaves(Build *b, const ImapBodyPart *p, GPtrArray *items,
		       GHashTable *used)
{
	g_autofree char *type = NULL;
	g_autofree char *fname = NULL;
	PartsItem *it;

	if (b->rc < 0)
		return;
	if (p->children) {
		for (guint i = 0; i < p->children->len; i++)
			add_leaves(b, p->children->pdata[i], items, used);
		return;
	}
	if (p->message) {
		add_message(b, p, items, used);
		return;
	}
	if (p == b->plain || p == b->html)
		return;
	if (b->binary && !p->has_binary_size) {
		b->rc = -ENOTSUP;
		return;
	}
	type = g_strdup_printf("%s/%s", p->type, p->subtype);
	fname = part_filename(p);
	it = fs_parts_item_add(
	    items, used, fs_parts_file_name(fname, p->section, type), false);
	it->section = g_strdup(p->section);
	if (b->binary) {
		it->lazy = PARTS_LAZY_SECTION;
		it->size = p->binary_size;
	} else { /* BODY.PEEK, decoded here, on first stat or read */
		it->lazy = PARTS_LAZY_DECODE;
		it->encoding = g_strdup(p->encoding);
	}
}

PartsItem *fs_parts_lazy_build(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
			       uint32_t uid, uint64_t size, const char *tmpdir)
{
	Build b = { mnt, f, uidvalidity, uid, tmpdir, NULL, NULL, false, 0 };
	g_autoptr(GHashTable) used =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	PartsItem *root, *eml;
	Job *j = NULL;

	if (run_job(mnt, f, uidvalidity, uid, NULL, false, NULL, tmpdir, &j) <
	    0)
		return NULL;
	b.binary = j->binary;
	if (!j->structure->children) { /* single part: read it whole */
		job_free(j);
		return NULL;
	}
	root = g_new0(PartsItem, 1);
	root->dir = true;
	root->fd = -1;
	root->children =
	    g_ptr_array_new_with_free_func((GDestroyNotify)fs_parts_item_free);
	eml = fs_parts_item_add(root->children, used, g_strdup("message.eml"),
				false);
	eml->lazy = PARTS_LAZY_WHOLE;
	eml->size = size;
	find_body(j->structure, &b.plain, &b.html);
	b.rc = add_text(&b, j->structure, root->children, used);
	if (b.rc == 0)
		add_leaves(&b, j->structure, root->children, used);
	job_free(j);
	if (b.rc < 0) {
		g_debug("parts of UID %u: whole message instead (%s)", uid,
			g_strerror(-b.rc));
		fs_parts_item_free(root);
		return NULL;
	}
	return root;
}

int fs_parts_lazy_fetch(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
			uint32_t uid, const PartsItem *it, const char *tmpdir,
			uint64_t *size)
{
	bool binary = it->lazy == PARTS_LAZY_SECTION;
	Job *j = NULL;
	int fd, rc = run_job(mnt, f, uidvalidity, uid, it->section, binary,
			     binary ? NULL : it->encoding, tmpdir, &j);

	if (rc < 0)
		return rc;
	fd = j->fd;
	*size = j->size;
	j->fd = -1;
	job_free(j);
	return fd;
}
