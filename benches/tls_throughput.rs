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
//!   through the service's [`FrameWriter`] over a TLS connection whose record buffer is
//!   `net::TLS_BUFFER_LIMIT` as in `net` (protocol version 2: each block is sampled for
//!   compression, the data goes out by vectored writes without a copy), batched up to
//!   256 KiB per write as the service's writer does; the receiver reads straight into the
//!   [`FrameDecoder`]'s buffer as the service's reader does and counts payload bytes.
//! - The payload is pseudo-random bytes (xorshift), the same for both: incompressible,
//!   like the L dataset, so the Shoal side pays for its compression check and gains
//!   nothing from it.
//!
//! Both run on a tokio multi-thread runtime with 2 workers, as the service uses; time is
//! from connect to the last byte received. The process's CPU time (both ends) is reported
//! too: on a busy machine the throughput follows the CPU share the process gets, and CPU
//! seconds per GB is the steadier figure.
//!
//! Knobs for profiling (defaults are the service's values):
//! - `--batch KiB`: the writer's batch target (256);
//! - `--rbuf KiB`: the TLS receiver's read buffer with `--bare` (64);
//! - `--tcp-buf KiB`: a `BufReader` of that size between the receiver's socket and TLS
//!   (256, as `net::socket_reader`; 0 for none: rustls then reads at most 4 KiB per call,
//!   one `recv` per 4 KiB);
//! - `--outbox`: blocks made as `sync::serve` makes them, a fresh `Vec` each, queued in a
//!   bounded channel of 256 (`net::OUTBOX`) that the writer drains with `try_recv`
//!   (by default the writer refills the block buffers it has written, which already hold
//!   the payload: no copy per block, like the raw sender);
//! - `--bare`: TLS alone, no Shoal framing: 128 KiB plaintext writes, reads counted.

use shoal::identity::Identity;
use shoal::net::counted::{Counted, Counters};
use shoal::net::{FrameWriter, TLS_BUFFER_LIMIT, WRITE_BATCH, tls};
use shoal::protocol::{
    FrameDecoder, Hello, MAX_BLOCK_SIZE, Message, PROTOCOL_VERSION, Response, ResponseCode,
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
const DEFAULT_BATCH: usize = WRITE_BATCH;
const DEFAULT_RBUF: usize = 64 << 10;

#[derive(Clone, Debug)]
struct Opts {
    mib: usize,
    reps: usize,
    /// The writer batches frames until its buffer holds this many bytes.
    batch: usize,
    /// The TLS receiver's read buffer.
    rbuf: usize,
    /// A `BufReader` of this capacity under the receiver's TLS (0: none, as in `net`).
    tcp_buf: usize,
    /// A fresh `Vec` per block through a bounded channel, as `sync::serve` answers.
    outbox: bool,
    /// TLS without Shoal framing.
    bare: bool,
}

impl Opts {
    fn parse() -> Self {
        let mut o = Opts {
            mib: 1024,
            reps: 5,
            batch: DEFAULT_BATCH,
            rbuf: DEFAULT_RBUF,
            tcp_buf: 256 << 10, // as `net::socket_reader` does
            outbox: false,
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
                "--tcp-buf" => o.tcp_buf = num("--tcp-buf", args.next()) << 10,
                "--outbox" => o.outbox = true,
                "--bare" => o.bare = true,
                other => panic!(
                    "unknown argument {other:?}; usage: [--mib N] [--reps R] \
                     [--batch KiB] [--rbuf KiB] [--tcp-buf KiB] [--outbox] [--bare]"
                ),
            }
        }
        o
    }

    /// The command line that reproduces this run.
    fn command(&self) -> String {
        let mut c = "cargo bench --bench tls_throughput".to_string();
        if self.mib != 1024 || self.reps != 5 {
            c += &format!(" -- --mib {} --reps {}", self.mib, self.reps);
        }
        let mut knob = |s: String| {
            if !c.contains(" -- ") {
                c += " --";
            }
            c += &s;
        };
        if self.batch != DEFAULT_BATCH {
            knob(format!(" --batch {}", self.batch >> 10));
        }
        if self.rbuf != DEFAULT_RBUF {
            knob(format!(" --rbuf {}", self.rbuf >> 10));
        }
        if self.tcp_buf > 0 {
            knob(format!(" --tcp-buf {}", self.tcp_buf >> 10));
        }
        if self.outbox {
            knob(" --outbox".into());
        }
        if self.bare {
            knob(" --bare".into());
        }
        c
    }

    /// What the Shoal side does, for the results file.
    fn describe(&self) -> String {
        if self.bare {
            return format!(
                "`--bare`: TLS alone, 128 KiB plaintext writes, {} KiB reads, no frames",
                self.rbuf >> 10
            );
        }
        let source = if self.outbox {
            "a fresh `Vec` per block through a bounded channel of 256 (`--outbox`)"
        } else {
            "block buffers the writer hands back once written"
        };
        let under = if self.tcp_buf > 0 {
            format!(
                ", over a {} KiB `BufReader` on the socket",
                self.tcp_buf >> 10
            )
        } else {
            String::new()
        };
        format!(
            "a Hello, then `Response` frames of 128 KiB from {source}, through \
             `net::FrameWriter` (protocol version {PROTOCOL_VERSION}, compression checked per \
             block), batched to about {} KiB per vectored write (then flush); reads{under} \
             straight into the `FrameDecoder`'s buffer",
            self.batch >> 10,
        )
    }
}

