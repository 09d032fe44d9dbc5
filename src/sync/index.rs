//! Index exchange: sending our index to a peer, receiving theirs.
//!
//! On connect, each side learns from the other's cluster config how much of its own index
//! the other already holds (index ID and highest sequence): if the index ID is still ours,
//! it sends only what is newer, else everything. Then every local change (a scan or a
//! pull) wakes the sender, which sends the new sequence numbers in order. A big file's new
//! version travels as an edit of the block list the peer already holds for it.

use super::pull::{Need, decide};
use crate::identity::DeviceId;
use crate::net::ConnHandle;
use crate::protocol::{
    BlockListAssembler, BlockListRequest, Index, IndexBatch, Message, ProtocolError, WireBlocks,
    WireFile, validate_name,
};
use crate::service::Shared;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Entries read from the index per batch when sending.
const SEND_BATCH: usize = 2000;

/// Streams our index of `folder` to `peer`, from after `from_seq`, until cancelled.
pub async fn send(
    shared: Arc<Shared>,
    peer: DeviceId,
    conn: ConnHandle,
    folder: String,
    mut from_seq: u64,
    cancel: CancellationToken,
) {
    let mut changes = shared.local_changes(&folder);
    let mut reader = None;
    loop {
        // Mark what we are about to read as seen before reading, so a change that lands
        // meanwhile wakes us again.
        changes.borrow_and_update();
        let s = shared.clone();
        let f = folder.clone();
        let r = tokio::task::spawn_blocking(move || {
            let reader = match reader {
                Some(r) => r,
                None => s.db.reader()?,
            };
            let index_id = reader.local_index_id(&f)?.unwrap_or(0);
            let batch = reader.local_changes_since(&f, from_seq, SEND_BATCH)?;
            let mut wire = Vec::with_capacity(batch.len());
            // A receive-only folder does not announce its own changes (they stay local
            // changes); what it got from others it passes on.
            let receive_only = s
                .config()
                .folder(&f)
                .map(|c| c.mode == crate::config::FolderMode::ReceiveOnly)
                .unwrap_or(false);
            let me = s.local.short();
            let last_seq = batch.last().map(|b| b.sequence);
            for fi in batch
                .iter()
                .filter(|fi| !(receive_only && fi.modified_by == me))
            {
                // The peer's own entry for the name is the list it surely holds.
                let base = if fi.blocks.len() > 1 {
                    reader
                        .get(&f, peer, &fi.name)?
                        .filter(|p| p.blocks.len() > 1)
                        .map(|p| p.blocks)
                } else {
                    None
                };
                wire.push(WireFile::from_file_info(fi, base.as_deref()));
            }
            Ok::<_, crate::db::DbError>((reader, index_id, wire, last_seq))
        })
        .await;
        let (r, index_id, wire, last_seq) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                warn!(%folder, error = %e, "cannot read the index to send");
                return;
            }
            Err(_) => return,
        };
        reader = Some(r);
        if index_id == 0 {
            // The folder has no index yet (its first scan has not run).
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = changes.changed() => continue,
            }
        }
        if let Some(seq) = last_seq {
            from_seq = from_seq.max(seq);
        }
        if wire.is_empty() && last_seq.is_some() {
            continue;
        }
        if wire.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = changes.changed() => if r.is_err() { return } else { continue },
            }
        }
        let more = last_seq.is_some() && wire.len() == SEND_BATCH;
        let mut batch = IndexBatch::new(folder.clone(), index_id);
        for w in wire {
            from_seq = from_seq.max(w.sequence);
            if let Some(back) = batch.push(w) {
                let full = std::mem::replace(&mut batch, IndexBatch::new(folder.clone(), index_id));
                if conn.tx.send(full.finish(false)).await.is_err() {
                    return;
                }
                let _ = batch.push(back);
            }
        }
        if !batch.is_empty() && conn.tx.send(batch.finish(!more)).await.is_err() {
            return;
        }
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// Receives the peer's index messages, in order, for the life of the connection.
pub async fn receive(
    shared: Arc<Shared>,
    peer: DeviceId,
    conn: ConnHandle,
    mut rx: mpsc::UnboundedReceiver<Index>,
) {
    while let Some(idx) = rx.recv().await {
        let queued = idx.files.iter().map(WireFile::encoded_len).sum::<usize>();
        handle_index(&shared, peer, &conn, idx).await;
        conn.index_flow.stored(queued);
    }
}

