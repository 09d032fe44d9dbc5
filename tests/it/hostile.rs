//! Hostile and broken peers against a real `shoal serve` (invariants 2, 3 and 4 of
//! ARCHITECTURE.md; point 6 of the safety issue).
//!
//! A [`TestPeer`] is a device identity living in the test: it dials the real service over
//! TLS, exchanges Hellos, and then sends whatever a test wants, well-formed messages or raw
//! bytes, while a background task decodes what the service sends and answers its block
//! requests with whatever the test chose (right data, wrong data, refusals).

use crate::harness::{Device, Service, wait_until};
use crate::sync::{noise, tree};
use shoal::identity::{DeviceId, Identity, ShortId};
use shoal::net::tls::TlsConfigs;
use shoal::protocol::file::blocks_hash;
use shoal::protocol::{
    BlockHash, BlockInfo, BlockList, BlockListRequest, COMPRESSION_VERSION, ClusterConfig,
    ClusterDevice, ClusterFolder, Counter, FLAG_COMPRESSED, FileType, FrameDecoder, FrameEncoder,
    Hello, Index, MAX_BLOCK_SIZE, MAX_FRAME_LEN, Message, PROTOCOL_VERSION, Request, Response,
    ResponseCode, Vector, WireBlocks, WireFile, encode,
};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for something that should happen within a second or two.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The test peer's index ID for every folder (any non-zero value will do).
const PEER_INDEX_ID: u64 = 0x5eed_0000_0000_0001;
/// The modification time the test peer gives its files.
const MTIME_NS: i64 = 1_700_000_000_123_456_789;

/// How a test peer answers a block request: a code and the data to send.
type Answer = Arc<dyn Fn(&Request) -> (ResponseCode, Vec<u8>) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One whole frame.
fn frame(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out).expect("the test's message encodes");
    out
}

/// A device that lives in the test: its identity, TLS configs and the runtime its
/// connections run on.
pub(crate) struct TestPeer {
    identity: Identity,
    tls: TlsConfigs,
    name: String,
    rt: tokio::runtime::Runtime,
}

impl TestPeer {
    pub(crate) fn new(name: &str) -> Self {
        let identity = Identity::generate().expect("identity");
        let tls = shoal::net::tls::configs(&identity).expect("TLS configs");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            identity,
            tls,
            name: name.to_string(),
            rt,
        }
    }

    fn id(&self) -> String {
        self.identity.id.to_string()
    }

    fn short(&self) -> ShortId {
        self.identity.id.short()
    }

    /// Dials `addr`: TLS, then the Hello exchange. The connection then runs in the
    /// background until the service closes it or the [`Conn`] is dropped.
    pub(crate) fn connect(&self, addr: SocketAddr) -> Conn {
        self.connect_as(addr, PROTOCOL_VERSION)
    }

    /// [`Self::connect`], announcing protocol `version` in the Hello (an older peer).
    fn connect_as(&self, addr: SocketAddr, version: u32) -> Conn {
        let connector = tokio_rustls::TlsConnector::from(self.tls.client.clone());
        let hello = frame(&Message::Hello(Hello {
            protocol_version: version,
            ..Hello::ours(self.name.clone())
        }));
        let (stream, decoder) = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                let server = rustls::pki_types::ServerName::try_from("shoal").expect("name");
                let mut tls = connector.connect(server, tcp).await.expect("TLS handshake");
                tls.write_all(&hello).await.expect("send Hello");
                tls.flush().await.expect("flush");
                let mut decoder = FrameDecoder::new();
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match decoder.next_message().expect("the service's Hello decodes") {
                        Some(Message::Hello(h)) => {
                            // The version both speak decides which flags are accepted.
                            decoder.set_version(h.protocol_version.min(version));
                            break;
                        }
                        Some(other) => panic!("the service's first message: {other:?}"),
                        None => {}
                    }
                    let n = tls.read(&mut buf).await.expect("read the Hello");
                    assert!(n > 0, "the service closed during the Hello exchange");
                    decoder.push(&buf[..n]);
                }
                (tls, decoder)
            })
            .await
            .expect("TLS and Hello within 10 s")
        });
        let state = Arc::new(Mutex::new(ConnState::default()));
        let refuse: Answer = Arc::new(|_| (ResponseCode::NoSuchFile, Vec::new()));
        let answer = Arc::new(Mutex::new(refuse));
        let (out, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let (mut rd, mut wr) = tokio::io::split(stream);
        let writer = self.rt.spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
            }
        });
        let reader = self.rt.spawn({
            let (state, answer, out) = (state.clone(), answer.clone(), out.clone());
            async move {
                let mut decoder = decoder;
                let why = 'conn: loop {
                    loop {
                        match decoder.next_message() {
                            Ok(Some(m)) => handle(&state, &answer, &out, m),
                            Ok(None) => break,
                            Err(e) => {
                                break 'conn format!("the service sent an undecodable frame: {e}");
                            }
                        }
                    }
                    match rd.read(decoder.read_buf()).await {
                        Ok(0) => break "end of stream".to_string(),
                        Ok(n) => {
                            decoder.filled(n);
                            lock(&state).bytes_in += n as u64;
                        }
                        Err(e) => break format!("read error: {e}"),
                    }
                };
                lock(&state).closed.get_or_insert(why);
            }
        });
        Conn {
            out,
            state,
            answer,
            next_id: AtomicU64::new(1_000_000),
            tasks: vec![reader, writer],
        }
    }
}

/// What the background reader saw.
#[derive(Default)]
struct ConnState {
    /// Every message after the service's Hello, in order.
    received: Vec<Message>,
    /// Why the connection ended (a `Close`, the end of the stream, an error), once it has.
    closed: Option<String>,
    /// Bytes of frames received (inside TLS), the Hello's excluded.
    bytes_in: u64,
}

