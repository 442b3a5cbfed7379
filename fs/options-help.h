/* fs/options-help.h: --help and --version, printed on stdout. */
#pragma once

/* The usage lines, every option and the notes; argv0's base name is the
 * program name shown. */
void fs_options_print_help(const char *argv0);
/* imapfs's version and those of libfuse, OpenSSL and GLib. */
void fs_options_print_version(void);