/// Bytes that stand in for file content: pseudo-random (xorshift64), so incompressible.
fn block() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
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
    let o2 = o.clone();
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let counters = Arc::new(Counters::default());
        if o2.tcp_buf > 0 {
            let tcp = tokio::io::BufReader::with_capacity(o2.tcp_buf, tcp);
            tls_receive(acceptor.accept(Counted::new(tcp, counters)), &o2).await
        } else {
            tls_receive(acceptor.accept(Counted::new(tcp, counters)), &o2).await
        }
    });
    let o = o.clone();
    let sender = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let counters = Arc::new(Counters::default());
        let stream = Counted::new(tcp, counters.clone());
        let name = ServerName::try_from("shoal").expect("a valid server name");
        let mut tls = connector.connect(name, stream).await.expect("TLS connect");
        if !o.bare {
            tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        }
        let (_rd, mut wr) = tokio::io::split(tls);
        let data = block();
        if o.bare {
            let mut sent = 0;
            while sent < total {
                let n = CHUNK.min(total - sent);
                wr.write_all(&data[..n]).await.expect("TLS write");
                sent += n;
            }
        } else {
            tls_send(&mut wr, total, data, &o).await;
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

fn response(id: usize, data: Vec<u8>) -> Message {
    Message::Response(Response {
        id: id as u64,
        code: ResponseCode::Ok,
        data,
    })
}

/// The sending side after the handshake: a Hello, then `total` bytes of blocks.
async fn tls_send<W: AsyncWrite + Unpin>(wr: &mut W, total: usize, data: Vec<u8>, o: &Opts) {
    let batch = o.batch;
    let mut fw = FrameWriter::new(PROTOCOL_VERSION);
    fw.keep_spare(8);
    fw.push(Message::Hello(Hello::ours("bench")))
        .expect("Hello encodes");
    fw.write_to(wr).await.expect("write Hello");
    let blocks = total.div_ceil(CHUNK);
    let size = move |id: usize| CHUNK.min(total - id * CHUNK);
    if !o.outbox {
        // The writer's loop with the messages already there: fill the batch, write, flush.
        // A buffer the writer hands back already holds the payload (every block is the
        // same bytes), so refilling it costs nothing, like the raw sender's one buffer.
        let mut id = 0;
        while id < blocks {
            while id < blocks && fw.queued() < batch {
                let n = size(id);
                let block = match fw.take_spare() {
                    Some(v) if v.len() == n => v,
                    _ => data[..n].to_vec(),
                };
                fw.push(response(id, block)).expect("Response encodes");
                id += 1;
            }
            fw.write_to(wr).await.expect("TLS write");
        }
        return;
    }
    // As `sync::serve` answers: a fresh Vec per block, queued for the writer.
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX);
    let producer = tokio::spawn(async move {
        for id in 0..blocks {
            let mut v = vec![0u8; size(id)];
            v.copy_from_slice(&data[..size(id)]);
            if tx.send(response(id, v)).await.is_err() {
                return;
            }
        }
    });
    // The service's writer loop: one message, then whatever is already queued.
    while let Some(msg) = rx.recv().await {
        fw.push(msg).expect("Response encodes");
        while fw.queued() < batch {
            match rx.try_recv() {
                Ok(m) => fw.push(m).expect("Response encodes"),
                Err(_) => break,
            }
        }
        fw.write_to(wr).await.expect("TLS write");
    }
    producer.await.expect("producer");
}

