//! The `load` flags as clap parses them, and the [`Options`](super::super::Options) they make.

use super::*;
use clap::Parser;

/// The command line down to `load`, as `src/main.rs` has it.
#[derive(Debug, Parser)]
#[command(name = "wsreactor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Load(Box<LoadCmd>),
}

fn parse_load(args: &[&str]) -> LoadArgs {
    match Cli::try_parse_from(args).unwrap().command {
        Command::Load(load) if load.compare.is_none() => load.args,
        other => panic!("not load: {other:?}"),
    }
}

#[test]
fn load_compare_takes_the_load_flags_and_its_own() {
    let cli = Cli::try_parse_from([
        "wsreactor",
        "load",
        "compare",
        "--url",
        "http://127.0.0.1:9/",
        "--channel",
        "c",
        "--rounds",
        "5",
        "--transports",
        "sse,ws",
        "--poll-interval",
        "250ms",
        "--keep-alive",
        "off",
        "--cursor",
        "nchan",
        "--server-pid",
        "42",
    ])
    .unwrap();
    let Command::Load(load) = cli.command;
    let Some(LoadSub::Compare(c)) = load.compare else {
        panic!("not load compare");
    };
    assert_eq!(
        (c.rounds, c.transports.as_slice()),
        (5, &[TransportArg::Sse, TransportArg::Ws][..])
    );
    let o = c.load.options();
    assert_eq!(o.channel.as_deref(), Some("c"));
    assert_eq!(o.poll_interval, Duration::from_millis(250));
    assert!(!o.keep_alive);
    assert_eq!((o.cursor, o.server_pid), (CursorStyle::Nchan, Some(42)));
    // A plain `load` still needs --url; `load --transport` takes each name.
    assert!(Cli::try_parse_from(["wsreactor", "load"]).is_err());
    for (name, t) in [
        ("ws", Transport::Ws),
        ("sse", Transport::Sse),
        ("longpoll", Transport::LongPoll),
        ("poll", Transport::Poll),
    ] {
        let args = parse_load(&[
            "wsreactor",
            "load",
            "--url",
            "ws://127.0.0.1:9/ws/c",
            "--transport",
            name,
        ]);
        assert_eq!(args.options().transport, t);
    }
}

#[test]
fn load_flags_map_to_options() {
    let args = parse_load(&[
        "wsreactor",
        "load",
        "--url",
        "ws://127.0.0.1:9/x",
        "--connections",
        "5000",
        "--connect-rate",
        "250",
        "--duration",
        "1m 30s",
        "--text",
        "--rate",
        "1000",
        "--pipeline",
        "4",
        "--source-ips",
        "127.0.0.1-127.0.0.4",
        "--mode",
        "connect",
        "--quiet",
    ]);
    let o = args.options();
    assert_eq!((o.connections, o.connect_rate, o.pipeline), (5000, 250.0, 4));
    assert_eq!(o.duration, Duration::from_secs(90));
    assert_eq!(
        (o.kind, o.rate, o.mode),
        (MessageKind::Text, Some(1000.0), Mode::Connect)
    );
    assert_eq!(o.source_ips.len(), 4);
    assert!(!o.progress);
    let defaults = parse_load(&["wsreactor", "load", "--url", "ws://127.0.0.1:9/"]).options();
    assert_eq!(
        (defaults.kind, defaults.rate, defaults.mode),
        (MessageKind::Binary, None, Mode::Echo)
    );
    assert_eq!(defaults.publishers, 4);
    let sub = parse_load(&[
        "wsreactor",
        "load",
        "--url",
        "ws://127.0.0.1:9/ws/news",
        "--mode",
        "subscribe",
        "--publishers",
        "2",
    ])
    .options();
    assert_eq!((sub.mode, sub.publishers), (Mode::Subscribe, 2));
    let churn = parse_load(&["wsreactor", "load", "--url", "ws://127.0.0.1:9/", "--mode", "churn"]).options();
    assert_eq!((churn.mode, churn.rate), (Mode::Churn, None));
    assert!(Cli::try_parse_from(["wsreactor", "load", "--url", "ws://h/", "--text", "--binary"]).is_err());
    assert!(Cli::try_parse_from(["wsreactor", "load", "--url", "ws://h/", "--source-ips", "x"]).is_err());
    assert!(Cli::try_parse_from(["wsreactor", "load"]).is_err());
}

