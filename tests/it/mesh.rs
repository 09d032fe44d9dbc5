//! Meshes: three devices that all share one folder with each other converge.

use crate::harness::{Device, Service, wait_until};
use crate::sync::{noise, tree};
use std::time::Duration;

/// Three running devices (`a`, `b`, `c`), each trusting the other two, all sharing folder
/// "f" (at `f`) with both others.
fn full_mesh() -> (Vec<Device>, Vec<Service>) {
    let (devs, ports): (Vec<Device>, Vec<u16>) =
        ["a", "b", "c"].iter().map(|n| Device::listening(n)).unzip();
    let ids: Vec<String> = devs.iter().map(Device::id).collect();
    for (i, d) in devs.iter().enumerate() {
        let mut share = vec!["--id", "f"];
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                d.trust(id, ports[j]);
                share.extend(["--share", id.as_str()]);
            }
        }
        d.add_folder("f", &share);
    }
    let services: Vec<Service> = devs.iter().map(Device::serve).collect();
    for (i, d) in devs.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                assert!(
                    wait_until(Duration::from_secs(15), || d.connected_to(id)),
                    "device {i} connected to {j}"
                );
            }
        }
    }
    (devs, services)
}

#[track_caller]
fn assert_all_converge(devs: &[Device], services: &[Service], what: &str) {
    let same = || {
        let t0 = tree(&devs[0].path("f"));
        devs[1..].iter().all(|d| tree(&d.path("f")) == t0)
    };
    if !wait_until(Duration::from_secs(30), same) {
        let keys: Vec<Vec<String>> = devs
            .iter()
            .map(|d| tree(&d.path("f")).into_keys().collect())
            .collect();
        let logs: Vec<String> = services.iter().map(Service::log).collect();
        panic!(
            "{what}: trees differ: {keys:#?}\nlogs:\n{}",
            logs.join("\n-----\n")
        );
    }
}

#[test]
fn three_devices_sharing_one_folder_with_each_other_converge() {
    let (devs, services) = full_mesh();
    let (a, b, c) = (&devs[0], &devs[1], &devs[2]);
    std::fs::create_dir_all(a.path("f/docs")).expect("mkdir");
    std::fs::write(a.path("f/docs/plan.txt"), "v1 of the plan").expect("write");
    std::fs::write(a.path("f/old.txt"), "to be deleted by c").expect("write");
    std::fs::write(b.path("f/from-b.bin"), noise(300 << 10, 1)).expect("write");
    assert_all_converge(&devs, &services, "baseline");

    // Each device changes something different at the same time: b edits a's file, c
    // deletes one and adds a big one, a adds a directory tree.
    std::fs::write(b.path("f/docs/plan.txt"), "v2 of the plan, edited on b").expect("write");
    std::fs::remove_file(c.path("f/old.txt")).expect("rm");
    std::fs::write(c.path("f/from-c.bin"), noise(3 << 20, 2)).expect("write");
    std::fs::create_dir_all(a.path("f/new/deep")).expect("mkdir");
    std::fs::write(a.path("f/new/deep/a.txt"), "added on a").expect("write");
    assert_all_converge(&devs, &services, "after changes on all three");

    let t = tree(&a.path("f"));
    assert_eq!(
        t.get("docs/plan.txt").map(|e| e.2.as_slice()),
        Some(&b"v2 of the plan, edited on b"[..])
    );
    assert!(!t.contains_key("old.txt"), "c's deletion reached everyone");
    assert_eq!(
        t.get("from-c.bin").map(|e| e.2.clone()),
        Some(noise(3 << 20, 2))
    );
    assert_eq!(
        t.get("new/deep/a.txt").map(|e| e.2.as_slice()),
        Some(&b"added on a"[..])
    );
    assert!(
        t.keys().all(|n| !n.contains("sync-conflict")),
        "no conflict from changes to different files: {:?}",
        t.keys().collect::<Vec<_>>()
    );

    // A second round on the converged mesh: the edit travels on from whoever has it.
    std::fs::write(c.path("f/docs/plan.txt"), "v3, edited on c").expect("write");
    std::fs::remove_file(a.path("f/from-b.bin")).expect("rm");
    assert_all_converge(&devs, &services, "second round");
    let t = tree(&b.path("f"));
    assert_eq!(
        t.get("docs/plan.txt").map(|e| e.2.as_slice()),
        Some(&b"v3, edited on c"[..])
    );
    assert!(!t.contains_key("from-b.bin"));
    // Every device's index agrees there is nothing left to fetch.
    for d in &devs {
        assert!(
            wait_until(
                Duration::from_secs(10),
                || d.status()["folders"][0]["need_files"] == 0
            ),
            "{}",
            d.status()
        );
    }
}
