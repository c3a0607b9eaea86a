#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <sys/xattr.h>  // extended attributes for layers that ask to keep them

// Macros Swift cannot import, as functions.

/// A UTF-8 "C" locale for libarchive's name conversions, whatever the caller's LANG says.
static inline locale_t kiln_utf8_locale(void) {
    locale_t locale = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    if (locale == (locale_t)0) locale = newlocale(LC_ALL_MASK, "en_US.UTF-8", (locale_t)0);
    return locale;
}
