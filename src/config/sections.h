#pragma once
// Readers of config sections: cluster, sessions, infra, request_channel, and identity's
// dns and access_api (config.cc reads the rest).
#include "stakegate/config/config.h"
#include "stakegate/config/yaml_reader.h"

namespace stakegate::config_sections {

void read_cluster(const YamlReader& r, ClusterConfig& c);
void read_sessions(const YamlReader& r, SessionConfig& s);
void read_infra(const YamlReader& r, InfraConfig& i, const ClusterConfig& cluster);
void read_request_channel(const YamlReader& r, RequestChannelConfig& q);
void read_dns(const YamlReader& r, DnsConfig& d);
void read_access_api(const YamlReader& r, AccessApiConfig& a, const std::string& cfg_file);

// A path from the config, relative to the config file's folder unless absolute.
std::string resolve_path(const std::string& cfg_file, const std::string& p);

}  // namespace stakegate::config_sections
