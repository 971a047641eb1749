//! `load` and `to_yaml`: the layers, their precedence, and the error messages.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{
    ConfigError, Layered, Loaded, MailboxAddress, MailboxConfig, NodeConfig, default_data_dir,
    load, to_yaml,
};
use tempfile::NamedTempFile;

type Env = Vec<(String, String)>;

fn yaml_file(text: &str) -> NamedTempFile {
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn load_text<T: Layered>(
    text: &str,
    env: Env,
    flags: &[(&str, String)],
) -> Result<Loaded<T>, ConfigError> {
    let file = yaml_file(text);
    load::<T>(Some(file.path()), env, flags)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn defaults_are_the_documented_values() {
    let m = MailboxConfig::default();
    assert_eq!(m.listen, addr("127.0.0.1:50000"));
    assert_eq!(m.dashboard, addr("127.0.0.1:8090"));
    assert_eq!(m.data_dir, default_data_dir("mailbox"));
    assert_eq!(m.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(m.max_envelope_bytes, 70_000);

    let n = NodeConfig::default();
    assert_eq!(n.listen, addr("127.0.0.1:8000"));
    assert_eq!(
        n.mailbox,
        "127.0.0.1:50000".parse::<MailboxAddress>().unwrap()
    );
    assert_eq!(n.mailbox.fingerprint, None);
    assert_eq!(n.data_dir, default_data_dir("node"));
    assert_eq!(n.max_body_bytes, 65_536);
    assert_eq!(n.pull_interval, Duration::from_secs(30));
    assert_eq!(n.move_grace, Duration::from_secs(7 * 24 * 3600));

    for component in ["mailbox", "node"] {
        let dir = default_data_dir(component);
        assert!(
            dir.ends_with(Path::new("secure-messenger").join(component)),
            "{dir:?}"
        );
        match dirs::data_dir() {
            Some(base) => assert!(dir.starts_with(base)),
            None => assert_eq!(dir, Path::new(".secure-messenger").join(component)),
        }
    }
}

#[test]
fn no_layers_gives_defaults() {
    let loaded = load::<MailboxConfig>(None, Env::new(), &[]).unwrap();
    assert_eq!(loaded.config, MailboxConfig::default());
    assert!(loaded.overridden.is_empty());
    assert!(loaded.notes.is_empty());
    let loaded = load::<NodeConfig>(None, Env::new(), &[]).unwrap();
    assert_eq!(loaded.config, NodeConfig::default());
}

#[test]
fn empty_or_comment_only_file_gives_defaults() {
    for text in ["", "\n\n", "# nothing here\n", "---\n", "{}\n"] {
        let loaded = load_text::<NodeConfig>(text, Env::new(), &[]).unwrap();
        assert_eq!(loaded.config, NodeConfig::default(), "{text:?}");
    }
}

#[test]
fn file_sets_keys_and_keeps_the_rest() {
    let loaded = load_text::<MailboxConfig>(
        "# my mailbox\nlisten: 0.0.0.0:4433\nretention: 36h\ndata_dir: relative/dir\n",
        Env::new(),
        &[],
    )
    .unwrap();
    let expected = MailboxConfig {
        listen: addr("0.0.0.0:4433"),
        retention: Duration::from_secs(36 * 3600),
        data_dir: PathBuf::from("relative/dir"),
        ..MailboxConfig::default()
    };
    assert_eq!(loaded.config, expected);
    assert!(loaded.overridden.is_empty(), "a file is not an override");

    let fp = "ab".repeat(32);
    let loaded = load_text::<NodeConfig>(
        &format!("mailbox: \"[::1]:50001#{fp}\"\nmax_body_bytes: 1024\npull_interval: 250ms\n"),
        Env::new(),
        &[],
    )
    .unwrap();
    assert_eq!(loaded.config.mailbox.host, "::1");
    assert_eq!(loaded.config.mailbox.port, 50001);
    assert_eq!(loaded.config.mailbox.fingerprint_hex(), Some(fp));
    assert_eq!(loaded.config.max_body_bytes, 1024);
    assert_eq!(loaded.config.pull_interval, Duration::from_millis(250));
}

#[test]
fn env_beats_file_and_flag_beats_env() {
    let file = "listen: 127.0.0.1:1111\ndashboard: 127.0.0.1:2222\nmax_envelope_bytes: 100\n";
    let vars = env(&[
        ("MAILBOX_LISTEN", "127.0.0.1:3333"),
        ("MAILBOX_DASHBOARD", "127.0.0.1:4444"),
        ("PATH", "/usr/bin"),
        ("NODE_LISTEN", "not for the mailbox"),
    ]);
    let flags = [("dashboard", "127.0.0.1:5555".to_owned())];
    let loaded = load_text::<MailboxConfig>(file, vars, &flags).unwrap();
    assert_eq!(
        loaded.config.listen,
        addr("127.0.0.1:3333"),
        "env beats file"
    );
    assert_eq!(
        loaded.config.dashboard,
        addr("127.0.0.1:5555"),
        "flag beats env"
    );
    assert_eq!(loaded.config.max_envelope_bytes, 100, "file beats default");
    assert_eq!(loaded.config.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(loaded.overridden, ["listen", "dashboard"], "each key once");
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}

/// A check on the loaded node configuration.
type Check = fn(&NodeConfig) -> bool;

#[test]
fn env_and_flags_set_every_kind_of_value() {
    // (env var, raw value, check)
    let fp = "CD".repeat(32);
    let cases: Vec<(&str, String, Check)> = vec![
        ("NODE_LISTEN", "0.0.0.0:0".into(), |c| {
            c.listen == addr("0.0.0.0:0")
        }),
        ("NODE_MAILBOX", "mail.example.org:443".into(), |c| {
            c.mailbox.host == "mail.example.org" && c.mailbox.port == 443
        }),
        ("NODE_MAILBOX", format!("[::1]:9#{fp}"), |c| {
            c.mailbox.fingerprint == Some([0xcd; 32])
        }),
        ("NODE_DATA_DIR", "/tmp/alice".into(), |c| {
            c.data_dir == Path::new("/tmp/alice")
        }),
        ("NODE_DATA_DIR", "alice".into(), |c| {
            c.data_dir == Path::new("alice")
        }),
        // Looks like a YAML number / bool / null / comment, but is a path.
        ("NODE_DATA_DIR", "123".into(), |c| {
            c.data_dir == Path::new("123")
        }),
        ("NODE_DATA_DIR", "true".into(), |c| {
            c.data_dir == Path::new("true")
        }),
        ("NODE_DATA_DIR", "~".into(), |c| {
            c.data_dir == Path::new("~")
        }),
        ("NODE_DATA_DIR", "a #b".into(), |c| {
            c.data_dir == Path::new("a #b")
        }),
        ("NODE_MAX_BODY_BYTES", "1000".into(), |c| {
            c.max_body_bytes == 1000
        }),
        ("NODE_PULL_INTERVAL", "500ms".into(), |c| {
            c.pull_interval == Duration::from_millis(500)
        }),
        ("NODE_PULL_INTERVAL", "1m 30s".into(), |c| {
            c.pull_interval == Duration::from_secs(90)
        }),
    ];
    for (var, raw, check) in cases {
        let key = var.strip_prefix("NODE_").unwrap().to_ascii_lowercase();
        let loaded = load::<NodeConfig>(None, env(&[(var, &raw)]), &[]).unwrap();
        assert!(
            check(&loaded.config),
            "{var}={raw:?} gave {:?}",
            loaded.config
        );
        assert_eq!(loaded.overridden, [key.as_str()]);

        let loaded = load::<NodeConfig>(None, Env::new(), &[(key.as_str(), raw.clone())]).unwrap();
        assert!(
            check(&loaded.config),
            "flag {key}={raw:?} gave {:?}",
            loaded.config
        );
        assert_eq!(loaded.overridden, [key.as_str()]);
    }
}

#[test]
fn unknown_node_variables_are_ignored_with_a_note() {
    let vars = env(&[
        ("NODE_OPTIONS", "--max-old-space-size=4096"),
        ("NODE_ENV", "production"),
        ("NODE_LISTEN", "127.0.0.1:9000"),
    ]);
    let loaded = load::<NodeConfig>(None, vars, &[]).unwrap();
    assert_eq!(loaded.config.listen, addr("127.0.0.1:9000"));
    assert_eq!(loaded.overridden, ["listen"]);
    assert_eq!(loaded.notes.len(), 2, "{:?}", loaded.notes);
    let note = &loaded.notes[0];
    assert!(
        note.starts_with("ignoring environment variable NODE_OPTIONS: not a setting"),
        "{note}"
    );
    for known in [
        "NODE_LISTEN",
        "NODE_MAILBOX",
        "NODE_DATA_DIR",
        "NODE_MAX_BODY_BYTES",
        "NODE_PULL_INTERVAL",
    ] {
        assert!(note.contains(known), "{note} should list {known}");
    }
    assert!(loaded.notes[1].contains("NODE_ENV"));
}

#[test]
fn retention_accepts_human_durations() {
    let cases = [
        ("7d", 7 * 24 * 3600),
        ("36h", 36 * 3600),
        ("90s", 90),
        ("1h 30m", 90 * 60),
        ("2weeks", 14 * 24 * 3600),
        ("7days", 7 * 24 * 3600),
    ];
    for (text, secs) in cases {
        let expected = Duration::from_secs(secs);
        let from_file =
            load_text::<MailboxConfig>(&format!("retention: {text}\n"), Env::new(), &[]).unwrap();
        assert_eq!(from_file.config.retention, expected, "file {text:?}");
        let from_env =
            load::<MailboxConfig>(None, env(&[("MAILBOX_RETENTION", text)]), &[]).unwrap();
        assert_eq!(from_env.config.retention, expected, "env {text:?}");
        let from_flag =
            load::<MailboxConfig>(None, Env::new(), &[("retention", text.to_owned())]).unwrap();
        assert_eq!(from_flag.config.retention, expected, "flag {text:?}");
    }
}

#[test]
fn unknown_key_in_file_names_key_file_and_line() {
    let file = yaml_file("listen: 127.0.0.1:50000\n# a comment\nlistn: 127.0.0.1:1\n");
    let err = load::<MailboxConfig>(Some(file.path()), Env::new(), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
    let msg = err.to_string();
    for word in [
        "unknown field `listn`",
        "expected one of `listen`",
        "line 3",
        &file.path().display().to_string(),
    ] {
        assert!(msg.contains(word), "{msg:?} should contain {word:?}");
    }

    // On the very first line too (serde_norway itself leaves out "line 1 column 1").
    let file = yaml_file("colour: blue\n");
    let msg = load::<NodeConfig>(Some(file.path()), Env::new(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown field `colour`") && msg.contains("line 1"),
        "{msg}"
    );
}

#[test]
fn bad_values_in_file_name_key_and_file() {
    // (file text, key, line)
    let cases = [
        ("listen: nope\n", "listen", 1),
        ("# c\ndashboard: 127.0.0.1\n", "dashboard", 2),
        ("retention: 7x\n", "retention", 1),
        ("retention: 60\n", "retention", 1),
        ("max_envelope_bytes: -1\n", "max_envelope_bytes", 1),
        ("max_envelope_bytes: lots\n", "max_envelope_bytes", 1),
        ("data_dir: [a, b]\n", "data_dir", 1),
        // Rates and bursts that would let everyone through or no one. Found by the config
        // fuzz target (NaN breaks its round trip; seed config/regression-nan-burst).
        ("rate_per_second: .nan\n", "rate_per_second", 1),
        ("rate_per_second: -5\n", "rate_per_second", 1),
        ("rate_per_second: 0\n", "rate_per_second", 1),
        ("# c\nrate_burst: .inf\n", "rate_burst", 2),
        (
            "address_rate_per_second: .NaN\n",
            "address_rate_per_second",
            1,
        ),
        ("address_rate_burst: 0.5\n", "address_rate_burst", 1),
    ];
    for (text, key, line) in cases {
        let file = yaml_file(text);
        let err = load::<MailboxConfig>(Some(file.path()), Env::new(), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{text:?}: {err:?}");
        let msg = err.to_string();
        let path = file.path().display().to_string();
        for word in [key, &path, &format!("line {line}")] {
            assert!(
                msg.contains(word),
                "{text:?}: {msg:?} should contain {word:?}"
            );
        }
    }
    let file = yaml_file("mailbox: 127.0.0.1\n");
    let msg = load::<NodeConfig>(Some(file.path()), Env::new(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("mailbox: ") && msg.contains("missing the port"),
        "{msg}"
    );
}

#[test]
fn malformed_or_missing_file() {
    let file = yaml_file("listen: [1\n");
    let err = load::<MailboxConfig>(Some(file.path()), Env::new(), &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError::File { .. }) && err.to_string().contains("line"),
        "{err}"
    );

    let file = yaml_file("just a string\n");
    let err = load::<MailboxConfig>(Some(file.path()), Env::new(), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let err = load::<MailboxConfig>(Some(&missing), Env::new(), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.yaml"), "{err}");
}

#[test]
fn bad_env_value_names_the_variable() {
    let cases = [
        ("MAILBOX_LISTEN", "nope"),
        ("MAILBOX_DASHBOARD", "8090"),
        ("MAILBOX_RETENTION", "forever"),
        ("MAILBOX_RETENTION", "60"),
        ("MAILBOX_MAX_ENVELOPE_BYTES", "big"),
        ("MAILBOX_MAX_ENVELOPE_BYTES", "-5"),
        ("MAILBOX_MAX_ENVELOPE_BYTES", "1.5"),
        ("MAILBOX_RATE_PER_SECOND", "0"),
        ("MAILBOX_RATE_PER_SECOND", "-5"),
        ("MAILBOX_ADDRESS_RATE_BURST", "0.5"),
    ];
    for (var, raw) in cases {
        let err = load::<MailboxConfig>(None, env(&[(var, raw)]), &[]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var: v, .. } if v == var),
            "{var}={raw}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("environment variable {var}: ")),
            "{msg}"
        );
        assert!(msg.contains(raw), "{msg} should quote the value");
    }
    // YAML's NaN and infinity, from the environment and from a flag.
    for (var, raw) in [
        ("MAILBOX_RATE_BURST", ".nan"),
        ("MAILBOX_RATE_PER_SECOND", ".inf"),
    ] {
        let err = load::<MailboxConfig>(None, env(&[(var, raw)]), &[]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var: v, .. } if v == var),
            "{err:?}"
        );
    }
    let err =
        load::<MailboxConfig>(None, Env::new(), &[("rate_burst", ".nan".to_owned())]).unwrap_err();
    assert!(err.to_string().starts_with("flag --rate-burst: "), "{err}");
    // A later bad value fails even when an earlier one was fine.
    let err = load::<NodeConfig>(
        None,
        env(&[("NODE_LISTEN", "127.0.0.1:1"), ("NODE_MAILBOX", "nohost")]),
        &[],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("NODE_MAILBOX") && err.to_string().contains("missing the port"),
        "{err}"
    );
}

#[test]
fn bad_flag_names_the_flag() {
    let cases = [
        ("listen", "nope", "--listen"),
        ("max_body_bytes", "huge", "--max-body-bytes"),
        ("pull_interval", "soon", "--pull-interval"),
        ("mailbox", "127.0.0.1:50000#abc", "--mailbox"),
        ("no_such_key", "1", "--no-such-key"),
    ];
    for (key, raw, flag) in cases {
        let err = load::<NodeConfig>(None, Env::new(), &[(key, raw.to_owned())]).unwrap_err();
        assert!(matches!(&err, ConfigError::Flag { .. }), "{key}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("flag {flag}: ")), "{msg}");
    }
}

#[test]
fn example_files_load_to_the_defaults() {
    let mailbox = load::<MailboxConfig>(Some(&example("mailbox.yaml")), Env::new(), &[]).unwrap();
    assert_eq!(mailbox.config, MailboxConfig::default());
    let node = load::<NodeConfig>(Some(&example("node.yaml")), Env::new(), &[]).unwrap();
    assert_eq!(node.config, NodeConfig::default());
}

#[test]
fn the_cluster_example_is_a_front_end_of_three_nats_servers() {
    let loaded = load::<MailboxConfig>(Some(&example("cluster.yaml")), Env::new(), &[]).unwrap();
    let urls: Vec<String> = (1..=3)
        .map(|i| format!("nats://127.0.0.1:422{i}"))
        .collect();
    assert_eq!(loaded.config.store, config::StoreSetting::Nats(urls));
    assert_eq!(
        loaded.config.tls_cert.as_deref(),
        Some(Path::new("/tmp/sm-cluster/cert.pem"))
    );
    assert!(loaded.config.tls_key.is_some());
    let rest = MailboxConfig {
        store: MailboxConfig::default().store,
        tls_cert: None,
        tls_key: None,
        ..loaded.config
    };
    assert_eq!(rest, MailboxConfig::default(), "nothing else is changed");
}

#[test]
fn example_files_mention_every_key_with_its_env_var_and_flag() {
    fn check<T: Layered>(name: &str, flags: &[&str]) {
        let text = std::fs::read_to_string(example(name)).unwrap();
        let serde_norway::Value::Mapping(map) = serde_norway::to_value(T::default()).unwrap()
        else {
            panic!("not a mapping");
        };
        for (key, value) in map.iter().filter_map(|(k, v)| Some((k.as_str()?, v))) {
            let mut words = vec![format!("{key}: ")];
            // Lists can only be set in a file.
            if !value.is_sequence() {
                words.push(format!("{}{}", T::ENV_PREFIX, key.to_ascii_uppercase()));
            }
            if flags.contains(&key) {
                words.push(format!("--{}", key.replace('_', "-")));
            }
            for word in words {
                assert!(text.contains(&word), "{name} should mention {word:?}");
            }
        }
    }
    check::<MailboxConfig>(
        "mailbox.yaml",
        &["listen", "dashboard", "data_dir", "store"],
    );
    check::<NodeConfig>("node.yaml", &["listen", "mailbox", "data_dir"]);
}

#[test]
fn to_yaml_reloads_to_the_same_config() {
    let fp = "0f".repeat(32);
    let nodes = [
        NodeConfig::default(),
        NodeConfig {
            listen: addr("[::1]:8001"),
            mailbox: format!("[2001:db8::1]:50000#{fp}").parse().unwrap(),
            data_dir: PathBuf::from("123"),
            max_body_bytes: 1,
            pull_interval: Duration::from_millis(1500),
            move_grace: Duration::from_secs(60),
            access_token: Some("t0k3n".into()),
            require_token: false,
            passphrase_env: Some("MY_PASSPHRASE".into()),
            passphrase_file: Some(PathBuf::from("/run/secrets/pass")),
        },
        NodeConfig {
            data_dir: PathBuf::from("dir with spaces/# not a comment"),
            pull_interval: Duration::new(3, 7),
            ..NodeConfig::default()
        },
    ];
    for node in nodes {
        let yaml = to_yaml(&node).unwrap();
        let back = load_text::<NodeConfig>(&yaml, Env::new(), &[]).unwrap();
        assert_eq!(back.config, node, "{yaml}");
    }

    let mailboxes = [
        MailboxConfig::default(),
        MailboxConfig {
            listen: addr("0.0.0.0:443"),
            dashboard: addr("[::]:80"),
            data_dir: PathBuf::from("true"),
            retention: Duration::from_secs(400 * 24 * 3600 + 17),
            max_envelope_bytes: usize::MAX,
            rate_per_second: 0.5,
            allowlist: vec!["ab".repeat(32)],
            ..MailboxConfig::default()
        },
    ];
    for mailbox in mailboxes {
        let yaml = to_yaml(&mailbox).unwrap();
        let back = load_text::<MailboxConfig>(&yaml, Env::new(), &[]).unwrap();
        assert_eq!(back.config, mailbox, "{yaml}");
    }
}

#[test]
fn to_yaml_lists_every_key() {
    let yaml = to_yaml(&MailboxConfig::default()).unwrap();
    for key in [
        "listen:",
        "dashboard:",
        "data_dir:",
        "retention: 7days",
        "max_envelope_bytes: 70000",
    ] {
        assert!(yaml.contains(key), "{yaml}");
    }
}

/// Issue 17: list settings come from the environment too, comma-separated.
#[test]
fn the_allowlist_can_come_from_the_environment() {
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    let loaded: Loaded<MailboxConfig> = load(
        None,
        env(&[("MAILBOX_ALLOWLIST", &format!("{a}, {b},"))]),
        &[],
    )
    .unwrap();
    assert_eq!(loaded.config.allowlist, [a.clone(), b]);
    assert_eq!(loaded.overridden, ["allowlist"]);
    // Empty: no allowlist (everyone may be a recipient).
    let loaded: Loaded<MailboxConfig> = load(None, env(&[("MAILBOX_ALLOWLIST", "")]), &[]).unwrap();
    assert!(loaded.config.allowlist.is_empty());
    // The environment wins over the file, as for every setting.
    let file = yaml_file(&format!("allowlist: [{}]\n", "ef".repeat(32)));
    let loaded: Loaded<MailboxConfig> =
        load(Some(file.path()), env(&[("MAILBOX_ALLOWLIST", &a)]), &[]).unwrap();
    assert_eq!(loaded.config.allowlist, [a]);
}
