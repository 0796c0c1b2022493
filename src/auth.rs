//! Subscriber tokens: which channels are private, and whether a JWT
//! (RFC 7519) grants one of them.
//!
//! A channel whose name matches one of the private patterns can be
//! subscribed (on any transport) or published to by JWT only with a token
//! signed by the configured HS256 secret (RFC 7518 §3.2), whose `exp` is
//! in the future and whose `channel` names it (or whose `channels` list
//! has it, a name or a pattern). The signature is checked by the
//! `jsonwebtoken` crate; the time is the caller's (this module reads no
//! clock), so the session stays testable with made-up time. Without a
//! secret no token is good: a missing secret never opens a private channel.
//!
//! The JOSE header (RFC 7515 §4) is read here before the crate sees it, for
//! what the crate does not check: `alg` (HS256 only, never `none`), and
//! `crit` (§4.1.11), which lists extensions the recipient MUST understand
//! or refuse the token: this server understands none, so a header with
//! `crit` in it, whatever its value, is refused.

use crate::protocol::http::RequestHead;
use crate::protocol::CloseCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::fmt;

/// The environment variable the token secret may come from.
pub const SECRET_VAR: &str = "WSREACTOR_AUTH_SECRET";

/// The close code of a WebSocket subscriber whose token expired: 4001,
/// from the private-use range (RFC 6455 §7.4.2). Get a new token and
/// reconnect with it.
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);

/// The claims this server reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    /// Expiry (RFC 7519 §4.1.4), a NumericDate: seconds, maybe fractional.
    exp: Option<f64>,
    /// Not before (§4.1.5).
    nbf: Option<f64>,
    /// The one channel granted.
    channel: Option<String>,
    /// Channels granted: names or patterns (`news-*`).
    channels: Option<Vec<String>>,
    /// Space-separated scopes (RFC 8693 §4.2): `pub` allows publishing.
    scope: Option<String>,
    /// Subject (RFC 7519 §4.1.2): the user, whom the server API can
    /// disconnect.
    sub: Option<String>,
    /// What the application tells about the user (any JSON): shown with
    /// it in a channel's presence.
    info: Option<Box<serde_json::value::RawValue>>,
}

/// Who a good token says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Its `sub`.
    pub user: Option<String>,
    /// Its `info` claim, as JSON text (at most [`MAX_INFO`] bytes: a
    /// larger one is not kept).
    pub info: Option<String>,
}

/// The largest `info` claim kept for presence: every member of a channel
/// holds its own, so that a channel's presence stays bounded.
pub const MAX_INFO: usize = 1024;

/// What a good token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The token's expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused; each is a 403 with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The channel is private and no secret is configured.
    NoSecret,
    /// No token came with the request.
    Missing,
    /// Not three base64url parts of JSON.
    Malformed,
    /// Signed (or not signed) with an algorithm other than HS256.
    Algorithm(String),
    /// The header has `crit`: extensions this server does not understand.
    Critical,
    /// The signature does not match the secret.
    BadSignature,
    /// No `exp` claim: a token must end.
    NoExpiry,
    /// `exp` is past.
    Expired,
    /// `nbf` is still to come.
    NotYet,
    /// Neither `channel` nor `channels` grants this channel.
    WrongChannel,
    /// A publish with a token that has no `pub` scope.
    NoPublishScope,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NoSecret => f.write_str("this channel is private and the server has no token secret"),
            Denied::Missing => f.write_str("this channel is private: send a token as ?token= or Authorization: Bearer"),
            Denied::Malformed => f.write_str("the token is not a JWT"),
            Denied::Algorithm(alg) => write!(f, "the token's algorithm {alg:?} is not accepted (HS256 only)"),
            Denied::Critical => f.write_str(
                "the token's header lists critical extensions (crit), which this server does not understand (RFC 7515 §4.1.11)",
            ),
            Denied::BadSignature => f.write_str("the token's signature is wrong"),
            Denied::NoExpiry => f.write_str("the token has no exp"),
            Denied::Expired => f.write_str("the token expired"),
            Denied::NotYet => f.write_str("the token is not valid yet (nbf)"),
            Denied::WrongChannel => f.write_str("the token does not grant this channel"),
            Denied::NoPublishScope => f.write_str("the token has no pub scope"),
        }
    }
}

/// The secret as the verifier holds it; never shown.
#[derive(Clone)]
struct Secret {
    key: DecodingKey,
    bytes: Vec<u8>,
}

