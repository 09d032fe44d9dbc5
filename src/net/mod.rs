//! Connections between devices: listening, dialling, the TLS handshake, the Hello
//! exchange, the trust decision, and each connection's read and write loops.
//!
//! Order on every new connection, whichever side dialled: TLS 1.3 (both certificates
//! presented, signatures checked by [`danger`]), then each side sends its Hello, then the
//! peer's ID (SHA-256 of its certificate) is looked up in the config. A device that is not
//! trusted is recorded as pending and the connection is closed: it never receives a folder
//! ID, a label or a file name. A trusted device's connection is registered (if both sides
//! dialled at once, the one dialled by the device with the smaller ID survives on both
//! sides), then receives the cluster config.
//!
//! Limits that keep strangers cheap: at most [`MAX_UNAUTHENTICATED`] connections may be in
//! their handshake at once, and a handshake (TLS and Hello) that takes longer than
//! [`HANDSHAKE_TIMEOUT`] is dropped.

pub mod counted;
pub mod danger;
pub mod tls;

use crate::identity::DeviceId;
use crate::protocol::{CompressionStats, FrameDecoder, FrameEncoder, Hello, Message, encode};
use crate::service::Shared;
use counted::{Counted, Counters};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

/// Handshakes (TLS + Hello) that may run at once; more wait in the kernel's backlog.
pub const MAX_UNAUTHENTICATED: usize = 32;
/// A handshake slower than this is dropped, so idle sockets cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between dial attempts: the first retry within a second, then doubling.
pub const DIAL_BACKOFF_FIRST: Duration = Duration::from_millis(500);
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Messages queued for one connection's writer before senders wait.
const OUTBOX: usize = 256;
/// The writer gathers what is already queued into writes of about this many bytes.
pub const WRITE_BATCH: usize = 256 << 10;
/// How many bytes of TLS records rustls may hold before the socket takes them (its default
/// is 64 KiB): a batch of [`WRITE_BATCH`] then leaves in one vectored system call instead
/// of four.
pub const TLS_BUFFER_LIMIT: usize = 2 * WRITE_BATCH;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake took longer than {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("protocol: {0}")]
    Protocol(#[from] crate::protocol::ProtocolError),
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("the peer's first message was {0}, not Hello")]
    NoHello(&'static str),
    #[error("closed by peer: {0}")]
    ClosedByPeer(String),
    #[error("device {0} is not trusted: recorded as pending")]
    Untrusted(String),
    #[error("{0}")]
    Refused(String),
}

/// A registered, trusted connection: how the rest of the service reaches it.
#[derive(Clone)]
pub struct ConnHandle {
    /// Unique per connection, so a closing connection unregisters only itself.
    pub serial: u64,
    /// True when we dialled.
    pub outgoing: bool,
    pub address: SocketAddr,
    pub tx: mpsc::Sender<Message>,
    pub cancel: CancellationToken,
    pub counters: Arc<Counters>,
    pub peer_name: String,
    /// Requests in flight and index senders of this connection.
    pub sync: Arc<crate::sync::ConnSync>,
    /// Index messages received and not yet stored: the reader waits while too many are
    /// queued, so a peer's index of a million files streams through bounded memory.
    pub index_flow: Arc<IndexFlow>,
}

/// Index bytes a connection may have queued before it is closed (reached only while
/// block-list answers are awaited, when the reader must not wait).
const MAX_QUEUED_INDEX_BYTES: usize = 256 << 20;
/// Index bytes queued above which the reader stops reading until the store catches up.
/// (A 1,000,000-file index is ~180 MiB encoded and more decoded: it used to be queued
/// whole when the peer sent faster than SQLite stored.)
const INDEX_QUEUE_SOFT: usize = 8 << 20;

/// Flow control of a peer's index messages between the socket reader and the task that
/// stores them (`sync::index::receive`).
#[derive(Default)]
pub struct IndexFlow {
    /// Encoded bytes received and not yet stored.
    queued: std::sync::atomic::AtomicUsize,
    /// Block-list fetches under way: their answers come through the reader, which must not
    /// wait for room meanwhile (the store waits for them).
    awaiting_lists: std::sync::atomic::AtomicUsize,
    room: tokio::sync::Notify,
}

impl IndexFlow {
    /// Counts `n` bytes in; false when the hard limit is passed.
    fn queue(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.queued.fetch_add(n, Relaxed) + n <= MAX_QUEUED_INDEX_BYTES
    }