/// Records a message from the service; answers it if it is a block request.
fn handle(
    state: &Mutex<ConnState>,
    answer: &Mutex<Answer>,
    out: &tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    m: Message,
) {
    if let Message::Request(r) = &m {
        let f = lock(answer).clone();
        let (code, data) = f(r);
        let resp = Message::Response(Response {
            id: r.id,
            code,
            data,
        });
        let mut bytes = Vec::new();
        if encode(&resp, &mut bytes).is_ok() {
            let _ = out.send(bytes);
        }
    }
    let mut st = lock(state);
    if let Message::Close { reason } = &m {
        st.closed.get_or_insert(format!("Close: {reason}"));
    }
    st.received.push(m);
}

/// A test peer's live connection to the service.
pub(crate) struct Conn {
    out: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    state: Arc<Mutex<ConnState>>,
    answer: Arc<Mutex<Answer>>,
    next_id: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    pub(crate) fn send(&self, msg: &Message) {
        self.send_raw(frame(msg));
    }

    fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.out.send(bytes);
    }

    /// From now on, block requests are answered by `f`.
    pub(crate) fn answer_with(
        &self,
        f: impl Fn(&Request) -> (ResponseCode, Vec<u8>) + Send + Sync + 'static,
    ) {
        *lock(&self.answer) = Arc::new(f);
    }

    fn closed(&self) -> Option<String> {
        lock(&self.state).closed.clone()
    }

    fn received(&self) -> Vec<Message> {
        lock(&self.state).received.clone()
    }

    fn bytes_in(&self) -> u64 {
        lock(&self.state).bytes_in
    }

    /// The block requests the service has sent us.
    pub(crate) fn requests(&self) -> Vec<Request> {
        lock(&self.state)
            .received
            .iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the service for one block and waits for its answer.
    #[track_caller]
    fn request_block(&self, folder: &str, name: &str, offset: u64, data: &[u8]) -> Response {
        let id = self.next_id();
        self.send(&Message::Request(Request {
            id,
            folder: folder.into(),
            name: name.into(),
            offset,
            size: data.len() as u32,
            hash: BlockHash::of(data),
        }));
        let mut got = None;
        let answered = wait_until(TIMEOUT, || {
            got = self.received().into_iter().find_map(|m| match m {
                Message::Response(r) if r.id == id => Some(r),
                _ => None,
            });
            got.is_some() || self.closed().is_some()
        });
        assert!(answered, "no answer to request {id} for {folder}/{name}");
        got.unwrap_or_else(|| panic!("connection closed: {:?}", self.closed()))
    }

    /// Asks the service for a block list and waits for the first part of its answer.
    #[track_caller]
    fn request_list(&self, folder: &str, name: &str, list: BlockHash) -> BlockList {
        let id = self.next_id();
        self.send(&Message::BlockListRequest(BlockListRequest {
            id,
            folder: folder.into(),
            name: name.into(),
            list,
        }));
        let mut got = None;
        let answered = wait_until(TIMEOUT, || {
            got = self.received().into_iter().find_map(|m| match m {
                Message::BlockList(l) if l.id == id => Some(l),
                _ => None,
            });
            got.is_some() || self.closed().is_some()
        });
        assert!(
            answered,
            "no answer to list request {id} for {folder}/{name}"
        );
        got.unwrap_or_else(|| panic!("connection closed: {:?}", self.closed()))
    }
}

/// A file's content and the blocks the test peer announces for it.
#[derive(Clone)]
pub(crate) struct Content {
    pub(crate) data: Vec<u8>,
    pub(crate) blocks: Vec<BlockInfo>,
}

impl Content {
    /// `data` cut into blocks of `block` bytes (any cut is valid on the wire).
    pub(crate) fn new(data: Vec<u8>, block: usize) -> Self {
        let blocks = data
            .chunks(block)
            .map(|c| BlockInfo {
                hash: BlockHash::of(c),
                size: c.len() as u32,
            })
            .collect();
        Self { data, blocks }
    }

    fn small(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec(), 64 << 10)
    }

    /// The bytes a request asks for, if they are one of our blocks.
    pub(crate) fn block(&self, r: &Request) -> Option<&[u8]> {
        let mut off = 0u64;
        for b in &self.blocks {
            if off == r.offset && b.size == r.size && b.hash == r.hash {
                return self
                    .data
                    .get(off as usize..(off + u64::from(b.size)) as usize);
            }
            off += u64::from(b.size);
        }
        None
    }
}

/// Answers requests with the right data of any of `contents`, refuses anything else.
fn serving(
    contents: &[&Content],
) -> impl Fn(&Request) -> (ResponseCode, Vec<u8>) + Send + Sync + use<> {
    let mut map: HashMap<BlockHash, Vec<u8>> = HashMap::new();
    for c in contents {
        let mut off = 0usize;
        for b in &c.blocks {
            map.insert(b.hash, c.data[off..off + b.size as usize].to_vec());
            off += b.size as usize;
        }
    }
    move |r| match map.get(&r.hash) {
        Some(d) if d.len() == r.size as usize => (ResponseCode::Ok, d.clone()),
        _ => (ResponseCode::NoSuchFile, Vec::new()),
    }
}

fn entry(peer: &TestPeer, name: &str, seq: u64, version: u64, kind: FileType) -> WireFile {
    WireFile {
        name: name.to_string(),
        file_type: kind,
        size: 0,
        permissions: if kind == FileType::File { 0o644 } else { 0o755 },
        modified_ns: MTIME_NS,
        modified_by: peer.short(),
        deleted: false,
        invalid: false,
        version: Vector::from_counters(vec![Counter {
            id: peer.short(),
            value: version,
        }]),
        sequence: seq,
        symlink_target: String::new(),
        blocks: WireBlocks::Full(Vec::new()),
    }
}

