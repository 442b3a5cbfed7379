/* fs/ops.h: the FUSE low-level operations of imapfs. The session's user
 * data is the FsAccount. */
#pragma once

#include <fuse_lowlevel.h>

#include "fs/account.h"

extern const struct fuse_lowlevel_ops fs_ops;
