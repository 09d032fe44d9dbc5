//! A whole service run inside the dashboard's process, for as long as it is open.
//!
//! It is the same [`Running`] service `shoal serve` runs, on a tokio runtime of its own
//! in a background thread: it listens, syncs and answers the control socket, so the
//! dashboard (and any `shoal` command) reaches it through the socket exactly as it would
//! reach a headless one. The dashboard never touches its internals.

use crate::config::Home;
use crate::service::{Running, ServiceError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Tasks still running this long after the service stopped are abandoned.
const RUNTIME_GRACE: Duration = Duration::from_millis(500);

pub struct Embedded {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Embedded {
    /// Starts the service and returns once its control socket is up (or it failed).
    pub fn start(home: Home) -> Result<Self, ServiceError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("shoal-service".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .thread_name("shoal-rt")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServiceError::Runtime(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Running::start(home).await {
                        Ok(running) => {
                            info!("embedded service started");
                            let _ = ready_tx.send(Ok(()));
                            // Quitting sends; a dashboard that died drops the sender: both stop.
                            let _ = stop_rx.await;
                            running.stop().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                // A scan still hashing on a blocking thread is not waited for.
                rt.shutdown_timeout(RUNTIME_GRACE);
            })
            .map_err(ServiceError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { stop, thread }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ServiceError::Runtime(std::io::Error::other(
                    "the service thread ended before it started",
                )))
            }
        }
    }

    /// Stops the service (within about 5 s) and waits for its thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            warn!("the embedded service's thread panicked while stopping");
        }
        info!("embedded service stopped");
    }
}
