/* cli.h: what the command-line files share (main.c, runs.c). */
#ifndef LC_CLI_H
#define LC_CLI_H

/* Resumes run run_id of the store at store_path (as luact run --resume
 * RUN --store PATH), with further run options in argv. Returns luact run's
 * exit code. */
int lc_cli_resume(const char *store_path, const char *run_id, int argc, char **argv);

/* luact runs ... and luact journal ... (runs.c). */
int lc_cli_runs(int argc, char **argv);
int lc_cli_journal(int argc, char **argv);

#endif
