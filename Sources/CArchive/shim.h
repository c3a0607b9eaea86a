#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <sys/xattr.h>  // extended attributes for layers that ask to keep them
#include <sys/sysmacros.h>  // makedev, for device nodes a layer holds

// Macros Swift cannot import, as functions.

/// A UTF-8 "C" locale for libarchive's name conversions, whatever the caller's LANG says.
static inline locale_t kiln_utf8_locale(void) {
    locale_t locale = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    if (locale == (locale_t)0) locale = newlocale(LC_ALL_MASK, "en_US.UTF-8", (locale_t)0);
    return locale;
}

/// A device number from its major and minor numbers (`makedev` is a macro).
static inline dev_t kiln_makedev(unsigned int major, unsigned int minor) {
    return makedev(major, minor);
}

static inline unsigned int kiln_major(dev_t device) { return major(device); }
static inline unsigned int kiln_minor(dev_t device) { return minor(device); }
