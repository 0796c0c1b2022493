//! Redis's numbering of a channel behind the ids this node delivered in
//! it: raised past them, so that no id is given twice and no cursor is
//! misread ([`super::scripts::raise`]).

use super::connection::{evalsha, Commands, Failure};
use super::scripts::Scripts;
use super::store::keys;
use super::{lock, new_epoch, Local};
use crate::pubsub::{HubError, Snapshot};

/// A history read: the snapshot and the channel's epoch as Redis has it.
pub(super) type Read = Result<(Snapshot, String), HubError>;

/// `read`, or if Redis's numbering of `channel` in it is behind ids this
/// node delivered in that same numbering (a replica was promoted without
/// the last of them, or Redis came back from an older snapshot), the read
/// `again` makes once the numbering is raised past them. Else its next
/// ids would be given to other messages than the ones its subscribers
/// hold, and a cursor past its last id would be answered from the start
/// of its history, a second time. The evidence is what this node
/// delivered, never a client's cursor.
pub(super) fn past_delivered(
    commands: &mut Commands,
    scripts: &Scripts,
    local: &Local,
    channel: &str,
    read: Read,
    again: impl FnOnce(&mut Commands) -> Read,
) -> Read {
    let behind = {
        let Ok((snapshot, epoch)) = &read else {
            return read;
        };
        let channels = lock(&local.channels);
        channels
            .get(channel)
            .filter(|l| l.epoch.as_deref() == Some(epoch.as_str()) && l.delivered > snapshot.last_id)
            .map(|l| (epoch.clone(), l.delivered))
    };
    match behind {
        Some((epoch, floor)) => {
            raise(commands, scripts, local, channel, &epoch, floor);
            again(commands)
        }
        None => read,
    }
}

/// The numbering of `channel` goes on as a new epoch after `floor` (the
/// highest id a node delivered) and Redis's clock, if it is still in
/// `epoch` and behind `floor` ([`super::scripts::raise`]); a second raise
/// for the same evidence changes nothing.
pub(super) fn raise(commands: &mut Commands, scripts: &Scripts, local: &Local, channel: &str, epoch: &str, floor: u64) {
    let (meta, _, _) = keys(channel);
    let mut call = evalsha(&scripts.raise, &[&meta]);
    call.arg(epoch).arg(floor).arg(new_epoch());
    if let Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) =
        commands.eval(local, &scripts.raise, &call, false)
    {
        log::warn!("redis numbering of {channel} after a new epoch: {e}");
    }
}
