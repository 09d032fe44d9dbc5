//! `shoal serve`: trusted connections, strangers, reconnects, the control API.

use crate::harness::{Device, free_port, wait_until};
use std::io::Write;
use std::time::{Duration, Instant};

/// Two devices that trust each other, each listening on its own fixed loopback port.
fn pair() -> (Device, Device, u16, u16) {
    let (pa, pb) = (free_port(), free_port());
    let a = Device::new();
    a.run(&[
        "init",
        "--name",
        "alpha",
        "--listen",
        &format!("127.0.0.1:{pa}"),
    ])
    .ok();
    let b = Device::new();
    b.run(&[
        "init",
        "--name",
        "beta",
        "--listen",
        &format!("127.0.0.1:{pb}"),
    ])
    .ok();
    let (ida, idb) = (a.id(), b.id());
    a.run(&[
        "device",
        "add",
        &idb,
        "--name",
        "beta",
        "--addr",
        &format!("127.0.0.1:{pb}"),
    ])
    .ok();
    b.run(&[
        "device",
        "add",
        &ida,
        "--name",
        "alpha",
        "--addr",
        &format!("127.0.0.1:{pa}"),
    ])
    .ok();
    (a, b, pa, pb)
}

#[test]
fn two_trusted_devices_connect_and_count_bytes() {
    let (a, b, _, _) = pair();
    let (ida, idb) = (a.id(), b.id());
    let _sa = a.serve();
    let _sb = b.serve();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)
        && b.connected_to(&ida)));
    let st = a.status();
    let dev = &st["devices"][0];
    assert_eq!(dev["connected"], true);
    assert!(
        dev["address"]
            .as_str()
            .expect("address")
            .starts_with("127.0.0.1:")
    );
    assert!(dev["in_bytes_total"].as_u64().expect("in") > 0);
    assert!(dev["out_bytes_total"].as_u64().expect("out") > 0);
    let ls = a.run(&["device", "ls", "--json"]).json();
    assert_eq!(ls[0]["connected"], true);
    // Exactly one connection survives even though both sides dial.
    let log = _sa.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_killed_peer_is_reconnected_after_restart() {
    let (a, b, _, _) = pair();
    let (ida, idb) = (a.id(), b.id());
    let _sa = a.serve();
    let mut sb = b.serve();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)));
    sb.kill();
    assert!(
        wait_until(Duration::from_secs(10), || !a.connected_to(&idb)),
        "A noticed B's death"
    );
    let started = Instant::now();
    let _sb2 = b.serve();
    assert!(
        wait_until(Duration::from_secs(10), || a.connected_to(&idb)
            && b.connected_to(&ida)),
        "reconnected within 10 s: {}",
        _sa.log()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn sigterm_stops_cleanly_and_a_second_serve_is_refused() {
    let d = Device::new();
    d.run(&["init", "--listen", "127.0.0.1:0"]).ok();
    let mut s = d.serve();
    let second = d.run(&["serve"]);
    second.fails_with("already running");
    let socket = d.home().join("shoal.sock");
    assert!(socket.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket is private");
    let t = Instant::now();
    s.signal(rustix::process::Signal::TERM);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "exit within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", s.log());
    assert!(!socket.exists(), "socket removed at stop");
    // A SIGKILLed service leaves its socket and lock file behind: the next start copes.
    let mut s2 = d.serve();
    s2.kill();
    assert!(socket.exists());
    let _s3 = d.serve();
    assert_eq!(d.status()["service_running"], true);
}

#[test]
fn a_stranger_is_pending_and_learns_nothing() {
    use shoal::protocol::{FrameDecoder, Hello, Message, encode};
    let d = Device::new();
    d.run(&["init", "--listen", "127.0.0.1:0"]).ok();
    let folder = d.add_folder("secret-folder", &["--label", "Secret Label"]);
    let s = d.serve();
    let addr: std::net::SocketAddr = d.listen_addr().parse().expect("addr");
    // A real TLS peer with its own fresh identity, speaking the protocol.
    let stranger = shoal::identity::Identity::generate().expect("identity");
    let tls = shoal::net::tls::configs(&stranger).expect("tls");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let received: Vec<u8> = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
        let name = rustls::pki_types::ServerName::try_from("shoal").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("tls handshake");
        let mut out = Vec::new();
        encode(&Message::Hello(Hello::ours("mallory")), &mut out).expect("encode");
        tls.write_all(&out).await.expect("write");
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut all)).await;
        all
    });
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains(&folder), "folder ID leaked to a stranger");
    assert!(!text.contains("Secret Label"), "label leaked to a stranger");
    let mut dec = FrameDecoder::new();
    dec.push(&received);
    let mut kinds = Vec::new();
    while let Ok(Some(m)) = dec.next_message() {
        kinds.push(m.kind().name());
    }
    assert_eq!(
        kinds,
        vec!["Hello", "Close"],
        "a stranger gets a Hello and a Close only"
    );
    let p = d.run(&["pending", "--json"]).json();
    assert_eq!(p["devices"][0]["id"], stranger.id.to_string());
    assert_eq!(p["devices"][0]["name"], "mallory");
    assert!(
        p["devices"][0]["last_seen"]
            .as_str()
            .expect("time")
            .contains('T')
    );
    drop(s);
}

