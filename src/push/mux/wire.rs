//! The `wsreactor.mux` wire: commands as the client writes them, and the
//! server's replies and notices, as JSON text ([`super`] says what each
//! means).

use crate::pubsub::message::push_json_string;
use serde::Deserialize;

/// A command, as the client wrote it; exactly one verb.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Command {
    /// Read before the command is (its reply needs it even when the rest
    /// is wrong); named here so that it is not an unknown field.
    #[serde(rename = "id")]
    _id: serde::de::IgnoredAny,
    subscribe: Option<String>,
    unsubscribe: Option<String>,
    publish: Option<String>,
    refresh: Option<String>,
    presence: Option<String>,
    presence_stats: Option<String>,
    since: Option<u64>,
    token: Option<String>,
    data: Option<serde_json::Value>,
    join_leave: Option<bool>,
}

/// What a command asks, checked for shape.
pub(super) enum Verb {
    Subscribe {
        channel: String,
        since: Option<u64>,
        token: Option<String>,
        join_leave: bool,
    },
    Unsubscribe(String),
    Publish {
        channel: String,
        data: serde_json::Value,
        token: Option<String>,
    },
    Refresh(String),
    /// A channel's members (`stats`: counted).
    Presence {
        channel: String,
        stats: bool,
    },
}

impl Command {
    /// The verb, or why the command is not one.
    pub(super) fn verb(self) -> Result<Verb, &'static str> {
        let verbs = [
            &self.subscribe,
            &self.unsubscribe,
            &self.publish,
            &self.refresh,
            &self.presence,
            &self.presence_stats,
        ];
        if verbs.iter().filter(|v| v.is_some()).count() != 1 {
            return Err(
                "a command has exactly one of subscribe, unsubscribe, publish, refresh, presence, presence_stats",
            );
        }
        let extra = |allowed: bool| if allowed { Ok(()) } else { Err(()) };
        let (since, tokened, data) = (self.since.is_some(), self.token.is_some(), self.data.is_some());
        let joins = self.join_leave.is_some();
        let verb = if let Some(channel) = self.subscribe {
            extra(!data).map(|()| Verb::Subscribe {
                channel,
                since: self.since,
                token: self.token,
                join_leave: self.join_leave == Some(true),
            })
        } else if let Some(channel) = self.unsubscribe {
            extra(!since && !tokened && !data && !joins).map(|()| Verb::Unsubscribe(channel))
        } else if let Some(channel) = self.publish {
            let data = self.data.ok_or("publish needs data")?;
            extra(!since && !joins).map(|()| Verb::Publish {
                channel,
                data,
                token: self.token,
            })
        } else if let Some(token) = self.refresh {
            extra(!since && !tokened && !data && !joins).map(|()| Verb::Refresh(token))
        } else if let Some(channel) = self.presence.or(self.presence_stats.clone()) {
            let stats = self.presence_stats.is_some();
            extra(!since && !tokened && !data && !joins).map(|()| Verb::Presence { channel, stats })
        } else {
            Err(())
        };
        verb.map_err(|()| {
            "a field this command does not take: since, token and join_leave go with subscribe, data and token with publish"
        })
    }
}

/// `{"reply":ID,"ok":true}` with `extra` members (`,"k":v` each).
pub(super) fn ok(id: u64, extra: &str) -> String {
    format!("{{\"reply\":{id},\"ok\":true{extra}}}")
}

/// `{"reply":ID,"error":"why"}`; a `null` reply for a command without a
/// readable id.
pub(super) fn refused(id: Option<u64>, why: &str) -> String {
    let mut s = match id {
        Some(id) => format!("{{\"reply\":{id},\"error\":"),
        None => "{\"reply\":null,\"error\":".to_owned(),
    };
    push_json_string(why, &mut s);
    s.push('}');
    s
}

/// `{"channel":C,"unsubscribed":WHY}`: the server ended a subscription.
pub(super) fn notice(channel: &str, why: &str) -> String {
    let mut s = String::from("{\"channel\":");
    push_json_string(channel, &mut s);
    s.push_str(",\"unsubscribed\":");
    push_json_string(why, &mut s);
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(json: &str) -> Result<Verb, &'static str> {
        serde_json::from_str::<Command>(json).unwrap().verb()
    }

    #[test]
    fn a_command_has_one_verb_and_only_its_fields() {
        assert!(matches!(
            verb(r#"{"id":1,"subscribe":"a","since":4,"token":"t"}"#),
            Ok(Verb::Subscribe { since: Some(4), .. })
        ));
        assert!(matches!(
            verb(r#"{"id":1,"unsubscribe":"a"}"#),
            Ok(Verb::Unsubscribe(_))
        ));
        assert!(matches!(
            verb(r#"{"id":1,"publish":"a","data":{"x":1}}"#),
            Ok(Verb::Publish { .. })
        ));
        assert!(matches!(verb(r#"{"id":1,"refresh":"t"}"#), Ok(Verb::Refresh(_))));
        assert!(verb(r#"{"id":1}"#).is_err());
        assert!(verb(r#"{"id":1,"subscribe":"a","unsubscribe":"b"}"#).is_err());
        assert!(verb(r#"{"id":1,"unsubscribe":"a","since":3}"#).is_err());
        assert!(verb(r#"{"id":1,"subscribe":"a","data":3}"#).is_err());
        assert_eq!(verb(r#"{"id":1,"publish":"a"}"#).err(), Some("publish needs data"));
        assert!(serde_json::from_str::<Command>(r#"{"id":1,"join":"a"}"#).is_err());
    }

    #[test]
    fn replies_are_json() {
        let v: serde_json::Value = serde_json::from_str(&refused(Some(3), "a \"quoted\" why")).unwrap();
        assert_eq!(v, serde_json::json!({"reply": 3, "error": "a \"quoted\" why"}));
        let v: serde_json::Value = serde_json::from_str(&refused(None, "x")).unwrap();
        assert_eq!(v, serde_json::json!({"reply": null, "error": "x"}));
        let v: serde_json::Value = serde_json::from_str(&ok(9, ",\"message_id\":4")).unwrap();
        assert_eq!(v, serde_json::json!({"reply": 9, "ok": true, "message_id": 4}));
    }
}
