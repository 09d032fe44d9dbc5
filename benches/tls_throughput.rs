//! Bulk transfer through Shoal's TLS connection against raw TCP on loopback, in the same
//! run, alternating the two (the transport's acceptance target: TLS ≥ 0.5× raw TCP).
//!
//! `cargo bench --bench tls_throughput [-- --mib N --reps R]` (defaults: 1024 MiB, 5
//! repetitions). Prints a Markdown table and writes it to `bench/results/tls.md`.
//!
//! - Raw TCP: the sender writes N MiB in 128 KiB chunks, the receiver reads to the end.
//! - Shoal: the path a block takes between two devices. Two fresh identities and
//!   [`shoal::net::tls::configs`] (TLS 1.3, ring, AES-GCM first), TCP_NODELAY and the
//!   byte counters as in `net`, a Hello first, then N MiB as `Response` frames of 128 KiB
//!   made by a producer and queued in a bounded channel, which a writer batches up to
//!   256 KiB per write (as the service's writer does); the receiver reads into a 64 KiB
//!   buffer, decodes with [`FrameDecoder`] and counts payload bytes.
//!
//! Both run on a tokio multi-thread runtime with 2 workers, as the service uses; time is
//! from connect to the last byte received. Profiling knobs (defaults are the service's
//! values): `--batch KiB` (writer batch target), `--rbuf KiB` (TLS read buffer),
//! `--direct` (the writer encodes one prebuilt message, no producer or channel).

use shoal::identity::Identity;
use shoal::net::counted::{Counted, Counters};
use shoal::net::tls;
use shoal::protocol::{
    FrameDecoder, Hello, MAX_BLOCK_SIZE, Message, Response, ResponseCode, encode,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// One block: the payload of one `Response`, and the raw sender's write size.
const CHUNK: usize = MAX_BLOCK_SIZE as usize;
/// The service's queue of outgoing messages per connection (`net::OUTBOX`).
const OUTBOX: usize = 256;
const MIB: usize = 1 << 20;

#[derive(Clone, Debug)]
struct Opts {
    mib: usize,
    reps: usize,
    /// The writer batches frames until its buffer holds this many bytes.
    batch: usize,
    /// The TLS receiver's read buffer.
    rbuf: usize,
    /// Encode one prebuilt message over and over: no producer task, no channel.
    direct: bool,
    /// A `BufReader` of this capacity between the receiver's socket and TLS (0: none, as
    /// in the service): rustls reads at most 4 KiB per call.
    tcp_buf: usize,
    /// TLS without Shoal: 128 KiB plaintext writes, reads counted, no frames at all.
    bare: bool,
}

impl Opts {
    fn parse() -> Self {
        let mut o = Opts {
            mib: 1024,
            reps: 5,
            batch: 256 << 10,
            rbuf: 64 << 10,
            direct: false,
            tcp_buf: 0,
            bare: false,
        };
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        let num = |flag: &str, v: Option<String>| -> usize {
            v.and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or_else(|| panic!("{flag} needs a positive number"))
        };
        while let Some(a) = args.next() {
            match a.as_str() {
                "--mib" => o.mib = num("--mib", args.next()),
                "--reps" => o.reps = num("--reps", args.next()),
                "--batch" => o.batch = num("--batch", args.next()) << 10,
                "--rbuf" => o.rbuf = num("--rbuf", args.next()) << 10,
                "--direct" => o.direct = true,
                "--bare" => o.bare = true,
                "--tcp-buf" => o.tcp_buf = num("--tcp-buf", args.next()) << 10,
                other => panic!(
                    "unknown argument {other:?}; usage: \
                     [--mib N] [--reps R] [--batch KiB] [--rbuf KiB] [--direct] [--tcp-buf KiB] [--bare]"
                ),
            }
        }
        o
    }

    /// The command line that reproduces this run.
    fn command(&self) -> String {
        let mut c = format!(
            "cargo bench --bench tls_throughput -- --mib {} --reps {}",
            self.mib, self.reps
        );
        if self.batch != 256 << 10 {
            c += &format!(" --batch {}", self.batch >> 10);
        }
        if self.rbuf != 64 << 10 {
            c += &format!(" --rbuf {}", self.rbuf >> 10);
        }
        if self.direct {
            c += " --direct";
        }
        if self.bare {
            c += " --bare";
        }
        if self.tcp_buf > 0 {
            c += &format!(" --tcp-buf {}", self.tcp_buf >> 10);
        }
        c
    }
}

/// Bytes that stand in for file content (TLS does not care what they are).
fn block() -> Vec<u8> {
    (0..CHUNK)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

async fn raw_once(total: usize) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0usize;
        loop {
            let n = s.read(&mut buf).await.expect("raw read");
            if n == 0 {
                return (got, Instant::now());
            }
            got += n;
        }
    });
    let sender = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let data = block();
        let mut sent = 0;
        while sent < total {
            let n = CHUNK.min(total - sent);
            s.write_all(&data[..n]).await.expect("raw write");
            sent += n;
        }
        s.shutdown().await.expect("shutdown");
    });
    sender.await.expect("raw sender");
    let (got, end) = receiver.await.expect("raw receiver");
    assert_eq!(got, total, "raw TCP: every byte arrives");
    end - start
}