pub(crate) fn file_entry(
    peer: &TestPeer,
    name: &str,
    seq: u64,
    c: &Content,
    perms: u32,
) -> WireFile {
    WireFile {
        size: c.data.len() as u64,
        permissions: perms,
        blocks: WireBlocks::Full(c.blocks.clone()),
        ..entry(peer, name, seq, 1, FileType::File)
    }
}

fn dir_entry(peer: &TestPeer, name: &str, seq: u64, perms: u32) -> WireFile {
    WireFile {
        permissions: perms,
        ..entry(peer, name, seq, 1, FileType::Dir)
    }
}

fn symlink_entry(peer: &TestPeer, name: &str, seq: u64, target: &str) -> WireFile {
    WireFile {
        symlink_target: target.to_string(),
        ..entry(peer, name, seq, 1, FileType::Symlink)
    }
}

pub(crate) fn index(folder: &str, files: Vec<WireFile>) -> Message {
    Message::Index(Index {
        folder: folder.to_string(),
        index_id: PEER_INDEX_ID,
        files,
        last: true,
    })
}

/// A ClusterConfig from `peer` listing `folders`, each with the real device and the peer,
/// neither holding anything of the other yet.
fn cluster_config(real: &Device, peer: &TestPeer, folders: &[&str]) -> Message {
    let real_id: DeviceId = real.id().parse().expect("device ID");
    let dev = |id: DeviceId, name: &str| ClusterDevice {
        id,
        name: name.to_string(),
        addresses: Vec::new(),
        index_id: 0,
        max_sequence: 0,
    };
    Message::ClusterConfig(ClusterConfig {
        folders: folders
            .iter()
            .map(|f| ClusterFolder {
                id: f.to_string(),
                label: f.to_string(),
                devices: vec![dev(real_id, "real"), dev(peer.identity.id, &peer.name)],
            })
            .collect(),
    })
}

/// A real device (not yet running) that trusts `peers` and shares folder "f" (at `f`)
/// with them.
fn device_sharing_with(peers: &[&TestPeer]) -> Device {
    device_sharing_at(peers, "f")
}

/// `device_sharing_with`, the folder (ID "f") at `rel`.
pub(crate) fn device_sharing_at(peers: &[&TestPeer], rel: &str) -> Device {
    let d = Device::init();
    let ids: Vec<String> = peers.iter().map(|p| p.id()).collect();
    for (p, id) in peers.iter().zip(&ids) {
        d.run(&["device", "add", id, "--name", &p.name]).ok();
    }
    let mut args = vec!["--id", "f"];
    for id in &ids {
        args.extend(["--share", id.as_str()]);
    }
    d.add_folder(rel, &args);
    d
}

/// Connects `peer` to the running `d`, waits until `d` lists it as connected, and sends
/// a ClusterConfig for `folders`.
pub(crate) fn join(d: &Device, peer: &TestPeer, folders: &[&str]) -> Conn {
    let addr: SocketAddr = d.listen_addr().parse().expect("listen address");
    let conn = peer.connect(addr);
    assert!(
        wait_until(TIMEOUT, || d.connected_to(&peer.id())),
        "the service lists the test peer as connected (closed: {:?})",
        conn.closed()
    );
    conn.send(&cluster_config(d, peer, folders));
    conn
}

/// The service process runs and answers `status --json`.
#[track_caller]
fn assert_alive(d: &Device, s: &mut Service) {
    let exited = s.child.try_wait().expect("try_wait");
    assert!(
        exited.is_none(),
        "the service exited ({exited:?}): {}",
        s.log()
    );
    let r = d.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "status --json: {}\nlog:\n{}", r.stderr, s.log());
    assert_eq!(r.json()["service_running"], true);
}

/// Waits until `path` holds `want`; false if it never does.
fn appears(path: &Path, want: &[u8]) -> bool {
    wait_until(TIMEOUT, || {
        std::fs::read(path).ok().as_deref() == Some(want)
    })
}

/// Waits until `path` holds `want`.
#[track_caller]
fn assert_appears(path: &Path, want: &[u8], s: &Service) {
    let ok = appears(path, want);
    assert!(
        ok,
        "{path:?} did not get the right content; log:\n{}",
        s.log()
    );
}

/// Names in a directory (not recursive).
fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn is_temp(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .is_some_and(|b| b.starts_with(".shoal-tmp-"))
}

