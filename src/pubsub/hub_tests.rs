//! Tests of the local hub: numbering, history, subscribers, limits, keys.

use super::*;
use crate::pubsub::PresenceLimits;
use std::time::Duration;

fn hub(history: usize, workers: usize) -> (LocalHub, mio::Poll, Arc<[Inbox]>) {
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let inboxes: Arc<[Inbox]> = (0..workers).map(|_| Inbox::new(waker.clone())).collect();
    let settings = HubSettings {
        history_size: history,
        history_ttl: Duration::from_secs(3600),
        max_channels: 100,
        id_memory: Duration::from_secs(3600),
        id_memory_channels: 100,
        idempotency_ttl: Duration::from_secs(300),
        idempotency_keys: 100,
        numbering: Numbering::FromOne,
        presence: PresenceLimits {
            max_members: 3,
            max_events_per_second: 4,
            ttl: Duration::from_secs(30),
        },
    };
    (LocalHub::new(settings, inboxes.clone()), poll, inboxes)
}

fn publish(h: &LocalHub, text: &str) -> Receipt {
    h.publish("c", MessageKind::Text, text.as_bytes().into(), Instant::now())
        .unwrap()
}

#[test]
fn ids_start_at_one_and_count_subscribers() {
    let (h, _p, inboxes) = hub(10, 2);
    assert_eq!(
        publish(&h, "a"),
        Receipt {
            id: 1,
            subscribers: 0,
            duplicate: false
        }
    );
    let (a, _) = h.subscribe("c", 1, None, Instant::now()).unwrap();
    let (b, _) = h.subscribe("c", 1, None, Instant::now()).unwrap();
    assert_eq!(
        publish(&h, "b"),
        Receipt {
            id: 2,
            subscribers: 2,
            duplicate: false
        }
    );
    // Only the worker with subscribers gets it, once.
    assert!(inboxes[0].drain(Mail::default()).is_empty());
    let got = inboxes[1].drain(Mail::default()).messages;
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
    assert_eq!((a.channel().as_ref(), a.worker()), ("c", 1));
    h.unsubscribe(a);
    h.unsubscribe(b);
    assert_eq!(publish(&h, "c").subscribers, 0);
}

#[test]
fn snapshot_replays_after_since_and_reports_gaps() {
    let (h, _p, _i) = hub(3, 1);
    for i in 0..5 {
        publish(&h, &i.to_string());
    }
    // History holds 3, 4, 5.
    let s = h.history("c", Some(3), Instant::now()).unwrap();
    assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
    assert_eq!((s.gap, s.last_id), (None, 5));
    let s = h.history("c", Some(0), Instant::now()).unwrap();
    assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(s.gap, Some(Gap::trimmed(1, 2)));
    let s = h.history("c", Some(5), Instant::now()).unwrap();
    assert!(s.replay.is_empty() && s.gap.is_none());
    let s = h.history("c", None, Instant::now()).unwrap();
    assert!(s.replay.is_empty() && s.gap.is_none() && s.last_id == 5);
    // Unknown channel: empty, and not created by looking.
    assert_eq!(h.history("other", Some(0), Instant::now()).unwrap().last_id, 0);
    assert_eq!(h.channels(), 1);
}

