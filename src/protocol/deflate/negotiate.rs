//! The permessage-deflate offer and response (RFC 7692 §5, §7.1), server side.
//!
//! [`negotiate`] reads the client's `Sec-WebSocket-Extensions` header values,
//! takes the first acceptable `permessage-deflate` offer and returns the
//! agreed [`DeflateParams`]; [`DeflateParams::response_header`] is the value to
//! answer with. Nothing here can fail the handshake: RFC 7692 only ever tells
//! a server to *decline* an offer it cannot take (§5.1, §7), so an unusable
//! offer is skipped and, when none is left, the connection goes on without
//! compression (`None`).

use std::borrow::Cow;

/// The extension token (§7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Largest LZ77 window (32 KiB) and the default of both window parameters.
pub const MAX_WINDOW_BITS: u8 = 15;

/// Smallest window our compressor can use: zlib refuses a raw deflate stream
/// with an 8-bit window (it would silently use 9 with a zlib header), so 8 is
/// never promised for our side (§7.1.2.1 lets a server decline what it cannot do).
pub const MIN_SERVER_WINDOW_BITS: u8 = 9;

/// Smallest window the RFC allows (§7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;

/// What the server is willing to agree to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Accept permessage-deflate at all. Default `true`.
    pub enabled: bool,
    /// Largest window our compressor uses, 9..=15 (out-of-range values are
    /// clamped). Below 15 it is announced in every response. Default 15.
    pub server_max_window_bits: u8,
    /// Largest window we ask the client to compress with, 8..=15 (clamped).
    /// Only sent when the client offered `client_max_window_bits` (§7.1.2.2
    /// forbids it otherwise); a client that did not offer it may use 15, and
    /// we still accept it. Default 15.
    pub client_max_window_bits: u8,
    /// Reset our compressor after every message: costs ratio, and frees the
    /// compressor between messages. Default `false`.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message, which lets
    /// us free our decompressor between messages. Default `false`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed; applied by the frame
    /// writer, not by the codec. Default 64 bytes.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_size: 64,
        }
    }
}

/// The agreed parameters, exactly as they appear in the response (§7.1).
///
/// A window field is `None` when the response leaves it out, which means 15
/// (see [`Self::server_window_bits`], [`Self::client_window_bits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParams {
    /// The server resets its compressor after each message (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`: the server compresses with at most 2^N bytes of window (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits=N`: the client compresses with at most 2^N bytes of window (§7.1.2.2).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// Window bits the server compresses with.
    pub fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// Window bits the client compresses with.
    pub fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// The `Sec-WebSocket-Extensions` response value: one parameter set,
    /// parameters in a fixed order.
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={bits}"));
        }
        s
    }
}

/// Pick the first acceptable permessage-deflate offer (§5.1: offers are in
/// the client's order of preference) from the `Sec-WebSocket-Extensions`
/// header values, in the order they arrived.
///
/// Returns `None` (decline: no compression) when compression is disabled or
/// no offer is acceptable. An offer is declined (§7) when it has an unknown
/// parameter, a parameter twice, or an invalid value, or when it asks for
/// `server_max_window_bits=8`, which our compressor cannot honour. A header
/// value that breaks the §9.1 grammar contributes no offers at all, since its
/// element boundaries cannot be trusted. Other extensions are ignored.
pub fn negotiate(offers: &[&str], config: &DeflateConfig) -> Option<DeflateParams> {
    if !config.enabled {
        return None;
    }
    offers
        .iter()
        .filter_map(|value| parse_extensions(value))
        .flatten()
        .filter(|ext| ext.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|ext| accept(&ext.params, config))
}

