#pragma once
// Shared by the fuzz targets (libFuzzer, built by scripts/fuzz.sh with clang and
// AddressSanitizer + UndefinedBehaviorSanitizer).
#include <netdb.h>

#include <cstdint>
#include <string>

// No fuzz input may reach the network: a host name in a fuzzed identity table would
// otherwise be resolved through DNS. This definition replaces libc's for the whole
// binary; every name fails to resolve, as in an offline appliance.
extern "C" int getaddrinfo(const char*, const char*, const struct addrinfo*, struct addrinfo**) { return EAI_NONAME; }

namespace stakegate::fuzz {

inline std::string text(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

}  // namespace stakegate::fuzz
