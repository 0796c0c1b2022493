//! A subscriber's place in a channel: the last id it was given, in which
//! numbering. Every transport keeps one, so that replay-then-live is free
//! of gaps and duplicates, and a gap or a reset is told the same way
//! wherever the messages go.

use super::{Gap, Message, Snapshot};

/// The last id a subscriber was given (or is known to have missed), and
/// the start of the numbering it is of ([`Message::epoch_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    last: u64,
    epoch_start: u64,
}

impl Cursor {
    /// Where a subscription starts: after what its snapshot replays.
    pub fn new(snapshot: &Snapshot) -> Self {
        Cursor {
            last: snapshot.last_id,
            epoch_start: snapshot.epoch_start,
        }
    }

    /// The last id given: what the client asks from next.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Take message `msg`: `None` if the subscriber has it already, else
    /// the ids it skips, if any (the local hub never skips; a broker across
    /// nodes might). A message of another numbering than the cursor's (the
    /// broker lost the channel and made it again, a new epoch) is a reset,
    /// whichever path brought it (live, or the catch-up after an outage):
    /// the subscriber is told, as for a cursor the server cannot vouch for,
    /// with the ids of the new numbering before it that it will not get
    /// (`to` below `from` when none), and follows the new numbering.
    ///
    /// A presence event is in no numbering: `None`, the cursor unmoved.
    pub fn advance(&mut self, msg: &Message) -> Option<Option<Gap>> {
        if msg.event.is_some() {
            return None;
        }
        let (id, start) = (msg.id, msg.epoch_start);
        if start != self.epoch_start {
            self.epoch_start = start;
            // A subscriber that held nothing has no cursor to drop.
            if self.last != 0 {
                self.last = id;
                return Some(Some(Gap {
                    from: start.saturating_add(1),
                    to: id.saturating_sub(1),
                    reset: true,
                }));
            }
            self.last = start;
        }
        if id <= self.last {
            return None;
        }
        let gap = (id > self.last + 1).then(|| Gap::trimmed(self.last + 1, id - 1));
        self.last = id;
        Some(gap)
    }
}