/// The receiving side: the TLS handshake, then frames until the sender closes. Returns
/// the payload bytes, when the last arrived, and the negotiated cipher suite.
async fn tls_receive<S: AsyncRead + AsyncWrite + Unpin>(
    accept: tokio_rustls::Accept<S>,
    o: &Opts,
) -> (usize, Instant, String) {
    let tls = accept.await.expect("TLS accept");
    let suite = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map_or_else(|| "none".to_string(), |s| format!("{:?}", s.suite()));
    let (mut rd, _wr) = tokio::io::split(tls);
    let mut got = 0usize;
    if o.bare {
        let mut buf = vec![0u8; o.rbuf];
        loop {
            let n = rd.read(&mut buf).await.expect("TLS read");
            if n == 0 {
                return (got, Instant::now(), suite);
            }
            got += n;
        }
    }
    let mut decoder = FrameDecoder::new();
    loop {
        while let Some(msg) = decoder.next_message().expect("valid frames") {
            match msg {
                Message::Hello(h) => {
                    decoder.set_version(h.negotiate().expect("same version"));
                }
                Message::Response(r) => {
                    assert_eq!(r.code, ResponseCode::Ok);
                    got += r.data.len();
                }
                other => panic!("unexpected {:?}", other.kind()),
            }
        }
        let n = rd.read(decoder.read_buf()).await.expect("TLS read");
        if n == 0 {
            return (got, Instant::now(), suite);
        }
        decoder.filled(n);
    }
}

/// CPU time of this process so far (user + system, all threads), from `/proc/self/stat`
/// in clock ticks of 10 ms (`CLK_TCK` is 100 on Linux); zero where that file is missing.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // After the command name (which may hold spaces): state is field 3, utime field 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Awaits `f`, returning its output and the CPU time the process spent meanwhile.
async fn with_cpu<F: Future<Output = T>, T>(f: F) -> (T, Duration) {
    let before = cpu_time();
    let out = f.await;
    (out, cpu_time().saturating_sub(before))
}

/// One side of one repetition.
struct Sample {
    mbps: f64,
    /// CPU time / wall time.
    cores: f64,
    /// CPU seconds per 10^9 payload bytes.
    cpu_per_gb: f64,
}

impl Sample {
    fn new(bytes: usize, wall: Duration, cpu: Duration) -> Self {
        let gb = bytes as f64 / 1e9;
        Sample {
            mbps: gb * 1e3 / wall.as_secs_f64(),
            cores: cpu.as_secs_f64() / wall.as_secs_f64(),
            cpu_per_gb: cpu.as_secs_f64() / gb,
        }
    }