    /// Waits while the queue is over the soft limit, unless a block list is awaited.
    async fn wait_for_room(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        loop {
            // Created before the check: a wake-up in between is not lost.
            let notified = self.room.notified();
            if self.queued.load(Relaxed) <= INDEX_QUEUE_SOFT
                || self.awaiting_lists.load(Relaxed) > 0
            {
                return;
            }
            notified.await;
        }
    }

    /// `n` bytes were stored.
    pub fn stored(&self, n: usize) {
        self.queued
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// A block-list fetch starts (the reader must keep reading) or ends.
    pub fn awaiting_list(&self, yes: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if yes {
            self.awaiting_lists.fetch_add(1, Relaxed);
        } else {
            self.awaiting_lists.fetch_sub(1, Relaxed);
        }
        self.room.notify_waiters();
    }
}

/// rustls reads at most 4 KiB per call from its stream: a buffer under it turns 64 small
/// reads into one system call per 256 KiB (about 10 % less CPU per byte on bulk transfer).
fn socket_reader(tcp: TcpStream) -> tokio::io::BufReader<TcpStream> {
    tokio::io::BufReader::with_capacity(256 << 10, tcp)
}

/// Accepts connections on one bound listener until `cancel`.
pub async fn listen(shared: Arc<Shared>, listener: TcpListener, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.server.clone());
    let tracker = shared.tasks.clone();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%addr, "too many handshakes in progress; dropping connection");
            continue;
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let cancel = cancel.clone();
        tracker.spawn(
            async move {
                let _ = tcp.set_nodelay(true);
                let counters = Arc::new(Counters::default());
                let stream = Counted::new(socket_reader(tcp), counters.clone());
                let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                    let mut tls = acceptor.accept(stream).await?;
                    tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
                    let certs = tls.get_ref().1.peer_certificates();
                    let peer = tls::peer_id(certs).ok_or(ConnError::NoCertificate)?;
                    handshake(&shared, tls, peer, addr).await
                })
                .await;
                drop(permit);
                match hs {
                    Err(_) => debug!("handshake timed out"),
                    Ok(Err(e)) => debug!(error = %e, "connection refused"),
                    Ok(Ok(h)) => run_connection(shared, h, addr, false, counters, cancel).await,
                }
            }
            .instrument(info_span!("conn", %addr, dir = "in")),
        );
    }
}

/// Dials `addr`, expecting `device`; runs the connection until it ends.
/// Returns true when a trusted connection was established.
pub async fn dial(
    shared: Arc<Shared>,
    device: DeviceId,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<(), ConnError> {
    let connector = tokio_rustls::TlsConnector::from(shared.tls.client.clone());
    let counters = Arc::new(Counters::default());
    let h = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let stream = Counted::new(socket_reader(tcp), counters.clone());
        // The name is not checked (see `danger`); the device ID is.
        let name = rustls::pki_types::ServerName::try_from("shoal")
            .map_err(|e| ConnError::Refused(e.to_string()))?;
        let mut tls = connector.connect(name, stream).await?;
        tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        let peer =
            tls::peer_id(tls.get_ref().1.peer_certificates()).ok_or(ConnError::NoCertificate)?;
        if peer != device {
            return Err(ConnError::Refused(format!(
                "{addr} presented device {peer}, not the expected {device}"
            )));
        }
        handshake(&shared, tls, peer, addr).await
    })
    .await
    .map_err(|_| ConnError::Timeout)??;
    run_connection(shared, h, addr, true, counters, cancel).await;
    Ok(())
}

/// A connection that passed the handshake, before registration.
pub struct Handshaken<S> {
    stream: S,
    peer: DeviceId,
    hello: Hello,
    /// The protocol version both speak.
    version: u32,
    decoder: FrameDecoder,
}

