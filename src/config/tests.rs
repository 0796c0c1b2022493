use super::error::{SECTIONS, SECTION_NAMES};
use super::*;

const ORIGIN: &str = "config/x.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, ORIGIN)
}

/// The error's message, checked to name the file as every message must.
fn message(text: &str) -> String {
    let msg = parse(text).expect_err("should be refused").to_string();
    assert!(msg.starts_with(ORIGIN), "no file in {msg:?}");
    msg
}

#[test]
fn shipped_file_is_exactly_the_defaults() {
    let text = include_str!("../../config/wsreactor.toml");
    let config = Config::from_toml(text, "config/wsreactor.toml").unwrap();
    assert_eq!(config, Config::default());
    config.validate("config/wsreactor.toml").unwrap();
}

#[test]
fn key_lists_match_the_structs() {
    // Serializing the defaults gives the keys serde knows; SECTIONS must
    // list the same ones, or a real key would be called unknown.
    // Optional keys are set, so that they are serialized too.
    let mut config = Config::default();
    config.timeouts.request = Some(Duration::from_secs(30));
    let text = toml::to_string(&config).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let names: Vec<&str> = table.keys().map(String::as_str).collect();
    let mut sections = SECTION_NAMES.to_vec();
    sections.sort_unstable();
    assert_eq!(names, sections);
    for (section, keys) in SECTIONS {
        let found: Vec<&str> = table[*section].as_table().unwrap().keys().map(String::as_str).collect();
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        assert_eq!(found, keys, "[{section}]");
    }
}

#[test]
fn empty_text_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn partial_section_keeps_other_defaults() {
    let config = parse("[limits]\nmax_frame_size = 4096\n").unwrap();
    let mut expected = Config::default();
    expected.limits.max_frame_size = 4096;
    assert_eq!(config, expected);
}

#[test]
fn durations_and_address_parse() {
    let text = "server.bind = \"[::1]:80\"\n[timeouts]\nidle = \"1m 30s\"\nclose = \"500ms\"\n";
    let config = parse(text).unwrap();
    assert_eq!(config.server.bind, "[::1]:80".parse().unwrap());
    assert_eq!(config.timeouts.idle, Duration::from_secs(90));
    assert_eq!(config.timeouts.close, Duration::from_millis(500));
}

