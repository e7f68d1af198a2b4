// Boost.JSON and Boost.URL compiled into the fuzz target that links this file
// (their header-only form), so that libFuzzer sees coverage inside the parsers
// the edge calls: Debian's libboost_json/libboost_url are not instrumented, and
// without this the fuzzer gets no feedback from them. The definitions here take
// precedence over the shared libraries' at link time; the code is the same.
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
