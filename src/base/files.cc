#include "stakegate/base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "stakegate/base/error.h"

namespace stakegate {

std::string read_text_file(const std::string& path, const std::string& referenced_from, const std::string& key,
                           size_t max_bytes) {
  auto refuse = [&](const std::string& why) -> ConfigError {
    return ConfigError(referenced_from, key, "cannot read '" + path + "': " + why);
  };
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw refuse(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw refuse("not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw refuse(std::to_string(st.st_size) + " bytes, over the limit of " + std::to_string(max_bytes));
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw refuse(std::strerror(errno));
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes)
      throw refuse("grew past the limit of " + std::to_string(max_bytes) + " bytes while being read");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace stakegate
