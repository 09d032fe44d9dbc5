//! `shoal rescan` and `shoal ls`: the folder index.

use super::Context;
use super::output::{pad, print_json, rfc3339_ns};
use crate::db::Db;
use crate::indexer::index_folder;
use crate::protocol::FileInfo;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct RescanArgs {
    /// The folder to scan (default: every folder)
    folder_id: Option<String>,
    /// One JSON array of scan summaries on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The folder to list
    folder_id: String,
    /// Only a receive-only folder's local changes (added, changed or deleted here and not
    /// sent), each with its kind
    #[arg(long)]
    local_changes: bool,
    /// One JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ScanJson {
    folder: String,
    files_seen: u64,
    changed: u64,
    deleted: u64,
    bytes_hashed: u64,
    seconds: f64,
    errors: Vec<ScanErrorJson>,
}

#[derive(Serialize)]
struct ScanErrorJson {
    path: String,
    error: String,
}

/// A read-only view of the home's index for commands that only look (no writer thread;
/// safe beside a running service). A home without an index reads as an empty one, and no
/// file is created.
pub fn open_reader(ctx: &Context) -> anyhow::Result<crate::db::Reader> {
    let path = ctx.home.db_path();
    if !path.exists() {
        return Ok(crate::db::Reader::empty()?);
    }
    // A service starting at this moment may hold the new database for its migration.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match crate::db::Reader::open(&path) {
            Err(crate::db::DbError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// Opens the home's index.
pub fn open_db(ctx: &Context) -> anyhow::Result<Db> {
    let local = ctx.local_id()?;
    Ok(Db::open(&ctx.home.db_path(), local)?)
}

pub fn rescan(ctx: &Context, args: RescanArgs) -> anyhow::Result<()> {
    let _lock = match ctx.target()? {
        super::Target::Service(mut client) => {
            let done = client.call(&crate::service::api::Request::Rescan {
                folder: args.folder_id.clone(),
            })?;
            if args.json {
                return print_json(&done);
            }
            for id in done.as_array().into_iter().flatten() {
                println!(
                    "{}: scanned by the running service",
                    id.as_str().unwrap_or_default()
                );
            }
            return Ok(());
        }
        super::Target::Direct(lock) => lock,
    };
    let config = ctx.config()?;
    let folders: Vec<_> = match &args.folder_id {
        Some(id) => vec![config.require_folder(id)?.clone()],
        None => config.folders.clone(),
    };
    if folders.is_empty() {
        eprintln!("no folders to scan; add one with `shoal folder add PATH`");
    }
    let db = open_db(ctx)?;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for folder in &folders {
        let started = Instant::now();
        let bar = progress_bar(&folder.id);
        let report = |p: &crate::scan::Progress| {
            bar.set_length(p.bytes_to_hash.max(p.bytes_hashed));
            bar.set_position(p.bytes_hashed);
            bar.set_message(format!("{} files", p.files_seen));
        };
        // Without its marker the folder is refused below; a probe could not run anyway.
        let caps =
            crate::sync::names::probe(&folder.path).unwrap_or(crate::sync::names::FsCaps::ASSUMED);
        let result = index_folder(&db, folder, caps, None, &report, None);
        bar.finish_and_clear();
        match result {
            Ok(summary) => {
                let seconds = started.elapsed().as_secs_f64();
                for e in &summary.errors {
                    eprintln!("warning: {}: {}: {}", folder.id, e.path, e.message);
                }
                if !args.json {
                    println!(
                        "{}: {} entries, {} changed, {} deleted, {} hashed in {:.2} s{}",
                        folder.id,
                        summary.files_seen,
                        summary.changed,
                        summary.deleted,
                        human_bytes(summary.bytes_hashed),
                        seconds,
                        if summary.errors.is_empty() {
                            String::new()
                        } else {
                            format!(", {} skipped (see warnings)", summary.errors.len())
                        }
                    );
                }
                out.push(ScanJson {
                    folder: folder.id.clone(),
                    files_seen: summary.files_seen,
                    changed: summary.changed,
                    deleted: summary.deleted,
                    bytes_hashed: summary.bytes_hashed,
                    seconds,
                    errors: summary
                        .errors
                        .iter()
                        .map(|e| ScanErrorJson {
                            path: e.path.clone(),
                            error: e.message.clone(),
                        })
                        .collect(),
                });
            }
            Err(e) => failures.push(e),
        }
    }
    db.checkpoint()?;
    if args.json {
        print_json(&out)?;
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0).into()),
        n => {
            let first = failures.remove(0);
            for e in &failures {
                eprintln!("error: {e}");
            }
            Err(anyhow::anyhow!(
                "{first} (and {} more folders failed)",
                n - 1
            ))
        }
    }
}