#[test]
fn an_openssl_stranger_is_listed_under_its_certificate_id() {
    let d = Device::new();
    d.run(&["init", "--listen", "127.0.0.1:0"]).ok();
    let _s = d.serve();
    let addr = d.listen_addr();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=stranger",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut client = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-tls1_3", "-quiet"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s_client");
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(&cert).expect("pem");
    let want = shoal::identity::DeviceId::from_cert_der(&der).to_string();
    let listed = wait_until(Duration::from_secs(10), || {
        let p = d.run(&["pending", "--json"]).json();
        p["devices"]
            .as_array()
            .map(|a| a.iter().any(|x| x["id"] == want))
            .unwrap_or(false)
    });
    if let Some(mut stdin) = client.stdin.take() {
        let _ = stdin.write_all(b"hello\n");
    }
    let _ = client.kill();
    let _ = client.wait();
    assert!(listed, "stranger {want} not pending");
}

#[test]
fn garbage_on_the_port_leaves_the_trusted_connection_up() {
    let (a, b, pa, _) = pair();
    let idb = b.id();
    let sa = a.serve();
    let _sb = b.serve();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)));
    let junk: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        // A TLS record header announcing a giant handshake record.
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff],
        Vec::new(),
    ];
    let mut idle = Vec::new();
    for j in &junk {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", pa)).expect("connect");
        let _ = s.write_all(j);
        idle.push(s); // kept open: a peer that stops mid-handshake
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        a.connected_to(&idb),
        "trusted connection survived: {}",
        sa.log()
    );
    assert_eq!(a.status()["service_running"], true);
}