#[test]
fn a_block_with_a_wrong_hash_is_never_written() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let mut s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    // One file per way of being wrong: right size and wrong bytes, one byte short, one bit
    // flipped, "Ok" with no data at all.
    let victims: Vec<(String, Content)> = (0..4u64)
        .map(|i| {
            let name = format!("victim-{i}.bin");
            (name, Content::new(noise(150_000, 10 + i), 100_000))
        })
        .collect();
    let v = victims.clone();
    conn.answer_with(move |r| {
        let Some((i, good)) = v
            .iter()
            .enumerate()
            .find_map(|(i, (name, c))| (*name == r.name).then(|| c.block(r).map(|b| (i, b))))
            .flatten()
        else {
            return (ResponseCode::NoSuchFile, Vec::new());
        };
        let bad = match i {
            0 => vec![0xEE; good.len()],
            1 => good[..good.len() - 1].to_vec(),
            2 => {
                let mut bad = good.to_vec();
                bad[777] ^= 0x10;
                bad
            }
            _ => Vec::new(),
        };
        (ResponseCode::Ok, bad)
    });
    let entries = |first_seq: u64, version: u64| {
        victims
            .iter()
            .zip(first_seq..)
            .map(|((name, c), seq)| WireFile {
                version: Vector::from_counters(vec![Counter {
                    id: peer.short(),
                    value: version,
                }]),
                ..file_entry(&peer, name, seq, c, 0o644)
            })
            .collect::<Vec<_>>()
    };
    conn.send(&index("f", entries(1, 1)));
    let f = d.path("f");
    // The positive signal: the service gave up on every file after its retries.
    // (A victim in place ends the wait early too, to be reported below.)
    let gave_up = wait_until(TIMEOUT, || {
        let log = s.log();
        victims.iter().all(|(name, _)| {
            log.lines()
                .any(|l| l.contains("pull failed") && l.contains(name.as_str()))
        }) || victims.iter().any(|(name, _)| f.join(name).exists())
    });
    for (name, (_, _, content)) in tree(&f) {
        assert!(
            is_temp(&name),
            "{name:?} was put in place from bad blocks (or appeared from nowhere)"
        );
        // Only verified blocks are ever written, even to a temp file: none came.
        assert!(
            content.iter().all(|&b| b == 0),
            "temp file {name:?} holds bytes of a bad block"
        );
    }
    assert!(gave_up, "the pulls never ended; log:\n{}", s.log());
    let asked: BTreeSet<String> = conn.requests().into_iter().map(|r| r.name).collect();
    let all: BTreeSet<String> = victims.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        asked, all,
        "every file was requested (and answered wrongly)"
    );
    assert_alive(&d, &mut s);
    // Now the peer behaves, and announces new versions of the files.
    let contents: Vec<&Content> = victims.iter().map(|(_, c)| c).collect();
    conn.answer_with(serving(&contents));
    conn.send(&index("f", entries(5, 2)));
    for (name, c) in &victims {
        assert_appears(&f.join(name), &c.data, &s);
    }
    assert!(
        wait_until(TIMEOUT, || tree(&f).keys().all(|n| !is_temp(n))),
        "no temp file left: {:?}",
        tree(&f).keys().collect::<Vec<_>>()
    );
    assert_alive(&d, &mut s);
}

#[test]
fn a_failed_pull_is_retried_without_a_new_index() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    let content = Content::new(noise(150_000, 2), 100_000);
    // Wrong bytes at first (the service discards them and gives up on the file).
    conn.answer_with(|r| (ResponseCode::Ok, vec![0xEE; r.size as usize]));
    conn.send(&index(
        "f",
        vec![file_entry(&peer, "later.bin", 1, &content, 0o644)],
    ));
    assert!(
        wait_until(TIMEOUT, || s
            .log()
            .lines()
            .any(|l| l.contains("pull failed") && l.contains("later.bin"))),
        "the pull never ended; log:\n{}",
        s.log()
    );
    // The peer serves the right data now; the same index entry stands.
    conn.answer_with(serving(&[&content]));
    assert_appears(&d.path("f/later.bin"), &content.data, &s);
}

#[test]
fn an_entry_the_peer_marks_invalid_is_never_pulled_and_never_replaces_or_deletes() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    let keep = Content::small("keep me");
    let edit = Content::small("do not replace me");
    let theirs = Content::small("the peer's version it says not to take");
    let fine = Content::small("a valid file");
    conn.answer_with(serving(&[&keep, &edit, &theirs, &fine]));
    // The real device first takes two files from the peer.
    conn.send(&index(
        "f",
        vec![
            file_entry(&peer, "keep.txt", 1, &keep, 0o644),
            file_entry(&peer, "edit.txt", 2, &edit, 0o644),
        ],
    ));
    let f = d.path("f");
    assert_appears(&f.join("keep.txt"), &keep.data, &s);
    assert_appears(&f.join("edit.txt"), &edit.data, &s);
    // Then newer versions of both, marked invalid: a deletion and an edit; a new file
    // marked invalid (with no blocks, as the wire allows); then a valid file that shows
    // the index was handled.
    let v2 = |w: WireFile| WireFile {
        invalid: true,
        version: Vector::from_counters(vec![Counter {
            id: peer.short(),
            value: 2,
        }]),
        ..w
    };
    let gone = WireFile {
        deleted: true,
        ..v2(entry(&peer, "keep.txt", 3, 2, FileType::File))
    };
    let replaced = v2(file_entry(&peer, "edit.txt", 4, &theirs, 0o644));
    let unreadable = WireFile {
        size: 5000,
        ..v2(entry(&peer, "new.bin", 5, 2, FileType::File))
    };
    conn.send(&index(
        "f",
        vec![
            gone,
            replaced,
            unreadable,
            file_entry(&peer, "ok.txt", 6, &fine, 0o644),
        ],
    ));
    assert_appears(&f.join("ok.txt"), &fine.data, &s);
    // Every chance for a wrong action to happen.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::read(f.join("keep.txt")).ok(),
        Some(keep.data.clone()),
        "an invalid tombstone deleted the file"
    );
    assert_eq!(
        std::fs::read(f.join("edit.txt")).ok(),
        Some(edit.data.clone()),
        "an invalid entry replaced the file"
    );
    assert!(
        !f.join("new.bin").exists(),
        "an invalid entry was pulled (as {:?} bytes)",
        std::fs::metadata(f.join("new.bin")).map(|m| m.len())
    );
    let asked: Vec<String> = conn
        .requests()
        .into_iter()
        .filter(|r| r.name == "new.bin" || theirs.blocks.iter().any(|b| b.hash == r.hash))
        .map(|r| r.name)
        .collect();
    assert!(
        asked.is_empty(),
        "requested content of invalid entries: {asked:?}"
    );
    assert!(tree(&f).keys().all(|n| !is_temp(n)), "no temp file");
    let st = d.status();
    assert_eq!(st["folders"][0]["need_files"], 0, "{st}");
    assert!(st["folders"][0]["error"].is_null(), "{st}");
}

