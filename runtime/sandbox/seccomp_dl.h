/* seccomp_dl.h: libseccomp is loaded with dlopen (seccomp_dl.c defines the
 * seccomp_* functions sandbox.c calls). */
#ifndef LC_SECCOMP_DL_H
#define LC_SECCOMP_DL_H

/* Loads libseccomp now (once per process); 1 when it is usable. The
 * sandbox child calls it before it caps its own resources: the loading
 * maps memory and opens a file, and a sanitizer's runtime maps more. */
int lc_seccomp_dl_load(void);

#endif