#[test]
fn history_expires_by_age_and_idle_channels_are_swept() {
    let (mut h, _p, _i) = hub(10, 1);
    h.settings.history_ttl = Duration::from_millis(50);
    let t0 = Instant::now();
    h.publish("c", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
    let s = h.history("c", Some(0), t0 + Duration::from_millis(100)).unwrap();
    assert!(s.replay.is_empty());
    assert_eq!(s.gap, Some(Gap::trimmed(1, 1)));
    h.sweep(t0 + Duration::from_millis(100));
    assert_eq!(h.channels(), 0);
}

#[test]
fn a_forgotten_channel_keeps_its_last_id_within_bounds() {
    let (mut h, _p, _i) = hub(0, 1);
    h.settings.id_memory_channels = 2;
    h.settings.id_memory = Duration::from_secs(60);
    let t0 = Instant::now();
    for name in ["a", "a", "b", "c"] {
        h.publish(name, MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        // One sweep each, so they are forgotten in that order.
        h.sweep(t0);
    }
    assert_eq!((h.channels(), h.remembered()), (0, 2));
    // "a" was the oldest and is gone, but its last id (2) is the floor:
    // a cursor on it stays a cursor, and nothing is numbered 1 or 2 again.
    let s = h.history("a", Some(2), t0).unwrap();
    assert_eq!((s.last_id, s.gap), (2, None));
    let r = h.publish("a", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
    assert_eq!(r.id, 3);
    // A cursor from before the floor is a gap, not silence.
    let s = h.history("a", Some(1), t0).unwrap();
    assert_eq!(s.gap, Some(Gap::trimmed(2, 3)));
    // "c" goes on from 1, and is not remembered while it lives.
    assert_eq!(h.history("c", Some(1), t0).unwrap().gap, None);
    let r = h.publish("c", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
    assert_eq!((r.id, h.remembered()), (2, 1));
    // Forgotten again, then the memory's age runs out: the floor holds.
    h.sweep(t0);
    h.sweep(t0 + Duration::from_secs(61));
    assert_eq!(h.remembered(), 0);
    let r = h.publish("b", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
    assert_eq!(r.id, 4);
    // A name never seen starts after the floor too.
    let r = h.publish("new", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
    assert_eq!(r.id, 4);
}

#[test]
fn the_memory_stays_bounded_when_one_name_churns() {
    let (mut h, _p, _i) = hub(0, 1);
    h.settings.id_memory_channels = 4;
    let t0 = Instant::now();
    for i in 1..=100u64 {
        let r = h
            .publish("churn", MessageKind::Text, b"x".as_slice().into(), t0)
            .unwrap();
        assert_eq!(r.id, i);
        h.sweep(t0);
    }
    let retired = h.retired();
    assert!(retired.order.len() <= 4 && retired.last_ids.len() == 1);
}

#[test]
fn a_cursor_beyond_the_last_id_is_a_reset_gap() {
    let (h, _p, _i) = hub(10, 1);
    publish(&h, "a");
    publish(&h, "b");
    let (sub, s) = h.subscribe("c", 0, Some(7), Instant::now()).unwrap();
    h.unsubscribe(sub);
    assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        s.gap,
        Some(Gap {
            from: 1,
            to: 0,
            reset: true
        })
    );
    assert_eq!(s.last_id, 2);
    // The last id itself is a cursor we gave: nothing to tell.
    let (_, s) = h.subscribe("c", 0, Some(2), Instant::now()).unwrap();
    assert!(s.gap.is_none() && s.replay.is_empty());
    // An unknown channel, a cursor from a previous life.
    let s = h.history("fresh", Some(3), Instant::now()).unwrap();
    assert_eq!(
        s.gap,
        Some(Gap {
            from: 1,
            to: 0,
            reset: true
        })
    );
}

#[test]
fn a_key_publishes_once_and_keeps_an_otherwise_idle_channel() {
    let (mut h, _p, inboxes) = hub(0, 1);
    h.settings.idempotency_ttl = Duration::from_secs(60);
    let t0 = Instant::now();
    let (sub, _) = h.subscribe("c", 0, None, t0).unwrap();
    let send = |key, at| h.publish_once("c", MessageKind::Text, b"x".as_slice().into(), key, at);
    let first = send(Some("k"), t0).unwrap();
    assert_eq!((first.id, first.subscribers, first.duplicate), (1, 1, false));
    let again = send(Some("k"), t0 + Duration::from_secs(1)).unwrap();
    assert_eq!((again.id, again.subscribers, again.duplicate), (1, 1, true));
    assert_eq!(send(Some("other"), t0).unwrap().id, 2);
    assert_eq!(send(None, t0).unwrap().id, 3);
    let got = inboxes[0].drain(Mail::default()).messages;
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        [1, 2, 3],
        "the retry published nothing"
    );
    // No history, no subscriber: the keys alone keep the channel.
    h.unsubscribe(sub);
    h.sweep(t0 + Duration::from_secs(2));
    assert_eq!(h.channels(), 1);
    assert!(send(Some("k"), t0 + Duration::from_secs(3)).unwrap().duplicate);
    h.sweep(t0 + Duration::from_secs(61));
    assert_eq!(h.channels(), 0);
}

#[test]
fn a_new_hub_numbers_after_the_clock_and_a_cursor_from_before_it_is_a_reset() {
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let (old, _p, _i) = hub(10, 1);
    let settings = HubSettings {
        numbering: Numbering::AfterClock,
        ..old.settings.clone()
    };
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    let before = now_us();
    let h = LocalHub::new(settings, Arc::from([Inbox::new(waker)]));
    let first = h
        .publish("c", MessageKind::Text, b"x".as_slice().into(), Instant::now())
        .unwrap();
    assert!(
        first.id > before && first.id <= now_us() + 1,
        "{} after {before}",
        first.id
    );
    // A client back from an earlier process with cursor 4, below this
    // numbering: told, and given the history.
    let (sub, s) = h.subscribe("c", 0, Some(4), Instant::now()).unwrap();
    h.unsubscribe(sub);
    assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
    assert_eq!(
        s.gap,
        Some(Gap {
            from: first.id,
            to: first.id - 1,
            reset: true
        })
    );
    assert_eq!((s.epoch_start, s.replay[0].epoch_start), (first.id - 1, first.id - 1));
    // Holding nothing is no reset.
    let s = h.history("c", Some(0), Instant::now()).unwrap();
    assert!(s.gap.is_none() && s.replay.len() == 1);
}

#[test]
fn channel_limit_refuses_new_channels() {
    let (mut h, _p, _i) = hub(10, 1);
    h.settings.max_channels = 1;
    publish(&h, "a");
    let err = h.publish("d", MessageKind::Text, b"x".as_slice().into(), Instant::now());
    assert_eq!(err, Err(HubError::TooManyChannels));
    assert!(h.subscribe("d", 0, None, Instant::now()).is_err());
    assert_eq!(publish(&h, "b").id, 2);
}

#[test]
fn submit_answers_through_the_inbox_of_the_asking_worker() {
    let (h, _p, inboxes) = hub(10, 2);
    let from = Address {
        worker: 1,
        key: 7,
        generation: 3,
    };
    let subscribe = Request::subscribe("c", Some(0));
    publish(&h, "before");
    h.submit(from, subscribe, Instant::now());
    let publish = Request::Publish {
        channel: "c".into(),
        kind: MessageKind::Text,
        payload: b"after".as_slice().into(),
        idempotency_key: None,
    };
    h.submit(from, publish, Instant::now());
    assert!(inboxes[0].drain(Mail::default()).is_empty());
    let mail = inboxes[1].drain(Mail::default());
    let [(to_sub, Answer::Subscribed(Ok((sub, snapshot)))), (to_pub, Answer::Published(Ok(receipt)))] =
        <[_; 2]>::try_from(mail.answers).unwrap()
    else {
        panic!("a subscribe and a publish answer, in order");
    };
    assert_eq!((to_sub, to_pub), (from, from));
    assert_eq!(snapshot.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
    assert_eq!(snapshot.last_id, 1);
    assert_eq!(
        receipt,
        Receipt {
            id: 2,
            subscribers: 1,
            duplicate: false
        }
    );
    assert_eq!(mail.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
    h.unsubscribe(sub);
    assert_eq!(self::publish(&h, "gone").subscribers, 0);
}

fn who(user: &str) -> Option<Box<Presence>> {
    Some(Box::new(Presence {
        user: Some(user.into()),
        info: None,
    }))
}

#[test]
fn members_come_and_go_with_their_subscriptions_within_the_bound() {
    // At most 3 members, 4 events a second.
    let (h, _p, inboxes) = hub(10, 2);
    let now = Instant::now();
    let (a, _) = h.subscribe_present("room", 0, None, who("ann"), Via::Sse, now).unwrap();
    let (b, _) = h.subscribe_present("room", 1, None, who("ann"), Via::Sse, now).unwrap();
    let (c, _) = h.subscribe_present("room", 1, None, who("bob"), Via::Sse, now).unwrap();
    // Not a member: counted as a subscriber only.
    let (plain, _) = h.subscribe("room", 0, None, now).unwrap();
    assert_eq!(plain.client(), None);
    // The fourth member is refused, and nothing was done.
    assert_eq!(
        h.subscribe_present("room", 0, None, who("cy"), Via::Sse, now)
            .unwrap_err(),
        HubError::PresenceFull
    );
    let members = |h: &LocalHub| match h.query(&Query::Presence("room".into()), now) {
        Found::Presence(m) => m,
        other => panic!("{other:?}"),
    };
    let found = members(&h);
    assert_eq!(found.len(), 3);
    assert_eq!(
        found
            .iter()
            .map(|m| m.presence.user.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["ann", "ann", "bob"]
    );
    assert_eq!(
        h.query(&Query::PresenceStats("room".into()), now),
        Found::PresenceStats(PresenceStats { clients: 3, users: 2 })
    );
    match h.query(&Query::Channel("room".into()), now) {
        // Three by event stream, one by WebSocket.
        Found::Channel(Some(state)) => assert_eq!((state.subscribers, state.by_via), (4, [1, 3, 0])),
        other => panic!("{other:?}"),
    }
    // Every worker with subscribers heard each join (worker 1 only of
    // the ones after it had any).
    let events = |i: usize| -> Vec<String> {
        inboxes[i]
            .drain(Mail::default())
            .messages
            .iter()
            .map(|m| {
                assert_eq!((m.id, m.event.is_some()), (0, true));
                String::from_utf8(m.payload().to_vec()).unwrap()
            })
            .collect()
    };
    assert_eq!(events(0).len(), 3);
    assert_eq!(events(1).len(), 2);
    h.unsubscribe(b);
    let left = events(0);
    assert_eq!(left.len(), 1);
    assert!(
        left[0].contains("\"leave\":{\"client\":\"2\",\"user\":\"ann\"}"),
        "{left:?}"
    );
    assert_eq!(members(&h).len(), 2);
    // Room again: a new member, with a new client id.
    let (d, _) = h.subscribe_present("room", 0, None, who("dan"), Via::Sse, now).unwrap();
    assert!(d.client() > c.client());
    // Three joins, a leave and a join: five events, each sent or dropped.
    let counted = h.presence_events();
    assert_eq!(counted.sent + counted.dropped, 5);
    for sub in [a, c, d, plain] {
        h.unsubscribe(sub);
    }
    assert!(members(&h).is_empty());
    // A channel that never had a member: none, and no channel made.
    assert!(matches!(h.query(&Query::Presence("none".into()), now), Found::Presence(m) if m.is_empty()));
    assert_eq!(h.channels(), 1);
}

#[test]
fn join_and_leave_events_past_the_limit_are_dropped_and_counted() {
    let (h, _p, inboxes) = hub(10, 1);
    let now = Instant::now();
    // A watcher, then 3 members leaving and joining again: 1 + 3 + 3 + 3
    // events asked for within well under a second.
    let (watcher, _) = h.subscribe("room", 0, None, now).unwrap();
    let started = Instant::now();
    let mut subs: Vec<Subscription> = (0..3)
        .map(|_| h.subscribe_present("room", 0, None, who("u"), Via::Sse, now).unwrap().0)
        .collect();
    for _ in 0..3 {
        for sub in std::mem::take(&mut subs) {
            h.unsubscribe(sub);
            subs.push(h.subscribe_present("room", 0, None, who("u"), Via::Sse, now).unwrap().0);
        }
    }
    let quick = started.elapsed() < Duration::from_millis(500);
    let delivered = inboxes[0].drain(Mail::default()).messages.len();
    let counted = h.presence_events();
    assert_eq!(counted.sent + counted.dropped, 3 + 3 * 6);
    assert_eq!(counted.sent as usize, delivered);
    if quick {
        // One second, or two if it crossed a second's end: 4 a second.
        assert!(delivered <= 8, "{delivered} events");
        assert!(counted.dropped >= 13, "{counted:?}");
    }
    h.unsubscribe(watcher);
}