#[test]
fn names_that_escape_the_folder_are_refused() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let mut s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    let parent = d.dir.path().to_path_buf();
    let f = d.path("f");
    let etc_evil_before = Path::new("/etc/evil").exists();
    let parent_before = names_in(&parent);
    let abs_in_parent = format!("{}/abs-evil", parent.to_str().expect("utf8"));
    let evil = Content::small("evil bytes\n");
    let good = Content::small("good bytes\n");
    let bad_files: Vec<&str> = vec![
        "../escape",
        "/etc/evil",
        &abs_in_parent,
        "a/../../x",
        "a\\b",
        ".shoal/x",
        "x/.shoal-tmp-y",
        "nul\0name",
        // "café" with a combining accent: NFD, not NFC.
        "cafe\u{301}.txt",
        "",
        ".",
        "..",
        "a/./b",
        "a//b",
        "trailing/",
        ".shoalignore",
        // Shoal's own names in another case: the same entries on macOS or Windows.
        ".Shoal/x",
        "x/.SHOAL-TMP-y",
        ".ShoalIgnore",
    ];
    let bad_entries = |seq: &mut u64| {
        let mut next = || {
            *seq += 1;
            *seq
        };
        let mut v: Vec<WireFile> = bad_files
            .iter()
            .map(|name| file_entry(&peer, name, next(), &evil, 0o644))
            .collect();
        v.push(dir_entry(&peer, "../escape-dir", next(), 0o755));
        v.push(symlink_entry(&peer, "../escape-link", next(), "/"));
        v.push(dir_entry(&peer, "/abs-dir", next(), 0o755));
        v
    };
    conn.answer_with(serving(&[&evil, &good]));
    let mut seq = 0;
    // Each bad entry alone (so no other check can hide a missing one), then all of them
    // again in one batch with a good entry last.
    for e in bad_entries(&mut seq) {
        conn.send(&index("f", vec![e]));
    }
    let mut batch = bad_entries(&mut seq);
    batch.push(file_entry(&peer, "good.txt", seq + 1, &good, 0o644));
    conn.send(&index("f", batch));
    // The positive signal; checked last, so that an escape is reported as such.
    let good_came = appears(&f.join("good.txt"), &good.data);
    assert_eq!(
        names_in(&parent),
        parent_before,
        "something appeared beside the folder"
    );
    assert_eq!(
        Path::new("/etc/evil").exists(),
        etc_evil_before,
        "/etc/evil was written"
    );
    assert!(
        !f.join(".shoal/x").exists(),
        "a file was written in the marker"
    );
    let in_folder: Vec<String> = tree(&f).into_keys().collect();
    assert!(
        in_folder.iter().all(|n| n == "good.txt"),
        "the folder holds more than the good file: {in_folder:?}"
    );
    let asked: BTreeSet<String> = conn.requests().into_iter().map(|r| r.name).collect();
    assert!(
        asked.iter().all(|n| n == "good.txt"),
        "the service asked for data of a refused name: {asked:?}"
    );
    assert!(
        good_came,
        "the good entry of the batch was not applied; log:\n{}",
        s.log()
    );
    assert_alive(&d, &mut s);
}

#[test]
fn no_write_goes_through_a_symlink_inside_the_folder() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let outside = tempfile::tempdir().expect("tempdir");
    let f = d.path("f");
    std::os::unix::fs::symlink(outside.path(), f.join("link")).expect("symlink");
    let mut s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    let evil = Content::small("through the link\n");
    let good = Content::small("good bytes\n");
    conn.answer_with(serving(&[&evil, &good]));
    conn.send(&index(
        "f",
        vec![
            file_entry(&peer, "link/pwned", 1, &evil, 0o644),
            dir_entry(&peer, "link/sub", 2, 0o755),
            symlink_entry(&peer, "link/ln", 3, "/"),
            file_entry(&peer, "good.txt", 4, &good, 0o644),
        ],
    ));
    // The positive signal; checked last, so that an escape is reported as such.
    let good_came = appears(&f.join("good.txt"), &good.data);
    assert_eq!(
        names_in(outside.path()),
        BTreeSet::new(),
        "a write went through the symlink"
    );
    assert_eq!(
        std::fs::read_link(f.join("link")).expect("still a symlink"),
        outside.path()
    );
    assert!(
        good_came,
        "the good entry of the batch was not applied; log:\n{}",
        s.log()
    );
    assert_alive(&d, &mut s);
}

