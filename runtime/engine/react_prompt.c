/* react_prompt.c: builds the text-mode ReAct prompt and scratchpad. */
#include "react_prompt.h"

#include <string.h>

#include "lc.h"

static const char *const stops[] = {"\nObservation:", "Observation:"};

const char *const *lc_react_stop_sequences(size_t *n) {
  *n = LC_ARRAY_LEN(stops);
  return stops;
}

static const char fmt_bracket[] =
    "Solve the task with interleaved Thought, Action and Observation "
    "steps. Each reply has exactly this form:\n"
    "Thought: <your reasoning about what to do next>\n"
    "Action: <action name>[<input>]\n"
    "Then stop: the result of the action comes back to you as the next "
    "\"Observation:\". Never write an Observation yourself, and write only "
    "one action per reply. The input is plain text for actions listed with "
    "<...>, otherwise one JSON object on one line.\n"
    "When you know the answer, reply with:\n"
    "Thought: <your reasoning>\n"
    "Action: finish[<the answer>]\n";

static const char fmt_langchain[] =
    "Solve the task with interleaved Thought, Action and Observation "
    "steps. Each reply has exactly this form:\n"
    "Thought: <your reasoning about what to do next>\n"
    "Action: <action name>\n"
    "Action Input: <input>\n"
    "Then stop: the result of the action comes back to you as the next "
    "\"Observation:\". Never write an Observation yourself, and write only "
    "one action per reply. The input is plain text for actions listed with "
    "<...>, otherwise one JSON object on one line.\n"
    "When you know the answer, reply with:\n"
    "Thought: <your reasoning>\n"
    "Final Answer: <the answer>\n";

static int put_action(struct lc_buf *b, const struct lc_action *x,
                      enum lc_react_style style) {
  int rc;
  if (style == LC_REACT_STYLE_LANGCHAIN) {
    rc = lc_buf_printf(b, "- %s: input ", x->name);
    if (!rc) rc = lc_actions_render_input(x, b);
  } else {
    rc = lc_buf_printf(b, "- %s[", x->name);
    if (!rc) rc = lc_actions_render_input(x, b);
    if (!rc) rc = lc_buf_puts(b, "]");
  }
  if (!rc && x->description && *x->description)
    rc = lc_buf_printf(b, ": %s", x->description);
  size_t mark = b->len;
  if (!rc) rc = lc_buf_puts(b, " (");
  size_t before = b->len;
  if (!rc) rc = lc_actions_render_params(x, b);
  if (!rc) {
    if (b->len == before) {
      /* no parameter docs: drop the " (" again */
      b->len = mark;
      b->data[mark] = '\0';
    } else {
      rc = lc_buf_puts(b, ")");
    }
  }
  return rc ? rc : lc_buf_puts(b, "\n");
}

int lc_react_prompt_system(const struct lc_react_prompt *p, struct lc_buf *out) {
  if (!p || !p->actions) return LC_EINVAL;
  int rc = 0;
  if (p->instructions && *p->instructions) {
    rc = lc_buf_puts(out, p->instructions);
    if (!rc) rc = lc_buf_puts(out, "\n\n");
  }
  if (!rc)
    rc = lc_buf_puts(out, p->style == LC_REACT_STYLE_LANGCHAIN ? fmt_langchain
                                                               : fmt_bracket);
  if (!rc) rc = lc_buf_puts(out, "\nAvailable actions:\n");
  for (size_t i = 0; !rc && i < p->actions->n; i++)
    rc = put_action(out, p->actions->v[i], p->style);
  if (!rc) rc = put_action(out, p->actions->finish, p->style);
  for (size_t i = 0; !rc && i < p->n_examples; i++) {
    if (i == 0) rc = lc_buf_puts(out, "\nExamples:\n");
    if (!rc) rc = lc_buf_puts(out, p->examples[i]);
    if (!rc) {
      size_t l = strlen(p->examples[i]);
      rc = lc_buf_puts(out, l && p->examples[i][l - 1] == '\n' ? "\n" : "\n\n");
    }
  }
  return rc;
}

int lc_react_prompt_user(const char *question, const char *scratchpad,
                         struct lc_buf *out) {
  if (!question) return LC_EINVAL;
  int rc = lc_buf_printf(out, "Question: %s\n", question);
  if (!rc && scratchpad) rc = lc_buf_puts(out, scratchpad);
  return rc;
}

int lc_react_scratchpad_add(struct lc_buf *pad, enum lc_react_style style,
                            const char *thought, const char *action,
                            const char *input, const char *observation) {
  int rc = 0;
  if (thought && *thought) rc = lc_buf_printf(pad, "Thought: %s\n", thought);
  if (rc) return rc;
  if (style == LC_REACT_STYLE_LANGCHAIN) {
    rc = lc_buf_printf(pad, "Action: %s\n", action ? action : "");
    if (!rc && input) rc = lc_buf_printf(pad, "Action Input: %s\n", input);
  } else {
    rc = lc_buf_printf(pad, "Action: %s[%s]\n", action ? action : "",
                       input ? input : "");
  }
  if (!rc)
    rc = lc_buf_printf(pad, "Observation: %s\n", observation ? observation : "");
  return rc;
}
