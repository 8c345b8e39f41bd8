/* main.c: the luact command line (placeholder until the CLI lands). */
#include <stdio.h>
int main(void) { puts("luact " LUACT_VERSION); return 0; }