#[test]
fn a_giant_or_malformed_frame_closes_only_that_connection() {
    let peer = TestPeer::new("mallory");
    let bystander = TestPeer::new("bystander");
    let d = device_sharing_with(&[&peer, &bystander]);
    let hello = b"hello from the real device\n";
    std::fs::write(d.path("f/hello.txt"), hello).expect("write");
    let mut s = d.serve();
    let other = join(&d, &bystander, &["f"]);
    let truncated = {
        let mut fr = frame(&Message::Request(Request {
            id: 1,
            folder: "f".into(),
            name: "hello.txt".into(),
            offset: 0,
            size: 10,
            hash: BlockHash([7; 32]),
        }));
        fr.truncate(fr.len() - 5);
        let len = (fr.len() - 4) as u32;
        fr[..4].copy_from_slice(&len.to_be_bytes());
        fr
    };
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        // 1 GiB announced: refused from the 4 length bytes alone.
        ("a 1 GiB frame header", vec![0x40, 0, 0, 0, 3, 0]),
        (
            "a frame one byte over the limit",
            [&(MAX_FRAME_LEN + 1).to_be_bytes()[..], &[3, 0]].concat(),
        ),
        ("garbage bytes", noise(4096, 3)),
        ("an unknown message type", vec![0, 0, 0, 2, 200, 0]),
        ("a reserved flag", vec![0, 0, 0, 2, 8, 0x80]),
        (
            "a compressed Ping with no body",
            vec![0, 0, 0, 2, 8, FLAG_COMPRESSED],
        ),
        (
            "a decompression bomb: 12 bytes that claim 16 MiB",
            compressed_frame(3, u64::from(MAX_FRAME_LEN - 2), &[0x1f; 10]),
        ),
        (
            "a compressed Response that claims more than a block",
            compressed_frame(5, u64::from(MAX_BLOCK_SIZE) * 2, &[0; 4000]),
        ),
        (
            "a compressed body of another size than it claims",
            compressed_frame(2, 999, &lz4_flex::block::compress(&[0; 1000])),
        ),
        (
            "a compressed body that does not decompress",
            compressed_frame(3, 500, &noise(300, 5)),
        ),
        ("a frame too short for its type", vec![0, 0, 0, 1, 8]),
        ("a Ping with a body", vec![0, 0, 0, 3, 8, 0, 0]),
        ("a body that ends early", truncated),
        (
            "a second Hello",
            frame(&Message::Hello(Hello::ours("again"))),
        ),
        (
            "a response to no request",
            frame(&Message::Response(Response {
                id: 424_242,
                code: ResponseCode::Ok,
                data: b"unasked".to_vec(),
            })),
        ),
    ];
    for (what, bytes) in hostile {
        let conn = join(&d, &peer, &["f"]);
        conn.send_raw(bytes);
        assert!(
            wait_until(TIMEOUT, || conn.closed().is_some()),
            "after {what}, the service kept the connection open; log:\n{}",
            s.log()
        );
        assert!(
            wait_until(TIMEOUT, || !d.connected_to(&peer.id())),
            "after {what}, the service still lists the peer as connected"
        );
        assert_alive(&d, &mut s);
        assert_eq!(
            other.closed(),
            None,
            "after {what}, the bystander was dropped"
        );
    }
    // A new connection of the same peer works, and so does the bystander's.
    let conn = join(&d, &peer, &["f"]);
    let r = conn.request_block("f", "hello.txt", 0, hello);
    assert_eq!(
        (r.code, r.data.as_slice()),
        (ResponseCode::Ok, &hello[..]),
        "a fresh connection is served"
    );
    let r = other.request_block("f", "hello.txt", 0, hello);
    assert_eq!((r.code, r.data.as_slice()), (ResponseCode::Ok, &hello[..]));
    assert_alive(&d, &mut s);
}

/// A compressed frame of message type `kind` whose body claims to expand to `raw` bytes
/// and carries `lz` as its LZ4 data.
fn compressed_frame(kind: u8, raw: u64, lz: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut v = raw;
    while v >= 0x80 {
        body.push((v as u8) | 0x80);
        v >>= 7;
    }
    body.push(v as u8);
    body.extend_from_slice(lz);
    let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[kind, FLAG_COMPRESSED]);
    f.extend_from_slice(&body);
    f
}

/// Text that compresses well, about as C headers do.
fn text_of(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("#define SHOAL_TEST_CONSTANT_{i} ({i} << 3) /* value number {i} */\n")
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn blocks_travel_compressed_to_a_new_peer_and_plain_to_an_old_one() {
    let new = TestPeer::new("new");
    let old = TestPeer::new("old");
    let d = device_sharing_with(&[&new, &old]);
    let text = text_of(100_000);
    let random = noise(100_000, 11);
    std::fs::write(d.path("f/text.h"), &text).expect("write");
    std::fs::write(d.path("f/random.bin"), &random).expect("write");
    let mut s = d.serve();
    let addr: SocketAddr = d.listen_addr().parse().expect("listen address");

    // The service's index comes first; the counts below are of block answers alone.
    let indexed = |conn: &Conn| {
        let got = wait_until(TIMEOUT, || {
            conn.received()
                .iter()
                .any(|m| matches!(m, Message::Index(i) if i.last && i.files.len() == 2))
        });
        assert!(got, "the service's index of both files arrives");
    };
    // Version 2: the text block comes compressed, the random one as it is; both whole.
    let conn = join(&d, &new, &["f"]);
    indexed(&conn);
    let before = conn.bytes_in();
    let r = conn.request_block("f", "text.h", 0, &text);
    assert_eq!((r.code, r.data == text), (ResponseCode::Ok, true));
    let text_bytes = conn.bytes_in() - before;
    assert!(
        text_bytes < 50_000,
        "100,000 bytes of text took {text_bytes} bytes on the wire"
    );
    let before = conn.bytes_in();
    let r = conn.request_block("f", "random.bin", 0, &random);
    assert_eq!((r.code, r.data == random), (ResponseCode::Ok, true));
    let random_bytes = conn.bytes_in() - before;
    assert!(
        (100_000..100_100).contains(&random_bytes),
        "100,000 random bytes took {random_bytes} bytes on the wire"
    );
    drop(conn);

    // Version 1: the same text block, uncompressed (a version 1 decoder refuses the flag,
    // so a compressed frame would close the connection).
    let conn = old.connect_as(addr, 1);
    assert!(wait_until(TIMEOUT, || d.connected_to(&old.id())));
    conn.send(&cluster_config(&d, &old, &["f"]));
    indexed(&conn);
    let before = conn.bytes_in();
    let r = conn.request_block("f", "text.h", 0, &text);
    assert_eq!((r.code, r.data == text), (ResponseCode::Ok, true));
    assert!(conn.bytes_in() - before >= 100_000);
    assert_eq!(conn.closed(), None);

    // The service takes compressed frames from a version 2 peer: a compressed Index.
    let conn = join(&d, &new, &["f"]);
    let c = Content::new(text_of(200_000), 64 << 10);
    conn.answer_with(serving(&[&c]));
    let mut bytes = Vec::new();
    FrameEncoder::new(COMPRESSION_VERSION)
        .encode(
            &index("f", vec![file_entry(&new, "from-peer.h", 1, &c, 0o644)]),
            &mut bytes,
        )
        .expect("encodes");
    conn.send_raw(bytes);
    assert_appears(&d.path("f/from-peer.h"), &c.data, &s);
    assert_eq!(conn.closed(), None);
    assert_alive(&d, &mut s);
}

/// A real device with folder "f" shared with `peer` and folder "g" not shared with it,
/// each holding a small and a multi-block file; running, with both folders scanned.
struct TwoFolders {
    d: Device,
    secret: Vec<u8>,
    secret_big: Vec<u8>,
    public: Vec<u8>,
    public_big: Vec<u8>,
}

fn two_folders(peer: &TestPeer) -> TwoFolders {
    let d = device_sharing_with(&[peer]);
    d.add_folder("g", &["--id", "g"]);
    let t = TwoFolders {
        secret: b"the secret of g\n".to_vec(),
        secret_big: noise(400_000, 5),
        public: b"public in f\n".to_vec(),
        public_big: noise(400_000, 6),
        d,
    };
    std::fs::write(t.d.path("g/secret.txt"), &t.secret).expect("write");
    std::fs::write(t.d.path("g/secret.bin"), &t.secret_big).expect("write");
    std::fs::write(t.d.path("f/public.txt"), &t.public).expect("write");
    std::fs::write(t.d.path("f/public.bin"), &t.public_big).expect("write");
    t
}

/// Waits until the running service has indexed `name` in `folder`.
#[track_caller]
fn assert_indexed(d: &Device, folder: &str, name: &str) {
    let ok = wait_until(TIMEOUT, || {
        let r = d.run(&["ls", folder, "--json"]);
        r.code == 0
            && r.json()
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["name"] == name))
    });
    assert!(ok, "{folder}/{name} indexed");
}