/// Private channels and the key that opens them.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    /// Glob patterns (`*` for any run of characters) of private channels.
    private: Vec<String>,
    secret: Option<Secret>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Secret {}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("private", &self.private)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Auth {
    /// Channels matching `private` need a token signed with `secret`
    /// (empty: none, so they cannot be opened).
    pub fn new(private: Vec<String>, secret: &[u8]) -> Auth {
        let secret = (!secret.is_empty()).then(|| Secret {
            key: DecodingKey::from_secret(secret),
            bytes: secret.to_vec(),
        });
        Auth { private, secret }
    }

    /// Does `channel` need a token?
    pub fn is_private(&self, channel: &str) -> bool {
        self.private.iter().any(|p| glob_match(p, channel))
    }

    /// May `token` (if any) subscribe to `channel` at `now` (Unix seconds)?
    /// `Ok(None)`: the channel is public; `Ok(Some(grant))`: private, and
    /// the token grants it until `grant.exp`.
    pub fn subscribe(&self, token: Option<&[u8]>, channel: &str, now: u64) -> Result<Option<Grant>, Denied> {
        if !self.is_private(channel) {
            return Ok(None);
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(Denied::Missing)?;
        self.verify(token, channel, now).map(|(grant, _)| Some(grant))
    }

    /// May `token` publish to `channel` at `now`? It needs the `pub` scope
    /// and a grant of the channel, private or not.
    pub fn publish(&self, token: &[u8], channel: &str, now: u64) -> Result<Grant, Denied> {
        let (grant, claims) = self.verify(token, channel, now)?;
        let scoped = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == "pub"));
        if scoped {
            Ok(grant)
        } else {
            Err(Denied::NoPublishScope)
        }
    }

    /// The user a good token names (its `sub`), whatever it grants;
    /// `Ok(None)` for a good token without one.
    pub fn user(&self, token: &[u8], now: u64) -> Result<Option<String>, Denied> {
        self.verify_token(token, now).map(|(_, claims)| claims.sub)
    }

    /// The user a good token names and its `info` claim, whatever it grants.
    pub fn identity(&self, token: &[u8], now: u64) -> Result<Identity, Denied> {
        self.verify_token(token, now).map(|(_, claims)| Identity {
            user: claims.sub,
            // Written again, compact: the token's own spacing (line
            // breaks included) would break an event stream's `data:` line.
            info: claims
                .info
                .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
                .map(|value| value.to_string())
                .filter(|info| info.len() <= MAX_INFO),
        })
    }

    /// Check the signature, the times and the channel.
    fn verify(&self, token: &[u8], channel: &str, now: u64) -> Result<(Grant, Claims), Denied> {
        let (grant, claims) = self.verify_token(token, now)?;
        let granted = claims.channel.as_deref() == Some(channel)
            || claims.channels.iter().flatten().any(|p| glob_match(p, channel));
        if !granted {
            return Err(Denied::WrongChannel);
        }
        Ok((grant, claims))
    }

    /// Check the signature and the times.
    fn verify_token(&self, token: &[u8], now: u64) -> Result<(Grant, Claims), Denied> {
        let secret = self.secret.as_ref().ok_or(Denied::NoSecret)?;
        let token = std::str::from_utf8(token).map_err(|_| Denied::Malformed)?;
        // The header is read first: for the refusal's reason (the crate
        // knows no `none` and would call that token malformed), and for
        // `crit`, which the crate ignores.
        let header = JoseHeader::of(token).ok_or(Denied::Malformed)?;
        let alg = header.alg;
        if alg != "HS256" {
            return Err(Denied::Algorithm(alg));
        }
        // RFC 7515 §4.1.11: an extension listed in `crit` that the recipient
        // does not understand makes the JWS invalid; none is understood
        // here, and an empty or malformed `crit` is no better (the producer
        // MUST NOT send one).
        if header.crit {
            return Err(Denied::Critical);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Times are checked below against the caller's clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &secret.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => Denied::BadSignature,
                ErrorKind::InvalidAlgorithm => Denied::Algorithm(alg.clone()),
                _ => Denied::Malformed,
            }
        })?;
        let claims = data.claims;
        let exp = claims.exp.filter(|e| e.is_finite()).ok_or(Denied::NoExpiry)?;
        // RFC 7519 §4.1.4: the token MUST NOT be accepted on or after exp.
        if exp <= now as f64 {
            return Err(Denied::Expired);
        }
        if claims.nbf.is_some_and(|nbf| !nbf.is_finite() || nbf > now as f64) {
            return Err(Denied::NotYet);
        }
        // Far-future expiries are clamped to what a u64 holds.
        let exp = exp.min(u64::MAX as f64) as u64;
        Ok((Grant { exp }, claims))
    }
}

