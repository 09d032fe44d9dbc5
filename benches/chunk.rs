//! Scanner micro-benchmark: chunking and hashing in memory, then whole scans of generated
//! folders (files in the page cache), with `b3sum --num-threads 2` on the same files for
//! comparison when it is installed (`apt-get install b3sum`).
//!
//! `cargo bench --bench chunk [-- memory|big|one|small]` (default: all)
//! Datasets: big = 4 × 256 MiB random files; one = 1 × 1 GiB; small = 20,000 × 4 KiB in
//! 200 directories.

use shoal::db::{ScanState, ScanStates};
use shoal::scan::{
    AVG_BLOCK, BlockHasher, LocalChange, MAX_BLOCK, MIN_BLOCK, ScanRequest, ScanSummary, blocks_of,
    scan,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let want = |what: &str| args.is_empty() || args.iter().any(|a| a == what);
    if want("memory") {
        memory();
    }
    if want("big") {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..4 {
            write_old(
                &dir.path().join(format!("big{i}.bin")),
                &random(256 << 20, i),
            );
        }
        folder("4 × 256 MiB", dir.path());
    }
    if want("one") {
        let dir = tempfile::tempdir().expect("tempdir");
        write_old(&dir.path().join("one.bin"), &random(1 << 30, 7));
        folder("1 × 1 GiB", dir.path());
    }
    if want("small") {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in 0..200 {
            std::fs::create_dir(dir.path().join(format!("d{d:03}"))).expect("mkdir");
            for f in 0..100 {
                let p = dir.path().join(format!("d{d:03}/f{f:03}"));
                write_old(&p, &random(4096, d * 1000 + f));
            }
        }
        folder("20,000 × 4 KiB in 200 dirs", dir.path());
    }
}

fn gbps(bytes: usize, d: Duration) -> String {
    format!("{:.2} GB/s", bytes as f64 / d.as_secs_f64() / 1e9)
}

/// Best of `n` runs.
fn best<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.expect("n > 0"))
}

fn memory() {
    let data = random(256 << 20, 99);
    let n = data.len();
    println!("in memory, 256 MiB random, best of 3:");
    let (t, c) = best(3, || {
        fastcdc::v2020::FastCDC::new(&data, MIN_BLOCK, AVG_BLOCK, MAX_BLOCK).count()
    });
    println!(
        "  FastCDC cut points only      {:>10}  ({c} blocks)",
        gbps(n, t)
    );
    let (t, _) = best(3, || blake3::hash(&data));
    println!("  BLAKE3 one thread, one hash  {:>10}", gbps(n, t));
    let (t, _) = best(3, || blake3::Hasher::new().update_rayon(&data).finalize());
    println!("  BLAKE3 rayon, one hash       {:>10}", gbps(n, t));
    let (t, reference) = best(3, || blocks_of(&data));
    println!("  blocks_of (one thread)       {:>10}", gbps(n, t));
    for buf in [256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20] {
        let mut h = BlockHasher::with_buffer(buf);
        let (t, r) = best(3, || {
            h.hash_reader(&data[..], &mut |_| {}, &|| false)
                .expect("memory")
        });
        assert_eq!(r.0, reference);
        println!(
            "  streaming, {:>5} KiB buffer {:>10}",
            buf >> 10,
            gbps(n, t)
        );
    }
}

fn run(root: &Path, prev: &ScanStates) -> (Vec<LocalChange>, ScanSummary) {
    let mut changes = Vec::new();
    let req = ScanRequest {
        root,
        prev,
        only: None,
        caps: shoal::sync::names::FsCaps::PLAIN,
        ignore_perms: false,
        previous_blocks: None,
    };
    let summary = scan(
        &req,
        &mut |b: Vec<LocalChange>| -> Result<(), String> {
            changes.extend(b);
            Ok(())
        },
        &|_| {},
    )
    .expect("scan");
    (changes, summary)
}

fn folder(label: &str, root: &Path) {
    let files = walk_files(root);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    println!("{label} ({:.0} MiB), best of 5:", bytes as f64 / 1048576.0);
    // Warm the page cache.
    let _ = run(root, &ScanStates::new());
    let (t, (changes, summary)) = best(5, || run(root, &ScanStates::new()));
    assert!(summary.errors.is_empty() && summary.retry.is_empty());
    println!(
        "  cold scan   {:>8.3} s  {:>10}  ({} changes)",
        t.as_secs_f64(),
        gbps(bytes as usize, t),
        changes.len()
    );
    let prev: ScanStates = changes
        .iter()
        .map(|c| {
            let i = &c.info;
            let st = ScanState {
                file_type: i.file_type,
                deleted: i.deleted,
                size: i.size,
                permissions: i.permissions,
                modified_ns: i.modified_ns,
                inode: c.inode,
                ctime_ns: c.ctime_ns,
                symlink_target: i.symlink_target.clone(),
            };
            (i.name.clone(), st)
        })
        .collect();
    let (t, (changes, _)) = best(5, || run(root, &prev));
    assert!(changes.is_empty());
    println!(
        "  warm scan   {:>8.3} s  (nothing changed)",
        t.as_secs_f64()
    );
    let b3 = Command::new("b3sum").arg("--version").output();
    if b3.is_ok_and(|o| o.status.success()) {
        let (t, _) = best(5, || {
            // Batches keep the command line short.
            for chunk in files.chunks(5000) {
                let out = Command::new("b3sum")
                    .args(["--num-threads", "2"])
                    .args(chunk)
                    .output()
                    .expect("b3sum");
                assert!(out.status.success());
            }
        });
        println!(
            "  b3sum -j2   {:>8.3} s  {:>10}",
            t.as_secs_f64(),
            gbps(bytes as usize, t)
        );
    }
}

fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readdir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Written with an old mtime, as files at rest are (a fresh file is read twice, see
/// `scan::RACY_WINDOW_NS`).
fn write_old(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("write");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .expect("mtime");
}

fn random(len: usize, seed: usize) -> Vec<u8> {
    let mut s = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}