#[test]
fn a_device_that_is_not_shared_a_folder_cannot_read_or_write_it() {
    let peer = TestPeer::new("mallory");
    let t = two_folders(&peer);
    let d = &t.d;
    let mut s = d.serve();
    assert_indexed(d, "f", "public.bin");
    assert_indexed(d, "g", "secret.bin");
    // The peer claims to share both folders.
    let conn = join(d, &peer, &["f", "g"]);
    // Reading: a shared folder is served (the control), the other is not, by name or by hash.
    let r = conn.request_block("f", "public.txt", 0, &t.public);
    assert_eq!((r.code, r.data), (ResponseCode::Ok, t.public.clone()));
    let r = conn.request_block("g", "secret.txt", 0, &t.secret);
    assert_ne!(r.code, ResponseCode::Ok, "a block of g was served");
    assert!(r.data.is_empty());
    let r = conn.request_block("f", "secret.txt", 0, &t.secret);
    assert_ne!(
        r.code,
        ResponseCode::Ok,
        "g's block was served through f by hash"
    );
    assert!(r.data.is_empty());
    let first = shoal::scan::blocks_of(&t.secret_big)[0];
    let r = conn.request_block("f", "public.txt", 0, &t.secret_big[..first.size as usize]);
    assert_ne!(
        r.code,
        ResponseCode::Ok,
        "g's block was served under f's name"
    );
    let l = conn.request_list(
        "g",
        "secret.bin",
        blocks_hash(&shoal::scan::blocks_of(&t.secret_big)),
    );
    assert_ne!(l.code, ResponseCode::Ok, "g's block list was served");
    assert!(l.blocks.is_empty());
    // Writing: an index for g is ignored; one for f in its wake is applied.
    let evil = Content::small("evil bytes\n");
    let good = Content::small("good bytes\n");
    conn.answer_with(serving(&[&evil, &good]));
    conn.send(&index(
        "g",
        vec![file_entry(&peer, "evil.txt", 1, &evil, 0o644)],
    ));
    conn.send(&index(
        "f",
        vec![file_entry(&peer, "good.txt", 1, &good, 0o644)],
    ));
    assert_appears(&d.path("f/good.txt"), &good.data, &s);
    assert!(!d.path("g/evil.txt").exists(), "the peer wrote into g");
    assert!(
        conn.requests().iter().all(|r| r.folder == "f"),
        "the service pulled for g from a device g is not shared with"
    );
    // And nothing of g ever reached the peer.
    for m in conn.received() {
        match m {
            Message::ClusterConfig(cc) => assert!(
                cc.folders.iter().all(|x| x.id != "g"),
                "g listed in a ClusterConfig to the peer"
            ),
            Message::Index(i) => assert_ne!(i.folder, "g", "g's index sent to the peer"),
            _ => {}
        }
    }
    assert_eq!(conn.closed(), None, "ignored, not an error");
    assert_alive(d, &mut s);
}

#[test]
fn a_block_list_of_an_unshared_folder_is_not_served() {
    let peer = TestPeer::new("mallory");
    let t = two_folders(&peer);
    let d = &t.d;
    let _s = d.serve();
    assert_indexed(d, "f", "public.bin");
    assert_indexed(d, "g", "secret.bin");
    let conn = join(d, &peer, &["f"]);
    // The control: a list of f is served.
    let public = shoal::scan::blocks_of(&t.public_big);
    let l = conn.request_list("f", "public.bin", blocks_hash(&public));
    assert_eq!((l.code, l.blocks), (ResponseCode::Ok, public));
    // g's list, asked for under the shared folder's ID.
    let secret = shoal::scan::blocks_of(&t.secret_big);
    let l = conn.request_list("f", "secret.bin", blocks_hash(&secret));
    assert_ne!(
        l.code,
        ResponseCode::Ok,
        "the block list of a file in g (not shared) was sent: {} blocks",
        l.blocks.len()
    );
}

