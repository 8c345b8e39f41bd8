/* curl_dl.h: control over when libcurl is loaded (curl_dl.c defines the
 * libcurl functions themselves, which load it on their first call). */
#ifndef LC_CURL_DL_H
#define LC_CURL_DL_H

/* Starts loading libcurl (dlopen, dlsym) on a thread of its own, so that
 * the dynamic loader's work (most of a one-request run's instructions)
 * runs while the caller compiles and starts its script; the first libcurl
 * call then waits for that thread instead of loading, and runs
 * curl_global_init. At most once per process; a failure to start the
 * thread only means the first call loads it as before. The process joins
 * the thread when it exits (atexit). */
void lc_curl_preload(void);

/* 1 when libcurl is loaded and initialised (loading it now if nobody has);
 * 0 when it cannot be: the reason went to stderr once. Lets a caller whose
 * libcurl call failed tell that from running out of memory. */
int lc_curl_usable(void);

#endif
