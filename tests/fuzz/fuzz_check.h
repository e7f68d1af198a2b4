// FUZZ_CHECK(cond): the fuzz targets' assertion. A failed check prints where
// and what, then aborts, which libFuzzer reports as a crash and saves the
// input that caused it. Unlike assert() it stays on in every build.
#ifndef CHAT_TESTS_FUZZ_FUZZ_CHECK_H_
#define CHAT_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#endif  // CHAT_TESTS_FUZZ_FUZZ_CHECK_H_