#[test]
fn received_files_never_get_setuid_bits() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let mut s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    let script = Content::small("#!/bin/sh\necho pwned\n");
    let other = Content::small("other\n");
    conn.answer_with(serving(&[&script, &other]));
    conn.send(&index(
        "f",
        vec![
            dir_entry(&peer, "sdir", 1, 0o3755),
            file_entry(&peer, "setuid", 2, &script, 0o4755),
            file_entry(&peer, "setgid", 3, &script, 0o2755),
            file_entry(&peer, "sticky", 4, &other, 0o1644),
            file_entry(&peer, "all", 5, &other, 0o7777),
            file_entry(&peer, "sdir/setuid", 6, &script, 0o4711),
        ],
    ));
    let f = d.path("f");
    for name in ["setuid", "setgid", "sdir/setuid"] {
        assert_appears(&f.join(name), &script.data, &s);
    }
    for name in ["sticky", "all"] {
        assert_appears(&f.join(name), &other.data, &s);
    }
    let want = [
        ("sdir", 0o755),
        ("setuid", 0o755),
        ("setgid", 0o755),
        ("sticky", 0o644),
        ("all", 0o777),
        ("sdir/setuid", 0o711),
    ];
    for (name, mode) in want {
        let got = std::fs::symlink_metadata(f.join(name))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(got & 0o7000, 0, "{name} has mode {got:o}");
        assert_eq!(got, mode, "{name} keeps its other bits");
    }
    assert_alive(&d, &mut s);
}

#[test]
fn a_peer_that_sends_a_bad_frame_is_told_why() {
    let peer = TestPeer::new("mallory");
    let d = device_sharing_with(&[&peer]);
    let _s = d.serve();
    let conn = join(&d, &peer, &["f"]);
    conn.send_raw(vec![0x40, 0, 0, 0, 3, 0]);
    assert!(wait_until(TIMEOUT, || conn.closed().is_some()));
    let last = conn.received().pop();
    assert!(
        matches!(&last, Some(Message::Close { reason }) if !reason.is_empty()),
        "the last message before the close was {last:?}, not a Close naming the error; the connection ended with: {:?}",
        conn.closed()
    );
}

#[test]
fn deletions_are_remembered_180_days_and_a_device_back_after_that_deletes_nothing_newer() {
    const DAY: u64 = 86_400;
    let p = TestPeer::new("peer");
    let q = TestPeer::new("returning");
    let d = device_sharing_with(&[&p, &q]);
    let s = d.serve();
    let conn_p = join(&d, &p, &["f"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Version counters follow the wall clock: these versions were made long ago.
    let at = |peer: &TestPeer, w: WireFile, secs: u64| WireFile {
        version: Vector::from_counters(vec![Counter {
            id: peer.short(),
            value: secs,
        }]),
        ..w
    };
    let kept = Content::small("deleted 179 days ago");
    let forgotten = Content::small("deleted 181 days ago");
    let newer = Content::small("old, then edited here");
    conn_p.answer_with(serving(&[&kept, &forgotten, &newer]));
    let (t_kept, t_forgotten, t_newer) = (now - 179 * DAY, now - 182 * DAY, now - 300 * DAY);
    conn_p.send(&index(
        "f",
        vec![
            at(&p, file_entry(&p, "kept.txt", 1, &kept, 0o644), t_kept),
            at(
                &p,
                file_entry(&p, "forgotten.txt", 2, &forgotten, 0o644),
                t_forgotten,
            ),
            at(&p, file_entry(&p, "newer.txt", 3, &newer, 0o644), t_newer),
        ],
    ));
    let f = d.path("f");
    assert_appears(&f.join("kept.txt"), &kept.data, &s);
    assert_appears(&f.join("forgotten.txt"), &forgotten.data, &s);
    assert_appears(&f.join("newer.txt"), &newer.data, &s);
    // The peer deleted two of them long ago (it tells us only now); we edit the third.
    let gone = |name: &str, seq: u64, secs: u64| WireFile {
        deleted: true,
        ..at(&p, entry(&p, name, seq, 1, FileType::File), secs)
    };
    conn_p.send(&index(
        "f",
        vec![
            gone("kept.txt", 4, t_kept + 1),
            gone("forgotten.txt", 5, t_forgotten + 1),
        ],
    ));
    assert!(
        wait_until(TIMEOUT, || !f.join("kept.txt").exists()
            && !f.join("forgotten.txt").exists()),
        "{}",
        s.log()
    );
    std::fs::write(f.join("newer.txt"), "edited here, newer than any deletion").expect("write");
    d.run(&["rescan", "f"]).ok();
    // The service forgets old deletions a minute after it starts (then daily).
    assert!(
        wait_until(Duration::from_secs(100), || s
            .log()
            .contains("forgot deletions older than 180 days")),
        "the tombstone clean-up ran: {}",
        s.log()
    );
    // A device that was away all that time comes back with its old copies, and an old
    // deletion of the file we edited since.
    let conn_q = join(&d, &q, &["f"]);
    let sync = Content::small("sync point");
    conn_q.answer_with(serving(&[&kept, &forgotten, &newer, &sync]));
    conn_q.send(&index(
        "f",
        vec![
            at(&p, file_entry(&q, "kept.txt", 1, &kept, 0o644), t_kept),
            at(
                &p,
                file_entry(&q, "forgotten.txt", 2, &forgotten, 0o644),
                t_forgotten,
            ),
            WireFile {
                deleted: true,
                ..at(
                    &p,
                    entry(&q, "newer.txt", 3, 1, FileType::File),
                    t_newer + 1,
                )
            },
            file_entry(&q, "sync.txt", 4, &sync, 0o644),
        ],
    ));
    assert_appears(&f.join("sync.txt"), &sync.data, &s);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !f.join("kept.txt").exists(),
        "a deletion younger than 180 days is remembered: the old copy does not come back"
    );
    assert_eq!(
        std::fs::read(f.join("forgotten.txt")).ok(),
        Some(forgotten.data.clone()),
        "after 180 days the deletion is forgotten: the old copy comes back (as documented)"
    );
    assert_eq!(
        std::fs::read_to_string(f.join("newer.txt")).ok().as_deref(),
        Some("edited here, newer than any deletion"),
        "an old deletion never deletes newer data"
    );
}
