/* check.h - a minimal assertion harness for the C unit tests. */
#ifndef KNOB_CHECK_H
#define KNOB_CHECK_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                          \
  do {                                                                       \
    check_count++;                                                           \
    if (!(cond)) {                                                           \
      check_failures++;                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

#define CHECK_STR(a, b)                                                                  \
  do {                                                                                   \
    check_count++;                                                                       \
    const char *a_ = (a), *b_ = (b);                                                     \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                             \
      check_failures++;                                                                  \
      fprintf(stderr, "%s:%d: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, b_ ? b_ : "(null)", \
              a_ ? a_ : "(null)");                                                       \
    }                                                                                    \
  } while (0)

#define CHECK_NEAR(a, b, eps)                                                              \
  do {                                                                                     \
    check_count++;                                                                         \
    double a_ = (a), b_ = (b);                                                             \
    if (!(fabs(a_ - b_) <= (eps))) {                                                       \
      check_failures++;                                                                    \
      fprintf(stderr, "%s:%d: expected %.9g, got %.9g\n", __FILE__, __LINE__, b_, a_);   \
    }                                                                                      \
  } while (0)

#define CHECK_DONE()                                                              \
  do {                                                                            \
    printf("%d checks, %d failed\n", check_count, check_failures);                \
    return check_failures ? 1 : 0;                                                \
  } while (0)

#endif