/// Decide one offer.
fn accept(params: &[Param<'_>], config: &DeflateConfig) -> Option<DeflateParams> {
    let offer = Offer::parse(params)?;
    let server_cap = config
        .server_max_window_bits
        .clamp(MIN_SERVER_WINDOW_BITS, MAX_WINDOW_BITS);
    let client_cap = config.client_max_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);

    // §7.1.2.1: the response carries server_max_window_bits with the same or
    // a smaller value than offered; a server may also announce it unasked.
    let server_bits = offer.server_max_window_bits.map_or(server_cap, |n| n.min(server_cap));
    if server_bits < MIN_SERVER_WINDOW_BITS {
        // The client asked for 8. Answering 9 would break the rule above.
        return None;
    }
    let server_max_window_bits =
        (offer.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS).then_some(server_bits);

    // §7.1.2.2: without the parameter in the offer the response MUST NOT
    // carry it, and the client may use 15. With it, we may name a value no
    // larger than the client's.
    let client_max_window_bits = match offer.client_max_window_bits {
        None => None,
        Some(offered) => {
            let bits = offered.unwrap_or(MAX_WINDOW_BITS).min(client_cap);
            (bits < MAX_WINDOW_BITS).then_some(bits)
        }
    };

    Some(DeflateParams {
        // §7.1.1.1: an offered server_no_context_takeover is accepted by echoing it.
        server_no_context_takeover: offer.server_no_context_takeover || config.server_no_context_takeover,
        // §7.1.1.2: the server may always add it; echoing the client's hint
        // tells our decompressor it may drop its state after each message.
        client_no_context_takeover: offer.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    })
}

/// The parameters of one permessage-deflate offer, validated (§7.1).
#[derive(Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// `None` when §7 says to decline: an unknown parameter, a repeated one,
    /// or an invalid value.
    fn parse(params: &[Param<'_>]) -> Option<Offer> {
        let mut offer = Offer::default();
        let mut seen = [false; 4];
        for param in params {
            let slot = match param.name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return None,
            };
            if std::mem::replace(&mut seen[slot], true) {
                return None;
            }
            let value = param.value.as_deref();
            match (slot, value) {
                // §7.1.1: the no_context_takeover parameters have no value.
                (0, None) => offer.server_no_context_takeover = true,
                (1, None) => offer.client_no_context_takeover = true,
                // §7.1.2.1: server_max_window_bits always has a value.
                (2, Some(v)) => offer.server_max_window_bits = Some(window_bits(v)?),
                // §7.1.2.2: client_max_window_bits may have none.
                (3, None) => offer.client_max_window_bits = Some(None),
                (3, Some(v)) => offer.client_max_window_bits = Some(Some(window_bits(v)?)),
                _ => return None,
            }
        }
        Some(offer)
    }
}

/// "a decimal integer value without leading zeroes between 8 to 15, inclusive" (§7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    match value {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => value.parse().ok(),
        _ => None,
    }
}

/// One element of an extension list.
#[derive(Debug, PartialEq, Eq)]
struct Extension<'a> {
    name: &'a str,
    params: Vec<Param<'a>>,
}

/// `token [ "=" ( token / quoted-string ) ]`, the value unquoted.
#[derive(Debug, PartialEq, Eq)]
struct Param<'a> {
    name: &'a str,
    value: Option<Cow<'a, str>>,
}