struct TlsRun {
    elapsed: Duration,
    suite: String,
    /// Bytes on the wire (TLS records, handshake included), as the sender wrote them.
    wire: u64,
}

async fn tls_once(
    total: usize,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    o: &Opts,
) -> TlsRun {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let acceptor = TlsAcceptor::from(server);
    let connector = TlsConnector::from(client);
    let rbuf = o.rbuf;
    let start = Instant::now();
    let (tcp_buf, bare) = (o.tcp_buf, o.bare);
    let receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let counters = Arc::new(Counters::default());
        if tcp_buf > 0 {
            let tcp = tokio::io::BufReader::with_capacity(tcp_buf, tcp);
            tls_receive(acceptor.accept(Counted::new(tcp, counters)), rbuf, bare).await
        } else {
            tls_receive(acceptor.accept(Counted::new(tcp, counters)), rbuf, bare).await
        }
    });
    let (batch, direct) = (o.batch, o.direct);
    let sender = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let counters = Arc::new(Counters::default());
        let stream = Counted::new(tcp, counters.clone());
        let name = ServerName::try_from("shoal").expect("a valid server name");
        let tls = connector.connect(name, stream).await.expect("TLS connect");
        let (_rd, mut wr) = tokio::io::split(tls);
        if bare {
            let data = block();
            let mut sent = 0;
            while sent < total {
                let n = CHUNK.min(total - sent);
                wr.write_all(&data[..n]).await.expect("TLS write");
                sent += n;
            }
            wr.shutdown().await.expect("TLS shutdown");
            return counters.get().1;
        }
        let mut out = Vec::with_capacity(batch + CHUNK + 64);
        encode(&Message::Hello(Hello::ours("bench")), &mut out).expect("Hello encodes");
        wr.write_all(&out).await.expect("write Hello");
        wr.flush().await.expect("flush");
        let blocks = total.div_ceil(CHUNK);
        let data = block();
        let response = |id: usize, data: Vec<u8>| {
            Message::Response(Response {
                id: id as u64,
                code: ResponseCode::Ok,
                data,
            })
        };
        if direct {
            let full = response(0, data.clone());
            let mut id = 0;
            while id < blocks {
                out.clear();
                while id < blocks && out.len() < batch {
                    let n = CHUNK.min(total - id * CHUNK);
                    if n == CHUNK {
                        encode(&full, &mut out).expect("Response encodes");
                    } else {
                        encode(&response(id, data[..n].to_vec()), &mut out)
                            .expect("Response encodes");
                    }
                    id += 1;
                }
                wr.write_all(&out).await.expect("TLS write");
                wr.flush().await.expect("flush");
            }
        } else {
            // A producer as the block server is one: a fresh Vec per block, queued.
            let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX);
            let producer = tokio::spawn(async move {
                for id in 0..blocks {
                    let n = CHUNK.min(total - id * CHUNK);
                    if tx.send(response(id, data[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            });
            // The service's writer loop: one message, then whatever is already queued.
            while let Some(msg) = rx.recv().await {
                out.clear();
                encode(&msg, &mut out).expect("Response encodes");
                while out.len() < batch {
                    match rx.try_recv() {
                        Ok(m) => encode(&m, &mut out).expect("Response encodes"),
                        Err(_) => break,
                    }
                }
                wr.write_all(&out).await.expect("TLS write");
                wr.flush().await.expect("flush");
            }
            producer.await.expect("producer");
        }
        wr.shutdown().await.expect("TLS shutdown");
        counters.get().1
    });
    let wire = sender.await.expect("TLS sender");
    let (got, end, suite) = receiver.await.expect("TLS receiver");
    assert_eq!(got, total, "Shoal TLS: every payload byte arrives");
    TlsRun {
        elapsed: end - start,
        suite,
        wire,
    }
}

