//! Answering a peer's requests: blocks and block lists, only from folders shared with it.

use super::fsops::FolderFs;
use crate::identity::DeviceId;
use crate::net::ConnHandle;
use crate::protocol::{
    BlockHash, BlockList, BlockListRequest, Message, Request, Response, ResponseCode,
    block_list_parts, validate_name,
};
use crate::service::Shared;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::{debug, info};

/// Answers one block request on a blocking thread.
pub fn answer_block(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle, req: Request) {
    let s = shared.clone();
    let tx = conn.tx.clone();
    let sync = conn.sync.clone();
    shared.tasks.spawn(async move {
        let id = req.id;
        let s2 = s.clone();
        let folder = req.folder.clone();
        let r = tokio::task::spawn_blocking(move || read_block(&s2, peer, &req)).await;
        let (code, data) = match r {
            Ok(x) => x,
            Err(_) => (ResponseCode::Generic, Vec::new()),
        };
        if code == ResponseCode::Changed {
            // The file changed since it was indexed: rescan so the peer gets the new one.
            s.request_rescan(&folder);
        }
        let _ = tx
            .send(Message::Response(Response { id, code, data }))
            .await;
        sync.serving.fetch_sub(1, Ordering::Relaxed);
    });
}

fn read_block(shared: &Arc<Shared>, peer: DeviceId, req: &Request) -> (ResponseCode, Vec<u8>) {
    let config = shared.config();
    // A folder not shared with the requester and a missing file look the same to it.
    let Some(folder) = config
        .folder(&req.folder)
        .filter(|f| f.devices.contains(&peer) && !f.paused)
    else {
        return (ResponseCode::NoSuchFile, Vec::new());
    };
    if validate_name(&req.name).is_err()
        || req.size == 0
        || req.size > crate::protocol::MAX_BLOCK_SIZE
    {
        return (ResponseCode::Invalid, Vec::new());
    }
    let Ok(fs) = FolderFs::open(&folder.path) else {
        return (ResponseCode::Generic, Vec::new());
    };
    let mut data = vec![0u8; req.size as usize];
    let from_named = fs
        .open_read(&req.name)
        .and_then(|f| f.read_exact_at(&mut data, req.offset));
    if from_named.is_ok() && BlockHash::of(&data) == req.hash {
        return (ResponseCode::Ok, data);
    }
    // Any other local file with the same block serves as well (shared folders only).
    if let Ok(reader) = shared.db.reader()
        && let Ok(locs) = reader.find_blocks(&req.hash, 4)
    {
        for loc in locs {
            let shared_ok = config
                .folder(&loc.folder)
                .map(|f| f.devices.contains(&peer))
                .unwrap_or(false);
            if !shared_ok || loc.size != req.size {
                continue;
            }
            let Some(f) = config.folder(&loc.folder) else {
                continue;
            };
            let Ok(ffs) = FolderFs::open(&f.path) else {
                continue;
            };
            if ffs
                .open_read(&loc.name)
                .and_then(|h| h.read_exact_at(&mut data, loc.offset))
                .is_ok()
                && BlockHash::of(&data) == req.hash
            {
                return (ResponseCode::Ok, data);
            }
        }
    }
    if from_named.is_ok() {
        info!(folder = %req.folder, name = %req.name, "requested block changed on disk since indexed");
        return (ResponseCode::Changed, Vec::new());
    }
    debug!(folder = %req.folder, name = %req.name, "requested block not found");
    (ResponseCode::NoSuchFile, Vec::new())
}

/// Answers a block-list request from the index.
pub fn answer_list(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle, req: BlockListRequest) {
    let s = shared.clone();
    let tx = conn.tx.clone();
    let sync = conn.sync.clone();
    shared.tasks.spawn(async move {
        let id = req.id;
        let r = tokio::task::spawn_blocking(move || {
            let config = s.config();
            let folder = config
                .folder(&req.folder)
                .filter(|f| f.devices.contains(&peer))?;
            let reader = s.db.reader().ok()?;
            // Only a list that an entry of this shared folder names: the hash alone must not
            // open lists of folders the requester does not share.
            let named = std::iter::once(reader.get_local(&folder.id, &req.name))
                .chain(
                    folder
                        .devices
                        .iter()
                        .map(|d| reader.get(&folder.id, *d, &req.name)),
                )
                .filter_map(|r| r.ok().flatten())
                .any(|f| f.blocks_hash() == req.list);
            if !named {
                return None;
            }
            reader.blocklist_by_hash(&req.list).ok().flatten()
        })
        .await
        .ok()
        .flatten();
        match r {
            Some(list) => {
                for part in block_list_parts(id, &list) {
                    if tx.send(part).await.is_err() {
                        break;
                    }
                }
            }
            None => {
                let _ = tx
                    .send(Message::BlockList(BlockList {
                        id,
                        code: ResponseCode::NoSuchFile,
                        total: 0,
                        blocks: Vec::new(),
                    }))
                    .await;
            }
        }
        sync.serving_lists.fetch_sub(1, Ordering::Relaxed);
    });
}
