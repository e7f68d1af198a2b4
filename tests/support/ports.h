// A loopback TCP port that is free now, for processes that must know each
// other's addresses before any of them starts (groupsvc's --shards). Another
// process could take it meanwhile; tests start theirs at once.
#ifndef CHAT_TESTS_SUPPORT_PORTS_H_
#define CHAT_TESTS_SUPPORT_PORTS_H_

namespace chat::testing {

int FreeLoopbackPort();

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_PORTS_H_