#[test]
fn config_changes_go_through_the_running_service_and_apply_live() {
    let (a, b, _, pb) = pair();
    let (ida, idb) = (a.id(), b.id());
    let _sa = a.serve();
    // B is not running yet: A keeps dialling. Remove B from A's config while A runs.
    a.run(&["device", "rm", &idb]).ok();
    let v = a.run(&["device", "ls", "--json"]).json();
    assert_eq!(v.as_array().expect("array").len(), 0);
    let _sb = b.serve();
    // B dials A, but A no longer trusts B: B is pending on A.
    assert!(wait_until(Duration::from_secs(10), || {
        a.run(&["pending", "--json"]).json()["devices"]
            .as_array()
            .map(|x| x.iter().any(|d| d["id"] == idb))
            .unwrap_or(false)
    }));
    // Accept through the running service; the connection comes up within seconds.
    a.run(&["accept", "device", &idb]).ok();
    assert_eq!(
        a.run(&["device", "ls", "--json"]).json()[0]["name"],
        "beta",
        "name from Hello"
    );
    a.run(&["device", "set", &idb, "--addr", &format!("127.0.0.1:{pb}")])
        .ok();
    assert!(wait_until(Duration::from_secs(10), || a.connected_to(&idb)
        && b.connected_to(&ida)));
    // A shares a folder: B sees it offered, and accepts it.
    let fid = a.add_folder("docs", &["--label", "Docs", "--share", &idb]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            b.run(&["pending", "--json"]).json()["folders"]
                .as_array()
                .map(|x| {
                    x.iter()
                        .any(|f| f["id"] == fid && f["offered_by"][0] == ida)
                })
                .unwrap_or(false)
        }),
        "folder offer reaches B within 2 s"
    );
    let path = b.path("docs-here");
    b.run(&[
        "accept",
        "folder",
        &fid,
        "--path",
        path.to_str().expect("utf8"),
    ])
    .ok();
    let f = b.run(&["folder", "ls", "--json"]).json();
    assert_eq!(f[0]["id"], fid);
    assert_eq!(f[0]["label"], "Docs");
    assert_eq!(f[0]["devices"][0], ida);
    assert!(path.join(".shoal").is_dir());
    assert_eq!(
        b.run(&["pending", "--json"]).json()["folders"]
            .as_array()
            .map(|x| x.len()),
        Some(0)
    );
    // Removing the device drops the connection at once.
    a.run(&["device", "rm", &idb]).ok();
    assert!(wait_until(Duration::from_secs(2), || !a.connected_to(&idb)));
}

#[test]
fn a_home_too_long_for_a_socket_address_still_works() {
    let d = Device::new();
    let deep = d.dir.path().join("x".repeat(60)).join("y".repeat(60));
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(crate::harness::BIN);
        c.arg("--home").arg(&deep).args(args);
        c.output().expect("run")
    };
    assert!(run(&["init", "--listen", "127.0.0.1:0"]).status.success());
    let mut child = std::process::Command::new(crate::harness::BIN)
        .arg("--home")
        .arg(&deep)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let ok = wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&run(&["status", "--json"]).stdout)
            .contains("\"service_running\": true")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "status through a long socket path");
}

#[test]
fn rescan_goes_through_the_running_service() {
    let d = Device::new();
    d.run(&["init", "--listen", "127.0.0.1:0"]).ok();
    let id = d.add_folder("f", &[]);
    let _s = d.serve();
    std::fs::write(d.path("f/new.txt"), "fresh").expect("write");
    d.run(&["rescan", &id]).ok();
    let ls = d.run(&["ls", &id, "--json"]).json();
    assert!(
        ls.as_array()
            .expect("array")
            .iter()
            .any(|e| e["name"] == "new.txt")
    );
    // The watcher may start its own scan of the same file right after: await idle.
    assert!(wait_until(
        Duration::from_secs(10),
        || d.status()["folders"][0]["state"] == "idle"
    ));
    assert_eq!(d.status()["folders"][0]["local_files"], 1);
}

#[test]
fn subscribers_see_events_as_they_happen() {
    use shoal::service::api::Request;
    use shoal::service::socket::Client;
    let (a, b, _, _) = pair();
    let idb = b.id();
    let id = a.add_folder("f", &[]);
    let _sa = a.serve();
    let mut sub = Client::connect(&a.home().join("shoal.sock")).expect("connect");
    assert_eq!(
        sub.call(&Request::Subscribe).expect("subscribe"),
        "subscribed"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(line) = sub.read_line() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    a.run(&["rescan", &id]).ok();
    let _sb = b.serve();
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
        let all = seen.concat();
        if all.contains("\"state\":\"idle\"")
            && all.contains("device_connected")
            && all.contains(&idb)
        {
            return;
        }
    }
    panic!("events not seen: {seen:?}");
}