/// The receiving side: the TLS handshake, then frames until the sender closes. Returns
/// the payload bytes, when the last arrived, and the negotiated cipher suite.
async fn tls_receive<S: AsyncRead + AsyncWrite + Unpin>(
    accept: tokio_rustls::Accept<S>,
    rbuf: usize,
    bare: bool,
) -> (usize, Instant, String) {
    let tls = accept.await.expect("TLS accept");
    let suite = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map_or_else(|| "none".to_string(), |s| format!("{:?}", s.suite()));
    let (mut rd, _wr) = tokio::io::split(tls);
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; rbuf];
    let mut got = 0usize;
    if bare {
        loop {
            let n = rd.read(&mut buf).await.expect("TLS read");
            if n == 0 {
                return (got, Instant::now(), suite);
            }
            got += n;
        }
    }
    loop {
        while let Some(msg) = decoder.next_message().expect("valid frames") {
            match msg {
                Message::Hello(_) => {}
                Message::Response(r) => {
                    assert_eq!(r.code, ResponseCode::Ok);
                    got += r.data.len();
                }
                other => panic!("unexpected {:?}", other.kind()),
            }
        }
        let n = rd.read(&mut buf).await.expect("TLS read");
        if n == 0 {
            return (got, Instant::now(), suite);
        }
        decoder.push(&buf[..n]);
    }
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`, in clock
/// ticks of 10 ms (`CLK_TCK` is 100 on Linux); zero where that file does not exist.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Runs `f`, returning its wall time as it measures it and the CPU time of the process.
async fn with_cpu<F: Future<Output = T>, T>(f: F) -> (T, Duration) {
    let before = cpu_time();
    let out = f.await;
    (out, cpu_time().saturating_sub(before))
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn main() {
    let o = Opts::parse();
    let total = o.mib * MIB;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (a, b) = (
        Identity::generate().expect("identity"),
        Identity::generate().expect("identity"),
    );
    let server = tls::configs(&a).expect("TLS configs").server;
    let client = tls::configs(&b).expect("TLS configs").client;

    let (mut raw, mut shoal, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_busy, mut tls_busy) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    let (mut suite, mut wire) = (String::new(), 0);
    rt.block_on(async {
        // Warm-up, not reported: page in buffers, let the workers settle.
        let warm = total.min(64 * MIB);
        raw_once(warm).await;
        tls_once(warm, server.clone(), client.clone(), &o).await;
        for rep in 1..=o.reps {
            let (raw_wall, raw_cpu) = with_cpu(raw_once(total)).await;
            let (t, tls_cpu) = with_cpu(tls_once(total, server.clone(), client.clone(), &o)).await;
            let (r, s) = (mbps(total, raw_wall), mbps(total, t.elapsed));
            let raw_cores = raw_cpu.as_secs_f64() / raw_wall.as_secs_f64();
            let tls_cores = tls_cpu.as_secs_f64() / t.elapsed.as_secs_f64();
            suite = t.suite;
            wire = t.wire;
            eprintln!(
                "rep {rep}: raw TCP {r:.0} MB/s ({raw_cores:.2} cores), \
                 Shoal TLS {s:.0} MB/s ({tls_cores:.2} cores), {:.2}×",
                s / r
            );
            rows.push(format!(
                "| {rep} | {r:.0} | {raw_cores:.2} | {s:.0} | {tls_cores:.2} | {:.2} |",
                s / r
            ));
            raw_busy.push(raw_cores);
            tls_busy.push(tls_cores);
            raw.push(r);
            shoal.push(s);
            ratio.push(s / r);
        }
    });

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = time::OffsetDateTime::now_utc().date();
    let mut md = format!(
        "TLS throughput benchmark, {date}, nproc {nproc}, tokio multi-thread runtime with 2 \
         workers, loopback.\n\nCommand: `{}`\n\n{} MiB per transfer, {} repetitions \
         alternating raw TCP and Shoal TLS (after an unreported warm-up of each); MB/s = \
         10^6 payload bytes per second, from connect to the last byte received.\n\n\
         - Raw TCP: 128 KiB writes, 128 KiB reads, TCP_NODELAY.\n\
         - Shoal TLS: `net::tls::configs` of two fresh identities, negotiated cipher suite \
         {suite}; `Response` frames of 128 KiB{}, at most {} KiB per write; reads of {} KiB \
         into `FrameDecoder`. Wire bytes per payload byte: {:.4} (TLS records, framing, \
         handshake, Hello).\n\n",
        o.command(),
        o.mib,
        o.reps,
        if o.bare {
            " (no: `--bare`, plaintext written as is, no frames, no decoder)"
        } else if o.direct {
            " encoded straight from one prebuilt message"
        } else {
            " from a producer through a bounded channel (the service's outbox of 256)"
        },
        o.batch >> 10,
        o.rbuf >> 10,
        wire as f64 / total as f64,
    );
    md += "| rep | raw TCP MB/s | raw CPU cores | Shoal TLS MB/s | TLS CPU cores | TLS/raw |\n\
           |---|---|---|---|---|---|\n";
    for row in &rows {
        md += row;
        md += "\n";
    }
    md += &format!(
        "| **median** | **{:.0}** | {:.2} | **{:.0}** | {:.2} | **{:.2}** |\n\n\
         CPU cores = process CPU time (user + system, both ends, 10 ms ticks) / wall time; \
         the runtime has 2 workers.\n\n\
         Target: TLS/raw ≥ 0.5 (median ratio {}).\n",
        median(&raw),
        median(&raw_busy),
        median(&shoal),
        median(&tls_busy),
        median(&ratio),
        if median(&ratio) >= 0.5 {
            "met"
        } else {
            "NOT met"
        },
    );
    println!("{md}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results/tls.md");
    std::fs::write(path, &md).expect("write bench/results/tls.md");
    eprintln!("written to {path}");
}
