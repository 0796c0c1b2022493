//! Redis's numbering of a channel behind the ids this node delivered in
//! it: raised past them, so that no id is given twice and no cursor is
//! misread ([`super::scripts::raise`]).

use super::connection::{evalsha, Commands, Failure};
use super::scripts::Scripts;
use super::store::keys;
use super::{lock, new_epoch, Local};
use crate::pubsub::Snapshot;
use std::sync::Arc;

/// Redis's numbering of `channel` (as `snapshot` read it, in `epoch`) is
/// behind ids this node delivered in that same numbering: a replica was
/// promoted without the last of them, or Redis came back from an older
/// snapshot. Its next ids would be given to other messages than the ones
/// its subscribers hold, and a cursor past its last id would be answered
/// from the start of its history, a second time. The epoch and the highest
/// id delivered: what [`raise`] takes, before any answer is read from it.
pub(super) fn delivered_past(
    local: &Local,
    channel: &str,
    epoch: &str,
    snapshot: &Snapshot,
) -> Option<(Arc<str>, u64)> {
    let channels = lock(&local.channels);
    let l = channels.get(channel)?;
    (l.epoch.as_deref() == Some(epoch) && l.delivered > snapshot.last_id).then(|| (epoch.into(), l.delivered))
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