fn progress_bar(folder: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "scanning {prefix}: {bytes}/{total_bytes} {msg} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(folder.to_string());
    // Short scans finish before the bar would be worth drawing.
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

pub use crate::sync::human_bytes;

/// The opaque version string of `ls`: `SHORTID:counter` pairs.
fn version_text(f: &FileInfo) -> String {
    f.version
        .counters()
        .iter()
        .map(|c| format!("{}:{}", c.id, c.value))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Serialize)]
struct EntryJson<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    file_type: &'static str,
    size: u64,
    modified: String,
    deleted: bool,
    version: String,
    blocks: usize,
    permissions: String,
    sequence: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    symlink_target: &'a str,
    /// With `--local-changes`: `added`, `changed` or `deleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'static str>,
}

fn entry_json<'a>(f: &'a FileInfo, change: Option<&'static str>) -> EntryJson<'a> {
    EntryJson {
        name: &f.name,
        file_type: f.file_type.as_str(),
        size: f.size,
        modified: rfc3339_ns(f.modified_ns),
        deleted: f.deleted,
        version: version_text(f),
        blocks: f.blocks.len(),
        permissions: format!("{:04o}", f.permissions),
        sequence: f.sequence,
        symlink_target: &f.symlink_target,
        change,
    }
}

/// `ls --local-changes`: a receive-only folder's local changes.
fn ls_local_changes(
    folder: &crate::config::FolderConfig,
    reader: &crate::db::Reader,
    json: bool,
) -> anyhow::Result<()> {
    if folder.mode != crate::config::FolderMode::ReceiveOnly {
        anyhow::bail!(
            "folder \"{}\" is {}: only a receive-only folder keeps local changes apart (its \
             changes are sent)",
            folder.id,
            folder.mode.as_str()
        );
    }
    let changes = crate::sync::receive_only::list(reader, folder)?;
    if json {
        let list: Vec<_> = changes
            .iter()
            .map(|(f, k)| entry_json(f, Some(k.as_str())))
            .collect();
        return print_json(&list);
    }
    for (f, k) in &changes {
        println!("{} {}", pad(k.as_str(), 8), f.name);
    }
    if changes.is_empty() {
        eprintln!("{}: no local changes", folder.id);
    }
    Ok(())
}

pub fn ls(ctx: &Context, args: LsArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let folder = config.require_folder(&args.folder_id)?;
    let reader = open_reader(ctx)?;
    if args.local_changes {
        return ls_local_changes(folder, &reader, args.json);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        // Streamed element by element: a folder of a million files is never held whole.
        let mut first = true;
        write!(out, "[")?;
        reader.for_each_local(&folder.id, |f| {
            let entry = entry_json(&f, None);
            let sep = if first { "\n  " } else { ",\n  " };
            first = false;
            write!(out, "{sep}")?;
            serde_json::to_writer(&mut out, &entry)?;
            Ok::<(), anyhow::Error>(())
        })?;
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    } else {
        reader.for_each_local(&folder.id, |f| {
            let kind = if f.deleted {
                "deleted"
            } else {
                f.file_type.as_str()
            };
            let target = if f.symlink_target.is_empty() {
                String::new()
            } else {
                format!(" -> {}", f.symlink_target)
            };
            writeln!(
                out,
                "{} {:>10} {}  {}{}",
                pad(kind, 7),
                f.size,
                rfc3339_ns(f.modified_ns),
                f.name,
                target
            )?;
            Ok::<(), anyhow::Error>(())
        })?;
    }
    out.flush()?;
    Ok(())
}

/// Drops a removed folder's index (its files stay on disk).
pub fn forget_folder(ctx: &Context, folder_id: &str) -> anyhow::Result<()> {
    if ctx.home.db_path().exists() {
        let db = open_db(ctx)?;
        db.drop_folder(folder_id)?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConflictsArgs {
    /// Only this folder
    folder_id: Option<String>,
    /// One JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ConflictJson {
    folder: String,
    name: String,
    original: String,
    device: String,
    created: String,
}

/// `shoal conflicts`: the conflict copies in the index, newest first.
pub fn conflicts(ctx: &Context, args: ConflictsArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let folders: Vec<_> = match &args.folder_id {
        Some(id) => vec![config.require_folder(id)?.clone()],
        None => config.folders.clone(),
    };
    let reader = open_reader(ctx)?;
    let mut out = Vec::new();
    for f in &folders {
        reader.for_each_local(&f.id, |e| {
            if !e.deleted
                && e.file_type == crate::protocol::FileType::File
                && let Some((original, device, created)) =
                    crate::sync::conflict::parse_copy_name(&e.name)
            {
                out.push(ConflictJson {
                    folder: f.id.clone(),
                    name: e.name,
                    original,
                    device,
                    created,
                });
            }
            Ok::<(), anyhow::Error>(())
        })?;
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    if args.json {
        return print_json(&out);
    }
    if out.is_empty() {
        println!("no conflict copies");
    }
    for c in &out {
        println!(
            "{}  {}  (copy of {}, lost by {}, made {})",
            c.folder, c.name, c.original, c.device, c.created
        );
    }
    Ok(())
}
