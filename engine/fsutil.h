/* fsutil.h - small filesystem helpers.
 *
 * Errors: functions returning int give 0 on success, -1 on failure with a message
 * naming the path in err (errlen bytes). Nothing here exits or prints. */
#ifndef KNOB_FSUTIL_H
#define KNOB_FSUTIL_H
#include <stddef.h>

/* Creates dir and its parents (mode 0755); existing directories are fine. */
int ke_mkdir_p(const char *dir, char *err, size_t errlen);
/* Writes data to a temporary file beside path, fsyncs, and renames it over path, so
 * readers see the old file or the new one, never half of one. mode: e.g. 0644. */
int ke_write_atomic(const char *path, const void *data, size_t len, int mode, char *err,
                    size_t errlen);
int ke_exists(const char *path);
/* 1 when path is a file this process may execute. */
int ke_is_executable(const char *path);
/* The names in dir (without "." and ".."), a malloc'd NULL-terminated array of
 * malloc'd strings (free with ke_free_list); NULL when dir cannot be read. */
char **ke_list_dir(const char *dir);
void ke_free_list(char **list);
int ke_is_dir(const char *path);
/* Removes a file or a directory tree; a missing path is not an error. */
int ke_remove_tree(const char *path, char *err, size_t errlen);
/* Reads the last max_lines lines of a file (at most 64 KiB from its end) into a
 * malloc'd string (a NUL byte in it becomes a space); NULL when unreadable. */
char *ke_tail_lines(const char *path, int max_lines);
/* Points `link` at `target` (a symlink), replacing an existing link atomically: readers
 * see the old target or the new one, never no link. */
int ke_symlink_atomic(const char *target, const char *link, char *err, size_t errlen);

/* Takes the exclusive lock of a directory for the life of this process: an flock on the
 * directory itself (no file is written). The lock goes with the process: a dead
 * owner's lock is free again. Returns 0 when taken, 1 when another process holds it
 * (*holder: its pid from /proc/locks, 0 if unknown), -1 on an error (message in err). */
int ke_lock_dir(const char *dir, long *holder, char *err, size_t errlen);

#endif
