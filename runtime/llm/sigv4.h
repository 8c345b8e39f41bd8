/* sigv4.h: AWS Signature Version 4 for a request that libcurl's
 * CURLOPT_AWS_SIGV4 would sign wrongly.
 *
 * AWS services other than S3 sign the request path URI-encoded once more
 * than it is sent: a Bedrock model id "x-v1:0" travels as "x-v1%3A0" and
 * is signed as "x-v1%253A0". libcurl before 8.14 signs the path as sent,
 * so every such request is refused (InvalidSignatureException), and
 * nearly every Bedrock model id holds a ':'. http.c therefore signs a
 * path that holds a percent-escape here and leaves every other request to
 * libcurl (the same algorithm: the signed headers are content-type, host,
 * x-amz-date and, when sent, x-amz-security-token).
 *
 * Ownership: the returned header lines are heap strings the caller frees
 * with lc_free. Nothing is logged; the secret never leaves this call. */
#ifndef LC_SIGV4_H
#define LC_SIGV4_H

#include <stddef.h>
#include <time.h>

/* 1 when url must be signed here: its path holds a '%' and it has no
 * query string (none of luact's signed requests has one). */
int lc_sigv4_needed(const char *url);

/* The path's canonical form: every byte but A-Z a-z 0-9 - _ . ~ and '/'
 * percent-encoded (so "%3A" becomes "%253A"). Heap, or NULL. */
char *lc_sigv4_canonical_path(const char *path);

/* Signs a request. spec is CURLOPT_AWS_SIGV4's "aws:amz:<region>:<service>",
 * userpwd "<key id>:<secret>"; headers are the "Name: value" lines that
 * will be sent (content-type and x-amz-security-token are signed when
 * present); now the signing time. Sets *auth ("Authorization: AWS4-HMAC-
 * SHA256 Credential=..., SignedHeaders=..., Signature=...") and *date
 * ("x-amz-date: YYYYMMDDTHHMMSSZ"). 0, LC_EINVAL (a spec, URL or userpwd
 * it cannot read) or LC_ENOMEM. */
int lc_sigv4_sign(const char *spec, const char *userpwd, const char *method,
                  const char *url, const char *const *headers, size_t n_headers,
                  const char *body, size_t body_len, time_t now, char **auth,
                  char **date);

#endif
