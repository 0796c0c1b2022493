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