/// Sends our Hello, reads theirs, decides trust. An untrusted peer is recorded as pending
/// and refused here, before anything about our folders is sent.
async fn handshake<S>(
    shared: &Arc<Shared>,
    mut stream: S,
    peer: DeviceId,
    addr: SocketAddr,
) -> Result<Handshaken<S>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let trusted = shared.is_trusted(&peer);
    if !trusted {
        // Recorded at once: a stranger that never sends a Hello is still listed.
        shared.record_pending_device(&peer, "", addr);
    }
    let mut out = Vec::new();
    encode(&Message::Hello(Hello::ours(shared.device_name())), &mut out)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    let hello = match read_hello(&mut stream).await {
        Ok(h) => h,
        Err(e) if !trusted => {
            refuse(&mut stream, "not trusted".into()).await;
            debug!(error = %e, "stranger sent no Hello");
            return Err(ConnError::Untrusted(peer.to_string()));
        }
        Err(e) => return Err(e),
    };
    if !trusted {
        if !hello.1.device_name.is_empty() {
            shared.record_pending_device(&peer, &hello.1.device_name, addr);
        }
        refuse(&mut stream, "not trusted".into()).await;
        return Err(ConnError::Untrusted(peer.to_string()));
    }
    let (mut decoder, hello) = hello;
    let version = match hello.negotiate() {
        Ok(v) => v,
        Err(e) => return Err(ConnError::Refused(refuse(&mut stream, e.to_string()).await)),
    };
    decoder.set_version(version);
    if shared.is_device_paused(&peer) {
        return Err(ConnError::Refused(
            refuse(&mut stream, "paused".into()).await,
        ));
    }
    Ok(Handshaken {
        stream,
        peer,
        hello,
        version,
        decoder,
    })
}

/// Reads frames until the peer's Hello; returns the decoder (it may hold more frames).
async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(FrameDecoder, Hello), ConnError> {
    let mut decoder = FrameDecoder::new();
    loop {
        if let Some(msg) = decoder.next_message()? {
            return match msg {
                Message::Hello(h) => Ok((decoder, h)),
                Message::Close { reason } => Err(ConnError::ClosedByPeer(reason)),
                other => Err(ConnError::NoHello(other.kind().name())),
            };
        }
        let n = stream.read(decoder.read_buf()).await?;
        if n == 0 {
            return Err(ConnError::ClosedByPeer(
                "connection closed during Hello".into(),
            ));
        }
        decoder.filled(n);
    }
}

/// Sends `Close { reason }` and shuts the stream; returns the reason for the log.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, reason: String) -> String {
    let mut out = Vec::new();
    let _ = encode(
        &Message::Close {
            reason: reason.clone(),
        },
        &mut out,
    );
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
    reason
}

