#include "sequencer.h"

namespace cairn::server {

std::optional<Sequencer::Item> Sequencer::Next() {
  if (waiting_.empty()) return std::nullopt;
  Item& front = waiting_.front();
  // A waiting error was found in turn: it is answered once what is ahead of it is.
  // (WaitFirst puts it ahead of later requests, behind the writes still out.)
  if (!front.write && out_ > 0) return std::nullopt;
  Item next = std::move(front);
  waiting_.pop_front();
  return next;
}

std::optional<Sequencer::Item> Sequencer::Take() {
  if (waiting_.empty()) return std::nullopt;
  Item next = std::move(waiting_.front());
  waiting_.pop_front();
  return next;
}

}  // namespace cairn::server
