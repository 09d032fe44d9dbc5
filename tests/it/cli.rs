//! The command-line contract of CLI.md: identity, config commands, errors.

use crate::harness::{BIN, Device, run_env, stranger_id};
use std::os::unix::fs::PermissionsExt;

const ID2: &str = "IZOHOMQ-J7TFPXB-RCAF7VL-7NX2NJU-RWKOOHH-USOKBBV-OAJSTBK-7WXGKQX";

#[test]
fn init_prints_only_the_device_id_and_keeps_it() {
    let d = Device::new();
    let out = d.run(&["init"]).ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    let id = lines[0];
    assert_eq!(id.len(), 63);
    assert_eq!(id.split('-').count(), 8);
    // The ID is SHA-256 of the certificate in the home, as `id` prints it.
    assert_eq!(d.id(), id);
    let again = d
        .run(&["init", "--name", "renamed"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(again, id);
    let key_mode = std::fs::metadata(d.home().join("key.pem"))
        .expect("key.pem")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let config = std::fs::read_to_string(d.home().join("config.toml")).expect("config");
    assert!(config.contains("renamed"), "{config}");
    assert!(config.contains("schema_version = 1"), "{config}");
}

#[test]
fn default_listen_address_is_port_22100() {
    let d = Device::new();
    d.run(&["init"]).ok();
    let config = std::fs::read_to_string(d.home().join("config.toml")).expect("config");
    assert!(config.contains("0.0.0.0:22100"), "{config}");
}

#[test]
fn home_flag_may_follow_the_subcommand_and_env_works() {
    let d = Device::new();
    let id = d.run(&["init"]).ok().trim().to_string();
    let out = std::process::Command::new(BIN)
        .arg("id")
        .arg("--home")
        .arg(d.home())
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    let env = run_env(&["id"], &[("SHOAL_HOME", &d.home())]);
    assert_eq!(env.ok().trim(), id);
}

#[test]
fn id_without_init_says_to_run_init() {
    let d = Device::new();
    d.run(&["id"]).fails_with("shoal init");
}

#[test]
fn device_add_ls_rm_round_trip_with_json_shape() {
    let d = Device::init();
    d.run(&[
        "device",
        "add",
        &stranger_id().to_lowercase(),
        "--name",
        "nas",
        "--addr",
        "127.0.0.1:22001",
    ])
    .ok();
    d.run(&[
        "device",
        "add",
        &ID2.replace('-', ""),
        "--addr",
        "nas.example:22100",
    ])
    .ok();
    let v = d.run(&["device", "ls", "--json"]).json();
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["id"], stranger_id());
    assert_eq!(arr[0]["name"], "nas");
    assert_eq!(arr[0]["addresses"][0], "127.0.0.1:22001");
    assert_eq!(arr[0]["connected"], false);
    assert_eq!(arr[1]["id"], ID2);
    d.run(&["device", "set", ID2, "--name", "office"]).ok();
    let v = d.run(&["device", "ls", "--json"]).json();
    assert_eq!(v[1]["name"], "office");
    d.run(&["device", "rm", &stranger_id()]).ok();
    let v = d.run(&["device", "ls", "--json"]).json();
    assert_eq!(v.as_array().expect("array").len(), 1);
}

#[test]
fn device_errors_are_one_clear_line_and_change_nothing() {
    let d = Device::init();
    d.run(&["device", "add", &stranger_id()]).ok();
    let before = std::fs::read_to_string(d.home().join("config.toml")).expect("config");
    d.run(&["device", "add", &stranger_id()])
        .fails_with("already trusted");
    let bad_check = "IICARZI-OR523GA-TAED5QZ-3A2LATC-DNYMGGA-FTBM734-PTTWSGI-3H3A4QG";
    d.run(&["device", "add", bad_check])
        .fails_with("check character");
    d.run(&["device", "add", "hello"])
        .fails_with("not a valid device ID");
    d.run(&["device", "add", ID2, "--addr", "no-port"])
        .fails_with("bad device address");
    d.run(&["device", "rm", ID2]).fails_with("unknown device");
    let own = d.id();
    d.run(&["device", "add", &own]).fails_with("own ID");
    let after = std::fs::read_to_string(d.home().join("config.toml")).expect("config");
    assert_eq!(before, after);
}

#[test]
fn folder_add_share_ls_unshare_rm() {
    let d = Device::init();
    d.run(&["device", "add", &stranger_id(), "--name", "nas"])
        .ok();
    let id = d.add_folder("photos", &["--label", "Photos", "--share", &stranger_id()]);
    assert!(d.path("photos/.shoal").is_dir(), "marker made");
    let v = d.run(&["folder", "ls", "--json"]).json();
    assert_eq!(v[0]["id"], id);
    assert_eq!(v[0]["label"], "Photos");
    assert_eq!(v[0]["mode"], "send-receive");
    assert_eq!(v[0]["devices"][0], stranger_id());
    let path = v[0]["path"].as_str().expect("path");
    assert!(std::path::Path::new(path).is_absolute());
    d.run(&["folder", "unshare", &id, &stranger_id()]).ok();
    d.run(&["folder", "unshare", &id, &stranger_id()])
        .fails_with("not shared");
    d.run(&["folder", "share", &id, &stranger_id()]).ok();
    d.run(&["folder", "mode", &id, "receive-only"]).ok();
    let v = d.run(&["folder", "ls", "--json"]).json();
    assert_eq!(v[0]["mode"], "receive-only");
    std::fs::write(d.path("photos/keep.txt"), "x").expect("write");
    d.run(&["folder", "rm", &id]).ok();
    assert!(d.path("photos/keep.txt").exists(), "rm deletes no file");
    let v = d.run(&["folder", "ls", "--json"]).json();
    assert_eq!(v.as_array().expect("array").len(), 0);
}

#[test]
fn folder_with_explicit_id_and_mode() {
    let d = Device::init();
    let id = d.add_folder("docs", &["--id", "docs-1", "--mode", "send-only"]);
    assert_eq!(id, "docs-1");
    let v = d.run(&["folder", "ls", "--json"]).json();
    assert_eq!(v[0]["mode"], "send-only");
    assert_eq!(v[0]["label"], "docs");
    let p = d.path("other");
    d.run(&["folder", "add", p.to_str().expect("utf8"), "--id", "docs-1"])
        .fails_with("already used");
    let r = d.run(&[
        "folder",
        "add",
        p.to_str().expect("utf8"),
        "--mode",
        "sideways",
    ]);
    assert_eq!(r.code, 2, "a bad mode is a usage error: {}", r.stderr);
    assert!(r.stderr.contains("send-receive"), "{}", r.stderr);
}

#[test]
fn nested_folders_and_home_inside_a_folder_are_refused() {
    let d = Device::init();
    d.add_folder("outer", &[]);
    let inner = d.path("outer/inner");
    d.run(&["folder", "add", inner.to_str().expect("utf8")])
        .fails_with("inside folder");
    assert!(!inner.exists(), "a refused folder creates nothing");
    let holder = d.dir.path();
    d.run(&["folder", "add", holder.to_str().expect("utf8")])
        .fails_with("holds");
    d.run(&["folder", "share", "nope", &stranger_id()])
        .fails_with("unknown device");
    d.run(&["device", "add", &stranger_id()]).ok();
    d.run(&["folder", "share", "nope", &stranger_id()])
        .fails_with("unknown folder ID");
}

#[test]
fn bad_listen_address_is_refused() {
    let d = Device::new();
    d.run(&["init", "--listen", "localhost"])
        .fails_with("bad listen address");
    let d = Device::init();
    d.run(&["init", "--listen", "1.2.3.4:70000"])
        .fails_with("bad listen address");
}

#[test]
fn corrupt_or_hand_edited_config_is_a_clear_error() {
    let d = Device::init();
    let path = d.home().join("config.toml");
    let good = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, "this is [[ not toml").expect("write");
    d.run(&["folder", "ls"]).fails_with("not a valid config");
    d.run(&["device", "add", &stranger_id()])
        .fails_with("not a valid config");
    assert_eq!(
        std::fs::read_to_string(&path).expect("config"),
        "this is [[ not toml",
        "a broken config is never overwritten"
    );
    std::fs::write(
        &path,
        good.replace(
            "schema_version = 1",
            "schema_version = 1\nfavourite_colour = \"blue\"",
        ),
    )
    .expect("write");
    d.run(&["folder", "ls"]).fails_with("favourite_colour");
    std::fs::write(&path, good.replace("127.0.0.1:0", "nowhere")).expect("write");
    d.run(&["status"]).fails_with("bad listen address");
    std::fs::write(&path, [0xffu8, 0xfe, 0x00, 0x01]).expect("write");
    d.run(&["device", "ls"]).fails_with("config");
}