/// Parse one header value per RFC 6455 §9.1:
///
/// ```text
/// extension-list = 1#extension
/// extension      = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// with optional whitespace around the separators and empty list elements
/// ignored (RFC 7230 §7). `None` if the value breaks the grammar.
fn parse_extensions(value: &str) -> Option<Vec<Extension<'_>>> {
    let mut cur = Cursor { s: value, pos: 0 };
    let mut list = Vec::new();
    loop {
        cur.skip_ws();
        if cur.eat(b',') {
            continue;
        }
        if cur.at_end() {
            return Some(list);
        }
        let name = cur.token()?;
        let mut params = Vec::new();
        cur.skip_ws();
        while cur.eat(b';') {
            cur.skip_ws();
            let name = cur.token()?;
            cur.skip_ws();
            let value = if cur.eat(b'=') {
                cur.skip_ws();
                // §9.1 wants a token once unquoted; our own parameters'
                // values are checked for more than that, and another
                // extension's oddities are no reason to refuse ours.
                Some(if cur.peek() == Some(b'"') {
                    cur.quoted()?
                } else {
                    Cow::Borrowed(cur.token()?)
                })
            } else {
                None
            };
            params.push(Param { name, value });
            cur.skip_ws();
        }
        list.push(Extension { name, params });
        if !cur.at_end() && !cur.eat(b',') {
            return None;
        }
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `1*tchar`
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 7230 §3.2.6), unescaped.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    let raw = &self.s[start..self.pos];
                    self.pos += 1;
                    return Some(owned.map_or(Cow::Borrowed(raw), Cow::Owned));
                }
                b'\\' => {
                    let escaped = *self.s.as_bytes().get(self.pos + 1)?;
                    if !escaped.is_ascii() {
                        return None;
                    }
                    owned
                        .get_or_insert_with(|| self.s[start..self.pos].to_owned())
                        .push(char::from(escaped));
                    self.pos += 2;
                }
                // RFC 7230's obs-text is not worth supporting here.
                _ if !b.is_ascii() || (b.is_ascii_control() && b != b'\t') => return None,
                _ => {
                    if let Some(o) = owned.as_mut() {
                        o.push(char::from(b));
                    }
                    self.pos += 1;
                }
            }
        }
    }
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(offers: &[&str], config: &DeflateConfig) -> Option<String> {
        negotiate(offers, config).map(|p| p.response_header())
    }

    fn default_answer(offer: &str) -> Option<String> {
        answer(&[offer], &DeflateConfig::default())
    }

    #[test]
    fn test_plain_offer_accepted() {
        assert_eq!(
            default_answer("permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
        let p = negotiate(&["permessage-deflate"], &DeflateConfig::default()).unwrap();
        assert_eq!((p.server_window_bits(), p.client_window_bits()), (15, 15));
        assert!(!p.server_no_context_takeover && !p.client_no_context_takeover);
    }

    #[test]
    fn test_rfc_5_2_first_of_two_offers_accepted() {
        // §5.2's example: the first offer, with its server_max_window_bits echoed (§7.1.2.1).
        let offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                     permessage-deflate; client_max_window_bits";
        assert_eq!(
            default_answer(offer).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
    }

    #[test]
    fn test_rfc_7_1_1_1_server_no_context_takeover_echoed() {
        assert_eq!(
            default_answer("permessage-deflate; server_no_context_takeover").as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn test_client_no_context_takeover_hint_echoed() {
        let p = negotiate(
            &["permessage-deflate; client_no_context_takeover"],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert!(p.client_no_context_takeover);
        assert_eq!(p.response_header(), "permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn test_config_adds_no_context_takeover() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            answer(&["permessage-deflate"], &config).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
    }

    #[test]
    fn test_server_window_from_offer_and_config() {
        let cap12 = DeflateConfig {
            server_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        // Announced unasked when below 15 (§7.1.2.1 "MAY include ... even if").
        assert_eq!(
            answer(&["permessage-deflate"], &cap12).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
        // The smaller of the two.
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=10"], &cap12).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=14"], &cap12).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
        // An offered 15 is echoed: accepting the parameter means naming it.
        assert_eq!(
            default_answer("permessage-deflate; server_max_window_bits=15").as_deref(),
            Some("permessage-deflate; server_max_window_bits=15")
        );
    }

    #[test]
    fn test_config_server_window_8_clamped_to_9() {
        let config = DeflateConfig {
            server_max_window_bits: 8,
            ..DeflateConfig::default()
        };
        let p = negotiate(&["permessage-deflate"], &config).unwrap();
        assert_eq!(p.server_window_bits(), 9);
        assert_eq!(p.response_header(), "permessage-deflate; server_max_window_bits=9");
    }

    #[test]
    fn test_server_window_8_declined_then_next_offer() {
        assert_eq!(default_answer("permessage-deflate; server_max_window_bits=8"), None);
        assert_eq!(
            default_answer(
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=9")
        );
    }

    #[test]
    fn test_client_window_only_when_offered() {
        let cap10 = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        // §7.1.2.2: not offered, so not sent, and the client may use 15.
        let p = negotiate(&["permessage-deflate"], &cap10).unwrap();
        assert_eq!(p.response_header(), "permessage-deflate");
        assert_eq!(p.client_window_bits(), 15);
        // Offered without a value: ours.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"], &cap10).as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        // Offered with a value: the smaller.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits=12"], &cap10).as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        let p = negotiate(&["permessage-deflate; client_max_window_bits=8"], &cap10).unwrap();
        assert_eq!(p.client_window_bits(), 8);
        assert_eq!(p.response_header(), "permessage-deflate; client_max_window_bits=8");
        // Default config: the client's own limit is repeated, 15 is left implicit.
        assert_eq!(
            default_answer("permessage-deflate; client_max_window_bits=11").as_deref(),
            Some("permessage-deflate; client_max_window_bits=11")
        );
        assert_eq!(
            default_answer("permessage-deflate; client_max_window_bits=15").as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn test_unknown_parameter_declined() {
        assert_eq!(default_answer("permessage-deflate; foo"), None);
        assert_eq!(default_answer("permessage-deflate; foo=1"), None);
        assert_eq!(
            default_answer("permessage-deflate; foo, permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn test_duplicate_parameter_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        ] {
            assert_eq!(default_answer(offer), None, "{offer}");
        }
    }

    #[test]
    fn test_invalid_values_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=\"\"",
        ] {
            assert_eq!(default_answer(offer), None, "{offer}");
        }
    }

    #[test]
    fn test_quoted_values_unquoted() {
        // §9.1: the value after unescaping must be a token, and is then read as usual.
        assert_eq!(
            default_answer("permessage-deflate; server_max_window_bits=\"10\"").as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            default_answer("permessage-deflate; client_max_window_bits=\"1\\2\"").as_deref(),
            Some("permessage-deflate; client_max_window_bits=12")
        );
    }

    #[test]
    fn test_other_extensions_ignored_across_headers() {
        let offers = [
            "x-webkit-deflate-frame",
            "foo; bar=\"a,b\", permessage-deflate; server_no_context_takeover",
        ];
        assert_eq!(
            answer(&offers, &DeflateConfig::default()).as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(default_answer("x-webkit-deflate-frame; no_context_takeover"), None);
        assert_eq!(answer(&[], &DeflateConfig::default()), None);
    }

    #[test]
    fn test_whitespace_case_and_empty_elements() {
        assert_eq!(
            default_answer(" ,  PerMessage-Deflate ;\tServer_Max_Window_Bits = 11 ,, ").as_deref(),
            Some("permessage-deflate; server_max_window_bits=11")
        );
    }

    #[test]
    fn test_malformed_header_contributes_nothing() {
        for value in [
            "permessage-deflate; =10",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate server_no_context_takeover",
            "permessage-deflate; a=b=c",
            "permessage-deflate, \"quoted\"",
            "permessage-deflate, perméssage-deflate",
        ] {
            assert_eq!(default_answer(value), None, "{value}");
        }
        // A broken header does not spoil a good one.
        assert_eq!(
            answer(
                &["permessage-deflate; =10", "permessage-deflate"],
                &DeflateConfig::default()
            )
            .as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn test_disabled_declines_everything() {
        let off = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(answer(&["permessage-deflate"], &off), None);
    }

    #[test]
    fn test_parse_extensions_grammar() {
        let list = parse_extensions("a; b; c=\"x\\yz\", d").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "a");
        assert_eq!(list[0].params[0], Param { name: "b", value: None });
        assert_eq!(list[0].params[1].value.as_deref(), Some("xyz"));
        assert_eq!(
            list[1],
            Extension {
                name: "d",
                params: vec![]
            }
        );
        let list = parse_extensions("a; c=\"x\\\"y, z\"").unwrap();
        assert_eq!(list[0].params[0].value.as_deref(), Some("x\"y, z"));
        assert!(parse_extensions("a; c=\"x\\").is_none());
        assert_eq!(parse_extensions("").unwrap(), vec![]);
    }
}