/// What this module reads of a JWS's protected header (RFC 7515 §4).
struct JoseHeader {
    /// `alg` (§4.1.1).
    alg: String,
    /// Whether `crit` (§4.1.11) is there, with any value (`null` too).
    crit: bool,
}

impl JoseHeader {
    /// The header of a compact JWS (three dot-separated parts), if it is
    /// base64url of a JSON object with a string `alg`.
    fn of(token: &str) -> Option<JoseHeader> {
        use base64::Engine;
        let (header, rest) = token.split_once('.')?;
        rest.split_once('.')?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
        let map = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()?;
        Some(JoseHeader {
            alg: map.get("alg")?.as_str()?.to_owned(),
            crit: map.contains_key("crit"),
        })
    }
}

/// The token a request carries: `?token=` (all a browser's WebSocket and
/// EventSource can send), else `Authorization: Bearer` (RFC 6750 §2.1).
pub fn request_token<'b>(head: &RequestHead<'b, '_>) -> Option<&'b [u8]> {
    let query = head.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::as_bytes)
    });
    query.or_else(|| bearer(head))
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub fn bearer<'b>(head: &RequestHead<'b, '_>) -> Option<&'b [u8]> {
    let value = head.single("authorization").ok().flatten()?.trim_ascii();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme.eq_ignore_ascii_case(b"bearer").then(|| token.trim_ascii())
}

/// Does `name` match `pattern`, where `*` stands for any run of characters
/// (none included) and everything else for itself?
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and where in the name its run ends so far.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the star take one more character and try again.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&b| b == b'*')
}

