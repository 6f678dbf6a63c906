#pragma once
// A detached helper thread hands its result back to the control loop through this: the
// result runs on the loop's io_context, or nowhere once the owner is gone (the helper may
// outlive it: a lookup past its deadline is left to finish and ignored).
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <mutex>

namespace stakegate {

class PostBack {
  struct Bridge {
    std::mutex m;
    boost::asio::io_context* io = nullptr;
  };

 public:
  explicit PostBack(boost::asio::io_context& io) : b_(std::make_shared<Bridge>()) { b_->io = &io; }
  ~PostBack() {
    std::lock_guard<std::mutex> lock(b_->m);
    b_->io = nullptr;
  }
  PostBack(const PostBack&) = delete;
  PostBack& operator=(const PostBack&) = delete;

  // For the helper thread (copyable, keeps the bridge alive): poster(fn) runs fn on the
  // loop if its owner still lives.
  class Poster {
   public:
    template <typename F>
    void operator()(F&& fn) const {
      std::lock_guard<std::mutex> lock(b_->m);
      if (b_->io) boost::asio::post(*b_->io, std::forward<F>(fn));
    }

   private:
    friend class PostBack;
    explicit Poster(std::shared_ptr<Bridge> b) : b_(std::move(b)) {}
    std::shared_ptr<Bridge> b_;
  };
  Poster poster() const { return Poster(b_); }

 private:
  std::shared_ptr<Bridge> b_;
};

}  // namespace stakegate