#[test]
fn scenario_flags_map_to_options_and_bad_ones_are_refused_by_name() {
    let base = [
        "wsreactor",
        "load",
        "--url",
        "ws://127.0.0.1:9/ws/c",
        "--mode",
        "subscribe",
    ];
    fn joined<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
        [base, more].concat()
    }
    let with = |more: &[&'static str]| joined(&base, more);
    let o = parse_load(&with(&[
        "--slow-readers",
        "10%",
        "--slow-reader-pause",
        "3s",
        "--slow-reader-rcvbuf",
        "65536",
        "--reconnect-storm",
        "2s",
        "--reconnect-share",
        "50",
        "--reconnect-jitter",
        "500ms",
        "--metrics-bind",
        "127.0.0.1:9464",
    ]))
    .options();
    let slow = o.scenario.slow.unwrap();
    assert_eq!(
        (slow.share, slow.pause, slow.rcvbuf),
        (0.1, Duration::from_secs(3), Some(65536))
    );
    let storm = o.scenario.storm.unwrap();
    assert_eq!(
        (storm.at, storm.share, storm.jitter),
        (Duration::from_secs(2), 0.5, Duration::from_millis(500))
    );
    assert_eq!(o.metrics_bind, Some("127.0.0.1:9464".parse().unwrap()));
    // Defaults: the pause is the whole window, the storm takes everyone at once.
    let o = parse_load(&with(&[
        "--slow-readers",
        "1",
        "--reconnect-storm",
        "1s",
        "--duration",
        "4s",
    ]))
    .options();
    assert_eq!(o.scenario.slow.unwrap().pause, Duration::from_secs(4));
    let storm = o.scenario.storm.unwrap();
    assert_eq!((storm.share, storm.jitter), (1.0, Duration::ZERO));
    // clap's refusals are usage errors (exit 2) naming the flag.
    for (bad, flag) in [
        (&["--slow-readers", "0%"][..], "--slow-readers"),
        (&["--slow-readers", "101%"], "--slow-readers"),
        (&["--slow-readers", "ten"], "--slow-readers"),
        (&["--reconnect-share", "50%"], "--reconnect-share"),
        (&["--reconnect-jitter", "1s"], "--reconnect-jitter"),
        (&["--slow-reader-pause", "1s"], "--slow-reader-pause"),
        (&["--metrics-bind", "nowhere"], "--metrics-bind"),
        (&["--reconnect-storm", "soon"], "--reconnect-storm"),
        (&["--agents", "2"], "--coordinator"),
        (&["--coordinator", "redis://127.0.0.1:6379"], "--agents"),
        (
            &["--coordinator", "redis://127.0.0.1:6379", "--agents", "two"],
            "--agents",
        ),
        (&["--agents-wait", "a while"], "--agents-wait"),
    ] {
        let err = Cli::try_parse_from(with(bad)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad:?}");
        assert!(err.to_string().contains(flag), "{bad:?}: {err}");
    }
}

#[test]
fn an_agent_needs_its_coordinator_and_a_positive_run_count() {
    for (bad, flag) in [
        (&["wsreactor", "load", "agent"][..], "--coordinator"),
        (
            &[
                "wsreactor",
                "load",
                "agent",
                "--coordinator",
                "redis://h:1",
                "--runs",
                "0",
            ],
            "--runs",
        ),
    ] {
        let err = Cli::try_parse_from(bad).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad:?}");
        assert!(err.to_string().contains(flag), "{bad:?}: {err}");
    }
    assert!(Cli::try_parse_from(["wsreactor", "load", "agent", "--coordinator", "redis://h:1"]).is_ok());
}

#[test]
fn agents_get_the_load_flags_without_secrets_or_the_coordinators_own() {
    let given = [
        "--url",
        "ws://h:1/",
        "--publish-token",
        "s3cret",
        "--coordinator",
        "redis://:pw@h:6379",
        "--agents=4",
        "--json",
        "out.json",
        "--plot=p.svg",
        "--agents-wait",
        "5s",
        "--connections",
        "10",
        "--publish-token=again",
    ];
    let flags = agents_flags(given.iter().map(|s| s.to_string()));
    assert_eq!(flags, ["--url", "ws://h:1/", "--connections", "10"]);
}