#[test]
fn unknown_key_is_named_with_its_section_and_line() {
    let msg = message("[limits]\nmax_frame_size = 1000\nmax_frame = 1\n");
    assert!(msg.contains("unknown key `limits.max_frame` at line 3"), "{msg}");
    assert!(msg.contains("`max_frame_size`"), "lists the known keys: {msg}");
    let err = parse("[limits]\nmax_frame = 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { ref key, line: 2, .. } if key == "limits.max_frame"));
}

#[test]
fn unknown_dotted_and_inline_keys_are_named() {
    let msg = message("limits.max_frame = 1\n");
    assert!(msg.contains("`limits.max_frame` at line 1"), "{msg}");
    let msg = message("\n\nserver = { bind = \"127.0.0.1:1\", thread = 2 }\n");
    assert!(msg.contains("`server.thread` at line 3"), "{msg}");
}

#[test]
fn unknown_section_is_named() {
    let msg = message("[server]\nthreads = 2\n[limit]\nmax_frame_size = 1\n");
    assert!(msg.contains("unknown key `limit` at line 3"), "{msg}");
    assert!(msg.contains("`limits`"), "lists the sections: {msg}");
}

#[test]
fn wrong_type_is_named_with_its_section_and_line() {
    let msg = message("[server]\nbind = \"127.0.0.1:1\"\nthreads = \"four\"\n");
    assert!(msg.contains("bad value for `server.threads` at line 3"), "{msg}");
    assert!(msg.contains("expected usize"), "{msg}");
    let err = parse("[server]\nthreads = \"four\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::BadValue { ref key, line: 2, .. } if key == "server.threads"));
}

#[test]
fn unparsable_values_are_named() {
    let msg = message("[server]\nbind = \"localhost\"\n");
    assert!(msg.contains("`server.bind` at line 2"), "{msg}");
    let msg = message("[timeouts]\nidle = \"2 fortnights\"\n");
    assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
    let msg = message("[timeouts]\nidle = 120\n");
    assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
    let msg = message("[limits]\nmax_frame_size = -1\n");
    assert!(msg.contains("`limits.max_frame_size` at line 2"), "{msg}");
}

#[test]
fn section_that_is_not_a_table_is_named() {
    let msg = message("server = 3\n");
    assert!(msg.contains("bad value for `server` at line 1"), "{msg}");
    let msg = message("[[server]]\n");
    assert!(msg.contains("bad value for `server` at line 1"), "{msg}");
}

#[test]
fn table_where_a_value_belongs_is_named() {
    let msg = message("[server]\nbind.port = 1\n");
    assert!(msg.contains("bad value for `server.bind` at line 2"), "{msg}");
    let msg = message("limits.read_buffer_size.x = 1\n");
    assert!(msg.contains("`limits.read_buffer_size` at line 1"), "{msg}");
    let msg = message("[server.extra]\na = 1\n");
    assert!(msg.contains("unknown key `server.extra` at line 1"), "{msg}");
}

#[test]
fn first_problem_in_the_file_is_reported() {
    let msg = message("[timeouts]\nidle = 5\n[limits]\nbogus = 1\n");
    assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
}

#[test]
fn syntax_error_names_file_and_line() {
    let msg = message("[server]\nthreads = = 2\n");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(matches!(parse("[server\n").unwrap_err(), ConfigError::Syntax { .. }));
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("wsreactor-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("partial.toml");
    std::fs::write(&path, "[server]\nthreads = 3\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().server.threads, 3);
    let missing = dir.join("missing.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("missing.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn invalid(edit: impl FnOnce(&mut Config)) -> String {
    let mut config = Config::default();
    edit(&mut config);
    let err = config.validate(ORIGIN).expect_err("should be invalid");
    assert!(matches!(err, ConfigError::Invalid { .. }));
    err.to_string()
}

#[test]
fn validate_names_the_key_and_the_value() {
    let msg = invalid(|c| c.limits.read_buffer_size = 10);
    assert_eq!(
        msg,
        "config/x.toml: `limits.read_buffer_size` must be at least 1024, got 10"
    );
    let msg = invalid(|c| c.timeouts.idle = Duration::from_millis(1500));
    assert_eq!(msg, "config/x.toml: `timeouts.idle` must be at least 2s, got 1s 500ms");
}

#[test]
fn validate_refuses_zero_sizes_and_timeouts() {
    type Edit = fn(&mut Config);
    let cases: [(&str, Edit); 9] = [
        ("server.backlog", |c| c.server.backlog = 0),
        ("limits.max_request_head", |c| c.limits.max_request_head = 0),
        ("limits.max_frame_size", |c| c.limits.max_frame_size = 124),
        ("limits.max_message_size", |c| c.limits.max_message_size = 0),
        ("limits.write_buffer_limit", |c| c.limits.write_buffer_limit = 0),
        ("timeouts.handshake", |c| c.timeouts.handshake = Duration::ZERO),
        ("timeouts.idle", |c| c.timeouts.idle = Duration::ZERO),
        ("timeouts.close", |c| c.timeouts.close = Duration::ZERO),
        ("timeouts.write_stall", |c| c.timeouts.write_stall = Duration::ZERO),
    ];
    for (key, edit) in cases {
        let msg = invalid(edit);
        assert!(msg.contains(&format!("`{key}`")), "{key}: {msg}");
    }
}

#[test]
fn validate_refuses_sizes_past_what_buffers_index_and_absurd_thread_counts() {
    // From a file, as an operator would write them.
    let cases = [
        (
            "[limits]\nmax_message_size = 9223372036854775807",
            "limits.max_message_size",
        ),
        ("[limits]\nmax_frame_size = 4294967296", "limits.max_frame_size"),
        ("[limits]\nmax_request_head = 1073741825", "limits.max_request_head"),
        (
            "[limits]\nwrite_buffer_limit = 9223372036854775807",
            "limits.write_buffer_limit",
        ),
        (
            "[limits]\nread_buffer_size = 9223372036854775807",
            "limits.read_buffer_size",
        ),
        ("[server]\nthreads = 1000000", "server.threads"),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap().validate(ORIGIN).expect_err(text).to_string();
        assert!(
            err.starts_with(ORIGIN) && err.contains(&format!("`{key}` must be at most")),
            "{text}: {err}"
        );
    }
    let msg = invalid(|c| c.timeouts.request = Some(Duration::from_secs(5)));
    assert!(
        msg.contains("`timeouts.request` must be at least timeouts.handshake"),
        "{msg}"
    );
}

#[test]
fn the_request_deadline_follows_handshake_unless_set() {
    let c = parse("[timeouts]\nhandshake = \"3s\"").unwrap();
    assert_eq!(
        (c.timeouts.request, c.timeouts.request()),
        (None, Duration::from_secs(3))
    );
    let c = parse("[timeouts]\nrequest = \"1m\"").unwrap();
    assert_eq!(c.timeouts.request(), Duration::from_secs(60));
    c.validate(ORIGIN).unwrap();
}

#[test]
fn validate_accepts_the_edges() {
    let mut config = Config::default();
    config.limits.read_buffer_size = 1024;
    config.limits.max_frame_size = 125;
    config.limits.buffer_pool_size = 0;
    config.timeouts.idle = Duration::from_secs(2);
    config.timeouts.request = Some(config.timeouts.handshake);
    config.server.threads = MAX_THREADS;
    config.limits.max_message_size = MAX_SIZE;
    config.validate(ORIGIN).unwrap();
}

#[test]
fn worker_threads_resolves_zero_to_the_core_count() {
    let mut config = Config::default();
    config.server.threads = 3;
    assert_eq!(config.worker_threads(), 3);
    config.server.threads = 0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(config.worker_threads(), cores);
}

#[test]
fn an_unknown_broker_is_named() {
    assert_eq!(
        parse("[pubsub]\nbroker = \"local\"\n").unwrap().pubsub.broker,
        BrokerKind::Local
    );
    let msg = message("[pubsub]\nbroker = \"carrier-pigeon\"\n");
    assert!(msg.contains("bad value for `pubsub.broker` at line 2"), "{msg}");
    assert!(
        msg.contains("`local` or a redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster://"),
        "names what is known: {msg}"
    );
    let redis = parse("[pubsub]\nbroker = \"redis://127.0.0.1:6379/0\"\n").unwrap();
    assert_eq!(
        redis.pubsub.broker,
        BrokerKind::Redis("redis://127.0.0.1:6379/0".into())
    );
    // A CA file says TLS: with a broker that is not TLS, it is refused.
    let plain = parse("[pubsub]\nbroker = \"redis://h:1/0\"\nbroker_ca = \"ca.pem\"\n").unwrap();
    let msg = plain.validate(ORIGIN).unwrap_err().to_string();
    assert!(msg.starts_with(ORIGIN) && msg.contains("pubsub.broker_ca"), "{msg}");
    let tls = parse("[pubsub]\nbroker = \"rediss://h:1/0\"\nbroker_ca = \"ca.pem\"\n").unwrap();
    assert_eq!(tls.pubsub.broker_ca, "ca.pem");
    tls.validate(ORIGIN).unwrap();
}

#[test]
fn a_sentinel_broker_and_its_durability_are_checked_naming_the_key() {
    let ok = parse(
        "[pubsub]\nbroker = \"redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster\"\n\
         broker_replicas = 1\nbroker_replicas_timeout = \"250ms\"\n",
    )
    .unwrap();
    ok.validate(ORIGIN).unwrap();
    assert_eq!(ok.pubsub.broker_replicas, 1);
    assert_eq!(ok.pubsub.broker_replicas_timeout, Duration::from_millis(250));
    let tls = parse("[pubsub]\nbroker = \"rediss+sentinel://h:1/m\"\nbroker_ca = \"ca.pem\"\n").unwrap();
    tls.validate(ORIGIN).unwrap();
    for (toml, key) in [
        ("broker = \"redis+sentinel://h:1\"", "pubsub.broker"),
        ("broker = \"redis+sentinel://h/m\"", "pubsub.broker"),
        ("broker_replicas = 1", "pubsub.broker_replicas"),
        (
            "broker = \"redis://h:1/0\"\nbroker_replicas = 65",
            "pubsub.broker_replicas",
        ),
        (
            "broker = \"redis://h:1/0\"\nbroker_replicas_timeout = \"0s\"",
            "pubsub.broker_replicas_timeout",
        ),
        (
            "broker = \"redis://h:1/0\"\nbroker_replicas_timeout = \"2s\"",
            "pubsub.broker_replicas_timeout",
        ),
    ] {
        let msg = parse(&format!("[pubsub]\n{toml}\n"))
            .unwrap()
            .validate(ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(ORIGIN) && msg.contains(key), "{toml}: {msg}");
    }
}

#[test]
fn allowed_origins_are_origins() {
    let ok = parse("[http]\nallowed_origins = [\"https://app.example\", \"http://localhost:8080\"]\n").unwrap();
    ok.validate(ORIGIN).unwrap();
    parse("[http]\nallowed_origins = [\"*\"]\n")
        .unwrap()
        .validate(ORIGIN)
        .unwrap();
    for bad in [
        "app.example",
        "https://app.example/",
        "https://",
        "https://a.example/path",
    ] {
        let config = parse(&format!("[http]\nallowed_origins = [\"{bad}\"]\n")).unwrap();
        let msg = config.validate(ORIGIN).unwrap_err().to_string();
        assert!(msg.contains("http.allowed_origins") && msg.contains(bad), "{msg}");
    }
}

#[test]
fn auth_secrets_and_patterns_are_checked() {
    let msg = invalid(|c| c.auth.secret = "short".into());
    assert!(msg.contains("auth.secret") && msg.contains("32 bytes"), "{msg}");
    let msg = invalid(|c| c.auth.private_channels = vec!["private/*".into()]);
    assert!(
        msg.contains("auth.private_channels") && msg.contains("private/*"),
        "{msg}"
    );
    let config =
        parse("[auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\nprivate_channels = [\"vip-*\", \"admin\"]\n")
            .unwrap();
    config.validate(ORIGIN).unwrap();
    assert_eq!(config.auth.private_channels, ["vip-*", "admin"]);
}

#[test]
fn the_api_key_and_the_broadcast_bound_are_checked() {
    for bad in ["short", "sixteen chars ok", "tab\there-and-long-enough"] {
        let msg = invalid(|c| c.api.key = bad.into());
        assert!(
            msg.contains("api.key") && msg.contains("16 visible ASCII"),
            "{bad}: {msg}"
        );
        // The message never shows the key itself.
        assert!(!msg.contains(bad), "{msg}");
    }
    for bad in [0, 10_001] {
        let msg = invalid(|c| c.api.max_broadcast_channels = bad);
        assert!(msg.contains("api.max_broadcast_channels"), "{msg}");
        let msg = invalid(|c| c.limits.max_channels_per_connection = bad.min(1001));
        assert!(msg.contains("limits.max_channels_per_connection"), "{msg}");
    }
    let config = parse("[limits]\nmax_channels_per_connection = 3\n").unwrap();
    config.validate(ORIGIN).unwrap();
    assert_eq!(config.limits.max_channels_per_connection, 3);
    let config = parse("[api]\nkey = \"0123456789abcdef\"\nmax_broadcast_channels = 5\n").unwrap();
    config.validate(ORIGIN).unwrap();
    assert_eq!(
        (config.api.key.as_str(), config.api.max_broadcast_channels),
        ("0123456789abcdef", 5)
    );
    assert!(parse("[api]\nkeys = \"x\"\n").is_err());
}

#[test]
fn credentials_need_listed_origins() {
    let msg = invalid(|c| c.http.allow_credentials = true);
    assert!(
        msg.contains("http.allow_credentials") && msg.contains("allowed_origins"),
        "{msg}"
    );
    let msg = invalid(|c| {
        c.http.allow_credentials = true;
        c.http.allowed_origins = vec!["*".into()];
    });
    assert!(msg.contains("http.allow_credentials"), "{msg}");
    let config = parse("[http]\nallowed_origins = [\"https://app.example\"]\nallow_credentials = true\n").unwrap();
    config.validate(ORIGIN).unwrap();
}

#[test]
fn per_ip_lists_are_addresses_or_networks() {
    let config =
        parse("[limits]\nper_ip_connections = 100\nper_ip_exempt = []\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n")
            .unwrap();
    config.validate(ORIGIN).unwrap();
    let s = crate::reactor::settings::Settings::from(&config);
    assert_eq!(s.per_ip.connections, 100);
    assert!(s.per_ip.exempt.is_empty() && s.per_ip.trusted_proxies.len() == 2);
    let mut defaults = crate::reactor::settings::Settings::default().per_ip;
    defaults.connections = 1;
    assert!(!defaults.applies("127.0.0.1".parse().unwrap()) && !defaults.applies("::1".parse().unwrap()));
    assert!(defaults.applies("192.0.2.1".parse().unwrap()));
    let msg = invalid(|c| c.limits.trusted_proxies = vec!["10.0.0.0/33".into()]);
    assert!(
        msg.contains("limits.trusted_proxies") && msg.contains("10.0.0.0/33"),
        "{msg}"
    );
    let msg = invalid(|c| c.limits.per_ip_exempt = vec!["localhost".into()]);
    assert!(msg.contains("limits.per_ip_exempt"), "{msg}");
}

#[test]
fn the_forwarded_header_is_one_of_two() {
    use crate::reactor::per_ip::ForwardedHeader;
    let s = crate::reactor::settings::Settings::default().per_ip;
    assert_eq!(s.forwarded_header, ForwardedHeader::XForwardedFor);
    let config = parse("[limits]\nforwarded_header = \"forwarded\"\n").unwrap();
    config.validate(ORIGIN).unwrap();
    let s = crate::reactor::settings::Settings::from(&config);
    assert_eq!(s.per_ip.forwarded_header, ForwardedHeader::Forwarded);
    let msg = invalid(|c| c.limits.forwarded_header = "X-Real-IP".into());
    assert!(
        msg.contains("limits.forwarded_header") && msg.contains("X-Real-IP"),
        "{msg}"
    );
}

#[test]
fn an_error_names_what_set_its_key() {
    let mut config = Config::default();
    config.auth.secret = "short".into();
    let mut origins = Origins::new("wsreactor.toml");
    let named = |c: &Config, o: &Origins| c.validate_from(o).unwrap_err().to_string();
    assert!(named(&config, &origins).starts_with("wsreactor.toml: `auth.secret`"));
    origins.set("auth.secret", "WSREACTOR_AUTH_SECRET");
    assert!(named(&config, &origins).starts_with("WSREACTOR_AUTH_SECRET: `auth.secret` must be at least 32 bytes"));
    config.auth.secret = String::new();
    config.server.threads = 100_000;
    assert!(named(&config, &origins).starts_with("wsreactor.toml: `server.threads`"));
    origins.set("server.threads", "--threads");
    assert!(named(&config, &origins).starts_with("--threads: `server.threads`"));
}

#[test]
fn presence_keys_are_checked_and_named() {
    let config =
        parse("[presence]\nchannels = [\"room-*\"]\nmax_members = 10\nmax_events_per_second = 5\nttl = \"3s\"\n")
            .unwrap();
    config.validate(ORIGIN).unwrap();
    assert_eq!(
        (
            config.presence.channels.as_slice(),
            config.presence.max_members,
            config.presence.max_events_per_second,
            config.presence.ttl
        ),
        (&["room-*".to_owned()][..], 10, 5, Duration::from_secs(3))
    );
    type Edit = fn(&mut Config);
    let cases: [(&str, Edit); 6] = [
        ("presence.channels", |c| c.presence.channels = vec!["a/b".into()]),
        ("presence.max_members", |c| c.presence.max_members = 0),
        ("presence.max_members", |c| c.presence.max_members = 1_000_001),
        ("presence.max_events_per_second", |c| {
            c.presence.max_events_per_second = 0
        }),
        ("presence.ttl", |c| c.presence.ttl = Duration::from_millis(500)),
        ("presence.ttl", |c| c.presence.ttl = Duration::from_secs(7200)),
    ];
    for (key, edit) in cases {
        let msg = invalid(edit);
        assert!(msg.contains(key), "{key}: {msg}");
    }
    assert!(parse("[presence]\nttl = \"soon\"\n").is_err());
}
