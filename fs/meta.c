/* fs/meta.c: flags of listed messages and the hooks that hear of their
 * changes (see fs/meta.h).
 *
 * Ownership: an FsMeta belongs to the mount. Hooks are registered before
 * the session starts and only read afterwards, so they need no lock.
 */
#include "fs/meta.h"

#include <errno.h>

#include "cache/flags.h"

typedef struct {
	FsMetaFlagsFn fn;
	void *user_data;
} Hook;

struct FsMeta {
	GArray *hooks; /* Hook */
};

FsMeta *fs_meta_new(void)
{
	FsMeta *meta = g_new0(FsMeta, 1);

	meta->hooks = g_array_new(FALSE, FALSE, sizeof(Hook));
	return meta;
}

void fs_meta_free(FsMeta *meta)
{
	if (!meta)
		return;
	g_array_unref(meta->hooks);
	g_free(meta);
}

void fs_meta_add_flags_hook(FsMeta *meta, FsMetaFlagsFn fn, void *user_data)
{
	Hook h = { fn, user_data };

	g_array_append_val(meta->hooks, h);
}

void fs_meta_flags_changed(FsMeta *meta, FsFolder *f, uint32_t folder_id,
			   uint32_t uid, uint8_t old_flags,
			   uint16_t old_keywords, uint8_t new_flags,
			   uint16_t new_keywords)
{
	if (!meta)
		return;
	for (guint i = 0; i < meta->hooks->len; i++) {
		Hook *h = &g_array_index(meta->hooks, Hook, i);

		h->fn(h->user_data, f, folder_id, uid, old_flags, old_keywords,
		      new_flags, new_keywords);
	}
}

int fs_meta_flags(FsFolder *f, uint32_t uid, uint8_t *flags, uint16_t *keywords)
{
	CacheMessage mm, *m = NULL;
	int rc = -ENOENT;

	g_mutex_lock(&f->lock);
	if (f->listing &&
	    cache_folder_index_find(f->listing->index, uid, &mm, NULL))
		m = &mm;
	if (m && !(m->flags & CACHE_FLAG_KNOWN)) {
		rc = -ENODATA;
	} else if (m) {
		*flags = m->flags;
		*keywords = m->keywords;
		rc = 0;
	}
	g_mutex_unlock(&f->lock);
	return rc;
}

char *fs_meta_flags_string(FsFolder *f, uint32_t uid)
{
	uint8_t flags;
	uint16_t keywords;

	if (fs_meta_flags(f, uid, &flags, &keywords) < 0)
		return NULL;
	return cache_flags_to_string(flags, keywords);
}