async fn handle_index(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle, idx: Index) {
    let config = shared.config();
    let Some(folder) = config
        .folder(&idx.folder)
        .filter(|f| f.devices.contains(&peer))
    else {
        // Invariant 4: an index for a folder not shared with the sender is ignored.
        debug!(folder = %idx.folder, "index for a folder not shared with this device ignored");
        return;
    };
    let folder_id = folder.id.clone();
    // Convert on a blocking thread: resolving deltas reads block lists from the index.
    let s = shared.clone();
    let fid = folder_id.clone();
    let files_in = idx.files;
    let converted = tokio::task::spawn_blocking(move || {
        let reader = s.db.reader()?;
        let mut ok = Vec::new();
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        for wf in files_in {
            if let Err(e) = validate_name(&wf.name) {
                warn!(folder = %fid, name = ?wf.name, error = %e, "refused an index entry with a bad name");
                continue;
            }
            if wf.invalid {
                // "Don't take this from me": never pulled, and never a reason to replace
                // or delete anything here. What we held of the name from this peer goes.
                debug!(folder = %fid, name = %wf.name, "the peer marks its entry invalid");
                invalid.push((wf.name, wf.sequence));
                continue;
            }
            let keep = matches!(wf.blocks, WireBlocks::Delta { .. } | WireBlocks::Ref(_))
                .then(|| wf.clone());
            match wf.into_file_info(|h| reader.blocklist_by_hash(h).ok().flatten()) {
                Ok(fi) => ok.push(fi),
                Err(ProtocolError::UnknownBase { result, .. }) => {
                    if let Some(w) = keep {
                        missing.push((w, result));
                    }
                }
                Err(e) => warn!(folder = %fid, error = %e, "refused an index entry"),
            }
        }
        Ok::<_, crate::db::DbError>((ok, missing, invalid))
    })
    .await;
    let (mut files, missing, invalid) = match converted {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            warn!(error = %e, "cannot read the index");
            return;
        }
        Err(_) => return,
    };
    for (wf, result) in missing {
        match fetch_list(conn, &folder_id, &wf.name, result).await {
            Some(list) => match wf.into_file_info(|h| (*h == result).then(|| list.clone())) {
                Ok(fi) => files.push(fi),
                Err(e) => warn!(error = %e, "refused an index entry"),
            },
            None => warn!(name = %wf.name, "the peer did not send a block list it named"),
        }
    }
    files.sort_by_key(|f| f.sequence);
    let s = shared.clone();
    let fid = folder_id.clone();
    let stored = files.clone();
    let index_id = idx.index_id;
    let needs = tokio::task::spawn_blocking(move || {
        s.db.update_remote_with_invalid(&fid, peer, index_id, stored, invalid)?;
        let reader = s.db.reader()?;
        let mut needs = Vec::new();
        for f in &files {
            let local = reader.get_local(&fid, &f.name)?;
            if decide(local.as_ref(), f) != Need::Nothing {
                needs.push(f.name.clone());
            }
        }
        Ok::<_, crate::db::DbError>(needs)
    })
    .await;
    match needs {
        Ok(Ok(needs)) if !needs.is_empty() => {
            debug!(folder = %folder_id, count = needs.len(), "files to pull");
            shared.queue_pull(&folder_id, needs);
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "cannot store the peer's index"),
        Err(_) => {}
    }
    if idx.last {
        info!(folder = %folder_id, "index from peer up to date");
    }
}

/// Asks the peer for a whole block list by its hash.
async fn fetch_list(
    conn: &ConnHandle,
    folder: &str,
    name: &str,
    list: crate::protocol::BlockHash,
) -> Option<Vec<crate::protocol::BlockInfo>> {
    let id = conn.sync.next_id();
    let mut rx = conn.sync.expect_list(id);
    // The answer comes through the connection's reader: it must not wait for the index
    // queue (which waits for this answer) meanwhile.
    conn.index_flow.awaiting_list(true);
    let result = fetch_list_inner(conn, id, &mut rx, folder, name, list).await;
    conn.index_flow.awaiting_list(false);
    conn.sync.forget_list(id);
    result
}

async fn fetch_list_inner(
    conn: &ConnHandle,
    id: u64,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::protocol::BlockList>,
    folder: &str,
    name: &str,
    list: crate::protocol::BlockHash,
) -> Option<Vec<crate::protocol::BlockInfo>> {
    let req = Message::BlockListRequest(BlockListRequest {
        id,
        folder: folder.to_string(),
        name: name.to_string(),
        list,
    });
    if conn.tx.send(req).await.is_err() {
        return None;
    }
    let mut asm = BlockListAssembler::new(id, list);
    loop {
        let part = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv()).await;
        match part {
            Ok(Some(p)) => match asm.push(p) {
                Ok(Some(list)) => break Some(list),
                Ok(None) => continue,
                Err(_) => break None,
            },
            _ => break None,
        }
    }
}
