/* fs/password.h: the account's password, from --password-command,
 * --password-file, $IMAPFS_PASSWORD or a prompt on the terminal. Every
 * password returned is a new string the caller owns and must give back to
 * fs_password_free(), which wipes it. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "fs/options.h"

/* The password, from --password-command, --password-file, $IMAPFS_PASSWORD,
 * or a prompt on the terminal (echo off), in that order. Returns NULL with
 * error set when none can be had. The prompt installs signal handlers for
 * its duration: call it before starting threads. */
char *fs_password_get(const FsOptions *opts, GError **error);

/* The password again, for a mount whose password the server refused:
 * from --password-command or --password-file only (never a prompt: the
 * daemon may have no terminal). NULL with error set otherwise. Safe from any
 * thread (it touches no global state). */
char *fs_password_reread(const FsOptions *opts, GError **error);

/* Whether fs_password_reread() has a source to read. */
bool fs_password_can_reread(const FsOptions *opts);

/* Wipe and free; NULL is allowed. */
void fs_password_free(char *password);