/// Runs a trusted connection: registers it, sends the cluster config, then reads and
/// writes until either side closes, the service stops or the connection is replaced.
async fn run_connection<S>(
    shared: Arc<Shared>,
    h: Handshaken<S>,
    addr: SocketAddr,
    outgoing: bool,
    counters: Arc<Counters>,
    service_cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Handshaken {
        stream,
        peer,
        hello,
        version,
        mut decoder,
    } = h;
    let span = info_span!("device", peer = %peer.short_str(), name = %hello.device_name);
    async move {
        let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX);
        let cancel = service_cancel.child_token();
        let handle = ConnHandle {
            serial: shared.next_serial(),
            outgoing,
            address: addr,
            tx: tx.clone(),
            cancel: cancel.clone(),
            counters: counters.clone(),
            peer_name: hello.device_name.clone(),
            sync: Arc::new(crate::sync::ConnSync::default()),
            index_flow: Arc::new(IndexFlow::default()),
        };
        let serial = handle.serial;
        let conn = handle.clone();
        let (mut rd, mut wr) = tokio::io::split(stream);
        if let Err(why) = shared.register(peer, handle) {
            let mut out = Vec::new();
            let _ = encode(
                &Message::Close {
                    reason: why.clone(),
                },
                &mut out,
            );
            let _ = wr.write_all(&out).await;
            let _ = wr.shutdown().await;
            debug!(%why, "connection not kept");
            return;
        }
        info!(%addr, outgoing, "connected");
        let _ = tx
            .send(Message::ClusterConfig(shared.cluster_config_for(&peer)))
            .await;
        let (index_tx, index_rx) = mpsc::unbounded_channel();
        shared.tasks.spawn(
            crate::sync::index::receive(shared.clone(), peer, conn.clone(), index_rx)
                .in_current_span(),
        );
        let stats = std::sync::Mutex::new(CompressionStats::default());
        let writer = async {
            let mut fw = FrameWriter::new(version);
            loop {
                let msg = tokio::time::timeout(crate::protocol::PING_INTERVAL, rx.recv()).await;
                let msg = match msg {
                    Err(_) => Message::Ping,
                    Ok(None) => return Ok::<_, ConnError>(()),
                    Ok(Some(m)) => m,
                };
                let mut closing = matches!(msg, Message::Close { .. });
                fw.push(msg)?;
                // Batch what is already queued into one vectored write.
                while fw.queued() < WRITE_BATCH && !closing {
                    match rx.try_recv() {
                        Ok(m) => {
                            closing = matches!(m, Message::Close { .. });
                            fw.push(m)?;
                        }
                        Err(_) => break,
                    }
                }
                fw.write_to(&mut wr).await?;
                if let Ok(mut s) = stats.lock() {
                    *s = fw.stats();
                }
                if closing {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            }
        };
        let reader = async {
            let blocks = crate::sync::serve::BlockServer::start(&shared, peer, &conn);
            loop {
                while let Some(msg) = decoder.next_message()? {
                    match msg {
                        Message::Close { reason } => return Err(ConnError::ClosedByPeer(reason)),
                        Message::Index(i) => {
                            let n: usize = i.files.iter().map(|f| f.encoded_len()).sum();
                            if !conn.index_flow.queue(n) {
                                return Err(ConnError::Refused(
                                    "peer sends its index faster than it can be stored".into(),
                                ));
                            }
                            let _ = index_tx.send(i);
                            conn.index_flow.wait_for_room().await;
                        }
                        Message::Response(r) => {
                            if !conn.sync.complete_block(r) {
                                return Err(ConnError::Refused("response to no request".into()));
                            }
                        }
                        Message::BlockList(b) => {
                            if !conn.sync.list_part(b) {
                                return Err(ConnError::Refused("block list to no request".into()));
                            }
                        }
                        Message::Request(r) => {
                            let n = conn
                                .sync
                                .serving
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if n >= crate::protocol::MAX_REQUESTS_IN_FLIGHT {
                                return Err(ConnError::Refused(
                                    "more requests in flight than the protocol allows".into(),
                                ));
                            }
                            blocks.submit(r)
                        }
                        Message::BlockListRequest(r) => {
                            let n = conn
                                .sync
                                .serving_lists
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if n >= crate::protocol::MAX_LIST_REQUESTS_IN_FLIGHT {
                                return Err(ConnError::Refused(
                                    "more block-list requests in flight than the protocol allows"
                                        .into(),
                                ));
                            }
                            crate::sync::serve::answer_list(&shared, peer, &conn, r)
                        }
                        Message::ClusterConfig(cc) => {
                            shared.handle_cluster_config(&peer, &conn, cc)
                        }
                        Message::Ping => {}
                        Message::Hello(_) => {
                            return Err(ConnError::Refused("a second Hello".into()));
                        }
                    }
                }
                let n = tokio::time::timeout(
                    crate::protocol::IDLE_TIMEOUT,
                    rd.read(decoder.read_buf()),
                )
                .await
                .map_err(|_| ConnError::Refused("idle timeout".into()))??;
                if n == 0 {
                    return Err(ConnError::ClosedByPeer("connection closed".into()));
                }
                decoder.filled(n);
            }
        };
        tokio::pin!(writer);
        let reason = tokio::select! {
            _ = cancel.cancelled() => {
                "closed by this side".to_string()
            }
            r = &mut writer => match r { Ok(()) => "closed".to_string(), Err(e) => e.to_string() },
            r = reader => match r {
                Ok(()) => "closed".to_string(),
                Err(ConnError::ClosedByPeer(why)) => format!("closed by peer: {why}"),
                Err(e) => {
                    // Tell the peer why before closing, as the protocol asks.
                    let reason = e.to_string();
                    if tx.try_send(Message::Close { reason: reason.clone() }).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
                    }
                    reason
                }
            },
        };
        conn.sync.fail_all();
        shared.unregister(&peer, serial, &reason);
        let s = stats.lock().map(|s| *s).unwrap_or_default();
        info!(
            %reason,
            version,
            compressed_frames = s.frames,
            compressed_saved_bytes = s.raw_bytes - s.sent_bytes,
            "disconnected"
        );
    }
    .instrument(span)
    .await
}

/// The batching of a connection's writer: frames made by a [`FrameEncoder`] and written
/// with vectored writes, each block's data straight from its `Response` (not copied into
/// the batch) unless it is compressed.
pub struct FrameWriter {
    enc: FrameEncoder,
    out: Vec<u8>,
    /// The block data that follows `out[..end]`, for each block sent as is, in order.
    blocks: Vec<(usize, Vec<u8>)>,
    queued: usize,
    /// Block buffers already written, for [`Self::take_spare`]: at most `keep_spare`.
    spare: Vec<Vec<u8>>,
    keep_spare: usize,
}

impl FrameWriter {
    /// For a connection on protocol `version` (the negotiated one).
    pub fn new(version: u32) -> Self {
        Self {
            enc: FrameEncoder::new(version),
            out: Vec::with_capacity(64 << 10),
            blocks: Vec::new(),
            queued: 0,
            spare: Vec::new(),
            keep_spare: 0,
        }
    }

