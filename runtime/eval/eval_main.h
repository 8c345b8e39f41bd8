/* eval_main.h: `luact eval` (runtime/eval/eval_main.c). */
#ifndef LC_EVAL_MAIN_H
#define LC_EVAL_MAIN_H

/* Runs `luact eval` with the arguments after "eval"; returns the exit
 * code: 0 all passed, 100 a case failed, 1 error, 2 bad configuration. */
int lc_eval_main(int argc, char **argv);

#endif