    fn cells(&self) -> String {
        format!(
            "{:.0} | {:.2} | {:.2}",
            self.mbps, self.cores, self.cpu_per_gb
        )
    }
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut s: Vec<f64> = v.collect();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn medians(v: &[Sample]) -> Sample {
    Sample {
        mbps: median(v.iter().map(|s| s.mbps)),
        cores: median(v.iter().map(|s| s.cores)),
        cpu_per_gb: median(v.iter().map(|s| s.cpu_per_gb)),
    }
}

fn main() {
    let o = Opts::parse();
    let total = o.mib * MIB;
    // Other work on the machine takes CPU from both ends: the results say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
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
    let (mut suite, mut wire) = (String::new(), 0);
    rt.block_on(async {
        // Warm-up, not reported: page in buffers, let the workers settle.
        let warm = total.min(64 * MIB);
        raw_once(warm).await;
        tls_once(warm, server.clone(), client.clone(), &o).await;
        for rep in 1..=o.reps {
            let (wall, cpu) = with_cpu(raw_once(total)).await;
            let r = Sample::new(total, wall, cpu);
            let (t, cpu) = with_cpu(tls_once(total, server.clone(), client.clone(), &o)).await;
            let s = Sample::new(total, t.elapsed, cpu);
            suite = t.suite;
            wire = t.wire;
            eprintln!(
                "rep {rep}: raw TCP {:.0} MB/s ({:.2} cores), Shoal TLS {:.0} MB/s \
                 ({:.2} cores), {:.2}×",
                r.mbps,
                r.cores,
                s.mbps,
                s.cores,
                s.mbps / r.mbps
            );
            ratio.push(s.mbps / r.mbps);
            raw.push(r);
            shoal.push(s);
        }
    });

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = time::OffsetDateTime::now_utc().date();
    let mut md = format!(
        "TLS throughput benchmark, {date}, nproc {nproc}, load average {load} at the start, \
         loopback, tokio multi-thread runtime with 2 workers.\n\n\
         Command: `{}`\n\n\
         {} MiB per transfer, {} repetitions alternating raw TCP and Shoal TLS (after an \
         unreported warm-up of each). MB/s: 10^6 payload bytes per second, from connect to \
         the last byte received. Cores: process CPU time (user + system, both ends, 10 ms \
         ticks) / wall time. CPU s/GB: CPU seconds per 10^9 payload bytes.\n\n\
         - Raw TCP: 128 KiB writes, 128 KiB reads, TCP_NODELAY.\n\
         - Shoal TLS: `net::tls::configs` of two fresh identities, cipher suite {suite}, \
         TCP_NODELAY, `Counted` streams split in halves as in `net`; {}. Wire bytes per \
         payload byte: {:.4}.\n\n\
         | rep | raw MB/s | raw cores | raw CPU s/GB | TLS MB/s | TLS cores | TLS CPU s/GB \
         | TLS/raw |\n|---|---|---|---|---|---|---|---|\n",
        o.command(),
        o.mib,
        o.reps,
        o.describe(),
        wire as f64 / total as f64,
    );
    for (i, ((r, s), q)) in raw.iter().zip(&shoal).zip(&ratio).enumerate() {
        md += &format!("| {} | {} | {} | {q:.2} |\n", i + 1, r.cells(), s.cells());
    }
    let q = median(ratio.iter().copied());
    md += &format!(
        "| **median** | {} | {} | **{q:.2}** |\n\n\
         Target TLS/raw ≥ 0.5: {} (median of the per-repetition ratios; CPU cost per byte \
         TLS/raw {:.1}×).\n",
        medians(&raw).cells(),
        medians(&shoal).cells(),
        if q >= 0.5 { "met" } else { "NOT met" },
        medians(&shoal).cpu_per_gb / medians(&raw).cpu_per_gb,
    );
    println!("{md}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results/tls.md");
    std::fs::write(path, &md).expect("write bench/results/tls.md");
    eprintln!("written to {path}");
}