    /// Keep up to `n` written block buffers for [`Self::take_spare`] (none by default: the
    /// service does not reuse them).
    pub fn keep_spare(&mut self, n: usize) {
        self.keep_spare = n;
    }

    /// Adds `msg` to the batch. A `Response` sent as is gives up its data buffer.
    pub fn push(&mut self, msg: Message) -> Result<(), crate::protocol::ProtocolError> {
        let before = self.out.len();
        let split = self.enc.encode_split(&msg, &mut self.out)?;
        self.queued += self.out.len() - before;
        if split && let Message::Response(r) = msg {
            self.queued += r.data.len();
            self.blocks.push((self.out.len(), r.data));
        }
        Ok(())
    }

    /// Bytes in the batch.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Writes the batch, flushes, and empties it.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<()> {
        let mut slices = Vec::with_capacity(2 * self.blocks.len() + 1);
        let mut at = 0;
        for (end, data) in &self.blocks {
            slices.push(IoSlice::new(&self.out[at..*end]));
            slices.push(IoSlice::new(data));
            at = *end;
        }
        slices.push(IoSlice::new(&self.out[at..]));
        let mut bufs = &mut slices[..];
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            let n = wr.write_vectored(bufs).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        wr.flush().await?;
        self.out.clear();
        self.queued = 0;
        for (_, data) in self.blocks.drain(..) {
            if self.spare.len() < self.keep_spare {
                self.spare.push(data);
            }
        }
        Ok(())
    }

    /// A block buffer already written, to fill again (its length and bytes are the old
    /// block's).
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        self.spare.pop()
    }

    /// What compression did so far.
    pub fn stats(&self) -> CompressionStats {
        self.enc.stats()
    }
}

/// Keeps one trusted device connected: dials its addresses with backoff while it is not
/// connected, until `cancel` (the device was removed, its addresses changed, or the
/// service stops).
pub async fn dialer(
    shared: Arc<Shared>,
    device: DeviceId,
    addresses: Vec<String>,
    cancel: CancellationToken,
) {
    let mut backoff = DIAL_BACKOFF_FIRST;
    let mut changes = shared.connection_changes();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        if shared.is_connected(&device) || shared.is_device_paused(&device) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = changes.changed() => continue,
                // Re-check now and then even without a change signal.
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
            }
        }
        let mut connected = false;
        for a in &addresses {
            let resolved = match tokio::net::lookup_host(a.as_str()).await {
                Ok(it) => it.collect::<Vec<_>>(),
                Err(e) => {
                    debug!(address = %a, error = %e, "cannot resolve");
                    continue;
                }
            };
            for addr in resolved {
                let span = info_span!("conn", %addr, dir = "out");
                let r = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = dial(shared.clone(), device, addr, cancel.clone()).instrument(span) => r,
                };
                match r {
                    Ok(()) => {
                        connected = true;
                        break;
                    }
                    Err(e) => debug!(%addr, error = %e, "dial failed"),
                }
            }
            if connected {
                break;
            }
        }
        if connected {
            // The connection ran and ended: start again quickly.
            backoff = DIAL_BACKOFF_FIRST;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        if !connected {
            backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn waits(flow: &Arc<IndexFlow>) -> tokio::task::JoinHandle<()> {
        let f = flow.clone();
        tokio::spawn(async move { f.wait_for_room().await })
    }

    #[tokio::test]
    async fn the_reader_waits_for_the_index_store_except_while_a_block_list_is_awaited() {
        let flow = Arc::new(IndexFlow::default());
        assert!(flow.queue(INDEX_QUEUE_SOFT));
        // At the soft limit: no wait.
        tokio::time::timeout(Duration::from_secs(5), flow.wait_for_room())
            .await
            .expect("room at the limit");
        assert!(flow.queue(1));
        let reader = waits(&flow);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "over the limit the reader waits");
        flow.stored(1);
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("stored: the reader goes on")
            .expect("task");
        // Over the limit again, but the store waits for a block list that only the reader
        // can deliver: the reader must not wait.
        assert!(flow.queue(1 << 20));
        let reader = waits(&flow);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reader.is_finished());
        flow.awaiting_list(true);
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("a block list is awaited: the reader goes on")
            .expect("task");
        flow.awaiting_list(false);
        // The hard limit still closes a peer that floods.
        assert!(!flow.queue(MAX_QUEUED_INDEX_BYTES));
    }
}
