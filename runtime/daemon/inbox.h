/* inbox.h: the Agent Protocol's input.inject for `luact serve`
 * (docs/serve.md, "Injected input").
 *
 * A luact run reads input only where its script asks (luact.ask, a
 * workflow's ask_user): that is an effect in its journal, which a resumed
 * or replayed run reads back, so input cannot enter a run anywhere else
 * without breaking replay. An injected message therefore waits in the
 * run's inbox (d_inbox) and is the answer to the run's next question,
 * one message per question, oldest first; messages still waiting when the
 * run ends are dropped. Delivery is at most once: a message is taken out
 * of the inbox before it is written as the answer (a crash in between
 * loses it rather than answering a later question with it twice). */
#ifndef LC_INBOX_H
#define LC_INBOX_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct lc_serve;

/* input.inject on thread (the tenant's; it exists): params {namespace,
 * message: {role: user|system, content, name?}}. Returns the result
 * object ({"run_id": the run it is for}), or NULL with *code the protocol's error code
 * (invalid_argument, no_such_namespace, no_such_run) and msg why. */
cJSON *lc_inbox_inject(struct lc_serve *s, const char *tenant, const char *thread,
                       const cJSON *params, const char **code, char *msg, size_t n);
/* The same for a value that is already the answer's text (run.start on a
 * thread whose run is active: the protocol's injection). */
cJSON *lc_inbox_inject_text(struct lc_serve *s, const char *tenant, const char *thread,
                            const char *text, const char **code, char *msg, size_t n);
/* Answers each waiting run that has a message, drops the messages of
 * ended runs. Called by the daemon's clock thread (crons.c) every look,
 * and after an injection. */
void lc_inbox_deliver(struct lc_serve *s);

#endif