#[test]
fn usage_errors_exit_2_and_every_help_works() {
    let d = Device::init();
    assert_eq!(d.run(&["frobnicate"]).code, 2);
    assert_eq!(d.run(&["folder", "add"]).code, 2);
    for args in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["id", "--help"],
        vec!["device", "--help"],
        vec!["device", "add", "--help"],
        vec!["device", "ls", "--help"],
        vec!["device", "set", "--help"],
        vec!["folder", "--help"],
        vec!["folder", "add", "--help"],
        vec!["folder", "share", "--help"],
        vec!["rescan", "--help"],
        vec!["ls", "--help"],
        vec!["status", "--help"],
    ] {
        let r = d.run(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stdout.contains("Usage"), "{args:?}: {}", r.stdout);
    }
    let v = d.run(&["--version"]);
    assert!(v.ok().starts_with("shoal "));
    let c = d.run(&["completions", "bash"]);
    assert!(c.ok().contains("shoal"));
}

#[test]
fn status_without_service_answers_from_config() {
    let d = Device::init();
    d.run(&["device", "add", &stranger_id(), "--name", "nas"])
        .ok();
    let id = d.add_folder("music", &[]);
    let v = d.run(&["status", "--json"]).json();
    assert_eq!(v["device_id"], d.id());
    assert_eq!(v["service_running"], false);
    assert_eq!(v["folders"][0]["id"], id);
    assert_eq!(v["folders"][0]["state"], "idle");
    assert!(v["folders"][0]["error"].is_null());
    assert_eq!(v["devices"][0]["connected"], false);
    assert_eq!(v["devices"][0]["in_bytes_total"], 0);
    std::fs::remove_dir(d.path("music/.shoal")).expect("rm marker");
    let v = d.run(&["status", "--json"]).json();
    assert_eq!(v["folders"][0]["state"], "error");
    assert!(
        v["folders"][0]["error"]
            .as_str()
            .expect("msg")
            .contains("marker")
    );
}

#[test]
fn commands_that_only_read_create_no_index() {
    // Run as root on someone's home, a created index would be root's: the service, run as
    // that user, could not write it. A missing index reads as an empty one.
    let d = Device::init();
    let id = d.add_folder("music", &[]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(d.home().join(format!("index.db{suffix}")));
    }
    let v = d.run(&["status", "--json"]).json();
    assert_eq!(v["folders"][0]["local_files"], 0);
    assert_eq!(d.run(&["ls", &id, "--json"]).json(), serde_json::json!([]));
    assert_eq!(
        d.run(&["conflicts", "--json"]).json(),
        serde_json::json!([])
    );
    assert!(
        !d.home().join("index.db").exists(),
        "a reading command created the index"
    );
}
