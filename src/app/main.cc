// stakegate: stake-aware filtering gateway for Flow nodes.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"

static void usage(FILE* f) {
  std::fprintf(f,
               "usage:\n"
               "  stakegate run --config FILE [--report R.json] [--exit-on-idle SECONDS]\n"
               "  stakegate replay --config FILE --pcap IN [--out PASS.pcap] [--report R.json]\n"
               "  stakegate check-config FILE\n"
               "  stakegate --version\n");
}

int main(int argc, char** argv) {
  if (argc < 2) { usage(stderr); return 2; }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "run") return stakegate::cmd_run(args);
  if (cmd == "replay") return stakegate::cmd_replay(args);
  if (cmd == "check-config") return stakegate::cmd_check_config(args);
  if (cmd == "--version" || cmd == "version") { std::printf("stakegate %s\n", STAKEGATE_VERSION); return 0; }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") { usage(stdout); return 0; }
  std::fprintf(stderr, "stakegate: unknown command '%s'\n", cmd.c_str());
  usage(stderr);
  return 2;
}