/// Is `pattern` a channel name with `*`s in it?
pub fn valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 128
        && pattern
            .bytes()
            .all(|b| b == b'*' || b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a test secret of thirty-two bytes";
    const NOW: u64 = 1_800_000_000;

    fn auth() -> Auth {
        Auth::new(vec!["private-*".into()], SECRET)
    }

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob_match("private-*", "private-a"));
        assert!(glob_match("private-*", "private-"));
        assert!(!glob_match("private-*", "privat"));
        assert!(!glob_match("private-*", "xprivate-a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*-room", "chat-room"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(valid_pattern("private-*"));
        assert!(!valid_pattern("private/*"));
        assert!(!valid_pattern(""));
    }

    #[test]
    fn public_channels_need_nothing() {
        assert_eq!(auth().subscribe(None, "news", NOW), Ok(None));
        assert_eq!(auth().subscribe(Some(b"junk"), "news", NOW), Ok(None));
    }

    #[test]
    fn a_good_token_grants_its_channel_until_exp() {
        let t = token(json!({"exp": NOW + 60, "channel": "private-a"}));
        let got = auth().subscribe(Some(t.as_bytes()), "private-a", NOW);
        assert_eq!(got, Ok(Some(Grant { exp: NOW + 60 })));
        let t = token(json!({"exp": NOW + 60, "channels": ["private-x", "private-a*"]}));
        assert!(auth().subscribe(Some(t.as_bytes()), "private-abc", NOW).is_ok());
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let a = auth();
        let sub = |t: &str| a.subscribe(Some(t.as_bytes()), "private-a", NOW);
        assert_eq!(a.subscribe(None, "private-a", NOW), Err(Denied::Missing));
        assert_eq!(sub("not a token"), Err(Denied::Malformed));
        let wrong = encode(
            &Header::default(),
            &json!({"exp": NOW + 60, "channel": "private-a"}),
            &EncodingKey::from_secret(b"another secret"),
        )
        .unwrap();
        assert_eq!(sub(&wrong), Err(Denied::BadSignature));
        assert_eq!(sub(&token(json!({"channel": "private-a"}))), Err(Denied::NoExpiry));
        assert_eq!(
            sub(&token(json!({"exp": NOW, "channel": "private-a"}))),
            Err(Denied::Expired)
        );
        assert_eq!(
            sub(&token(json!({"exp": NOW + 9, "nbf": NOW + 5, "channel": "private-a"}))),
            Err(Denied::NotYet)
        );
        assert_eq!(
            sub(&token(json!({"exp": NOW + 9, "channel": "private-b"}))),
            Err(Denied::WrongChannel)
        );
        assert_eq!(sub(&token(json!({"exp": NOW + 9}))), Err(Denied::WrongChannel));
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"exp": NOW + 60, "channel": "private-a"}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(sub(&hs512), Err(Denied::Algorithm("HS512".into())));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(json!({"exp": NOW + 60, "channel": "private-a"}).to_string());
        for t in [format!("{header}.{claims}."), format!("{header}.{claims}.c2ln")] {
            assert_eq!(
                auth().subscribe(Some(t.as_bytes()), "private-a", NOW),
                Err(Denied::Algorithm("none".into()))
            );
        }
        // Nor is a token whose header claims HS256 but carries no signature.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let t = format!("{header}.{claims}.");
        assert_eq!(
            auth().subscribe(Some(t.as_bytes()), "private-a", NOW),
            Err(Denied::BadSignature)
        );
    }

    /// A token whose payload is `payload` as written, signed.
    fn token_of_text(payload: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = EncodingKey::from_secret(SECRET);
        let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{signed}.{signature}")
    }

    #[test]
    fn the_info_claim_is_kept_compact_and_bounded() {
        // Line breaks in the token's JSON would end an event stream's
        // data line: the claim is written again, compact.
        let t = token_of_text(&format!(
            "{{\"exp\": {},\n \"sub\": \"ann\",\n \"info\": {{\n  \"name\": \"Ann\"\r\n}}}}",
            NOW + 60
        ));
        let id = auth().identity(t.as_bytes(), NOW).unwrap();
        assert_eq!(
            (id.user.as_deref(), id.info.as_deref()),
            (Some("ann"), Some(r#"{"name":"Ann"}"#))
        );
        let big = token(json!({"exp": NOW + 60, "sub": "bob", "info": "x".repeat(MAX_INFO)}));
        let id = auth().identity(big.as_bytes(), NOW).unwrap();
        assert_eq!((id.user.as_deref(), id.info), (Some("bob"), None));
        let none = token(json!({"exp": NOW + 60}));
        assert_eq!(auth().identity(none.as_bytes(), NOW), Ok(Identity::default()));
    }

    /// A token with the header `header` (JSON), signed with the secret.
    fn token_with_header(header: &str, claims: serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = EncodingKey::from_secret(SECRET);
        let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{signed}.{signature}")
    }

    #[test]
    fn a_header_with_crit_is_refused_whatever_it_lists() {
        let claims = json!({"exp": NOW + 60, "channels": ["*"], "scope": "pub"});
        let good = token_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, claims.clone());
        assert!(auth().subscribe(Some(good.as_bytes()), "private-a", NOW).is_ok());
        for crit in [
            r#""crit":["x-unknown"],"x-unknown":true"#,
            r#""crit":["b64"],"b64":false"#,
            r#""crit":["exp"]"#,
            r#""crit":[]"#,
            r#""crit":"x-unknown""#,
            r#""crit":null"#,
        ] {
            let t = token_with_header(&format!(r#"{{"alg":"HS256","typ":"JWT",{crit}}}"#), claims.clone());
            assert_eq!(
                auth().subscribe(Some(t.as_bytes()), "private-a", NOW),
                Err(Denied::Critical),
                "{crit}"
            );
            assert_eq!(
                auth().publish(t.as_bytes(), "news", NOW),
                Err(Denied::Critical),
                "{crit}"
            );
        }
    }

    #[test]
    fn without_a_secret_no_private_channel_opens() {
        let a = Auth::new(vec!["private-*".into()], b"");
        let t = token(json!({"exp": NOW + 60, "channel": "private-a"}));
        assert_eq!(a.subscribe(Some(t.as_bytes()), "private-a", NOW), Err(Denied::NoSecret));
        assert_eq!(a.subscribe(None, "news", NOW), Ok(None));
        assert!(!format!("{:?}", auth()).contains("thirty"));
    }

    #[test]
    fn publishing_needs_the_pub_scope() {
        let t = token(json!({"exp": NOW + 60, "channel": "news"}));
        assert_eq!(auth().publish(t.as_bytes(), "news", NOW), Err(Denied::NoPublishScope));
        let t = token(json!({"exp": NOW + 60, "channels": ["*"], "scope": "sub pub"}));
        assert_eq!(auth().publish(t.as_bytes(), "news", NOW), Ok(Grant { exp: NOW + 60 }));
    }

    #[test]
    fn a_good_token_names_its_user_whatever_it_grants() {
        let t = token(json!({"exp": NOW + 60, "sub": "ada"}));
        assert_eq!(auth().user(t.as_bytes(), NOW), Ok(Some("ada".to_owned())));
        let t = token(json!({"exp": NOW + 60, "channel": "x"}));
        assert_eq!(auth().user(t.as_bytes(), NOW), Ok(None));
        let t = token(json!({"exp": NOW, "sub": "ada"}));
        assert_eq!(auth().user(t.as_bytes(), NOW), Err(Denied::Expired));
        assert_eq!(auth().user(b"junk", NOW), Err(Denied::Malformed));
    }
}
