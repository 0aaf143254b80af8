// libcairn internals that the public templates need: the asynchronous calls are
// templates on Asio completion tokens, so what they expand to has to be in a header.
// NOT part of the API (docs/client.md): anything here may change in any release; do not
// use it from an application.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "cairn/client/error.h"

namespace cairn::client {

class Client;

namespace detail {

// A call that goes over whichever connection of the pool (no Client::Channel).
inline constexpr size_t kAnyChannel = SIZE_MAX;

// One call in flight: its encoded request, and what to do with the answer (one
// allocation per call, holding the caller's completion handler).
struct Call {
  virtual ~Call() = default;
  // The answer: a response payload or an error. Runs once, on the client's IO thread.
  virtual void Complete(std::exception_ptr e, std::string_view payload) = 0;
  void Finish(std::exception_ptr e, std::string_view payload = {}) {
    if (finished) return;
    finished = true;
    Complete(e, payload);
  }
  void Fail(const Error& e) { Finish(std::make_exception_ptr(e)); }

  std::string frame;
  uint64_t id = 0;
  bool write = false;
  bool resendable = true;  // false: may not be sent again once sent (no idempotency key)
  bool sent = false;       // written to a connection at least once
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds extra_time{0};  // added to the client's timeout (Digest's wait)
  int attempts = 0;
  bool finished = false;
  size_t channel = kAnyChannel;  // else: goes over connection channel % pool size
  // The protocol the request needs (0: any) and the call's name, for the error on a
  // connection whose server speaks an older one.
  uint32_t protocol = 0;
  const char* name = "";
  std::exception_ptr refused;  // set: fails with this at once, never sent (bad arguments)
};

template <typename F>
struct CallWith final : Call {
  explicit CallWith(F f) : fn(std::move(f)) {}
  void Complete(std::exception_ptr e, std::string_view payload) override { fn(e, payload, frame); }
  F fn;  // fn(error, response payload, request frame)
};

// An encoded request (a frame with a fresh request id) and how to read its answer: what
// every call, synchronous or not, starts from. Built by the library (client/src/codec.cc).
template <typename T>
struct Request {
  std::string frame;
  bool write = false;       // writes: "may or may not have been applied" when lost
  bool resendable = true;   // reads, and writes that carry an idempotency key
  // decode(response payload, the request's frame); throws Error (an error response...).
  T (*decode)(std::string_view payload, std::string_view request) = nullptr;
  // How long the server may wait before it answers, on top of the call's timeout.
  std::chrono::milliseconds extra_time{0};
  // The protocol it needs (0: any): on a connection to an older server the call fails
  // with kBadRequest, "NAME needs a server that speaks protocol N", unsent.
  uint32_t protocol = 0;
  const char* name = "";
  // Set when the arguments were refused: the call fails with this, through its
  // completion like any other error, without being sent (`frame` is empty).
  std::exception_ptr refused = nullptr;
};

// Moves what a call needs of its request into it.
template <typename T>
void Prepare(Call& call, Request<T>& request) {
  call.frame = std::move(request.frame);
  call.write = request.write;
  call.resendable = request.resendable;
  call.extra_time = request.extra_time;
  call.protocol = request.protocol;
  call.name = request.name;
  call.refused = request.refused;
}

// Hands a call to the client's IO thread (client/src/client.cc).
void Submit(Client& client, std::shared_ptr<Call> call, size_t channel);
asio::any_io_executor DefaultExecutor(const Client& client);

// Wraps a completion handler as a callable `void(std::exception_ptr, T)` that runs the
// handler on its associated executor (by default `fallback`: the client's IO thread),
// inline when called there. Until then the handler counts as outstanding work on that
// executor. Shared by the calls (Initiate) and the streams (stream.h).
template <typename T, typename Handler>
auto BindCompletion(Handler handler, const asio::any_io_executor& fallback) {
  auto ex = asio::prefer(asio::get_associated_executor(handler, fallback),
                         asio::execution::outstanding_work.tracked);
  return [handler = std::move(handler), ex](std::exception_ptr e, T value) mutable {
    asio::dispatch(ex, [h = std::move(handler), e, value = std::move(value)]() mutable {
      h(e, std::move(value));
    });
  };
}

// Starts `request` and completes `token` with its decoded answer, on the handler's
// associated executor (by default the client's IO thread, inline).
template <typename T, typename Token>
auto Initiate(Client& client, Request<T> request, size_t channel, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, T)>(
      [&client, channel](auto handler, Request<T> request) {
        auto deliver = BindCompletion<T>(std::move(handler), DefaultExecutor(client));
        auto done = [deliver = std::move(deliver), decode = request.decode](
                        std::exception_ptr e, std::string_view payload,
                        std::string_view frame) mutable {
          T value{};
          if (!e) {
            try {
              value = decode(payload, frame);
            } catch (...) {
              e = std::current_exception();
            }
          }
          deliver(e, std::move(value));
        };
        // The call's one allocation: the handler lives inside it.
        auto call = std::make_shared<CallWith<decltype(done)>>(std::move(done));
        Prepare(*call, request);
        Submit(client, std::move(call), channel);
      },
      token, std::move(request));
}

// The pending completion of one stream call (a Watcher's or SnapshotReader's next
// part): the handler, type-erased (handlers may be move-only) in one allocation.
template <typename T>
struct Completion {
  virtual ~Completion() = default;
  virtual void Complete(std::exception_ptr e, T value) = 0;
};

template <typename T, typename F>
struct CompletionWith final : Completion<T> {
  explicit CompletionWith(F f) : fn(std::move(f)) {}
  void Complete(std::exception_ptr e, T value) override { fn(e, std::move(value)); }
  F fn;
};

// Completes `token` with what `start` (called with the Completion, before this returns)
// eventually delivers, on the handler's associated executor (by default `fallback`).
template <typename T, typename Start, typename Token>
auto InitiateStream(const asio::any_io_executor& fallback, Start start, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, T)>(
      [fallback](auto handler, Start start) {
        auto deliver = BindCompletion<T>(std::move(handler), fallback);
        start(std::unique_ptr<Completion<T>>(
            new CompletionWith<T, decltype(deliver)>(std::move(deliver))));
      },
      token, std::move(start));
}

}  // namespace detail
}  // namespace cairn::client
