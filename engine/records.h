/* records.h - reading a dataset file one record at a time, in bounded memory.
 *
 * Two layouts: JSON Lines (a record per line; blank lines are skipped) and one JSON
 * array (a record per element, as ShareGPT files are); a UTF-8 byte-order mark at the
 * start of the file is skipped. The reader never holds more
 * than one record and a read buffer, so a file of hundreds of megabytes is read in
 * the memory of its largest record. Records are handed out as raw JSON text; their
 * content is the caller's to decode and check.
 * Ownership: ke_records_open returns a reader freed with ke_records_close; the text a
 * call returns stays valid until the next call. Errors: -1 with a message naming the
 * file (and the line or element) in err; nothing here exits. */
#ifndef KNOB_RECORDS_H
#define KNOB_RECORDS_H
#include <stddef.h>

typedef enum { KE_RECORDS_LINES, KE_RECORDS_ARRAY } ke_records_layout;

typedef struct ke_records ke_records;

ke_records *ke_records_open(const char *path, ke_records_layout layout, size_t max_record, char *err,
                            size_t errlen);
/* The next record: 1 (text, len, and its number: the line, or the element counted
 * from 1), 0 at the end, -1 on an error (a record over max_record bytes, an array
 * that is not well formed, a read error). */
int ke_records_next(ke_records *r, const char **text, size_t *len, long *number, char *err, size_t errlen);
void ke_records_close(ke_records *r);

/* FNV-1a (64 bit) of a file's bytes as 16 hex digits into out (17 bytes); -1 when it
 * cannot be read. The same digits as hashing its whole text at once. */
int ke_file_hash(const char *path, char *out, char *err, size_t errlen);

#endif
