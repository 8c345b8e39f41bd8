/* mortgage.c: a tiny native library for examples/native_tool. agent.lua
 * compiles it into a shared object at run time and declares its functions
 * as tools with luact.tools.native; the tool schemas come from the C
 * signatures, so a model that sends a wrong type never reaches this code. */
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Monthly payment of an annuity loan, rounded to cents. annual_rate is in
 * percent (4.5 means 4.5 %). */
double monthly_payment(double principal, double annual_rate, int years) {
  if (principal <= 0 || years <= 0 || annual_rate < 0) return 0;
  double n = 12.0 * years;
  double r = annual_rate / 100.0 / 12.0;
  double p = r == 0 ? principal / n : principal * r / (1.0 - pow(1.0 + r, -n));
  return round(p * 100.0) / 100.0;
}

/* String in, buffer out: formats amount as "<currency> 1,234.56" into out
 * (cap bytes). Returns the length written, or -1 if it does not fit. */
int format_amount(const char *currency, double amount, char *out, size_t cap) {
  char digits[64];
  long long cents = llround(fabs(amount) * 100.0);
  int n = snprintf(digits, sizeof digits, "%lld", cents / 100);
  char grouped[96];
  int g = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && (n - i) % 3 == 0) grouped[g++] = ',';
    grouped[g++] = digits[i];
  }
  grouped[g] = '\0';
  int len = snprintf(out, cap, "%s %s%s.%02lld", currency, amount < 0 ? "-" : "", grouped,
                     cents % 100);
  return len < 0 || (size_t)len >= cap ? -1 : len;
}
