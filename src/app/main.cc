// stakegate: stake-aware filtering gateway for Flow nodes. The command line (CLI11).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"stakegate: stake-weighted inline gateway in front of Flow nodes (docs/ in the source tree)", "stakegate"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "stakegate " STAKEGATE_VERSION);

  stakegate::RunOptions run;
  auto* r = app.add_subcommand("run", "the appliance: forward between the two ports until SIGTERM (SIGHUP reloads)");
  r->add_option("--config", run.config, "config file (YAML)")->required();
  r->add_option("--report", run.report, "write the final counters as JSON here at exit");
  r->add_option("--exit-on-idle", run.exit_on_idle_s, "stop after this many seconds without a packet (captures, tests)")
      ->check(CLI::PositiveNumber);

  stakegate::ReplayOptions replay;
  auto* p = app.add_subcommand("replay", "decide every packet of a capture, its timestamps as the clock");
  p->add_option("--config", replay.config, "config file (YAML)")->required();
  p->add_option("--pcap", replay.pcap, "capture to replay (Ethernet, pcap or pcapng)")->required();
  p->add_option("--out", replay.out, "write the passed packets here (classic pcap)");
  p->add_option("--report", replay.report, "write the counters, graylist events and evidence cases as JSON here");
  p->add_option("--evidence", replay.evidence, "evidence bundles go here instead of evidence.dir");
  p->add_option("--inside-mac", replay.inside_macs,
                "source MAC of the frames that went out (the inside next hops; repeat or separate with commas): "
                "the direction is told by MAC instead of by cluster.prefixes")
      ->delimiter(',');

  std::string check_file;
  auto* c = app.add_subcommand("check-config", "validate a config and its identity files, print the plan");
  // The file, as the contract writes it (check-config FILE), or as run and replay take it.
  c->add_option("file,--config", check_file, "config file (YAML), also without the flag: check-config FILE")->required();

  auto known = [&](const std::string& name) {
    return !app.get_subcommands([&](CLI::App* sub) { return sub->get_name() == name; }).empty();
  };
  if (argc == 1) {  // no command: what there is to run, rather than a one-line complaint
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
    std::fprintf(stderr, "stakegate: unknown command '%s' (run, replay, check-config; --help)\n", argv[1]);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*r) return stakegate::cmd_run(run);
  if (*p) return stakegate::cmd_replay(replay);
  return stakegate::cmd_check_config(check_file);
}
